/* Error policies: a user callback failing for one record under FAIL, SKIP and ROUTE, for every
 * kind of callback (map, filter, flat_map, peek, key_by, branch predicate, sink, generator),
 * plus the error stream's own failures (which fail the pipeline: no error loops). */
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

#define N_IN 10
#define FAIL_AT 4        /* index of the failing record ("r4") */
#define CUSTOM_ERR -1234 /* a user-defined error code */

static const char *const in_values[N_IN] = {"r0", "r1", "r2", "r3", "r4",
                                            "r5", "r6", "r7", "r8", "r9"};
static const char *const in_keys[N_IN] = {"k0", "k1", "k2", "k3", "k4",
                                          "k5", "k6", "k7", "k8", "k9"};
static const brook_header_t in_headers[] = {{"origin", "test", 4}};

static int is_failing(const brook_record_t *rec) {
  return rec->value_len == 2 && memcmp(rec->value, "r4", 2) == 0;
}

/* ---- one failing callback of each kind ---- */

typedef enum victim_kind {
  V_MAP,
  V_FILTER,
  V_FLAT_MAP,
  V_PEEK,
  V_KEY_BY,
  V_BRANCH,
  V_SINK,
  V_GENERATOR,
  V_COUNT
} victim_kind_t;

static const char *const victim_names[V_COUNT] = {"map",    "filter", "flat_map", "peek",
                                                  "key_by", "branch", "sink",     "generator"};

/* The code each kind fails with. */
static brook_err_t victim_err(victim_kind_t k) {
  return k == V_FILTER || k == V_BRANCH || k == V_PEEK ? CUSTOM_ERR : BROOK_ERR_USER;
}

static brook_err_t map_fail(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  int fail = is_failing(rec);
  /* Scribble on the record first: a routed record must be the original input. */
  rec->value = "garbage";
  rec->value_len = 7;
  rec->key = NULL;
  rec->key_len = 0;
  return fail ? BROOK_ERR_USER : BROOK_OK;
}

static int filter_fail(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return is_failing(rec) ? CUSTOM_ERR : 1;
}

static brook_err_t flat_map_fail(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  if (is_failing(rec))
    return BROOK_ERR_USER;
  return brook_emit(ctx, rec);
}

static brook_err_t peek_fail(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return is_failing(rec) ? CUSTOM_ERR : BROOK_OK;
}

static brook_err_t key_by_fail(const brook_record_t *rec, const void **key, size_t *key_len,
                               brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = "garbage";
  *key_len = 7;
  return is_failing(rec) ? BROOK_ERR_USER : BROOK_OK;
}

static int branch_fail(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return is_failing(rec) ? CUSTOM_ERR : 1;
}

typedef struct scenario {
  victim_kind_t kind;
  brook_error_policy_t policy;
  size_t batch_size;
  collect_gen_t gen;
  collect_t main_out, errs;
  collect_run_t run;
  char victim[64]; /* the failing node's name */
} scenario_t;

