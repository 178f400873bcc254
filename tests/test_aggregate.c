/* Continuous keyed operators (aggregate.h): brook_aggregate with the built-in aggregators
 * and a user aggregator, brook_count, brook_reduce (also on the real runtime, several
 * updates of a key in one batch), brook_dedupe and its expiry by event time, the builders'
 * validation; and keyed state in a custom operator (state.h): brook_store_open from open(),
 * get/put/delete/update and the change listener as the runtime flushes it after each push. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"
#include "driver_helpers.h"

/* ---- fixture: the test's topology and driver, freed even when an assertion fails ---- */

static brook_topology_t *g_topo;
static brook_driver_t *g_drv;

static void fixture_free(void) {
  brook_driver_free(g_drv);
  g_drv = NULL;
  brook_topology_free(g_topo);
  g_topo = NULL;
}

static int teardown(void **state) {
  (void)state;
  fixture_free();
  collect_strings_free();
  return 0;
}

static brook_topology_t *new_topology(brook_error_policy_t policy) {
  fixture_free();
  return g_topo = collect_topology(policy);
}

static brook_driver_t *new_driver(void) {
  brook_err_t err = brook_driver_new(&g_drv, g_topo, NULL);
  if (err != BROOK_OK)
    fail_msg("brook_driver_new: %s: %s", brook_errname(err), brook_topology_last_error(g_topo));
  return g_drv;
}

static brook_err_t push(brook_driver_t *d, const char *key, const void *value, size_t value_len,
                        brook_time_t ts) {
  brook_record_t r = {.key = key,
                      .key_len = key ? strlen(key) : 0,
                      .value = value,
                      .value_len = value_len,
                      .timestamp = ts};
  return brook_driver_push(d, "in", &r);
}

static void push_text(brook_driver_t *d, const char *key, const char *value, brook_time_t ts) {
  brook_err_t err = push(d, key, value, value ? strlen(value) : 0, ts);
  if (err != BROOK_OK)
    fail_msg("push %s=%s: %s: %s", key ? key : "(null)", value ? value : "(null)",
             brook_errname(err), brook_driver_last_error(d));
}

static void push_double(brook_driver_t *d, const char *key, double v, brook_time_t ts) {
  brook_err_t err = push(d, key, &v, sizeof(v), ts);
  if (err != BROOK_OK)
    fail_msg("push %s=%g: %s: %s", key ? key : "(null)", v, brook_errname(err),
             brook_driver_last_error(d));
}

static const brook_record_t *out_rec(brook_driver_t *d, const char *sink, size_t i) {
  const brook_record_t *r = brook_driver_output(d, sink, i);
  if (!r)
    fail_msg("no output %zu at '%s' (%zu records)", i, sink, brook_driver_output_count(d, sink));
  return r;
}

static int64_t out_i64(brook_driver_t *d, const char *sink, size_t i) {
  const brook_record_t *r = out_rec(d, sink, i);
  assert_int_equal(r->value_len, sizeof(int64_t));
  int64_t v;
  memcpy(&v, r->value, sizeof(v));
  return v;
}

static double out_double(brook_driver_t *d, const char *sink, size_t i) {
  const brook_record_t *r = out_rec(d, sink, i);
  assert_int_equal(r->value_len, sizeof(double));
  double v;
  memcpy(&v, r->value, sizeof(v));
  return v;
}

static int key_is(const brook_record_t *r, const char *key) {
  if (!key)
    return r->key == NULL;
  return r->key && r->key_len == strlen(key) && memcmp(r->key, key, r->key_len) == 0;
}

static int value_is(const brook_record_t *r, const char *text) {
  return r->value && r->value_len == strlen(text) && memcmp(r->value, text, r->value_len) == 0;
}

/* The number is the value as decimal text. */
static brook_err_t parse_number(const brook_record_t *rec, double *out, void *opaque) {
  int *calls = opaque;
  if (calls)
    ++*calls;
  char buf[64];
  if (!rec->value || rec->value_len == 0 || rec->value_len >= sizeof(buf))
    return BROOK_ERR_INVALID_ARG;
  memcpy(buf, rec->value, rec->value_len);
  buf[rec->value_len] = '\0';
  char *end;
  double v = strtod(buf, &end);
  if (*end)
    return BROOK_ERR_INVALID_ARG;
  *out = v;
  return BROOK_OK;
}

/* ---- count ---- */

static void test_count_per_key(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *c = brook_count(brook_source_push(t, "in", NULL), NULL);
  assert_non_null(c);
  assert_int_equal(strncmp(brook_stream_name(c), "count", 5), 0);
  named_sink(c, "out");
  brook_driver_t *d = new_driver();
  static const char *const keys[] = {"a", "b", "a", NULL, "a", NULL, "b"};
  static const int64_t counts[] = {1, 1, 2, 1, 3, 2, 2};
  for (size_t i = 0; i < 7; i++) {
    push_text(d, keys[i], "v", 100 + (brook_time_t)i);
    /* One result per update. */
    assert_int_equal(brook_driver_output_count(d, "out"), i + 1);
    assert_int_equal(out_i64(d, "out", i), counts[i]);
    const brook_record_t *r = out_rec(d, "out", i);
    assert_true(key_is(r, keys[i])); /* the null-key group keeps a NULL key */
    assert_int_equal(r->timestamp, 100 + (brook_time_t)i);
  }
  /* The end adds nothing for a continuous aggregate. */
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 7);
}

static void test_count_with_named_opts(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_aggregate_opts_t o;
  brook_aggregate_opts_init(&o);
  char name[] = "clicks";
  o.name = name;
  brook_stream_t *c = brook_count(brook_source_push(t, "in", NULL), &o);
  name[0] = 'X'; /* copied */
  assert_string_equal(brook_stream_name(c), "clicks");
  named_sink(c, "out");
  brook_driver_t *d = new_driver();
  push_text(d, "k", "v", 1);
  assert_int_equal(brook_driver_watermark(d, "clicks"), 0);
  assert_int_equal(out_i64(d, "out", 0), 1);
}

