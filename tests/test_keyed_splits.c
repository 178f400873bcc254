/* Sources partitioned by key (partitioned_by_key, brook/source.h): a generator or push source
 * whose split k holds only the keys with murmur2(key) % splits == k runs like a Kafka topic
 * keyed by its producer. Each split is a task; the keyed operators after it run per task on
 * the split's worker with no key_by and no exchange, and give the same per-key results on 1,
 * 2 and 4 workers, with every worker taking part. A record in the wrong split follows the
 * error policy (fail naming the split and the key length, skip and count, route), in a
 * runtime and in the test driver, whose assign/revoke treat the splits as partitions. */
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

#include "keyed_generator.h"
#include "run_deadline.h"
#include "worker_seen.h"

#define SPLITS 4
#define N_WINDOWS 20
#define WINDOW_MS 100
#define PER_SPLIT ((uint64_t)N_WINDOWS * WINDOW_MS * 10) /* records per split, 10 per ms */

static uint32_t key_split[N_KEYS];   /* brook_key_split(key, SPLITS) */
static int own_keys[SPLITS][N_KEYS]; /* per split: the indices of its keys */
static int n_own[SPLITS];

/* ---- what the sinks and the task callback saw, from every worker's thread ---- */

typedef struct kseen {
  seen_t s;                   /* counts per key and window, threads; its mu guards all */
  int task_states[SPLITS][5]; /* changes into each brook_task_state_t, per task */
  int bad_task_ids;
} kseen_t;

static void kseen_init(kseen_t *k) {
  memset(k, 0, sizeof(*k));
  seen_init(&k->s);
  k->s.window_ms = WINDOW_MS;
}

static void on_task_state(int32_t task, int old_state, int new_state, const char *reason,
                          void *opaque) {
  (void)old_state, (void)reason;
  kseen_t *k = opaque;
  pthread_mutex_lock(&k->s.mu);
  if (task < 0 || task >= SPLITS || new_state < 0 || new_state > BROOK_TASK_CLOSED)
    k->bad_task_ids++;
  else
    k->task_states[task][new_state]++;
  pthread_mutex_unlock(&k->s.mu);
}

/* ---- the generator: split s makes only its own keys ---- */

typedef struct gen {
  uint64_t next[SPLITS];
  uint64_t bad_at; /* > 0: split 1's record number bad_at gets a key of another split */
  uint64_t per_split;
} gen_t;

/* Split s's i-th record: its own key number i % n_own[s], event time i / 10 ms. */
static brook_err_t keyed_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  if (s >= SPLITS || brook_ctx_split_count(ctx) != SPLITS)
    return BROOK_ERR_STATE;
  if (g->next[s] == g->per_split)
    return BROOK_DONE;
  uint64_t i = g->next[s]++;
  int k = own_keys[s][i % (uint64_t)n_own[s]];
  if (s == 1 && g->bad_at && i + 1 == g->bad_at)
    k = own_keys[2][0]; /* a key of split 2 */
  out->key = key_names[k];
  out->key_len = strlen(key_names[k]);
  out->value = key_names[k];
  out->value_len = out->key_len;
  out->timestamp = (brook_time_t)(i / 10);
  return BROOK_OK;
}

static brook_stream_t *keyed_source(brook_topology_t *t, gen_t *g, uint64_t per_split) {
  memset(g, 0, sizeof(*g));
  g->per_split = per_split;
  return keyed_generator(t, keyed_gen, g, SPLITS);
}

/* A custom operator that checks that every record it sees belongs to its instance's task:
 * the per-task instances really get one split's keys each. */
static brook_err_t check_task(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  int32_t task = brook_ctx_task(ctx);
  if (task < 0 || brook_key_split(rec->key, rec->key_len, SPLITS) != (uint32_t)task) {
    brook_ctx_set_error(ctx, "record of split %u in task %d",
                        (unsigned)brook_key_split(rec->key, rec->key_len, SPLITS), (int)task);
    return BROOK_ERR_USER;
  }
  return brook_emit(ctx, rec);
}

static const brook_operator_t check_task_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "check_task", .process = check_task};

/* check_task after `in`: it forwards records unchanged, so it declares the key preserved (a
 * custom operator that may change keys would make the window after it repartition). */
static brook_stream_t *apply_check_task(brook_stream_t *in) {
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.key_preserving = 1;
  brook_stream_t *out = NULL;
  assert_int_equal(brook_operator_add(&in, 1, &check_task_op, NULL, &oo, &out), BROOK_OK);
  return out;
}