/* src -> victim -> main sink, and the error stream -> errs sink (under every policy). */
static void scenario_run(scenario_t *s) {
  brook_topology_t *t = collect_topology(s->policy);
  collect_gen_init(&s->gen, in_values, N_IN);
  s->gen.keys = in_keys;
  s->gen.headers = in_headers;
  s->gen.header_count = 1;
  collect_init(&s->main_out);
  collect_init(&s->errs);
  snprintf(s->victim, sizeof(s->victim), "victim");
  brook_stream_t *src = collect_gen_source(t, s->kind == V_GENERATOR ? "victim" : "src", &s->gen);
  brook_stream_t *out = NULL;
  switch (s->kind) {
  case V_MAP:
    out = brook_map(src, map_fail, NULL);
    break;
  case V_FILTER:
    out = brook_filter(src, filter_fail, NULL);
    break;
  case V_FLAT_MAP:
    out = brook_flat_map(src, flat_map_fail, NULL);
    break;
  case V_PEEK:
    out = brook_peek(src, peek_fail, NULL);
    break;
  case V_KEY_BY:
    out = brook_key_by(src, key_by_fail, NULL);
    break;
  case V_BRANCH: {
    brook_branch_t br[1] = {{branch_fail, NULL}};
    assert_int_equal(brook_branch(src, br, 1, &out, NULL), BROOK_OK);
    break;
  }
  case V_SINK:
  case V_GENERATOR:
  default:
    out = src;
    break;
  }
  assert_non_null(out);
  if (s->kind == V_SINK) {
    s->main_out.fail_value = "r4";
    s->main_out.fail_err = BROOK_ERR_USER;
  } else if (s->kind == V_GENERATOR) {
    s->gen.fail_index = FAIL_AT;
    s->gen.fail_err = BROOK_ERR_USER;
  } else {
    assert_non_null(brook_stream_set_name(out, "victim"));
  }
  assert_int_equal(collect_sink(out, &s->main_out), BROOK_OK);
  if (s->kind == V_SINK) /* a sink has no stream to name: "<kind>#<node index>" */
    snprintf(s->victim, sizeof(s->victim), "sink#1");
  assert_int_equal(collect_sink(brook_error_stream(t), &s->errs), BROOK_OK);
  collect_run_batch(t, s->batch_size, &s->run);
  brook_topology_free(t);
}

static void scenario_free(scenario_t *s) {
  collect_free(&s->main_out);
  collect_free(&s->errs);
}

/* The main sink's expected values when every record but r4 gets through. */
static const char *expected_value(victim_kind_t k, size_t i) {
  return k == V_MAP ? "garbage" : in_values[i];
}

static void assert_main_without_failed(const scenario_t *s) {
  assert_int_equal(s->main_out.n, N_IN - 1);
  for (size_t i = 0, j = 0; i < N_IN; i++) {
    if (i == FAIL_AT)
      continue;
    assert_string_equal(collect_value(&s->main_out, j), expected_value(s->kind, i));
    assert_int_equal(s->main_out.recs[j].timestamp, 1000 + (brook_time_t)i);
    j++;
  }
}

static const size_t batch_sizes[] = {0, 3, 1};
#define N_BATCH_SIZES (sizeof(batch_sizes) / sizeof(batch_sizes[0]))

/* The scenario under test; the teardown frees it, so a failed assertion leaks nothing. */
static scenario_t current;

static int scenario_teardown(void **state) {
  (void)state;
  scenario_free(&current);
  return 0;
}

/* Runs the victim `*state` under `policy` at batch size index b into `current`. */
static scenario_t *run_case(void **state, brook_error_policy_t policy, size_t b) {
  scenario_free(&current);
  memset(&current, 0, sizeof(current));
  current.kind = *(const victim_kind_t *)*state;
  current.policy = policy;
  current.batch_size = batch_sizes[b];
  scenario_run(&current);
  return &current;
}

static void test_fail_policy(void **state) {
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    scenario_t *s = run_case(state, BROOK_ON_ERROR_FAIL, b);
    const char *what = victim_names[s->kind];
    if (s->run.status != victim_err(s->kind))
      fail_msg("%s, batch %zu: status %s, expected %s (%s)", what, s->batch_size,
               brook_errname(s->run.status), brook_errname(victim_err(s->kind)), s->run.message);
    if (!strstr(s->run.message, s->victim))
      fail_msg("%s: message '%s' does not name '%s'", what, s->run.message, s->victim);
    /* Nothing at or after the failing record reached the sink; what did arrive is a prefix of
     * the input, in order. */
    assert_true(s->main_out.n <= FAIL_AT);
    for (size_t i = 0; i < s->main_out.n; i++)
      assert_string_equal(collect_value(&s->main_out, i), expected_value(s->kind, i));
    if (s->kind == V_SINK) /* the sink itself saw r0..r3 before failing on r4 */
      assert_int_equal(s->main_out.n, FAIL_AT);
    if (s->batch_size == 1) { /* the batches before the failing one went all the way */
      assert_int_equal(s->main_out.n, FAIL_AT);
      assert_int_equal(s->gen.calls, FAIL_AT + 1); /* and the source was asked no further */
    }
    assert_int_equal(s->errs.n, 0);
    assert_int_equal(s->run.stats.records_skipped, 0);
    assert_int_equal(s->run.stats.records_routed, 0);
    assert_true(s->run.done);
  }
}

