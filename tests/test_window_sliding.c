/* Sliding windows over a dense key (issue 11 F, "check sliding windows for the same
 * pathology"): every window used to merge all of the key's slices within `size` and every
 * new timestamp rewrote the key's sorted index, so a key with a record every millisecond
 * cost O(size) per record. Now a record costs O(1) amortised whatever the size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/window_pipeline.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* sliding(60 s), one key, a record every ms for 60 s: each
 * window [t - 59999, t + 1) counts the key's records in it. */
static void test_dense_key(void **state) {
  (void)state;
  const brook_time_t size = 60 * BROOK_S, n = 60000;
  double t0 = now_s();
  brook_topology_t *t;
  brook_driver_t *d =
      window_count_pipeline(&t, brook_window_sliding(size), 0, NULL, BROOK_ON_ERROR_FAIL);
  assert_non_null(d);
  for (brook_time_t i = 0; i < n; i++) {
    brook_record_t rec = {.key = "k", .key_len = 1, .timestamp = i};
    assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
  }
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), (size_t)n);
  for (size_t i = 0; i < (size_t)n; i++) {
    brook_window_value_t wv;
    int64_t count;
    char key[4];
    window_count_result(d, i, &wv, &count, key, sizeof(key));
    brook_time_t ti = (brook_time_t)i;
    assert_int_equal(wv.end, ti + 1);
    assert_int_equal(wv.start, ti + 1 - size);
    assert_int_equal(count, (ti < size - 1 ? ti : size - 1) + 1);
  }
  brook_driver_free(d);
  brook_topology_free(t);
  double secs = now_s() - t0; /* milliseconds here; about a minute under ASan before */
  if (secs > 10)
    fail_msg("took %.1f s", secs);
}

/* sliding(1): each record's window fires at once and its slice is then dead. Keys that get
 * one record each must not keep state (a regression: the slice whose window had just fired
 * counted as pending, and size 1 has no cleanup timer, so every key stayed forever). */
static void test_size_one_keeps_no_state(void **state) {
  (void)state;
  brook_topology_t *t;
  brook_driver_t *d =
      window_count_pipeline(&t, brook_window_sliding(1), 0, NULL, BROOK_ON_ERROR_FAIL);
  assert_non_null(d);
  char key[16];
  for (int i = 0; i < 2000; i++) {
    int n = snprintf(key, sizeof(key), "req-%d", i);
    brook_record_t rec = {.key = key, .key_len = (size_t)n, .timestamp = i};
    assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
  }
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
  if (st.state_bytes > 64 * 1024)
    fail_msg("2000 keys of one record each, all but the newest window fired, hold %llu bytes",
             (unsigned long long)st.state_bytes);
  assert_true(brook_driver_output_count(d, "out") >= 1999);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 2000);
  brook_driver_free(d);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dense_key),
      cmocka_unit_test(test_size_one_keeps_no_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
