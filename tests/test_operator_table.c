/* The custom-operator contract at its edges: the function table's version (only versions
 * this library knows are accepted), the number of outputs (bounded by
 * BROOK_OPERATOR_MAX_OUTPUTS, with a message about that bound), and emitting to an output
 * that does not exist (a bug of the operator: the run fails naming operator and port, under
 * every error policy, even if the operator ignores brook_emit_to's return value). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"

static const char *const vals[] = {"a", "b", "c"};

static brook_err_t pass(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit(ctx, rec);
}

static const brook_operator_t pass_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "pass", .process = pass};

static brook_topology_t *one_source(brook_error_policy_t policy, collect_gen_t *g,
                                    brook_stream_t **src) {
  brook_topology_t *t = collect_topology(policy);
  collect_gen_init(g, vals, 3);
  *src = collect_gen_source(t, "src", g);
  assert_non_null(*src);
  return t;
}

static void assert_says(const char *msg, const char *want) {
  if (!strstr(msg, want))
    fail_msg("message \"%s\": wanted \"%s\"", msg, want);
}

static void test_unknown_table_versions_refused(void **state) {
  (void)state;
  static const uint32_t bad[] = {0, BROOK_OPERATOR_VERSION + 1, 999, UINT32_MAX};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    collect_gen_t g;
    brook_stream_t *src, *out = NULL;
    brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
    brook_operator_t op = pass_op;
    op.version = bad[i];
    assert_int_equal(brook_operator_add(&src, 1, &op, NULL, NULL, &out), BROOK_ERR_INVALID_ARG);
    assert_null(out);
    char want[128];
    snprintf(want, sizeof(want), "operator table version %u is not one this library knows", bad[i]);
    assert_says(brook_topology_last_error(t), want);
    assert_says(brook_topology_last_error(t), "1 to 2");
    assert_null(brook_apply(src, &op, NULL));
    assert_int_equal(brook_topology_validate(t), BROOK_ERR_BUILD);
    brook_topology_free(t);
  }
  /* Both known versions are accepted (version 1: read without the version-2 callbacks). */
  for (uint32_t v = 1; v <= BROOK_OPERATOR_VERSION; v++) {
    collect_gen_t g;
    brook_stream_t *src, *out = NULL;
    brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
    brook_operator_t op = pass_op;
    op.version = v;
    assert_int_equal(brook_operator_add(&src, 1, &op, NULL, NULL, &out), BROOK_OK);
    brook_topology_free(t);
  }
}

static void test_null_table_and_missing_process_named(void **state) {
  (void)state;
  collect_gen_t g;
  brook_stream_t *src, *out = NULL;
  brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
  assert_int_equal(brook_operator_add(&src, 1, NULL, NULL, NULL, &out), BROOK_ERR_INVALID_ARG);
  assert_says(brook_topology_last_error(t), "operator table is NULL");
  brook_operator_t op = {.version = BROOK_OPERATOR_VERSION, .type_name = "lazy"};
  assert_int_equal(brook_operator_add(&src, 1, &op, NULL, NULL, &out), BROOK_ERR_INVALID_ARG);
  assert_says(brook_topology_last_error(t),
              "lazy: a process or process_batch callback is required");
  brook_topology_free(t);
}

