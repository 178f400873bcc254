/* Stateless operators: map, filter, flat_map, peek, key_by, merge, branch. Each test runs the
 * operator over known input, at the default batch size and at tiny ones (so emitting fills
 * ports mid-batch), and compares the exact output with an expectation computed here. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"

/* Batch sizes every test runs with: default (1024), tiny, and one record per batch. */
static const size_t batch_sizes[] = {0, 3, 1};
#define N_BATCH_SIZES (sizeof(batch_sizes) / sizeof(batch_sizes[0]))

/* values[i] = "<prefix><i>" for i < n, as strings that live until the end of the process. */
static const char **make_values(const char *prefix, size_t n) {
  const char **v = calloc(n ? n : 1, sizeof(*v));
  assert_non_null(v);
  for (size_t i = 0; i < n; i++)
    v[i] = collect_strf("%s%zu", prefix, i);
  return v;
}

/* ---- map ---- */

static brook_err_t upper_map(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char *v = brook_ctx_alloc(ctx, rec->value_len + 1);
  if (!v)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < rec->value_len; i++)
    v[i] = (char)toupper(((const unsigned char *)rec->value)[i]);
  rec->value = v;
  rec->value_len = rec->value_len + 1; /* and a '!' */
  v[rec->value_len - 1] = '!';
  rec->timestamp *= 2;
  return BROOK_OK;
}

static void test_map(void **state) {
  (void)state;
  static const char *const in[] = {"alpha", "b", "", "gamma delta"};
  static const char *const keys[] = {"k0", NULL, "k2", "k3"};
  static const char *const expected[] = {"ALPHA!", "B!", "!", "GAMMA DELTA!"};
  static const brook_header_t hdr[] = {{"trace", "t-1", 3}};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, 4);
    g.keys = keys;
    g.headers = hdr;
    g.header_count = 1;
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        collect_sink(brook_map(collect_gen_source(t, "src", &g), upper_map, NULL), &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&out, expected, 4);
    for (size_t i = 0; i < 4; i++) {
      /* Fields the map did not touch pass through. */
      if (keys[i]) {
        assert_string_equal(collect_key(&out, i), keys[i]);
      } else {
        assert_null(out.recs[i].key);
      }
      assert_int_equal(out.recs[i].timestamp, 2 * (g.ts_base + (brook_time_t)i));
      assert_string_equal(collect_header(&out, i, "trace"), "t-1");
      assert_int_equal(out.recs[i].header_count, 1);
    }
    assert_int_equal(r.stats.records_in, 4);
    assert_int_equal(r.stats.records_out, 4);
    brook_topology_free(t);
    collect_free(&out);
  }
}

static void test_map_many_batches(void **state) {
  (void)state;
  const size_t n = 2500; /* more than two default batches */
  const char **in = make_values("r", n);
  const char **expected = make_values("R", n);
  for (size_t i = 0; i < n; i++)
    expected[i] = collect_strf("%s!", expected[i]);
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    g.copy = 1; /* the source's bytes live in the batch arena too */
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        collect_sink(brook_map(collect_gen_source(t, "src", &g), upper_map, NULL), &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&out, expected, n);
    assert_int_equal(r.stats.records_in, n);
    size_t bs = batch_sizes[b] ? batch_sizes[b] : 1024;
    assert_true(r.stats.batches >= (n + bs - 1) / bs);
    brook_topology_free(t);
    collect_free(&out);
  }
  free(in);
  free(expected);
}

/* A map callback that (wrongly) emits, with brook_emit or (opaque not NULL) brook_emit_batch:
 * the map refuses it (BROOK_ERR_STATE, see map.c) and must not deliver the record twice,
 * whatever the batch size. */
static brook_err_t map_that_emits(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  return opaque ? brook_emit_batch(ctx, 0, rec, 1) : brook_emit(ctx, rec);
}

static void test_map_must_not_emit(void **state) {
  (void)state;
  static const char *const in[] = {"x", "y", "z"};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, 3);
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        collect_sink(brook_map(collect_gen_source(t, "src", &g), map_that_emits, NULL), &out),
        BROOK_OK);
    collect_run_t r;
    brook_err_t err = collect_run_batch(t, batch_sizes[b], &r);
    brook_topology_free(t);
    size_t delivered = out.n;
    collect_free(&out);
    if (err != BROOK_ERR_STATE || delivered > 1)
      fail_msg("batch size %zu: run returned %s, %zu record(s) delivered", batch_sizes[b],
               brook_errname(err), delivered);
  }
}

