/* Kafka on N workers: each worker's Kafka source instance is a member of the group (its own
 * consumer on its own loop), the group spreads the 8 partitions over the workers, and each
 * partition's task (here a tumbling window) runs on the worker consuming it; each worker's
 * sinks use that worker's producer. The per-key window results are the same with 1, 2 and 4
 * workers, every worker emits some of them, and a partition's results all come from one
 * worker. Not in the `threads` label: Debian's librdkafka is not TSan-instrumented. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <librdkafka/rdkafka.h>

#include "kafka/kafka_producer.h" /* bk_kprod_clients: the librdkafka producers that exist */
#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

#define N_PARTS 8
#define N_KEYS 5
#define N_WIN 384
#define MAX_WORKERS 4
#define TS0 10000
#define STEP 200
#define WIN_MS 1000
#define BATCH_MS 128000 /* batch b's records start at TS0 + b * BATCH_MS */
#define END_MS 100000   /* and its "end" records are END_MS later */

/* Batch b: partition p has 40 + 10 p records, keys "p<p>-k<j>" with j = (i * i + p) %
 * N_KEYS, at TS0 + b * BATCH_MS + i * STEP; then one "end" record END_MS after the batch's
 * start, so every data window of the batch closes (before the next batch's records). */
static int n_records(int p) { return 40 + 10 * p; }
static int64_t ts_of(int batch, int i) { return TS0 + (int64_t)batch * BATCH_MS + i * STEP; }
static int key_of(int p, int i) { return (i * i + p) % N_KEYS; }
static int win_of(int64_t end) { return (int)(end / WIN_MS) - TS0 / WIN_MS - 1; }

static int on_dr_failed;
static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err)
    on_dr_failed++;
}

