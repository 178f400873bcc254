/* The topology object: creation and options, node names, sticky build errors, freezing, and
 * its life time relative to the runtimes built from it. */
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

static const char *const five[] = {"a", "bb", "ccc", "dddd", "eeeee"};
#define N_FIVE 5

static brook_err_t identity(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)ctx, (void)opaque;
  return BROOK_OK;
}

static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

static brook_err_t fail_map(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)ctx, (void)opaque;
  return BROOK_ERR_USER;
}

static brook_err_t pass_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit(ctx, rec);
}

static const brook_operator_t pass_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "pass", .process = pass_process};

/* ---- creation and options ---- */

static void test_new_free_defaults(void **state) {
  (void)state;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_non_null(t);
  assert_int_equal(brook_topology_error(t), BROOK_OK);
  assert_string_equal(brook_topology_last_error(t), "");
  brook_topology_free(t);
  brook_topology_free(NULL); /* no-op */
  brook_runtime_free(NULL);  /* no-op */
}

static void test_opts_init(void **state) {
  (void)state;
  brook_topology_opts_t o;
  memset(&o, 0xab, sizeof(o));
  brook_topology_opts_init(&o);
  assert_int_equal(o.struct_size, sizeof(o));
  assert_null(o.allocator);
  assert_int_equal(o.error_policy, BROOK_ON_ERROR_FAIL);
  brook_topology_opts_init(NULL); /* must not crash */
}

/* Refused options: the code says so, and (like SQLite's open) *out holds a topology that
 * keeps the message and refuses to run, to be freed by the caller. */
static void assert_new_refused(const brook_topology_opts_t *o, const char *why) {
  brook_topology_t *t = (brook_topology_t *)(uintptr_t)0x1;
  assert_int_equal(brook_topology_new(&t, o), BROOK_ERR_INVALID_ARG);
  assert_non_null(t);
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
  if (!strstr(brook_topology_last_error(t), why))
    fail_msg("message \"%s\", wanted \"%s\"", brook_topology_last_error(t), why);
  assert_int_equal(brook_topology_validate(t), BROOK_ERR_BUILD);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_ERR_BUILD);
  assert_null(rt);
  brook_topology_free(t);
}

static void test_new_bad_args(void **state) {
  (void)state;
  brook_topology_opts_t o;
  brook_topology_opts_init(&o);
  assert_int_equal(brook_topology_new(NULL, &o), BROOK_ERR_INVALID_ARG);

  o.struct_size = 0;
  assert_new_refused(&o, "topology_new: struct_size 0 is not a size of brook_topology_opts_t");
  o.struct_size = sizeof(o) + 64; /* a newer caller than this library */
  assert_new_refused(&o, "is not a size of brook_topology_opts_t");

  brook_topology_opts_init(&o);
  o.error_policy = (brook_error_policy_t)7;
  assert_new_refused(&o, "topology_new: unknown error_policy 7");

  brook_allocator_t half = {0};
  brook_topology_opts_init(&o);
  o.allocator = &half;
  assert_new_refused(&o, "topology_new: the allocator needs alloc, realloc and free");
}

/* A struct_size of no version (here: just the size field) is refused instead of silently
 * taking defaults for the rest: the caller's struct is not what it claims to be. */
static void test_new_unknown_struct_size_refused(void **state) {
  (void)state;
  brook_topology_opts_t o;
  memset(&o, 0xff, sizeof(o));
  o.struct_size = sizeof(uint32_t);
  assert_new_refused(&o, "struct_size 4 is not a size of brook_topology_opts_t");
}

