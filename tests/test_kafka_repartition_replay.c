/* Exactly-once state downstream of a repartition topic (README "Repartition topics"): an
 * upstream task that dies after its records reached the repartition topic and were counted
 * downstream, but before its input offsets were committed, reads that input again and writes
 * the same records again; the downstream task drops them by their positions and counts each
 * input exactly once.
 *
 * The pipeline: "rin" (2 partitions) -> flat_map "fan" (two records per input: its key "k<n>"
 * and "k<(n + 3) % 10>", so every repartition partition hears from both upstream tasks, and a
 * message has records at index 0 and 1) -> count per key "counts" (state on disk) -> "rout".
 * It runs as a child process (self_exec.h) that reports each task state write on stdout and
 * its stats when it stops; a test hook (runtime/test_hooks.h) kills it right after a
 * downstream task's state write whose position moved, before the offset commit that follows.
 * BROOK_TEST_SEED replays the random kills; BROOK_TEST_LOG=1 shows logs. */
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
#include "kafka/repartition.h"
#include "kafka_helpers.h"
#include "pipeline_child.h"
#include "replay_counts.h"
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

static const char *const other_key[N_KEYS] = {"k3", "k4", "k5", "k6", "k7",
                                              "k8", "k9", "k0", "k1", "k2"};

/* Two records per input, both copies of it (so they keep its trace): its own key and another. */
static brook_err_t fan(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  int k = rc_key_index(rec->key, rec->key_len);
  if (k < 0)
    return BROOK_ERR_CORRUPT;
  brook_err_t err = brook_emit(ctx, rec);
  brook_record_t o = *rec;
  o.key = other_key[k];
  o.key_len = strlen(other_key[k]);
  return err < 0 ? err : brook_emit(ctx, &o);
}

/* ---- the child ---- */

static const char *kill_armed_by;
static int writes;
static int64_t last_written[2] = {-1, -1};

/* How far downstream task q's state got: the sum of the upstream offsets it applied (its
 * upstream positions, kafka/repartition.h; -1: none). Its own input position moves with
 * watermark records too. */
static int64_t upstream_progress(const void *positions, size_t len) {
  size_t at = 0;
  int64_t sum = -1;
  bk_position_t e;
  while (bk_positions_next(positions, len, &at, &e))
    if (e.name_len > BK_KRP_UPSTREAM_NAME && e.name[0] == BK_KRP_UPSTREAM_TAG)
      sum = (sum < 0 ? 0 : sum) + e.offset;
  return sum;
}

/* Downstream task q (repartition partition q) is task id 2q + 1 (runtime/task_ids.h). */
static void after_state_write(int32_t task, const void *positions, size_t len) {
  int32_t q = (task - 1) / 2;
  int64_t at = task % 2 == 1 ? upstream_progress(positions, len) : -1;
  printf("written %d (task %d at %lld)\n", ++writes, (int)task, (long long)at);
  fflush(stdout);
  struct stat st;
  if (at >= 0 && last_written[q] >= 0 && at > last_written[q] && strcmp(kill_armed_by, "-") != 0 &&
      stat(kill_armed_by, &st) == 0)
    raise(SIGKILL); /* between the task's state write and the offset commit */
  if (at >= 0)
    last_written[q] = at;
}

/* argv: BOOTSTRAP GROUP STATE_DIR KILL_ARMED_BY. Runs until SIGTERM (then prints its replay
 * stats); exit 0 if the run ended OK. */
static int replay_child_main(int argc, char **argv) {
  pc_handle_sigterm();
  if (argc != 4)
    return 2;
  kill_armed_by = argv[3];
  bk_test_after_state_write = after_state_write;
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return 2;
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = argv[0];
  so.group_id = argv[1];
  so.topics = (const char *const[]){"rin", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "counts";
  brook_stream_t *fanned =
      brook_stream_set_name(brook_flat_map(brook_source_kafka(t, "rin", &so), fan, NULL), "fan");
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = argv[0];
  ko.topic = "rout";
  ko.properties = (const char *const[]){"linger.ms", "5", NULL};
  brook_sink_kafka(brook_count(fanned, &ao), "rout", &ko);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100;
  ro.state_dir = argv[2];
  ro.on_task_state = pc_report_running;
  if (getenv("BROOK_TEST_LOG")) {
    ro.log = log_to_stderr;
    ro.log_opaque = (void *)"child";
  }
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK) {
    fprintf(stderr, "child: %s\n", brook_topology_last_error(t));
    return 2;
  }
  pc_set_runtime(rt);
  brook_err_t err = brook_runtime_run(rt);
  if (err != BROOK_OK)
    fprintf(stderr, "child: %s: %s\n", brook_errname(err), brook_runtime_last_error(rt));
  brook_runtime_stats_t st;
  st.struct_size = sizeof(st);
  if (brook_runtime_stats(rt, &st) == BROOK_OK) {
    printf("dropped %llu unpositioned %llu\n", (unsigned long long)st.repartition_replays_dropped,
           (unsigned long long)st.repartition_records_unpositioned);
    fflush(stdout);
  }
  pc_set_runtime(NULL);
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err == BROOK_OK ? 0 : 1;
}