static void test_n_outputs_bounded(void **state) {
  (void)state;
  static const size_t bad[] = {BROOK_OPERATOR_MAX_OUTPUTS + 1, (size_t)1 << 40, SIZE_MAX};
  brook_stream_t *outs[4] = {0};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    for (int with_array = 0; with_array < 2; with_array++) {
      collect_gen_t g;
      brook_stream_t *src;
      brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
      brook_operator_opts_t o;
      brook_operator_opts_init(&o);
      o.n_outputs = bad[i];
      /* The array cannot hold that many either way: the count is what is wrong. */
      assert_int_equal(brook_operator_add(&src, 1, &pass_op, NULL, &o, with_array ? outs : NULL),
                       BROOK_ERR_INVALID_ARG);
      char want[128];
      snprintf(want, sizeof(want), "n_outputs %zu is more than BROOK_OPERATOR_MAX_OUTPUTS (%d)",
               bad[i], BROOK_OPERATOR_MAX_OUTPUTS);
      assert_says(brook_topology_last_error(t), want);
      brook_topology_free(t);
    }
  }
  /* The maximum itself is fine; a NULL array for a real count is what "NULL" is about. */
  collect_gen_t g;
  brook_stream_t *src;
  brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  o.n_outputs = 2;
  assert_int_equal(brook_operator_add(&src, 1, &pass_op, NULL, &o, NULL), BROOK_ERR_INVALID_ARG);
  assert_says(brook_topology_last_error(t), "outputs array is NULL for 2 outputs");
  brook_topology_free(t);

  static brook_stream_t *many[BROOK_OPERATOR_MAX_OUTPUTS];
  t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
  o.n_outputs = BROOK_OPERATOR_MAX_OUTPUTS;
  assert_int_equal(brook_operator_add(&src, 1, &pass_op, NULL, &o, many), BROOK_OK);
  assert_non_null(many[BROOK_OPERATOR_MAX_OUTPUTS - 1]);
  brook_topology_free(t);
}

static int always(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

/* brook_branch adds one output per branch (plus the default): the same bound, said in its
 * terms; and each missing array is named. */
static void test_branch_count_bounded(void **state) {
  (void)state;
  static const struct {
    size_t n;
    int with_default;
    const char *want;
  } cases[] = {
      {BROOK_OPERATOR_MAX_OUTPUTS + 1, 0,
       "branch: 1025 branches are more than BROOK_OPERATOR_MAX_OUTPUTS (1024)"},
      {BROOK_OPERATOR_MAX_OUTPUTS, 1,
       "branch: 1024 branches and a default are more than BROOK_OPERATOR_MAX_OUTPUTS (1024)"},
  };
  static brook_branch_t many[BROOK_OPERATOR_MAX_OUTPUTS + 1];
  static brook_stream_t *outs[BROOK_OPERATOR_MAX_OUTPUTS + 1];
  brook_stream_t *def = NULL;
  for (size_t i = 0; i < BROOK_OPERATOR_MAX_OUTPUTS + 1; i++)
    many[i].pred = always;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    collect_gen_t g;
    brook_stream_t *src;
    brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
    assert_int_equal(brook_branch(src, many, cases[i].n, outs, cases[i].with_default ? &def : NULL),
                     BROOK_ERR_INVALID_ARG);
    assert_says(brook_topology_last_error(t), cases[i].want);
    brook_topology_free(t);
  }
  collect_gen_t g;
  brook_stream_t *src;
  brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
  assert_int_equal(brook_branch(src, many, 2, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_says(brook_topology_last_error(t), "branch: outs is NULL");
  assert_int_equal(brook_branch(src, NULL, 2, outs, NULL), BROOK_ERR_INVALID_ARG);
  assert_says(brook_topology_last_error(t), "branch: branches is NULL");
  assert_int_equal(brook_branch(src, many, 0, outs, NULL), BROOK_ERR_INVALID_ARG);
  assert_says(brook_topology_last_error(t), "branch: needs at least one branch");
  brook_topology_free(t);
  /* The largest count is fine. */
  t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
  assert_int_equal(brook_branch(src, many, BROOK_OPERATOR_MAX_OUTPUTS - 1, outs, &def), BROOK_OK);
  assert_non_null(def);
  brook_topology_free(t);
}

/* ---- emitting to an output that does not exist ---- */

typedef struct stray {
  size_t port;     /* where the 2nd record goes */
  int null_record; /* emit NULL instead */
  int processed;   /* records seen */
  brook_err_t got; /* what brook_emit_to returned for the stray one */
} stray_t;

static brook_err_t stray_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

/* Emits the 2nd record to the wrong port and, like a careless operator, returns OK anyway. */
static brook_err_t stray_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  stray_t *s = state;
  if (++s->processed != 2)
    return brook_emit(ctx, rec);
  s->got = brook_emit_to(ctx, s->port, s->null_record ? NULL : rec);
  return BROOK_OK;
}

static void test_emit_to_unknown_port_fails_the_run_under_every_policy(void **state) {
  (void)state;
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "stray",
                                      .open = stray_open,
                                      .process = stray_process};
  static const brook_error_policy_t policies[] = {BROOK_ON_ERROR_FAIL, BROOK_ON_ERROR_SKIP,
                                                  BROOK_ON_ERROR_ROUTE};
  for (size_t p = 0; p < 3; p++) {
    collect_gen_t g;
    brook_stream_t *src, *outs[2] = {0};
    brook_topology_t *t = one_source(policies[p], &g, &src);
    stray_t s = {.port = 2};
    brook_operator_opts_t o;
    brook_operator_opts_init(&o);
    o.name = "splitter";
    o.n_outputs = 2;
    assert_int_equal(brook_operator_add(&src, 1, &op, &s, &o, outs), BROOK_OK);
    collect_t c0, c1, errs;
    collect_init(&c0);
    collect_init(&c1);
    collect_init(&errs);
    assert_int_equal(collect_sink(outs[0], &c0), BROOK_OK);
    assert_int_equal(collect_sink(outs[1], &c1), BROOK_OK);
    if (policies[p] == BROOK_ON_ERROR_ROUTE)
      assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, 1, &r), BROOK_ERR_INVALID_ARG);
    assert_int_equal(s.got, BROOK_ERR_INVALID_ARG);
    assert_says(r.message, "operator 'splitter' emitted to output 2 but has 2 output(s)");
    assert_int_equal(errs.n, 0); /* not a record's failure: nothing routed */
    assert_int_equal(r.stats.records_skipped, 0);
    assert_true(s.processed <= 2); /* the run stopped at the bug */
    assert_int_equal(c0.n, 1);     /* what came before it was delivered */
    collect_free(&c0);
    collect_free(&c1);
    collect_free(&errs);
    brook_topology_free(t);
  }
}