static void test_set_error_policy(void **state) {
  (void)state;
  assert_int_equal(brook_topology_set_error_policy(NULL, BROOK_ON_ERROR_SKIP),
                   BROOK_ERR_INVALID_ARG);
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  assert_int_equal(brook_topology_set_error_policy(t, (brook_error_policy_t)9),
                   BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG); /* recorded */
  brook_topology_free(t);

  /* The policy takes effect: every record fails, all are skipped, the run succeeds. */
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  collect_t out;
  collect_init(&out);
  t = collect_topology(BROOK_ON_ERROR_FAIL);
  assert_int_equal(brook_topology_set_error_policy(t, BROOK_ON_ERROR_SKIP), BROOK_OK);
  assert_int_equal(collect_sink(brook_map(collect_gen_source(t, "g", &g), fail_map, NULL), &out),
                   BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  assert_int_equal(out.n, 0);
  assert_int_equal(r.stats.records_skipped, N_FIVE);
  brook_topology_free(t);
  collect_free(&out);
}

/* ---- names ---- */

static void test_default_and_custom_names(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  brook_stream_t *src = collect_gen_source(t, NULL, &g);
  assert_non_null(src);
  assert_ptr_equal(brook_stream_topology(src), t);
  assert_null(brook_stream_topology(NULL));
  assert_null(brook_stream_name(NULL));
  assert_non_null(brook_stream_name(src));
  assert_int_equal(strncmp(brook_stream_name(src), "generator#", 10), 0);

  brook_stream_t *m = brook_map(src, identity, NULL);
  assert_non_null(m);
  assert_int_equal(strncmp(brook_stream_name(m), "map#", 4), 0);
  assert_string_not_equal(brook_stream_name(m), brook_stream_name(src));

  assert_ptr_equal(brook_stream_set_name(m, "parse"), m);
  assert_string_equal(brook_stream_name(m), "parse");
  /* Renaming to its own name is fine. */
  assert_ptr_equal(brook_stream_set_name(m, "parse"), m);
  /* The name is copied. */
  char buf[16];
  strcpy(buf, "renamed");
  assert_ptr_equal(brook_stream_set_name(m, buf), m);
  memset(buf, 'x', sizeof(buf) - 1);
  assert_string_equal(brook_stream_name(m), "renamed");
  assert_int_equal(brook_topology_error(t), BROOK_OK);
  brook_topology_free(t);
}

static void test_duplicate_names(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  brook_stream_t *src = collect_gen_source(t, "in", &g);
  brook_stream_t *m = brook_map(src, identity, NULL);
  assert_non_null(m);
  assert_null(brook_stream_set_name(m, "in"));
  assert_int_equal(brook_topology_error(t), BROOK_ERR_DUPLICATE);
  assert_non_null(strstr(brook_topology_last_error(t), "in"));
  /* The map kept its old name. */
  assert_string_not_equal(brook_stream_name(m), "in");

  /* A second source with a taken name. */
  assert_null(collect_gen_source(t, "in", &g));
  /* An operator with a taken name. */
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "in";
  brook_stream_t *out = NULL;
  assert_int_equal(brook_operator_add(&src, 1, &pass_op, NULL, &oo, &out), BROOK_ERR_DUPLICATE);
  assert_null(out);
  brook_topology_free(t);
}

static void test_empty_name_rejected(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  brook_stream_t *src = collect_gen_source(t, "in", &g);
  assert_null(brook_stream_set_name(NULL, "x"));
  assert_null(brook_stream_set_name(src, NULL));
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
  assert_null(brook_stream_set_name(src, ""));
  assert_string_equal(brook_stream_name(src), "in");
  brook_topology_free(t);
}

static void test_errors_name_reserved(void **state) {
  (void)state;
  /* topology.h: the error stream's node "is named "errors" (a reserved name)". */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  brook_stream_t *src = collect_gen_source(t, "in", &g);
  brook_stream_t *errs = brook_error_stream(t);
  assert_non_null(errs);
  assert_string_equal(brook_stream_name(errs), "errors");
  assert_null(brook_stream_set_name(src, "errors")); /* taken */
  assert_int_equal(brook_topology_error(t), BROOK_ERR_DUPLICATE);
  brook_topology_free(t);

  /* Reserved also before the error stream exists: a user node cannot take the name and so
   * make the error stream impossible to create. */
  t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_reset(&g);
  src = collect_gen_source(t, "in", &g);
  brook_stream_t *m = brook_stream_set_name(brook_map(src, identity, NULL), "errors");
  errs = brook_error_stream(t);
  brook_topology_free(t);
  if (m && !errs)
    fail_msg("a map took the reserved name 'errors' and brook_error_stream then failed");
}

static void test_names_appear_in_runtime_errors(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  collect_t out;
  collect_init(&out);
  brook_stream_t *m = brook_stream_set_name(
      brook_map(collect_gen_source(t, "in", &g), fail_map, NULL), "the-failing-map");
  assert_int_equal(collect_sink(m, &out), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_USER);
  assert_non_null(strstr(r.message, "the-failing-map"));
  brook_topology_free(t);
  collect_free(&out);
}

/* ---- sticky build errors ---- */

static void test_null_propagates_through_chain(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  brook_stream_t *src = collect_gen_source(t, "in", &g);
  /* A map without a callback fails; everything chained after it gets NULL and returns NULL. */
  brook_stream_t *bad = brook_map(src, NULL, NULL);
  assert_null(bad);
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
  char first[512];
  strcpy(first, brook_topology_last_error(t));
  assert_true(strlen(first) > 0);

  brook_stream_t *chain = brook_key_by(
      brook_peek(
          brook_flat_map(brook_filter(brook_map(bad, identity, NULL), keep_all, NULL), NULL, NULL),
          NULL, NULL),
      NULL, NULL);
  assert_null(chain);
  assert_int_equal(brook_sink_callback(chain, collect_sink_fn, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(brook_apply(chain, &pass_op, NULL));
  assert_null(brook_stream_set_name(chain, "x"));

  /* A later, different error does not replace the first. */
  assert_null(collect_gen_source(t, "in", &g)); /* DUPLICATE */
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);

  /* Builders that succeed do not clear it either. */
  collect_t out;
  collect_init(&out);
  assert_int_equal(collect_sink(src, &out), BROOK_OK);
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);

  /* The runtime refuses and says why, quoting the first error. */
  brook_runtime_t *rt = (brook_runtime_t *)(uintptr_t)0x1;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_ERR_BUILD);
  assert_null(rt);
  assert_int_equal(brook_topology_validate(t), BROOK_ERR_BUILD);
  const char *msg = brook_topology_last_error(t);
  assert_non_null(strstr(msg, "build"));
  assert_non_null(strstr(msg, first));
  brook_topology_free(t);
  collect_free(&out);
}

