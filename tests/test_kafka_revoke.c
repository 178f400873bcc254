/* Revocations (kafka_rebalance.c, runtime/commit.c), on the embedded broker: a member that
 * gives partitions up in a rebalance suspends their tasks, waits for the acknowledgements of
 * every output derived from their input, commits their offsets and only then lets the group
 * hand them to another member, without blocking its loop.
 *  - handover (cooperative and eager assignors): with every broker response delayed, a second
 *    member joins while records flow. The group's committed offsets, sampled throughout, never
 *    pass an output that was not in the output topic yet; every input has an output (at least
 *    once); for each partition the second member took, the first member's outputs of the
 *    inputs below where the second began are all in the log before the second's first
 *    output; the duplicates are counted (a revocation that commits everything it read after
 *    the acknowledgements leaves none in a cooperative group);
 *  - timeout: the output topic's leader is down, so acknowledgements never come; the
 *    revocation ends within revoke_timeout_ms (plus scheduling), commits nothing past what
 *    was acknowledged, logs and counts it; the member runs attached to an application's loop
 *    whose own timer keeps ticking through the wait; once the leader is back every input has
 *    its output.
 * Members are runtimes on threads of this process. Every wait has a deadline. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <librdkafka/rdkafka.h>

#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/flush_counter.h"
#include "support/kafka_helpers.h"
#include "support/kafka_numbered.h"
#include "support/kafka_progress.h"
#include "support/log_capture.h"
#include "support/pipeline_child.h"
#include "support/wait.h"

#define N_PARTS 4
#define PER_PART 1200
#define BURST 25
#define MAX_SAMPLES 4096

/* ---- a member: a runtime on a thread, its task states seen from the test ---- */

typedef struct member {
  const char *tag;
  brook_topology_t *t;
  bg_run_t r;
  uv_mutex_t mu;
  int running[N_PARTS];              /* its task of the partition is RUNNING */
  long long revoke_from_ms[N_PARTS]; /* the task suspended for a revocation (0: not) */
  int revoked;                       /* tasks closed after a revocation */
  long long longest_revoke_ms;       /* SUSPENDED (revoked) -> CLOSED, the longest */
  atomic_long processed;             /* records read (counted before any key_by) */
  int keyed; /* M_KEYED: task ids interleave the input's (even) and the repartition topic's */
  atomic_long rekeyed; /* M_KEYED: records read back from the repartition topic */
  log_capture_t log;
  flush_counter_t fc; /* the buffering operator of M_KEYED */
  /* Attached to an application's loop (brook_runtime_start) on its own thread, with a timer
   * of the application's ticking every TICK_MS: the longest gap between its ticks. */
  int attach;
  uv_loop_t loop;
  uv_timer_t tick;
  long long last_tick, max_gap;
} member_t;

#define TICK_MS 10

static void on_tick(uv_timer_t *h) {
  member_t *m = h->data;
  long long now = kh_now_ms();
  uv_mutex_lock(&m->mu);
  if (m->last_tick && now - m->last_tick > m->max_gap)
    m->max_gap = now - m->last_tick;
  m->last_tick = now;
  uv_mutex_unlock(&m->mu);
  if (brook_runtime_done(m->r.rt))
    uv_close((uv_handle_t *)&m->tick, NULL); /* the loop ends once brook has closed too */
}

/* The application's thread: its loop, its timer, and the runtime attached to it. */
static void *app_loop_thread(void *arg) {
  member_t *m = arg;
  uv_timer_init(&m->loop, &m->tick);
  m->tick.data = m;
  m->r.result = brook_runtime_start(m->r.rt, &m->loop);
  uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
  uv_run(&m->loop, UV_RUN_DEFAULT);
  if (m->r.result == BROOK_OK)
    m->r.result = brook_runtime_status(m->r.rt);
  return NULL;
}

