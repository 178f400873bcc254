/* Kafka -> map -> Kafka pipelines surviving what production does to them, checked against
 * kafka.h's promise (at least once: nothing lost, duplicates allowed):
 *   - crash: a pipeline process killed with SIGKILL at seeded pseudo-random moments and
 *     restarted, several times, then run to the end; every input value is in the output;
 *   - scale-out: two processes in one group split the partitions; the one stopped with
 *     SIGTERM hands its partitions to the other, which then processes new input there;
 *   - broker faults mid-run: a broker down and up, injected retriable Produce and Fetch errors
 *     and a slow broker; the run loses nothing and ends with BROOK_OK when stopped;
 *   - backpressure: against a slow sink, a source's max_in_flight bounds what the pipeline
 *     has read but not yet written out.
 * Pipeline processes are this executable run again ("--pipeline-child", self_exec.h): fork
 * without exec is unsafe once librdkafka has threads in the parent. They report by exit code
 * only. Every wait is on a condition (the output topic's size, a group's committed offsets,
 * a child's exit) with a deadline. Kill moments come from a seed that is printed; set
 * BROOK_TEST_SEED to replay one. BROOK_TEST_LOG=1 puts the pipelines' logs on stderr. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <brook/kafka.h>
#include <uv.h>

#include "broker_proc.h"
#include "kafka_helpers.h"
#include "kafka_progress.h"
#include "kafka_readback.h"
#include "pipeline_child.h"
#include "run_deadline.h"
#include "self_exec.h"

#define WAIT_MS 30000
#define N_KEYS 97
#define SESSION_TIMEOUT "6000"

/* ---- seeded pseudo-random choices ---- */

static uint64_t rng_seed, rng_state;

/* Each test draws from its own sequence (the seed mixed with its name), so one test replays
 * the same choices whether it runs alone (BROOK_TEST_FILTER) or after the others. */
static void rng_start(const char *test) {
  rng_state = rng_seed;
  for (const char *c = test; *c; c++)
    rng_state = (rng_state ^ (unsigned char)*c) * 1099511628211ULL; /* FNV-1a */
  if (!rng_state)
    rng_state = 1;
}

