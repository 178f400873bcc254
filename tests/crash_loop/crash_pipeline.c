/* The crash-loop harness's child pipeline. See crash_pipeline.h. */
#include "crash_loop/crash_pipeline.h"

#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <brook/brook.h>
#include <brook/kafka.h>
#include <uv.h>

#include "pipeline_child.h"
#include "runtime/test_hooks.h"

const char *const cp_stores[][2] = {{CP_NODE_COUNT, "aggregate"}, {CP_NODE_COUNT, "timers"},
                                    {CP_NODE_WINDOW, "window"},   {CP_NODE_WINDOW, "window_order"},
                                    {CP_NODE_WINDOW, "timers"},   {NULL, NULL}};

#define MAX_TASKS 256

typedef struct child {
  const char *bootstrap, *group, *instance, *state_dir, *arm_file;
  brook_runtime_t *rt;
  uv_timer_t probe;
  int running;               /* tasks RUNNING now */
  int ready;                 /* "ready" said */
  uint64_t moved[MAX_TASKS]; /* per task: sum of the offsets of its last state write */
} child_t;

static child_t child; /* one per process: the hooks have no opaque */

/* One line to stdout in one write (lines of the hooks and the loop never interleave). */
static void say(const char *fmt, ...) {
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  for (ssize_t off = 0, w; off < n; off += w)
    if ((w = write(STDOUT_FILENO, line + off, (size_t)(n - off))) <= 0)
      return;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes the positions (runtime/positions.h encoding, version 1) as " TOPIC:P=OFF" items into
 * out[cap]; returns the sum of the offsets (0 for an encoding it does not know). */
/* Whether a stored position's name is an input topic's: the positions also hold brook's own
 * entries (a repartition reader's upstream positions, "<node>#wm" watermarks, changelog
 * offsets), whose names use bytes a topic name cannot have. */
static int topic_name(const char *name, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
      return 0;
  return len > 0;
}

static uint64_t describe_positions(const unsigned char *p, size_t len, char *out, size_t cap) {
  out[0] = '\0';
  if (len < 5 || p[0] != 1)
    return 0;
  uint32_t n = be32(p + 1);
  size_t at = 5, used = 0;
  uint64_t sum = 0;
  for (uint32_t i = 0; i < n && at + 2 <= len; i++) {
    size_t tl = (size_t)p[at] << 8 | p[at + 1];
    if (at + 2 + tl + 12 > len)
      break;
    const char *topic = (const char *)p + at + 2;
    int32_t part = (int32_t)be32(p + at + 2 + tl);
    uint64_t off = (uint64_t)be32(p + at + 6 + tl) << 32 | be32(p + at + 10 + tl);
    if (!topic_name(topic, tl)) {
      at += 2 + tl + 12;
      continue;
    }
    sum += off;
    int w = snprintf(out + used, cap - used, " %.*s:%d=%lld", (int)tl, topic, (int)part,
                     (long long)off);
    if (w > 0 && (size_t)w < cap - used)
      used += (size_t)w;
    at += 2 + tl + 12;
  }
  return sum;
}

/* runtime/test_hooks.h: after a task's state write, before the offset commit (worker thread;
 * one worker here). */
static void after_state_write(int32_t task, const void *positions, size_t len) {
  char desc[3072];
  uint64_t sum = describe_positions(positions, len, desc, sizeof(desc));
  say("written %d%s", (int)task, desc);
  int moved = task >= 0 && task < MAX_TASKS && sum > child.moved[task];
  if (task >= 0 && task < MAX_TASKS)
    child.moved[task] = sum;
  struct stat st;
  if (moved && child.arm_file && stat(child.arm_file, &st) == 0)
    raise(SIGKILL); /* between this state write and the offset commit after it */
}

static void on_task_state(int32_t task, int old_state, int new_state, const char *reason,
                          void *opaque) {
  (void)reason, (void)opaque;
  child.running += (new_state == BROOK_TASK_RUNNING) - (old_state == BROOK_TASK_RUNNING);
  say("task %d %d %d", (int)task, old_state, new_state);
}

static void on_log(int level, const char *msg, void *opaque) {
  fprintf(stderr, "[%s %d] %s\n", (const char *)opaque, level, msg);
}

/* Every 20 ms on the loop: "ready" once a task runs and a batch went through; the timer goes
 * once the runtime is done, so that the loop ends. */
static void probe(uv_timer_t *t) {
  if (brook_runtime_done(child.rt)) {
    uv_close((uv_handle_t *)t, NULL);
    return;
  }
  if (child.ready || child.running == 0)
    return;
  brook_runtime_stats_t st;
  st.struct_size = sizeof(st);
  if (brook_runtime_stats(child.rt, &st) == BROOK_OK && st.batches > 0) {
    child.ready = 1;
    say("ready");
  }
}

static brook_err_t key_of_value(const brook_record_t *rec, const void **key, size_t *key_len,
                                brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value;
  *key_len = rec->value_len;
  return BROOK_OK;
}

static brook_err_t build(brook_topology_t *t) {
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = child.bootstrap;
  so.group_id = child.group;
  so.topics = (const char *const[]){CP_TOPIC_IN, NULL};
  /* A short session: a killed member's partitions move on quickly; frequent heartbeats let
   * the survivors rejoin in time (the mock broker waits session.timeout.ms - 1 s at a join). */
  so.properties = (const char *const[]){"session.timeout.ms", CP_SESSION_TIMEOUT_MS,
                                        "heartbeat.interval.ms", "300", NULL};
  brook_stream_t *by = brook_key_by(brook_source_kafka(t, CP_TOPIC_IN, &so), key_of_value, NULL);
  brook_stream_set_name(by, CP_NODE_KEY);

  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = CP_NODE_COUNT;
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = CP_NODE_WINDOW;
  wo.grace = CP_GRACE_MS;
  brook_window_t win = brook_window_tumbling(CP_WINDOW_MS);
  brook_aggregator_t count = brook_agg_count();

  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = child.bootstrap;
  ko.properties = (const char *const[]){"linger.ms", "5", NULL};
  ko.topic = CP_TOPIC_COUNTS;
  brook_err_t err = brook_sink_kafka(brook_count(by, &ao), "counts_out", &ko);
  ko.topic = CP_TOPIC_WINDOWS;
  if (err == BROOK_OK)
    err = brook_sink_kafka(brook_window_aggregate(by, &win, &count, &wo), "windows_out", &ko);
  return err == BROOK_OK ? brook_topology_validate(t) : err;
}

static int parse(int argc, char **argv) {
  child.instance = "a";
  for (int i = 0; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (strcmp(k, "--bootstrap") == 0)
      child.bootstrap = v;
    else if (strcmp(k, "--group") == 0)
      child.group = v;
    else if (strcmp(k, "--instance") == 0)
      child.instance = v;
    else if (strcmp(k, "--state-dir") == 0)
      child.state_dir = v;
    else if (strcmp(k, "--arm-file") == 0)
      child.arm_file = v;
    else
      return -1;
  }
  return argc % 2 == 0 && child.bootstrap && child.group ? 0 : -1;
}

int crash_pipeline_main(int argc, char **argv) {
  pc_handle_sigterm();
  if (parse(argc, argv) != 0) {
    fprintf(stderr, "usage: crash_pipeline --bootstrap HOST:PORT --group G [--instance NAME] "
                    "[--state-dir DIR] [--arm-file PATH]\n");
    return 2;
  }
  bk_test_after_state_write = after_state_write;
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return 2;
  if (build(t) != BROOK_OK) {
    fprintf(stderr, "crash_pipeline %s: %s\n", child.instance, brook_topology_last_error(t));
    brook_topology_free(t);
    return 2;
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100;
  ro.state_dir = child.state_dir;
  ro.changelogs = 1; /* a task moved to the other instance, or state in memory, restores */
  ro.on_task_state = on_task_state;
  if (getenv("BROOK_TEST_LOG")) {
    ro.log = on_log;
    ro.log_opaque = (void *)child.instance;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  if (brook_runtime_new(&child.rt, t, &ro) != BROOK_OK) {
    fprintf(stderr, "crash_pipeline %s: %s\n", child.instance, brook_topology_last_error(t));
    brook_topology_free(t);
    uv_loop_close(&loop);
    return 2;
  }
  uv_timer_init(&loop, &child.probe);
  uv_timer_start(&child.probe, probe, 20, 20);
  brook_err_t err = brook_runtime_start(child.rt, &loop);
  if (err == BROOK_OK) {
    pc_set_runtime(child.rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    pc_set_runtime(NULL);
    err = brook_runtime_status(child.rt);
  } else {
    uv_close((uv_handle_t *)&child.probe, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (err != BROOK_OK)
    fprintf(stderr, "crash_pipeline %s: %s: %s\n", child.instance, brook_errname(err),
            brook_runtime_last_error(child.rt));
  brook_runtime_free(child.rt);
  brook_topology_free(t);
  int closed = uv_loop_close(&loop) == 0;
  return err == BROOK_OK && closed ? 0 : 1;
}
