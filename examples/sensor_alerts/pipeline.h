/* pipeline: the sensor_alerts topology, built the same way for the real run (a runtime over
 * the simulated generator) and for --selftest (the test driver, readings pushed by hand). */
#ifndef SENSOR_ALERTS_PIPELINE_H
#define SENSOR_ALERTS_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include <brook/brook.h>

#define SOURCE_NAME "readings"

typedef struct pipeline_opts {
  double threshold;       /* alert when a window's mean temperature exceeds this */
  brook_time_t max_delay; /* disorder the watermark allows for */
  brook_time_t grace;     /* extra time windows stay open */
  brook_time_t window, hop, session_gap;
} pipeline_opts_t;

/* What the sinks saw. The sinks print to `out` and count here (loop thread). */
typedef struct pipeline_results {
  FILE *out;
  int print_sessions; /* one line per session (long); otherwise only counted */
  uint64_t windows, alerts, late, sessions, session_readings;
} pipeline_results_t;

void pipeline_opts_init(pipeline_opts_t *opts);

/* Adds the pipeline to `t` behind `readings` (a source stream of reading records; its
 * watermark strategy is set here). `opts` and `res` are borrowed and must outlive every
 * runtime or driver built from `t`. Returns BROOK_OK or the first build error (message:
 * brook_topology_last_error(t)). */
brook_err_t pipeline_build(brook_topology_t *t, brook_stream_t *readings,
                           const pipeline_opts_t *opts, pipeline_results_t *res);

/* "HH:MM:SS" (UTC) of `ms` into buf[9]. */
const char *clock_time(brook_time_t ms, char buf[9]);

#endif