/* ---- numeric built-ins ---- */

typedef struct numeric_case {
  const char *sink;
  brook_aggregator_t agg;
} numeric_case_t;

static void build_numeric(brook_stream_t *src, brook_number_fn fn, void *opaque) {
  numeric_case_t cases[] = {
      {"sum", brook_agg_sum(fn, opaque)},     {"min", brook_agg_min(fn, opaque)},
      {"max", brook_agg_max(fn, opaque)},     {"mean", brook_agg_mean(fn, opaque)},
      {"stats", brook_agg_stats(fn, opaque)},
  };
  for (size_t i = 0; i < 5; i++) {
    brook_stream_t *a = brook_aggregate(src, &cases[i].agg, NULL);
    assert_non_null(a);
    assert_int_equal(strncmp(brook_stream_name(a), cases[i].sink, strlen(cases[i].sink)), 0);
    named_sink(a, cases[i].sink);
  }
}

static brook_agg_stats_t out_stats(brook_driver_t *d, size_t i) {
  const brook_record_t *r = out_rec(d, "stats", i);
  assert_int_equal(r->value_len, sizeof(brook_agg_stats_t));
  brook_agg_stats_t s;
  memcpy(&s, r->value, sizeof(s));
  return s;
}

static void check_numeric_outputs(brook_driver_t *d) {
  /* key a: 3, -1, 10; key b: 2.5 (after a's first); the null key: 7 */
  static const double sum[] = {3, 2.5, 2, 12, 7};
  static const double mn[] = {3, 2.5, -1, -1, 7};
  static const double mx[] = {3, 2.5, 3, 10, 7};
  static const double mean[] = {3, 2.5, 1, 4, 7};
  static const int64_t cnt[] = {1, 1, 2, 3, 1};
  static const char *const keys[] = {"a", "b", "a", "a", NULL};
  for (size_t i = 0; i < 5; i++) {
    assert_true(out_double(d, "sum", i) == sum[i]);
    assert_true(out_double(d, "min", i) == mn[i]);
    assert_true(out_double(d, "max", i) == mx[i]);
    assert_true(out_double(d, "mean", i) == mean[i]);
    brook_agg_stats_t s = out_stats(d, i);
    assert_int_equal(s.count, cnt[i]);
    assert_true(s.sum == sum[i]);
    assert_true(s.min == mn[i]);
    assert_true(s.max == mx[i]);
    assert_true(s.mean == mean[i]);
    assert_true(key_is(out_rec(d, "sum", i), keys[i]));
    assert_true(key_is(out_rec(d, "stats", i), keys[i]));
    assert_int_equal(out_rec(d, "mean", i)->timestamp, 10 + (brook_time_t)i);
  }
  assert_int_equal(brook_driver_output_count(d, "sum"), 5);
}

static void test_numeric_native_doubles(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  build_numeric(brook_source_push(t, "in", NULL), NULL, NULL);
  brook_driver_t *d = new_driver();
  push_double(d, "a", 3, 10);
  push_double(d, "b", 2.5, 11);
  push_double(d, "a", -1, 12);
  push_double(d, "a", 10, 13);
  push_double(d, NULL, 7, 14);
  check_numeric_outputs(d);
}

static void test_numeric_with_extractor(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  int calls = 0;
  build_numeric(brook_source_push(t, "in", NULL), parse_number, &calls);
  brook_driver_t *d = new_driver();
  push_text(d, "a", "3", 10);
  push_text(d, "b", "2.5", 11);
  push_text(d, "a", "-1", 12);
  push_text(d, "a", "1e1", 13);
  push_text(d, NULL, "7", 14);
  check_numeric_outputs(d);
  assert_int_equal(calls, 5 * 5); /* five aggregators, each reading every record */
}

static void test_numeric_errors_follow_policy(void **state) {
  (void)state;
  for (int policy = BROOK_ON_ERROR_FAIL; policy <= BROOK_ON_ERROR_ROUTE; policy++) {
    for (int native = 0; native < 2; native++) {
      brook_topology_t *t = new_topology((brook_error_policy_t)policy);
      brook_aggregator_t agg =
          native ? brook_agg_stats(NULL, NULL) : brook_agg_stats(parse_number, NULL);
      brook_aggregate_opts_t o;
      brook_aggregate_opts_init(&o);
      o.name = "st";
      named_sink(brook_aggregate(brook_source_push(t, "in", NULL), &agg, &o), "stats");
      named_sink(brook_error_stream(t), "errs");
      brook_driver_t *d = new_driver();
      if (native)
        push_double(d, "a", 3, 1);
      else
        push_text(d, "a", "3", 1);
      /* Not a number: text for the extractor, a value of the wrong size natively. */
      brook_err_t err = push(d, "a", "x", 1, 2);
      if (policy == BROOK_ON_ERROR_FAIL) {
        assert_int_equal(err, BROOK_ERR_INVALID_ARG);
        assert_non_null(strstr(brook_driver_last_error(d), "st"));
        assert_int_equal(brook_driver_output_count(d, "stats"), 1);
        continue;
      }
      assert_int_equal(err, BROOK_OK);
      /* A failing first record of a key leaves no state behind. */
      assert_int_equal(push(d, "new", "y", 1, 3), BROOK_OK);
      if (native) {
        push_double(d, "a", 5, 4);
        push_double(d, "new", 4, 5);
      } else {
        push_text(d, "a", "5", 4);
        push_text(d, "new", "4", 5);
      }
      assert_int_equal(brook_driver_output_count(d, "stats"), 3);
      brook_agg_stats_t s = out_stats(d, 1);
      assert_int_equal(s.count, 2); /* the failed record did not count */
      assert_true(s.sum == 8);
      assert_true(s.min == 3);
      s = out_stats(d, 2);
      assert_int_equal(s.count, 1);
      assert_true(s.sum == 4);
      assert_true(s.min == 4);
      assert_true(s.max == 4);
      brook_runtime_stats_t st = {.struct_size = sizeof(st)};
      assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
      if (policy == BROOK_ON_ERROR_SKIP) {
        assert_int_equal(st.records_skipped, 2);
        assert_int_equal(brook_driver_output_count(d, "errs"), 0);
      } else {
        assert_int_equal(st.records_routed, 2);
        assert_int_equal(brook_driver_output_count(d, "errs"), 2);
        const brook_record_t *e = out_rec(d, "errs", 0);
        assert_true(key_is(e, "a"));
        const brook_header_t *h = brook_record_header(e, "brook.error.operator");
        assert_non_null(h);
        assert_int_equal(h->value_len, 2);
        assert_memory_equal(h->value, "st", 2);
      }
    }
  }
}

