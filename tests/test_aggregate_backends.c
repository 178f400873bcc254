/* The stateful operators through the runtime on each state backend, as separate ctest entries
 * (tests/CMakeLists.txt): "memory" (the default in-memory stores) and "rocksdb" (runtime
 * option state_dir: every task's stores in its RocksDB task database, behind a write cache
 * kept small here, so full caches force early commits - the only ones before the end, with a
 * long commit interval - and reads go to the disk). Each
 * pipeline runs over a generator partitioned by key, and its final per-key results must equal
 * a reference computed here: count, reduce (sum), aggregate (numeric sum), dedupe, and a
 * custom operator with a store of its own (brook_store_update) and event-time timers.
 *   test_aggregate_backends [memory|rocksdb]   (no argument: memory; ctest "aggregate_backends") */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "tempfiles.h"

#define SPLITS 3
#define N_KEYS 4000
#define N_RECORDS 60000

static int on_disk;
static char key_names[N_KEYS][12];

typedef struct gen {
  uint64_t next[SPLITS];
} gen_t;

/* Record i has key i*7 % N_KEYS and value i % 13 (int64), timestamp i; split s keeps its keys. */
static brook_err_t keyed_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  for (;;) {
    uint64_t i = g->next[s]++;
    if (i >= N_RECORDS)
      return BROOK_DONE;
    int k = (int)(i * 7 % N_KEYS);
    if (brook_key_split(key_names[k], strlen(key_names[k]), SPLITS) != s)
      continue;
    int64_t *v = brook_ctx_alloc(ctx, sizeof(*v));
    if (!v)
      return BROOK_ERR_NOMEM;
    *v = (int64_t)(i % 13);
    *out = (brook_record_t){.key = key_names[k],
                            .key_len = strlen(key_names[k]),
                            .value = v,
                            .value_len = sizeof(*v),
                            .timestamp = (brook_time_t)i};
    return BROOK_OK;
  }
}

static int key_of(const brook_record_t *rec) {
  int k = 0; /* the key is not NUL-terminated */
  for (size_t i = 1; i < rec->key_len; i++)
    k = k * 10 + (((const char *)rec->key)[i] - '0');
  assert_true(rec->key_len > 1 && k < N_KEYS);
  return k;
}

typedef struct last {
  int64_t v[N_KEYS];
  int64_t records;
} last_t;

static brook_err_t keep_last(const brook_record_t *rec, void *opaque) {
  last_t *l = opaque;
  int64_t v = 0;
  memcpy(&v, rec->value, rec->value_len < sizeof(v) ? rec->value_len : sizeof(v));
  l->v[key_of(rec)] = v;
  l->records++;
  return BROOK_OK;
}

static brook_stream_t *source(brook_topology_t *t, gen_t *g) {
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = SPLITS;
  go.partitioned_by_key = 1;
  return brook_source_generator(t, "gen", keyed_gen, g, &go);
}

static void run(brook_topology_t *t) {
  char *dir = on_disk ? temp_dir_new("agg_backend") : NULL;
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (on_disk) {
    o.state_dir = dir;
    o.state_cache_bytes = 16 << 10; /* full caches: early commits, reads from disk */
    o.commit_interval_ms =
        600000; /* so every commit before the end is one a full cache asked for */
  }
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  if (brook_runtime_run(rt) != BROOK_OK)
    fail_msg("run: %s", brook_runtime_last_error(rt));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  if (on_disk) /* beyond each task's own at its split's end: early commits of full caches */
    assert_true(st.state_commits > SPLITS && st.state_entries_written > 0);
  else
    assert_int_equal(st.state_writes, 0);
  brook_runtime_free(rt);
  if (dir)
    temp_dir_free(dir);
}

/* The reference: per key, the number of records and the sum of values. */
typedef struct ref {
  int64_t count[N_KEYS], sum[N_KEYS];
} ref_t;

static ref_t reference;

static void make_reference(void) {
  for (uint64_t i = 0; i < N_RECORDS; i++) {
    int k = (int)(i * 7 % N_KEYS);
    reference.count[k]++;
    reference.sum[k] += (int64_t)(i % 13);
  }
}

/* Runs gen -> stage(named `name`) -> keep_last into *l. */
typedef brook_stream_t *(*stage_fn)(brook_stream_t *in, const brook_aggregate_opts_t *ao);

static void run_stage(stage_fn stage, const char *name, last_t *l) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  gen_t g = {{0}};
  memset(l, 0, sizeof(*l));
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = name;
  brook_stream_t *out = stage(source(t, &g), &ao);
  assert_non_null(out);
  assert_int_equal(brook_sink_callback(out, keep_last, NULL, l), BROOK_OK);
  run(t);
  brook_topology_free(t);
}

static void test_count(void **state) {
  (void)state;
  static last_t l;
  run_stage(brook_count, "counts", &l);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(l.v[k], reference.count[k]);
  assert_int_equal(l.records, N_RECORDS);
}