static void test_map_must_not_emit_skip(void **state) {
  (void)state;
  /* Under SKIP each record is refused and skipped: none of them, nor what the callback tried
   * to emit, reaches the sink. */
  static const char *const in[] = {"x", "y", "z"};
  static const size_t sizes[] = {0, 3, 2, 1};
  static int as_batch; /* its address selects brook_emit_batch */
  for (size_t k = 0; k < 2 * sizeof(sizes) / sizeof(sizes[0]); k++) {
    size_t b = k / 2;
    void *how = k % 2 ? &as_batch : NULL;
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_SKIP);
    collect_gen_t g;
    collect_gen_init(&g, in, 3);
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        collect_sink(brook_map(collect_gen_source(t, "src", &g), map_that_emits, how), &out),
        BROOK_OK);
    collect_run_t r;
    brook_err_t err = collect_run_batch(t, sizes[b], &r);
    brook_topology_free(t);
    size_t delivered = out.n;
    collect_free(&out);
    if (err != BROOK_OK || delivered != 0 || r.stats.records_skipped != 3)
      fail_msg("%s, batch size %zu: run returned %s, %zu record(s) delivered, %llu skipped",
               how ? "brook_emit_batch" : "brook_emit", sizes[b], brook_errname(err), delivered,
               (unsigned long long)r.stats.records_skipped);
  }
}

/* ---- filter ---- */

static int even_length(const brook_record_t *rec, void *opaque) {
  size_t *calls = opaque;
  (*calls)++;
  return rec->value_len % 2 == 0;
}

static int big_positive(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->value_len ? 1000 : 0; /* any value > 0 keeps */
}

static void test_filter(void **state) {
  (void)state;
  const size_t n = 1500;
  const char **in = calloc(n, sizeof(*in));
  const char **expected = calloc(n, sizeof(*expected));
  assert_non_null(in);
  assert_non_null(expected);
  size_t n_expected = 0;
  for (size_t i = 0; i < n; i++) {
    in[i] = collect_strf("%.*s", (int)(i % 7), "xxxxxxx");
    if (i % 7 % 2 == 0)
      expected[n_expected++] = in[i];
  }
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    size_t calls = 0;
    collect_t out;
    collect_init(&out);
    brook_stream_t *f = brook_filter(collect_gen_source(t, "src", &g), even_length, &calls);
    assert_int_equal(collect_sink(f, &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&out, expected, n_expected);
    /* Timestamps identify which input each output came from. */
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
      if (i % 7 % 2 == 0)
        assert_int_equal(out.recs[j++].timestamp, g.ts_base + (brook_time_t)i);
    assert_int_equal(calls, n);
    assert_int_equal(r.stats.records_out, n_expected);
    brook_topology_free(t);
    collect_free(&out);
  }

  /* Any positive return keeps; 0 drops. */
  static const char *const some[] = {"a", "", "b", ""};
  static const char *const kept[] = {"a", "b"};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, some, 4);
  collect_t out;
  collect_init(&out);
  assert_int_equal(
      collect_sink(brook_filter(collect_gen_source(t, "src", &g), big_positive, NULL), &out),
      BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  collect_assert_values(&out, kept, 2);
  brook_topology_free(t);
  collect_free(&out);
  free(in);
  free(expected);
}

/* ---- flat_map ---- */