static void test_fail_delivers_records_before_failure(void **state) {
  /* Under FAIL the records ahead of the failing one, in the same batch, still reach the sink
   * (as they do when a source fails mid-batch, see scheduler.c run_batch): how far a
   * pipeline got must not depend on the batch size. */
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    scenario_t *s = run_case(state, BROOK_ON_ERROR_FAIL, b);
    assert_int_equal(s->run.status, victim_err(s->kind));
    if (s->main_out.n != FAIL_AT)
      fail_msg("%s, batch size %zu: %zu of the %d records before the failure were delivered",
               victim_names[s->kind], s->batch_size, s->main_out.n, FAIL_AT);
  }
}

static void test_skip_policy(void **state) {
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    scenario_t *s = run_case(state, BROOK_ON_ERROR_SKIP, b);
    if (s->run.status != BROOK_OK)
      fail_msg("%s, batch %zu: status %s (%s)", victim_names[s->kind], s->batch_size,
               brook_errname(s->run.status), s->run.message);
    assert_main_without_failed(s);
    assert_int_equal(s->errs.n, 0);
    assert_int_equal(s->run.stats.records_skipped, 1);
    assert_int_equal(s->run.stats.records_routed, 0);
    if (s->kind != V_SINK && s->kind != V_GENERATOR) {
      assert_int_equal(s->run.stats.records_in, N_IN);
      assert_int_equal(s->run.stats.records_out, N_IN - 1);
    }
  }
}

static void test_route_policy(void **state) {
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    scenario_t *s = run_case(state, BROOK_ON_ERROR_ROUTE, b);
    if (s->run.status != BROOK_OK)
      fail_msg("%s, batch %zu: status %s (%s)", victim_names[s->kind], s->batch_size,
               brook_errname(s->run.status), s->run.message);
    assert_main_without_failed(s);
    assert_int_equal(s->run.stats.records_skipped, 0);
    assert_int_equal(s->run.stats.records_routed, 1);
    if (s->errs.n != 1)
      fail_msg("%s: %zu routed records", victim_names[s->kind], s->errs.n);
    /* The failed INPUT record: value, key, timestamp, its own headers, plus four more. */
    assert_string_equal(collect_value(&s->errs, 0), "r4");
    assert_string_equal(collect_key(&s->errs, 0), "k4");
    assert_int_equal(s->errs.recs[0].timestamp, 1000 + FAIL_AT);
    assert_int_equal(s->errs.recs[0].header_count, 1 + 4);
    assert_string_equal(collect_header(&s->errs, 0, "origin"), "test");
    assert_non_null(collect_header(&s->errs, 0, "brook.error"));
    assert_string_equal(collect_header(&s->errs, 0, "brook.error"),
                        brook_errname(victim_err(s->kind)));
    /* The code in decimal: user-defined codes survive. */
    assert_non_null(collect_header(&s->errs, 0, "brook.error.code"));
    assert_string_equal(collect_header(&s->errs, 0, "brook.error.code"),
                        collect_strf("%d", (int)victim_err(s->kind)));
    assert_non_null(collect_header(&s->errs, 0, "brook.error.operator"));
    assert_string_equal(collect_header(&s->errs, 0, "brook.error.operator"), s->victim);
    assert_non_null(collect_header(&s->errs, 0, "brook.error.message"));
    assert_true(strlen(collect_header(&s->errs, 0, "brook.error.message")) > 0);
    if (s->kind != V_SINK && s->kind != V_GENERATOR) /* error-stream sinks do not count */
      assert_int_equal(s->run.stats.records_out, N_IN - 1);
  }
}

