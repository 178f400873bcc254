/* The crash loop (issue 13's acceptance: exactly-once state under SIGKILL). The pipeline of
 * tests/crash_loop/crash_pipeline.h (Kafka "in" -> key_by through a repartition topic -> a
 * count per key, and a tumbling window with grace -> Kafka) runs as child processes while
 * this driver:
 *   - produces a seeded input (crash_input.h: event times out of order within the grace, a
 *     phase 2 with records late beyond it, once phase 1's windows are all out);
 *   - kills an instance with SIGKILL at random, 0.5-3.5 s after it became ready (tasks
 *     RUNNING, a batch through), and restarts it; a second instance (same group) runs for the
 *     middle third of the kills; about a third of the kills are armed instead: the instance
 *     kills itself right after its next task state write (crash_pipeline.h, --arm-file);
 *   - counts where the kills landed: between a state write and its offset commit (the state's
 *     positions are past the group's committed offsets after the kill), and in any phase the
 *     instance reports open ("phase open NAME T": a later changelog write -> marker phase
 *     is counted the same way);
 *   - once every kill is done and the output is complete, stops the instances cleanly and
 *     checks the output against the fault-free reference (crash_check.h): every key's final
 *     count and every window's final result exact, nothing missing, no window that should not
 *     be; duplicates counted and printed. Nothing of the input or the repartition topic may
 *     have been evicted by the embedded broker (its ~5 MiB per partition): checked.
 * Environment: BROOK_CRASH_KILLS (5), BROOK_CRASH_RECORDS (20000), BROOK_CRASH_SEED (the time),
 * BROOK_CRASH_PARTITIONS (4), BROOK_CRASH_KEYS (50), BROOK_CRASH_BACKEND (rocksdb | memory: in
 * memory the state survives only through changelogs), BROOK_CRASH_STATE_DIRS (shared: both
 * instances on one state directory, like two processes of one host | per-instance: a task that
 * moves between them needs its changelog), BROOK_CRASH_DEADLINE_S (a bound on the run).
 * "--soak" (ctest crash_loop_soak, label soak) runs only with BROOK_CRASH_SOAK=1, with 50 kills
 * and 500,000 records unless the variables say otherwise. README "Crash-loop test". */
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
#include <librdkafka/rdkafka.h>

#include "broker_proc.h"
#include "crash_loop/crash_check.h"
#include "crash_loop/crash_child.h"
#include "crash_loop/crash_input.h"
#include "crash_loop/crash_pipeline.h"
#include "crash_loop/crash_repartition.h"
#include "kafka/internal_topic_names.h"
#include "kafka_helpers.h"
#include "rng.h"
#include "self_exec.h"
#include "tempfiles.h"

#define GROUP "crash"
#define WAIT_MS 60000
#define STALL_MS 20000 /* no output for this long: event time stopped (see STALLED) */

typedef struct config {
  int kills;
  int64_t records;
  uint64_t seed;
  int partitions, keys;
  int memory;       /* state in memory (else RocksDB, state_dir) */
  int per_instance; /* a state directory per instance (else one, shared) */
  int deadline_s;
  int expect_exact; /* BROOK_CRASH_EXPECT=exact: the output must equal the reference (else the
                       known replays through the repartition topic are allowed, see the end) */
} config_t;

static config_t cfg;
static int soak;
static broker_proc_t broker;

static int64_t env_int(const char *name, int64_t dflt) {
  const char *v = getenv(name);
  return v && *v ? strtoll(v, NULL, 0) : dflt;
}

static void configure(void) {
  cfg.kills = (int)env_int("BROOK_CRASH_KILLS", soak ? 50 : 5);
  cfg.records = env_int("BROOK_CRASH_RECORDS", soak ? 500000 : 20000);
  const char *s = getenv("BROOK_CRASH_SEED");
  cfg.seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
  cfg.partitions = (int)env_int("BROOK_CRASH_PARTITIONS", soak ? 8 : 4);
  cfg.keys = (int)env_int("BROOK_CRASH_KEYS", soak ? 100 : 50);
  const char *b = getenv("BROOK_CRASH_BACKEND");
  cfg.memory = b && strcmp(b, "memory") == 0;
  const char *d = getenv("BROOK_CRASH_STATE_DIRS");
  cfg.per_instance = d && strcmp(d, "per-instance") == 0;
  cfg.deadline_s = (int)env_int("BROOK_CRASH_DEADLINE_S", soak ? 3600 : 200);
  const char *e = getenv("BROOK_CRASH_EXPECT");
  cfg.expect_exact = e && strcmp(e, "exact") == 0;
}