/* The value is a count n: emits "<value>.<j>" for j < n, in brook_ctx_alloc memory. */
static brook_err_t explode(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char num[32];
  snprintf(num, sizeof(num), "%.*s", (int)rec->value_len, (const char *)rec->value);
  long count = strtol(num, NULL, 10);
  for (long j = 0; j < count; j++) {
    char *v = brook_ctx_alloc(ctx, 48);
    if (!v)
      return BROOK_ERR_NOMEM;
    brook_record_t out = *rec;
    out.value = v;
    out.value_len = (size_t)snprintf(v, 48, "%s.%ld", num, j);
    out.timestamp = rec->timestamp + j;
    brook_err_t err = brook_emit(ctx, &out);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static void test_flat_map(void **state) {
  (void)state;
  /* 0, 1 and many outputs, including one input yielding more than a whole batch. */
  static const char *const in[] = {"0", "1", "5", "0", "3000", "2", "0"};
  const size_t n_in = sizeof(in) / sizeof(in[0]);
  size_t n_exp = 0;
  for (size_t i = 0; i < n_in; i++)
    n_exp += (size_t)atoi(in[i]);
  const char **expected = calloc(n_exp, sizeof(*expected));
  brook_time_t *ts = calloc(n_exp, sizeof(*ts));
  assert_non_null(expected);
  assert_non_null(ts);
  size_t k = 0;
  for (size_t i = 0; i < n_in; i++)
    for (int j = 0; j < atoi(in[i]); j++) {
      ts[k] = 1000 + (brook_time_t)i + j;
      expected[k++] = collect_strf("%s.%d", in[i], j);
    }
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n_in);
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        collect_sink(brook_flat_map(collect_gen_source(t, "src", &g), explode, NULL), &out),
        BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&out, expected, n_exp);
    for (size_t i = 0; i < n_exp; i++)
      assert_int_equal(out.recs[i].timestamp, ts[i]);
    assert_int_equal(r.stats.records_in, n_in);
    assert_int_equal(r.stats.records_out, n_exp);
    brook_topology_free(t);
    collect_free(&out);
  }
  free(expected);
  free(ts);
}

static void test_flat_map_chained(void **state) {
  (void)state;
  /* flat_map feeding flat_map: "3" -> "3.0" "3.1" "3.2" -> each parsed as 3 -> "3.0.0" ... */
  static const char *const in[] = {"3", "2"};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, 2);
    collect_t out;
    collect_init(&out);
    brook_stream_t *s = brook_flat_map(
        brook_flat_map(collect_gen_source(t, "src", &g), explode, NULL), explode, NULL);
    assert_int_equal(collect_sink(s, &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    const char *expected[13];
    size_t k = 0;
    for (int i = 0; i < 2; i++) /* the second level parses "3.1" as 3 */
      for (int j = 0; j < atoi(in[i]); j++)
        for (int l = 0; l < atoi(in[i]); l++)
          expected[k++] = collect_strf("%s.%d.%d", in[i], j, l);
    assert_int_equal(k, 13);
    collect_assert_values(&out, expected, 13);
    brook_topology_free(t);
    collect_free(&out);
  }
}

/* ---- peek ---- */

static brook_err_t peek_collect(const brook_record_t *rec, void *opaque) {
  collect_append(opaque, rec);
  return BROOK_OK;
}

static void test_peek(void **state) {
  (void)state;
  const size_t n = 1100;
  const char **in = make_values("p", n);
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    collect_t seen, out;
    collect_init(&seen);
    collect_init(&out);
    brook_stream_t *p = brook_peek(collect_gen_source(t, "src", &g), peek_collect, &seen);
    assert_int_equal(collect_sink(p, &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&seen, in, n);
    collect_assert_values(&out, in, n);
    for (size_t i = 0; i < n; i++)
      assert_int_equal(out.recs[i].timestamp, seen.recs[i].timestamp);
    brook_topology_free(t);
    collect_free(&seen);
    collect_free(&out);
  }
  free(in);
}

/* ---- key_by ---- */

/* New key: the value's first character, repeated twice, in ctx memory. */
static brook_err_t first_char_key(const brook_record_t *rec, const void **key, size_t *key_len,
                                  brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  if (rec->value_len == 0) { /* no key at all */
    *key = NULL;
    *key_len = 0;
    return BROOK_OK;
  }
  char *k = brook_ctx_alloc(ctx, 2);
  if (!k)
    return BROOK_ERR_NOMEM;
  k[0] = k[1] = ((const char *)rec->value)[0];
  *key = k;
  *key_len = 2;
  return BROOK_OK;
}