/* ---- many failures: the error port fills up mid-batch ---- */

static int fail_odd(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->timestamp % 2 ? BROOK_ERR_USER : 1;
}

static void test_many_failures(void **state) {
  (void)state;
  const size_t n = 2500;
  const char **vals = calloc(n, sizeof(*vals));
  assert_non_null(vals);
  for (size_t i = 0; i < n; i++)
    vals[i] = collect_strf("m%zu", i);
  for (int policy = BROOK_ON_ERROR_SKIP; policy <= BROOK_ON_ERROR_ROUTE; policy++) {
    for (size_t b = 0; b < N_BATCH_SIZES; b++) {
      brook_topology_t *t = collect_topology((brook_error_policy_t)policy);
      collect_gen_t g;
      collect_gen_init(&g, vals, n);
      collect_t out, errs;
      collect_init(&out);
      collect_init(&errs);
      assert_int_equal(
          collect_sink(brook_filter(collect_gen_source(t, "src", &g), fail_odd, NULL), &out),
          BROOK_OK);
      assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
      collect_run_t r;
      assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
      assert_int_equal(out.n, n / 2);
      for (size_t i = 0; i < out.n; i++)
        assert_string_equal(collect_value(&out, i), vals[2 * i]);
      if (policy == BROOK_ON_ERROR_ROUTE) {
        assert_int_equal(r.stats.records_routed, n / 2);
        assert_int_equal(errs.n, n / 2);
        for (size_t i = 0; i < errs.n; i++)
          assert_string_equal(collect_value(&errs, i), vals[2 * i + 1]);
      } else {
        assert_int_equal(r.stats.records_skipped, n / 2);
        assert_int_equal(errs.n, 0);
      }
      brook_topology_free(t);
      collect_free(&out);
      collect_free(&errs);
    }
  }
  free(vals);
}

/* ---- failures downstream of the error stream ---- */

static brook_err_t map_always_fail(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)ctx, (void)opaque;
  return BROOK_ERR_TOO_LARGE;
}

static void test_error_sink_failure_fails_pipeline(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_t g;
  collect_gen_init(&g, in_values, N_IN);
  collect_t out, errs;
  collect_init(&out);
  collect_init(&errs);
  errs.fail_value = "r4";
  errs.fail_err = BROOK_ERR_IO;
  assert_int_equal(collect_sink(brook_map(collect_gen_source(t, "src", &g), map_fail, NULL), &out),
                   BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_IO);
  assert_int_equal(r.stats.records_routed, 1);
  assert_int_equal(errs.n, 0);
  assert_int_equal(errs.calls, 1); /* tried once, not re-routed into itself */
  assert_non_null(strstr(r.message, "sink"));
  brook_topology_free(t);
  collect_free(&out);
  collect_free(&errs);
}

static void test_error_stream_operator_failure_fails_pipeline(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_t g;
  collect_gen_init(&g, in_values, N_IN);
  collect_t out, errs;
  collect_init(&out);
  collect_init(&errs);
  assert_int_equal(collect_sink(brook_map(collect_gen_source(t, "src", &g), map_fail, NULL), &out),
                   BROOK_OK);
  brook_stream_t *e = brook_stream_set_name(brook_map(brook_error_stream(t), map_always_fail, NULL),
                                            "error-handler");
  assert_int_equal(collect_sink(e, &errs), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_TOO_LARGE);
  assert_int_equal(r.stats.records_routed, 1);
  assert_int_equal(errs.n, 0);
  assert_non_null(strstr(r.message, "error-handler"));
  brook_topology_free(t);
  collect_free(&out);
  collect_free(&errs);
}

