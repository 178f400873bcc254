/* Allocation failure injection (SQLite-style OOM simulation): an allocator that fails the
 * k-th allocation (only that one, or that one and every later one). For k = 1, 2, ... a
 * whole pipeline is built, run and freed; every call must succeed or report
 * BROOK_ERR_NOMEM (BROOK_ERR_BUILD when a builder ran out of memory earlier), never crash and
 * never leak: the allocator's live-block count returns to zero and LeakSanitizer checks the
 * rest at exit. */
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
#include "support/fail_alloc.h"

/* ---- the pipeline ---- */

#define N_GEN 30
#define N_WIDE 12
#define WIDE_ROUTED 3 /* under ROUTE the wide pipeline's peek fails for this record */
#define N_PUSH 20
#define ROUTED_INDEX 7 /* under ROUTE the filter fails for this generator record */

static int filter_pred(const brook_record_t *rec, void *opaque) {
  const int *route = opaque;
  brook_time_t i = rec->timestamp - 1000;
  if (*route && i == ROUTED_INDEX)
    return BROOK_ERR_USER;
  return i % 5 != 0;
}

static brook_err_t upper_map(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char *v = brook_ctx_alloc(ctx, rec->value_len + 1);
  if (!v)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < rec->value_len; i++) {
    char c = ((const char *)rec->value)[i];
    v[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
  }
  rec->value = v;
  return BROOK_OK;
}