static uint64_t rng_next(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

static int rng_between(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

/* ---- the pipeline: in -> "<tag>:<value>" -> out, in this process or in a child ---- */

typedef struct pipe_spec {
  const char *bootstrap, *group, *in_topic, *out_topic, *tag;
  int in_partitions;
  int subscribe;         /* group subscription, else explicit assignment of every partition */
  size_t max_in_flight;  /* the source's; 0: default */
  int sink_batch;        /* the sink's batch.num.messages (0: librdkafka's default) */
  int quick_reconnect;   /* reconnect.backoff.max.ms 200 for both clients (default 10 s) */
  brook_done_cb on_done; /* for brook_runtime_start; may be NULL */
  void *on_done_opaque;
} pipe_spec_t;

static void log_to_stderr(int level, const char *msg, void *opaque) {
  fprintf(stderr, "[%s %d] %s\n", (const char *)opaque, level, msg);
}

/* Builds the pipeline's topology and runtime; NULL on error (said on stderr). No cmocka:
 * child processes use it too. */
static brook_runtime_t *pipe_build(const pipe_spec_t *s, brook_topology_t **t_out) {
  brook_topology_t *t;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return NULL;
  brook_kafka_partition_t parts[16];
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = s->bootstrap;
  so.group_id = s->group;
  const char *backoff = s->quick_reconnect ? "reconnect.backoff.max.ms" : NULL;
  so.properties =
      (const char *const[]){"session.timeout.ms", SESSION_TIMEOUT, backoff, "200", NULL};
  if (s->max_in_flight)
    so.max_in_flight = s->max_in_flight;
  const char *const topics[] = {s->in_topic, NULL};
  if (s->subscribe) {
    so.topics = topics;
  } else {
    int n = s->in_partitions < 16 ? s->in_partitions : 16;
    for (int p = 0; p < n; p++)
      parts[p] = (brook_kafka_partition_t){s->in_topic, p, BROOK_KAFKA_OFFSET_STORED};
    so.partitions = parts;
    so.n_partitions = (size_t)n;
  }
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = s->bootstrap;
  ko.topic = s->out_topic;
  char sink_batch[16];
  snprintf(sink_batch, sizeof(sink_batch), "%d", s->sink_batch);
  const char *const sink_props[] = {"linger.ms", "5", backoff, "200", NULL};
  const char *const sink_props_batch[] = {
      "linger.ms", "5", "batch.num.messages", sink_batch, backoff, "200", NULL};
  ko.properties = s->sink_batch ? sink_props_batch : sink_props;
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  brook_sink_kafka(brook_map(in, pc_tag_value, (void *)(uintptr_t)s->tag), "out", &ko);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 200; /* commits often: the waits for committed offsets are short */
  ro.on_done = s->on_done;
  ro.on_done_opaque = s->on_done_opaque;
  if (getenv("BROOK_TEST_LOG")) {
    ro.log = log_to_stderr;
    ro.log_opaque = (void *)(uintptr_t)s->tag;
  }
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK) {
    fprintf(stderr, "pipeline %s: %s\n", s->tag, brook_topology_last_error(t));
    brook_topology_free(t);
    return NULL;
  }
  *t_out = t;
  return rt;
}

/* ---- the pipeline as a child process ---- */

/* argv: BOOTSTRAP GROUP IN_TOPIC IN_PARTITIONS subscribe|assign OUT_TOPIC TAG SINK_BATCH
 * MAX_IN_FLIGHT. Runs until SIGTERM (blocked until the handler is in place, see
 * self_exec.h); exit code 0 if the run then ended with BROOK_OK, 1 if it failed, 2 on setup. */
static int pipeline_child_main(int argc, char **argv) {
  pc_handle_sigterm();
  if (argc != 9)
    return 2;
  pipe_spec_t s = {.bootstrap = argv[0],
                   .group = argv[1],
                   .in_topic = argv[2],
                   .in_partitions = atoi(argv[3]),
                   .subscribe = strcmp(argv[4], "subscribe") == 0,
                   .out_topic = argv[5],
                   .tag = argv[6],
                   .sink_batch = atoi(argv[7]),
                   .max_in_flight = (size_t)atol(argv[8])};
  brook_topology_t *t = NULL;
  brook_runtime_t *rt = pipe_build(&s, &t);
  if (!rt)
    return 2;
  pc_set_runtime(rt);
  brook_err_t err = brook_runtime_run(rt);
  if (err != BROOK_OK)
    fprintf(stderr, "pipeline %s: %s: %s\n", s.tag, brook_errname(err),
            brook_runtime_last_error(rt));
  pc_set_runtime(NULL);
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err == BROOK_OK ? 0 : 1;
}

static pid_t spawn_pipeline(const pipe_spec_t *s) {
  char parts[16], batch[16], mif[32];
  snprintf(parts, sizeof(parts), "%d", s->in_partitions);
  snprintf(batch, sizeof(batch), "%d", s->sink_batch);
  snprintf(mif, sizeof(mif), "%zu", s->max_in_flight);
  return self_exec_spawn((const char *const[]){
      "--pipeline-child", s->bootstrap, s->group, s->in_topic, parts,
      s->subscribe ? "subscribe" : "assign", s->out_topic, s->tag, batch, mif, NULL});
}

/* Sends `sig` to a pipeline child and returns its exit code (128 + signal if killed). */
static int end_pipeline(pid_t pid, int sig) { return self_exec_end(pid, sig, WAIT_MS); }

static void start_broker(broker_proc_t *b, int n, const char *const *topics) {
  assert_int_equal(broker_start(b, n, topics, NULL), 0);
  self_exec_broker = b;
}

static void stop_broker(broker_proc_t *b) {
  self_exec_broker = NULL;
  assert_int_equal(broker_stop(b), 0);
}

/* ---- waiting on the cluster ---- */

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One step of a wait on `v` reaching `target`: 1 if it did; else fails the test at the
 * deadline or if one of `pids` (0-terminated, may be NULL) has exited, and pauses 20 ms. */
static int wait_step(int64_t v, int64_t target, long long deadline, const pid_t *pids,
                     int timeout_ms, const char *what) {
  if (v >= target)
    return 1;
  self_exec_expect_alive(pids, what);
  if (kh_now_ms() > deadline)
    fail_msg("waited %d ms for %s: %lld of %lld", timeout_ms, what, (long long)v,
             (long long)target);
  pause_ms(20);
  return 0;
}

/* Waits until `tail` has read at least `target` records of the output; returns how many. A
 * consumer rather than watermark queries: it keeps counting while a broker is down (in
 * librdkafka 2.0.2 the watermark and offsets-for-times queries can then block far beyond
 * their timeouts). */
static int64_t wait_output(kp_tail_t *tail, int64_t target, const pid_t *pids, int timeout_ms,
                           const char *what) {
  long long deadline = kh_now_ms() + timeout_ms;
  int64_t v;
  while (!wait_step(v = kp_tail_count(tail, 50), target, deadline, pids, timeout_ms, what)) {
  }
  return v;
}

/* Waits until the watcher's group has committed at least `target` records of `topic`. */
static int64_t wait_committed(kp_watch_t *w, const char *topic, int partitions, int64_t target,
                              const pid_t *pids, int timeout_ms, const char *what) {
  long long deadline = kh_now_ms() + timeout_ms;
  int64_t v;
  while (!wait_step(v = kp_committed_sum(w, topic, partitions, 5000), target, deadline, pids,
                    timeout_ms, what)) {
  }
  return v;
}

/* ---- reading the output back ---- */

/* The input index in "<tag>:value-<i>", or -1; *tag gets the tag's first character. */
static int parse_output(const kr_msg_t *m, char *tag) {
  if (!m->value)
    return -1;
  const char *colon = strchr(m->value, ':');
  int i;
  if (!colon || sscanf(colon + 1, "value-%d", &i) != 1)
    return -1;
  *tag = m->value[0];
  return i;
}

typedef struct tally {
  int n;             /* input values 0..n-1 */
  unsigned char *by; /* per value: bit 1 if it came out tagged "b", bit 0 if with another tag */
  int *copies;       /* per value: how many times it came out */
  int64_t total, duplicates, strays;
} tally_t;

static void tally_init(tally_t *t, int n) {
  memset(t, 0, sizeof(*t));
  t->n = n;
  assert_non_null(t->by = calloc((size_t)n, 1));
  assert_non_null(t->copies = calloc((size_t)n, sizeof(int)));
}

static void tally_free(tally_t *t) {
  free(t->by);
  free(t->copies);
}

/* Adds everything `topic` holds now (read up to its high watermarks). */
static void tally_topic(tally_t *t, const char *bootstrap, const char *topic) {
  kr_topic_t kt;
  char why[256];
  if (kr_read_topic(bootstrap, topic, WAIT_MS, &kt, why, sizeof(why)) != 0)
    fail_msg("reading '%s' back: %s", topic, why);
  for (size_t j = 0; j < kt.n; j++) {
    char tag = 0;
    int i = parse_output(&kt.msgs[j], &tag);
    t->total++;
    if (i < 0 || i >= t->n) {
      t->strays++;
      continue;
    }
    if (t->copies[i]++)
      t->duplicates++;
    t->by[i] |= tag == 'b' ? 2 : 1;
  }
  kr_topic_free(&kt);
}

/* Fails unless every value 0..n-1 came out, and nothing else did. */
static void tally_expect_all(const tally_t *t, const char *what) {
  int missing = 0, first = -1;
  for (int i = 0; i < t->n; i++)
    if (!t->copies[i] && missing++ == 0)
      first = i;
  assert_int_equal(t->strays, 0);
  if (missing)
    fail_msg("%s: %d of %d input values lost (first: value-%d)", what, missing, t->n, first);
}

/* The input partition of value i (keys "k<i % N_KEYS>", murmur2 as the Java client). */
static int input_partition(int i, int partitions) {
  char key[32];
  int kl = snprintf(key, sizeof(key), "k%d", i % N_KEYS);
  return kr_java_partition(key, (size_t)kl, partitions);
}

/* ---- 1. crash and restart ---- */

/* N records in a 4-partition topic; a pipeline process is killed with SIGKILL `kills` times,
 * each time once the output has grown by a seeded random amount (or, every other time, once
 * the group's commit has moved too, so kills land both between and around commits), and
 * restarted (with explicit assignment, after a first run stopped mid-run with SIGTERM); the
 * last run goes on until the group has committed all the input, then stops with SIGTERM and
 * exits cleanly. Every input value is in the output; duplicates (the work
 * redone after each kill) are counted and printed. The broker answers 20 ms late, the sink
 * sends at most 100 records per request and the source holds at most 2000 records in
 * flight, so a run takes seconds, not the few hundred ms it would otherwise, and a stop
 * leaves input behind: the kills and the stop land mid-run, with deliveries in flight. */
static void crash_and_restart(int subscribe, int n, int kills, const char *group) {
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"in:4", "out:4", NULL});
  kh_produce(b.bootstrap, "in", "value-", 0, n, N_KEYS);
  assert_int_equal(broker_cmd(&b, "rtt 1 20"), 0);
  kp_watch_t *w = kp_watch_open(b.bootstrap, group);
  assert_non_null(w);
  pipe_spec_t s = {.bootstrap = b.bootstrap,
                   .group = group,
                   .in_topic = "in",
                   .out_topic = "out",
                   .tag = "x",
                   .in_partitions = 4,
                   .subscribe = subscribe,
                   .sink_batch = 100,
                   .max_in_flight = 2000};
  kp_tail_t *tail = kp_tail_open(b.bootstrap, "out", 4);
  assert_non_null(tail);
  long long t0 = kh_now_ms();
  if (!subscribe) {
    /* First a clean stop mid-run (SIGTERM): the run drains, commits what it wrote and exits
     * 0, so it committed exactly as many input records as it wrote (map is 1:1, the sink is
     * idempotent, and with explicit assignment no rebalance makes it redo anything). First,
     * so that no killed process can still have requests on their way to the broker. */
    pid_t pids[2] = {spawn_pipeline(&s), 0};
    wait_output(tail, rng_between(n / 25, n / 8), pids, WAIT_MS, "output");
    assert_int_equal(end_pipeline(pids[0], SIGTERM), 0);
    int64_t out = kp_high_sum(w, "out", 4, 5000);
    int64_t committed = kp_committed_sum(w, "in", 4, 5000);
    printf("  stop at %lld ms: output %lld, committed %lld\n", kh_now_ms() - t0, (long long)out,
           (long long)committed);
    assert_int_equal(committed, out);
  }
  int k;
  for (k = 0; k < kills; k++) {
    int64_t out0 = kp_tail_count(tail, 0);
    int64_t committed0 = kp_committed_sum(w, "in", 4, 5000);
    assert_true(committed0 >= 0);
    if (n - committed0 < n / 10)
      break; /* too little left to kill a run in the middle of it */
    /* A run redoes the uncommitted input first: aim inside what is left. */
    int64_t grow = rng_between(n / 25, n / 8);
    if (grow > (n - committed0) / 2)
      grow = (n - committed0) / 2;
    pid_t pids[2] = {spawn_pipeline(&s), 0};
    int64_t out = wait_output(tail, out0 + grow, pids, WAIT_MS, "output");
    int64_t committed = committed0;
    if (k % 2 == 1) /* this time also past a commit of this run */
      committed = wait_committed(w, "in", 4, committed0 + 1, pids, WAIT_MS, "commit");
    assert_int_equal(end_pipeline(pids[0], SIGKILL), 128 + SIGKILL);
    printf("  kill %d at %lld ms: output %lld (+%lld), committed %lld -> %lld\n", k + 1,
           kh_now_ms() - t0, (long long)out, (long long)(out - out0), (long long)committed0,
           (long long)committed);
  }
  pid_t pids[2] = {spawn_pipeline(&s), 0};
  wait_committed(w, "in", 4, n, pids, 2 * WAIT_MS, "the last run to commit all input");
  assert_int_equal(end_pipeline(pids[0], SIGTERM), 0);
  assert_int_equal(kp_committed_sum(w, "in", 4, 5000), n); /* exactly the end: nothing skipped */
  kp_watch_close(w);
  kp_tail_close(tail);
  tally_t t;
  tally_init(&t, n);
  tally_topic(&t, b.bootstrap, "out");
  if (k < kills)
    fail_msg("only %d of %d kills landed before the input ran out", k, kills);
  printf("  %s: %d kills, %lld records out for %d in, %lld duplicates, %lld ms\n",
         subscribe ? "subscription" : "assignment", k, (long long)t.total, n,
         (long long)t.duplicates, kh_now_ms() - t0);
  tally_expect_all(&t, "after the crashes");
  tally_free(&t);
  stop_broker(&b);
}

