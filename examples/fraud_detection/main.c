/* fraud_detection: card payments from Kafka in, fraud alerts to Kafka out.
 *
 * Reads payments ("card-00042,1250,grocery,1767225600123", as tools/paygen.c writes them)
 * from the payments topic in consumer group fraud-detection, counts each card's payments and
 * their total in 60-second windows every 10 seconds of event time, and writes an alert to the
 * alerts topic for every window with too many payments (>= 6) or too much money (>= 2500.00).
 * Payments it cannot read go to payments.dlq with headers saying why. The pipeline is in
 * pipeline.c.
 *
 * The pipeline runs on this program's own libuv loop (brook_runtime_start), next to the
 * program's handles: a timer printing a status line every second and SIGINT/SIGTERM
 * handlers that stop the pipeline cleanly (deliver what is in flight, commit, leave the
 * group). At the end it prints a summary.
 *
 *   fraud_detection --brokers LIST [--group ID] [--topic NAME] [--exit-when-idle SECONDS]
 *                   [--alerted-list FILE] [--state-dir DIR] [-X KEY=VALUE]...
 *
 * With --state-dir the operators' state is kept on disk (runtime option state_dir, RocksDB)
 * and committed with the input positions it covers: a process killed at any moment and
 * started again on the same directory continues where its state ends, instead of at zero.
 *
 * Exit status: 0 after a clean stop, 1 if the pipeline failed, 2 on bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brook/brook.h>
#include <uv.h>

#include "pipeline.h"

#define MAX_PROPERTIES 32 /* -X options */

typedef struct app {
  uv_loop_t loop;
  uv_timer_t status_timer;
  uv_signal_t sigint, sigterm;
  brook_runtime_t *rt;
  pipeline_opts_t po;
  pipeline_counts_t counts;
  uint64_t exit_when_idle_ms; /* 0: run until stopped by a signal */

  /* The status line. */
  uint64_t started_ms;
  uint64_t payments_seen, payments_at_last_tick;
  uint64_t last_payment_ms; /* loop time the count last grew */
  int stopping;

  /* The outcome, saved by on_done. */
  brook_err_t status;
  char error[512];
  brook_runtime_stats_t stats;
} app_t;

/* Payments consumed so far: the records the source produced plus those it dead-lettered
 * (records_dead_lettered: the source checks that values are UTF-8 and that message timestamps
 * are within its bounds; the sinks have no dead-letter topic, so they add nothing to it). */
static uint64_t payments_read(const brook_runtime_stats_t *st) {
  return st->records_in + st->records_dead_lettered;
}

/* Malformed payments sent to the dead-letter topic: invalid UTF-8 or a timestamp out of bounds
 * (by the source) and unparsable (failed in parse_payment, routed by the error policy to the
 * error stream, whose Kafka sink writes them to the same topic). */
static uint64_t dead_letters(const brook_runtime_stats_t *st) {
  return st->records_dead_lettered + st->records_routed;
}

/* The source's dead letters that were not about the timestamp: invalid UTF-8. Every record out
 * of the timestamp bounds is dead-lettered here (on_malformed is DEAD_LETTER). */
static uint64_t not_utf8(const brook_runtime_stats_t *st) {
  return st->records_dead_lettered > st->records_out_of_bounds
             ? st->records_dead_lettered - st->records_out_of_bounds
             : 0;
}

static void stop(app_t *app, const char *reason) {
  if (app->stopping)
    return;
  app->stopping = 1;
  fprintf(stderr, "fraud_detection: %s: stopping\n", reason);
  brook_runtime_stop(app->rt); /* returns at once; on_done follows when it has finished */
}

/* ---- the application's own handles ---- */

/* Every second: one status line; and the --exit-when-idle check. */
static void on_status_timer(uv_timer_t *timer) {
  app_t *app = timer->data;
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  if (brook_runtime_stats(app->rt, &st) != BROOK_OK)
    return;
  uint64_t now = uv_now(&app->loop), read = payments_read(&st);
  if (read != app->payments_seen) {
    app->payments_seen = read;
    app->last_payment_ms = now;
  }
  double secs = (double)(now - app->started_ms) / 1000.0;
  if (read == 0) {
    printf("[%5.0fs] waiting for payments on '%s' (joining consumer group '%s')\n", secs,
           app->po.payments_topic, app->po.group);
  } else {
    /* Event time is the payments' own time (simulated by brook-paygen, so unrelated to the
     * wall clock): how far the closed windows have got tells how far the pipeline is. */
    char closed[9];
    printf("[%5.0fs] %" PRIu64 " payments read (%" PRIu64 "/s), %" PRIu64 " alerts, %" PRIu64
           " dead letters; windows closed up to %s event time\n",
           secs, read, read - app->payments_at_last_tick, app->counts.alerts, dead_letters(&st),
           app->counts.closed_up_to == BROOK_TIME_MIN
               ? "--:--:--"
               : clock_time(app->counts.closed_up_to, closed));
  }
  fflush(stdout);
  app->payments_at_last_tick = read;
  if (app->exit_when_idle_ms && read > 0 && now - app->last_payment_ms >= app->exit_when_idle_ms) {
    char why[64];
    snprintf(why, sizeof(why), "no new payment for %" PRIu64 " s (--exit-when-idle)",
             app->exit_when_idle_ms / 1000);
    stop(app, why);
  }
}