static void on_task_state(int32_t task, int old, int state, const char *reason, void *opaque) {
  (void)old;
  member_t *m = opaque;
  if (m->keyed && task % 2)
    return; /* a task of the repartition topic (runtime/task_ids.h) */
  task = m->keyed ? task / 2 : task;
  if (task < 0 || task >= N_PARTS)
    return;
  uv_mutex_lock(&m->mu);
  if (state == BROOK_TASK_RUNNING)
    m->running[task] = 1;
  if (state == BROOK_TASK_SUSPENDED && strstr(reason, "revoked"))
    m->revoke_from_ms[task] = kh_now_ms();
  if (state == BROOK_TASK_CLOSED) {
    m->running[task] = 0;
    if (m->revoke_from_ms[task]) {
      long long took = kh_now_ms() - m->revoke_from_ms[task];
      if (took > m->longest_revoke_ms)
        m->longest_revoke_ms = took;
      m->revoked++;
      m->revoke_from_ms[task] = 0;
    }
  }
  uv_mutex_unlock(&m->mu);
}

static void member_log(int level, const char *msg, void *opaque) {
  member_t *m = opaque;
  log_capture_cb(level, msg, &m->log);
  if (getenv("BROOK_TEST_LOG"))
    fprintf(stderr, "[%s] %s\n", m->tag, msg);
}

static brook_err_t count(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec;
  (void)ctx;
  atomic_fetch_add(&((member_t *)opaque)->processed, 1);
  return BROOK_OK;
}

/* A map_values: a map here could change the key, and the buffering operator after it would
 * then repartition again (stateless.h, "Key changes"). */
static brook_err_t count_rekeyed(const brook_record_t *rec, const void **value, size_t *value_len,
                                 brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  *value = rec->value;
  *value_len = rec->value_len;
  atomic_fetch_add(&((member_t *)opaque)->rekeyed, 1);
  return BROOK_OK;
}

/* How a member runs: an eager assignor (else cooperative-sticky), attached to an application's
 * loop (else its own), and with a key_by before a buffering operator (M_KEYED: records of every
 * task wait in the one instance after the key_by until a flush), committing every minute
 * (M_RARE_COMMITS: only a revocation or the stop flushes in between). */
enum { M_EAGER = 1, M_ATTACH = 2, M_KEYED = 4, M_RARE_COMMITS = 8 };

static brook_err_t same_key(const brook_record_t *rec, const void **key, size_t *key_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  (void)opaque;
  *key = rec->value; /* "<p>:<i>": one key per input */
  *key_len = rec->value_len;
  return BROOK_OK;
}