/* ---- a user aggregator ---- */

typedef struct len_acc {
  int64_t n;
  int64_t bytes;
} len_acc_t;

static int user_marker;

static void len_init(void *acc, const brook_aggregator_t *agg) {
  assert_ptr_equal(agg->opaque, &user_marker);
  ((len_acc_t *)acc)->n = 100; /* visible in the results: init ran once per key */
}

static brook_err_t len_add(void *acc, const brook_record_t *rec, const brook_aggregator_t *agg) {
  assert_ptr_equal(agg->opaque, &user_marker);
  if (rec->value_len == 3 && memcmp(rec->value, "bad", 3) == 0)
    return BROOK_ERR_USER; /* acc left unchanged */
  len_acc_t *a = acc;
  a->n++;
  a->bytes += (int64_t)rec->value_len;
  return BROOK_OK;
}

static void len_result(const void *acc, void *out, const brook_aggregator_t *agg) {
  (void)agg;
  const len_acc_t *a = acc;
  char text[24];
  memset(text, '.', sizeof(text));
  int n = snprintf(text, sizeof(text), "n=%lld,b=%lld", (long long)a->n, (long long)a->bytes);
  text[n] = '.'; /* fixed size: padded with dots, no NUL */
  memcpy(out, text, sizeof(text));
}

static brook_aggregator_t len_aggregator(void) {
  return (brook_aggregator_t){.version = BROOK_AGGREGATOR_VERSION,
                              .name = "lens",
                              .acc_size = sizeof(len_acc_t),
                              .result_size = 24,
                              .init = len_init,
                              .add = len_add,
                              .result = len_result,
                              .opaque = &user_marker};
}

static int result_is(const brook_record_t *r, const char *text) {
  char want[24];
  memset(want, '.', sizeof(want));
  memcpy(want, text, strlen(text));
  return r->value_len == 24 && memcmp(r->value, want, 24) == 0;
}

static void test_user_aggregator(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_SKIP);
  brook_aggregator_t agg = len_aggregator();
  brook_stream_t *src = brook_source_push(t, "in", NULL);
  brook_stream_t *a = brook_aggregate(src, &agg, NULL);
  agg.acc_size = 0; /* the aggregator was copied */
  assert_non_null(a);
  assert_int_equal(strncmp(brook_stream_name(a), "lens", 4), 0);
  named_sink(a, "out");
  /* Without result(): the accumulator itself is the value. */
  brook_aggregator_t raw = len_aggregator();
  raw.result = NULL;
  raw.result_size = 0;
  named_sink(brook_aggregate(src, &raw, NULL), "raw");
  brook_driver_t *d = new_driver();
  push_text(d, "k", "abc", 1);
  push_text(d, "k", "de", 2);
  push_text(d, "j", "", 3);
  push_text(d, "k", "bad", 4); /* skipped */
  push_text(d, "k", "f", 5);
  assert_int_equal(brook_driver_output_count(d, "out"), 4);
  assert_true(result_is(out_rec(d, "out", 0), "n=101,b=3"));
  assert_true(result_is(out_rec(d, "out", 1), "n=102,b=5"));
  assert_true(result_is(out_rec(d, "out", 2), "n=101,b=0"));
  assert_true(result_is(out_rec(d, "out", 3), "n=103,b=6"));
  assert_true(key_is(out_rec(d, "out", 2), "j"));
  const brook_record_t *r = out_rec(d, "raw", 3);
  assert_int_equal(r->value_len, sizeof(len_acc_t));
  len_acc_t acc;
  memcpy(&acc, r->value, sizeof(acc));
  assert_int_equal(acc.n, 103);
  assert_int_equal(acc.bytes, 6);
}

/* ---- reduce ---- */

typedef struct concat_ctx {
  int calls;
} concat_ctx_t;

/* acc + "," + value; fails on the value "bad". */
static brook_err_t concat(brook_ctx_t *ctx, const void *acc, size_t acc_len,
                          const brook_record_t *rec, const void **out, size_t *out_len,
                          void *opaque) {
  concat_ctx_t *c = opaque;
  c->calls++;
  if (rec->value_len == 3 && memcmp(rec->value, "bad", 3) == 0) {
    brook_ctx_set_error(ctx, "cannot reduce 'bad'");
    return BROOK_ERR_USER;
  }
  char *buf = brook_ctx_alloc(ctx, acc_len + 1 + rec->value_len);
  if (!buf)
    return BROOK_ERR_NOMEM;
  memcpy(buf, acc, acc_len);
  buf[acc_len] = ',';
  memcpy(buf + acc_len + 1, rec->value, rec->value_len);
  *out = buf;
  *out_len = acc_len + 1 + rec->value_len;
  return BROOK_OK;
}