/* The input, the repartition topic and every changelog topic, pre-created (the embedded
 * broker cannot create topics through the admin API). */
static void create_topics(void) {
  const char *plain[] = {CP_TOPIC_IN, CP_TOPIC_COUNTS, CP_TOPIC_WINDOWS};
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(broker_cmd(&broker, "topic %s %d", plain[i], cfg.partitions), 0);
  char name[BK_TOPIC_NAME_MAX + 1];
  bk_errmsg_t why;
  assert_int_equal(bk_repartition_topic(name, sizeof(name), GROUP, CP_NODE_KEY, &why), BROOK_OK);
  assert_int_equal(broker_cmd(&broker, "topic %s %d", name, cfg.partitions), 0);
  for (size_t i = 0; cp_stores[i][0]; i++) {
    assert_int_equal(
        bk_changelog_topic(name, sizeof(name), GROUP, cp_stores[i][0], cp_stores[i][1], &why),
        BROOK_OK);
    assert_int_equal(broker_cmd(&broker, "topic %s %d", name, cfg.partitions), 0);
  }
}

/* ---- the instances ---- */

typedef struct run {
  char *dir;
  crash_child_t child[2]; /* "a" always (restarted after each kill), "b" for a while */
  rng_t rng;
  long long kill_at[2]; /* when the next kill of each is due (0: not scheduled) */
  int kills, armed, between, landed_open;
  int phase_kills[8];
  char phase_names[8][32];
  int n_phase_names;
  int restarts;
} run_t;

static void spawn(run_t *r, int i) {
  char state[600], arm[600];
  const char *name = i == 0 ? "a" : "b";
  snprintf(state, sizeof(state), "%s/state%s%s", r->dir, cfg.per_instance ? "-" : "",
           cfg.per_instance ? name : "");
  snprintf(arm, sizeof(arm), "%s/arm-%s", r->dir, name);
  unlink(arm);
  const char *args[16] = {"--bootstrap", broker.bootstrap, "--group", GROUP, "--instance",
                          name,          "--arm-file",     arm};
  size_t n = 8;
  if (!cfg.memory) {
    args[n++] = "--state-dir";
    args[n++] = state;
  }
  args[n] = NULL;
  crash_child_spawn(&r->child[i], name, args);
  r->kill_at[i] = 0;
}

static void count_phase(run_t *r, const char *name) {
  int i = 0;
  while (i < r->n_phase_names && strcmp(r->phase_names[i], name) != 0)
    i++;
  if (i == 8)
    return;
  if (i == r->n_phase_names)
    snprintf(r->phase_names[r->n_phase_names++], sizeof(r->phase_names[0]), "%s", name);
  r->phase_kills[i]++;
}

/* Kills instance i (armed: it kills itself after its next state write that moved on), counts
 * where the kill landed, and restarts it unless `last`. */
static void kill_one(run_t *r, int i, int last) {
  crash_child_t *c = &r->child[i];
  int armed = !last && rng_range(&r->rng, 0, 2) == 0;
  long long t0 = kh_now_ms();
  char arm[600];
  snprintf(arm, sizeof(arm), "%s/arm-%s", r->dir, c->name);
  int code;
  if (armed) {
    FILE *f = fopen(arm, "w");
    assert_non_null(f);
    fclose(f);
    code = crash_child_end(c, 0, 10000); /* SIGKILL from the parent if no write moved on */
  } else {
    code = crash_child_end(c, SIGKILL, 10000);
  }
  unlink(arm);
  assert_int_equal(code, 128 + SIGKILL);
  r->kills++;
  r->armed += armed;
  char detail[512] = "";
  int ahead = crash_child_ahead_of_commit(c, broker.bootstrap, GROUP, detail, sizeof(detail));
  r->between += ahead > 0;
  for (int k = 0; k < c->n_open; k++)
    count_phase(r, c->open[k].name);
  r->landed_open += c->n_open > 0;
  fprintf(stderr, "kill %d/%d: instance %s %s after %lld ms ready (%lld state writes)%s%s%s\n",
          r->kills, cfg.kills, c->name,
          armed ? "armed (killed itself after a state write)" : "SIGKILL", t0 - c->ready_at,
          (long long)c->writes,
          ahead ? "; landed between a state write and its offset commit: " : "", detail,
          last ? "; not restarted" : "");
  if (!last) {
    spawn(r, i);
    r->restarts++;
  }
}