/* ---- the test's side ---- */

typedef struct child {
  pid_t pid;
  child_lines_t out;
  long long dropped, unpositioned; /* from its last line, once it stopped */
} child_t;

static void spawn_child(child_t *c, const char *group, const char *dir, const char *armed_by) {
  c->out.used = 0;
  c->dropped = c->unpositioned = -1;
  c->pid = self_exec_spawn_piped(
      (const char *const[]){"--replay-child", broker.bootstrap, group, dir, armed_by, NULL},
      &c->out.fd);
}

/* Stops the child with `sig` (0: waits for it to end on its own); reads its stats line. */
static int end_child(child_t *c, int sig) {
  int code = self_exec_end(c->pid, sig, WAIT_MS);
  char line[128];
  while (child_read_line(&c->out, line, sizeof(line), 200) == 0)
    sscanf(line, "dropped %lld unpositioned %lld", &c->dropped, &c->unpositioned);
  close(c->out.fd);
  return code;
}

/* Once the restarted child's tasks run, one more round of input (10 per key); waits until
 * every key's count reached `want` (with it, 2 per input) in the output, stops the child,
 * reads the rest and checks that no key passed it. */
static void expect_exact_counts(rd_kafka_t *r, rc_maxes_t *x, child_t *c, int64_t want) {
  rc_wait_running(&c->out, 4, WAIT_MS);
  kh_produce(broker.bootstrap, "rin", "m", 100000, 10 * N_KEYS, N_KEYS);
  want += 20;
  rc_read_until(r, x, want, WAIT_MS);
  assert_int_equal(end_child(c, SIGTERM), 0);
  kh_read(r, 1 << 30, 1500, rc_on_out, x); /* whatever the stop wrote */
  rc_expect_exact(x, want);
}

/* The highest upstream offset of input partition `p` that downstream task q's stored state
 * covers (its upstream positions, kafka/repartition.h), or -1. */
static int64_t stored_upstream(const char *dir, const char *group, int32_t q, int32_t p) {
  char name[16], topic[256];
  snprintf(name, sizeof(name), "1_%d", (int)q);
  snprintf(topic, sizeof(topic), "%s-fan-repartition", group);
  bk_task_db_t *db = NULL;
  bk_errmsg_t why;
  if (bk_task_db_open(&db, dir, name, NULL, NULL, &why) != BROOK_OK)
    fail_msg("%s", why.text);
  const void *data;
  size_t len, at = 0, tl = strlen(topic);
  int64_t most = -1;
  bk_position_t e;
  if (bk_task_db_positions(db, &data, &len) == BROOK_OK)
    while (bk_positions_next(data, len, &at, &e))
      if (e.name_len == BK_KRP_UPSTREAM_NAME + tl && e.name[0] == BK_KRP_UPSTREAM_TAG &&
          memcmp(e.name + BK_KRP_UPSTREAM_NAME, topic, tl) == 0 &&
          (int32_t)bk_krp_get32(e.name + 5) == p && e.offset > most)
        most = e.offset;
  bk_task_db_close(db);
  return most;
}

static void rp_topic_for(const char *group) {
  assert_int_equal(broker_cmd(&broker, "topic %s-fan-repartition 2", group), 0);
}

static int all_committed(void *group) {
  return kh_committed(broker.bootstrap, group, "rin", 0) +
             kh_committed(broker.bootstrap, group, "rin", 1) ==
         1000;
}

/* The kill lands where the crash does: the upstream tasks' records reached the
 * repartition topic and were counted (the downstream state was written), and their input
 * offsets were not committed (the broker refuses every OffsetCommit from the moment the kill
 * is armed: injected errors). The upstream tasks restart without their local positions (as
 * on another instance: their directories are removed), so they read that input again from
 * the group's offsets and write its records again; the counts must not change. */
