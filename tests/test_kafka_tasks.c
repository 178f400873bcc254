/* Tasks: downstream of a Kafka source every operator runs as one instance per input
 * partition (its own state, timers and watermark), opened on assignment and flushed and
 * closed on revocation; after key_by, and at sinks, one instance serves every partition.
 * Checked with a custom operator that records its instances' life cycles, windows that fire
 * per partition, and a second group member taking partitions (and their tasks) over. */
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

#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/fail_alloc.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

#define N_PARTS 4
#define MAX_INST 64

/* ---- what the operator instances saw, shared with the test thread ---- */

typedef struct inst_log {
  uv_mutex_t mu;
  int opens, closes, flushes;
  int live[N_PARTS]; /* open instances per task */
  int32_t open_task[MAX_INST], close_task[MAX_INST];
  long close_count[MAX_INST]; /* records the instance saw, reported at close */
  long mismatched;            /* records processed by the task of another partition */
  long records;
  long untasked_records; /* records seen by instances with task -1 (after key_by) */
  wait_counter_t sunk;   /* records that reached the sink */
} inst_log_t;

static void log_init(inst_log_t *l) {
  memset(l, 0, sizeof(*l));
  uv_mutex_init(&l->mu);
  wait_counter_init(&l->sunk, 0);
}

static void log_destroy(inst_log_t *l) {
  uv_mutex_destroy(&l->mu);
  wait_counter_destroy(&l->sunk);
}

typedef struct tally {
  inst_log_t *log;
  int32_t task;
  long count;
} tally_t;

static brook_err_t tally_open(brook_ctx_t *ctx, void *opaque, void **state) {
  tally_t *t = calloc(1, sizeof(*t));
  if (!t)
    return BROOK_ERR_NOMEM;
  t->log = opaque;
  t->task = brook_ctx_task(ctx);
  uv_mutex_lock(&t->log->mu);
  if (t->task >= 0 && t->task < N_PARTS)
    t->log->live[t->task]++;
  if (t->task >= 0 && t->log->opens < MAX_INST)
    t->log->open_task[t->log->opens++] = t->task;
  uv_mutex_unlock(&t->log->mu);
  *state = t;
  return BROOK_OK;
}

/* Values are "p<partition>:<i>": the partition the producer wrote the record to. */
static brook_err_t tally_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  tally_t *t = state;
  int p = -1;
  char v[32];
  size_t n = rec->value_len < sizeof(v) - 1 ? rec->value_len : sizeof(v) - 1;
  memcpy(v, rec->value, n);
  v[n] = '\0';
  sscanf(v, "p%d:", &p);
  uv_mutex_lock(&t->log->mu);
  if (t->task < 0)
    t->log->untasked_records++;
  else if (p != t->task)
    t->log->mismatched++;
  t->log->records++;
  uv_mutex_unlock(&t->log->mu);
  t->count++;
  return brook_emit(ctx, rec);
}

static brook_err_t tally_flush(brook_ctx_t *ctx, void *state) {
  (void)ctx;
  tally_t *t = state;
  uv_mutex_lock(&t->log->mu);
  t->log->flushes++;
  uv_mutex_unlock(&t->log->mu);
  return BROOK_OK;
}

static void tally_close(void *state, void *opaque) {
  (void)opaque;
  tally_t *t = state;
  uv_mutex_lock(&t->log->mu);
  if (t->task >= 0 && t->task < N_PARTS)
    t->log->live[t->task]--;
  if (t->task >= 0 && t->log->closes < MAX_INST) {
    t->log->close_task[t->log->closes] = t->task;
    t->log->close_count[t->log->closes++] = t->count;
  }
  uv_mutex_unlock(&t->log->mu);
  free(t);
}

static const brook_operator_t tally_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "tally",
    .open = tally_open,
    .process = tally_process,
    .flush = tally_flush,
    .close = tally_close,
};

/* A sink written as a custom operator: it must run once per runtime (task -1). */
static brook_err_t sink_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  (void)rec;
  return brook_ctx_task(ctx) == -1 ? BROOK_OK : BROOK_ERR_STATE;
}

static brook_err_t count_sunk(const brook_record_t *rec, void *opaque) {
  (void)rec;
  wait_counter_add(&((inst_log_t *)opaque)->sunk, 1);
  return BROOK_OK;
}

static brook_err_t same_key(const brook_record_t *rec, const void **key, size_t *key_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  (void)opaque;
  *key = rec->key;
  *key_len = rec->key_len;
  return BROOK_OK;
}

static const brook_operator_t sink_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "task_sink",
    .process = sink_process,
};

