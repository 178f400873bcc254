/* Graph shapes: fan-out (one stream, several consumers), fan-in (merge of generators and a
 * push source), diamonds (split then merge) and long chains. */
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

static const size_t batch_sizes[] = {0, 3, 1};
#define N_BATCH_SIZES (sizeof(batch_sizes) / sizeof(batch_sizes[0]))

static const char **make_values(const char *prefix, size_t n) {
  const char **v = calloc(n ? n : 1, sizeof(*v));
  assert_non_null(v);
  for (size_t i = 0; i < n; i++)
    v[i] = collect_strf("%s%zu", prefix, i);
  return v;
}

/* Appends the character given as opaque to the value. */
static brook_err_t append_char(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  char c = *(const char *)opaque;
  char *v = brook_ctx_alloc(ctx, rec->value_len + 1);
  if (!v)
    return BROOK_ERR_NOMEM;
  if (rec->value_len)
    memcpy(v, rec->value, rec->value_len);
  v[rec->value_len] = c;
  rec->value = v;
  rec->value_len++;
  return BROOK_OK;
}

static int even_ts(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->timestamp % 2 == 0;
}

static brook_err_t peek_collect(const brook_record_t *rec, void *opaque) {
  collect_append(opaque, rec);
  return BROOK_OK;
}

/* ---- fan-out ---- */

static void test_fan_out_to_three_sinks(void **state) {
  (void)state;
  const size_t n = 2100;
  const char **in = make_values("v", n);
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    brook_stream_t *src = collect_gen_source(t, "src", &g);
    collect_t out[3];
    for (int i = 0; i < 3; i++) {
      collect_init(&out[i]);
      assert_int_equal(collect_sink(src, &out[i]), BROOK_OK);
    }
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    for (int i = 0; i < 3; i++) {
      collect_assert_values(&out[i], in, n);
      collect_free(&out[i]);
    }
    assert_int_equal(r.stats.records_in, n);
    assert_int_equal(r.stats.records_out, 3 * n);
    brook_topology_free(t);
  }
  free(in);
}

static void test_fan_out_to_three_operators(void **state) {
  (void)state;
  /* One stream feeding a map, a filter and a peek: each sees every record, and what one
   * does (the map rewrites its copy) does not show in the others. */
  const size_t n = 1500;
  const char **in = make_values("v", n);
  const char **mapped = calloc(n, sizeof(*mapped)), **even = calloc(n, sizeof(*even));
  assert_non_null(mapped);
  assert_non_null(even);
  size_t n_even = 0;
  for (size_t i = 0; i < n; i++) {
    mapped[i] = collect_strf("%s+", in[i]);
    if ((1000 + i) % 2 == 0)
      even[n_even++] = in[i];
  }
  static const char plus = '+';
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    brook_stream_t *src = collect_gen_source(t, "src", &g);
    collect_t om, of, op, seen;
    collect_init(&om);
    collect_init(&of);
    collect_init(&op);
    collect_init(&seen);
    assert_int_equal(collect_sink(brook_map(src, append_char, (void *)&plus), &om), BROOK_OK);
    assert_int_equal(collect_sink(brook_filter(src, even_ts, NULL), &of), BROOK_OK);
    assert_int_equal(collect_sink(brook_peek(src, peek_collect, &seen), &op), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&om, mapped, n);
    collect_assert_values(&of, even, n_even);
    collect_assert_values(&seen, in, n);
    collect_assert_values(&op, in, n);
    brook_topology_free(t);
    collect_free(&om);
    collect_free(&of);
    collect_free(&op);
    collect_free(&seen);
  }
  free(in);
  free(mapped);
  free(even);
}

/* ---- fan-in ---- */

typedef struct push_plan {
  const char *name;
  const char *const *values;
  size_t n;
} push_plan_t;

/* Pushes every value into the named push source and ends it, before the run starts. */
static brook_err_t push_all_then_end(brook_runtime_t *rt, void *opaque) {
  const push_plan_t *p = opaque;
  brook_push_source_t *src = brook_runtime_push_source(rt, p->name);
  assert_non_null(src);
  for (size_t i = 0; i < p->n; i++) {
    brook_record_t rec = {0};
    rec.value = p->values[i];
    rec.value_len = strlen(p->values[i]);
    rec.timestamp = (brook_time_t)i;
    assert_int_equal(brook_push(src, &rec), BROOK_OK);
  }
  assert_int_equal(brook_push_end(src), BROOK_OK);
  return BROOK_OK;
}