static brook_err_t add_i64(brook_ctx_t *ctx, const void *acc, size_t acc_len,
                           const brook_record_t *rec, const void **out, size_t *out_len,
                           void *opaque) {
  (void)acc_len, (void)opaque;
  int64_t a, b, *r = brook_ctx_alloc(ctx, sizeof(*r));
  if (!r)
    return BROOK_ERR_NOMEM;
  memcpy(&a, acc, sizeof(a));
  memcpy(&b, rec->value, sizeof(b));
  *r = a + b;
  *out = r;
  *out_len = sizeof(*r);
  return BROOK_OK;
}

static brook_stream_t *reduce_sum(brook_stream_t *in, const brook_aggregate_opts_t *ao) {
  return brook_reduce(in, add_i64, NULL, ao);
}

static void test_reduce_sum(void **state) {
  (void)state;
  static last_t l;
  run_stage(reduce_sum, "sums", &l);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(l.v[k], reference.sum[k]);
}

static brook_stream_t *dedupe(brook_stream_t *in, const brook_aggregate_opts_t *ao) {
  return brook_dedupe(in, 1 << 30, ao);
}

static void test_dedupe(void **state) {
  (void)state;
  static last_t l;
  run_stage(dedupe, "first", &l);
  assert_int_equal(l.records, N_KEYS); /* the first record of each key, once */
}

/* A custom operator: per key a running sum in its own store (brook_store_update), emitted by
 * an event-time timer at the end of each 1000-ms window of the key (a hand-made tumbling
 * window); the last emission per key is its total. */
typedef struct sum_op {
  brook_store_t *sums;
} sum_op_t;

static brook_err_t sum_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)opaque;
  sum_op_t *s = calloc(1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = sizeof(int64_t);
  brook_err_t err = brook_store_open(ctx, "sums", &so, &s->sums);
  if (err) {
    free(s);
    return err;
  }
  *state = s;
  return BROOK_OK;
}

static brook_err_t sum_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  sum_op_t *s = state;
  void *p;
  int created;
  brook_err_t err = brook_store_update(s->sums, rec->key, rec->key_len, &p, &created);
  if (err)
    return err;
  int64_t acc = 0, v;
  if (!created)
    memcpy(&acc, p, sizeof(acc));
  memcpy(&v, rec->value, sizeof(v));
  acc += v;
  memcpy(p, &acc, sizeof(acc));
  brook_time_t end = (rec->timestamp / 1000 + 1) * 1000;
  err = brook_timer_set(ctx, BROOK_EVENT_TIME, end, rec->key, rec->key_len, 0);
  return err > 0 ? BROOK_OK : err;
}

static brook_err_t sum_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  sum_op_t *s = state;
  const void *v;
  size_t vl;
  brook_err_t err = brook_store_get(s->sums, t->key, t->key_len, &v, &vl);
  if (err)
    return err;
  /* The store's view lasts until its next call, the timer's key until the next timer. */
  unsigned char *copy = brook_ctx_alloc(ctx, vl + t->key_len);
  if (!copy)
    return BROOK_ERR_NOMEM;
  memcpy(copy, v, vl);
  memcpy(copy + vl, t->key, t->key_len);
  brook_record_t out = {.key = copy + vl,
                        .key_len = t->key_len,
                        .value = copy,
                        .value_len = vl,
                        .timestamp = t->time};
  return brook_emit(ctx, &out);
}

static void sum_close(void *state, void *opaque) {
  (void)opaque;
  free(state);
}

static void test_custom_store_and_timers(void **state) {
  (void)state;
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "windowed_sum",
                                      .open = sum_open,
                                      .process = sum_process,
                                      .on_timer = sum_on_timer,
                                      .close = sum_close};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  gen_t g = {{0}};
  static last_t l;
  memset(&l, 0, sizeof(l));
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "windowed_sum";
  brook_stream_t *in = source(t, &g), *out = NULL;
  assert_int_equal(brook_operator_add(&in, 1, &op, NULL, &oo, &out), BROOK_OK);
  assert_int_equal(brook_sink_callback(out, keep_last, NULL, &l), BROOK_OK);
  run(t);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(l.v[k], reference.sum[k]);
  brook_topology_free(t);
}

int main(int argc, char **argv) {
  if (argc > 2 ||
      (argc == 2 && strcmp(argv[1], "memory") != 0 && strcmp(argv[1], "rocksdb") != 0)) {
    fprintf(stderr, "usage: %s [memory|rocksdb]\n", argv[0]);
    return 2;
  }
  on_disk = argc == 2 && strcmp(argv[1], "rocksdb") == 0;
  for (int k = 0; k < N_KEYS; k++)
    snprintf(key_names[k], sizeof(key_names[k]), "k%d", k);
  make_reference();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_count),
      cmocka_unit_test(test_reduce_sum),
      cmocka_unit_test(test_dedupe),
      cmocka_unit_test(test_custom_store_and_timers),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
