/* Topology validation (cycles, dangling streams, missing sources, ROUTE without a consumer),
 * streams of two topologies mixed, and NULL arguments to every public entry point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <uv.h>

#include "collect.h"
#include "log_capture.h"

static const char *const vals[] = {"x", "y", "z"};

static brook_err_t identity(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)ctx, (void)opaque;
  return BROOK_OK;
}

static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

static brook_err_t nothing_sink(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}

static brook_err_t pass_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit(ctx, rec);
}

static const brook_operator_t pass_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "pass", .process = pass_process};

/* validate and runtime_new agree, and a refused runtime is NULL. */
static void assert_refused(brook_topology_t *t, brook_err_t expected) {
  assert_int_equal(brook_topology_validate(t), expected);
  brook_runtime_t *rt = (brook_runtime_t *)(uintptr_t)0x1;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), expected);
  assert_null(rt);
}

static void test_valid_topology(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *s = brook_map(collect_gen_source(t, "src", &g), identity, NULL);
  assert_int_equal(brook_sink_callback(s, nothing_sink, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_topology_validate(t), BROOK_OK);
  /* validate does not freeze. */
  assert_int_equal(brook_sink_callback(s, nothing_sink, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_topology_validate(t), BROOK_OK);
  brook_topology_free(t);
}

/* ---- cycles ---- */

static void test_cycle_through_merge_add(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *src = collect_gen_source(t, "src", &g);
  brook_stream_t *m = brook_stream_set_name(brook_merge(&src, 1), "loop-merge");
  brook_stream_t *back = brook_stream_set_name(brook_map(m, identity, NULL), "loop-map");
  assert_non_null(back);
  assert_int_equal(brook_merge_add(m, back), BROOK_OK); /* accepted; validation rejects */
  assert_int_equal(brook_sink_callback(back, nothing_sink, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_topology_error(t), BROOK_OK);
  assert_refused(t, BROOK_ERR_CYCLE);
  const char *msg = brook_topology_last_error(t);
  assert_non_null(strstr(msg, "cycle"));
  assert_true(strstr(msg, "loop-merge") || strstr(msg, "loop-map"));
  brook_topology_free(t);
}

static void test_cycle_merge_into_itself(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *src = collect_gen_source(t, "src", &g);
  brook_stream_t *m = brook_stream_set_name(brook_merge(&src, 1), "self");
  assert_int_equal(brook_merge_add(m, m), BROOK_OK);
  assert_int_equal(brook_sink_callback(m, nothing_sink, NULL, NULL), BROOK_OK);
  assert_refused(t, BROOK_ERR_CYCLE);
  assert_non_null(strstr(brook_topology_last_error(t), "self"));
  brook_topology_free(t);
}

static void test_merge_add_needs_a_merge(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *src = collect_gen_source(t, "src", &g);
  brook_stream_t *m = brook_map(src, identity, NULL);
  assert_int_equal(brook_merge_add(m, src), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
  brook_topology_free(t);
}

/* ---- dangling streams, sources ---- */

static void test_unconsumed_map_output(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *src = collect_gen_source(t, "src", &g);
  assert_int_equal(brook_sink_callback(src, nothing_sink, NULL, NULL), BROOK_OK);
  assert_non_null(brook_stream_set_name(brook_map(src, identity, NULL), "lonely"));
  assert_refused(t, BROOK_ERR_DANGLING);
  assert_non_null(strstr(brook_topology_last_error(t), "lonely"));
  brook_topology_free(t);
}

static void test_unconsumed_source(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  assert_non_null(collect_gen_source(t, "nobody-reads-me", &g));
  assert_refused(t, BROOK_ERR_DANGLING);
  assert_non_null(strstr(brook_topology_last_error(t), "nobody-reads-me"));
  brook_topology_free(t);
}

static void test_unconsumed_branch_output(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *src = collect_gen_source(t, "src", &g);
  brook_branch_t br[2] = {{keep_all, NULL}, {keep_all, NULL}};
  brook_stream_t *outs[2] = {NULL, NULL}, *dflt = NULL;
  assert_int_equal(brook_branch(src, br, 2, outs, &dflt), BROOK_OK);
  assert_non_null(outs[0]);
  assert_non_null(outs[1]);
  assert_non_null(dflt);
  assert_ptr_not_equal(outs[0], outs[1]);
  assert_non_null(brook_stream_set_name(outs[0], "splitter"));
  assert_int_equal(brook_sink_callback(outs[0], nothing_sink, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_sink_callback(dflt, nothing_sink, NULL, NULL), BROOK_OK);
  /* output 1 is not consumed */
  assert_refused(t, BROOK_ERR_DANGLING);
  const char *msg = brook_topology_last_error(t);
  assert_non_null(strstr(msg, "splitter"));
  assert_non_null(strstr(msg, "1"));
  /* Consuming it fixes the topology. */
  assert_int_equal(brook_sink_callback(outs[1], nothing_sink, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_topology_validate(t), BROOK_OK);
  brook_topology_free(t);
}

static void test_unconsumed_default_output(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *src = collect_gen_source(t, "src", &g);
  brook_branch_t br[1] = {{keep_all, NULL}};
  brook_stream_t *outs[1], *dflt = NULL;
  assert_int_equal(brook_branch(src, br, 1, outs, &dflt), BROOK_OK);
  assert_int_equal(brook_sink_callback(outs[0], nothing_sink, NULL, NULL), BROOK_OK);
  assert_refused(t, BROOK_ERR_DANGLING);
  brook_topology_free(t);
}

static void test_no_source(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  assert_refused(t, BROOK_ERR_DANGLING);
  assert_non_null(strstr(brook_topology_last_error(t), "source"));
  brook_topology_free(t);

  /* The error stream is not a source. */
  t = collect_topology(BROOK_ON_ERROR_ROUTE);
  assert_int_equal(brook_sink_callback(brook_error_stream(t), nothing_sink, NULL, NULL), BROOK_OK);
  assert_refused(t, BROOK_ERR_DANGLING);
  assert_non_null(strstr(brook_topology_last_error(t), "source"));
  brook_topology_free(t);
}

static void test_route_needs_error_consumer(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  assert_int_equal(brook_sink_callback(collect_gen_source(t, "src", &g), nothing_sink, NULL, NULL),
                   BROOK_OK);
  assert_refused(t, BROOK_ERR_DANGLING);
  assert_non_null(strstr(brook_topology_last_error(t), "error"));

  /* The error stream exists but nothing consumes it: still dangling. */
  brook_stream_t *errs = brook_error_stream(t);
  assert_non_null(errs);
  assert_ptr_equal(brook_error_stream(t), errs); /* same stream every time */
  assert_ptr_equal(brook_stream_topology(errs), t);
  assert_refused(t, BROOK_ERR_DANGLING);

  assert_int_equal(brook_sink_callback(errs, nothing_sink, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_topology_validate(t), BROOK_OK);

  brook_topology_free(t);
}

/* The reverse: an error stream used while the policy is FAIL or SKIP. Nothing can ever reach
 * it. That is valid (the same topology code often runs under a policy chosen per deployment)
 * but never silent: each runtime logs one warning naming the policy and the way out. */
static void test_error_stream_unfed_is_warned(void **state) {
  (void)state;
  static const brook_error_policy_t policies[] = {BROOK_ON_ERROR_FAIL, BROOK_ON_ERROR_SKIP,
                                                  BROOK_ON_ERROR_ROUTE};
  static const char *const names[] = {"FAIL", "SKIP", NULL};
  for (size_t i = 0; i < 3; i++) {
    brook_topology_t *t = collect_topology(policies[i]);
    collect_gen_t g;
    collect_gen_init(&g, vals, 3);
    assert_int_equal(
        brook_sink_callback(collect_gen_source(t, "src", &g), nothing_sink, NULL, NULL), BROOK_OK);
    assert_int_equal(brook_sink_callback(brook_error_stream(t), nothing_sink, NULL, NULL),
                     BROOK_OK);
    assert_int_equal(brook_topology_validate(t), BROOK_OK);

    log_capture_t log;
    log_capture_init(&log);
    brook_runtime_opts_t ro;
    brook_runtime_opts_init(&ro);
    ro.log = log_capture_cb;
    ro.log_opaque = &log;
    brook_runtime_t *rt = NULL;
    assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
    brook_driver_opts_t dopts;
    brook_driver_opts_init(&dopts);
    dopts.log = log_capture_cb;
    dopts.log_opaque = &log;
    brook_driver_t *d = NULL;
    assert_int_equal(brook_driver_new(&d, t, &dopts), BROOK_OK);
    brook_driver_free(d);
    brook_runtime_free(rt);
    const char *text = log_capture_text(&log);
    if (names[i]) {
      char want[160];
      snprintf(want, sizeof(want), "brook_error_stream() is used but the error policy is %s",
               names[i]);
      if (log.lines != 2 || !strstr(text, want) || !strstr(text, "BROOK_ON_ERROR_ROUTE"))
        fail_msg("policy %s: %zu log lines \"%s\"", names[i], log.lines, text);
    } else if (log.lines != 0) {
      fail_msg("policy ROUTE: unexpected log \"%s\"", text);
    }
    log_capture_free(&log);
    brook_topology_free(t);
  }
}

/* ---- streams of two topologies ---- */

static void test_mixed_topologies(void **state) {
  (void)state;
  brook_topology_t *a = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_topology_t *b = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t ga, gb;
  collect_gen_init(&ga, vals, 3);
  collect_gen_init(&gb, vals, 3);
  brook_stream_t *sa = collect_gen_source(a, "src-a", &ga);
  brook_stream_t *sb = collect_gen_source(b, "src-b", &gb);

  brook_stream_t *both[2] = {sa, sb};
  assert_null(brook_merge(both, 2));
  assert_int_equal(brook_topology_error(a), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(a), "topology"));

  brook_stream_t *ma = brook_merge(&sa, 1);
  /* ma was built after the error; merge_add of a foreign stream fails too. */
  assert_int_equal(brook_merge_add(ma, sb), BROOK_ERR_INVALID_ARG);

  brook_stream_t *out = NULL;
  /* The error goes to the topology of the first input: a here. */
  assert_int_equal(brook_operator_add(both, 2, &pass_op, NULL, NULL, &out), BROOK_ERR_INVALID_ARG);
  assert_null(out);

  /* a refuses to run; b was not damaged and runs once completed. */
  assert_refused(a, BROOK_ERR_BUILD);
  collect_t cb;
  collect_init(&cb);
  assert_int_equal(collect_sink(sb, &cb), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(b, 0, &r), BROOK_OK);
  collect_assert_values(&cb, vals, 3);
  brook_topology_free(a);
  brook_topology_free(b);
  collect_free(&cb);
}

static void test_mixed_topologies_b_records_nothing_in_a(void **state) {
  (void)state;
  /* A failed mixed call recorded in b must not leave anything in a: a stays runnable. */
  brook_topology_t *a = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_topology_t *b = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t ga, gb;
  collect_gen_init(&ga, vals, 3);
  collect_gen_init(&gb, vals, 3);
  brook_stream_t *sa = collect_gen_source(a, "src-a", &ga);
  brook_stream_t *sb = collect_gen_source(b, "src-b", &gb);
  brook_stream_t *mb = brook_merge(&sb, 1);
  assert_int_equal(brook_merge_add(mb, sa), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_topology_error(b), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_topology_error(a), BROOK_OK);
  collect_t ca;
  collect_init(&ca);
  assert_int_equal(collect_sink(sa, &ca), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(a, 0, &r), BROOK_OK);
  collect_assert_values(&ca, vals, 3); /* sa has exactly one consumer: the sink */
  brook_topology_free(a);
  brook_topology_free(b);
  collect_free(&ca);
}

/* ---- NULL arguments ---- */

static void test_null_topology_and_runtime_args(void **state) {
  (void)state;
  assert_int_equal(brook_topology_validate(NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_topology_error(NULL), BROOK_ERR_INVALID_ARG);
  assert_non_null(brook_topology_last_error(NULL));
  assert_null(brook_error_stream(NULL));
  assert_null(brook_source_generator(NULL, "g", collect_gen_fn, NULL, NULL));
  assert_null(brook_source_push(NULL, "p", NULL));
  assert_null(brook_source_lines(NULL, "l", "/dev/null", NULL));

  brook_runtime_t *rt = (brook_runtime_t *)(uintptr_t)0x1;
  assert_int_equal(brook_runtime_new(&rt, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  assert_int_equal(brook_runtime_new(NULL, t, NULL), BROOK_ERR_INVALID_ARG);
  brook_topology_free(t);

  assert_int_equal(brook_runtime_run(NULL), BROOK_ERR_INVALID_ARG);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(NULL, &loop), BROOK_ERR_INVALID_ARG);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_stop(NULL);
  brook_runtime_free(NULL);
  assert_int_equal(brook_runtime_done(NULL), 0);
  assert_int_equal(brook_runtime_status(NULL), BROOK_ERR_INVALID_ARG);
  assert_non_null(brook_runtime_last_error(NULL));
  assert_null(brook_runtime_push_source(NULL, "p"));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(NULL, &st), BROOK_ERR_INVALID_ARG);

  brook_record_t rec = {0};
  assert_int_equal(brook_push(NULL, &rec), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push_wait(NULL, &rec, 0), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push_end(NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push_credit(NULL), 0);
  assert_null(brook_record_header(NULL, "x"));
  assert_null(brook_record_header(&rec, NULL));

  /* Every opts_init tolerates NULL. */
  brook_topology_opts_init(NULL);
  brook_runtime_opts_init(NULL);
  brook_operator_opts_init(NULL);
  brook_generator_opts_init(NULL);
  brook_lines_opts_init(NULL);
  brook_push_opts_init(NULL);
  brook_line_sink_opts_init(NULL);
}

static void test_null_builder_args(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 3);
  brook_stream_t *s = collect_gen_source(t, "src", &g);
  assert_non_null(s);

  /* NULL input streams: NULL / INVALID_ARG, nothing recorded (no topology to record in). */
  assert_null(brook_map(NULL, identity, NULL));
  assert_null(brook_filter(NULL, keep_all, NULL));
  assert_null(brook_flat_map(NULL, NULL, NULL));
  assert_null(brook_peek(NULL, NULL, NULL));
  assert_null(brook_key_by(NULL, NULL, NULL));
  assert_null(brook_merge(NULL, 0));
  assert_null(brook_merge(NULL, 2));
  assert_null(brook_merge(&s, 0));
  brook_stream_t *none[2] = {NULL, NULL};
  assert_null(brook_merge(none, 2));
  assert_int_equal(brook_merge_add(NULL, s), BROOK_ERR_INVALID_ARG);
  brook_branch_t br[1] = {{keep_all, NULL}};
  brook_stream_t *outs[1] = {NULL};
  assert_int_equal(brook_branch(NULL, br, 1, outs, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_sink_callback(NULL, nothing_sink, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_sink_lines(NULL, "/dev/null", NULL), BROOK_ERR_INVALID_ARG);
  assert_null(brook_apply(NULL, &pass_op, NULL));
  brook_stream_t *out = NULL;
  assert_int_equal(brook_operator_add(NULL, 1, &pass_op, NULL, NULL, &out), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_operator_add(none, 1, &pass_op, NULL, NULL, &out), BROOK_ERR_INVALID_ARG);
  assert_null(out);
  assert_int_equal(brook_topology_error(t), BROOK_OK);
  /* No inputs at all. */
  assert_int_equal(brook_operator_add(&s, 0, &pass_op, NULL, NULL, &out), BROOK_ERR_INVALID_ARG);
  assert_null(out);
  brook_topology_free(t);
}

/* Each call must fail with INVALID_ARG and be recorded in a fresh topology. */
typedef void (*bad_call_fn)(brook_topology_t *t, brook_stream_t *s, brook_stream_t **ret,
                            brook_err_t *err);

static void bad_map(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)e;
  *r = brook_map(s, NULL, NULL);
}
static void bad_filter(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)e;
  *r = brook_filter(s, NULL, NULL);
}
static void bad_flat(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)e;
  *r = brook_flat_map(s, NULL, NULL);
}
static void bad_peek(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)e;
  *r = brook_peek(s, NULL, NULL);
}
static void bad_key_by(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)e;
  *r = brook_key_by(s, NULL, NULL);
}
static void bad_merge(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)e;
  brook_stream_t *ins[2] = {s, NULL};
  *r = brook_merge(ins, 2);
}
static void bad_branch_none(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                            brook_err_t *e) {
  (void)t, (void)r;
  brook_stream_t *outs[1];
  *e = brook_branch(s, NULL, 1, outs, NULL);
}
static void bad_branch_zero(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                            brook_err_t *e) {
  (void)t, (void)r;
  brook_branch_t br[1] = {{keep_all, NULL}};
  brook_stream_t *outs[1];
  *e = brook_branch(s, br, 0, outs, NULL);
}
static void bad_branch_outs(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                            brook_err_t *e) {
  (void)t, (void)r;
  brook_branch_t br[1] = {{keep_all, NULL}};
  *e = brook_branch(s, br, 1, NULL, NULL);
}
static void bad_branch_pred(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                            brook_err_t *e) {
  (void)t, (void)r;
  brook_branch_t br[2] = {{keep_all, NULL}, {NULL, NULL}};
  brook_stream_t *outs[2];
  *e = brook_branch(s, br, 2, outs, NULL);
}
static void bad_sink(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)r;
  *e = brook_sink_callback(s, NULL, NULL, NULL);
}
static void bad_gen(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)s, (void)e;
  *r = brook_source_generator(t, "g2", NULL, NULL, NULL);
}
static void bad_gen_opts(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                         brook_err_t *e) {
  (void)s, (void)e;
  brook_generator_opts_t o;
  brook_generator_opts_init(&o);
  o.struct_size = 1;
  *r = brook_source_generator(t, "g2", collect_gen_fn, NULL, &o);
}
static void bad_push_name(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                          brook_err_t *e) {
  (void)s, (void)e;
  *r = brook_source_push(t, NULL, NULL);
}
static void bad_push_bounds(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                            brook_err_t *e) {
  (void)s, (void)e;
  brook_push_opts_t o;
  brook_push_opts_init(&o);
  o.max_records = 0;
  *r = brook_source_push(t, "p", &o);
}
static void bad_op_null(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                        brook_err_t *e) {
  (void)t;
  *e = brook_operator_add(&s, 1, NULL, NULL, NULL, r);
}
static void bad_op_no_process(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                              brook_err_t *e) {
  (void)t;
  brook_operator_t op = {.version = BROOK_OPERATOR_VERSION, .type_name = "empty"};
  *e = brook_operator_add(&s, 1, &op, NULL, NULL, r);
}
static void bad_op_version(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                           brook_err_t *e) {
  (void)t;
  brook_operator_t op = pass_op;
  op.version = 0;
  *e = brook_operator_add(&s, 1, &op, NULL, NULL, r);
}
static void bad_op_outputs(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                           brook_err_t *e) {
  (void)t, (void)r;
  *e = brook_operator_add(&s, 1, &pass_op, NULL, NULL, NULL);
}
static void bad_op_opts(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                        brook_err_t *e) {
  (void)t;
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  o.struct_size = 0;
  *e = brook_operator_add(&s, 1, &pass_op, NULL, &o, r);
}
static void bad_op_second_input(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                                brook_err_t *e) {
  (void)t;
  brook_stream_t *ins[2] = {s, NULL};
  *e = brook_operator_add(ins, 2, &pass_op, NULL, NULL, r);
}
static void bad_apply(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r, brook_err_t *e) {
  (void)t, (void)e;
  *r = brook_apply(s, NULL, NULL);
}
static void bad_sink_lines(brook_topology_t *t, brook_stream_t *s, brook_stream_t **r,
                           brook_err_t *e) {
  (void)t, (void)r;
  brook_line_sink_opts_t o;
  brook_line_sink_opts_init(&o);
  o.buffer_size = 0;
  *e = brook_sink_lines(s, "/dev/null", &o);
}

static void test_invalid_builder_args_recorded(void **state) {
  (void)state;
  static const struct {
    const char *what;
    bad_call_fn fn;
  } calls[] = {
      {"map", bad_map},
      {"filter", bad_filter},
      {"flat_map", bad_flat},
      {"peek", bad_peek},
      {"key_by", bad_key_by},
      {"merge", bad_merge},
      {"branch NULL branches", bad_branch_none},
      {"branch n=0", bad_branch_zero},
      {"branch NULL outs", bad_branch_outs},
      {"branch NULL predicate", bad_branch_pred},
      {"sink NULL fn", bad_sink},
      {"generator NULL fn", bad_gen},
      {"generator opts", bad_gen_opts},
      {"push NULL name", bad_push_name},
      {"push bounds", bad_push_bounds},
      {"operator NULL", bad_op_null},
      {"operator no process", bad_op_no_process},
      {"operator version 0", bad_op_version},
      {"operator NULL outputs", bad_op_outputs},
      {"operator opts", bad_op_opts},
      {"operator NULL 2nd input", bad_op_second_input},
      {"apply NULL op", bad_apply},
      {"sink_lines buffer", bad_sink_lines},
  };
  for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, vals, 3);
    brook_stream_t *s = collect_gen_source(t, "src", &g);
    assert_non_null(s);
    brook_stream_t *ret = NULL;
    brook_err_t err = BROOK_ERR_INVALID_ARG;
    calls[i].fn(t, s, &ret, &err);
    brook_err_t recorded = brook_topology_error(t);
    int has_msg = brook_topology_last_error(t)[0] != '\0';
    brook_err_t refused = brook_topology_validate(t);
    brook_topology_free(t);
    if (ret || err != BROOK_ERR_INVALID_ARG || recorded != BROOK_ERR_INVALID_ARG || !has_msg ||
        refused != BROOK_ERR_BUILD)
      fail_msg("%s: returned %p / %s, recorded %s, message %d, validate %s", calls[i].what,
               (void *)ret, brook_errname(err), brook_errname(recorded), has_msg,
               brook_errname(refused));
  }
}