/* in [-> key_by -> buffering] -> "<tag>:<value>" -> out, subscribed to "in" in `group`. */
static void member_start(member_t *m, const char *bootstrap, const char *group, const char *tag,
                         int how, int64_t revoke_timeout_ms) {
  memset(m, 0, sizeof(*m));
  int eager = how & M_EAGER;
  m->attach = how & M_ATTACH;
  m->keyed = how & M_KEYED;
  flush_counter_init(&m->fc);
  m->tag = tag;
  uv_mutex_init(&m->mu);
  log_capture_init(&m->log);
  assert_int_equal(brook_topology_new(&m->t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){"in", NULL};
  /* The mock lets a join wait session.timeout.ms - 1 s for the other members: short. */
  static const char *const coop[] = {"session.timeout.ms", "3000", "heartbeat.interval.ms", "300",
                                     NULL};
  static const char *const range[] = {"session.timeout.ms",
                                      "3000",
                                      "heartbeat.interval.ms",
                                      "300",
                                      "partition.assignment.strategy",
                                      "range",
                                      NULL};
  so.properties = eager ? range : coop;
  so.revoke_timeout_ms = revoke_timeout_ms;
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = bootstrap;
  ko.topic = "out";
  /* Outputs wait 100 ms before they are sent: a revocation finds some in flight. */
  ko.properties = (const char *const[]){"linger.ms", "100", NULL};
  brook_stream_t *in = brook_map(brook_source_kafka(m->t, "in", &so), count, m);
  if (how & M_KEYED) {
    m->fc.buffer = 1;
    brook_stream_t *by = brook_stream_set_name(brook_key_by(in, same_key, NULL), "rekey");
    in = brook_apply(brook_map_values(by, count_rekeyed, m), &flush_counter_op, &m->fc);
  }
  assert_int_equal(
      brook_sink_kafka(brook_map(in, pc_tag_value, (void *)(uintptr_t)tag), "out", &ko), BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = how & M_RARE_COMMITS ? 60000 : 200;
  ro.on_task_state = on_task_state;
  ro.on_task_state_opaque = m;
  ro.log = member_log;
  ro.log_opaque = m;
  if (brook_runtime_new(&m->r.rt, m->t, &ro) != BROOK_OK)
    fail_msg("runtime: %s", brook_topology_last_error(m->t));
  if (!m->attach) {
    assert_int_equal(pthread_create(&m->r.thread, NULL, bg_run_thread, &m->r), 0);
    return;
  }
  assert_int_equal(uv_loop_init(&m->loop), 0);
  assert_int_equal(pthread_create(&m->r.thread, NULL, app_loop_thread, m), 0);
}

static int member_running(member_t *m) {
  uv_mutex_lock(&m->mu);
  int n = 0;
  for (int p = 0; p < N_PARTS; p++)
    n += m->running[p];
  uv_mutex_unlock(&m->mu);
  return n;
}

static int member_runs(member_t *m, int p) {
  uv_mutex_lock(&m->mu);
  int r = m->running[p];
  uv_mutex_unlock(&m->mu);
  return r;
}

static int member_revoked(member_t *m) {
  uv_mutex_lock(&m->mu);
  int n = m->revoked;
  uv_mutex_unlock(&m->mu);
  return n;
}

static brook_runtime_stats_t member_end(member_t *m) {
  brook_err_t err;
  if (m->attach) {
    brook_runtime_stop(m->r.rt);
    pthread_join(m->r.thread, NULL);
    err = m->r.result;
    assert_int_equal(uv_loop_close(&m->loop), 0);
  } else {
    err = bg_stop(&m->r);
  }
  if (err != BROOK_OK)
    fail_msg("member %s failed: %s", m->tag, brook_runtime_last_error(m->r.rt));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(m->r.rt, &st), BROOK_OK);
  brook_runtime_free(m->r.rt);
  brook_topology_free(m->t);
  uv_mutex_destroy(&m->mu);
  flush_counter_destroy(&m->fc);
  return st;
}

/* ---- input ---- */

static void produce_range(const char *bootstrap, int from, int to) {
  kn_produce(bootstrap, "in", N_PARTS, from, to, BURST);
}

static atomic_int produced_all;

static void *produce_all(void *bootstrap) {
  produce_range(bootstrap, 0, PER_PART);
  atomic_store(&produced_all, 1);
  return NULL;
}

/* ---- output ---- */

/* Each input's outputs in "out" (one partition), by member. */
typedef struct outputs {
  int64_t first[N_PARTS][PER_PART];    /* the first output's offset (-1: none) */
  int64_t first_a[N_PARTS][PER_PART];  /* the first of member A's (-1: none) */
  int64_t b_from_off[N_PARTS];         /* member B's first output of the partition */
  int b_from_i[N_PARTS];               /* ... and the lowest input it wrote one for */
  long total, per_input_max, distinct; /* outputs, most outputs of one input, inputs seen */
} outputs_t;

static void on_output(const rd_kafka_message_t *m, void *opaque) {
  outputs_t *o = opaque;
  char tag;
  int p, i;
  kn_parse(m, N_PARTS, PER_PART, &tag, &p, &i);
  o->total++;
  if (o->first[p][i] < 0)
    o->distinct++;
  if (o->first[p][i] < 0 || m->offset < o->first[p][i])
    o->first[p][i] = m->offset;
  if (tag == 'A' && (o->first_a[p][i] < 0 || m->offset < o->first_a[p][i]))
    o->first_a[p][i] = m->offset;
  if (tag == 'B') {
    if (o->b_from_off[p] < 0 || m->offset < o->b_from_off[p])
      o->b_from_off[p] = m->offset;
    if (o->b_from_i[p] < 0 || i < o->b_from_i[p])
      o->b_from_i[p] = i;
  }
}

/* Reads all of "out" (its high watermark, once every broker is up). */
static outputs_t *read_outputs(const char *bootstrap) {
  outputs_t *o = malloc(sizeof(*o));
  assert_non_null(o);
  memset(o, 0xff, sizeof(*o)); /* -1 */
  o->total = o->distinct = 0;
  kp_watch_t *w = kp_watch_open(bootstrap, NULL);
  assert_non_null(w);
  int64_t high = kp_high_sum(w, "out", 1, 10000);
  kp_watch_close(w);
  assert_true(high >= 0);
  rd_kafka_t *rd = kh_reader(bootstrap, "out", 1);
  assert_int_equal(kh_read(rd, (int)high, KH_TIMEOUT_MS, on_output, o), (int)high);
  kh_reader_close(rd);
  return o;
}

/* Every input [0, per_part) of every partition has an output. */
static void assert_at_least_once(const outputs_t *o, int per_part) {
  for (int p = 0; p < N_PARTS; p++)
    for (int i = 0; i < per_part; i++)
      if (o->first[p][i] < 0)
        fail_msg("input %d:%d has no output", p, i);
}

/* ---- committed offsets sampled while it runs ---- */

typedef struct sample {
  int64_t committed[N_PARTS];
  int64_t out_high; /* the output's high watermark, read after the committed offsets */
} sample_t;

static sample_t samples[MAX_SAMPLES];

/* ---- the hand-over ---- */

static member_t ma, mb;

static int a_runs_all(void *p) {
  (void)p;
  return member_running(&ma) == N_PARTS && atomic_load(&ma.processed) >= 100;
}

/* A second member joins while records flow: see the top of the file. */
static void handover(int how) {
  int eager = how & M_EAGER;
  const char *group = eager ? "g-revoke-eager" : how & M_KEYED ? "g-revoke-keyed" : "g-revoke-coop";
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:4", "out:1", NULL}, NULL), 0);
  assert_int_equal(broker_cmd(&b, "topic %s-rekey-repartition 4", group), 0);
  assert_int_equal(broker_cmd(&b, "rtt 1 100"), 0); /* every response 100 ms late */
  atomic_store(&produced_all, 0);
  member_start(&ma, b.bootstrap, group, "A", how | (how & M_KEYED ? M_RARE_COMMITS : 0), 0);
  pthread_t producer;
  assert_int_equal(pthread_create(&producer, NULL, produce_all, b.bootstrap), 0);
  if (!wait_until(a_runs_all, NULL, KH_TIMEOUT_MS))
    fail_msg("member A did not take every partition and process input in time");
  long long b_from = kh_now_ms();
  member_start(&mb, b.bootstrap, group, "B", how, 0);

  /* Sample until everything is committed: the first member's revocation commits are among
   * them. */
  rd_kafka_t *q = kh_client(RD_KAFKA_CONSUMER, b.bootstrap,
                            (const char *const[]){"group.id", group, NULL}, NULL, NULL);
  size_t n_samples = 0;
  long long deadline = kh_now_ms() + 90000, b_took = -1;
  for (;;) {
    sample_t sm;
    kn_sample(q, "in", N_PARTS, "out", sm.committed, &sm.out_high);
    if (n_samples < MAX_SAMPLES)
      samples[n_samples++] = sm;
    if (b_took < 0 && member_running(&mb) >= 1)
      b_took = kh_now_ms() - b_from;
    int done = b_took >= 0 && (!(how & M_KEYED) || atomic_load(&produced_all));
    if (how & M_KEYED) /* the repartition topic is read to its end too */
      done &= atomic_load(&ma.rekeyed) + atomic_load(&mb.rekeyed) >= N_PARTS * PER_PART;
    for (int p = 0; p < N_PARTS; p++) /* A commits rarely: then B's partitions only */
      if (!(how & M_KEYED) || member_runs(&mb, p))
        done &= sm.committed[p] == PER_PART;
    if (done)
      break;
    if (kh_now_ms() > deadline)
      fail_msg("not everything committed in time (B running: %d tasks)", member_running(&mb));
  }
  rd_kafka_destroy(q);
  pthread_join(producer, NULL);
  brook_runtime_stop(ma.r.rt); /* both at once: neither takes the other's partitions back */
  brook_runtime_stats_t sb = member_end(&mb), sa = member_end(&ma);
  assert_int_equal(broker_cmd(&b, "rtt 1 0"), 0);

  outputs_t *o = read_outputs(b.bootstrap);
  assert_at_least_once(o, PER_PART);
  /* After a key_by the records cross the repartition topic: an input offset is committed once
   * its record is in that topic (the reader's own commits then wait for the outputs), so the
   * output-before-commit and hand-over orders below hold per sub-topology, not end to end. */
  for (size_t k = 0; !(how & M_KEYED) && k < n_samples; k++)
    for (int p = 0; p < N_PARTS; p++)
      for (int64_t i = 0; i < samples[k].committed[p]; i++)
        if (o->first[p][i] >= samples[k].out_high)
          fail_msg("sample %zu: input %d:%lld committed (offset %lld) before its output was "
                   "acknowledged (output at %lld, high watermark %lld)",
                   k, p, (long long)i, (long long)samples[k].committed[p],
                   (long long)o->first[p][i], (long long)samples[k].out_high);
  /* Where B began a partition, A's outputs of the inputs below were in the log before B's
   * first output of it: A gave the partition up only once they were acknowledged. */
  int moved = 0;
  if (how & M_KEYED) /* B ran input tasks (outputs of any input come from either member) */
    moved = b_took >= 0;
  for (int p = 0; !(how & M_KEYED) && p < N_PARTS; p++) {
    if (o->b_from_i[p] < 0)
      continue;
    moved++;
    for (int i = 0; i < o->b_from_i[p]; i++)
      if (o->first_a[p][i] > o->b_from_off[p])
        fail_msg("partition %d: A's output of input %d (offset %lld) came after B's first output "
                 "(offset %lld): A handed the partition over before its outputs were in",
                 p, i, (long long)o->first_a[p][i], (long long)o->b_from_off[p]);
  }
  long dups = o->total - (long)N_PARTS * PER_PART;
  print_message("%s: %zu samples, B ran after %lld ms, %d partition(s) moved to B, A revoked %d "
                "task(s) (%llu acknowledged, %llu timed out; longest %lld ms), %ld duplicates "
                "of %d inputs; commits A %llu B %llu\n",
                eager           ? "eager"
                : how & M_KEYED ? "key_by + buffering"
                                : "cooperative",
                n_samples, b_took, moved, ma.revoked, (unsigned long long)sa.revocations,
                (unsigned long long)sa.revocations_timed_out, ma.longest_revoke_ms, dups,
                N_PARTS * PER_PART, (unsigned long long)sa.commits, (unsigned long long)sb.commits);
  assert_true(moved >= 1);
  assert_true(ma.revoked >= 1);
  assert_true(sa.revocations >= 1);
  assert_int_equal(sa.revocations_timed_out, 0);
  assert_non_null(strstr(log_capture_text(&ma.log), "their outputs acknowledged"));
  if (!eager) /* everything read was committed at the hand-over, after its acknowledgements */
    assert_int_equal(dups, 0);
  free(o);
  log_capture_free(&ma.log);
  log_capture_free(&mb.log);
  assert_int_equal(broker_stop(&b), 0);
}

static void test_handover_cooperative(void **state) {
  (void)state;
  handover(0);
}

static void test_handover_eager(void **state) {
  (void)state;
  handover(M_EAGER);
}

/* After a key_by (through the repartition topic "<group>-rekey-repartition"), an operator
 * that holds records until a flush runs per task of the topic, and the first member commits
 * only every minute: the revocations of its input and repartition tasks flush and commit, no
 * input is lost and, in a cooperative group, none is read twice. */
static void test_handover_buffered_after_key_by(void **state) {
  (void)state;
  handover(M_KEYED);
}

/* ---- the timeout ---- */

#define TIMEOUT_MS 2000
#define FIRST 50 /* per partition, acknowledged and committed before the leader goes down */

static int a_processed_all(void *p) {
  (void)p;
  return atomic_load(&ma.processed) >= 2 * FIRST * N_PARTS;
}

static int a_revoked(void *p) {
  (void)p;
  return member_revoked(&ma) >= 1;
}

static int64_t committed_sum(kp_watch_t *w) { return kp_committed_sum(w, "in", N_PARTS, 10000); }

static void test_timeout_commits_nothing_unacknowledged(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 2, (const char *const[]){"in:4", "out:1", NULL}, NULL), 0);
  /* Everything on broker 1 but the output's leader: broker 2 going down stops only the
   * acknowledgements. */
  for (int p = 0; p < N_PARTS; p++)
    assert_int_equal(broker_cmd(&b, "leader in %d 1", p), 0);
  assert_int_equal(broker_cmd(&b, "leader out 0 2"), 0);
  assert_int_equal(broker_cmd(&b, "coordinator g-revoke-timeout 1"), 0);
  member_start(&ma, b.bootstrap, "g-revoke-timeout", "A", M_ATTACH, TIMEOUT_MS);
  produce_range(b.bootstrap, 0, FIRST);
  kp_watch_t *w = kp_watch_open(b.bootstrap, "g-revoke-timeout");
  assert_non_null(w);
  long long deadline = kh_now_ms() + KH_TIMEOUT_MS;
  while (committed_sum(w) != FIRST * N_PARTS)
    if (kh_now_ms() > deadline)
      fail_msg("the first %d records were not committed in time", FIRST * N_PARTS);

  assert_int_equal(broker_cmd(&b, "down 2"), 0);
  produce_range(b.bootstrap, FIRST, 2 * FIRST);
  if (!wait_until(a_processed_all, NULL, KH_TIMEOUT_MS))
    fail_msg("A processed %ld of %d records", atomic_load(&ma.processed), 2 * FIRST * N_PARTS);
  member_start(&mb, b.bootstrap, "g-revoke-timeout", "B", 0, TIMEOUT_MS);
  if (!wait_until(a_revoked, NULL, KH_TIMEOUT_MS))
    fail_msg("A revoked nothing in time");
  uv_mutex_lock(&ma.mu);
  long long took = ma.longest_revoke_ms, gap = ma.max_gap;
  uv_mutex_unlock(&ma.mu);
  /* Handed over at the bound: it waited for it, and not much longer. Meanwhile the
   * application's loop, which A is attached to, kept running: its timer never waited for
   * the revocation. */
  print_message("timeout: the revocation took %lld ms (revoke_timeout_ms %d); the application's "
                "%d ms timer on A's loop was late by at most %lld ms\n",
                took, TIMEOUT_MS, TICK_MS, gap - TICK_MS);
  assert_true(took >= TIMEOUT_MS - 50);
  assert_true(took <= TIMEOUT_MS + 2000);
  assert_true(gap < TIMEOUT_MS / 2);
  /* Nothing unacknowledged was committed: every partition is still where the first records
   * ended (the later outputs were never acknowledged, by A or B). */
  for (int p = 0; p < N_PARTS; p++)
    assert_int_equal(kh_committed(b.bootstrap, "g-revoke-timeout", "in", p), FIRST);

  /* The leader comes back: every input gets its output (A's retried ones, B's re-reads). */
  assert_int_equal(broker_cmd(&b, "up 2"), 0);
  deadline = kh_now_ms() + 60000;
  while (committed_sum(w) != 2 * FIRST * N_PARTS)
    if (kh_now_ms() > deadline)
      fail_msg("not committed in time after the leader came back");
  kp_watch_close(w);
  brook_runtime_stop(ma.r.rt);
  brook_runtime_stats_t sb = member_end(&mb), sa = member_end(&ma);
  (void)sb;
  assert_true(sa.revocations_timed_out >= 1);
  assert_non_null(strstr(log_capture_text(&ma.log), "outputs still unacknowledged"));
  outputs_t *o = read_outputs(b.bootstrap);
  assert_at_least_once(o, 2 * FIRST);
  print_message("timeout: %llu partition(s) handed over at the timeout, %ld duplicates of %d "
                "inputs\n",
                (unsigned long long)sa.revocations_timed_out, o->total - 2L * FIRST * N_PARTS,
                2 * FIRST * N_PARTS);
  free(o);
  log_capture_free(&ma.log);
  log_capture_free(&mb.log);
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_handover_cooperative),
      cmocka_unit_test(test_handover_eager),
      cmocka_unit_test(test_handover_buffered_after_key_by),
      cmocka_unit_test(test_timeout_commits_nothing_unacknowledged),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