static void test_key_by(void **state) {
  (void)state;
  static const char *const in[] = {"apple", "banana", "", "cherry"};
  static const char *const old_keys[] = {"old0", NULL, "old2", "old3"};
  static const char *const new_keys[] = {"aa", "bb", NULL, "cc"};
  static const brook_header_t hdr[] = {{"h", NULL, 0}};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, 4);
    g.keys = old_keys;
    g.headers = hdr;
    g.header_count = 1;
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        collect_sink(brook_key_by(collect_gen_source(t, "src", &g), first_char_key, NULL), &out),
        BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&out, in, 4); /* values unchanged */
    for (size_t i = 0; i < 4; i++) {
      if (new_keys[i]) {
        assert_string_equal(collect_key(&out, i), new_keys[i]);
        assert_int_equal(out.recs[i].key_len, 2);
      } else {
        assert_null(out.recs[i].key);
        assert_int_equal(out.recs[i].key_len, 0);
      }
      assert_int_equal(out.recs[i].timestamp, g.ts_base + (brook_time_t)i);
      assert_non_null(collect_header(&out, i, "h"));
    }
    brook_topology_free(t);
    collect_free(&out);
  }
}

static brook_err_t bad_key(const brook_record_t *rec, const void **key, size_t *key_len,
                           brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)ctx, (void)opaque;
  *key = NULL;
  *key_len = 5; /* a length without bytes */
  return BROOK_OK;
}

static void test_key_by_null_key_with_length_fails(void **state) {
  (void)state;
  static const char *const in[] = {"a"};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, in, 1);
  collect_t out;
  collect_init(&out);
  assert_int_equal(
      collect_sink(brook_key_by(collect_gen_source(t, "src", &g), bad_key, NULL), &out), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_INVALID_ARG);
  assert_int_equal(out.n, 0);
  brook_topology_free(t);
  collect_free(&out);
}

/* ---- merge ---- */

static void test_merge(void **state) {
  (void)state;
  const size_t na = 1500, nb = 700, nc = 3;
  const char **a = make_values("a", na), **bv = make_values("b", nb), **c = make_values("c", nc);
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t ga, gb, gc;
    collect_gen_init(&ga, a, na);
    collect_gen_init(&gb, bv, nb);
    collect_gen_init(&gc, c, nc);
    brook_stream_t *ins[3] = {collect_gen_source(t, "A", &ga), collect_gen_source(t, "B", &gb),
                              collect_gen_source(t, "C", &gc)};
    collect_t out;
    collect_init(&out);
    brook_stream_t *m = brook_merge(ins, 2);
    assert_int_equal(brook_merge_add(m, ins[2]), BROOK_OK); /* incremental merge */
    assert_int_equal(collect_sink(m, &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    assert_int_equal(out.n, na + nb + nc);
    /* Each input's records arrive complete and in order. */
    size_t next[3] = {0, 0, 0};
    const char **src[3] = {a, bv, c};
    for (size_t i = 0; i < out.n; i++) {
      const char *v = collect_value(&out, i);
      int which = v[0] - 'a';
      assert_true(which >= 0 && which < 3);
      assert_string_equal(v, src[which][next[which]]);
      next[which]++;
    }
    assert_int_equal(next[0], na);
    assert_int_equal(next[1], nb);
    assert_int_equal(next[2], nc);
    assert_int_equal(r.stats.records_in, na + nb + nc);
    brook_topology_free(t);
    collect_free(&out);
  }
  free(a);
  free(bv);
  free(c);
}

/* ---- branch ---- */

static int starts_with_a(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->value_len > 0 && ((const char *)rec->value)[0] == 'a';
}

static int longer_than_3(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->value_len > 3;
}

static void test_branch_first_match_wins(void **state) {
  (void)state;
  static const char *const in[] = {"apple", "ax", "kiwi", "fig", "avocado", "banana", "x"};
  /* "apple" and "avocado" match both predicates: the first wins. */
  static const char *const exp0[] = {"apple", "ax", "avocado"};
  static const char *const exp1[] = {"kiwi", "banana"};
  static const char *const expd[] = {"fig", "x"};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, 7);
    brook_branch_t br[2] = {{starts_with_a, NULL}, {longer_than_3, NULL}};
    brook_stream_t *outs[2] = {NULL, NULL}, *dflt = NULL;
    assert_int_equal(brook_branch(collect_gen_source(t, "src", &g), br, 2, outs, &dflt), BROOK_OK);
    collect_t o0, o1, od;
    collect_init(&o0);
    collect_init(&o1);
    collect_init(&od);
    assert_int_equal(collect_sink(outs[0], &o0), BROOK_OK);
    assert_int_equal(collect_sink(outs[1], &o1), BROOK_OK);
    assert_int_equal(collect_sink(dflt, &od), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&o0, exp0, 3);
    collect_assert_values(&o1, exp1, 2);
    collect_assert_values(&od, expd, 2);
    assert_int_equal(r.stats.records_out, 7);
    brook_topology_free(t);
    collect_free(&o0);
    collect_free(&o1);
    collect_free(&od);
  }
}

