/* State on disk through Kafka (runtime option state_dir, README "State on disk"): a count per
 * key over a 2-partition topic keeps its counts across runs and crashes, exactly:
 *   - stopped, more input, run again on the same state_dir: the counts continue (they do not
 *     restart at zero) and nothing is counted twice;
 *   - killed (SIGKILL) between a task's state write and the offset commit that follows it (a
 *     test hook in the library, runtime/test_hooks.h): the group's offsets are behind the
 *     stored positions, and the restart resumes at the positions: the final counts equal the
 *     reference exactly (reading from the group's offsets would count records twice);
 *   - killed by the test at seeded moments after state writes, several times: exact again;
 *   - a custom operator's event-time and processing-time timers, set before a stop, fire after
 *     the restart, at their time.
 * Pipelines that are killed run as child processes (self_exec.h); they report each task state
 * write on stdout ("written N"), and the test waits on those lines and on the output topic,
 * with deadlines. BROOK_TEST_SEED replays the kill moments; BROOK_TEST_LOG=1 shows logs. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <brook/kafka.h>
#include <librdkafka/rdkafka.h>

#include "broker_proc.h"
#include "kafka_helpers.h"
#include "key_counts.h"
#include "pipeline_child.h"
#include "runtime/positions.h"
#include "runtime/test_hooks.h"
#include "self_exec.h"
#include "state/task_db.h"
#include "tempfiles.h"
#include "wait.h"

#define N_KEYS KC_KEYS
#define WAIT_MS 60000

static broker_proc_t broker;

static void log_to_stderr(int level, const char *msg, void *opaque) {
  fprintf(stderr, "[%s %d] %s\n", (const char *)opaque, level, msg);
}

/* ---- the pipeline: "in" -> count per key (named, its state on disk) -> sink ---- */

static brook_stream_t *count_pipeline(brook_topology_t *t, const char *bootstrap,
                                      const char *group) {
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){"in", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "counts";
  return brook_count(brook_source_kafka(t, "in", &so), &ao);
}

static brook_runtime_opts_t runtime_opts(const char *state_dir, const char *tag) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100;
  ro.state_dir = state_dir;
  if (getenv("BROOK_TEST_LOG")) {
    ro.log = log_to_stderr;
    ro.log_opaque = (void *)tag;
  }
  return ro;
}

/* ---- in this process: a callback sink keeps the last count of each key ---- */

typedef struct seen {
  int64_t count[N_KEYS];
  int records, stop_at;
  brook_runtime_t *rt;
} seen_t;

static brook_err_t on_count(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  int k = kc_key_index(rec->key, rec->key_len);
  if (k < 0 || rec->value_len != sizeof(int64_t))
    return BROOK_ERR_CORRUPT;
  memcpy(&s->count[k], rec->value, sizeof(int64_t));
  if (++s->records == s->stop_at)
    brook_runtime_stop(s->rt);
  return BROOK_OK;
}

/* Runs the count pipeline until `records` outputs came; returns its stats. */
static brook_runtime_stats_t run_counts(const char *group, const char *state_dir, seen_t *s,
                                        int records) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(
      brook_sink_callback(count_pipeline(t, broker.bootstrap, group), on_count, NULL, s), BROOK_OK);
  brook_runtime_opts_t ro = runtime_opts(state_dir, "counts");
  assert_int_equal(brook_runtime_new(&s->rt, t, &ro), BROOK_OK);
  s->stop_at = records;
  brook_err_t err = brook_runtime_run(s->rt);
  if (err != BROOK_OK)
    fail_msg("run: %s", brook_runtime_last_error(s->rt));
  brook_runtime_stats_t st;
  st.struct_size = sizeof(st);
  assert_int_equal(brook_runtime_stats(s->rt, &st), BROOK_OK);
  brook_runtime_free(s->rt);
  brook_topology_free(t);
  return st;
}