static void test_fan_in_generators_and_push(void **state) {
  (void)state;
  const size_t na = 1200, nb = 5, np = 1100; /* push chunks are 64 KiB each at batch_size 1 */
  const char **a = make_values("a", na), **bv = make_values("b", nb), **p = make_values("p", np);
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t ga, gb;
    collect_gen_init(&ga, a, na);
    collect_gen_init(&gb, bv, nb);
    brook_stream_t *ins[3] = {collect_gen_source(t, "A", &ga), collect_gen_source(t, "B", &gb),
                              brook_source_push(t, "P", NULL)};
    collect_t out;
    collect_init(&out);
    assert_int_equal(collect_sink(brook_merge(ins, 3), &out), BROOK_OK);
    brook_runtime_opts_t o;
    brook_runtime_opts_init(&o);
    if (batch_sizes[b])
      o.batch_size = batch_sizes[b];
    push_plan_t plan = {"P", p, np};
    collect_run_t r;
    assert_int_equal(collect_run_topology(t, &o, push_all_then_end, &plan, &r), BROOK_OK);
    assert_int_equal(out.n, na + nb + np);
    size_t next[3] = {0, 0, 0};
    const char **src[3] = {a, bv, p};
    for (size_t i = 0; i < out.n; i++) {
      const char *v = collect_value(&out, i);
      int which = v[0] == 'a' ? 0 : v[0] == 'b' ? 1 : 2;
      assert_string_equal(v, src[which][next[which]]);
      next[which]++;
    }
    assert_int_equal(next[0], na);
    assert_int_equal(next[1], nb);
    assert_int_equal(next[2], np);
    assert_int_equal(r.stats.records_in, na + nb + np);
    assert_int_equal(r.stats.records_out, na + nb + np);
    brook_topology_free(t);
    collect_free(&out);
  }
  free(a);
  free(bv);
  free(p);
}

