/* Hopping windows with a large size/advance (issue 11 F): a record costs one slice update
 * whatever the ratio, memory follows the slices holding data, and definitions of more than
 * BROOK_WINDOW_MAX_HOPS windows per record are refused by the builder, naming the limit.
 * hopping(24 h, 1 ms) with 3 records used to take 5.5 GB and 50 s before running out of
 * memory; hopping(1 h, 1 ms) with 100 records did not finish in 60 s. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/window_pipeline.h"

#define HOUR (3600 * BROOK_S)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static brook_driver_t *open_hopping(brook_topology_t **t, brook_time_t size, brook_time_t advance,
                                    brook_time_t max_delay) {
  return window_count_pipeline(t, brook_window_hopping(size, advance), max_delay, NULL,
                               BROOK_ON_ERROR_FAIL);
}

static void push(brook_driver_t *d, const char *key, brook_time_t ts) {
  brook_record_t rec = {.key = key, .key_len = strlen(key), .timestamp = ts};
  assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
}

static brook_time_t floor_to(brook_time_t t, brook_time_t step) {
  brook_time_t r = t % step;
  return r < 0 ? t - r - step : t - r;
}

/* More than BROOK_WINDOW_MAX_HOPS windows per record: the builder says so. */
static void test_limit(void **state) {
  (void)state;
  static const struct {
    brook_time_t size, advance;
    int ok;
  } defs[] = {
      {24 * HOUR, 1, 0}, /* the definitions: 86,400,000 and 3,600,000 windows */
      {HOUR, 1, 0},      {10000, 1, 1},                /* exactly the limit */
      {10001, 1, 0},     {20000, 2, 1}, {20001, 2, 0}, /* ceil(20001 / 2) = 10,001 */
      {HOUR, 360, 1},
  };
  for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
    brook_topology_t *t;
    assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
    brook_stream_t *in = brook_source_push(t, "in", NULL);
    brook_aggregator_t agg = brook_agg_count();
    brook_window_t win = brook_window_hopping(defs[i].size, defs[i].advance);
    brook_stream_t *out = brook_window_aggregate(in, &win, &agg, NULL);
    if (defs[i].ok) {
      assert_non_null(out);
    } else {
      if (out)
        fail_msg("hopping(%lld, %lld) was accepted", (long long)defs[i].size,
                 (long long)defs[i].advance);
      const char *msg = brook_topology_last_error(t);
      if (!strstr(msg, "BROOK_WINDOW_MAX_HOPS (10000)"))
        fail_msg("message does not name the limit: %s", msg);
    }
    brook_topology_free(t);
  }
}

/* At the limit, dense: hopping(10 s, 1 ms) over 10,000 records one per ms. Each window's
 * count is the number of records in it; 19,999 windows in all. */
static void test_dense_at_limit(void **state) {
  (void)state;
  const brook_time_t size = 10 * BROOK_S, n = 10000;
  double t0 = now_s();
  brook_topology_t *t;
  brook_driver_t *d = open_hopping(&t, size, 1, 0);
  assert_non_null(d);
  for (brook_time_t i = 0; i < n; i++)
    push(d, "k", i);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  size_t got = brook_driver_output_count(d, "out");
  assert_int_equal(got, (size_t)(n + size - 1));
  for (size_t i = 0; i < got; i++) {
    brook_window_value_t wv;
    int64_t count;
    char key[8];
    window_count_result(d, i, &wv, &count, key, sizeof(key));
    brook_time_t ws = (brook_time_t)i - size + 1; /* in order of end */
    brook_time_t lo = ws > 0 ? ws : 0, hi = ws + size < n ? ws + size : n;
    assert_int_equal(wv.start, ws);
    assert_int_equal(wv.end, ws + size);
    assert_int_equal(count, hi - lo);
  }
  brook_driver_free(d);
  brook_topology_free(t);
  double secs = now_s() - t0; /* milliseconds here; minutes with windows merged per fire */
  if (secs > 10)
    fail_msg("took %.1f s", secs);
}