static brook_topology_t *new_topology(brook_error_policy_t policy) {
  brook_topology_opts_t o;
  brook_topology_opts_init(&o);
  o.error_policy = policy;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, &o), BROOK_OK);
  return t;
}

static brook_runtime_t *new_runtime(brook_topology_t *t, size_t workers, kseen_t *seen) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  ro.batch_size = 256;
  ro.on_task_state = on_task_state;
  ro.on_task_state_opaque = seen;
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK)
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  return rt;
}

/* Every split's task went CREATED, RESTORING, RUNNING, SUSPENDED, CLOSED exactly once. */
static void check_task_life(const kseen_t *s) {
  assert_int_equal(s->bad_task_ids, 0);
  for (int k = 0; k < SPLITS; k++)
    for (int st = 0; st <= BROOK_TASK_CLOSED; st++)
      if (s->task_states[k][st] != 1)
        fail_msg("task %d reported %s %d times", k, brook_task_state_name(st),
                 s->task_states[k][st]);
}

/* No exchange: the plan has one sub-topology and the window runs per task. */
static void check_no_exchange(brook_topology_t *t) {
  char text[2048];
  size_t len = 0;
  assert_int_equal(brook_topology_describe(t, text, sizeof(text), &len), BROOK_OK);
  if (!strstr(text, ", 0 exchanges\n") || !strstr(text, "sub-topology 0: tasks=4\n") ||
      !strstr(text, "splits=4 by key: split = murmur2(key) % splits\n"))
    fail_msg("unexpected plan:\n%s", text);
}

/* generator(partitioned) -> check_task -> tumbling count -> sink, on `workers` workers. */
static void run_windows(size_t workers, kseen_t *seen) {
  static gen_t g;
  kseen_init(seen);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = apply_check_task(keyed_source(t, &g, PER_SPLIT));
  tumbling_count_to(s, "per_key_100ms", WINDOW_MS, window_count_sink, &seen->s);
  check_no_exchange(t);
  brook_runtime_t *rt = new_runtime(t, workers, seen);
  brook_err_t err = run_with_deadline(rt, 60000, NULL);
  if (err != BROOK_OK)
    fail_msg("%zu workers: %s", workers, brook_runtime_last_error(rt));
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_in, SPLITS * PER_SPLIT);
  assert_int_equal(st.records_late, 0);
  assert_int_equal(st.tasks_opened, SPLITS);
  assert_int_equal(st.tasks_closed, SPLITS);
  check_task_life(seen);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_tumbling_same_on_1_2_4_workers(void **state) {
  (void)state;
  static kseen_t one, many;
  run_windows(1, &one);
  assert_int_equal(windows_total(&one.s), SPLITS * PER_SPLIT);
  size_t ns[] = {2, 4};
  for (size_t i = 0; i < 2; i++) {
    run_windows(ns[i], &many);
    check_same_windows(&one.s, &many.s, ns[i]);
  }
}

/* generator(partitioned) -> aggregate(count) -> sink (optionally through key_by on the same
 * key, which an in-process source may feed with N workers: it commits no input). */