static void test_emit_null_record_says_so(void **state) {
  (void)state;
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "stray",
                                      .open = stray_open,
                                      .process = stray_process};
  collect_gen_t g;
  brook_stream_t *src, *out = NULL;
  brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
  stray_t s = {.port = 0, .null_record = 1};
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  o.name = "careless";
  assert_int_equal(brook_operator_add(&src, 1, &op, &s, &o, &out), BROOK_OK);
  collect_t c;
  collect_init(&c);
  assert_int_equal(collect_sink(out, &c), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 1, &r), BROOK_ERR_INVALID_ARG);
  assert_says(r.message, "operator 'careless' emitted a NULL record");
  collect_free(&c);
  brook_topology_free(t);
}

/* The aggregator table is versioned the same way. */
static void test_unknown_aggregator_version_refused(void **state) {
  (void)state;
  collect_gen_t g;
  brook_stream_t *src;
  brook_topology_t *t = one_source(BROOK_ON_ERROR_FAIL, &g, &src);
  brook_aggregator_t agg = brook_agg_count();
  agg.version = 999;
  assert_null(brook_aggregate(src, &agg, NULL));
  assert_says(brook_topology_last_error(t),
              "aggregator table version 999 is not one this library knows (1 to 1)");
  brook_window_t win = brook_window_tumbling(BROOK_S);
  assert_null(brook_window_aggregate(src, &win, &agg, NULL));
  assert_says(brook_topology_last_error(t),
              "aggregator table version 999 is not one this library knows (1 to 1)");
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unknown_table_versions_refused),
      cmocka_unit_test(test_null_table_and_missing_process_named),
      cmocka_unit_test(test_n_outputs_bounded),
      cmocka_unit_test(test_branch_count_bounded),
      cmocka_unit_test(test_emit_to_unknown_port_fails_the_run_under_every_policy),
      cmocka_unit_test(test_emit_null_record_says_so),
      cmocka_unit_test(test_unknown_aggregator_version_refused),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