static void test_reduce_driver(void **state) {
  (void)state;
  for (int policy = BROOK_ON_ERROR_FAIL; policy <= BROOK_ON_ERROR_SKIP; policy++) {
    brook_topology_t *t = new_topology((brook_error_policy_t)policy);
    concat_ctx_t cc = {0};
    brook_stream_t *r = brook_reduce(brook_source_push(t, "in", NULL), concat, &cc, NULL);
    assert_non_null(r);
    assert_int_equal(strncmp(brook_stream_name(r), "reduce", 6), 0);
    named_sink(r, "out");
    brook_driver_t *d = new_driver();
    push_text(d, "a", "x", 1);
    assert_int_equal(cc.calls, 0); /* the first value of a key passes as it is */
    push_text(d, "a", "y", 2);
    push_text(d, "b", "z", 3);
    push_text(d, NULL, "n1", 4);
    push_text(d, "a", "w", 5);
    push_text(d, NULL, "n2", 6);
    assert_int_equal(cc.calls, 3);
    static const char *const expected[] = {"x", "x,y", "z", "n1", "x,y,w", "n1,n2"};
    static const char *const keys[] = {"a", "a", "b", NULL, "a", NULL};
    for (size_t i = 0; i < 6; i++) {
      const brook_record_t *o = out_rec(d, "out", i);
      if (!value_is(o, expected[i]))
        fail_msg("reduce #%zu: got '%.*s', expected '%s'", i, (int)o->value_len,
                 (const char *)o->value, expected[i]);
      assert_true(key_is(o, keys[i]));
      assert_int_equal(o->timestamp, (brook_time_t)i + 1);
    }
    brook_err_t err = push(d, "a", "bad", 3, 7);
    if (policy == BROOK_ON_ERROR_FAIL) {
      assert_int_equal(err, BROOK_ERR_USER);
      assert_non_null(strstr(brook_driver_last_error(d), "cannot reduce 'bad'"));
      continue;
    }
    assert_int_equal(err, BROOK_OK);
    push_text(d, "a", "q", 8); /* the failed record left the state as it was */
    assert_int_equal(brook_driver_output_count(d, "out"), 7);
    assert_true(value_is(out_rec(d, "out", 6), "x,y,w,q"));
  }
}

/* The real runtime: many updates of one key inside one batch. Every emitted value must stay
 * what it was when emitted, even though the stored value changes (and moves) afterwards. */
typedef struct kv_gen {
  size_t n, next, n_keys;
} kv_gen_t;

static brook_err_t kv_gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  kv_gen_t *g = opaque;
  if (g->next >= g->n)
    return BROOK_DONE;
  size_t i = g->next++;
  char *k = brook_ctx_alloc(ctx, 16);
  char *v = brook_ctx_alloc(ctx, 16);
  if (!k || !v)
    return BROOK_ERR_NOMEM;
  out->key = k;
  out->key_len = (size_t)snprintf(k, 16, "k%zu", i % g->n_keys);
  out->value = v;
  out->value_len = (size_t)snprintf(v, 16, "v%zu", i);
  out->timestamp = (brook_time_t)i;
  return BROOK_OK;
}

static void test_reduce_values_intact_within_batch(void **state) {
  (void)state;
  static const size_t n_keys[] = {1, 3};
  for (size_t c = 0; c < 2; c++) {
    brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
    kv_gen_t g = {.n = 300, .n_keys = n_keys[c]};
    concat_ctx_t cc = {0};
    brook_stream_t *src = brook_source_generator(t, "gen", kv_gen_fn, &g, NULL);
    collect_t out;
    collect_init(&out);
    assert_int_equal(collect_sink(brook_reduce(src, concat, &cc, NULL), &out), BROOK_OK);
    collect_run_t r;
    brook_err_t err = collect_run_batch(t, 1024, &r); /* one batch holds everything */
    if (err != BROOK_OK)
      fail_msg("run: %s", r.message);
    assert_int_equal(r.stats.batches, 1);
    assert_int_equal(out.n, 300);
    /* Reference: per key, the running concatenation. */
    char *acc[3] = {NULL, NULL, NULL};
    size_t acc_len[3] = {0, 0, 0};
    for (size_t i = 0; i < 300; i++) {
      size_t k = i % n_keys[c];
      char v[16];
      size_t vl = (size_t)snprintf(v, sizeof(v), "v%zu", i);
      acc[k] = realloc(acc[k], acc_len[k] + vl + 2);
      assert_non_null(acc[k]);
      if (acc_len[k])
        acc[k][acc_len[k]++] = ',';
      memcpy(acc[k] + acc_len[k], v, vl + 1);
      acc_len[k] += vl;
      if (strcmp(collect_value(&out, i), acc[k]) != 0)
        fail_msg("record %zu: got '%.40s...' (%zu bytes), expected %zu bytes", i,
                 collect_value(&out, i), out.recs[i].value_len, acc_len[k]);
      assert_string_equal(collect_key(&out, i), collect_strf("k%zu", k));
    }
    for (size_t k = 0; k < 3; k++)
      free(acc[k]);
    collect_free(&out);
  }
}

/* ---- dedupe ---- */