static void test_counts_continue_after_stop(void **state) {
  (void)state;
  char *dir = temp_dir_new("kafka_state");
  kh_produce(broker.bootstrap, "in", "a", 0, 200, N_KEYS);
  seen_t s1 = {{0}, 0, 0, NULL};
  brook_runtime_stats_t st = run_counts("continue", dir, &s1, 200);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(s1.count[k], 20);
  assert_true(st.state_commits >= 1);
  assert_true(st.state_writes >= 2); /* both tasks, at least at the final commit */
  assert_true(st.state_entries_written >= N_KEYS);
  assert_true(st.state_bytes_written > st.state_entries_written);

  kh_produce(broker.bootstrap, "in", "b", 200, 100, N_KEYS);
  seen_t s2 = {{0}, 0, 0, NULL};
  run_counts("continue", dir, &s2, 100);
  assert_int_equal(s2.records, 100); /* the first run's input is not read again */
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(s2.count[k], 30); /* continued from 20, not restarted at 0 */
  temp_dir_free(dir);
}

/* ---- as a child process, with the output in topic "out" ---- */

/* Once this file exists (the test creates it), the child kills itself after the first task
 * state write whose position moved on since the task's previous write ("-": never). */
static const char *kill_armed_by;
static int writes;
static int64_t last_written[2] = {-1, -1};

static void after_state_write(int32_t task, const void *positions, size_t len) {
  int64_t at = -1;
  if (!bk_positions_find(positions, len, "in", task, &at))
    at = -1;
  printf("written %d (task %d at %lld)\n", ++writes, (int)task, (long long)at);
  fflush(stdout);
  struct stat st;
  if (task >= 0 && task < 2 && last_written[task] >= 0 && at > last_written[task] &&
      strcmp(kill_armed_by, "-") != 0 && stat(kill_armed_by, &st) == 0)
    raise(SIGKILL); /* between the task's state write and the offset commit */
  if (task >= 0 && task < 2)
    last_written[task] = at;
}

/* argv: BOOTSTRAP GROUP STATE_DIR KILL_ARMED_BY. Runs until SIGTERM; exit 0 if the run ended
 * OK. */
static int state_child_main(int argc, char **argv) {
  pc_handle_sigterm();
  if (argc != 4)
    return 2;
  kill_armed_by = argv[3];
  bk_test_after_state_write = after_state_write;
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return 2;
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = argv[0];
  ko.topic = "out";
  ko.properties = (const char *const[]){"linger.ms", "5", NULL};
  brook_sink_kafka(count_pipeline(t, argv[0], argv[1]), "out", &ko);
  brook_runtime_opts_t ro = runtime_opts(argv[2], "child");
  ro.on_task_state = pc_report_running;
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK) {
    fprintf(stderr, "child: %s\n", brook_topology_last_error(t));
    return 2;
  }
  pc_set_runtime(rt);
  brook_err_t err = brook_runtime_run(rt);
  if (err != BROOK_OK)
    fprintf(stderr, "child: %s: %s\n", brook_errname(err), brook_runtime_last_error(rt));
  pc_set_runtime(NULL);
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err == BROOK_OK ? 0 : 1;
}

typedef struct child {
  pid_t pid;
  child_lines_t out;
} child_t;

static void spawn_child(child_t *c, const char *group, const char *dir, const char *armed_by) {
  c->out.used = 0;
  c->pid = self_exec_spawn_piped(
      (const char *const[]){"--state-child", broker.bootstrap, group, dir, armed_by, NULL},
      &c->out.fd);
}

static int end_child(child_t *c, int sig) {
  int code = self_exec_end(c->pid, sig, WAIT_MS);
  close(c->out.fd);
  return code;
}

/* Once the restarted child's tasks run, one more round of input (10 per key, after everything
 * else in each partition); waits until every key's count reached `want` (with it) in the
 * output, stops the child, reads the rest and checks that no key passed it. */
static void expect_exact_counts(rd_kafka_t *r, kc_maxes_t *x, child_t *c, int64_t want) {
  kc_wait_running(&c->out, 2, WAIT_MS);
  kh_produce(broker.bootstrap, "in", "m", 100000, 10 * N_KEYS, N_KEYS);
  want += 10;
  kc_read_until(r, x, want, WAIT_MS);
  assert_int_equal(end_child(c, SIGTERM), 0);
  kh_read(r, 1 << 30, 1500, kc_on_out, x); /* whatever the stop wrote */
  kc_expect_exact(x, want);
}

