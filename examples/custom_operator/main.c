/* custom_operator: runs the heartbeat-absence detector (custom_operator.c) over a simulated
 * stream of heartbeats and prints what it reports.
 *
 *   generator "heartbeats" -> heartbeat_watch --(0)--> callback sink: print SILENT / BACK
 *                                             --(1)--> callback sink: print the reports
 *
 * Four pumps beat every 10 s of event time from 10:00:00 to 10:05:20: pump-3 is quiet from
 * 10:01:00 to 10:02:30, pump-4 stops for good after 10:03:00. One heartbeat has no device id:
 * the operator rejects it and the error policy (SKIP) drops and counts it.
 *
 *   custom_operator [KEY=VALUE]...   operator configuration, e.g. silence=60000
 *                                    (default here: silence=30000 forget_after=120000
 *                                    report_every=10000)
 *
 * The generator finishes in milliseconds, so the periodic report (every 10 s of processing
 * time) rarely has time to fire: the final report comes from end_of_input. Under a long-lived
 * source (Kafka, a push source) the reports come every report_every ms; the test driver test
 * (tests/test_example_custom_operator.c) checks both timers to the millisecond. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brook/brook.h>

#include "custom_operator.h"

#define MAX_CONFIG 16                /* KEY=VALUE arguments */
#define START INT64_C(1795514400000) /* 2026-11-24T10:00:00Z */
#define TICKS 33                     /* 10:00:00 .. 10:05:20, every 10 s */
#define PUMPS 4

static const char *const pumps[PUMPS] = {"pump-1", "pump-2", "pump-3", "pump-4"};

static int pump_beats(int pump, int tick) {
  if (pump == 2) /* pump-3: quiet after 10:01:00, back at 10:02:30 */
    return tick <= 6 || tick >= 15;
  if (pump == 3) /* pump-4: last heartbeat at 10:03:00 */
    return tick <= 18;
  return 1;
}

typedef struct gen {
  int tick, pump, keyless_sent;
} gen_t;

/* The generator: the next heartbeat (key = the pump, no value), in order of event time. */
static brook_err_t next_heartbeat(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  gen_t *g = opaque;
  if (g->tick == 12 && !g->keyless_sent) { /* a broken message: no device id */
    g->keyless_sent = 1;
    *out = (brook_record_t){.timestamp = START + 12 * 10 * BROOK_S};
    return BROOK_OK;
  }
  for (; g->tick < TICKS; g->tick++, g->pump = 0) {
    for (; g->pump < PUMPS; g->pump++) {
      if (!pump_beats(g->pump, g->tick))
        continue;
      const char *id = pumps[g->pump];
      *out = (brook_record_t){.key = id, /* static strings outlive the runtime: no copy */
                              .key_len = strlen(id),
                              .timestamp = START + g->tick * 10 * BROOK_S};
      g->pump++;
      return BROOK_OK;
    }
  }
  return BROOK_DONE;
}

/* "HH:MM:SS" (UTC) of `ts` into buf[9]. */
static const char *clock_time(brook_time_t ts, char buf[9]) {
  int64_t s = ts / BROOK_S % 86400;
  if (s < 0)
    s += 86400;
  snprintf(buf, 9, "%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
  return buf;
}

static brook_err_t print_event(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  heartbeat_event_t e;
  if (rec->value_len != sizeof(e))
    return BROOK_ERR_INVALID_ARG;
  memcpy(&e, rec->value, sizeof(e));
  char at[9], since[9];
  if (e.kind == HEARTBEAT_SILENT)
    printf("%s  %-7.*s SILENT  no heartbeat since %s\n", clock_time(rec->timestamp, at),
           (int)rec->key_len, (const char *)rec->key, clock_time(e.last_seen, since));
  else
    printf("%s  %-7.*s BACK    after %" PRId64 " s of silence\n", clock_time(rec->timestamp, at),
           (int)rec->key_len, (const char *)rec->key, e.silent_ms / BROOK_S);
  return BROOK_OK;
}

static brook_err_t print_report(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  heartbeat_report_t r;
  if (rec->value_len != sizeof(r))
    return BROOK_ERR_INVALID_ARG;
  memcpy(&r, rec->value, sizeof(r));
  char wm[9];
  printf("report: %" PRIu64 " devices, %" PRIu64 " silent, %" PRIu64
         " heartbeats since the last report, watermark %s\n",
         r.devices, r.silent, r.heartbeats,
         r.watermark == BROOK_TIME_MAX ? "end of input" : clock_time(r.watermark, wm));
  return BROOK_OK;
}

static void on_log(int level, const char *msg, void *opaque) {
  (void)opaque;
  if (level <= BROOK_LOG_WARN || getenv("VERBOSE"))
    fprintf(stderr, "custom_operator: %s\n", msg);
}

/* The operator configuration: defaults, then KEY=VALUE arguments (split in place). */
static int parse_config(int argc, char **argv, const char **config) {
  static const char *const defaults[] = {"silence", "30000",        "forget_after",
                                         "120000",  "report_every", "10000"};
  size_t n = 0;
  for (int i = 1; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq || eq == argv[i] || n == 2 * (MAX_CONFIG - 3))
      return -1;
    *eq = '\0';
    config[n++] = argv[i];
    config[n++] = eq + 1;
  }
  /* brook_ctx_config returns the first value for a key: the defaults go after the user's. */
  for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
    config[n++] = defaults[i];
  config[n] = NULL;
  return 0;
}

int main(int argc, char **argv) {
  const char *config[2 * MAX_CONFIG + 1];
  if (parse_config(argc, argv, config) != 0) {
    fprintf(stderr, "usage: %s [KEY=VALUE]...  (silence, report_every, forget_after: ms)\n",
            argv[0]);
    return 2;
  }
  brook_topology_opts_t topts;
  brook_topology_opts_init(&topts);
  topts.error_policy = BROOK_ON_ERROR_SKIP; /* a rejected heartbeat is dropped and counted */
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, &topts) != BROOK_OK)
    return 1;

  gen_t gen = {0};
  brook_stream_t *beats = brook_source_generator(t, "heartbeats", next_heartbeat, &gen, NULL);

  brook_operator_opts_t oopts;
  brook_operator_opts_init(&oopts);
  oopts.name = "heartbeat_watch";
  oopts.config = config; /* copied */
  oopts.n_outputs = 2;
  brook_stream_t *outs[2] = {NULL, NULL};
  brook_operator_add(&beats, 1, &heartbeat_watch_operator, NULL, &oopts, outs);
  brook_sink_callback(outs[0], print_event, NULL, NULL);
  brook_sink_callback(outs[1], print_report, NULL, NULL);

  brook_runtime_opts_t ropts;
  brook_runtime_opts_init(&ropts);
  ropts.log = on_log;
  ropts.batch_size = 8; /* small batches: state and timers carry across them */
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ropts) != BROOK_OK) {
    fprintf(stderr, "custom_operator: %s\n", brook_topology_last_error(t));
    brook_topology_free(t);
    return 1;
  }
  brook_topology_free(t);

  brook_err_t err = brook_runtime_run(rt);
  brook_runtime_stats_t stats = {.struct_size = sizeof(stats)};
  brook_runtime_stats(rt, &stats);
  if (err != BROOK_OK)
    fprintf(stderr, "custom_operator: failed: %s\n", brook_runtime_last_error(rt));
  else
    printf("%" PRIu64 " heartbeats in, %" PRIu64 " skipped (no device id)\n", stats.records_in,
           stats.records_skipped);
  brook_runtime_free(rt);
  return err == BROOK_OK ? 0 : 1;
}