static void test_dedupe(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *dd = brook_dedupe(brook_source_push(t, "in", NULL), 100, NULL);
  assert_non_null(dd);
  assert_int_equal(strncmp(brook_stream_name(dd), "dedupe", 6), 0);
  named_sink(dd, "out");
  brook_driver_t *d = new_driver();
  size_t n = 0;
#define EXPECT_PASSED(passed)                                                                      \
  do {                                                                                             \
    n += (passed);                                                                                 \
    assert_int_equal(brook_driver_output_count(d, "out"), n);                                      \
  } while (0)
  push_text(d, "a", "a1", 1000);
  EXPECT_PASSED(1);
  push_text(d, "a", "a2", 1005); /* duplicate inside the horizon */
  EXPECT_PASSED(0);
  push_text(d, "b", "b1", 1003); /* another key: independent */
  EXPECT_PASSED(1);
  push_text(d, "a", "a3", 1000); /* same timestamp */
  EXPECT_PASSED(0);
  push_text(d, "a", "a4", 999); /* older than the first */
  EXPECT_PASSED(0);
  push_text(d, "a", "a5", 1099); /* 99 ms after: still inside */
  EXPECT_PASSED(0);
  /* The watermark is now 1098 = first + horizon - 2: a's state is still there. */
  assert_int_equal(brook_driver_watermark(d, "in"), 1098);
  push_text(d, "a", "a6", 1060);
  EXPECT_PASSED(0);
  /* Watermark 1099 = first + horizon - 1: no record inside a's horizon can come any more;
   * the state expires and the next record of a passes, whatever its timestamp. */
  push_text(d, "c", "c1", 1100);
  EXPECT_PASSED(1);
  push_text(d, "a", "a7", 1060);
  EXPECT_PASSED(1);
  push_text(d, "b", "b2", 1090); /* b's horizon (1003..1102) is still open */
  EXPECT_PASSED(0);
  push_text(d, "c", "c2", 1103); /* watermark 1102: b expires */
  EXPECT_PASSED(0);
  push_text(d, "b", "b3", 1090);
  EXPECT_PASSED(1);
  /* A record at first + horizon is outside the horizon and opens a new one. */
  push_text(d, "e", "e1", 5000);
  EXPECT_PASSED(1);
  push_text(d, "e", "e2", 5100);
  EXPECT_PASSED(1);
  push_text(d, "e", "e3", 5150);
  EXPECT_PASSED(0);
#undef EXPECT_PASSED
  static const char *const passed[] = {"a1", "b1", "c1", "a7", "b3", "e1", "e2"};
  for (size_t i = 0; i < 7; i++) {
    const brook_record_t *r = out_rec(d, "out", i);
    assert_true(value_is(r, passed[i]));
    assert_int_equal(r->key_len, 1);
  }
  assert_int_equal(out_rec(d, "out", 3)->timestamp, 1060);
  /* The end fires the remaining expiry timers; nothing else comes out. */
  brook_runtime_stats_t before = {.struct_size = sizeof(before)};
  assert_int_equal(brook_driver_stats(d, &before), BROOK_OK);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  brook_runtime_stats_t after = {.struct_size = sizeof(after)};
  assert_int_equal(brook_driver_stats(d, &after), BROOK_OK);
  assert_true(after.timers_fired > before.timers_fired);
  assert_int_equal(brook_driver_output_count(d, "out"), 7);
}

static void test_dedupe_empty_key(void **state) {
  (void)state;
  /* A zero-length (non-NULL) key is a key like any other. */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_dedupe(brook_source_push(t, "in", NULL), 10, NULL), "out");
  brook_driver_t *d = new_driver();
  push_text(d, "", "x1", 100);
  push_text(d, "", "x2", 105);
  push_text(d, "y", "y1", 105);
  assert_int_equal(brook_driver_output_count(d, "out"), 2);
  push_text(d, "y", "y2", 111); /* watermark 110 >= 100 + 10 - 1: "" expired */
  push_text(d, "", "x3", 105);
  assert_int_equal(brook_driver_output_count(d, "out"), 3);
  assert_true(value_is(out_rec(d, "out", 2), "x3"));
}

/* Plain checks only (runs in a child process). */
static void dedupe_null_key_scenario(void) {
  brook_topology_t *t = NULL;
  brook_driver_t *d = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    _exit(2);
  brook_stream_t *dd = brook_dedupe(brook_source_push(t, "in", NULL), 10, NULL);
  /* The driver finds a callback sink by the name of the stream it consumes. */
  if (!brook_stream_set_name(dd, "out") ||
      brook_sink_callback(dd, ignore_record, NULL, NULL) != BROOK_OK ||
      brook_driver_new(&d, t, NULL) != BROOK_OK)
    _exit(3);
  brook_record_t r1 = {.value = "n1", .value_len = 2, .timestamp = 100};
  brook_record_t r2 = {.value = "n2", .value_len = 2, .timestamp = 101};
  if (brook_driver_push(d, "in", &r1) != BROOK_OK || brook_driver_push(d, "in", &r2) != BROOK_OK)
    _exit(4);
  if (brook_driver_output_count(d, "out") != 1)
    _exit(5);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_dedupe_null_key(void **state) {
  (void)state;
  /* Regression (this failed before the fix): records without a key (key NULL) make brook_dedupe
   * call brook_timer_set(ctx, ..., NULL, 0, ...), and timer_hash() in
   * src/time/timer_queue.c does memcpy(&w, NULL, 0): undefined behaviour, which aborts the
   * sanitizer build. aggregate.h treats keyless records as one "null key" group; dedupe
   * should too. */
  int status = run_in_child(dedupe_null_key_scenario);
  if (status != 0)
    fail_msg("dedupe of keyless records crashed or misbehaved (child status %d)", status);
}

/* ---- builder validation ---- */

static void expect_build_error(brook_topology_t *t, brook_stream_t *s, const char *what) {
  if (s)
    fail_msg("%s: the builder accepted it", what);
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
  assert_true(strlen(brook_topology_last_error(t)) > 0);
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_ERR_BUILD);
  assert_null(d);
}