static void test_crash_restart_assigned(void **state) {
  (void)state;
  rng_start(__func__);
  crash_and_restart(0, 20000, 4, "crash-assign");
}

/* With a group subscription each restart waits for the group: the killed member's session
 * (6 s) times out before its partitions move, so this variant is shorter. */
static void test_crash_restart_subscribed(void **state) {
  (void)state;
  rng_start(__func__);
  crash_and_restart(1, 6000, 1, "crash-subscribe");
}

/* ---- 2. scale-out and hand-over ---- */

/* Two pipeline processes in one group (subscription, cooperative-sticky) on a 6-partition
 * topic, each writing its own output topic: input keeps coming in small rounds until both
 * have written something (so both own partitions). Then B gets SIGTERM: it stops cleanly
 * (commits, leaves the group) and exits 0; its partitions move to A, and new input (in every
 * partition, B's included) comes out of A. In the end the union of the outputs holds every
 * input value, and the group has committed all the input. */
static void test_scale_out_and_hand_over(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"in6:6", "out-a:3", "out-b:3", NULL});
  kp_watch_t *w = kp_watch_open(b.bootstrap, "scale");
  kp_producer_t *prod = kp_producer_open(b.bootstrap, NULL);
  assert_non_null(w);
  assert_non_null(prod);
  pipe_spec_t sa = {.bootstrap = b.bootstrap,
                    .group = "scale",
                    .in_topic = "in6",
                    .out_topic = "out-a",
                    .tag = "a",
                    .in_partitions = 6,
                    .subscribe = 1};
  pipe_spec_t sb = sa;
  sb.out_topic = "out-b";
  sb.tag = "b";
  long long t0 = kh_now_ms();
  pid_t a = spawn_pipeline(&sa), bpid = spawn_pipeline(&sb);
  pid_t both[3] = {a, bpid, 0};

  /* Phase 1: rounds of 200 records every 100 ms until each process has written some. */
  int produced = 0;
  int64_t out_a = 0, out_b = 0;
  long long deadline = kh_now_ms() + WAIT_MS;
  while (out_a <= 0 || out_b <= 0) { /* -1: the broker did not answer; ask again */
    if (kh_now_ms() > deadline)
      fail_msg("after %d ms only one process got partitions (a: %lld, b: %lld records)", WAIT_MS,
               (long long)out_a, (long long)out_b);
    assert_int_equal(kp_producer_send(prod, "in6", "value-", produced, 200, N_KEYS), 0);
    produced += 200;
    self_exec_expect_alive(both, "both processes to get partitions");
    pause_ms(100);
    out_a = kp_high_sum(w, "out-a", 3, 5000);
    out_b = kp_high_sum(w, "out-b", 3, 5000);
  }
  assert_int_equal(kp_producer_flush(prod, WAIT_MS), 0);
  long long t_split = kh_now_ms() - t0;
  /* Let the running rounds finish, so B's output says which partitions it owns. */
  wait_committed(w, "in6", 6, produced, both, WAIT_MS, "phase 1 committed");
  assert_int_equal(end_pipeline(bpid, SIGTERM), 0);
  long long t_b_stopped = kh_now_ms() - t0;

  tally_t t1;
  tally_init(&t1, produced);
  tally_topic(&t1, b.bootstrap, "out-a");
  tally_topic(&t1, b.bootstrap, "out-b");
  tally_expect_all(&t1, "phase 1");
  unsigned parts_a = 0, parts_b = 0; /* input partitions each process handled (bit sets) */
  for (int i = 0; i < produced; i++) {
    if (t1.by[i] & 1)
      parts_a |= 1u << input_partition(i, 6);
    if (t1.by[i] & 2)
      parts_b |= 1u << input_partition(i, 6);
  }
  tally_free(&t1);
  assert_true(parts_a != 0 && parts_b != 0);

  /* Phase 2: new input in every partition; A alone must process all of it. */
  const int n2 = 3000, n = produced + n2;
  pid_t only_a[2] = {a, 0};
  int64_t out_b_final = kp_high_sum(w, "out-b", 3, 5000);
  assert_int_equal(kp_producer_send(prod, "in6", "value-", produced, n2, N_KEYS), 0);
  assert_int_equal(kp_producer_flush(prod, WAIT_MS), 0);
  wait_committed(w, "in6", 6, n, only_a, 2 * WAIT_MS, "A to take over and commit all");
  assert_int_equal(end_pipeline(a, SIGTERM), 0);
  assert_int_equal(kp_high_sum(w, "out-b", 3, 5000), out_b_final); /* B wrote nothing more */

  tally_t t;
  tally_init(&t, n);
  tally_topic(&t, b.bootstrap, "out-a");
  tally_topic(&t, b.bootstrap, "out-b");
  tally_expect_all(&t, "after the hand-over");
  unsigned moved = 0; /* B's partitions whose new input A processed */
  for (int i = produced; i < n; i++) {
    assert_false(t.by[i] & 2);
    if (t.by[i] & 1)
      moved |= 1u << input_partition(i, 6);
  }
  assert_int_equal(moved & parts_b, parts_b);
  printf("  split after %lld ms (a: partitions 0x%x, b: 0x%x), b stopped at %lld ms, "
         "%lld records out for %d in, %lld duplicates, %lld ms\n",
         t_split, parts_a, parts_b, t_b_stopped, (long long)t.total, n, (long long)t.duplicates,
         kh_now_ms() - t0);
  tally_free(&t);
  kp_producer_close(prod);
  kp_watch_close(w);
  stop_broker(&b);
}