/* The position of partition p of "in" stored in task 0_p's database (-1: none). */
static int64_t stored_position(const char *dir, int32_t p) {
  char name[16];
  snprintf(name, sizeof(name), "0_%d", (int)p);
  bk_task_db_t *db = NULL;
  bk_errmsg_t why;
  if (bk_task_db_open(&db, dir, name, NULL, NULL, &why) != BROOK_OK)
    fail_msg("%s", why.text);
  const void *pos;
  size_t len;
  int64_t at = -1;
  if (bk_task_db_positions(db, &pos, &len) == BROOK_OK &&
      !bk_positions_find(pos, len, "in", p, &at))
    at = -1;
  bk_task_db_close(db);
  return at;
}

static int both_committed(void *group) {
  return kh_committed(broker.bootstrap, group, "in", 0) >= 0 &&
         kh_committed(broker.bootstrap, group, "in", 1) >= 0;
}

static void test_killed_between_state_write_and_offset_commit(void **state) {
  (void)state;
  char *dir = temp_dir_new("kafka_state");
  kh_produce(broker.bootstrap, "in", "a", 0, 1000, N_KEYS);
  child_t c;
  char armed[600];
  snprintf(armed, sizeof(armed), "%s/kill-armed", dir);
  spawn_child(&c, "between", dir, armed);
  /* Both partitions' offsets committed (their tasks' states written before), then the kill
   * armed and more input: the next write of a task that moved on is followed by the kill. */
  if (!wait_until(both_committed, (void *)"between", WAIT_MS))
    fail_msg("the group's offsets were not committed");
  FILE *f = fopen(armed, "w");
  assert_non_null(f);
  fclose(f);
  kh_produce(broker.bootstrap, "in", "b", 1000, 1000, N_KEYS);
  assert_int_equal(end_child(&c, 0), 128 + SIGKILL);
  /* The kill landed between: some task's stored position is past the group's offset. */
  int behind = 0;
  for (int32_t p = 0; p < 2; p++) {
    int64_t stored = stored_position(dir, p),
            committed = kh_committed(broker.bootstrap, "between", "in", p);
    fprintf(stderr, "partition %d: state at %lld, group offset %lld\n", (int)p, (long long)stored,
            (long long)committed);
    behind += committed < stored;
  }
  assert_true(behind > 0);
  spawn_child(&c, "between", dir, "-");
  rd_kafka_t *r = kh_reader(broker.bootstrap, "out", 2);
  kc_maxes_t x = {{0}};
  expect_exact_counts(r, &x, &c, 200);
  kh_reader_close(r);
  temp_dir_free(dir);
}

static uint64_t seed;

static void test_killed_after_random_commits(void **state) {
  (void)state;
  char *dir = temp_dir_new("kafka_state");
  uint64_t rng = seed;
  child_t c;
  for (int round = 0; round < 3; round++) {
    spawn_child(&c, "random", dir, "-");
    kh_produce(broker.bootstrap, "in", "r", round * 1000, 1000, N_KEYS);
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    int n = 1 + (int)((rng >> 33) % 4);
    kc_wait_written(&c.out, n, WAIT_MS);
    assert_int_equal(end_child(&c, SIGKILL), 128 + SIGKILL);
  }
  spawn_child(&c, "random", dir, "-");
  rd_kafka_t *r = kh_reader(broker.bootstrap, "out", 2);
  kc_maxes_t x = {{0}};
  expect_exact_counts(r, &x, &c, 300);
  kh_reader_close(r);
  temp_dir_free(dir);
}

/* ---- timers: a custom operator's, set before a stop, fire after the restart ---- */

#define EVENT_DELAY 1000 /* ms of event time after the record */
#define PROC_DELAY 2500  /* ms of processing time after the record */

typedef struct fired {
  int event[2], proc[2]; /* per key "a", "b": fired in this run */
  int early;             /* fired before their time */
  int records;
  brook_runtime_t *rt;
} fired_t;

static brook_err_t timed_process(brook_ctx_t *ctx, void *st, const brook_record_t *rec) {
  fired_t *f = st;
  f->records++;
  if (rec->key_len != 1 ||
      (((const char *)rec->key)[0] != 'a' && ((const char *)rec->key)[0] != 'b'))
    return BROOK_OK; /* "c", "d": only move the watermark */
  brook_err_t err = brook_timer_set(ctx, BROOK_EVENT_TIME, rec->timestamp + EVENT_DELAY, rec->key,
                                    rec->key_len, 1);
  if (err == BROOK_OK)
    err = brook_timer_set(ctx, BROOK_PROCESSING_TIME, brook_ctx_now(ctx) + PROC_DELAY, rec->key,
                          rec->key_len, 2);
  if (f->records == 2)
    brook_runtime_stop(f->rt); /* both set: stop before any fires */
  return err;
}