static void test_builder_validation(void **state) {
  (void)state;
  brook_aggregate_opts_t bad_opts;
  brook_aggregate_opts_init(&bad_opts);
  bad_opts.struct_size = 2;
  concat_ctx_t cc = {0};
  for (int c = 0; c < 12; c++) {
    brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
    brook_stream_t *src = brook_source_push(t, "in", NULL);
    named_sink(src, "out");
    brook_aggregator_t agg = brook_agg_count();
    brook_stream_t *s = NULL;
    const char *what = "?";
    switch (c) {
    case 0:
      what = "NULL aggregator";
      s = brook_aggregate(src, NULL, NULL);
      break;
    case 1:
      what = "acc_size 0";
      agg.acc_size = 0;
      s = brook_aggregate(src, &agg, NULL);
      break;
    case 2:
      what = "acc_size 65537";
      agg.acc_size = 65537;
      s = brook_aggregate(src, &agg, NULL);
      break;
    case 3:
      what = "no add";
      agg.add = NULL;
      s = brook_aggregate(src, &agg, NULL);
      break;
    case 4:
      what = "version 0";
      agg.version = 0;
      s = brook_aggregate(src, &agg, NULL);
      break;
    case 5:
      what = "result_size 65537";
      agg = brook_agg_sum(NULL, NULL);
      agg.result_size = 65537;
      s = brook_aggregate(src, &agg, NULL);
      break;
    case 6:
      what = "horizon 0";
      s = brook_dedupe(src, 0, NULL);
      break;
    case 7:
      what = "horizon -5";
      s = brook_dedupe(src, -5, NULL);
      break;
    case 8:
      what = "reduce without a function";
      s = brook_reduce(src, NULL, &cc, NULL);
      break;
    case 9:
      what = "aggregate opts struct_size";
      s = brook_aggregate(src, &agg, &bad_opts);
      break;
    case 10:
      what = "reduce opts struct_size";
      s = brook_reduce(src, concat, &cc, &bad_opts);
      break;
    case 11:
      what = "dedupe opts struct_size";
      s = brook_dedupe(src, 10, &bad_opts);
      break;
    }
    expect_build_error(t, s, what);
  }
  /* A NULL input: NULL, and nothing new recorded (the upstream call already was). */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_aggregator_t agg = brook_agg_count();
  assert_null(brook_aggregate(NULL, &agg, NULL));
  assert_null(brook_count(NULL, NULL));
  assert_null(brook_reduce(NULL, concat, &cc, NULL));
  assert_null(brook_dedupe(NULL, 10, NULL));
  assert_int_equal(brook_topology_error(t), BROOK_OK);
}

/* ---- keyed state in a custom operator ---- */

typedef struct change_log {
  char entries[64][64];
  size_t n;
  size_t n_in_process;        /* entries logged by the end of the last process() */
  brook_err_t fail_for_key_f; /* the listener returns this for key "f" */
} change_log_t;

typedef struct kv_shared {
  change_log_t log;
  brook_err_t open_results[4]; /* kv, cnt, duplicate kv, bad opts */
  brook_err_t results[16];     /* per command of the last record */
  size_t n_results;
  int opens, closes;
} kv_shared_t;

typedef struct kv_state {
  kv_shared_t *shared;
  brook_store_t *kv, *cnt;
} kv_state_t;

static brook_err_t kv_listener(const char *store, const void *key, size_t key_len,
                               const void *value, size_t value_len, change_log_t *l) {
  assert_true(l->n < 64);
  if (value) {
    if (strcmp(store, "cnt") == 0) {
      int64_t v;
      assert_int_equal(value_len, sizeof(v));
      memcpy(&v, value, sizeof(v));
      snprintf(l->entries[l->n++], 64, "%s:%.*s=%lld", store, (int)key_len, (const char *)key,
               (long long)v);
    } else {
      snprintf(l->entries[l->n++], 64, "%s:%.*s=%.*s", store, (int)key_len, (const char *)key,
               (int)value_len, (const char *)value);
    }
  } else {
    snprintf(l->entries[l->n++], 64, "%s:%.*s-", store, (int)key_len, (const char *)key);
  }
  if (key_len == 1 && memcmp(key, "f", 1) == 0 && l->fail_for_key_f)
    return l->fail_for_key_f;
  return BROOK_OK;
}

static brook_err_t kv_listen(const void *key, size_t key_len, const void *value, size_t value_len,
                             void *opaque) {
  return kv_listener("kv", key, key_len, value, value_len, opaque);
}

static brook_err_t cnt_listen(const void *key, size_t key_len, const void *value, size_t value_len,
                              void *opaque) {
  return kv_listener("cnt", key, key_len, value, value_len, opaque);
}

static brook_err_t kv_open(brook_ctx_t *ctx, void *opaque, void **state) {
  kv_shared_t *sh = opaque;
  sh->opens++;
  kv_state_t *s = calloc(1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->shared = sh;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  sh->open_results[0] = brook_store_open(ctx, "kv", &o, &s->kv);
  o.value_size = sizeof(int64_t);
  sh->open_results[1] = brook_store_open(ctx, "cnt", &o, &s->cnt);
  brook_store_t *dup = (brook_store_t *)&o;
  sh->open_results[2] = brook_store_open(ctx, "kv", NULL, &dup);
  if (dup)
    sh->open_results[2] = BROOK_ERR_USER; /* *out must be NULL on failure */
  o.struct_size = 1;
  brook_store_t *bad = NULL;
  sh->open_results[3] = brook_store_open(ctx, "bad", &o, &bad);
  if (sh->open_results[0] < 0 || sh->open_results[1] < 0) {
    free(s);
    return BROOK_ERR_STATE;
  }
  brook_store_set_listener(s->kv, kv_listen, &sh->log);
  brook_store_set_listener(s->cnt, cnt_listen, &sh->log);
  *state = s;
  return BROOK_OK;
}

static void kv_close(void *state, void *opaque) {
  kv_shared_t *sh = opaque;
  sh->closes++;
  free(state);
}

static brook_err_t emit_text(brook_ctx_t *ctx, const brook_record_t *rec, const void *text,
                             size_t len) {
  char *v = brook_ctx_alloc(ctx, len ? len : 1);
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, text, len);
  brook_record_t out = *rec;
  out.value = v;
  out.value_len = len;
  return brook_emit(ctx, &out);
}

