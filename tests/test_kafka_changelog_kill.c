/* Changelogs through crashes and hand-overs (runtime option changelogs, in-memory state: only
 * the changelogs remember), a count per key over a 2-partition topic as child processes
 * writing to topic "out":
 *   - killed (SIGKILL) between a changelog write and its marker (every record of the commit
 *     acknowledged, the marker not produced: a test hook in the changelog writer): the
 *     restart drops the unfinished commit, resumes the input at the last marker's positions
 *     and ends with the exact counts;
 *   - killed between the marker and the offset commit (a hook once the commit's changelogs are
 *     acknowledged): the group's offsets lag the marker, the restart resumes at the marker's
 *     positions, exact counts (reading from the group's offsets would count records twice);
 *   - hand-over: a second member joins, a task moves to it and its counts continue from their
 *     values (they do not restart at zero).
 * The children report "running <task>" on stdout; the test waits on those lines and on the
 * output topic with deadlines. BROOK_TEST_LOG=1 shows the children's logs. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <brook/kafka.h>
#include <librdkafka/rdkafka.h>

#include "broker_proc.h"
#include "kafka/changelog_tasks.h"
#include "kafka/changelog_writer.h"
#include "kafka_helpers.h"
#include "key_counts.h"
#include "pipeline_child.h"
#include "self_exec.h"
#include "tempfiles.h"
#include "wait.h"

#define N_KEYS 10
#define WAIT_MS 60000

static broker_proc_t broker;

/* ---- the child: "in" -> count per key -> "out" ---- */

static const char *kill_armed_by; /* once this file exists, the child kills itself at its hook */
static uint64_t last_records[2];

static int armed(void) {
  struct stat st;
  return strcmp(kill_armed_by, "-") != 0 && stat(kill_armed_by, &st) == 0;
}

/* Every record of a commit with new records acknowledged, its marker not produced yet. */
static void before_markers(int32_t partition, uint64_t epoch, uint64_t records) {
  (void)epoch;
  int grew = partition >= 0 && partition < 2 && records > last_records[partition];
  if (partition >= 0 && partition < 2)
    last_records[partition] = records;
  if (grew && armed())
    raise(SIGKILL);
}

/* A commit's changelogs acknowledged (markers too), its offsets not committed yet. */
static int acked_commits;
static void after_acked(int32_t task, uint64_t epoch) {
  (void)task, (void)epoch;
  if (++acked_commits > 2 && armed())
    raise(SIGKILL);
}

/* argv: BOOTSTRAP GROUP MODE KILL_ARMED_BY STATE_DIR; MODE "marker", "offsets" or "-",
 * STATE_DIR "-" for state in memory. Runs until SIGTERM; exit 0 if the run ended OK. */