/* At the limit, sparse: hopping(10 s, 1 ms) with 3 records a day apart: 30,000 windows of
 * one record each, and the state held between them is a few slices, not 10,000 windows. */
static void test_sparse_at_limit(void **state) {
  (void)state;
  const brook_time_t size = 10 * BROOK_S;
  brook_topology_t *t;
  brook_driver_t *d = open_hopping(&t, size, 1, 48 * HOUR);
  assert_non_null(d);
  const brook_time_t ts[3] = {-5, 12 * HOUR + 7, 24 * HOUR - 1};
  for (int i = 0; i < 3; i++)
    push(d, i == 1 ? "b" : "a", ts[i]);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
  if (st.state_bytes > 256 * 1024)
    fail_msg("3 records hold %llu bytes of state", (unsigned long long)st.state_bytes);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 3 * (size_t)size);
  for (size_t i = 0; i < 3 * (size_t)size; i++) {
    brook_window_value_t wv;
    int64_t count;
    char key[8];
    window_count_result(d, i, &wv, &count, key, sizeof(key));
    brook_time_t rec = ts[i / (size_t)size];
    assert_int_equal(count, 1);
    assert_string_equal(key, i / (size_t)size == 1 ? "b" : "a");
    assert_int_equal(wv.start, rec - size + 1 + (brook_time_t)(i % (size_t)size));
  }
  brook_driver_free(d);
  brook_topology_free(t);
}

/* hopping(1 h, 360 ms), 10,000 windows per record: 100 records of 3 keys spread over two
 * hours, out of order, checked window by window against a brute-force count. */
static void test_hour_windows(void **state) {
  (void)state;
  const brook_time_t size = HOUR, adv = 360;
  enum { N = 100 };
  brook_time_t ts[N];
  const char *keys[3] = {"x", "yy", "z"};
  uint64_t seed = 42;
  for (int i = 0; i < N; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    ts[i] = (brook_time_t)(i * 72000) - (brook_time_t)((seed >> 33) % 30000); /* disorder */
  }
  brook_topology_t *t;
  brook_driver_t *d = open_hopping(&t, size, adv, 30000);
  assert_non_null(d);
  for (int i = 0; i < N; i++)
    push(d, keys[i % 3], ts[i]);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  /* Expected: every (key, window) holding a record, with its count. */
  size_t expect = 0;
  brook_time_t first = floor_to(ts[0] - 30000 - size, adv), last = floor_to(N * 72000, adv);
  for (brook_time_t ws = first; ws <= last; ws += adv)
    for (int k = 0; k < 3; k++)
      for (int i = k; i < N; i += 3)
        if (ts[i] >= ws && ts[i] < ws + size) {
          expect++;
          break;
        }
  size_t got = brook_driver_output_count(d, "out");
  assert_int_equal(got, expect);
  brook_time_t prev_end = BROOK_TIME_MIN;
  for (size_t j = 0; j < got; j++) {
    brook_window_value_t wv;
    int64_t count;
    char key[8];
    window_count_result(d, j, &wv, &count, key, sizeof(key));
    assert_int_equal(wv.end - wv.start, size);
    assert_int_equal(floor_to(wv.start, adv), wv.start);
    assert_true(wv.end >= prev_end);
    prev_end = wv.end;
    int k = key[0] == 'x' ? 0 : key[0] == 'y' ? 1 : 2;
    int64_t want = 0;
    for (int i = k; i < N; i += 3)
      want += ts[i] >= wv.start && ts[i] < wv.end;
    assert_int_equal(count, want);
  }
  brook_driver_free(d);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_limit),
      cmocka_unit_test(test_dense_at_limit),
      cmocka_unit_test(test_sparse_at_limit),
      cmocka_unit_test(test_hour_windows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