/* ---- producing to chosen partitions with chosen timestamps ---- */

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  int *failed = opaque;
  if (m->err)
    (*failed)++;
}

/* Produces n[p] records "p<p>:<i>" with key "k<p>-<i % 7>" to partition p, timestamps
 * ts0 + i * step, and waits until all are acknowledged. */
static void produce_parts(const char *bootstrap, const char *topic, const int *n, int parts,
                          int64_t ts0, int64_t step) {
  int failed = 0;
  rd_kafka_t *rk = kh_client(RD_KAFKA_PRODUCER, bootstrap, NULL, on_dr, &failed);
  for (int p = 0; p < parts; p++) {
    for (int i = 0; i < n[p]; i++) {
      char key[32], val[32];
      snprintf(key, sizeof(key), "k%d-%d", p, i % 7);
      int vlen = snprintf(val, sizeof(val), "p%d:%d", p, i);
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_KEY(key, strlen(key)),
          RD_KAFKA_V_VALUE(val, (size_t)vlen), RD_KAFKA_V_TIMESTAMP(ts0 + i * step),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
  }
  assert_int_equal(rd_kafka_flush(rk, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(failed, 0);
  rd_kafka_destroy(rk);
}

static brook_stream_t *kafka_in(brook_topology_t *t, const char *bootstrap, const char *group,
                                const char *topic, int assign_parts) {
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  static brook_kafka_partition_t parts[N_PARTS];
  const char *topics[] = {topic, NULL};
  if (assign_parts) {
    for (int p = 0; p < assign_parts; p++)
      parts[p] = (brook_kafka_partition_t){topic, p, BROOK_KAFKA_OFFSET_BEGINNING};
    so.partitions = parts;
    so.n_partitions = (size_t)assign_parts;
  } else {
    so.topics = topics;
  }
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  assert_non_null(in);
  return in;
}

/* in -> tally (per task) -> callback sink; in -> key_by -> tally (once) -> custom sink. */
static brook_topology_t *tally_pipeline(const char *bootstrap, const char *group, int assign_parts,
                                        inst_log_t *per_part, inst_log_t *after_key) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = kafka_in(t, bootstrap, group, "in", assign_parts);
  brook_stream_t *tallied = brook_apply(in, &tally_op, per_part);
  assert_int_equal(brook_sink_callback(tallied, count_sunk, NULL, per_part), BROOK_OK);
  if (after_key) {
    brook_stream_t *by = brook_stream_set_name(brook_key_by(in, same_key, NULL), "rekey");
    brook_stream_t *rekeyed = brook_apply(by, &tally_op, after_key);
    brook_operator_opts_t oo;
    brook_operator_opts_init(&oo);
    oo.n_outputs = 0;
    assert_int_equal(brook_operator_add(&rekeyed, 1, &sink_op, NULL, &oo, NULL), BROOK_OK);
    assert_int_equal(brook_sink_callback(rekeyed, count_sunk, NULL, after_key), BROOK_OK);
  }
  if (brook_topology_validate(t) != BROOK_OK)
    fail_msg("topology: %s", brook_topology_last_error(t));
  return t;
}

static int sorted_tasks_are(const int32_t *tasks, int n, int want_n) {
  int seen[N_PARTS] = {0};
  if (n != want_n)
    return 0;
  for (int i = 0; i < n; i++) {
    if (tasks[i] < 0 || tasks[i] >= N_PARTS || seen[tasks[i]]++)
      return 0;
  }
  return 1;
}

/* Explicit assignment of four partitions: four task instances, each seeing exactly its own
 * partition's records, closed once at the end; after key_by the records cross the repartition
 * topic, read by four tasks of its own (one per partition of the topic) that see them all. */
static void test_one_task_per_partition(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(
      broker_start(&b, 1, (const char *const[]){"in:4", "tasks1-rekey-repartition:4", NULL}, NULL),
      0);
  const int n[N_PARTS] = {100, 200, 300, 400};
  produce_parts(b.bootstrap, "in", n, N_PARTS, 1000, 10);
  inst_log_t per, after;
  log_init(&per);
  log_init(&after);
  brook_topology_t *t = tally_pipeline(b.bootstrap, "tasks1", N_PARTS, &per, &after);
  bg_run_t r;
  bg_start(&r, t);
  assert_true(wait_counter_wait_ge(&per.sunk, 1000, KH_TIMEOUT_MS));
  assert_true(wait_counter_wait_ge(&after.sunk, 1000, KH_TIMEOUT_MS));
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  brook_runtime_free(r.rt);

  assert_true(sorted_tasks_are(per.open_task, per.opens, N_PARTS));
  assert_true(sorted_tasks_are(per.close_task, per.closes, N_PARTS));
  for (int i = 0; i < per.closes; i++) /* each task saw exactly its partition */
    assert_int_equal(per.close_count[i], n[per.close_task[i]]);
  assert_int_equal(per.mismatched, 0);
  assert_int_equal(per.untasked_records, 0);
  assert_true(per.flushes >= N_PARTS); /* the stop flushes every task */
  /* After key_by: a task per partition of the repartition topic. */
  assert_true(sorted_tasks_are(after.open_task, after.opens, N_PARTS));
  assert_int_equal(after.untasked_records, 0);
  assert_int_equal(after.records, 1000);
  assert_int_equal(st.tasks_opened, 2 * N_PARTS);
  assert_int_equal(st.tasks_closed, 2 * N_PARTS);
  assert_int_equal(st.records_in, 2000); /* read twice: from the input and the repartition topic */
  log_destroy(&per);
  log_destroy(&after);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- per-partition event time ---- */

typedef struct fired {
  uv_mutex_t mu;
  int n;
  char keys[64][16];
  brook_time_t ends[64];
  wait_counter_t count;
} fired_t;

static brook_err_t on_window(const brook_record_t *rec, void *opaque) {
  fired_t *f = opaque;
  brook_window_value_t w;
  if (brook_window_parse(rec, &w, NULL) != BROOK_OK)
    return BROOK_ERR_USER;
  uv_mutex_lock(&f->mu);
  if (f->n < 64) {
    size_t kl = rec->key_len < 15 ? rec->key_len : 15;
    memcpy(f->keys[f->n], rec->key, kl);
    f->keys[f->n][kl] = '\0';
    f->ends[f->n++] = w.end;
  }
  uv_mutex_unlock(&f->mu);
  wait_counter_add(&f->count, 1);
  return BROOK_OK;
}

/* Partition 0 runs ahead in event time, partition 1 stays at its first second. Each task's
 * windows close on its own partition's watermark: partition 0's fire while partition 1 lags
 * (one source-wide watermark would hold them all back), and partition 1's stay open. */
static void test_windows_fire_per_partition(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:2", NULL}, NULL), 0);
  /* p0: 10..16.9 s, keys k0-0..6 in every second; p1: 11..11.06 s (timestamp 0 would mean
   * "now" to the producer, hence the offset). */
  produce_parts(b.bootstrap, "in", (const int[]){70}, 1, 10000, 100);
  produce_parts(b.bootstrap, "in", (const int[]){0, 7}, 2, 11000, 10);
  fired_t f;
  memset(&f, 0, sizeof(f));
  uv_mutex_init(&f.mu);
  wait_counter_init(&f.count, 0);
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = kafka_in(t, b.bootstrap, "tasks2", "in", 2);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(1000);
  brook_stream_t *w = brook_window_aggregate(in, &win, &count, NULL);
  assert_int_equal(brook_sink_callback(w, on_window, NULL, &f), BROOK_OK);
  assert_int_equal(brook_topology_validate(t), BROOK_OK);
  bg_run_t r;
  bg_start(&r, t);
  /* Partition 0's watermark reaches 16899: windows ending at 11000..16000 close for its 7 keys
   * (each key has records in every second) = 42 results. */
  assert_true(wait_counter_wait_ge(&f.count, 42, KH_TIMEOUT_MS));
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  for (int i = 0; getenv("BROOK_TEST_LOG") && i < f.n; i++)
    fprintf(stderr, "fired %s %lld\n", f.keys[i], (long long)f.ends[i]);
  assert_int_equal(f.n, 42);
  for (int i = 0; i < f.n; i++) {
    assert_true(strncmp(f.keys[i], "k0-", 3) == 0); /* partition 1's window stays open */
    assert_true(f.ends[i] >= 11000 && f.ends[i] <= 16000);
  }
  uv_mutex_destroy(&f.mu);
  wait_counter_destroy(&f.count);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- rebalancing: tasks move with their partitions ---- */

typedef struct balance {
  inst_log_t *a, *b;
} balance_t;

static int open_now(inst_log_t *l) {
  uv_mutex_lock(&l->mu);
  int n = l->opens - l->closes;
  uv_mutex_unlock(&l->mu);
  return n;
}

static int a_has_all(void *p) { return open_now(((balance_t *)p)->a) == N_PARTS; }

static int split_between(void *p) {
  balance_t *s = p;
  int a = open_now(s->a), b = open_now(s->b);
  return a >= 1 && b >= 1 && a + b == N_PARTS; /* a rebalance is over */
}

static int all_sunk(void *p) {
  balance_t *s = p;
  return wait_counter_get(&s->a->sunk) + wait_counter_get(&s->b->sunk) >= 220;
}

/* One member holds every partition's task; a second member joins the group: the partitions
 * it takes have their tasks flushed and closed in the first and opened in the second, and
 * afterwards each side's tasks see only their partitions' records. */
static void test_rebalance_moves_tasks(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:4", NULL}, NULL), 0);
  produce_parts(b.bootstrap, "in", (const int[]){5, 5, 5, 5}, N_PARTS, 1000, 10);
  inst_log_t la, lb;
  log_init(&la);
  log_init(&lb);
  brook_topology_t *ta = tally_pipeline(b.bootstrap, "tasks3", 0, &la, NULL);
  brook_topology_t *tb = tally_pipeline(b.bootstrap, "tasks3", 0, &lb, NULL);
  bg_run_t ra, rb;
  bg_start(&ra, ta);
  balance_t s = {&la, &lb};
  assert_true(wait_until(a_has_all, &s, KH_TIMEOUT_MS));
  assert_true(wait_counter_wait_ge(&la.sunk, 20, KH_TIMEOUT_MS));
  bg_start(&rb, tb);
  assert_true(wait_until(split_between, &s, KH_TIMEOUT_MS));
  /* The hand-over: each partition's task is open in exactly one member, and every task B
   * opened is one A flushed and closed first. (The 2.0.2 mock's cooperative rebalance is not
   * sticky: A gives up all four partitions and gets two back, so A closes four tasks.) */
  uv_mutex_lock(&la.mu);
  uv_mutex_lock(&lb.mu);
  int moved = lb.opens;
  for (int p = 0; p < N_PARTS; p++)
    assert_int_equal(la.live[p] + lb.live[p], 1);
  assert_true(la.closes >= moved);
  assert_true(la.flushes >= la.closes);
  for (int i = 0; i < moved; i++) {
    int found = 0;
    for (int k = 0; k < la.closes && !found; k++)
      found = la.close_task[k] == lb.open_task[i];
    assert_true(found);
  }
  uv_mutex_unlock(&lb.mu);
  uv_mutex_unlock(&la.mu);
  /* Records written now are processed by whichever member owns their partition's task. */
  produce_parts(b.bootstrap, "in", (const int[]){50, 50, 50, 50}, N_PARTS, 2000, 10);
  assert_true(wait_until(all_sunk, &s, KH_TIMEOUT_MS));
  brook_runtime_stop(ra.rt); /* both at once: neither takes the other's partitions back */
  assert_int_equal(bg_stop(&rb), BROOK_OK);
  assert_int_equal(bg_stop(&ra), BROOK_OK);
  brook_runtime_stats_t sa = {.struct_size = sizeof(sa)}, sb = {.struct_size = sizeof(sb)};
  assert_int_equal(brook_runtime_stats(ra.rt, &sa), BROOK_OK);
  assert_int_equal(brook_runtime_stats(rb.rt, &sb), BROOK_OK);
  brook_runtime_free(ra.rt);
  brook_runtime_free(rb.rt);
  print_message("%d of %d tasks moved to member B; A saw %ld records, B %ld\n", moved, N_PARTS,
                la.records, lb.records);
  assert_int_equal(la.mismatched, 0);
  assert_int_equal(lb.mismatched, 0);
  assert_true(lb.records >= 1);          /* B processed its partitions' new records */
  assert_int_equal(la.closes, la.opens); /* every task closed, once */
  assert_int_equal(lb.closes, lb.opens);
  assert_int_equal(sa.tasks_opened, (uint64_t)la.opens);
  assert_int_equal(sb.tasks_opened, (uint64_t)lb.opens);
  assert_int_equal(sa.tasks_closed, sa.tasks_opened);
  log_destroy(&la);
  log_destroy(&lb);
  brook_topology_free(ta);
  brook_topology_free(tb);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- a source failing in the middle of a batch ---- */

static brook_err_t count_in_task(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec;
  int *untasked = opaque;
  *untasked += brook_ctx_task(ctx) < 0;
  return BROOK_OK;
}

static brook_err_t count_int64(const brook_record_t *rec, void *opaque) {
  (void)rec;
  ++*(int *)opaque;
  return BROOK_OK;
}

/* 50 good int64 values then a malformed one, in one batch, with the FAIL policy: the run
 * fails naming the offset, and the 50 records before it went through their task (never
 * through the process-wide instances, which are not opened). */
static void test_malformed_mid_batch_fails_cleanly(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"nums:1", NULL}, NULL), 0);
  unsigned char be[8] = {0, 0, 0, 0, 0, 0, 0, 1};
  for (int i = 0; i < 50; i++)
    kh_produce_raw(b.bootstrap, "nums", NULL, 0, be, sizeof(be));
  kh_produce_raw(b.bootstrap, "nums", NULL, 0, "xyz", 3);
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = b.bootstrap;
  so.group_id = "tasks5";
  brook_kafka_partition_t part = {"nums", 0, BROOK_KAFKA_OFFSET_BEGINNING};
  so.partitions = &part;
  so.n_partitions = 1;
  so.value.format = BROOK_KAFKA_INT64;
  int untasked = 0, seen = 0;
  brook_stream_t *m = brook_map(brook_source_kafka(t, "nums", &so), count_in_task, &untasked);
  assert_int_equal(brook_sink_callback(m, count_int64, NULL, &seen), BROOK_OK);
  brook_runtime_t *rt;
  assert_int_equal(brook_runtime_new(&rt, t, kh_rt_opts()), BROOK_OK);
  brook_err_t err = brook_runtime_run(rt);
  assert_true(err < 0);
  assert_non_null(strstr(brook_runtime_last_error(rt), "offset 50"));
  assert_int_equal(untasked, 0);
  assert_int_equal(seen, 50);
  brook_runtime_free(rt);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- running out of memory while tasks open ---- */

static int done_or_all_sunk(void *p) {
  bg_run_t *r = p;
  return brook_runtime_done(r->rt);
}

/* For k = 1, 2, ...: the k-th allocation after the runtime exists fails, and every later one
 * (the source's start, its attach opening the tasks, the batches). Each run either moves every
 * record or ends with BROOK_ERR_NOMEM, and leaves no block behind. */
static void test_task_open_out_of_memory(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:4", NULL}, NULL), 0);
  produce_parts(b.bootstrap, "in", (const int[]){3, 3, 3, 3}, N_PARTS, 1000, 10);
  int failed_runs = 0, ok_runs = 0;
  for (long k = 1; k <= 24; k++) {
    fail_alloc_t fa = {0};
    brook_allocator_t a = fa_allocator(&fa);
    brook_topology_opts_t to;
    brook_topology_opts_init(&to);
    to.allocator = &a;
    brook_topology_t *t;
    assert_int_equal(brook_topology_new(&t, &to), BROOK_OK);
    inst_log_t l;
    log_init(&l);
    brook_stream_t *in = kafka_in(t, b.bootstrap, "tasks4", "in", N_PARTS);
    assert_int_equal(brook_sink_callback(brook_apply(in, &tally_op, &l), count_sunk, NULL, &l),
                     BROOK_OK);
    brook_runtime_t *rt;
    assert_int_equal(brook_runtime_new(&rt, t, kh_rt_opts()), BROOK_OK);
    fa.fail_at = fa.attempts + k;
    fa.persistent = 1;
    bg_run_t r = {.rt = rt};
    assert_int_equal(pthread_create(&r.thread, NULL, bg_run_thread, &r), 0);
    int64_t deadline = (int64_t)wait_now_ms() + KH_TIMEOUT_MS;
    while (!wait_until(done_or_all_sunk, &r, 50) && wait_counter_get(&l.sunk) < 12 &&
           (int64_t)wait_now_ms() < deadline)
      ;
    brook_err_t err = bg_stop(&r);
    if (getenv("BROOK_TEST_LOG"))
      fprintf(stderr, "allocation %ld: %s\n", k, brook_runtime_last_error(rt));
    if (err != BROOK_OK && err != BROOK_ERR_NOMEM)
      fail_msg("allocation %ld: %s: %s", k, brook_errname(err), brook_runtime_last_error(rt));
    assert_int_equal(l.mismatched, 0);
    assert_int_equal(l.opens, l.closes); /* every opened task closed */
    if (err == BROOK_OK) {
      assert_int_equal(wait_counter_get(&l.sunk), 12);
      ok_runs++;
    } else {
      failed_runs++;
    }
    brook_runtime_free(rt);
    brook_topology_free(t);
    assert_int_equal(fa.live, 0);
    log_destroy(&l);
  }
  print_message("%d runs ran out of memory cleanly, %d finished\n", failed_runs, ok_runs);
  assert_true(failed_runs > 0);
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_task_per_partition),
      cmocka_unit_test(test_windows_fire_per_partition),
      cmocka_unit_test(test_rebalance_moves_tasks),
      cmocka_unit_test(test_malformed_mid_batch_fails_cleanly),
      cmocka_unit_test(test_task_open_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