/* The record's value is a list of commands separated by spaces:
 *   p<k>=<v>  put into kv        d<k>  delete from kv      g<k>  get from kv (emitted)
 *   i<k>      +1 in cnt (update) x<k>  delete from cnt     c<k>  get from cnt (emitted)
 *   o  brook_store_open now      u<k>  update on kv        w<k>  put 3 bytes into cnt
 * Each command's status goes to shared->results. */
static brook_err_t kv_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  kv_state_t *s = state;
  kv_shared_t *sh = s->shared;
  char cmds[256];
  size_t len = rec->value_len < sizeof(cmds) - 1 ? rec->value_len : sizeof(cmds) - 1;
  memcpy(cmds, rec->value, len);
  cmds[len] = '\0';
  sh->n_results = 0;
  char *save = NULL;
  brook_err_t first_err = BROOK_OK;
  for (char *tok = strtok_r(cmds, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    const char *k = tok + 1;
    char *eq = strchr(tok, '=');
    size_t kl = eq ? (size_t)(eq - k) : strlen(k);
    brook_err_t err = BROOK_OK;
    const void *v = NULL;
    size_t vl = 0;
    switch (tok[0]) {
    case 'p':
      err = brook_store_put(s->kv, k, kl, eq + 1, strlen(eq + 1));
      break;
    case 'd':
      err = brook_store_delete(s->kv, k, kl);
      break;
    case 'g':
      err = brook_store_get(s->kv, k, kl, &v, &vl);
      if (err == BROOK_OK)
        err = emit_text(ctx, rec, v, vl);
      else if (v || vl)
        err = BROOK_ERR_USER; /* NOT_FOUND must leave NULL / 0 */
      else
        err = emit_text(ctx, rec, "<none>", 6) < 0 ? BROOK_ERR_NOMEM : BROOK_ERR_NOT_FOUND;
      break;
    case 'i': {
      void *p = NULL;
      int created = -1;
      err = brook_store_update(s->cnt, k, kl, &p, &created);
      if (err == BROOK_OK) {
        int64_t c;
        memcpy(&c, p, sizeof(c));
        if ((created == 1) != (c == 0))
          err = BROOK_ERR_USER; /* a new key starts zeroed with created = 1 */
        c++;
        memcpy(p, &c, sizeof(c));
      }
      break;
    }
    case 'x':
      err = brook_store_delete(s->cnt, k, kl);
      break;
    case 'c':
      err = brook_store_get(s->cnt, k, kl, &v, &vl);
      if (err == BROOK_OK) {
        int64_t c;
        memcpy(&c, v, sizeof(c));
        char text[32];
        err = emit_text(ctx, rec, text, (size_t)snprintf(text, sizeof(text), "%lld", (long long)c));
      }
      break;
    case 'o': {
      brook_store_t *late = (brook_store_t *)s;
      err = brook_store_open(ctx, "late", NULL, &late);
      if (late)
        err = BROOK_ERR_USER;
      break;
    }
    case 'u': {
      void *p = NULL;
      err = brook_store_update(s->kv, k, kl, &p, NULL);
      break;
    }
    case 'w':
      err = brook_store_put(s->cnt, k, kl, "abc", 3);
      break;
    default:
      err = BROOK_ERR_INVALID_ARG;
    }
    if (sh->n_results < 16)
      sh->results[sh->n_results++] = err;
    if (err == BROOK_ERR_IO && first_err == BROOK_OK)
      first_err = err; /* a listener failure: give it to the error policy */
  }
  sh->log.n_in_process = sh->log.n;
  if (first_err < 0)
    return first_err;
  return emit_text(ctx, rec, "done", 4);
}

static const brook_operator_t kv_op = {.version = BROOK_OPERATOR_VERSION,
                                       .type_name = "kv",
                                       .open = kv_open,
                                       .process = kv_process,
                                       .close = kv_close};

static void run_kv(brook_driver_t *d, kv_shared_t *sh, const char *cmds) {
  sh->log.n = 0;
  sh->log.n_in_process = 0;
  push_text(d, "rec", cmds, 1);
}

static void assert_log(const change_log_t *l, const char *const *expected, size_t n) {
  for (size_t i = 0; i < l->n && i < n; i++)
    if (strcmp(l->entries[i], expected[i]) != 0)
      fail_msg("change %zu: got '%s', expected '%s'", i, l->entries[i], expected[i]);
  if (l->n != n)
    fail_msg("%zu changes reported, expected %zu", l->n, n);
}

static void assert_results(const kv_shared_t *sh, const brook_err_t *expected, size_t n) {
  assert_int_equal(sh->n_results, n);
  for (size_t i = 0; i < n; i++)
    if (sh->results[i] != expected[i])
      fail_msg("command %zu: got %s, expected %s", i, brook_errname(sh->results[i]),
               brook_errname(expected[i]));
}

