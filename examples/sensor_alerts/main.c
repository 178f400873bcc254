/* sensor_alerts: event-time windows over simulated sensor readings.
 *
 * Readings from N temperature sensors arrive out of order; a few arrive minutes late. The
 * pipeline (pipeline.c) computes 60-second hopping-window means per sensor every 10 seconds
 * and prints an ALERT for each window whose mean exceeds the threshold, sends readings that
 * arrive after all their windows have closed to a side output (LATE lines), and groups each
 * sensor's readings into activity sessions (gap 30 s). At the end it prints a summary: what
 * the sinks saw, what the simulation injected, and the runtime's counters.
 *
 *   sensor_alerts [--sensors N] [--minutes M] [--seed S] [--late L] [--drifting D]
 *                 [--threshold C] [--sessions]
 *   sensor_alerts --selftest   unit-tests the same pipeline with the test driver
 *
 * Exit status: 0 done, 1 a pipeline or self-test failure, 2 bad usage. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "sensors.h"

/* Watermarks advance between batches, so the event time one batch spans adds to how late
 * a record may arrive before it counts as late. A batch of 5 readings per sensor spans ~25 s
 * of event time (every sensor reports every 5 s): on-time readings (at most 3 s out of
 * order) are never late, readings delayed by 5 minutes always are. */
#define BATCH_PER_SENSOR 5

static int usage(void) {
  fprintf(stderr, "usage: sensor_alerts [--sensors 1..99] [--minutes 1..1440] [--seed S]\n"
                  "                     [--late L] [--drifting D] [--threshold C] [--sessions]\n"
                  "       sensor_alerts --selftest\n");
  return 2;
}

/* Parses an unsigned decimal in [lo, hi]; 0 on success. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  if (!s || *s < '0' || *s > '9')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int selftest(void);

int main(int argc, char **argv) {
  sim_opts_t so;
  sim_opts_init(&so);
  pipeline_opts_t po;
  pipeline_opts_init(&po);
  pipeline_results_t res = {.out = stdout};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
    if (strcmp(a, "--selftest") == 0 && argc == 2)
      return selftest();
    if (strcmp(a, "--sessions") == 0) {
      res.print_sessions = 1;
      continue;
    }
    if (strcmp(a, "--threshold") == 0) {
      char *end;
      po.threshold = v ? strtod(v, &end) : 0.0;
      if (!v || *end || end == v || !isfinite(po.threshold))
        return usage();
    } else if (strcmp(a, "--seed") == 0 && parse_u64(v, 0, UINT64_MAX, &n) == 0) {
      so.seed = n;
    } else if (strcmp(a, "--sensors") == 0 && parse_u64(v, 1, 99, &n) == 0) {
      so.sensors = (unsigned)n;
    } else if (strcmp(a, "--minutes") == 0 && parse_u64(v, 1, 1440, &n) == 0) {
      so.minutes = (unsigned)n;
    } else if (strcmp(a, "--late") == 0 && parse_u64(v, 0, 1000, &n) == 0) {
      so.late = (unsigned)n;
    } else if (strcmp(a, "--drifting") == 0 && parse_u64(v, 0, 99, &n) == 0) {
      so.drifting = (unsigned)n;
    } else {
      return usage();
    }
    i++; /* the option's value */
  }

  sim_t sim;
  if (sim_init(&sim, &so) != 0) {
    fprintf(stderr, "sensor_alerts: out of memory\n");
    return 1;
  }
  char t0[9];
  printf("simulating %u sensors for %u min from %s UTC (seed %" PRIu64 "): %zu readings, "
         "%u delayed by minutes\n",
         so.sensors, so.minutes, clock_time(so.start, t0), so.seed, sim.n, sim.late);
  printf("drifting:");
  for (unsigned s = 0; s < so.sensors; s++)
    if (sim.drifts[s])
      printf(" %s", sim.names[s]);
  printf("\n");

  brook_topology_t *t = NULL;
  brook_runtime_t *rt = NULL;
  brook_err_t err = brook_topology_new(&t, NULL);
  if (err != BROOK_OK) {
    fprintf(stderr, "sensor_alerts: brook_topology_new: %s\n", brook_strerror(err));
    sim_free(&sim);
    return 1;
  }
  brook_stream_t *readings = brook_source_generator(t, SOURCE_NAME, sim_next, &sim, NULL);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.batch_size = BATCH_PER_SENSOR * (size_t)so.sensors;
  if ((err = pipeline_build(t, readings, &po, &res)) != BROOK_OK ||
      (err = brook_runtime_new(&rt, t, &ro)) != BROOK_OK) {
    fprintf(stderr, "sensor_alerts: building the pipeline: %s: %s\n", brook_errname(err),
            brook_topology_last_error(t));
    brook_topology_free(t);
    sim_free(&sim);
    return 1;
  }
  brook_topology_free(t); /* the runtime keeps what it needs */

  err = brook_runtime_run(rt);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  int status = 0;
  if (err != BROOK_OK) {
    fprintf(stderr, "sensor_alerts: pipeline failed: %s: %s\n", brook_errname(err),
            brook_runtime_last_error(rt));
    status = 1;
  } else if ((err = brook_runtime_stats(rt, &st)) != BROOK_OK) {
    fprintf(stderr, "sensor_alerts: brook_runtime_stats: %s\n", brook_strerror(err));
    status = 1;
  } else {
    printf("summary:\n");
    printf("  readings:  %zu generated, %" PRIu64 " taken in by the pipeline\n", sim.n,
           st.records_in);
    printf("  windows:   %" PRIu64 " hopping-window means, %" PRIu64 " above %.1f C (alerts)\n",
           res.windows, res.alerts, po.threshold);
    printf("  late:      %" PRIu64 " readings on the side output (%u delayed by the simulation)\n",
           res.late, sim.late);
    printf("  sessions:  %" PRIu64 " (%" PRIu64 " expected from the on-time readings), "
           "holding %" PRIu64 " readings\n",
           res.sessions, sim_expected_sessions(&sim, po.session_gap), res.session_readings);
    printf("  runtime:   %" PRIu64 " records in, %" PRIu64 " out, %" PRIu64
           " late dropped (sessions), %" PRIu64 " timers fired, %" PRIu64 " batches\n",
           st.records_in, st.records_out, st.records_late, st.timers_fired, st.batches);
  }
  brook_runtime_free(rt);
  sim_free(&sim);
  return status;
}