static void test_builder_returns_its_own_error(void **state) {
  (void)state;
  /* The sticky error is the FIRST one, but each failing call should still return the code of
   * its own failure (a caller checking the return value must learn what went wrong now). */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  brook_stream_t *src = collect_gen_source(t, "in", &g);
  assert_null(brook_map(src, NULL, NULL)); /* first error: INVALID_ARG */
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);

  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "in"; /* taken */
  brook_stream_t *out = NULL;
  brook_err_t got = brook_operator_add(&src, 1, &pass_op, NULL, &oo, &out);
  int says_taken = strstr(brook_topology_last_error(t), "already taken") != NULL;
  brook_err_t sticky = brook_topology_error(t);
  brook_topology_free(t); /* before asserting, so a failure reports no leak */
  assert_true(says_taken);
  assert_int_equal(sticky, BROOK_ERR_INVALID_ARG);
  assert_int_equal(got, BROOK_ERR_DUPLICATE);
}

/* ---- frozen topologies ---- */

static void test_frozen_after_runtime_new(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  collect_t out;
  collect_init(&out);
  brook_stream_t *src = collect_gen_source(t, "in", &g);
  brook_stream_t *merged = brook_merge(&src, 1);
  assert_int_equal(collect_sink(merged, &out), BROOK_OK);

  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  assert_non_null(rt);

  /* Every builder now fails with FROZEN (or NULL) and changes nothing. */
  assert_null(brook_map(src, identity, NULL));
  assert_null(brook_filter(src, keep_all, NULL));
  assert_null(collect_gen_source(t, "late", &g));
  assert_null(brook_source_push(t, "late-push", NULL));
  assert_null(brook_stream_set_name(src, "renamed"));
  assert_string_equal(brook_stream_name(src), "in");
  assert_null(brook_error_stream(t));
  assert_null(brook_merge(&src, 1));
  assert_null(brook_apply(src, &pass_op, NULL));
  assert_int_equal(brook_sink_callback(src, collect_sink_fn, NULL, &out), BROOK_ERR_FROZEN);
  assert_non_null(strstr(brook_topology_last_error(t), "runtime"));
  assert_int_equal(brook_merge_add(merged, src), BROOK_ERR_FROZEN);
  assert_int_equal(brook_topology_set_error_policy(t, BROOK_ON_ERROR_SKIP), BROOK_ERR_FROZEN);
  brook_stream_t *outs[2];
  brook_branch_t br[1] = {{keep_all, NULL}};
  assert_int_equal(brook_branch(src, br, 1, outs, NULL), BROOK_ERR_FROZEN);
  brook_stream_t *op_out = NULL;
  assert_int_equal(brook_operator_add(&src, 1, &pass_op, NULL, NULL, &op_out), BROOK_ERR_FROZEN);
  assert_null(op_out);

  /* FROZEN is not a build error: the topology itself is still fine. */
  assert_int_equal(brook_topology_error(t), BROOK_OK);
  assert_int_equal(brook_topology_validate(t), BROOK_OK);

  /* The runtime runs the topology as it was (the late sink above was not added). */
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  collect_assert_values(&out, five, N_FIVE);
  brook_runtime_free(rt);

  /* Still frozen without a runtime, and still runnable. */
  assert_null(brook_map(src, identity, NULL));
  collect_gen_reset(&g);
  collect_clear(&out);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  collect_assert_values(&out, five, N_FIVE);
  brook_topology_free(t);
  collect_free(&out);
}