/* Fails the test if an instance exited without being killed. */
static void expect_alive(run_t *r) {
  for (int i = 0; i < 2; i++) {
    int code;
    if (r->child[i].pid && crash_child_exited(&r->child[i], &code))
      fail_msg("instance %s exited by itself (%d)", r->child[i].name, code);
  }
}

/* ---- nothing evicted ---- */

static void expect_not_evicted(const char *topic) {
  rd_kafka_t *k = kh_client(RD_KAFKA_CONSUMER, broker.bootstrap,
                            (const char *const[]){"group.id", "crash_low", NULL}, NULL, NULL);
  for (int p = 0; p < cfg.partitions; p++) {
    int64_t lo = -1, hi = -1;
    assert_int_equal(rd_kafka_query_watermark_offsets(k, topic, p, &lo, &hi, 10000),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    if (lo != 0)
      fail_msg("%s:%d: the broker evicted offsets 0..%lld (of %lld): size the run's partitions "
               "for its volume (BROOK_CRASH_PARTITIONS)",
               topic, p, (long long)lo - 1, (long long)hi);
  }
  rd_kafka_destroy(k);
}

/* ---- the loop ---- */

static void test_crash_loop(void **state) {
  (void)state;
  if (soak && !getenv("BROOK_CRASH_SOAK")) {
    print_message("crash_loop_soak: skipped (BROOK_CRASH_SOAK=1 runs it; README, "
                  "\"Crash-loop test\")\n");
    skip();
  }
  fprintf(stderr,
          "crash loop: seed %llu (BROOK_CRASH_SEED replays it), %d kills, %lld records, %d "
          "partitions, %d keys, state %s%s\n",
          (unsigned long long)cfg.seed, cfg.kills, (long long)cfg.records, cfg.partitions, cfg.keys,
          cfg.memory ? "in memory" : "on disk (RocksDB)",
          cfg.memory         ? ""
          : cfg.per_instance ? ", a directory per instance"
                             : ", one directory");
  create_topics();
  ci_params_t p = {.seed = cfg.seed,
                   .partitions = cfg.partitions,
                   .records = cfg.records,
                   .keys = cfg.keys,
                   .phase1_percent = 80,
                   .late_permille = 20};
  static ci_input_t in;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ts0 = ((int64_t)now.tv_sec - 2 * 3600) / 60 * 60 * 1000; /* 2 h ago, a whole minute */
  assert_int_equal(ci_generate(&in, &p, ts0), 0);
  fprintf(stderr, "input: %lld records per partition (phase 1: %lld), %lld late, %lld windows\n",
          (long long)in.per_part, (long long)in.phase1, (long long)in.late,
          (long long)in.ref_windows);
  static cc_check_t check;
  cc_init(&check, &in, broker.bootstrap);
  /* Phase 1 flows at an even pace over about 4 s per kill, so that instances die while they
   * process input (and upstream tasks replay); phase 2 once it is all in. */
  static ci_feeder_t feeder;
  feeder = (ci_feeder_t){.in = &in,
                         .bootstrap = broker.bootstrap,
                         .topic = CP_TOPIC_IN,
                         .from = 0,
                         .to = in.phase1,
                         .duration_ms = 4000LL * cfg.kills};
  ci_feed_start(&feeder);
  int fed = 0;

  static run_t r;
  memset(&r, 0, sizeof(r));
  r.dir = temp_dir_new("crash_loop");
  r.rng.s = cfg.seed ^ 0x5eed;
  spawn(&r, 0);
  long long start = kh_now_ms(), deadline = start + (long long)cfg.deadline_s * 1000;
  int phase2 = 0, b_started = 0, stalled = 0;
  long long last_output = kh_now_ms();
  int b_from = cfg.kills / 3, b_until = 2 * cfg.kills / 3; /* kills while b runs */
  while (kh_now_ms() < deadline) {
    for (int i = 0; i < 2; i++)
      if (r.child[i].pid)
        crash_child_drain(&r.child[i], 0);
    expect_alive(&r);
    if (cc_poll(&check, 50, 50) > 0)
      last_output = kh_now_ms();
    for (int i = 0; i < 2; i++) /* a restart's time until ready is no stall */
      if (r.child[i].pid && (!r.child[i].ready || r.child[i].ready_at > last_output))
        last_output = r.child[i].ready ? r.child[i].ready_at : kh_now_ms();
    long long quiet = kh_now_ms() - last_output;
    /* Phase 2 once phase 1's windows are all out; or once the output has stalled: windows
     * that never close after restarts with no new input are a finding (counted), and new
     * input moves event time on again. */
    if (!fed && atomic_load(&feeder.done)) {
      if (ci_feed_join(&feeder) != 0)
        fail_msg("input phase 1: %s", feeder.error);
      fed = 1;
      last_output = kh_now_ms();
      fprintf(stderr, "phase 1 all in after %lld ms (%d kills so far)\n", kh_now_ms() - start,
              r.kills);
    }
    if (!phase2 && fed && (cc_phase1_closed(&check) || quiet > STALL_MS)) {
      if (!cc_phase1_closed(&check)) {
        stalled = 1;
        fprintf(stderr,
                "STALLED: %lld of the %lld windows phase 1 closes are out, no output for %lld ms "
                "(%d kills so far): producing phase 2 anyway\n",
                (long long)check.phase1_present, (long long)cc_phase1_windows(&in), quiet, r.kills);
      }
      ci_produce(&in, broker.bootstrap, CP_TOPIC_IN, in.phase1, in.per_part + 1);
      phase2 = 1;
      last_output = kh_now_ms();
      fprintf(stderr, "phase 2 produced after %lld ms (%d kills so far)\n", kh_now_ms() - start,
              r.kills);
    }
    if (!b_started && r.kills >= b_from && b_from < b_until) {
      spawn(&r, 1);
      b_started = 1;
      fprintf(stderr, "instance b started (2 instances in the group)\n");
    }
    if (r.kills >= cfg.kills) {
      if (phase2 && (cc_complete(&check) || kh_now_ms() - last_output > STALL_MS))
        break; /* complete, or stalled for good (the check says what is missing) */
      continue;
    }
    for (int i = 0; i < 2; i++) {
      crash_child_t *c = &r.child[i];
      if (!c->pid || !c->ready)
        continue;
      if (!r.kill_at[i])
        r.kill_at[i] = c->ready_at + rng_range(&r.rng, 500, 3500);
      if (kh_now_ms() >= r.kill_at[i]) {
        int last = i == 1 && r.kills + 1 >= b_until;
        kill_one(&r, i, last);
        break;
      }
    }
  }
  int complete = phase2 && cc_complete(&check);
  fprintf(stderr, "%s after %lld ms; stopping the instances\n",
          complete ? "output complete" : "INCOMPLETE: output stalled or deadline",
          kh_now_ms() - start);
  cc_poll(&check, 3000, 3000); /* what the instances still write: duplicates */
  for (int i = 0; i < 2; i++)
    if (r.child[i].pid)
      assert_int_equal(crash_child_end(&r.child[i], SIGTERM, WAIT_MS), 0);
  cc_poll(&check, 30000, 2000); /* the output after their final commits */

  cc_summary_t s;
  cc_summarize(&check, &s);
  fprintf(
      stderr,
      "crash loop summary: seed %llu, %lld records (%lld late), %d kills (%d armed, %d random), "
      "%d restarts, %d landed between a state write and its offset commit",
      (unsigned long long)cfg.seed, (long long)(in.per_part + 1) * cfg.partitions,
      (long long)in.late, r.kills, r.armed, r.kills - r.armed, r.restarts, r.between);
  for (int i = 0; i < r.n_phase_names; i++)
    fprintf(stderr, ", %d in phase %s", r.phase_kills[i], r.phase_names[i]);
  fprintf(stderr, "; %s; %lld ms\n",
          stalled ? "phase 1's windows stalled (did not all close before phase 2)" : "no stall",
          kh_now_ms() - start);
  cc_print(&check, &s, stderr, 10);
  char topic[BK_TOPIC_NAME_MAX + 1];
  bk_errmsg_t why;
  assert_int_equal(bk_repartition_topic(topic, sizeof(topic), GROUP, CP_NODE_KEY, &why), BROOK_OK);
  expect_not_evicted(CP_TOPIC_IN);
  expect_not_evicted(topic);
  expect_not_evicted(CP_TOPIC_COUNTS);
  cr_report_t rp;
  cr_read(&check, broker.bootstrap, topic, &rp);
  fprintf(stderr,
          "repartition topic: %lld data records for %lld input records (%lld written again by "
          "replayed upstream tasks), %lld watermark records; final counts equal the key's "
          "records in the topic for %d of %d keys (%d above, %d below)\n",
          (long long)rp.data, (long long)(in.per_part + 1) * cfg.partitions,
          (long long)rp.written_again, (long long)rp.watermarks, rp.keys_as_in_topic, cfg.keys + 1,
          rp.keys_above_topic, rp.keys_below_topic);
  int exact = cc_exact(&s);
  cc_free(&check);
  ci_free(&in);
  temp_dir_free(r.dir);
  assert_int_equal(r.kills, cfg.kills);
  assert_true(complete);
  if (cfg.expect_exact) {
    assert_false(stalled);
    assert_true(exact);
    return;
  }
  /* One known defect (README "Crash-loop test", "What it found") is allowed here, and only
   * it: with state in memory (restored from changelogs), some windows are reopened by
   * replayed records after they closed (their result changes to a smaller one). Counts must
   * be exact, nothing missing, no window the reference does not have, no window above it. */
  if (!exact)
    fprintf(stderr, "NOT EXACT: the known defect (windows reopened by replayed records after "
                    "a restart); BROOK_CRASH_EXPECT=exact fails on it\n");
  assert_int_equal(s.count_keys_wrong, 0);
  assert_int_equal(s.count_missing, 0);
  assert_int_equal(s.windows_missing, 0);
  assert_int_equal(s.windows_unexpected, 0);
  assert_int_equal(s.bad_records, 0);
  assert_int_equal(s.windows_wrong, s.windows_reopened);
}

/* The same pipeline stopped cleanly and started again on its state directory: the second run
 * opens task databases that hold the repartition sink's timers (its periodic watermark
 * records). Found by the crash loop: the restart failed with "BROOK_ERR_DUPLICATE: runtime: the
 * timers of operator 'by_key.repartition-sink' in task 0_0: duplicate name" (nodes without
 * state of their own kept their timers under the bare name "timers", and the key_by node,
 * earlier in the plan, claimed the sink's). */
static void test_restart_on_state_dir(void **state) {
  (void)state;
  if (soak || cfg.memory)
    skip(); /* the soak runs the crash loop only; in memory there is no state directory */
  int partitions = cfg.partitions;
  cfg.partitions = 2;
  create_topics();
  cfg.partitions = partitions;
  ci_params_t p = {.seed = cfg.seed,
                   .partitions = 2,
                   .records = 4000,
                   .keys = 10,
                   .phase1_percent = 50,
                   .late_permille = 0};
  static ci_input_t in;
  assert_int_equal(ci_generate(&in, &p, 60 * 1000 * 1000), 0);
  ci_produce(&in, broker.bootstrap, CP_TOPIC_IN, 0, in.phase1);
  static run_t r;
  memset(&r, 0, sizeof(r));
  r.dir = temp_dir_new("crash_restart");
  for (int round = 0; round < 2; round++) {
    spawn(&r, 0);
    long long deadline = kh_now_ms() + WAIT_MS;
    while (!r.child[0].ready && kh_now_ms() < deadline) {
      crash_child_drain(&r.child[0], 100);
      expect_alive(&r);
    }
    assert_true(r.child[0].ready);
    while (r.child[0].writes < 4 && kh_now_ms() < deadline) { /* both tasks' state written */
      crash_child_drain(&r.child[0], 100);
      expect_alive(&r);
    }
    assert_int_equal(crash_child_end(&r.child[0], SIGTERM, WAIT_MS), 0);
  }
  ci_free(&in);
  temp_dir_free(r.dir);
}

static int setup(void **state) {
  (void)state;
  assert_int_equal(broker_start(&broker, 1, NULL, NULL), 0);
  self_exec_broker = &broker;
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--crash-child") == 0)
    return crash_pipeline_main(argc - 2, argv + 2);
  soak = argc > 1 && strcmp(argv[1], "--soak") == 0;
  configure();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_restart_on_state_dir, setup, self_exec_teardown),
      cmocka_unit_test_setup_teardown(test_crash_loop, setup, self_exec_teardown),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