static void run_aggregate(size_t workers, int with_key_by, kseen_t *seen) {
  static gen_t g;
  kseen_init(seen);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = keyed_source(t, &g, 5000);
  brook_aggregator_t count = brook_agg_count();
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "per_key";
  if (with_key_by)
    s = brook_key_by(s, key_is_value, NULL);
  s = brook_aggregate(s, &count, &ao);
  assert_non_null(s);
  assert_int_equal(brook_sink_callback(s, count_sink, NULL, &seen->s), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, workers, seen);
  brook_err_t err = run_with_deadline(rt, 60000, NULL);
  if (err != BROOK_OK)
    fail_msg("%zu workers: %s", workers, brook_runtime_last_error(rt));
  assert_int_equal(stats_of(rt).records_out, SPLITS * 5000);
  check_task_life(seen);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_aggregate_same_on_1_2_4_workers(void **state) {
  (void)state;
  static kseen_t one, many;
  run_aggregate(1, 0, &one);
  int64_t total = 0;
  for (int k = 0; k < N_KEYS; k++)
    total += one.s.count[k];
  assert_int_equal(total, SPLITS * 5000);
  size_t ns[] = {2, 4};
  for (size_t i = 0; i < 2; i++) {
    run_aggregate(ns[i], 0, &many);
    check_same_counts(&one.s, &many.s, ns[i]);
  }
  /* A key change after it is allowed with N workers (no input to commit) and agrees. */
  run_aggregate(2, 1, &many);
  check_same_counts(&one.s, &many.s, 2);
}

/* ---- a record in the wrong split: the error policy, never a silent wrong result ---- */

static brook_err_t count_errors(const brook_record_t *rec, void *opaque) {
  (void)rec;
  atomic_fetch_add((atomic_int *)opaque, 1);
  return BROOK_OK;
}

/* Split 1's 1000th record carries a key of split 2. */
static void run_violation(brook_error_policy_t policy, size_t workers) {
  static gen_t g;
  static kseen_t seen;
  static atomic_int routed;
  kseen_init(&seen);
  atomic_store(&routed, 0);
  brook_topology_t *t = new_topology(policy);
  brook_stream_t *s = keyed_source(t, &g, 5000);
  g.bad_at = 1000;
  s = apply_check_task(s); /* would fail if the record reached task 1 */
  brook_aggregator_t count = brook_agg_count();
  s = brook_aggregate(s, &count, NULL);
  assert_int_equal(brook_sink_callback(s, count_sink, NULL, &seen.s), BROOK_OK);
  if (policy == BROOK_ON_ERROR_ROUTE)
    assert_int_equal(brook_sink_callback(brook_error_stream(t), count_errors, NULL, &routed),
                     BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, workers, &seen);
  brook_err_t err = run_with_deadline(rt, 60000, NULL);
  brook_runtime_stats_t st = stats_of(rt);
  if (policy == BROOK_ON_ERROR_FAIL) {
    assert_int_equal(err, BROOK_ERR_INVALID_ARG);
    const char *msg = brook_runtime_last_error(rt);
    if (!strstr(msg, "source 'gen' is partitioned by key, but split 1 of 4 produced a record "
                     "whose key (3 bytes) belongs to split 2"))
      fail_msg("unclear message: %s", msg);
  } else {
    if (err != BROOK_OK)
      fail_msg("%s", brook_runtime_last_error(rt));
    /* Every other record is counted, each by its own split's task. */
    int64_t total = 0;
    for (int k = 0; k < N_KEYS; k++)
      total += seen.s.count[k];
    assert_int_equal(total, SPLITS * 5000 - 1);
    if (policy == BROOK_ON_ERROR_SKIP) {
      assert_int_equal(st.records_skipped, 1);
    } else {
      assert_int_equal(atomic_load(&routed), 1);
      assert_int_equal(st.records_skipped, 0);
    }
  }
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_wrong_split_fails_naming_split_and_key_length(void **state) {
  (void)state;
  run_violation(BROOK_ON_ERROR_FAIL, 1);
  run_violation(BROOK_ON_ERROR_FAIL, 2);
}

static void test_wrong_split_skipped_and_counted(void **state) {
  (void)state;
  run_violation(BROOK_ON_ERROR_SKIP, 2);
}

static void test_wrong_split_routed_to_error_stream(void **state) {
  (void)state;
  run_violation(BROOK_ON_ERROR_ROUTE, 2);
}

/* ---- the push source: 4 producer threads, each pushing its split's keys ---- */

#define PUSHES 20000

typedef struct producer {
  brook_push_source_t *src;
  size_t split;
  int bad; /* push one key of another split in the middle */
  brook_err_t err;
} producer_t;

static void *produce(void *arg) {
  producer_t *p = arg;
  for (size_t i = 0; i < PUSHES && p->err == BROOK_OK; i++) {
    int k = own_keys[p->split][i % (size_t)n_own[p->split]];
    if (p->bad && i == PUSHES / 2)
      k = own_keys[(p->split + 1) % SPLITS][0];
    brook_record_t rec = {0};
    rec.key = key_names[k];
    rec.key_len = strlen(key_names[k]);
    p->err = brook_push_wait(p->src, &rec, 60000);
  }
  brook_err_t end = brook_push_end(p->src);
  if (p->err == BROOK_OK)
    p->err = end;
  return NULL;
}

static brook_err_t run_pushed(size_t workers, int bad, kseen_t *seen, char *msg, size_t msg_size) {
  kseen_init(seen);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.splits = SPLITS;
  po.max_records = 2048;
  po.partitioned_by_key = 1;
  brook_stream_t *s = brook_source_push(t, "in", &po);
  s = apply_check_task(s);
  s = brook_count(s, NULL);
  assert_int_equal(brook_sink_callback(s, count_sink, NULL, &seen->s), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, workers, seen);
  producer_t prods[SPLITS];
  pthread_t th[SPLITS];
  for (size_t k = 0; k < SPLITS; k++) {
    prods[k] =
        (producer_t){brook_runtime_push_source_split(rt, "in", k), k, bad && k == 3, BROOK_OK};
    assert_non_null(prods[k].src);
    assert_int_equal(pthread_create(&th[k], NULL, produce, &prods[k]), 0);
  }
  brook_err_t err = run_with_deadline(rt, 60000, NULL);
  for (size_t k = 0; k < SPLITS; k++) {
    pthread_join(th[k], NULL);
    if (!bad)
      assert_int_equal(prods[k].err, BROOK_OK);
  }
  snprintf(msg, msg_size, "%s", brook_runtime_last_error(rt));
  if (!bad)
    check_task_life(seen);
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err;
}

static void test_push_partitioned_same_on_1_2_4_workers(void **state) {
  (void)state;
  static kseen_t one, many;
  char msg[512];
  assert_int_equal(run_pushed(1, 0, &one, msg, sizeof(msg)), BROOK_OK);
  int64_t total = 0;
  for (int k = 0; k < N_KEYS; k++)
    total += one.s.count[k];
  assert_int_equal(total, SPLITS * PUSHES);
  size_t ns[] = {2, 4};
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(run_pushed(ns[i], 0, &many, msg, sizeof(msg)), BROOK_OK);
    check_same_counts(&one.s, &many.s, ns[i]);
  }
  /* A record pushed into the wrong split fails the run, saying which. */
  assert_int_equal(run_pushed(2, 1, &many, msg, sizeof(msg)), BROOK_ERR_INVALID_ARG);
  if (!strstr(msg, "source 'in' is partitioned by key, but split 3 of 4 produced a record whose "
                   "key (3 bytes) belongs to split 0"))
    fail_msg("unclear message: %s", msg);
}

/* ---- the test driver: splits are partitions ---- */

static brook_err_t driver_push(brook_driver_t *d, size_t split, int key) {
  brook_record_t rec = {0};
  rec.key = key_names[key];
  rec.key_len = strlen(key_names[key]);
  rec.value = rec.key;
  rec.value_len = rec.key_len;
  return brook_driver_push_split(d, "gen", split, &rec);
}

static int64_t last_count(const brook_driver_t *d) {
  size_t n = brook_driver_output_count(d, "out");
  assert_true(n > 0);
  const brook_record_t *r = brook_driver_output(d, "out", n - 1);
  int64_t v;
  assert_int_equal(r->value_len, sizeof(v));
  memcpy(&v, r->value, sizeof(v));
  return v;
}

static void test_driver_assign_revoke_and_wrong_split(void **state) {
  (void)state;
  static gen_t g;
  static kseen_t seen;
  kseen_init(&seen);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = apply_check_task(keyed_source(t, &g, 10));
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "per_key";
  s = brook_count(s, &ao);
  brook_callback_sink_opts_t so;
  brook_callback_sink_opts_init(&so);
  so.name = "out";
  assert_int_equal(brook_sink_callback_v2(s, count_sink, NULL, &seen.s, &so), BROOK_OK);
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  int k1 = own_keys[1][0];
  assert_int_equal(driver_push(d, 1, k1), BROOK_OK);
  assert_int_equal(driver_push(d, 1, k1), BROOK_OK);
  assert_int_equal(last_count(d), 2);
  /* Split 1 is a partition: revoked, its task's count is kept; assigned again, it goes on. */
  assert_int_equal(brook_driver_revoke(d, "gen", 1), BROOK_OK);
  assert_int_equal(driver_push(d, 1, k1), BROOK_ERR_STATE);
  assert_non_null(strstr(brook_driver_last_error(d), "partition 1 of source 'gen' is revoked"));
  assert_int_equal(brook_driver_assign(d, "gen", 1), BROOK_OK);
  assert_int_equal(driver_push(d, 1, k1), BROOK_OK);
  assert_int_equal(last_count(d), 3);
  /* No split 4 of 4. */
  assert_int_equal(brook_driver_assign(d, "gen", 4), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_driver_last_error(d),
                         "driver_assign: source 'gen' is partitioned by key into 4 splits "
                         "(partitions 0..3): it has no split 4"));
  assert_int_equal(driver_push(d, 4, k1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_status(d), BROOK_OK); /* refused, not failed */
  /* A key of split 1 pushed into split 2 fails like in a runtime. */
  assert_int_equal(driver_push(d, 2, k1), BROOK_ERR_INVALID_ARG);
  if (!strstr(brook_driver_last_error(d), "but split 2 of 4 produced a record whose key (3 bytes) "
                                          "belongs to split 1"))
    fail_msg("unclear message: %s", brook_driver_last_error(d));
  brook_driver_free(d);
  brook_topology_free(t);
}

/* ---- a split that ends releases its task while the others go on ---- */

static atomic_int split0_closed;     /* task 0 reported CLOSED */
static atomic_int split0_finals;     /* window results of split 0's keys so far */
static int split0_finals_at_close;   /* ... when task 0 closed */
static char split0_close_reason[64]; /* why task 0 was suspended */

static void on_split0_state(int32_t task, int old_state, int new_state, const char *reason,
                            void *opaque) {
  on_task_state(task, old_state, new_state, reason, opaque);
  if (task == 0 && new_state == BROOK_TASK_SUSPENDED) /* the reason it was let go */
    snprintf(split0_close_reason, sizeof(split0_close_reason), "%s", reason);
  if (task == 0 && new_state == BROOK_TASK_CLOSED) {
    split0_finals_at_close = atomic_load(&split0_finals);
    atomic_store(&split0_closed, 1);
  }
}

static brook_err_t split0_sink(const brook_record_t *rec, void *opaque) {
  int k = key_index(rec->key, rec->key_len);
  if (k >= 0 && key_split[k] == 0)
    atomic_fetch_add(&split0_finals, 1);
  return window_count_sink(rec, &((kseen_t *)opaque)->s);
}

/* Split 0 makes 1000 records (event time 0..99 ms: window 0 only); the others go on until
 * task 0 has closed (or 5,000,000 records each, which fails the test). */
static brook_err_t early_end_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  if ((s == 0 && g->next[0] == 1000) || (s > 0 && atomic_load(&split0_closed)) ||
      g->next[s] == 5000000)
    return BROOK_DONE;
  brook_err_t err = keyed_gen(out, ctx, opaque);
  out->timestamp = (brook_time_t)((g->next[s] - 1) / 10 % (N_WINDOWS * WINDOW_MS));
  return err;
}