/* ---- life time: several runtimes, topology freed first ---- */

typedef struct counting {
  int opens, closes;
  long records; /* over all runtimes */
} counting_t;

typedef struct counting_state {
  counting_t *shared;
  long seen; /* this runtime only */
} counting_state_t;

static brook_err_t counting_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  counting_state_t *s = calloc(1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->shared = opaque;
  s->shared->opens++;
  *state = s;
  return BROOK_OK;
}

static brook_err_t counting_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  counting_state_t *s = state;
  s->seen++;
  s->shared->records++;
  brook_record_t r = *rec;
  char *v = brook_ctx_alloc(ctx, 32);
  if (!v)
    return BROOK_ERR_NOMEM;
  r.value = v;
  r.value_len = (size_t)snprintf(v, 32, "%ld", s->seen);
  return brook_emit(ctx, &r);
}

static void counting_close(void *state, void *opaque) {
  counting_t *c = opaque;
  c->closes++;
  free(state);
}

static const brook_operator_t counting_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "counting",
    .open = counting_open,
    .process = counting_process,
    .close = counting_close,
};

static void test_two_runtimes_one_after_another(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  collect_t out;
  collect_init(&out);
  counting_t cnt = {0};
  brook_stream_t *c = brook_apply(collect_gen_source(t, "in", &g), &counting_op, &cnt);
  assert_int_equal(collect_sink(c, &out), BROOK_OK);

  static const char *const expected[] = {"1", "2", "3", "4", "5"};
  for (int round = 0; round < 2; round++) {
    collect_gen_reset(&g);
    collect_clear(&out);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
    /* Each runtime has its own operator instance: counting restarts at 1. */
    collect_assert_values(&out, expected, 5);
    assert_int_equal(r.stats.records_in, N_FIVE);
    assert_int_equal(r.stats.records_out, N_FIVE);
  }
  assert_int_equal(cnt.opens, 2);
  assert_int_equal(cnt.closes, 2);
  assert_int_equal(cnt.records, 2 * N_FIVE);

  /* Two runtimes alive at once, run one after the other. */
  brook_runtime_t *a = NULL, *b = NULL;
  assert_int_equal(brook_runtime_new(&a, t, NULL), BROOK_OK);
  assert_int_equal(brook_runtime_new(&b, t, NULL), BROOK_OK);
  collect_gen_reset(&g);
  collect_clear(&out);
  assert_int_equal(brook_runtime_run(a), BROOK_OK);
  collect_assert_values(&out, expected, 5);
  collect_gen_reset(&g);
  collect_clear(&out);
  assert_int_equal(brook_runtime_run(b), BROOK_OK);
  collect_assert_values(&out, expected, 5);
  /* A runtime runs once. */
  assert_int_equal(brook_runtime_run(a), BROOK_ERR_STATE);
  brook_runtime_free(a);
  brook_runtime_free(b);
  assert_int_equal(cnt.opens, 4);
  assert_int_equal(cnt.closes, 4);
  brook_topology_free(t);
  collect_free(&out);
}