static brook_err_t timed_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static brook_err_t timed_on_timer(brook_ctx_t *ctx, void *st, const brook_timer_t *t) {
  fired_t *f = st;
  int k = ((const char *)t->key)[0] - 'a';
  if (t->domain == BROOK_PROCESSING_TIME) {
    f->proc[k]++;
    f->early += brook_ctx_now(ctx) < t->time;
  } else {
    f->event[k]++;
  }
  if (f->proc[0] && f->proc[1] && f->event[0] && f->event[1])
    brook_runtime_stop(f->rt);
  return BROOK_OK;
}

static const brook_operator_t timed_op = {.version = BROOK_OPERATOR_VERSION,
                                          .type_name = "timed",
                                          .open = timed_open,
                                          .process = timed_process,
                                          .on_timer = timed_on_timer};

static brook_err_t ignore(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}

static void run_timed(const char *dir, fired_t *f) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = broker.bootstrap;
  so.group_id = "timers";
  so.topics = (const char *const[]){"tin", NULL};
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "timed"; /* one output (not a sink): it runs per task, its timers in the task's state */
  brook_stream_t *in = brook_source_kafka(t, "tin", &so), *out = NULL;
  assert_int_equal(brook_operator_add(&in, 1, &timed_op, f, &oo, &out), BROOK_OK);
  assert_int_equal(brook_sink_callback(out, ignore, NULL, NULL), BROOK_OK);
  brook_runtime_opts_t ro = runtime_opts(dir, "timers");
  assert_int_equal(brook_runtime_new(&f->rt, t, &ro), BROOK_OK);
  brook_err_t err = brook_runtime_run(f->rt);
  if (err != BROOK_OK)
    fail_msg("run: %s", brook_runtime_last_error(f->rt));
  brook_runtime_free(f->rt);
  brook_topology_free(t);
}

/* One message to topic/partition with an explicit timestamp (ms). */
static void produce_at(const char *topic, int32_t partition, const char *key, int64_t ts) {
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, broker.bootstrap, NULL, NULL, NULL);
  assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                     RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE("v", 1),
                                     RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);
}

static void test_timers_fire_after_restart(void **state) {
  (void)state;
  char *dir = temp_dir_new("kafka_state");
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t t0 = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  produce_at("tin", 0, "a", t0);
  produce_at("tin", 1, "b", t0);
  fired_t f1 = {{0}, {0}, 0, 0, NULL};
  run_timed(dir, &f1); /* sets 4 timers, stops at once */
  assert_int_equal(f1.event[0] + f1.event[1] + f1.proc[0] + f1.proc[1], 0);
  /* Event time moves past the first run's timers on both partitions. */
  produce_at("tin", 0, "c", t0 + 5 * EVENT_DELAY);
  produce_at("tin", 1, "d", t0 + 5 * EVENT_DELAY);
  fired_t f2 = {{0}, {0}, 0, 0, NULL};
  run_timed(dir, &f2); /* stops once the four fired; without them it would never stop */
  assert_int_equal(f2.event[0], 1);
  assert_int_equal(f2.event[1], 1);
  assert_int_equal(f2.proc[0], 1);
  assert_int_equal(f2.proc[1], 1);
  assert_int_equal(f2.early, 0);
  temp_dir_free(dir);
}

static int setup(void **state) {
  (void)state;
  const char *const topics[] = {"in:2", "out:2", "tin:2", NULL};
  assert_int_equal(broker_start(&broker, 1, topics, NULL), 0);
  self_exec_broker = &broker;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  self_exec_kill_all();
  self_exec_broker = NULL;
  return broker_stop(&broker) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--state-child") == 0)
    return state_child_main(argc - 2, argv + 2);
  const char *s = getenv("BROOK_TEST_SEED");
  seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
  fprintf(stderr, "seed %llu (BROOK_TEST_SEED replays it)\n", (unsigned long long)seed);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_counts_continue_after_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_killed_between_state_write_and_offset_commit, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_killed_after_random_commits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timers_fire_after_restart, setup, teardown),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