static void on_signal(uv_signal_t *handle, int signum) {
  app_t *app = handle->data;
  /* Stop listening: a second Ctrl-C gets the default action and ends the program at once. */
  uv_signal_stop(handle);
  stop(app, signum == SIGINT ? "interrupted (Ctrl-C again to quit at once)" : "terminated");
}

/* Called on the loop thread once the pipeline has finished and closed its handles. */
static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  app_t *app = opaque;
  app->status = status;
  snprintf(app->error, sizeof(app->error), "%s", brook_runtime_last_error(rt));
  brook_runtime_stats(rt, &app->stats);
  brook_runtime_free(rt); /* allowed here: brook holds nothing on the loop any more */
  app->rt = NULL;
  /* Our handles are the last ones: once they are closed, uv_run returns. */
  uv_close((uv_handle_t *)&app->status_timer, NULL);
  uv_close((uv_handle_t *)&app->sigint, NULL);
  uv_close((uv_handle_t *)&app->sigterm, NULL);
}

/* brook never prints: it hands its log messages (and librdkafka's) to this callback. */
static void on_log(int level, const char *msg, void *opaque) {
  (void)opaque;
  if (level <= BROOK_LOG_WARN)
    fprintf(stderr, "fraud_detection: %s: %s\n", level <= BROOK_LOG_ERROR ? "error" : "warning",
            msg);
}

/* ---- options ---- */

typedef struct cli {
  const char *alerted_list;
  const char *state_dir;               /* NULL: state in memory */
  char *props[2 * MAX_PROPERTIES + 1]; /* -X pairs, NULL-terminated (strings in argv) */
  size_t n_props;
} cli_t;

/* Prints the usage to `f` and returns `status`. */
static int usage(FILE *f, int status) {
  fprintf(f, "usage: fraud_detection --brokers LIST [--group ID] [--topic NAME]\n"
             "                       [--exit-when-idle SECONDS] [--alerted-list FILE] "
             "[--state-dir DIR] [-X KEY=VALUE]...\n"
             "  --brokers LIST          Kafka bootstrap servers, host:port[,host:port...]\n"
             "  --group ID              consumer group (default fraud-detection)\n"
             "  --topic NAME            payments topic (default payments)\n"
             "  --exit-when-idle SECS   stop once no payment has come for SECS seconds\n"
             "  --alerted-list FILE     at the end, write the alerted card ids to FILE\n"
             "  --state-dir DIR         keep the state on disk in DIR (survives a crash)\n"
             "  -X KEY=VALUE            a librdkafka property for every client "
             "(security.protocol, sasl.*, ...)\n");
  return status;
}

/* 0: run, 1: --help, -1: bad usage. */
static int parse_args(int argc, char **argv, app_t *app, cli_t *cli) {
  for (int i = 1; i < argc; i += 2) { /* every option takes a value */
    const char *a = argv[i];
    char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return 1;
    if (!v || !*v)
      return -1;
    if (strcmp(a, "--brokers") == 0) {
      app->po.brokers = v;
    } else if (strcmp(a, "--group") == 0) {
      app->po.group = v;
    } else if (strcmp(a, "--topic") == 0) {
      app->po.payments_topic = v;
    } else if (strcmp(a, "--alerted-list") == 0) {
      cli->alerted_list = v;
    } else if (strcmp(a, "--state-dir") == 0) {
      cli->state_dir = v;
    } else if (strcmp(a, "--exit-when-idle") == 0) {
      char *end;
      errno = 0;
      unsigned long s = strtoul(v, &end, 10);
      if (errno || *end || *v < '0' || *v > '9' || s < 1 || s > 86400)
        return -1;
      app->exit_when_idle_ms = (uint64_t)s * 1000;
    } else if (strcmp(a, "-X") == 0) {
      char *eq = strchr(v, '=');
      if (!eq || eq == v || cli->n_props == MAX_PROPERTIES)
        return -1;
      *eq = '\0'; /* key and value in place */
      cli->props[2 * cli->n_props] = v;
      cli->props[2 * cli->n_props + 1] = eq + 1;
      cli->n_props++;
    } else {
      return -1;
    }
  }
  return app->po.brokers ? 0 : -1;
}

/* ---- main ---- */

static int write_alerted(const card_set_t *cards, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "fraud_detection: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int bad = card_set_write(cards, f) != 0;
  bad |= fclose(f) != 0;
  if (bad)
    fprintf(stderr, "fraud_detection: writing %s failed\n", path);
  return bad ? -1 : 0;
}

