/* Extreme event and processing times (BROOK_TIME_MIN .. BROOK_TIME_MAX) through every stateful
 * operator: regression tests for time arithmetic that overflowed (dedupe, the test driver's
 * clock), and a seeded fuzz that drives aggregate, count, reduce, dedupe, timers of a custom
 * operator and the four window kinds with a random mix of extreme and ordinary timestamps,
 * checking results against simple references. The sanitizer build (BROOK_SANITIZE=ON) turns any
 * signed overflow into an abort, so a clean run also says UBSan stayed silent.
 *
 * BROOK_FUZZ_ITERS=<n> sets the number of fuzz rounds (default: a CI-sized few), and
 * BROOK_FUZZ_SEED=<n> replays one seed (each round prints the seed it ran). */
#include <inttypes.h>
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
#include "driver_helpers.h"
#include "wait.h"

/* ---- helpers ---- */

static brook_driver_t *new_driver_at(brook_topology_t *t, brook_time_t start) {
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  o.start_time = start;
  brook_driver_t *d = NULL;
  brook_err_t err = brook_driver_new(&d, t, &o);
  if (err != BROOK_OK)
    fail_msg("brook_driver_new: %s: %s", brook_errname(err), brook_topology_last_error(t));
  return d;
}

static void push_ts(brook_driver_t *d, const char *key, const char *value, brook_time_t ts) {
  brook_record_t r = {.key = key,
                      .key_len = key ? strlen(key) : 0,
                      .value = value,
                      .value_len = value ? strlen(value) : 0,
                      .timestamp = ts};
  brook_err_t err = brook_driver_push(d, "in", &r);
  if (err != BROOK_OK)
    fail_msg("push %s=%s at %" PRId64 ": %s: %s", key ? key : "(null)", value ? value : "(null)",
             ts, brook_errname(err), brook_driver_last_error(d));
}

static int out_value_is(const brook_driver_t *d, const char *sink, size_t i, const char *text) {
  const brook_record_t *r = brook_driver_output(d, sink, i);
  return r && r->value_len == strlen(text) && memcmp(r->value, text, r->value_len) == 0;
}

/* ---- regressions ---- */

static void test_dedupe_after_min_timestamp(void **state) {
  (void)state;
  /* Regression (issue 11 E): the first record of a key at BROOK_TIME_MIN made
   * `rec->timestamp - first` overflow for the next record of the key (UBSan aborts; a Release
   * build computed a negative distance and dropped the record as a duplicate). */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_dedupe(brook_source_push(t, "in", NULL), 100, NULL), "out");
  brook_driver_t *d = new_driver_at(t, 0);
  push_ts(d, "a", "a1", BROOK_TIME_MIN);
  push_ts(d, "b", "b1", BROOK_TIME_MIN + 1);
  push_ts(d, "b", "b2", BROOK_TIME_MIN + 50); /* inside b's horizon */
  push_ts(d, "a", "a2", 0);                   /* 2^63 ms after a1: far outside its horizon */
  push_ts(d, "a", "a3", 50);                  /* inside a2's horizon */
  assert_int_equal(brook_driver_output_count(d, "out"), 3);
  assert_true(out_value_is(d, "out", 0, "a1"));
  assert_true(out_value_is(d, "out", 1, "b1"));
  assert_true(out_value_is(d, "out", 2, "a2"));
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_dedupe_near_max_timestamp(void **state) {
  (void)state;
  /* A horizon reaching past BROOK_TIME_MAX is no error: the record passes, and every later
   * record of the key up to the end of time is inside the horizon. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_dedupe(brook_source_push(t, "in", NULL), 100, NULL), "out");
  brook_driver_t *d = new_driver_at(t, 0);
  push_ts(d, "a", "a1", BROOK_TIME_MAX - 10);
  push_ts(d, "a", "a2", BROOK_TIME_MAX);
  push_ts(d, "b", "b1", BROOK_TIME_MAX);
  push_ts(d, "b", "b2", BROOK_TIME_MAX);
  push_ts(d, "c", "c1", BROOK_TIME_MAX - 100);
  push_ts(d, "c", "c2", BROOK_TIME_MAX); /* exactly first + horizon: a new horizon */
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 4);
  assert_true(out_value_is(d, "out", 0, "a1"));
  assert_true(out_value_is(d, "out", 1, "b1"));
  assert_true(out_value_is(d, "out", 2, "c1"));
  assert_true(out_value_is(d, "out", 3, "c2"));
  assert_int_equal(brook_driver_end(d), BROOK_OK); /* the expiry timers at the end of time */
  assert_int_equal(brook_driver_output_count(d, "out"), 4);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_dedupe_far_older_record_passes(void **state) {
  (void)state;
  /* Regression (issue 11 E): a record earlier than the key's first one was a duplicate however
   * far back it was, so one record stamped near BROOK_TIME_MAX made every later record of its
   * key a "duplicate" until the watermark passed that far-future horizon. A record is a
   * duplicate only within `horizon` ms of the first, before or after it. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_dedupe(brook_source_push(t, "in", NULL), 100, NULL), "out");
  brook_driver_t *d = new_driver_at(t, 0);
  push_ts(d, "a", "a1", BROOK_TIME_MAX - 1000);
  push_ts(d, "a", "a2", 0);                     /* far older: not a duplicate */
  push_ts(d, "a", "a3", BROOK_TIME_MAX - 1099); /* within the horizon, before the first */
  push_ts(d, "a", "a4", BROOK_TIME_MAX - 1100); /* just outside it */
  assert_int_equal(brook_driver_output_count(d, "out"), 3);
  assert_true(out_value_is(d, "out", 0, "a1"));
  assert_true(out_value_is(d, "out", 1, "a2"));
  assert_true(out_value_is(d, "out", 2, "a4"));
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_driver_clock_saturates(void **state) {
  (void)state;
  /* Regression (issue 11 E): brook_driver_advance_time added without a check, so advancing a
   * clock that started at 5000 by BROOK_TIME_MAX overflowed. The clock now stops at
   * BROOK_TIME_MAX (test_driver.h). */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "in", NULL), "out");
  brook_driver_t *d = new_driver_at(t, 5000);
  assert_int_equal(brook_driver_advance_time(d, BROOK_TIME_MAX), BROOK_OK);
  assert_int_equal(brook_driver_time(d), BROOK_TIME_MAX);
  assert_int_equal(brook_driver_advance_time(d, 1), BROOK_OK);
  assert_int_equal(brook_driver_time(d), BROOK_TIME_MAX);
  brook_driver_free(d);
  d = new_driver_at(t, BROOK_TIME_MIN);
  assert_int_equal(brook_driver_advance_time(d, BROOK_TIME_MAX), BROOK_OK);
  assert_int_equal(brook_driver_time(d), -1);
  assert_int_equal(brook_driver_advance_time(d, BROOK_TIME_MAX), BROOK_OK);
  assert_int_equal(brook_driver_time(d), BROOK_TIME_MAX - 1);
  brook_driver_free(d);
  brook_topology_free(t);
}