static void test_store_operator(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  static kv_shared_t sh; /* static: the teardown may close the operator after a failure */
  memset(&sh, 0, sizeof(sh));
  brook_stream_t *s =
      brook_stream_set_name(brook_apply(brook_source_push(t, "in", NULL), &kv_op, &sh), "kvop");
  named_sink(s, "out");
  brook_driver_t *d = new_driver();
  assert_int_equal(sh.opens, 1);
  assert_int_equal(sh.open_results[0], BROOK_OK);
  assert_int_equal(sh.open_results[1], BROOK_OK);
  assert_int_equal(sh.open_results[2], BROOK_ERR_DUPLICATE);
  assert_int_equal(sh.open_results[3], BROOK_ERR_INVALID_ARG);

  /* put is reported at once, in order; in-place updates once per key at the end of the
   * push, with the final value, in the order the keys were first updated. */
  run_kv(d, &sh, "pa=1 ib pb=2 ia ib ib ia");
  static const char *const c1[] = {"kv:a=1", "kv:b=2", "cnt:b=3", "cnt:a=2"};
  assert_log(&sh.log, c1, 4);
  assert_int_equal(sh.log.n_in_process, 2); /* the updates were not reported yet */
  /* put replaces; every put is a change of its own. */
  run_kv(d, &sh, "pa=3 pa=4 ia ia ia");
  static const char *const c2[] = {"kv:a=3", "kv:a=4", "cnt:a=5"};
  assert_log(&sh.log, c2, 3);
  /* Deletes are reported at once; gets report nothing; the state outlived the pushes. */
  brook_driver_clear_output(d, "out");
  run_kv(d, &sh, "da ga gb ca cb");
  static const char *const c3[] = {"kv:a-"};
  assert_log(&sh.log, c3, 1);
  static const brook_err_t r3[] = {BROOK_OK, BROOK_ERR_NOT_FOUND, BROOK_OK, BROOK_OK, BROOK_OK};
  assert_results(&sh, r3, 5);
  static const char *const got[] = {"<none>", "2", "5", "3", "done"};
  assert_int_equal(brook_driver_output_count(d, "out"), 5);
  for (size_t i = 0; i < 5; i++)
    assert_true(value_is(out_rec(d, "out", i), got[i]));
  /* Updated, then deleted in the same push: the deletion is the last word, no stale value
   * is reported after it (a changelog replayed in order must end without the key). */
  run_kv(d, &sh, "ic ic xc");
  static const char *const c4[] = {"cnt:c-"};
  assert_log(&sh.log, c4, 1);
  /* Deleted, then updated again: reported as a new value at the end. */
  run_kv(d, &sh, "xa ia");
  static const char *const c5[] = {"cnt:a-", "cnt:a=1"};
  assert_log(&sh.log, c5, 2);
  /* Nothing changed: nothing reported. */
  run_kv(d, &sh, "ga cb");
  assert_log(&sh.log, NULL, 0);
  /* Misuse: opening outside open(), update without value_size, a wrong size. Deleting what
   * is not there. */
  run_kv(d, &sh, "o ua wa dzz xzz");
  static const brook_err_t r6[] = {BROOK_ERR_STATE, BROOK_ERR_STATE, BROOK_ERR_INVALID_ARG,
                                   BROOK_ERR_NOT_FOUND, BROOK_ERR_NOT_FOUND};
  assert_results(&sh, r6, 5);
  assert_log(&sh.log, NULL, 0);
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  /* The end reports nothing more. */
  sh.log.n = 0;
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_log(&sh.log, NULL, 0);
  fixture_free();
  assert_int_equal(sh.closes, 1);
}

static void test_store_listener_failure(void **state) {
  (void)state;
  /* put: the listener's error comes back from brook_store_put (the process() here returns
   * it: the pipeline fails). Update: the runtime's flush after the push fails the pipeline
   * with a message naming the store. */
  for (int via_update = 0; via_update < 2; via_update++) {
    brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
    static kv_shared_t sh; /* static: the teardown may close the operator after a failure */
    memset(&sh, 0, sizeof(sh));
    sh.log.fail_for_key_f = BROOK_ERR_IO;
    brook_stream_t *s =
        brook_stream_set_name(brook_apply(brook_source_push(t, "in", NULL), &kv_op, &sh), "kvop");
    named_sink(s, "out");
    brook_driver_t *d = new_driver();
    brook_err_t err = push(d, "rec", via_update ? "if" : "pf=1", via_update ? 2 : 4, 1);
    assert_int_equal(err, BROOK_ERR_IO);
    assert_int_equal(brook_driver_status(d), BROOK_ERR_IO);
    if (via_update) {
      assert_int_equal(sh.results[0], BROOK_OK); /* the update itself succeeded */
      assert_non_null(strstr(brook_driver_last_error(d), "cnt"));
    } else {
      assert_int_equal(sh.results[0], BROOK_ERR_IO);
    }
    assert_non_null(strstr(brook_driver_last_error(d), "kvop"));
    fixture_free();
    assert_int_equal(sh.closes, 1);
  }
}

static void test_store_open_outside_open(void **state) {
  (void)state;
  assert_int_equal(brook_store_open(NULL, "x", NULL, NULL), BROOK_ERR_INVALID_ARG);
  brook_store_t *s = (brook_store_t *)&s;
  assert_int_equal(brook_store_open(NULL, "x", NULL, &s), BROOK_ERR_INVALID_ARG);
  assert_null(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_count_per_key, teardown),
      cmocka_unit_test_teardown(test_count_with_named_opts, teardown),
      cmocka_unit_test_teardown(test_numeric_native_doubles, teardown),
      cmocka_unit_test_teardown(test_numeric_with_extractor, teardown),
      cmocka_unit_test_teardown(test_numeric_errors_follow_policy, teardown),
      cmocka_unit_test_teardown(test_user_aggregator, teardown),
      cmocka_unit_test_teardown(test_reduce_driver, teardown),
      cmocka_unit_test_teardown(test_reduce_values_intact_within_batch, teardown),
      cmocka_unit_test_teardown(test_dedupe, teardown),
      cmocka_unit_test_teardown(test_dedupe_empty_key, teardown),
      cmocka_unit_test_teardown(test_dedupe_null_key, teardown),
      cmocka_unit_test_teardown(test_builder_validation, teardown),
      cmocka_unit_test_teardown(test_store_operator, teardown),
      cmocka_unit_test_teardown(test_store_listener_failure, teardown),
      cmocka_unit_test_teardown(test_store_open_outside_open, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
