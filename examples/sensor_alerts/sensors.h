/* sensors: the simulated sensor readings fed to the pipeline, and what the simulation knows
 * about them (which sensors drift, which readings were delayed), so the program can print
 * what the pipeline should have found next to what it found. */
#ifndef SENSOR_ALERTS_SENSORS_H
#define SENSOR_ALERTS_SENSORS_H

#include <stddef.h>
#include <stdint.h>

#include <brook/brook.h>

/* The value of every reading record: a native struct (no serialisation in-process). The
 * record's key is the sensor name ("sensor-07"); the event time travels inside the value and
 * the source's timestamp extractor (reading_time) copies it into the record. */
typedef struct reading {
  int64_t time_ms; /* event time: when the sensor measured, ms since the epoch */
  double celsius;
} reading_t;

/* Both read a reading_t value; BROOK_ERR_USER for a value of the wrong size. */
brook_err_t reading_time(const brook_record_t *rec, brook_time_t *ts, void *opaque);
brook_err_t reading_celsius(const brook_record_t *rec, double *out, void *opaque);

typedef struct sim_opts {
  unsigned sensors;     /* 1..99 */
  unsigned minutes;     /* simulated duration, >= 1 */
  unsigned late;        /* readings to delay by minutes, so they arrive late */
  unsigned drifting;    /* sensors that drift above the threshold for a while */
  uint64_t seed;        /* same seed, same readings */
  brook_time_t start;   /* event time of the first reading */
  brook_time_t period;  /* a sensor reports every `period` ms (with a per-sensor phase) */
  brook_time_t jitter;  /* arrival is up to this much after the event time: disorder */
  double drift_celsius; /* how far a drifting sensor climbs above its normal level */
} sim_opts_t;

/* One reading as the network delivers it. */
typedef struct sim_reading {
  brook_time_t arrival; /* simulated arrival time: the stream is in arrival order */
  reading_t value;
  uint16_t sensor;
  uint8_t late; /* delayed by minutes */
} sim_reading_t;

typedef struct sim {
  sim_opts_t opts;
  char names[100][12]; /* "sensor-NN": the record keys, alive as long as the sim */
  size_t name_len[100];
  sim_reading_t *readings; /* in arrival order */
  size_t n, next;          /* next = the generator's position */
  unsigned late;           /* readings actually delayed (may be < opts.late in a short run) */
  int drifts[100];         /* 1 for a drifting sensor */
} sim_t;

void sim_opts_init(sim_opts_t *opts);

/* Generates every reading up front (deterministic for a seed). 0, or -1 out of memory. */
int sim_init(sim_t *sim, const sim_opts_t *opts);
void sim_free(sim_t *sim);

/* The brook_generator_fn of the "readings" source: the readings in arrival order, then
 * BROOK_DONE. `opaque` is the sim_t. */
brook_err_t sim_next(brook_record_t *out, brook_ctx_t *ctx, void *opaque);

/* Sessions the on-time readings form with `gap` (per sensor, readings less than `gap` apart
 * belong together): what a session window over them must report. */
uint64_t sim_expected_sessions(const sim_t *sim, brook_time_t gap);

#endif
