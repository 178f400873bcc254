/* Window state is accounted and bounded: stats.state_bytes reports what the window operators
 * hold, it grows with the keys of the open windows, and over a long run it follows the live
 * windows, not the number of records (every window kind, both emit modes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/driver_helpers.h"
#include "support/state_backend.h"

typedef struct run {
  brook_topology_t *t;
  brook_driver_t *d;
} run_t;

static void run_open(run_t *r, brook_window_t win, brook_emit_mode_t emit) {
  assert_int_equal(brook_topology_new(&r->t, NULL), BROOK_OK);
  brook_stream_t *in = brook_source_push(r->t, "in", NULL);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_BOUNDED;
  wo.max_delay = 5;
  assert_int_equal(brook_source_set_watermark(in, &wo), BROOK_OK);
  brook_window_opts_t opts;
  brook_window_opts_init(&opts);
  opts.emit = emit;
  brook_aggregator_t agg = brook_agg_count();
  named_sink(brook_window_aggregate(in, &win, &agg, &opts), "out");
  assert_int_equal(test_driver_new(&r->d, r->t, NULL), BROOK_OK);
}

static void run_close(run_t *r) {
  brook_driver_free(r->d);
  brook_topology_free(r->t);
}

static uint64_t state_bytes(const run_t *r) {
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(r->d, &st), BROOK_OK);
  return st.state_bytes;
}

/* Pushes records [from, to): record i has key i % n_keys and time i / per_ms. */
static void push_range(run_t *r, uint64_t from, uint64_t to, uint32_t n_keys, uint32_t per_ms) {
  for (uint64_t i = from; i < to; i++) {
    char key[16];
    int klen = snprintf(key, sizeof(key), "k%u", (unsigned)(i % n_keys));
    brook_record_t rec = {
        .key = key, .key_len = (size_t)klen, .timestamp = (brook_time_t)(i / per_ms)};
    assert_int_equal(brook_driver_push(r->d, "in", &rec), BROOK_OK);
  }
  brook_driver_clear_output(r->d, "out");
}

/* state_bytes grows with the keys of an open tumbling window and is exact enough to see it. */
static void test_grows_with_keys(void **state) {
  (void)state;
  run_t r;
  run_open(&r, brook_window_tumbling(1000000), BROOK_EMIT_ON_CLOSE);
  uint64_t empty = state_bytes(&r);
  push_range(&r, 0, 100, 100, 1000);
  uint64_t small = state_bytes(&r);
  push_range(&r, 100, 20000, 20000, 1000);
  uint64_t big = state_bytes(&r);
  assert_true(small > empty);
  if (test_state_on_disk()) {
    /* On disk (a 4 KiB write cache) the operator's state memory does not grow with the
     * keys: they are in RocksDB, whose memtables and block cache are the task's. */
    assert_true(big < small + 20000 * 16);
  } else {
    /* 20,000 keys of a 16-byte accumulator: well over 16 bytes each, far less than 1 KiB. */
    assert_true(big > small + 20000 * 16);
    assert_true(big < small + 20000 * 1024);
  }
  assert_int_equal(brook_driver_end(r.d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(r.d, "out"), 20000);
  run_close(&r);
}

/* Over a long run the state follows the live windows: the peak over the second half of the
 * run is no more than 1.5x the peak over its first half. */
static void check_flat(brook_window_t win, brook_emit_mode_t emit) {
  run_t r;
  run_open(&r, win, emit);
  const uint64_t chunk = 4000, chunks = 16;
  uint64_t peak_first = 0, peak_second = 0;
  for (uint64_t c = 0; c < chunks; c++) {
    push_range(&r, c * chunk, (c + 1) * chunk, 200, 4);
    uint64_t b = state_bytes(&r);
    if (c == 0)
      continue; /* warming up */
    uint64_t *peak = c < chunks / 2 ? &peak_first : &peak_second;
    *peak = b > *peak ? b : *peak;
  }
  assert_true(peak_first > 0);
  if (peak_second * 2 > peak_first * 3)
    fail_msg("state grew: peak %llu bytes in the first half, %llu in the second",
             (unsigned long long)peak_first, (unsigned long long)peak_second);
  assert_int_equal(brook_driver_end(r.d), BROOK_OK);
  assert_int_equal(brook_driver_status(r.d), BROOK_OK);
  run_close(&r);
}

static void test_flat_tumbling(void **state) {
  (void)state;
  check_flat(brook_window_tumbling(100), BROOK_EMIT_ON_CLOSE);
  check_flat(brook_window_tumbling(100), BROOK_EMIT_ON_UPDATE);
}

static void test_flat_hopping(void **state) {
  (void)state;
  check_flat(brook_window_hopping(100, 30), BROOK_EMIT_ON_CLOSE);
  check_flat(brook_window_hopping(100, 30), BROOK_EMIT_ON_UPDATE);
}

static void test_flat_sliding(void **state) {
  (void)state;
  check_flat(brook_window_sliding(50), BROOK_EMIT_ON_CLOSE);
}

static void test_flat_session(void **state) {
  (void)state;
  check_flat(brook_window_session(20), BROOK_EMIT_ON_CLOSE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grows_with_keys), cmocka_unit_test(test_flat_tumbling),
      cmocka_unit_test(test_flat_hopping),    cmocka_unit_test(test_flat_sliding),
      cmocka_unit_test(test_flat_session),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