static void test_null_ctx_accessors(void **state) {
  (void)state;
  brook_record_t rec = {0};
  assert_null(brook_ctx_alloc(NULL, 8));
  assert_int_equal(brook_ctx_input(NULL), 0);
  assert_null(brook_ctx_config(NULL, "k"));
  assert_null(brook_ctx_name(NULL));
  assert_int_equal(brook_ctx_now(NULL), 0);
  brook_ctx_log(NULL, BROOK_LOG_INFO, "x");
  assert_int_equal(brook_emit(NULL, &rec), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_emit_to(NULL, 0, &rec), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_emit_batch(NULL, 0, &rec, 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_ctx_fail_record(NULL, &rec, BROOK_ERR_USER, NULL), BROOK_ERR_INVALID_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_topology),
      cmocka_unit_test(test_cycle_through_merge_add),
      cmocka_unit_test(test_cycle_merge_into_itself),
      cmocka_unit_test(test_merge_add_needs_a_merge),
      cmocka_unit_test(test_unconsumed_map_output),
      cmocka_unit_test(test_unconsumed_source),
      cmocka_unit_test(test_unconsumed_branch_output),
      cmocka_unit_test(test_unconsumed_default_output),
      cmocka_unit_test(test_no_source),
      cmocka_unit_test(test_route_needs_error_consumer),
      cmocka_unit_test(test_error_stream_unfed_is_warned),
      cmocka_unit_test(test_mixed_topologies),
      cmocka_unit_test(test_mixed_topologies_b_records_nothing_in_a),
      cmocka_unit_test(test_null_topology_and_runtime_args),
      cmocka_unit_test(test_null_builder_args),
      cmocka_unit_test(test_invalid_builder_args_recorded),
      cmocka_unit_test(test_null_ctx_accessors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