/* ---- --selftest: the same pipeline under the test driver ---------------------------------
 *
 * The driver runs the topology without a loop: each pushed record goes through the whole
 * pipeline, then watermarks advance and due windows fire, so the output is exact and the
 * same on every run. The sinks still run; they print into a memory buffer here. */

#define T0 ((brook_time_t)1767268800000) /* 12:00:00 */

static int check(int ok, const char *what) {
  if (!ok)
    fprintf(stderr, "selftest: FAILED: %s\n", what);
  return ok ? 0 : 1;
}

/* The lines of `text` that start with `prefix`, in order (caller frees). */
static char *lines_starting(const char *text, const char *prefix) {
  char *out = calloc(1, strlen(text) + 1), *o = out;
  for (const char *p = text; out && *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
    if (strncmp(p, prefix, strlen(prefix)) == 0) {
      memcpy(o, p, len);
      o += len;
    }
    p += len;
  }
  return out;
}

static int expect_lines(const char *text, const char *prefix, const char *want) {
  char *got = lines_starting(text, prefix);
  int failed = check(got && strcmp(got, want) == 0, prefix);
  if (failed && got)
    fprintf(stderr, "--- expected\n%s--- got\n%s", want, got);
  free(got);
  return failed;
}

static brook_err_t no_records(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)out, (void)ctx, (void)opaque;
  return BROOK_DONE; /* never called: the driver ignores the source's own input */
}