static void produce_input(const char *bootstrap, const char *topic, int batch) {
  on_dr_failed = 0;
  rd_kafka_t *rk = kh_client(RD_KAFKA_PRODUCER, bootstrap, NULL, on_dr, NULL);
  for (int p = 0; p < N_PARTS; p++) {
    for (int i = 0; i <= n_records(p); i++) {
      char key[32];
      int end = i == n_records(p);
      if (end)
        snprintf(key, sizeof(key), "end");
      else
        snprintf(key, sizeof(key), "p%d-k%d", p, key_of(p, i));
      int64_t ts = end ? ts_of(batch, 0) + END_MS : ts_of(batch, i);
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_KEY(key, strlen(key)),
          RD_KAFKA_V_VALUE("v", 1), RD_KAFKA_V_TIMESTAMP(ts),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
  }
  assert_int_equal(rd_kafka_flush(rk, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(on_dr_failed, 0);
  rd_kafka_destroy(rk);
}

/* The expected count of key (p, j) in window w after batches 0 .. batches - 1, and how many
 * window results there are. */
static int expected(int64_t exp[N_PARTS][N_KEYS][N_WIN], int batches) {
  memset(exp, 0, sizeof(int64_t) * N_PARTS * N_KEYS * N_WIN);
  int results = 0;
  for (int b = 0; b < batches; b++)
    for (int p = 0; p < N_PARTS; p++)
      for (int i = 0; i < n_records(p); i++) {
        int64_t ts = ts_of(b, i);
        int64_t *c = &exp[p][key_of(p, i)][win_of(ts - ts % WIN_MS + WIN_MS)];
        results += *c == 0;
        (*c)++;
      }
  return results;
}

/* ---- what the run saw (sink callbacks and task-state changes, on the workers' threads) ---- */

typedef struct seen {
  uv_mutex_t mu;
  int64_t got[N_PARTS][N_KEYS][N_WIN];
  int dup; /* a (key, window) reported twice, or a result that is not ours */
  pthread_t part_thread[N_PARTS];
  int part_seen[N_PARTS];
  int part_split; /* a partition's results came from two threads */
  pthread_t threads[MAX_WORKERS + 1];
  int n_threads;
  pthread_t running[2 * N_PARTS]; /* the thread where each task is RUNNING (by task id) */
  int is_running[2 * N_PARTS];
  wait_counter_t results;
} seen_t;

static void add_thread(pthread_t *set, int *n, int cap, pthread_t t) {
  for (int i = 0; i < *n; i++)
    if (pthread_equal(set[i], t))
      return;
  if (*n < cap)
    set[(*n)++] = t;
}

static brook_err_t on_result(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  brook_window_value_t wv;
  const void *res = NULL;
  if (brook_window_parse(rec, &wv, &res) != BROOK_OK || wv.result_len != sizeof(int64_t))
    return BROOK_ERR_USER;
  int64_t count;
  memcpy(&count, res, sizeof(count));
  char key[32] = {0};
  memcpy(key, rec->key, rec->key_len < sizeof(key) - 1 ? rec->key_len : sizeof(key) - 1);
  int p = -1, j = -1, w = win_of(wv.end);
  if (strcmp(key, "end") == 0)
    return BROOK_OK; /* an earlier batch's end record, once a later batch moves time on */
  uv_mutex_lock(&s->mu);
  if (sscanf(key, "p%d-k%d", &p, &j) != 2 || p < 0 || p >= N_PARTS || j < 0 || j >= N_KEYS ||
      w < 0 || w >= N_WIN || s->got[p][j][w]) {
    s->dup++;
  } else {
    s->got[p][j][w] = count;
    pthread_t me = pthread_self();
    if (s->part_seen[p]++ && !pthread_equal(s->part_thread[p], me))
      s->part_split++;
    s->part_thread[p] = me;
    add_thread(s->threads, &s->n_threads, MAX_WORKERS + 1, me);
  }
  uv_mutex_unlock(&s->mu);
  wait_counter_add(&s->results, 1);
  return BROOK_OK;
}

static void on_task(int32_t task, int old_state, int new_state, const char *reason, void *opaque) {
  (void)old_state;
  (void)reason;
  seen_t *s = opaque;
  if (task < 0 || task >= 2 * N_PARTS)
    return;
  uv_mutex_lock(&s->mu);
  s->is_running[task] = new_state == BROOK_TASK_RUNNING;
  s->running[task] = pthread_self();
  uv_mutex_unlock(&s->mu);
}

typedef struct spread {
  seen_t *s;
  int workers;
  int tasks; /* N_PARTS, or 2 * N_PARTS with a repartition topic (its own tasks) */
} spread_t;

/* Every task RUNNING, on `workers` different threads: the group's assignment is complete. */
static int tasks_spread(void *p) {
  spread_t *sp = p;
  seen_t *s = sp->s;
  pthread_t set[2 * N_PARTS];
  int n = 0, running = 0;
  uv_mutex_lock(&s->mu);
  for (int t = 0; t < 2 * N_PARTS; t++)
    if (s->is_running[t]) {
      running++;
      add_thread(set, &n, 2 * N_PARTS, s->running[t]);
    }
  uv_mutex_unlock(&s->mu);
  return running == (sp->tasks ? sp->tasks : N_PARTS) && n == sp->workers;
}

/* ---- the run ---- */

typedef struct committed {
  const char *bootstrap, *group, *topic;
  int batches;
} committed_t;

/* Every partition's committed offset is past all `batches` batches. */
static int all_committed(void *p) {
  const committed_t *c = p;
  for (int q = 0; q < N_PARTS; q++)
    if (kh_committed(c->bootstrap, c->group, c->topic, q) != c->batches * (n_records(q) + 1))
      return 0;
  return 1;
}

enum {
  EXPLICIT = 1, /* an explicit assignment instead of a group subscription */
  KEYED =
      2, /* key_by before the window: through the repartition topic "<group>-rekey-repartition" */
  TO_KAFKA = 4 /* the results also go to a Kafka sink (topic "<input>-out", 8 partitions) */
};

static brook_err_t same_key(const brook_record_t *rec, const void **key, size_t *key_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  (void)opaque;
  *key = rec->key;
  *key_len = rec->key_len;
  return BROOK_OK;
}

static brook_topology_t *window_pipeline(const char *bootstrap, const char *group,
                                         const char *topic, int mode, seen_t *s) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  const char *topics[] = {topic, NULL};
  brook_kafka_partition_t parts[N_PARTS];
  if (mode & EXPLICIT) {
    for (int p = 0; p < N_PARTS; p++)
      parts[p] = (brook_kafka_partition_t){topic, p, BROOK_KAFKA_OFFSET_BEGINNING};
    so.partitions = parts;
    so.n_partitions = N_PARTS;
  } else {
    so.topics = topics;
  }
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  assert_non_null(in);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(WIN_MS);
  if (mode & KEYED)
    in = brook_stream_set_name(brook_key_by(in, same_key, NULL), "rekey");
  brook_stream_t *w = brook_window_aggregate(in, &win, &count, NULL);
  assert_int_equal(brook_sink_callback(w, on_result, NULL, s), BROOK_OK);
  if (mode & TO_KAFKA) {
    char out[40];
    snprintf(out, sizeof(out), "%s-out", topic);
    brook_kafka_sink_opts_t ko;
    brook_kafka_sink_opts_init(&ko);
    ko.bootstrap_servers = bootstrap;
    ko.topic = out;
    assert_int_equal(brook_sink_kafka(w, "out", &ko), BROOK_OK);
  }
  if (brook_topology_validate(t) != BROOK_OK)
    fail_msg("topology: %s", brook_topology_last_error(t));
  return t;
}

static void log_to_stderr(int level, const char *msg, void *opaque) {
  (void)opaque;
  fprintf(stderr, "[brook %d] %s\n", level, msg);
}

/* Starts a runtime for `t` on `workers` workers, its task changes reported to `s`.
 * BROOK_TEST_LOG=1 sends its log to stderr. */
static void start_run(bg_run_t *r, brook_topology_t *t, int workers, seen_t *s) {
  brook_runtime_opts_t o = *kh_rt_opts();
  o.num_workers = (size_t)workers;
  o.on_task_state = on_task;
  o.on_task_state_opaque = s;
  if (getenv("BROOK_TEST_LOG"))
    o.log = log_to_stderr;
  if (brook_runtime_new(&r->rt, t, &o) != BROOK_OK)
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  assert_int_equal(pthread_create(&r->thread, NULL, bg_run_thread, r), 0);
}

static void seen_init(seen_t *s) {
  memset(s, 0, sizeof(*s));
  uv_mutex_init(&s->mu);
  wait_counter_init(&s->results, 0);
}

static void seen_destroy(seen_t *s) {
  uv_mutex_destroy(&s->mu);
  wait_counter_destroy(&s->results);
}

/* Runs the window pipeline on `workers` workers over a fresh topic and checks its results. A
 * group member per worker, or with EXPLICIT an explicit assignment (worker k takes
 * partitions k, k + workers, ...). */
static void run_windows(broker_proc_t *b, int workers, int mode) {
  char topic[32], group[32], out[40];
  snprintf(topic, sizeof(topic), "in%d-%d", workers, mode);
  snprintf(group, sizeof(group), "g%d-%d", workers, mode);
  snprintf(out, sizeof(out), "%s-out", topic);
  assert_int_equal(broker_cmd(b, "topic %s %d", topic, N_PARTS), 0);
  if (mode & TO_KAFKA)
    assert_int_equal(broker_cmd(b, "topic %s %d", out, N_PARTS), 0);
  if (mode & KEYED)
    assert_int_equal(broker_cmd(b, "topic %s-rekey-repartition %d", group, N_PARTS), 0);
  static seen_t s;
  seen_init(&s);
  brook_topology_t *t = window_pipeline(b->bootstrap, group, topic, mode, &s);
  bg_run_t r;
  start_run(&r, t, workers, &s);
  /* Input goes in once the group has settled: a partition moving later would take its open
   * windows' in-memory state with it (durable state is the next issue's). */
  spread_t sp = {&s, workers, mode & KEYED ? 2 * N_PARTS : N_PARTS};
  assert_true(wait_until(tasks_spread, &sp, KH_TIMEOUT_MS));
  produce_input(b->bootstrap, topic, 0);
  static int64_t exp[N_PARTS][N_KEYS][N_WIN];
  int want = expected(exp, 1);
  assert_true(wait_counter_wait_ge(&s.results, want, KH_TIMEOUT_MS));
  if (mode & TO_KAFKA) {
    /* One producer per worker, shared by nothing else here; read while the run goes on: the
     * workers created them at start-up and keep them until they close. */
    assert_int_equal(bk_kprod_clients(r.rt), workers);
    rd_kafka_t *rd = kh_reader(b->bootstrap, out, N_PARTS);
    assert_int_equal(kh_read(rd, want, KH_TIMEOUT_MS, NULL, NULL), want);
    kh_reader_close(rd);
  }
  /* Each worker commits its own partitions' offsets through its commit coordinator. */
  committed_t cm = {b->bootstrap, group, topic, 1};
  assert_true(wait_until(all_committed, &cm, KH_TIMEOUT_MS));
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  brook_runtime_free(r.rt);
  brook_topology_free(t);

  assert_int_equal(s.dup, 0);
  assert_int_equal(wait_counter_get(&s.results), want);
  assert_memory_equal(s.got, exp, sizeof(exp));
  assert_int_equal(s.n_threads, workers); /* every worker emitted results */
  if (!(mode & KEYED))
    assert_int_equal(s.part_split, 0); /* a partition's task ran on one worker */
  int64_t in = 0;
  for (int p = 0; p < N_PARTS; p++)
    in += n_records(p) + 1;
  /* Keyed: each record is read again from the repartition topic. */
  assert_int_equal(st.records_in, mode & KEYED ? 2 * in : in);
  assert_true(all_committed(&cm)); /* the stop's final commits never go back */
  seen_destroy(&s);
}

static broker_proc_t broker;

/* A runtime of 2 workers holds the 8 partitions; a second runtime of 2 workers joins the
 * group (4 members: each worker's partitions are revoked, flushed, committed and closed on
 * that worker, or kept), then leaves again (its partitions come back). After each settles a
 * batch of input goes in, and is committed (each worker commits its own partitions) before
 * the next change: the window results of all three batches are exact, with no duplicate (a
 * partition that moved resumes at its committed offset on its new worker), and came from
 * the second runtime's workers too. */
static void test_rebalance_between_runtimes(void **state) {
  (void)state;
  broker_proc_t *b = &broker;
  const char *topic = "inr", *group = "gr";
  assert_int_equal(broker_cmd(b, "topic %s %d", topic, N_PARTS), 0);
  static seen_t s;
  seen_init(&s);
  brook_topology_t *ta = window_pipeline(b->bootstrap, group, topic, 0, &s);
  brook_topology_t *tb = window_pipeline(b->bootstrap, group, topic, 0, &s);
  static int64_t exp[N_PARTS][N_KEYS][N_WIN];
  bg_run_t ra, rb;
  start_run(&ra, ta, 2, &s);
  spread_t sp = {&s, 2, 0};
  assert_true(wait_until(tasks_spread, &sp, KH_TIMEOUT_MS));
  produce_input(b->bootstrap, topic, 0);
  assert_true(wait_counter_wait_ge(&s.results, expected(exp, 1), KH_TIMEOUT_MS));
  committed_t cm = {b->bootstrap, group, topic, 1};
  assert_true(wait_until(all_committed, &cm, KH_TIMEOUT_MS));

  start_run(&rb, tb, 2, &s);
  sp.workers = 4;
  assert_true(wait_until(tasks_spread, &sp, KH_TIMEOUT_MS));
  produce_input(b->bootstrap, topic, 1);
  assert_true(wait_counter_wait_ge(&s.results, expected(exp, 2), KH_TIMEOUT_MS));
  cm.batches = 2;
  assert_true(wait_until(all_committed, &cm, KH_TIMEOUT_MS));
  uv_mutex_lock(&s.mu);
  int threads = s.n_threads;
  uv_mutex_unlock(&s.mu);
  assert_int_equal(threads, 4); /* the second runtime's workers emitted results */

  assert_int_equal(bg_stop(&rb), BROOK_OK);
  sp.workers = 2;
  assert_true(wait_until(tasks_spread, &sp, KH_TIMEOUT_MS));
  produce_input(b->bootstrap, topic, 2);
  int want = expected(exp, 3);
  assert_true(wait_counter_wait_ge(&s.results, want, KH_TIMEOUT_MS));
  cm.batches = 3;
  assert_true(wait_until(all_committed, &cm, KH_TIMEOUT_MS));
  assert_int_equal(bg_stop(&ra), BROOK_OK);
  brook_runtime_free(ra.rt);
  brook_runtime_free(rb.rt);
  brook_topology_free(ta);
  brook_topology_free(tb);

  assert_int_equal(s.dup, 0);
  assert_int_equal(wait_counter_get(&s.results), want);
  assert_memory_equal(s.got, exp, sizeof(exp));
  assert_true(all_committed(&cm));
  seen_destroy(&s);
}

static int setup(void **state) {
  (void)state;
  return broker_start(&broker, 1, NULL, NULL);
}

static int teardown(void **state) {
  (void)state;
  return broker_stop(&broker);
}

static void test_group_1_worker(void **state) {
  (void)state;
  run_windows(&broker, 1, 0);
}

static void test_group_2_workers(void **state) {
  (void)state;
  run_windows(&broker, 2, 0);
}

static void test_group_4_workers(void **state) {
  (void)state;
  run_windows(&broker, 4, 0);
}

static void test_assigned_4_workers(void **state) {
  (void)state;
  run_windows(&broker, 4, EXPLICIT);
}

static void test_producer_per_worker(void **state) {
  (void)state;
  run_windows(&broker, 2, TO_KAFKA);
}

/* key_by after a Kafka source with 2 workers (it used to be refused: records crossed
 * workers in-process, outside the commits): through the repartition topic, whose writes the
 * commits wait for, the per-key windows are exact. */
static void test_key_by_with_workers(void **state) {
  (void)state;
  run_windows(&broker, 2, KEYED);
}

/* A line sink has one instance, on worker 0: records of a Kafka source reach it from every
 * worker through a gather, so it is refused with N workers for the same reason. */
static void test_line_sink_after_kafka_refused_with_workers(void **state) {
  (void)state;
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = broker.bootstrap;
  so.group_id = "gl";
  const char *topics[] = {"inl", NULL};
  so.topics = topics;
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  assert_non_null(in);
  assert_int_equal(brook_sink_lines(in, "/dev/null", NULL), BROOK_OK);
  brook_runtime_opts_t o = *kh_rt_opts();
  o.num_workers = 2;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  const char *msg = brook_topology_last_error(t);
  assert_non_null(strstr(msg, "runs once (on worker 0) and records from Kafka source 'in'"));
  o.num_workers = 1;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_group_1_worker),
      cmocka_unit_test(test_group_2_workers),
      cmocka_unit_test(test_group_4_workers),
      cmocka_unit_test(test_assigned_4_workers),
      cmocka_unit_test(test_producer_per_worker),
      cmocka_unit_test(test_key_by_with_workers),
      cmocka_unit_test(test_line_sink_after_kafka_refused_with_workers),
      cmocka_unit_test(test_rebalance_between_runtimes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