static void test_error_stream_merged_back_no_loop(void **state) {
  (void)state;
  /* The error stream merged with the main stream into one sink. A main-stream record that
   * fails in the sink is routed once; coming back through the error stream it fails again,
   * and a failure of an error-stream record fails the pipeline: one bounce, no loop. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_t g;
  collect_gen_init(&g, in_values, N_IN);
  collect_t out;
  collect_init(&out);
  out.fail_value = "garbage"; /* the map's outputs fail in the sink */
  out.fail_err = BROOK_ERR_STATE;
  brook_stream_t *both[2] = {brook_map(collect_gen_source(t, "src", &g), map_fail, NULL),
                             brook_error_stream(t)};
  assert_int_equal(collect_sink(brook_merge(both, 2), &out), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 1, &r), BROOK_ERR_STATE);
  assert_int_equal(r.stats.records_routed, 1);
  assert_int_equal(out.calls, 2);
  brook_topology_free(t);
  collect_free(&out);

  /* Same shape, nothing failing in the sink: both streams arrive in the one sink. */
  t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_reset(&g);
  collect_init(&out);
  both[0] = brook_map(collect_gen_source(t, "src", &g), map_fail, NULL);
  both[1] = brook_error_stream(t);
  assert_int_equal(collect_sink(brook_merge(both, 2), &out), BROOK_OK);
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  assert_int_equal(out.n, N_IN);
  assert_int_equal(r.stats.records_routed, 1);
  assert_int_not_equal(collect_find(&out, "r4", 0), (size_t)-1);
  brook_topology_free(t);
  collect_free(&out);
}

static void test_records_out_sink_fed_by_main_and_errors(void **state) {
  (void)state;
  /* records_out leaves out error-stream sinks. A sink fed by a merge of the main stream and
   * the error stream still receives the regular records, delivered like any others (whether
   * the routed one counts is open): they must be counted. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_t g;
  collect_gen_init(&g, in_values, N_IN);
  collect_t out;
  collect_init(&out);
  brook_stream_t *both[2] = {brook_map(collect_gen_source(t, "src", &g), map_fail, NULL),
                             brook_error_stream(t)};
  assert_int_equal(collect_sink(brook_merge(both, 2), &out), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  brook_topology_free(t);
  size_t got = out.n;
  collect_free(&out);
  assert_int_equal(got, N_IN);
  if (r.stats.records_out < N_IN - 1)
    fail_msg("records_out is %llu although %d regular records reached the sink",
             (unsigned long long)r.stats.records_out, N_IN - 1);
}

/* ---- failures outside per-record callbacks ---- */

static brook_err_t flush_fails(void *opaque) {
  (void)opaque;
  return BROOK_ERR_IO;
}

static void test_sink_flush_failure_fails_run(void **state) {
  (void)state;
  /* Flushing is not about a record: the policy does not apply, the run fails. */
  for (int policy = BROOK_ON_ERROR_FAIL; policy <= BROOK_ON_ERROR_SKIP; policy++) {
    brook_topology_t *t = collect_topology((brook_error_policy_t)policy);
    collect_gen_t g;
    collect_gen_init(&g, in_values, N_IN);
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        brook_sink_callback(collect_gen_source(t, "src", &g), collect_sink_fn, flush_fails, &out),
        BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_IO);
    assert_int_equal(out.n, N_IN);
    assert_int_equal(r.stats.records_skipped, 0);
    brook_topology_free(t);
    collect_free(&out);
  }
}

static brook_err_t gen_fail_first(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  int *calls = opaque;
  if (++*calls > 3)
    return BROOK_DONE;
  out->value = "x";
  out->value_len = 1;
  return *calls == 1 ? CUSTOM_ERR : BROOK_OK;
}