typedef struct waiter {
  brook_push_source_t *p;
  int64_t timeout_ms;
  brook_err_t result;
  wait_counter_t done;
} waiter_t;

static void push_wait_thread(void *arg) {
  waiter_t *w = arg;
  brook_record_t r = {.value = "w", .value_len = 1};
  w->result = brook_push_wait(w->p, &r, w->timeout_ms);
  wait_counter_add(&w->done, 1);
}

static void test_push_wait_huge_timeout(void **state) {
  (void)state;
  /* Regression (issue 11 E, audit): brook_push_wait computed its deadline as
   * now + timeout_ms * 10^6 in uint64_t, which wraps for timeouts beyond ~584 years:
   * INT64_MAX ms ("practically forever") gave a deadline in the past and BROOK_ERR_TIMEOUT at
   * once. A timeout too large to represent now waits without a deadline. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 1;
  named_sink(brook_source_push(t, "in", &po), "out");
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_push_source_t *p = brook_runtime_push_source(rt, "in");
  assert_non_null(p);
  brook_record_t r = {.value = "x", .value_len = 1};
  assert_int_equal(brook_push(p, &r), BROOK_OK);
  assert_int_equal(brook_push(p, &r), BROOK_ERR_FULL); /* the runtime does not run: full */
  int64_t timeouts[] = {5, BROOK_TIME_MAX, (int64_t)(UINT64_MAX / 1000000u) + 1};
  for (size_t i = 0; i < 3; i++) {
    waiter_t w = {.p = p, .timeout_ms = timeouts[i], .result = 1};
    wait_counter_init(&w.done, 0);
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, push_wait_thread, &w), 0);
    if (i == 0) { /* an ordinary timeout still expires */
      assert_true(wait_counter_wait_ge(&w.done, 1, 10000));
      assert_int_equal(w.result, BROOK_ERR_TIMEOUT);
    } else {
      /* Still waiting after a while (it returned at once before the fix) ... */
      if (wait_counter_wait_ge(&w.done, 1, 300))
        fail_msg("brook_push_wait(timeout %" PRId64 " ms) returned %s at once", timeouts[i],
                 brook_errname(w.result));
      /* ... until the source ends. */
      assert_int_equal(brook_push_end(p), BROOK_OK);
      assert_true(wait_counter_wait_ge(&w.done, 1, 10000));
      assert_int_equal(w.result, BROOK_ERR_STOPPED);
    }
    assert_int_equal(uv_thread_join(&th), 0);
    wait_counter_destroy(&w.done);
    if (i == 1) { /* a fresh runtime, whose source has not ended */
      brook_runtime_free(rt);
      assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
      p = brook_runtime_push_source(rt, "in");
      assert_int_equal(brook_push(p, &r), BROOK_OK);
    }
  }
  brook_runtime_free(rt);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dedupe_after_min_timestamp),
      cmocka_unit_test(test_dedupe_near_max_timestamp),
      cmocka_unit_test(test_dedupe_far_older_record_passes),
      cmocka_unit_test(test_driver_clock_saturates),
      cmocka_unit_test(test_push_wait_huge_timeout),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