static void test_branch_without_default_drops(void **state) {
  (void)state;
  const size_t n = 2100;
  const char **in = calloc(n, sizeof(*in));
  const char **exp0 = calloc(n, sizeof(*exp0)), **exp1 = calloc(n, sizeof(*exp1));
  assert_non_null(in);
  assert_non_null(exp0);
  assert_non_null(exp1);
  size_t n0 = 0, n1 = 0;
  for (size_t i = 0; i < n; i++) {
    /* a-words of length 1..6 and other words of length 1..6 */
    in[i] = collect_strf("%c%.*s", i % 3 == 0 ? 'a' : 'q', (int)(i % 6), "zzzzzz");
    if (i % 3 == 0)
      exp0[n0++] = in[i];
    else if (strlen(in[i]) > 3)
      exp1[n1++] = in[i];
  }
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    brook_branch_t br[2] = {{starts_with_a, NULL}, {longer_than_3, NULL}};
    brook_stream_t *outs[2] = {NULL, NULL};
    assert_int_equal(brook_branch(collect_gen_source(t, "src", &g), br, 2, outs, NULL), BROOK_OK);
    collect_t o0, o1;
    collect_init(&o0);
    collect_init(&o1);
    assert_int_equal(collect_sink(outs[0], &o0), BROOK_OK);
    assert_int_equal(collect_sink(outs[1], &o1), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&o0, exp0, n0);
    collect_assert_values(&o1, exp1, n1);
    assert_true(n0 + n1 < n); /* some were dropped */
    assert_int_equal(r.stats.records_out, n0 + n1);
    assert_int_equal(r.stats.records_skipped, 0);
    brook_topology_free(t);
    collect_free(&o0);
    collect_free(&o1);
  }
  free(in);
  free(exp0);
  free(exp1);
}

static int odd_index(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->timestamp % 2 == 1;
}

static void test_branch_opaque_per_branch(void **state) {
  (void)state;
  /* Each branch gets its own opaque. */
  static const char *const in[] = {"a", "b", "c", "d"};
  size_t calls0 = 0;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, in, 4);
  brook_branch_t br[2] = {{odd_index, NULL}, {even_length, &calls0}};
  brook_stream_t *outs[2] = {NULL, NULL}, *dflt = NULL;
  assert_int_equal(brook_branch(collect_gen_source(t, "src", &g), br, 2, outs, &dflt), BROOK_OK);
  collect_t o0, o1, od;
  collect_init(&o0);
  collect_init(&o1);
  collect_init(&od);
  assert_int_equal(collect_sink(outs[0], &o0), BROOK_OK);
  assert_int_equal(collect_sink(outs[1], &o1), BROOK_OK);
  assert_int_equal(collect_sink(dflt, &od), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  static const char *const odd[] = {"b", "d"}; /* timestamps 1001, 1003 */
  static const char *const rest[] = {"a", "c"};
  collect_assert_values(&o0, odd, 2);
  assert_int_equal(o1.n, 0);
  collect_assert_values(&od, rest, 2);
  assert_int_equal(calls0, 2); /* asked only for the records branch 0 rejected */
  brook_topology_free(t);
  collect_free(&o0);
  collect_free(&o1);
  collect_free(&od);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map),
      cmocka_unit_test(test_map_many_batches),
      cmocka_unit_test(test_map_must_not_emit),
      cmocka_unit_test(test_map_must_not_emit_skip),
      cmocka_unit_test(test_filter),
      cmocka_unit_test(test_flat_map),
      cmocka_unit_test(test_flat_map_chained),
      cmocka_unit_test(test_peek),
      cmocka_unit_test(test_key_by),
      cmocka_unit_test(test_key_by_null_key_with_length_fails),
      cmocka_unit_test(test_merge),
      cmocka_unit_test(test_branch_first_match_wins),
      cmocka_unit_test(test_branch_without_default_drops),
      cmocka_unit_test(test_branch_opaque_per_branch),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