static void test_topology_freed_before_runtime(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  collect_t out;
  collect_init(&out);
  counting_t cnt = {0};
  brook_stream_t *m = brook_stream_set_name(
      brook_apply(brook_map(collect_gen_source(t, "in", &g), identity, NULL), &counting_op, &cnt),
      "counter");
  assert_int_equal(collect_sink(m, &out), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_topology_free(t); /* the runtime keeps it alive: ASan reports any use after free */
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  static const char *const expected[] = {"1", "2", "3", "4", "5"};
  collect_assert_values(&out, expected, 5);
  assert_int_equal(cnt.opens, 1);
  assert_int_equal(cnt.closes, 1);
  brook_runtime_free(rt); /* last reference: the topology's memory goes now (LSan checks) */
  collect_free(&out);
}

static void test_topology_freed_before_failing_runtime(void **state) {
  (void)state;
  /* The runtime's error message names nodes of the topology: still valid after
   * brook_topology_free as long as the runtime lives. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  collect_t out;
  collect_init(&out);
  brook_stream_t *m =
      brook_stream_set_name(brook_map(collect_gen_source(t, "in", &g), fail_map, NULL), "boom");
  assert_int_equal(collect_sink(m, &out), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_run(rt), BROOK_ERR_USER);
  assert_non_null(strstr(brook_runtime_last_error(rt), "boom"));
  assert_int_equal(brook_runtime_status(rt), BROOK_ERR_USER);
  assert_true(brook_runtime_done(rt));
  brook_runtime_free(rt);
  collect_free(&out);
}

static void test_runtime_new_failure_keeps_topology_usable(void **state) {
  (void)state;
  /* A refused runtime must not take (or leak) a reference, nor freeze the topology. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, five, N_FIVE);
  brook_stream_t *src = collect_gen_source(t, "in", &g);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_ERR_DANGLING);
  assert_null(rt);
  collect_t out;
  collect_init(&out);
  assert_int_equal(collect_sink(src, &out), BROOK_OK); /* not frozen */
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  collect_assert_values(&out, five, N_FIVE);

  /* Bad runtime options: refused with a message, no runtime. */
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.struct_size = 0;
  rt = (brook_runtime_t *)(uintptr_t)0x1;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  brook_runtime_opts_init(&o);
  o.batch_size = 0;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  assert_non_null(strstr(brook_topology_last_error(t), "batch_size"));
  brook_topology_free(t);
  collect_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_free_defaults),
      cmocka_unit_test(test_opts_init),
      cmocka_unit_test(test_new_bad_args),
      cmocka_unit_test(test_new_unknown_struct_size_refused),
      cmocka_unit_test(test_set_error_policy),
      cmocka_unit_test(test_default_and_custom_names),
      cmocka_unit_test(test_duplicate_names),
      cmocka_unit_test(test_empty_name_rejected),
      cmocka_unit_test(test_errors_name_reserved),
      cmocka_unit_test(test_names_appear_in_runtime_errors),
      cmocka_unit_test(test_null_propagates_through_chain),
      cmocka_unit_test(test_builder_returns_its_own_error),
      cmocka_unit_test(test_frozen_after_runtime_new),
      cmocka_unit_test(test_two_runtimes_one_after_another),
      cmocka_unit_test(test_topology_freed_before_runtime),
      cmocka_unit_test(test_topology_freed_before_failing_runtime),
      cmocka_unit_test(test_runtime_new_failure_keeps_topology_usable),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