static void test_fan_in_empty_inputs(void **state) {
  (void)state;
  /* A merge whose inputs are all empty (a generator with nothing, an ended push source)
   * finishes with nothing. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, NULL, 0);
  brook_stream_t *ins[2] = {collect_gen_source(t, "A", &g), brook_source_push(t, "P", NULL)};
  collect_t out;
  collect_init(&out);
  assert_int_equal(collect_sink(brook_merge(ins, 2), &out), BROOK_OK);
  push_plan_t plan = {"P", NULL, 0};
  collect_run_t r;
  assert_int_equal(collect_run_topology(t, NULL, push_all_then_end, &plan, &r), BROOK_OK);
  assert_int_equal(out.n, 0);
  assert_int_equal(r.stats.records_in, 0);
  brook_topology_free(t);
  collect_free(&out);
}

/* ---- diamonds ---- */

static void test_diamond_branch_then_merge(void **state) {
  (void)state;
  const size_t n = 2000;
  const char **in = make_values("d", n);
  static const char e = 'E', o = 'O';
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    brook_branch_t br[1] = {{even_ts, NULL}};
    brook_stream_t *evens = NULL, *odds = NULL;
    assert_int_equal(brook_branch(collect_gen_source(t, "src", &g), br, 1, &evens, &odds),
                     BROOK_OK);
    brook_stream_t *both[2] = {brook_map(evens, append_char, (void *)&e),
                               brook_map(odds, append_char, (void *)&o)};
    collect_t out;
    collect_init(&out);
    assert_int_equal(collect_sink(brook_merge(both, 2), &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    /* Every record exactly once, tagged by its side; each side in input order. */
    assert_int_equal(out.n, n);
    char *seen = calloc(n, 1);
    assert_non_null(seen);
    brook_time_t last[2] = {-1, -1};
    for (size_t i = 0; i < out.n; i++) {
      brook_time_t ts = out.recs[i].timestamp;
      size_t idx = (size_t)(ts - g.ts_base);
      assert_true(idx < n);
      assert_false(seen[idx]);
      seen[idx] = 1;
      int side = ts % 2 != 0;
      assert_string_equal(collect_value(&out, i), collect_strf("%s%c", in[idx], side ? 'O' : 'E'));
      assert_true(ts > last[side]);
      last[side] = ts;
    }
    free(seen);
    brook_topology_free(t);
    collect_free(&out);
  }
  free(in);
}

static void test_diamond_fan_out_then_merge(void **state) {
  (void)state;
  /* The same stream into two maps, merged again: every record arrives twice, once per side,
   * and each side keeps the input order. Also the source feeds the merge directly. */
  const size_t n = 1300;
  const char **in = make_values("x", n);
  static const char l = 'L', rc = 'R';
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    brook_stream_t *src = collect_gen_source(t, "src", &g);
    brook_stream_t *three[3] = {brook_map(src, append_char, (void *)&l),
                                brook_map(src, append_char, (void *)&rc), src};
    collect_t out;
    collect_init(&out);
    assert_int_equal(collect_sink(brook_merge(three, 3), &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    assert_int_equal(out.n, 3 * n);
    size_t next[3] = {0, 0, 0};
    for (size_t i = 0; i < out.n; i++) {
      const char *v = collect_value(&out, i);
      size_t len = strlen(v);
      int side = v[len - 1] == 'L' ? 0 : v[len - 1] == 'R' ? 1 : 2;
      const char *want = side == 2 ? in[next[2]] : collect_strf("%s%c", in[next[side]], "LR"[side]);
      assert_string_equal(v, want);
      next[side]++;
    }
    assert_int_equal(next[0], n);
    assert_int_equal(next[1], n);
    assert_int_equal(next[2], n);
    brook_topology_free(t);
    collect_free(&out);
  }
  free(in);
}

static void test_merge_same_stream_twice(void **state) {
  (void)state;
  /* A stream given twice to a merge is consumed twice: every record arrives twice. */
  const size_t n = 1500;
  const char **in = make_values("t", n);
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    brook_stream_t *src = collect_gen_source(t, "src", &g);
    brook_stream_t *twice[2] = {src, src};
    collect_t out;
    collect_init(&out);
    assert_int_equal(collect_sink(brook_merge(twice, 2), &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    assert_int_equal(out.n, 2 * n);
    size_t *count = calloc(n, sizeof(*count));
    assert_non_null(count);
    for (size_t i = 0; i < out.n; i++) {
      size_t idx = (size_t)(out.recs[i].timestamp - g.ts_base);
      assert_true(idx < n);
      assert_string_equal(collect_value(&out, i), in[idx]);
      count[idx]++;
    }
    for (size_t i = 0; i < n; i++)
      assert_int_equal(count[i], 2);
    free(count);
    brook_topology_free(t);
    collect_free(&out);
  }
  free(in);
}

/* An endless generator: "n<i>" forever. */
static brook_err_t endless(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  size_t *next = opaque;
  char *v = brook_ctx_alloc(ctx, 24);
  if (!v)
    return BROOK_ERR_NOMEM;
  out->value = v;
  out->value_len = (size_t)snprintf(v, 24, "n%zu", (*next)++);
  return BROOK_OK;
}

static void test_generator_limit(void **state) {
  (void)state;
  const size_t limits[] = {1, 3, 1024, 2500};
  for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
    for (size_t b = 0; b < N_BATCH_SIZES; b++) {
      brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
      size_t next = 0;
      brook_generator_opts_t go;
      brook_generator_opts_init(&go);
      go.limit = limits[l];
      collect_t out;
      collect_init(&out);
      brook_stream_t *src = brook_source_generator(t, "endless", endless, &next, &go);
      assert_int_equal(collect_sink(src, &out), BROOK_OK);
      collect_run_t r;
      assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
      assert_int_equal(out.n, limits[l]);
      assert_int_equal(next, limits[l]); /* not asked for more than the limit */
      for (size_t i = 0; i < out.n; i++)
        assert_string_equal(collect_value(&out, i), collect_strf("n%zu", i));
      assert_int_equal(r.stats.records_in, limits[l]);
      brook_topology_free(t);
      collect_free(&out);
    }
  }
}

/* ---- long chains ---- */

static void test_long_chain_of_maps(void **state) {
  (void)state;
  enum { CHAIN = 20 };
  const size_t n = 1100;
  const char **in = make_values("c", n);
  static const char letters[CHAIN + 1] = "abcdefghijklmnopqrst";
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, in, n);
    brook_stream_t *s = collect_gen_source(t, "src", &g);
    for (int i = 0; i < CHAIN; i++)
      s = brook_map(s, append_char, (void *)&letters[i]);
    assert_non_null(s);
    collect_t out;
    collect_init(&out);
    assert_int_equal(collect_sink(s, &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    assert_int_equal(out.n, n);
    for (size_t i = 0; i < n; i++)
      assert_string_equal(collect_value(&out, i), collect_strf("%s%s", in[i], letters));
    brook_topology_free(t);
    collect_free(&out);
  }
  free(in);
}

static void test_long_chain_mixed_operators(void **state) {
  (void)state;
  /* map/peek/filter alternating, 30 deep; the filters keep everything but the last one
   * keeps only even timestamps. */
  const size_t n = 700;
  const char **in = make_values("m", n);
  static const char dot = '.';
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, in, n);
  collect_t seen;
  collect_init(&seen);
  brook_stream_t *s = collect_gen_source(t, "src", &g);
  for (int i = 0; i < 10; i++) {
    s = brook_map(s, append_char, (void *)&dot);
    s = brook_peek(s, peek_collect, &seen);
    if (i == 9)
      s = brook_filter(s, even_ts, NULL);
  }
  collect_t out;
  collect_init(&out);
  assert_int_equal(collect_sink(s, &out), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 4, &r), BROOK_OK);
  assert_int_equal(seen.n, 10 * n);
  assert_int_equal(out.n, n / 2);
  for (size_t i = 0; i < out.n; i++)
    assert_string_equal(collect_value(&out, i), collect_strf("%s..........", in[2 * i]));
  brook_topology_free(t);
  collect_free(&out);
  collect_free(&seen);
  free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fan_out_to_three_sinks),
      cmocka_unit_test(test_fan_out_to_three_operators),
      cmocka_unit_test(test_fan_in_generators_and_push),
      cmocka_unit_test(test_fan_in_empty_inputs),
      cmocka_unit_test(test_diamond_branch_then_merge),
      cmocka_unit_test(test_diamond_fan_out_then_merge),
      cmocka_unit_test(test_merge_same_stream_twice),
      cmocka_unit_test(test_generator_limit),
      cmocka_unit_test(test_long_chain_of_maps),
      cmocka_unit_test(test_long_chain_mixed_operators),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
