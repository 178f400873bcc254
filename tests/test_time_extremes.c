/* Time arithmetic at the ends of brook_time_t (issue 11, item E): watermark minus delay, quiet
 * advance (watermark + quiet time), idle deadlines, the next tick, the skew bound (now +
 * ts_max_ahead) with timestamps and clocks at INT64_MIN / INT64_MAX. Everything saturates:
 * the values are asserted, and the sanitizer build (UBSan, halt_on_error) proves no signed
 * overflow happens on the way. Through the test driver, and through watermark.h directly for
 * what the driver cannot reach (the runtime's next tick, a wall clock stepping back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "core/alloc.h"
#include "driver_fixture.h"
#include "driver_helpers.h"
#include "time/watermark.h"

static driver_fixture_t g_fx;

static int teardown(void **state) {
  (void)state;
  driver_fixture_free(&g_fx);
  return 0;
}

static void build(const brook_watermark_opts_t *wo, brook_time_t start) {
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.error_policy = BROOK_ON_ERROR_SKIP;
  assert_int_equal(brook_topology_new(&g_fx.topo, &to), BROOK_OK);
  brook_stream_t *in = brook_source_push(g_fx.topo, "in", NULL);
  assert_int_equal(brook_source_set_watermark(in, wo), BROOK_OK);
  named_sink(in, "out");
  brook_driver_opts_t d;
  brook_driver_opts_init(&d);
  d.start_time = start;
  assert_int_equal(brook_driver_new(&g_fx.drv, g_fx.topo, &d), BROOK_OK);
}

static void push(size_t split, brook_time_t ts) {
  brook_record_t r = {.value = "v", .value_len = 1, .timestamp = ts};
  assert_int_equal(brook_driver_push_split(g_fx.drv, "in", split, &r), BROOK_OK);
}

#define WM() brook_driver_watermark(g_fx.drv, "in")

/* The bounded watermark (max - delay - 1) with the largest delay and extreme times. */
static void test_bounded_extremes(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.max_delay = INT64_MAX;
  build(&wo, 0);
  push(0, INT64_MIN);
  assert_int_equal(WM(), BROOK_TIME_MIN);
  push(0, -1);
  assert_int_equal(WM(), BROOK_TIME_MIN);
  push(0, INT64_MAX);
  assert_int_equal(WM(), -1); /* MAX - MAX - 1 */
}

/* Quiet advance from a watermark near the end of time stops at BROOK_TIME_MAX. */
static void test_quiet_advance_saturates(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.advance_when_quiet = 10;
  wo.idle_timeout = 5;
  build(&wo, 0);
  push(0, INT64_MAX - 20);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 15), BROOK_OK);
  assert_int_equal(WM(), INT64_MAX - 21 + 15);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 1000), BROOK_OK);
  assert_int_equal(WM(), BROOK_TIME_MAX);
}

/* A clock that starts at BROOK_TIME_MIN and runs past 0: the quiet time (now - last arrival)
 * would overflow. */
static void test_quiet_time_from_min_clock(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.advance_when_quiet = 1000;
  build(&wo, BROOK_TIME_MIN);
  push(0, 0);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, INT64_MAX), BROOK_OK); /* now -1 */
  assert_int_equal(WM(), INT64_MAX - 1);                                      /* -1 + MAX */
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10), BROOK_OK);        /* now 9 */
  assert_int_equal(WM(), INT64_MAX - 1); /* the quiet time saturates at INT64_MAX */
}

/* The skew bound near the end of processing time: now + ts_max_ahead saturates, so every
 * time is within it rather than wrapping to reject everything. */
static void test_skew_bound_near_max_clock(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.ts_max_ahead = BROOK_H;
  build(&wo, INT64_MAX - 5);
  push(0, INT64_MAX);
  assert_int_equal(WM(), INT64_MAX - 1);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(g_fx.drv, &st), BROOK_OK);
  assert_int_equal(st.records_out_of_bounds, 0);
}

/* A clock at BROOK_TIME_MIN: now + ts_max_ahead is -1, so INT64_MAX is too far ahead, and
 * INT64_MIN is below ts_min 0: both rejected, nothing wraps. */
static void test_lower_bound_at_min(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.ts_bounds = BROOK_TS_BOUNDS_ON;
  wo.ts_max_ahead = INT64_MAX;
  build(&wo, BROOK_TIME_MIN);
  push(0, INT64_MIN);
  push(0, INT64_MAX);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(g_fx.drv, &st), BROOK_OK);
  assert_int_equal(st.records_out_of_bounds, 2);
  assert_int_equal(WM(), BROOK_TIME_MIN);
}

/* The runtime's next tick (idle deadline, quiet advance) at the end of time, and a wall clock
 * that steps back: no overflow, no deadline in the past forever, no idleness from a negative
 * quiet time. */
static void test_next_tick_and_clock_steps(void **state) {
  (void)state;
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.idle_timeout = 1000;
  o.advance_when_quiet = 2000;
  bk_wm_gen_t g;
  bk_wm_gen_init(&g, bk_default_allocator(), &o);
  bk_wm_gen_start(&g, INT64_MAX - 10);
  assert_int_equal(bk_wm_next_tick(&g, INT64_MAX - 10), INT64_MAX); /* idle deadline saturates */
  bk_wm_split_t *s = bk_wm_split(&g, 0, INT64_MAX - 10);
  assert_non_null(s);
  brook_record_t r = {.timestamp = 100};
  bk_wm_observe(&g, s, 0, &r, 1, INT64_MAX - 10);
  assert_int_equal(bk_wm_next_tick(&g, INT64_MAX - 10), INT64_MAX);
  bk_wm_tick(&g, INT64_MAX);
  assert_false(g.splits[0].idle); /* quiet for 10 ms only */
  assert_int_equal(bk_wm_next_tick(&g, INT64_MAX), INT64_MAX);
  /* The clock steps back by a lot: a negative quiet time is not quiet. */
  bk_wm_tick(&g, INT64_MIN);
  assert_false(g.splits[0].idle);
  assert_int_equal(g.splits[0].wm, 99);
  bk_wm_combine(&g);
  assert_int_equal(g.wm, 99);
  bk_wm_gen_free(&g);

  /* Quiet already at the end of time: the next tick saturates instead of wrapping. */
  bk_wm_gen_init(&g, bk_default_allocator(), &o);
  bk_wm_gen_start(&g, 0);
  s = bk_wm_split(&g, 0, 0);
  assert_non_null(s);
  bk_wm_observe(&g, s, 0, &r, 1, 0);
  bk_wm_tick(&g, INT64_MAX - 1);
  assert_true(g.splits[0].idle);
  assert_int_equal(bk_wm_next_tick(&g, INT64_MAX - 1), INT64_MAX); /* now + 100 ms */
  bk_wm_tick(&g, INT64_MAX);
  assert_int_equal(g.splits[0].wm, BROOK_TIME_MAX); /* 99 + MAX */
  bk_wm_gen_free(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_bounded_extremes, teardown),
      cmocka_unit_test_teardown(test_quiet_advance_saturates, teardown),
      cmocka_unit_test_teardown(test_quiet_time_from_min_clock, teardown),
      cmocka_unit_test_teardown(test_skew_bound_near_max_clock, teardown),
      cmocka_unit_test_teardown(test_lower_bound_at_min, teardown),
      cmocka_unit_test(test_next_tick_and_clock_steps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
