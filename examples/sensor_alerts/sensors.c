/* sensors: simulated temperature readings with the flaws real streams have. Every sensor
 * reports every few seconds at its own level, plus noise; the network delivers readings up
 * to `jitter` ms out of order; sensors go quiet for a minute or two now and then (their
 * activity sessions end); a few sensors drift above the alert threshold for a while; and a
 * few readings are held back for minutes, so they arrive after their windows have closed.
 * Everything is generated up front from a seeded PRNG, then sorted by arrival time. */
#include "sensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUIET_PER_READING 0.01   /* chance a sensor goes quiet after a reading */
#define QUIET_MIN (45 * BROOK_S) /* quiet spells are longer than the session gap */
#define QUIET_MAX (150 * BROOK_S)
#define LATE_MIN (5 * BROOK_MIN) /* a delayed reading arrives this much after it was taken */
#define LATE_MAX (7 * BROOK_MIN)
#define DRIFT_RAMP (90 * BROOK_S) /* a drift climbs for 90 s, holds 2 min, falls for 90 s */
#define DRIFT_HOLD (120 * BROOK_S)

brook_err_t reading_time(const brook_record_t *rec, brook_time_t *ts, void *opaque) {
  (void)opaque;
  reading_t r;
  if (rec->value_len != sizeof(r))
    return BROOK_ERR_USER;
  memcpy(&r, rec->value, sizeof(r)); /* memcpy: record bytes carry no alignment promise */
  *ts = r.time_ms;
  return BROOK_OK;
}

brook_err_t reading_celsius(const brook_record_t *rec, double *out, void *opaque) {
  (void)opaque;
  reading_t r;
  if (rec->value_len != sizeof(r))
    return BROOK_ERR_USER;
  memcpy(&r, rec->value, sizeof(r));
  *out = r.celsius;
  return BROOK_OK;
}

void sim_opts_init(sim_opts_t *opts) {
  *opts = (sim_opts_t){
      .sensors = 50,
      .minutes = 30,
      .late = 5,
      .drifting = 2,
      .seed = 1,
      .start = 1767268800000, /* 2026-01-01 12:00:00 UTC */
      .period = 5 * BROOK_S,
      .jitter = 3 * BROOK_S,
      .drift_celsius = 25.0,
  };
}

/* splitmix64: tiny, good enough, and the same on every platform. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

/* Uniform in [lo, hi). */
static int64_t rng_range(uint64_t *s, int64_t lo, int64_t hi) {
  return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo));
}

/* The drift's contribution at `t` ms after it started: a ramp up, a plateau, a ramp down. */
static double drift_at(brook_time_t t, double height) {
  if (t < 0 || t >= 2 * DRIFT_RAMP + DRIFT_HOLD)
    return 0.0;
  if (t < DRIFT_RAMP)
    return height * (double)t / (double)DRIFT_RAMP;
  if (t < DRIFT_RAMP + DRIFT_HOLD)
    return height;
  return height * (double)(2 * DRIFT_RAMP + DRIFT_HOLD - t) / (double)DRIFT_RAMP;
}

static int by_arrival(const void *a, const void *b) {
  const sim_reading_t *x = a, *y = b;
  if (x->arrival != y->arrival)
    return x->arrival < y->arrival ? -1 : 1;
  if (x->sensor != y->sensor)
    return x->sensor < y->sensor ? -1 : 1;
  return x->value.time_ms < y->value.time_ms ? -1 : x->value.time_ms > y->value.time_ms;
}