/* ---- 3. broker faults mid-run ---- */

/* Three brokers; the pipeline runs in this process while input keeps arriving: a broker
 * (seeded choice) goes down: every new record whose input and output partitions lead
 * elsewhere still comes out, the rest once it is back up; the next Produce and Fetch
 * requests fail with NOT_LEADER_OR_FOLLOWER (retriable); a broker answers 300 ms late. The
 * run keeps going, commits all the input, ends with BROOK_OK when stopped, and every input
 * value is in the output. The pipeline's clients get reconnect.backoff.max.ms 200 through
 * brook's property pass-through: with librdkafka's 10 s default, seeing the broker back
 * would take most of this test's time. */
static void test_broker_faults_mid_run(void **state) {
  (void)state;
  rng_start(__func__);
  broker_proc_t b;
  start_broker(&b, 3, (const char *const[]){"in:4", "out:4", NULL});
  kp_watch_t *w = kp_watch_open(b.bootstrap, "faults");
  kp_producer_t *prod = kp_producer_open(b.bootstrap, NULL);
  assert_non_null(w);
  assert_non_null(prod);
  int produced = 4000;
  assert_int_equal(kp_producer_send(prod, "in", "value-", 0, produced, N_KEYS), 0);
  assert_int_equal(kp_producer_flush(prod, WAIT_MS), 0);
  pipe_spec_t s = {.bootstrap = b.bootstrap,
                   .group = "faults",
                   .in_topic = "in",
                   .out_topic = "out",
                   .tag = "f",
                   .in_partitions = 4,
                   .quick_reconnect = 1};
  brook_topology_t *t = NULL;
  brook_runtime_t *rt = pipe_build(&s, &t);
  assert_non_null(rt);
  long long t0 = kh_now_ms();
  bg_run_t r;
  bg_run_start(&r, rt);
  kp_tail_t *tail = kp_tail_open(b.bootstrap, "out", 4);
  assert_non_null(tail);
  /* Before each fault the output has caught up with all the input so far (no duplicates
   * without faults), so what comes out next was processed under the fault. */
  int64_t out = wait_output(tail, produced, NULL, WAIT_MS, "output before faults");

  /* A record keeps its partition number from "in" to "out" (same key, same count), so it
   * flows while a broker is down only if neither partition's leader is that broker. The
   * broker taken down is a seeded choice among those that lead some partition and leave
   * such a path. */
  int32_t lead_in[4], lead_out[4];
  assert_int_equal(kp_leaders(w, "in", 4, lead_in, 5000), 0);
  assert_int_equal(kp_leaders(w, "out", 4, lead_out, 5000), 0);
  int down = 0, slow = rng_between(1, 3);
  for (int tries = 0; !down && tries < 200; tries++) {
    int cand = rng_between(1, 3), avoids = 0, leads = 0;
    for (int p = 0; p < 4; p++) {
      avoids |= lead_in[p] != cand && lead_out[p] != cand;
      leads |= lead_in[p] == cand || lead_out[p] == cand;
    }
    if (avoids && (leads || tries >= 100)) /* one that stalls something, if there is one */
      down = cand;
  }
  assert_true(down != 0);
  int live = 0; /* new records whose path avoids the broker that is down */
  for (int i = produced; i < produced + 4000; i++) {
    int p = input_partition(i, 4);
    live += lead_in[p] != down && lead_out[p] != down;
  }
  printf("  %lld ms: output %lld, broker %d down (%d of the next 4000 records avoid it)\n",
         kh_now_ms() - t0, (long long)out, down, live);
  assert_int_equal(broker_cmd(&b, "down %d", down), 0);
  assert_int_equal(kp_producer_send(prod, "in", "value-", produced, 4000, N_KEYS), 0);
  produced += 4000; /* what goes to the broker that is down waits for it */
  out = wait_output(tail, out + live, NULL, WAIT_MS, "output from the brokers still up");
  /* Not a wait for anything: the fault lasts a while longer (reconnect back-offs, commits to
   * a coordinator that may be the broker that is down). */
  pause_ms(rng_between(1000, 2500));
  printf("  %lld ms: output %lld, broker %d up\n", kh_now_ms() - t0, (long long)out, down);
  assert_int_equal(broker_cmd(&b, "up %d", down), 0);
  long long t_up = kh_now_ms() - t0;
  assert_int_equal(kp_producer_flush(prod, WAIT_MS), 0);
  out = wait_output(tail, produced, NULL, WAIT_MS, "the stalled partitions' output");

  /* 6: NOT_LEADER_OR_FOLLOWER. Only the pipeline fetches; the Produce errors go in once this
   * test's own producer is done, while the pipeline still has the new input to write. */
  printf("  %lld ms: output %lld, Fetch and Produce errors\n", kh_now_ms() - t0, (long long)out);
  assert_int_equal(broker_cmd(&b, "error 1 6 8"), 0);
  assert_int_equal(kp_producer_send(prod, "in", "value-", produced, 3000, N_KEYS), 0);
  assert_int_equal(kp_producer_flush(prod, WAIT_MS), 0);
  assert_int_equal(broker_cmd(&b, "error 0 6 8"), 0);
  produced += 3000;
  out = wait_output(tail, produced, NULL, WAIT_MS, "output despite the errors");

  printf("  %lld ms: output %lld, broker %d slow\n", kh_now_ms() - t0, (long long)out, slow);
  assert_int_equal(broker_cmd(&b, "rtt %d 300", slow), 0);
  assert_int_equal(kp_producer_send(prod, "in", "value-", produced, 3000, N_KEYS), 0);
  produced += 3000;
  out = wait_output(tail, produced, NULL, WAIT_MS, "output through a slow broker");
  assert_int_equal(broker_cmd(&b, "rtt %d 0", slow), 0);
  printf("  %lld ms: output %lld, all faults over\n", kh_now_ms() - t0, (long long)out);

  assert_int_equal(kp_producer_flush(prod, WAIT_MS), 0);
  int64_t in_total = kp_high_sum(w, "in", 4, 5000); /* >= produced: retries may repeat input */
  assert_true(in_total >= produced);
  wait_committed(w, "in", 4, in_total, NULL, 2 * WAIT_MS, "all input committed");
  assert_int_equal(wait_counter_get(&r.finished), 0); /* still running: no fault ended it */
  brook_runtime_stop(rt);
  brook_err_t err = bg_run_finish(&r, WAIT_MS);
  if (err != BROOK_OK)
    fail_msg("the run ended with %s: %s", brook_errname(err), brook_runtime_last_error(rt));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  assert_true(st.records_in >= (uint64_t)produced);
  brook_runtime_free(rt);
  brook_topology_free(t);

  tally_t ta;
  tally_init(&ta, produced);
  tally_topic(&ta, b.bootstrap, "out");
  printf("  broker %d down/up (up at %lld ms), errors, broker %d slow: %lld records out for %d "
         "in, %lld duplicates, %lld ms\n",
         down, t_up, slow, (long long)ta.total, produced, (long long)ta.duplicates,
         kh_now_ms() - t0);
  tally_expect_all(&ta, "after the faults");
  tally_free(&ta);
  kp_producer_close(prod);
  kp_tail_close(tail);
  kp_watch_close(w);
  stop_broker(&b);
}