static void print_summary(const app_t *app) {
  const brook_runtime_stats_t *st = &app->stats;
  const pipeline_counts_t *c = &app->counts;
  printf("fraud_detection: %" PRIu64 " payments read, %" PRIu64 " malformed to '%s' (%" PRIu64
         " not UTF-8, %" PRIu64 " with a timestamp out of bounds, %" PRIu64
         " not a payment), %" PRIu64 " alerts written to '%s' for %zu cards\n",
         payments_read(st), dead_letters(st), app->po.dlq_topic, not_utf8(st),
         st->records_out_of_bounds, st->records_routed, c->alerts, app->po.alerts_topic,
         c->alerted.n);
  if (c->windows > 0) {
    char closed[9], newest[9];
    printf("  %" PRIu64 " card windows closed, up to %s event time; the newest payment was at "
           "%s, so later windows were still open at the stop\n",
           c->windows, clock_time(c->closed_up_to, closed), clock_time(c->newest_payment, newest));
  }
  if (st->records_late)
    printf("  %" PRIu64 " payments arrived after all their windows had closed (dropped)\n",
           st->records_late);
  if (c->out_of_memory)
    printf("  out of memory: the list of alerted cards is incomplete\n");
}

int main(int argc, char **argv) {
  static app_t app; /* static: large, and its handles must outlive every callback */
  cli_t cli = {0};
  app.po = (pipeline_opts_t){
      .group = "fraud-detection",
      .payments_topic = "payments",
      .alerts_topic = "alerts",
      .dlq_topic = "payments.dlq",
      .alerts_out = stdout,
  };
  int args = parse_args(argc, argv, &app, &cli);
  if (args != 0)
    return args > 0 ? usage(stdout, 0) : usage(stderr, 2);
  app.po.properties = cli.n_props ? (const char *const *)cli.props : NULL;
  pipeline_counts_init(&app.counts);
  app.stats.struct_size = sizeof(app.stats);

  /* The topology: unparsable payments go to the error stream, not fail the pipeline. */
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.error_policy = BROOK_ON_ERROR_ROUTE;
  brook_topology_t *t = NULL;
  brook_err_t err = brook_topology_new(&t, &to);
  if (err != BROOK_OK) {
    fprintf(stderr, "fraud_detection: brook_topology_new: %s\n", brook_strerror(err));
    return 1;
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.on_done = on_done;
  ro.on_done_opaque = &app;
  ro.log = on_log;
  ro.state_dir =
      cli.state_dir; /* every stateful node is named (pipeline.c): state is found by name */
  if ((err = pipeline_build(t, &app.po, &app.counts)) != BROOK_OK ||
      (err = brook_runtime_new(&app.rt, t, &ro)) != BROOK_OK) {
    fprintf(stderr, "fraud_detection: building the pipeline: %s: %s\n", brook_errname(err),
            brook_topology_last_error(t));
    brook_topology_free(t);
    pipeline_counts_free(&app.counts);
    return 1;
  }
  brook_topology_free(t); /* the runtime keeps what it needs */

  /* The application's loop, with its own handles, and the pipeline attached to it. */
  uv_loop_init(&app.loop);
  app.started_ms = uv_now(&app.loop);
  uv_timer_init(&app.loop, &app.status_timer);
  app.status_timer.data = &app;
  uv_timer_start(&app.status_timer, on_status_timer, 1000, 1000);
  uv_signal_init(&app.loop, &app.sigint);
  uv_signal_init(&app.loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  printf("fraud_detection: reading '%s' from %s as consumer group '%s'; alerts to '%s', "
         "malformed payments to '%s'\n",
         app.po.payments_topic, app.po.brokers, app.po.group, app.po.alerts_topic,
         app.po.dlq_topic);
  fflush(stdout);
  if ((err = brook_runtime_start(app.rt, &app.loop)) != BROOK_OK) {
    fprintf(stderr, "fraud_detection: starting: %s: %s\n", brook_errname(err),
            brook_runtime_last_error(app.rt));
    brook_runtime_free(app.rt);
    uv_close((uv_handle_t *)&app.status_timer, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    pipeline_counts_free(&app.counts);
    return 1;
  }
  uv_run(&app.loop, UV_RUN_DEFAULT); /* until on_done has closed our handles */
  int loop_busy = uv_loop_close(&app.loop) != 0;

  int status = 0;
  if (app.status != BROOK_OK) {
    fprintf(stderr, "fraud_detection: the pipeline failed: %s: %s\n", brook_errname(app.status),
            app.error);
    status = 1;
  }
  print_summary(&app);
  if (cli.alerted_list && write_alerted(&app.counts.alerted, cli.alerted_list) != 0)
    status = 1;
  if (loop_busy) { /* brook or this program left a handle open: a bug */
    fprintf(stderr, "fraud_detection: uv_loop_close: handles left open\n");
    status = 1;
  }
  pipeline_counts_free(&app.counts);
  return status;
}