int sim_init(sim_t *sim, const sim_opts_t *opts) {
  memset(sim, 0, sizeof(*sim));
  sim->opts = *opts;
  uint64_t rng = opts->seed;
  brook_time_t duration = (brook_time_t)opts->minutes * BROOK_MIN;
  size_t cap = (size_t)opts->sensors * (size_t)(duration / opts->period + 1);
  sim->readings = calloc(cap, sizeof(*sim->readings));
  if (!sim->readings)
    return -1;

  for (unsigned d = 0; d < opts->drifting && d < opts->sensors; d++) {
    unsigned s;
    do
      s = (unsigned)rng_range(&rng, 0, opts->sensors);
    while (sim->drifts[s]);
    sim->drifts[s] = 1;
  }
  for (unsigned s = 0; s < opts->sensors; s++) {
    sim->name_len[s] = (size_t)snprintf(sim->names[s], sizeof(sim->names[s]), "sensor-%02u", s);
    double level = 60.0 + 10.0 * rng_unit(&rng);
    brook_time_t drift_start = duration / 4 + rng_range(&rng, 0, duration / 4 + 1);
    brook_time_t quiet_until = 0;
    for (brook_time_t t = rng_range(&rng, 0, opts->period); t < duration; t += opts->period) {
      int drifting = sim->drifts[s] && t >= drift_start - QUIET_MAX &&
                     t < drift_start + 2 * DRIFT_RAMP + DRIFT_HOLD;
      if (t < quiet_until)
        continue;
      if (!drifting && rng_unit(&rng) < QUIET_PER_READING)
        quiet_until = t + rng_range(&rng, QUIET_MIN, QUIET_MAX);
      sim_reading_t *r = &sim->readings[sim->n++];
      r->sensor = (uint16_t)s;
      r->value.time_ms = opts->start + t;
      r->value.celsius = level + 3.0 * (rng_unit(&rng) - 0.5);
      if (sim->drifts[s])
        r->value.celsius += drift_at(t - drift_start, opts->drift_celsius);
      r->arrival = r->value.time_ms + rng_range(&rng, 0, opts->jitter + 1);
    }
  }
  /* Hold a few readings back; only those that still arrive before the run ends count. */
  for (unsigned tries = 0; sim->late < opts->late && sim->n && tries < 100 * opts->late; tries++) {
    sim_reading_t *r = &sim->readings[rng_range(&rng, 0, (int64_t)sim->n)];
    brook_time_t arrival = r->value.time_ms + rng_range(&rng, LATE_MIN, LATE_MAX);
    if (r->late || arrival >= opts->start + duration)
      continue;
    r->arrival = arrival;
    r->late = 1;
    sim->late++;
  }
  qsort(sim->readings, sim->n, sizeof(*sim->readings), by_arrival);
  return 0;
}

void sim_free(sim_t *sim) {
  free(sim->readings);
  sim->readings = NULL;
}

/* runs on the loop thread */
brook_err_t sim_next(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  sim_t *sim = opaque;
  if (sim->next == sim->n)
    return BROOK_DONE;
  const sim_reading_t *r = &sim->readings[sim->next++];
  /* The key points into the sim, which outlives the runtime; the value could too, but a
   * generator that builds values on the fly would use the batch arena, so this one does. */
  reading_t *value = brook_ctx_alloc(ctx, sizeof(*value));
  if (!value)
    return BROOK_ERR_NOMEM;
  *value = r->value;
  out->key = sim->names[r->sensor];
  out->key_len = sim->name_len[r->sensor];
  out->value = value;
  out->value_len = sizeof(*value);
  /* out->timestamp stays 0: the source's timestamp extractor reads it from the value. */
  return BROOK_OK;
}

uint64_t sim_expected_sessions(const sim_t *sim, brook_time_t gap) {
  brook_time_t *last = malloc(sim->opts.sensors * sizeof(*last));
  if (!last)
    return 0;
  for (unsigned s = 0; s < sim->opts.sensors; s++)
    last[s] = BROOK_TIME_MIN;
  /* Readings of one sensor are at least `period` apart and jitter < period, so arrival
   * order within a sensor is time order for on-time readings. */
  uint64_t sessions = 0;
  for (size_t i = 0; i < sim->n; i++) {
    const sim_reading_t *r = &sim->readings[i];
    if (r->late)
      continue;
    if (last[r->sensor] == BROOK_TIME_MIN || r->value.time_ms - last[r->sensor] >= gap)
      sessions++;
    last[r->sensor] = r->value.time_ms;
  }
  free(last);
  return sessions;
}
