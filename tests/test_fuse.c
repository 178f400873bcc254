/* Fused chains (runtime/fuse.c): a linear chain of built-in callback operators runs record by
 * record inside a batch. What that changes is what users can see: the order callbacks of
 * different operators run in, and which of two failing records of a batch is met first under
 * BROOK_ON_ERROR_FAIL (the earliest record, in whichever operator it fails). What it must not
 * change: outputs, routed records and their headers, counts, N workers, long chains. */
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

#include "call_log.h"
#include "collect.h"

#define N_IN 12

static const char *in_values[N_IN];

static void make_values(void) {
  for (size_t i = 0; i < N_IN; i++)
    in_values[i] = collect_strf("r%zu", i);
}

/* Record i has timestamp i (ts_base 0); maps here add 1000 (the log) or 1 (the long chain). */

typedef struct logged_run {
  call_log_t log;
  collect_t errs;
  collect_run_t run;
} logged_run_t;

/* source -> filter -> map -> sink; `fan_out`: a second consumer of the filter's output, which
 * ends the chain there. */
static void logged_run(logged_run_t *r, brook_error_policy_t policy, int fan_out, size_t f_at,
                       size_t m_at) {
  memset(r, 0, sizeof(*r));
  r->log.filter_fails_at = f_at;
  r->log.map_fails_at = m_at;
  collect_init(&r->errs);
  brook_topology_t *t = collect_topology(policy);
  collect_gen_t gen;
  collect_gen_init(&gen, in_values, N_IN);
  gen.ts_base = 0;
  brook_stream_t *f = brook_stream_set_name(
      brook_filter(collect_gen_source(t, "src", &gen), call_log_filter, &r->log), "filter");
  brook_stream_t *m = brook_stream_set_name(brook_map(f, call_log_map, &r->log), "map");
  assert_int_equal(brook_sink_callback(m, call_log_sink, NULL, &r->log), BROOK_OK);
  collect_t other;
  collect_init(&other);
  if (fan_out)
    assert_int_equal(collect_sink(f, &other), BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &r->errs), BROOK_OK);
  collect_run_batch(t, 0, &r->run);
  collect_free(&other);
  brook_topology_free(t);
}

static void test_chain_runs_record_by_record(void **state) {
  (void)state;
  logged_run_t r;
  logged_run(&r, BROOK_ON_ERROR_FAIL, 0, N_IN, N_IN);
  assert_int_equal(r.run.status, BROOK_OK);
  assert_string_equal(r.log.text, "f0 m0 s0 f1 m1 s1 f2 m2 s2 f3 f4 m4 s4 f5 m5 s5 f6 m6 s6 f7 "
                                  "f8 m8 s8 f9 m9 s9 f10 m10 s10 f11");
  assert_int_equal(r.run.stats.records_out, 9);
  collect_free(&r.errs);
  /* Fan-out ends the chain at the filter: it runs over the batch, then the chain map -> sink. */
  logged_run(&r, BROOK_ON_ERROR_FAIL, 1, N_IN, N_IN);
  assert_int_equal(r.run.status, BROOK_OK);
  assert_string_equal(r.log.text, "f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 m0 s0 m1 s1 m2 s2 m4 s4 "
                                  "m5 s5 m6 s6 m8 s8 m9 s9 m10 s10");
  assert_int_equal(r.run.stats.records_out, 9 + 9);
  collect_free(&r.errs);
}

/* Under FAIL, the first record of the batch that fails, in any operator of a chain, is the
 * failure: here the map's on r2, though the filter fails on r6; what came before r2 went
 * through the whole chain, nothing after it. Without fusion (fan-out) the filter, which runs
 * first over the whole batch, fails first. */
static void test_fail_earliest_record_wins_in_a_chain(void **state) {
  (void)state;
  logged_run_t r;
  logged_run(&r, BROOK_ON_ERROR_FAIL, 0, 6, 2);
  assert_int_equal(r.run.status, -42);
  assert_non_null(strstr(r.run.message, "operator 'map' failed on a record"));
  assert_string_equal(r.log.text, "f0 m0 s0 f1 m1 s1 f2 m2");
  assert_int_equal(r.run.stats.records_out, 2);
  collect_free(&r.errs);

  logged_run(&r, BROOK_ON_ERROR_FAIL, 1, 6, 2);
  assert_int_equal(r.run.status, -41);
  assert_non_null(strstr(r.run.message, "operator 'filter' failed on a record"));
  assert_string_equal(r.log.text, "f0 f1 f2 f3 f4 f5 f6 m0 s0 m1 s1 m2");
  collect_free(&r.errs);
}

/* SKIP and ROUTE go on after each failure, in the operator that failed, with the record as it
 * came into that operator (the map's failed record without the map's +1000). */
static void test_skip_and_route_in_a_chain(void **state) {
  (void)state;
  logged_run_t r;
  logged_run(&r, BROOK_ON_ERROR_SKIP, 0, 6, 2);
  assert_int_equal(r.run.status, BROOK_OK);
  assert_int_equal(r.run.stats.records_skipped, 2);
  assert_int_equal(r.run.stats.records_out, 7);
  collect_free(&r.errs);

  logged_run(&r, BROOK_ON_ERROR_ROUTE, 0, 6, 2);
  assert_int_equal(r.run.status, BROOK_OK);
  assert_int_equal(r.run.stats.records_routed, 2);
  assert_int_equal(r.errs.n, 2);
  assert_string_equal(collect_value(&r.errs, 0), "r2");
  assert_string_equal(collect_header(&r.errs, 0, "brook.error.operator"), "map");
  assert_string_equal(collect_header(&r.errs, 0, "brook.error.code"), "-42");
  assert_int_equal(r.errs.recs[0].timestamp, 2); /* as it came into the map */
  assert_string_equal(collect_value(&r.errs, 1), "r6");
  assert_string_equal(collect_header(&r.errs, 1, "brook.error.operator"), "filter");
  assert_string_equal(collect_header(&r.errs, 1, "brook.error.message"), "filter predicate failed");
  collect_free(&r.errs);
}