/* ---- 4. backpressure ---- */

/* The pipeline on a loop this test owns, so the runtime's counters are read where the API
 * allows it (on the loop thread): a timer copies stats.records_in every 5 ms. */
typedef struct loop_run {
  brook_runtime_t *rt;
  uv_loop_t loop;
  uv_timer_t sampler;
  atomic_ullong records_in;
  brook_err_t status;
  int loop_closed; /* uv_loop_close's result */
  wait_counter_t finished;
  pthread_t tid;
} loop_run_t;

static void sample_stats(uv_timer_t *h) { /* the loop thread */
  loop_run_t *r = h->data;
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  if (brook_runtime_stats(r->rt, &st) == BROOK_OK)
    atomic_store(&r->records_in, st.records_in);
}

static void on_run_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  (void)rt;
  loop_run_t *r = opaque;
  r->status = status;
  uv_close((uv_handle_t *)&r->sampler, NULL); /* the loop's last handle */
}

static void *loop_thread(void *arg) {
  loop_run_t *r = arg;
  uv_run(&r->loop, UV_RUN_DEFAULT);
  r->loop_closed = uv_loop_close(&r->loop);
  wait_counter_add(&r->finished, 1);
  return NULL;
}

/* One broker answering 300 ms late makes the sink slow: every Produce acknowledgement takes
 * a round trip of 300 ms. The source may have at most max_in_flight records awaiting
 * acknowledgement before it pauses its partitions. What the pipeline has read but not yet
 * written out (stats.records_in, sampled on the loop thread, minus the output topic's size
 * asked for afterwards) must stay within
 *   max_in_flight + batch_size
 * because (a) between batches, everything the source produced has been handed to the sink
 * (map is 1:1), so records_in = acknowledged + pending deliveries, and an acknowledged record
 * is in the output topic (whose size only grows, and is read after the sample); (b) the
 * source checks pending deliveries against max_in_flight before each batch, and at or over
 * it pauses its partitions and takes no batch, so a batch (at most batch_size records)
 * starts only while fewer than max_in_flight are pending; (c) what librdkafka prefetched
 * reaches the pipeline only through such batches (and pausing makes librdkafka drop it:
 * fetching resumes from the position the application reached). The input (N records) is
 * many times that bound, and the gap must also come close to max_in_flight at some point
 * (the sink really was the bottleneck, or the test proves nothing). */