static int selftest(void) {
  /* sensor-01 reads 70 C every 10 s, then 106 C at :50 (arriving before the :40 reading);
   * it goes quiet until 12:03:20; its 12:00:20 reading is sent again after that, too late.
   * sensor-02 reads 70 C three times. */
  static const struct {
    const char *sensor;
    int second;
    double celsius;
  } in[] = {
      {"sensor-01", 0, 70},  {"sensor-02", 0, 70},   {"sensor-01", 10, 70}, {"sensor-02", 10, 70},
      {"sensor-01", 20, 70}, {"sensor-02", 20, 70},  {"sensor-01", 30, 70}, {"sensor-01", 50, 106},
      {"sensor-01", 40, 70}, {"sensor-01", 200, 70}, {"sensor-01", 20, 70},
  };
  pipeline_opts_t po;
  pipeline_opts_init(&po);
  char *text = NULL;
  size_t text_len = 0;
  pipeline_results_t res = {.print_sessions = 1, .out = open_memstream(&text, &text_len)};
  brook_topology_t *t = NULL;
  brook_driver_t *d = NULL;
  brook_err_t err;
  if (!res.out)
    return check(0, "open_memstream");
  if ((err = brook_topology_new(&t, NULL)) != BROOK_OK) {
    fprintf(stderr, "selftest: brook_topology_new: %s\n", brook_strerror(err));
    fclose(res.out);
    free(text);
    return 1;
  }
  brook_stream_t *src = brook_source_generator(t, SOURCE_NAME, no_records, NULL, NULL);
  if ((err = pipeline_build(t, src, &po, &res)) != BROOK_OK ||
      (err = brook_driver_new(&d, t, NULL)) != BROOK_OK) {
    fprintf(stderr, "selftest: %s: %s\n", brook_errname(err), brook_topology_last_error(t));
    brook_topology_free(t);
    fclose(res.out);
    free(text);
    return 1;
  }
  brook_topology_free(t);

  int failed = 0;
  for (size_t i = 0; i < sizeof(in) / sizeof(in[0]) && !failed; i++) {
    reading_t r = {T0 + in[i].second * BROOK_S, in[i].celsius};
    brook_record_t rec = {
        .key = in[i].sensor, .key_len = strlen(in[i].sensor), .value = &r, .value_len = sizeof(r)};
    if ((err = brook_driver_push(d, SOURCE_NAME, &rec)) != BROOK_OK) {
      fprintf(stderr, "selftest: push %zu: %s: %s\n", i, brook_errname(err),
              brook_driver_last_error(d));
      failed = 1;
    }
    if (in[i].second == 200) /* the largest time so far, minus max_delay, minus 1 ms */
      failed |= check(brook_driver_watermark(d, SOURCE_NAME) == T0 + 200 * BROOK_S - 5001,
                      "watermark after 12:03:20");
  }
  if (!failed && (err = brook_driver_end(d)) != BROOK_OK) {
    fprintf(stderr, "selftest: end: %s: %s\n", brook_errname(err), brook_driver_last_error(d));
    failed = 1;
  }
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  if (!failed && (err = brook_driver_stats(d, &st)) != BROOK_OK)
    failed = check(0, "brook_driver_stats");
  brook_driver_free(d);
  fclose(res.out); /* text now holds everything the sinks printed */
  if (!failed) {
    failed |= expect_lines(text, "ALERT",
                           "ALERT sensor-01 mean 82.0 in [12:00:30, 12:01:30)\n"
                           "ALERT sensor-01 mean 88.0 in [12:00:40, 12:01:40)\n"
                           "ALERT sensor-01 mean 106.0 in [12:00:50, 12:01:50)\n");
    failed |= expect_lines(
        text, "LATE", "LATE sensor-01 70.0 C measured at 12:00:20, after its windows closed\n");
    failed |= expect_lines(text, "SESSION",
                           "SESSION sensor-02 [12:00:00, 12:00:50) 3 readings\n"
                           "SESSION sensor-01 [12:00:00, 12:01:20) 6 readings\n"
                           "SESSION sensor-01 [12:03:20, 12:03:50) 1 reading\n");
    /* sensor-01: 11 windows hold :00-:50, 6 hold 12:03:20; sensor-02: 8. */
    failed |= check(res.windows == 25, "25 window results");
    failed |= check(st.records_late == 1, "the session window dropped the late reading");
  }
  free(text);
  if (!failed)
    printf("selftest: ok\n");
  return failed ? 1 : 0;
}