static void test_generator_custom_code_routed(void **state) {
  (void)state;
  /* A user-defined code is carried through: routed with its name, or the run's status. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  int calls = 0;
  collect_t out, errs;
  collect_init(&out);
  collect_init(&errs);
  assert_int_equal(
      collect_sink(brook_source_generator(t, "gen", gen_fail_first, &calls, NULL), &out), BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  assert_int_equal(out.n, 2);
  assert_int_equal(errs.n, 1);
  assert_string_equal(collect_header(&errs, 0, "brook.error"), brook_errname(CUSTOM_ERR));
  assert_string_equal(collect_header(&errs, 0, "brook.error.operator"), "gen");
  brook_topology_free(t);

  t = collect_topology(BROOK_ON_ERROR_FAIL);
  calls = 0;
  collect_clear(&out);
  assert_int_equal(
      collect_sink(brook_source_generator(t, "gen", gen_fail_first, &calls, NULL), &out), BROOK_OK);
  assert_int_equal(collect_run_batch(t, 0, &r), CUSTOM_ERR);
  assert_int_equal(out.n, 0);
  assert_non_null(strstr(r.message, "gen"));
  brook_topology_free(t);
  collect_free(&out);
  collect_free(&errs);
}

/* ---- brook's headers are unambiguous ---- */

static brook_err_t gen_forged(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  static const brook_header_t forged[] = {
      {"brook.error", "forged", 6}, {"brook.source.offset", "99", 2}, {"trace", "t-1", 3}};
  int *calls = opaque;
  if (++*calls > 1)
    return BROOK_DONE;
  out->value = "r4"; /* map_fail fails it */
  out->value_len = 2;
  out->headers = forged;
  out->header_count = 3;
  return BROOK_OK;
}

/* A record that already carries brook.* headers (a producer's, or an earlier failure's) is
 * routed with them renamed original.brook.*: brook_record_header(rec, "brook.error") finds
 * brook's own, and no brook.source.* claims coordinates a generator does not have. */
static void test_route_renames_incoming_brook_headers(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  int calls = 0;
  collect_t out, errs;
  collect_init(&out);
  collect_init(&errs);
  brook_stream_t *s = brook_source_generator(t, "gen", gen_forged, &calls, NULL);
  assert_int_equal(collect_sink(brook_map(s, map_fail, NULL), &out), BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  assert_int_equal(errs.n, 1);
  assert_string_equal(collect_header(&errs, 0, "brook.error"), brook_errname(BROOK_ERR_USER));
  assert_non_null(collect_header(&errs, 0, "original.brook.error"));
  assert_string_equal(collect_header(&errs, 0, "original.brook.error"), "forged");
  assert_non_null(collect_header(&errs, 0, "original.brook.source.offset"));
  assert_string_equal(collect_header(&errs, 0, "original.brook.source.offset"), "99");
  assert_null(collect_header(&errs, 0, "brook.source.offset"));
  assert_string_equal(collect_header(&errs, 0, "trace"), "t-1");
  assert_int_equal(errs.recs[0].header_count, 3 + 4);
  brook_topology_free(t);
  collect_free(&out);
  collect_free(&errs);
}

/* ---- brook_ctx_set_error: the callback explains its failure ---- */

static brook_err_t map_explain(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  if (is_failing(rec)) {
    brook_ctx_set_error(ctx, "value '%.*s' is not allowed", (int)rec->value_len,
                        (const char *)rec->value);
    return BROOK_ERR_USER;
  }
  if (rec->value_len == 2 && memcmp(rec->value, "r6", 2) == 0)
    return BROOK_ERR_USER; /* fails without explaining */
  return BROOK_OK;
}

static brook_err_t gen_explain(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  int *calls = opaque;
  if (++*calls > 3)
    return BROOK_DONE;
  out->value = "g";
  out->value_len = 1;
  if (*calls == 2) {
    brook_ctx_set_error(ctx, "generator says no");
    return BROOK_ERR_IO;
  }
  return BROOK_OK;
}

static void test_set_error_message(void **state) {
  (void)state;
  /* ROUTE: the explanation is the routed record's message; the next failure, unexplained,
   * gets the generic text again (the explanation is not sticky). */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_ROUTE);
  collect_gen_t g;
  collect_gen_init(&g, in_values, N_IN);
  collect_t out, errs;
  collect_init(&out);
  collect_init(&errs);
  assert_int_equal(
      collect_sink(brook_map(collect_gen_source(t, "src", &g), map_explain, NULL), &out), BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  assert_int_equal(out.n, N_IN - 2);
  assert_int_equal(errs.n, 2);
  assert_string_equal(collect_header(&errs, 0, "brook.error.message"), "value 'r4' is not allowed");
  assert_string_not_equal(collect_header(&errs, 1, "brook.error.message"),
                          "value 'r4' is not allowed");
  brook_topology_free(t);

  /* FAIL: the explanation is in the runtime's last error, with the operator's name. */
  t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_reset(&g);
  assert_int_equal(
      collect_sink(brook_stream_set_name(
                       brook_map(collect_gen_source(t, "src", &g), map_explain, NULL), "checker"),
                   &out),
      BROOK_OK);
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_USER);
  assert_non_null(strstr(r.message, "value 'r4' is not allowed"));
  assert_non_null(strstr(r.message, "checker"));
  brook_topology_free(t);

  /* A generator explains itself too. */
  t = collect_topology(BROOK_ON_ERROR_ROUTE);
  int calls = 0;
  collect_clear(&out);
  collect_clear(&errs);
  assert_int_equal(collect_sink(brook_source_generator(t, "gen", gen_explain, &calls, NULL), &out),
                   BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  assert_int_equal(out.n, 2);
  assert_int_equal(errs.n, 1);
  assert_string_equal(collect_header(&errs, 0, "brook.error.message"), "generator says no");
  assert_string_equal(collect_header(&errs, 0, "brook.error"), "BROOK_ERR_IO");
  brook_topology_free(t);
  collect_free(&out);
  collect_free(&errs);
}

static const victim_kind_t kinds[V_COUNT] = {V_MAP,    V_FILTER, V_FLAT_MAP, V_PEEK,
                                             V_KEY_BY, V_BRANCH, V_SINK,     V_GENERATOR};

#define POLICY_TESTS(fn, policy)                                                                   \
  {policy "/map", fn, NULL, scenario_teardown, (void *)&kinds[V_MAP]},                             \
      {policy "/filter", fn, NULL, scenario_teardown, (void *)&kinds[V_FILTER]},                   \
      {policy "/flat_map", fn, NULL, scenario_teardown, (void *)&kinds[V_FLAT_MAP]},               \
      {policy "/peek", fn, NULL, scenario_teardown, (void *)&kinds[V_PEEK]},                       \
      {policy "/key_by", fn, NULL, scenario_teardown, (void *)&kinds[V_KEY_BY]},                   \
      {policy "/branch", fn, NULL, scenario_teardown, (void *)&kinds[V_BRANCH]},                   \
      {policy "/sink", fn, NULL, scenario_teardown, (void *)&kinds[V_SINK]}, {                     \
    policy "/generator", fn, NULL, scenario_teardown, (void *)&kinds[V_GENERATOR]                  \
  }

int main(void) {
  const struct CMUnitTest tests[] = {
      POLICY_TESTS(test_fail_policy, "fail"),
      POLICY_TESTS(test_fail_delivers_records_before_failure, "fail-prefix"),
      POLICY_TESTS(test_skip_policy, "skip"),
      POLICY_TESTS(test_route_policy, "route"),
      cmocka_unit_test(test_many_failures),
      cmocka_unit_test(test_error_sink_failure_fails_pipeline),
      cmocka_unit_test(test_error_stream_operator_failure_fails_pipeline),
      cmocka_unit_test(test_error_stream_merged_back_no_loop),
      cmocka_unit_test(test_records_out_sink_fed_by_main_and_errors),
      cmocka_unit_test(test_sink_flush_failure_fails_run),
      cmocka_unit_test(test_generator_custom_code_routed),
      cmocka_unit_test(test_set_error_message),
      cmocka_unit_test(test_route_renames_incoming_brook_headers),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