static void test_split_end_releases_its_task_early(void **state) {
  (void)state;
  static gen_t g;
  static kseen_t seen;
  kseen_init(&seen);
  atomic_store(&split0_closed, 0);
  atomic_store(&split0_finals, 0);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = SPLITS;
  go.partitioned_by_key = 1;
  memset(&g, 0, sizeof(g));
  g.per_split = UINT64_MAX; /* early_end_gen decides */
  brook_stream_t *s = brook_source_generator(t, "gen", early_end_gen, &g, &go);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_BOUNDED;
  wo.max_delay = N_WINDOWS * WINDOW_MS; /* the others' timestamps wrap: nothing late */
  assert_int_equal(brook_source_set_watermark(s, &wo), BROOK_OK);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t tumbling = brook_window_tumbling(WINDOW_MS);
  s = brook_window_aggregate(s, &tumbling, &count, NULL);
  assert_int_equal(brook_sink_callback(s, split0_sink, NULL, &seen), BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = 2;
  ro.batch_size = 128;
  ro.on_task_state = on_split0_state;
  ro.on_task_state_opaque = &seen;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  assert_int_equal(atomic_load(&split0_closed), 1);
  assert_string_equal(split0_close_reason, "split ended");
  /* Its windows fired before its task closed, while the other splits still ran: one final
   * result per key of split 0 (all in window 0). */
  assert_int_equal(split0_finals_at_close, n_own[0]);
  int64_t split0_total = 0;
  for (int k = 0; k < N_KEYS; k++) {
    if (key_split[k] != 0)
      continue;
    split0_total += seen.s.win[k][0];
    for (int w = 1; w < N_WINDOWS; w++)
      assert_int_equal(seen.s.win[k][w], 0);
  }
  assert_int_equal(split0_total, 1000);
  for (int k = 1; k < SPLITS; k++)
    assert_true(g.next[k] < 5000000);
  check_task_life(&seen);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

int main(void) {
  worker_keys_init();
  for (int i = 0; i < N_KEYS; i++) {
    key_split[i] = brook_key_split(key_names[i], strlen(key_names[i]), SPLITS);
    own_keys[key_split[i]][n_own[key_split[i]]++] = i;
  }
  for (int s = 0; s < SPLITS; s++)
    if (!n_own[s]) {
      fprintf(stderr, "split %d owns no key\n", s);
      return 1;
    }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tumbling_same_on_1_2_4_workers),
      cmocka_unit_test(test_aggregate_same_on_1_2_4_workers),
      cmocka_unit_test(test_wrong_split_fails_naming_split_and_key_length),
      cmocka_unit_test(test_wrong_split_skipped_and_counted),
      cmocka_unit_test(test_wrong_split_routed_to_error_stream),
      cmocka_unit_test(test_push_partitioned_same_on_1_2_4_workers),
      cmocka_unit_test(test_driver_assign_revoke_and_wrong_split),
      cmocka_unit_test(test_split_end_releases_its_task_early),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