/* ---- a sink that fails inside a chain ---- */

static brook_err_t add_ten(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  rec->timestamp += 10;
  return BROOK_OK;
}

static void test_failing_sink_at_chain_end(void **state) {
  (void)state;
  brook_error_policy_t policies[] = {BROOK_ON_ERROR_ROUTE, BROOK_ON_ERROR_FAIL};
  for (size_t p = 0; p < 2; p++) {
    brook_topology_t *t = collect_topology(policies[p]);
    collect_gen_t gen;
    collect_gen_init(&gen, in_values, N_IN);
    gen.ts_base = 0;
    collect_t out, errs;
    collect_init(&out);
    collect_init(&errs);
    out.fail_value = "r5";
    out.fail_err = BROOK_ERR_USER;
    brook_stream_t *m = brook_map(collect_gen_source(t, "src", &gen), add_ten, NULL);
    assert_int_equal(brook_sink_callback_v2(m, collect_sink_fn, NULL, &out, NULL), BROOK_OK);
    assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
    collect_run_t run;
    collect_run_batch(t, 0, &run);
    if (policies[p] == BROOK_ON_ERROR_ROUTE) {
      assert_int_equal(run.status, BROOK_OK);
      assert_int_equal(out.n, N_IN - 1);
      assert_int_equal(errs.n, 1);
      assert_string_equal(collect_value(&errs, 0), "r5");
      assert_int_equal(errs.recs[0].timestamp, 15); /* after the map: as it came into the sink */
      assert_string_equal(collect_header(&errs, 0, "brook.error.message"), "sink callback failed");
      assert_int_equal(run.stats.records_out, N_IN);
    } else {
      assert_int_equal(run.status, BROOK_ERR_USER);
      assert_int_equal(out.n, 5);
      assert_int_equal(out.calls, 6);
      assert_int_equal(run.stats.records_out, 6);
    }
    collect_free(&out);
    collect_free(&errs);
    brook_topology_free(t);
  }
}

/* ---- chains longer than one fused run, and key_by inside a chain on N workers ---- */

static brook_err_t inc(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  rec->timestamp++;
  return BROOK_OK;
}

static brook_err_t key_last_digit(const brook_record_t *rec, const void **key, size_t *key_len,
                                  brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = (const char *)rec->value + rec->value_len - 1; /* the last digit */
  *key_len = 1;
  return BROOK_OK;
}

/* Checks each record on whichever worker it arrives: runs on several threads. */
typedef struct checked {
  atomic_size_t n, wrong;
} checked_t;

static brook_err_t check_sink(const brook_record_t *rec, void *opaque) {
  checked_t *c = opaque;
  char want[16]; /* record i arrives as "r<i>" with timestamp i + 21, keyed by its last digit */
  int len = snprintf(want, sizeof(want), "r%lld", (long long)(rec->timestamp - 21));
  int ok = rec->value_len == (size_t)len && memcmp(rec->value, want, rec->value_len) == 0 &&
           rec->key_len == 1 && *(const char *)rec->key == want[len - 1];
  atomic_fetch_add(&c->n, 1);
  if (!ok)
    atomic_fetch_add(&c->wrong, 1);
  return BROOK_OK;
}

static void test_long_chain_and_key_by_on_workers(void **state) {
  (void)state;
  for (size_t workers = 1; workers <= 2; workers++) {
    for (size_t batch = 1; batch <= 1024; batch *= 1024) {
      brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
      collect_gen_t gen;
      collect_gen_init(&gen, in_values, N_IN);
      gen.ts_base = 0;
      brook_stream_t *s = collect_gen_source(t, "src", &gen);
      for (int k = 0; k < 20; k++) /* longer than one fused chain (16) */
        s = brook_map(s, inc, NULL);
      /* key_by inside the chain; with 2 workers its output crosses an exchange */
      s = brook_map(brook_key_by(s, key_last_digit, NULL), inc, NULL);
      checked_t c;
      atomic_init(&c.n, 0);
      atomic_init(&c.wrong, 0);
      assert_int_equal(brook_sink_callback(s, check_sink, NULL, &c), BROOK_OK);
      brook_runtime_opts_t ro;
      brook_runtime_opts_init(&ro);
      ro.num_workers = workers;
      ro.batch_size = batch;
      collect_run_t run;
      collect_run_topology(t, &ro, NULL, NULL, &run);
      assert_int_equal(run.status, BROOK_OK);
      assert_int_equal(atomic_load(&c.n), N_IN);
      assert_int_equal(atomic_load(&c.wrong), 0);
      assert_int_equal(run.stats.records_out, N_IN);
      brook_topology_free(t);
    }
  }
}

int main(void) {
  make_values();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chain_runs_record_by_record),
      cmocka_unit_test(test_fail_earliest_record_wins_in_a_chain),
      cmocka_unit_test(test_skip_and_route_in_a_chain),
      cmocka_unit_test(test_failing_sink_at_chain_end),
      cmocka_unit_test(test_long_chain_and_key_by_on_workers),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