static void test_killed_after_produce_before_offset_commit(void **state) {
  (void)state;
  const char *group = "between";
  rp_topic_for(group);
  char *dir = temp_dir_new("kafka_rp_replay");
  kh_produce(broker.bootstrap, "rin", "a", 0, 1000, N_KEYS);
  child_t c;
  char armed[600];
  snprintf(armed, sizeof(armed), "%s/kill-armed", dir);
  spawn_child(&c, group, dir, armed);
  /* The first round counted and committed, everywhere. */
  rd_kafka_t *r = kh_reader(broker.bootstrap, "rout", 2);
  rc_maxes_t x = {{0}};
  rc_read_until(r, &x, 2 * 100, WAIT_MS);
  if (!wait_until(all_committed, (void *)group, WAIT_MS))
    fail_msg("the group's offsets were not committed");
  assert_int_equal(broker_cmd(&broker, "error 8 7 100000"), 0); /* OffsetCommit: timed out */
  FILE *f = fopen(armed, "w");
  assert_non_null(f);
  fclose(f);
  kh_produce(broker.bootstrap, "rin", "b", 1000, 1000, N_KEYS);
  assert_int_equal(end_child(&c, 0), 128 + SIGKILL);
  assert_int_equal(broker_cmd(&broker, "clear 8"), 0);
  /* The upstream tasks restart where their local state is not (another machine): from the
   * group's offsets. Their directories hold no state, only the input positions they read. */
  for (int p = 0; p < 2; p++) {
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/0_%d", dir, p);
    temp_dir_free(strdup(sub));
  }
  /* Downstream state covers upstream input the group has not committed: the restarted
   * upstream tasks write those records again. */
  int behind = 0;
  for (int32_t p = 0; p < 2; p++) {
    int64_t committed = kh_committed(broker.bootstrap, group, "rin", p);
    for (int32_t q = 0; q < 2; q++) {
      int64_t applied = stored_upstream(dir, group, q, p);
      fprintf(stderr, "input partition %d: group offset %lld, applied by task 1_%d up to %lld\n",
              (int)p, (long long)committed, (int)q, (long long)applied);
      behind += applied >= committed;
    }
  }
  assert_true(behind > 0);
  spawn_child(&c, group, dir, "-");
  expect_exact_counts(r, &x, &c, 2 * 200);
  kh_reader_close(r);
  fprintf(stderr, "replays dropped %lld, records without a position %lld\n", c.dropped,
          c.unpositioned);
  assert_true(c.dropped > 0);
  assert_int_equal(c.unpositioned, 0);
  temp_dir_free(dir);
}

static uint64_t seed;

/* Killed by the test at seeded moments (after 1..4 state writes), three times, with input
 * flowing: exact again. */
static void test_killed_at_random(void **state) {
  (void)state;
  const char *group = "random";
  rp_topic_for(group);
  char *dir = temp_dir_new("kafka_rp_replay");
  uint64_t rng = seed;
  child_t c;
  for (int round = 0; round < 3; round++) {
    spawn_child(&c, group, dir, "-");
    kh_produce(broker.bootstrap, "rin", "r", round * 1000, 1000, N_KEYS);
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    int n = 1 + (int)((rng >> 33) % 4);
    rc_wait_written(&c.out, n, WAIT_MS);
    assert_int_equal(end_child(&c, SIGKILL), 128 + SIGKILL);
  }
  spawn_child(&c, group, dir, "-");
  rd_kafka_t *r = kh_reader(broker.bootstrap, "rout", 2);
  rc_maxes_t x = {{0}};
  expect_exact_counts(r, &x, &c, 2 * 300);
  kh_reader_close(r);
  temp_dir_free(dir);
}

static int setup(void **state) {
  (void)state;
  const char *const topics[] = {"rin:2", "rout:2", NULL};
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
  if (argc > 1 && strcmp(argv[1], "--replay-child") == 0)
    return replay_child_main(argc - 2, argv + 2);
  const char *s = getenv("BROOK_TEST_SEED");
  seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
  fprintf(stderr, "seed %llu (BROOK_TEST_SEED replays it)\n", (unsigned long long)seed);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_killed_after_produce_before_offset_commit, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_killed_at_random, setup, teardown),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