static void test_backpressure_bounds_in_flight(void **state) {
  (void)state;
  const int n = 12000;
  const size_t max_in_flight = 2000;
  brook_runtime_opts_t defaults; /* pipe_build's runtime takes the default batch size */
  brook_runtime_opts_init(&defaults);
  const size_t batch_size = defaults.batch_size;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"in:2", "out:2", NULL});
  kp_producer_t *prod = kp_producer_open(b.bootstrap, NULL);
  assert_non_null(prod);
  assert_int_equal(kp_producer_send(prod, "in", "value-", 0, n, N_KEYS), 0);
  assert_int_equal(kp_producer_flush(prod, WAIT_MS), 0);
  kp_producer_close(prod);
  kp_watch_t *w = kp_watch_open(b.bootstrap, "bp");
  assert_non_null(w);
  assert_int_equal(broker_cmd(&b, "rtt 1 300"), 0);

  loop_run_t r;
  memset(&r, 0, sizeof(r));
  atomic_init(&r.records_in, 0);
  wait_counter_init(&r.finished, 0);
  pipe_spec_t s = {.bootstrap = b.bootstrap,
                   .group = "bp",
                   .in_topic = "in",
                   .out_topic = "out",
                   .tag = "p",
                   .in_partitions = 2,
                   .max_in_flight = max_in_flight,
                   .sink_batch = 500,
                   .on_done = on_run_done,
                   .on_done_opaque = &r};
  brook_topology_t *t = NULL;
  assert_non_null(r.rt = pipe_build(&s, &t));
  assert_int_equal(uv_loop_init(&r.loop), 0);
  assert_int_equal(uv_timer_init(&r.loop, &r.sampler), 0);
  r.sampler.data = &r;
  assert_int_equal(brook_runtime_start(r.rt, &r.loop), BROOK_OK);
  assert_int_equal(uv_timer_start(&r.sampler, sample_stats, 0, 5), 0);
  long long t0 = kh_now_ms();
  assert_int_equal(pthread_create(&r.tid, NULL, loop_thread, &r), 0);

  int64_t max_gap = 0, h = 0;
  int samples = 0;
  long long deadline = kh_now_ms() + 2 * WAIT_MS;
  while (h < n) {
    if (kh_now_ms() > deadline)
      fail_msg("only %lld of %d records came out", (long long)h, n);
    int64_t in = (int64_t)atomic_load(&r.records_in); /* before the output's size */
    if ((h = kp_high_sum(w, "out", 2, 5000)) < 0)
      continue;
    samples++;
    if (in - h > max_gap)
      max_gap = in - h;
  }
  long long elapsed = kh_now_ms() - t0;
  brook_runtime_stop(r.rt);
  if (!wait_counter_wait_ge(&r.finished, 1, WAIT_MS))
    fail_msg("the pipeline did not finish within %d ms of the stop", WAIT_MS);
  pthread_join(r.tid, NULL);
  wait_counter_destroy(&r.finished);
  assert_int_equal(r.loop_closed, 0); /* nothing of brook left on the loop */
  if (r.status != BROOK_OK)
    fail_msg("the run ended with %s: %s", brook_errname(r.status), brook_runtime_last_error(r.rt));
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  kp_watch_close(w);
  printf("  %d records in %lld ms; read but not written out: at most %lld (bound %zu), "
         "%d samples\n",
         n, elapsed, (long long)max_gap, max_in_flight + batch_size, samples);
  assert_true(max_gap <= (int64_t)(max_in_flight + batch_size));
  assert_true(max_gap >= (int64_t)max_in_flight / 2);
  stop_broker(&b);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--pipeline-child") == 0)
    return pipeline_child_main(argc - 2, argv + 2);
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show even if a deadline kills the run */
  const char *seed = getenv("BROOK_TEST_SEED");
  rng_seed = seed && *seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
  printf("kafka_recovery: BROOK_TEST_SEED=%llu\n", (unsigned long long)rng_seed);
  if (getenv("BROOK_TEST_FILTER")) /* e.g. BROOK_TEST_FILTER=test_crash* */
    cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_crash_restart_assigned, self_exec_teardown),
      cmocka_unit_test_teardown(test_crash_restart_subscribed, self_exec_teardown),
      cmocka_unit_test_teardown(test_scale_out_and_hand_over, self_exec_teardown),
      cmocka_unit_test_teardown(test_broker_faults_mid_run, self_exec_teardown),
      cmocka_unit_test_teardown(test_backpressure_bounds_in_flight, self_exec_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