static brook_err_t twice(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  for (int j = 0; j < 2; j++) {
    char *v = brook_ctx_alloc(ctx, rec->value_len + 2);
    if (!v)
      return BROOK_ERR_NOMEM;
    memcpy(v, rec->value, rec->value_len);
    v[rec->value_len] = (char)('a' + j);
    brook_record_t out = *rec;
    out.value = v;
    out.value_len = rec->value_len + 1;
    brook_err_t err = brook_emit(ctx, &out);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static int ends_with_a(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->value_len && ((const char *)rec->value)[rec->value_len - 1] == 'a';
}

static int even_ts(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->timestamp % 2 == 0;
}

/* Records the main sink gets in a complete run (`pushed` = pushes accepted). */
static size_t expected_main(int wide, int route, size_t pushed) {
  if (wide)
    return 2 * (N_WIDE - (route ? 1 : 0));
  size_t kept = 0;
  for (size_t i = 0; i < N_GEN; i++)
    if (i % 5 != 0 && !(route && i == ROUTED_INDEX))
      kept++;
  return 2 * kept + pushed;
}

typedef struct outcome {
  int nomem_seen; /* some call reported running out of memory */
  size_t pushed;  /* pushes accepted */
  brook_err_t run_status;
  int ran;
} outcome_t;

/* A builder result: OK, NOMEM, or INVALID_ARG because an input was NULL after an earlier
 * failure; anything else fails the test. */
static void check_build(long k, const char *what, brook_err_t err, brook_topology_t *t,
                        outcome_t *o) {
  if (err == BROOK_OK)
    return;
  brook_err_t first = brook_topology_error(t);
  if (first != BROOK_ERR_NOMEM)
    fail_msg("k=%ld: %s failed with %s, topology's first error %s (%s)", k, what,
             brook_errname(err), brook_errname(first), brook_topology_last_error(t));
  if (err != BROOK_ERR_NOMEM && err != BROOK_ERR_INVALID_ARG)
    fail_msg("k=%ld: %s returned %s", k, what, brook_errname(err));
  o->nomem_seen = 1;
}

static brook_err_t stream_err(const brook_stream_t *s) {
  return s ? BROOK_OK : BROOK_ERR_INVALID_ARG;
}

typedef struct push_job {
  long k;
  outcome_t *o;
} push_job_t;

static const char *const push_values[N_PUSH] = {"p0",  "p1",  "p2",  "p3",  "p4",  "p5",  "p6",
                                                "p7",  "p8",  "p9",  "p10", "p11", "p12", "p13",
                                                "p14", "p15", "p16", "p17", "p18", "p19"};

static brook_err_t push_all(brook_runtime_t *rt, void *opaque) {
  push_job_t *job = opaque;
  brook_push_source_t *p = brook_runtime_push_source(rt, "push");
  if (!p)
    fail_msg("k=%ld: no push source", job->k);
  static const brook_header_t hdr[] = {{"h", "v", 1}};
  for (size_t i = 0; i < N_PUSH; i++) {
    brook_record_t rec = {.key = "k",
                          .key_len = 1,
                          .value = push_values[i],
                          .value_len = strlen(push_values[i]),
                          .timestamp = (brook_time_t)i,
                          .headers = hdr,
                          .header_count = 1};
    brook_err_t err = brook_push(p, &rec);
    if (err == BROOK_OK)
      job->o->pushed++;
    else if (err == BROOK_ERR_NOMEM)
      job->o->nomem_seen = 1;
    else
      fail_msg("k=%ld: brook_push returned %s", job->k, brook_errname(err));
  }
  brook_err_t err = brook_push_end(p);
  if (err != BROOK_OK)
    fail_msg("k=%ld: brook_push_end returned %s", job->k, brook_errname(err));
  return BROOK_OK;
}

/* gen -> filter -> map -> flat_map -> branch(2 + default) -> merge(+ push) -> sink. */
static void build_narrow(long k, brook_topology_t *t, int route, outcome_t *o, collect_t *main_out,
                         collect_t *errs) {
  static int route_flag;
  route_flag = route;
  static collect_gen_t g; /* must outlive the run */
  static const char *gen_values[N_GEN];
  for (size_t i = 0; i < N_GEN; i++)
    gen_values[i] = collect_strf("g%zu", i);
  collect_gen_init(&g, gen_values, N_GEN);
  g.copy = 1; /* generator bytes come from the batch arena */

  brook_stream_t *gen = collect_gen_source(t, "gen", &g);
  check_build(k, "source_generator", stream_err(gen), t, o);
  brook_stream_t *push = brook_source_push(t, "push", NULL);
  check_build(k, "source_push", stream_err(push), t, o);
  brook_stream_t *f = brook_filter(gen, filter_pred, &route_flag);
  check_build(k, "filter", stream_err(f), t, o);
  brook_stream_t *m = brook_map(f, upper_map, NULL);
  check_build(k, "map", stream_err(m), t, o);
  brook_stream_t *fm = brook_flat_map(m, twice, NULL);
  check_build(k, "flat_map", stream_err(fm), t, o);
  brook_branch_t br[2] = {{ends_with_a, NULL}, {even_ts, NULL}};
  brook_stream_t *outs[2] = {NULL, NULL}, *dflt = NULL;
  check_build(k, "branch", fm ? brook_branch(fm, br, 2, outs, &dflt) : BROOK_ERR_INVALID_ARG, t, o);
  brook_stream_t *ins[4] = {outs[0], outs[1], dflt, push};
  brook_stream_t *merged = brook_stream_set_name(brook_merge(ins, 4), "all");
  check_build(k, "merge", stream_err(merged), t, o);
  check_build(k, "sink", collect_sink(merged, main_out), t, o);
  if (route) {
    brook_stream_t *es = brook_error_stream(t);
    check_build(k, "error_stream", stream_err(es), t, o);
    check_build(k, "error sink", collect_sink(es, errs), t, o);
  }
}

/* The wide pipeline: gen -> key_by -> peek -> custom operator with configuration and two
 * outputs; output 0 -> merge; output 1 (records of `big` bytes, so the batch arena needs
 * many blocks) -> line sink on /dev/null and -> filter -> merge_add; merge -> sink. */

static brook_err_t key_from_value(const brook_record_t *rec, const void **key, size_t *key_len,
                                  brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char *k = brook_ctx_alloc(ctx, rec->value_len + 1);
  if (!k)
    return BROOK_ERR_NOMEM;
  memcpy(k, rec->value, rec->value_len);
  *key = k;
  *key_len = rec->value_len;
  return BROOK_OK;
}

static brook_err_t peek_maybe_fail(const brook_record_t *rec, void *opaque) {
  const int *route = opaque;
  return *route && rec->timestamp - 1000 == WIDE_ROUTED ? BROOK_ERR_USER : BROOK_OK;
}

static brook_err_t big_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  const char *size = brook_ctx_config(ctx, "big");
  if (!size)
    return BROOK_ERR_NOT_FOUND;
  brook_err_t err = brook_emit_to(ctx, 0, rec);
  if (err < 0)
    return err;
  size_t n = (size_t)atol(size);
  char *v = brook_ctx_alloc(ctx, n);
  if (!v)
    return BROOK_ERR_NOMEM;
  memset(v, 'x', n);
  brook_record_t big = *rec;
  big.value = v;
  big.value_len = n;
  return brook_emit_to(ctx, 1, &big);
}

static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

static void build_wide(long k, brook_topology_t *t, int route, outcome_t *o, collect_t *main_out,
                       collect_t *errs) {
  static int route_flag;
  route_flag = route;
  static collect_gen_t g;
  static const char *values[N_WIDE];
  for (size_t i = 0; i < N_WIDE; i++)
    values[i] = collect_strf("w%zu", i);
  collect_gen_init(&g, values, N_WIDE);
  g.copy = 1;
  static const brook_operator_t big_op = {
      .version = BROOK_OPERATOR_VERSION, .type_name = "big", .process = big_process};
  static const char *const config[] = {"big", "40000", NULL};

  brook_stream_t *gen = collect_gen_source(t, "gen", &g);
  check_build(k, "source_generator", stream_err(gen), t, o);
  brook_stream_t *kb = brook_key_by(gen, key_from_value, NULL);
  check_build(k, "key_by", stream_err(kb), t, o);
  brook_stream_t *pk = brook_stream_set_name(brook_peek(kb, peek_maybe_fail, &route_flag), "pk");
  check_build(k, "peek", stream_err(pk), t, o);
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "bigger";
  oo.config = config;
  oo.n_outputs = 2;
  brook_stream_t *outs[2] = {NULL, NULL};
  check_build(k, "operator_add",
              pk ? brook_operator_add(&pk, 1, &big_op, NULL, &oo, outs) : BROOK_ERR_INVALID_ARG, t,
              o);
  check_build(k, "sink_lines",
              outs[1] ? brook_sink_lines(outs[1], "/dev/null", NULL) : BROOK_ERR_INVALID_ARG, t, o);
  brook_stream_t *f = brook_filter(outs[1], keep_all, NULL);
  check_build(k, "filter", stream_err(f), t, o);
  brook_stream_t *m = outs[0] ? brook_merge(&outs[0], 1) : NULL;
  check_build(k, "merge", stream_err(m), t, o);
  check_build(k, "merge_add", m && f ? brook_merge_add(m, f) : BROOK_ERR_INVALID_ARG, t, o);
  check_build(k, "sink", collect_sink(m, main_out), t, o);
  if (route) {
    brook_stream_t *es = brook_error_stream(t);
    check_build(k, "error_stream", stream_err(es), t, o);
    check_build(k, "error sink", collect_sink(es, errs), t, o);
  }
}
/* Builds, runs and frees the pipeline once with allocator `fa`. */
static void run_once(long k, fail_alloc_t *fa, int wide, int route, outcome_t *o,
                     collect_t *main_out, collect_t *errs) {
  memset(o, 0, sizeof(*o));
  collect_clear(main_out);
  collect_clear(errs);
  brook_allocator_t a = {fa_alloc, fa_realloc, fa_free, fa};
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.allocator = &a; /* copied: `a` may go out of scope after the call */
  to.error_policy = route ? BROOK_ON_ERROR_ROUTE : BROOK_ON_ERROR_FAIL;
  brook_topology_t *t = NULL;
  brook_err_t err = brook_topology_new(&t, &to);
  if (err == BROOK_ERR_NOMEM) {
    assert_null(t);
    o->nomem_seen = 1;
    return;
  }
  if (err != BROOK_OK)
    fail_msg("k=%ld: topology_new returned %s", k, brook_errname(err));

  if (wide)
    build_wide(k, t, route, o, main_out, errs);
  else
    build_narrow(k, t, route, o, main_out, errs);

  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.batch_size = 4; /* many small batches: ports fill and deliver mid-batch */
  brook_runtime_t *rt = NULL;
  err = brook_runtime_new(&rt, t, &ro);
  if (err == BROOK_OK) {
    push_job_t job = {k, o};
    if (!wide)
      push_all(rt, &job);
    o->ran = 1;
    o->run_status = brook_runtime_run(rt);
    if (o->run_status == BROOK_ERR_NOMEM)
      o->nomem_seen = 1;
    else if (o->run_status != BROOK_OK)
      fail_msg("k=%ld: run returned %s (%s)", k, brook_errname(o->run_status),
               brook_runtime_last_error(rt));
    brook_runtime_free(rt);
  } else {
    assert_null(rt);
    o->nomem_seen = 1;
    if (err == BROOK_ERR_BUILD) {
      if (brook_topology_error(t) != BROOK_ERR_NOMEM)
        fail_msg("k=%ld: BUILD but the first error is %s", k,
                 brook_errname(brook_topology_error(t)));
    } else if (err != BROOK_ERR_NOMEM) {
      fail_msg("k=%ld: runtime_new returned %s (%s)", k, brook_errname(err),
               brook_topology_last_error(t));
    }
  }
  brook_topology_free(t);
}

static void check_outcome(long k, int wide, int route, const outcome_t *o,
                          const collect_t *main_out, const collect_t *errs) {
  if (!o->ran || o->run_status != BROOK_OK)
    return;
  /* A successful run delivered everything that was accepted, except records routed to the
   * error stream because a callback ran out of memory. */
  size_t nomem_routed = 0, user_routed = 0;
  for (size_t i = 0; i < errs->n; i++) {
    const char *e = collect_header(errs, i, "brook.error");
    if (e && strcmp(e, "BROOK_ERR_NOMEM") == 0)
      nomem_routed++;
    else if (e && strcmp(e, "BROOK_ERR_USER") == 0)
      user_routed++;
    else
      fail_msg("k=%ld: routed record with brook.error %s", k, e ? e : "(none)");
  }
  size_t want = expected_main(wide, route, o->pushed);
  if (nomem_routed == 0 && main_out->n != want)
    fail_msg("k=%ld: run succeeded but delivered %zu records, expected %zu", k, main_out->n, want);
  if (main_out->n > want)
    fail_msg("k=%ld: delivered %zu records, more than %zu", k, main_out->n, want);
  if (route && nomem_routed == 0 && user_routed != 1)
    fail_msg("k=%ld: %zu records routed for the failing filter, expected 1", k, user_routed);
  if (!route && errs->n)
    fail_msg("k=%ld: records routed under FAIL", k);
}

static void alloc_failure_sweep(int wide, int route, int persistent) {
  collect_t main_out, errs;
  collect_init(&main_out);
  collect_init(&errs);
  long k;
  long failures_seen = 0, run_failures = 0, new_failures = 0;
  for (k = 1; k < 20000; k++) {
    fail_alloc_t fa = {.fail_at = k, .persistent = persistent};
    outcome_t o;
    run_once(k, &fa, wide, route, &o, &main_out, &errs);
    if (fa.live != 0)
      fail_msg("k=%ld: %ld block(s) still allocated after everything was freed", k, fa.live);
    assert_int_equal(fa.allocs, fa.frees);
    check_outcome(k, wide, route, &o, &main_out, &errs);
    if (fa.injected && !o.nomem_seen && !(o.ran && o.run_status == BROOK_OK))
      fail_msg("k=%ld: a failure was injected but no call reported it", k);
    if (fa.injected)
      failures_seen++;
    if (o.ran && o.run_status == BROOK_ERR_NOMEM)
      run_failures++;
    if (!o.ran && o.nomem_seen)
      new_failures++;
    if (!fa.injected) { /* k is past the last allocation: the sweep is complete */
      assert_true(o.ran);
      assert_int_equal(o.run_status, BROOK_OK);
      assert_int_equal(main_out.n, expected_main(wide, route, N_PUSH));
      break;
    }
  }
  assert_true(k < 20000);
  /* The sweep reached every phase: building, creating the runtime, and running. */
  assert_true(failures_seen > 50);
  assert_true(new_failures > 10);
  collect_free(&main_out);
  collect_free(&errs);
  /* (under ROUTE with a single failure, a callback's NOMEM is routed and the run succeeds) */
  if (!route || persistent)
    assert_true(run_failures > 0);
}

static void test_narrow_fail_once_fail_policy(void **state) {
  (void)state;
  alloc_failure_sweep(0, 0, 0);
}

static void test_narrow_fail_from_k_on_fail_policy(void **state) {
  (void)state;
  alloc_failure_sweep(0, 0, 1);
}

static void test_narrow_fail_once_route(void **state) {
  (void)state;
  alloc_failure_sweep(0, 1, 0);
}

static void test_narrow_fail_from_k_on_route(void **state) {
  (void)state;
  alloc_failure_sweep(0, 1, 1);
}

static void test_wide_fail_once_fail_policy(void **state) {
  (void)state;
  alloc_failure_sweep(1, 0, 0);
}

static void test_wide_fail_from_k_on_fail_policy(void **state) {
  (void)state;
  alloc_failure_sweep(1, 0, 1);
}

static void test_wide_fail_once_route(void **state) {
  (void)state;
  alloc_failure_sweep(1, 1, 0);
}

static void test_wide_fail_from_k_on_route(void **state) {
  (void)state;
  alloc_failure_sweep(1, 1, 1);
}

static void test_allocator_balanced_without_failures(void **state) {
  (void)state;
  /* Everything allocated through the hook (nothing through malloc behind its back is
   * checkable only by LSan) is given back, for both policies, and two runtimes in a row. */
  collect_t main_out, errs;
  collect_init(&main_out);
  collect_init(&errs);
  for (int wide = 0; wide < 2; wide++) {
    for (int route = 0; route < 2; route++) {
      fail_alloc_t fa = {0};
      outcome_t o;
      run_once(0, &fa, wide, route, &o, &main_out, &errs);
      assert_int_equal(o.run_status, BROOK_OK);
      assert_int_equal(main_out.n, expected_main(wide, route, N_PUSH));
      assert_int_equal(errs.n, route ? 1 : 0);
      assert_true(fa.allocs > 20);
      assert_int_equal(fa.allocs, fa.frees);
      assert_int_equal(fa.live, 0);
    }
  }
  collect_free(&main_out);
  collect_free(&errs);
}

static void test_topology_new_nomem(void **state) {
  (void)state;
  fail_alloc_t fa = {.fail_at = 1};
  brook_allocator_t a = {fa_alloc, fa_realloc, fa_free, &fa};
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.allocator = &a;
  brook_topology_t *t = (brook_topology_t *)(uintptr_t)0x1;
  assert_int_equal(brook_topology_new(&t, &to), BROOK_ERR_NOMEM);
  assert_null(t);
  assert_int_equal(fa.live, 0);
}

static void test_runtime_new_nomem_leaves_topology_open(void **state) {
  (void)state;
  /* A runtime_new that fails validation leaves the topology open for fixing; one that runs
   * out of memory must behave the same (no runtime exists, so nothing can be using it), and
   * a later attempt must succeed and run. */
  fail_alloc_t fa = {0};
  brook_allocator_t a = {fa_alloc, fa_realloc, fa_free, &fa};
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.allocator = &a;
  static const char *const vals[] = {"a", "b"};
  int frozen_after_nomem = 0;
  long j;
  for (j = 1; j < 1000; j++) {
    brook_topology_t *t = NULL;
    fa.fail_at = 0;
    assert_int_equal(brook_topology_new(&t, &to), BROOK_OK);
    static collect_gen_t g;
    collect_gen_init(&g, vals, 2);
    collect_t out;
    collect_init(&out);
    assert_int_equal(collect_sink(brook_map(collect_gen_source(t, "g", &g), upper_map, NULL), &out),
                     BROOK_OK);
    fa.fail_at = fa.attempts + j; /* the j-th allocation of runtime_new */
    fa.injected = 0;
    brook_runtime_t *rt = NULL;
    brook_err_t err = brook_runtime_new(&rt, t, NULL);
    fa.fail_at = 0;
    if (err == BROOK_OK) {
      assert_int_equal(fa.injected, 0);
      assert_int_equal(brook_runtime_run(rt), BROOK_OK);
      assert_int_equal(out.n, 2);
      brook_runtime_free(rt);
      brook_topology_free(t);
      collect_free(&out);
      break;
    }
    assert_int_equal(err, BROOK_ERR_NOMEM);
    assert_null(rt);
    if (brook_topology_set_error_policy(t, BROOK_ON_ERROR_FAIL) == BROOK_ERR_FROZEN)
      frozen_after_nomem = 1;
    /* A second attempt without failures works. */
    assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
    assert_int_equal(brook_runtime_run(rt), BROOK_OK);
    assert_int_equal(out.n, 2);
    brook_runtime_free(rt);
    brook_topology_free(t);
    collect_free(&out);
  }
  assert_true(j > 5); /* runtime_new allocates several times */
  assert_int_equal(fa.live, 0);
  assert_false(frozen_after_nomem);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_topology_new_nomem),
      cmocka_unit_test(test_allocator_balanced_without_failures),
      cmocka_unit_test(test_runtime_new_nomem_leaves_topology_open),
      cmocka_unit_test(test_narrow_fail_once_fail_policy),
      cmocka_unit_test(test_narrow_fail_from_k_on_fail_policy),
      cmocka_unit_test(test_narrow_fail_once_route),
      cmocka_unit_test(test_narrow_fail_from_k_on_route),
      cmocka_unit_test(test_wide_fail_once_fail_policy),
      cmocka_unit_test(test_wide_fail_from_k_on_fail_policy),
      cmocka_unit_test(test_wide_fail_once_route),
      cmocka_unit_test(test_wide_fail_from_k_on_route),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