static int child_main(int argc, char **argv) {
  pc_handle_sigterm();
  if (argc != 5)
    return 2;
  kill_armed_by = argv[3];
  if (strcmp(argv[2], "marker") == 0)
    bk_test_before_markers = before_markers;
  else if (strcmp(argv[2], "offsets") == 0)
    bk_test_after_changelog_acked = after_acked;
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return 2;
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = argv[0];
  so.group_id = argv[1];
  so.topics = (const char *const[]){"in", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "counts";
  brook_stream_t *c = brook_count(brook_source_kafka(t, "in", &so), &ao);
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = argv[0];
  ko.topic = "out";
  ko.properties = (const char *const[]){"linger.ms", "5", NULL};
  brook_sink_kafka(c, "out", &ko);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100;
  ro.changelogs = 1;
  ro.state_dir = strcmp(argv[4], "-") != 0 ? argv[4] : NULL;
  ro.on_task_state = kc_report_running;
  if (getenv("BROOK_TEST_LOG")) {
    ro.log = kc_log_to_stderr;
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
  pc_set_runtime(NULL);
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err == BROOK_OK ? 0 : 1;
}

static const char *state_dir = "-"; /* the children's (one test at a time) */

static void spawn_child(kc_child_t *c, const char *group, const char *mode, const char *armed_by) {
  c->out.used = 0;
  c->pid = self_exec_spawn_piped((const char *const[]){"--changelog-child", broker.bootstrap, group,
                                                       mode, armed_by, state_dir, NULL},
                                 &c->out.fd);
}

/* Reads the output until every key's count reached `want` (deadline), lets the children
 * stop, reads the rest and checks that no key passed it. */
static void expect_exact_counts(rd_kafka_t *r, kc_child_t *cs, int n, int64_t want) {
  kc_maxes_t x = {.n_keys = N_KEYS};
  long long deadline = kh_now_ms() + WAIT_MS;
  while (!kc_reached(&x, want) && kh_now_ms() < deadline)
    kh_read(r, 1 << 30, 200, kc_on_out, &x);
  for (int i = 0; i < n; i++)
    assert_int_equal(kc_end_child(&cs[i], SIGTERM, WAIT_MS), 0);
  kh_read(r, 1 << 30, 1500, kc_on_out, &x); /* whatever the stop wrote */
  kc_expect_max(&x, want);
}

static int both_committed(void *group) {
  return kh_committed(broker.bootstrap, group, "in", 0) >= 0 &&
         kh_committed(broker.bootstrap, group, "in", 1) >= 0;
}

/* Runs a child armed to kill itself at `mode`'s hook once more input came: after the kill, a
 * restart ends with the exact counts. */
static void killed_at(const char *group, const char *mode) {
  char armed_path[128];
  snprintf(armed_path, sizeof(armed_path), "/tmp/brook-changelog-kill-%d-%s", (int)getpid(), mode);
  unlink(armed_path);
  kh_produce(broker.bootstrap, "in", "a", 0, 1000, N_KEYS);
  kc_child_t c;
  spawn_child(&c, group, mode, armed_path);
  if (!wait_until(both_committed, (void *)group, WAIT_MS))
    fail_msg("the group's offsets were not committed");
  FILE *f = fopen(armed_path, "w");
  assert_non_null(f);
  fclose(f);
  kh_produce(broker.bootstrap, "in", "b", 1000, 1000, N_KEYS);
  assert_int_equal(kc_end_child(&c, 0, WAIT_MS), 128 + SIGKILL); /* the hook killed it */
  unlink(armed_path);
  for (int32_t p = 0; p < 2; p++)
    fprintf(stderr, "after the kill: partition %d, group offset %lld\n", (int)p,
            (long long)kh_committed(broker.bootstrap, group, "in", p));
  spawn_child(&c, group, "-", "-");
  kc_wait_running(&c, 2, 0, WAIT_MS);
  kh_produce(broker.bootstrap, "in", "m", 100000, 10 * N_KEYS, N_KEYS);
  rd_kafka_t *r = kh_reader(broker.bootstrap, "out", 2);
  expect_exact_counts(r, &c, 1, 210);
  kh_reader_close(r);
}

static void test_killed_between_changelog_write_and_marker(void **state) {
  (void)state;
  killed_at("marker", "marker");
}

static void test_killed_between_marker_and_offset_commit(void **state) {
  (void)state;
  killed_at("offsets", "offsets");
}

/* The same kills with the RocksDB backend: the local state and the changelogs' tail. */
static void killed_on_disk(const char *group, const char *mode) {
  char *dir = temp_dir_new("changelog_kill");
  state_dir = dir;
  killed_at(group, mode);
  state_dir = "-";
  temp_dir_free(dir);
}

static void test_killed_before_marker_state_on_disk(void **state) {
  (void)state;
  killed_on_disk("diskm", "marker");
}

static void test_killed_before_offsets_state_on_disk(void **state) {
  (void)state;
  killed_on_disk("disko", "offsets");
}

/* A second member joins: a task moves to it, restores, and its keys' counts continue. */
static void test_hand_over_continues_counts(void **state) {
  (void)state;
  kh_produce(broker.bootstrap, "in", "a", 0, 1000, N_KEYS);
  kc_child_t c[2];
  spawn_child(&c[0], "handover", "-", "-");
  kc_wait_running(&c[0], 2, 0, WAIT_MS);
  if (!wait_until(both_committed, (void *)"handover", WAIT_MS))
    fail_msg("the group's offsets were not committed");
  spawn_child(&c[1], "handover", "-", "-");
  kc_wait_running(&c[1], 1, 0, WAIT_MS); /* a task moved to it and was restored */
  kh_produce(broker.bootstrap, "in", "b", 1000, 10 * N_KEYS, N_KEYS);
  rd_kafka_t *r = kh_reader(broker.bootstrap, "out", 2);
  expect_exact_counts(r, c, 2, 110);
  kh_reader_close(r);
}

static int setup(void **state) {
  (void)state;
  const char *const topics[] = {"in:2",
                                "out:2",
                                "marker-counts-aggregate-changelog:2",
                                "offsets-counts-aggregate-changelog:2",
                                "handover-counts-aggregate-changelog:2",
                                "diskm-counts-aggregate-changelog:2",
                                "disko-counts-aggregate-changelog:2",
                                NULL};
  assert_int_equal(broker_start(&broker, 1, topics, NULL), 0);
  self_exec_broker = &broker;
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--changelog-child") == 0)
    return child_main(argc - 2, argv + 2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_killed_between_changelog_write_and_marker, setup,
                                      self_exec_teardown),
      cmocka_unit_test_setup_teardown(test_killed_between_marker_and_offset_commit, setup,
                                      self_exec_teardown),
      cmocka_unit_test_setup_teardown(test_killed_before_marker_state_on_disk, setup,
                                      self_exec_teardown),
      cmocka_unit_test_setup_teardown(test_killed_before_offsets_state_on_disk, setup,
                                      self_exec_teardown),
      cmocka_unit_test_setup_teardown(test_hand_over_continues_counts, setup, self_exec_teardown),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
