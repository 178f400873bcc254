/* Idleness and the quiet-stream advance together (time.h), through the test driver: idleness
 * only lifts a split's hold on the minimum, while advance_when_quiet keeps moving the
 * watermark with the processing-time clock, also once every split (every input) is idle.
 * One and three splits, idle_timeout shorter and longer than advance_when_quiet, one source
 * and two sources merged. The same combinations run live in test_watermark_quiet_live.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "driver_fixture.h"
#include "driver_helpers.h"

static driver_fixture_t g_fx;

static int teardown(void **state) {
  (void)state;
  driver_fixture_free(&g_fx);
  return 0;
}

static void push_at(const char *src, size_t split, brook_time_t ts) {
  brook_record_t r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = ts};
  brook_err_t err = brook_driver_push_split(g_fx.drv, src, split, &r);
  if (err != BROOK_OK)
    fail_msg("push %s/%zu ts %lld: %s: %s", src, split, (long long)ts, brook_errname(err),
             brook_driver_last_error(g_fx.drv));
}

/* `n_sources` push sources ("s0", "s1") with idle_timeout `idle` and advance_when_quiet
 * `quiet`, merged, into a 1-minute tumbling count whose results reach sink "count". */
static void build(size_t n_sources, brook_time_t idle, brook_time_t quiet) {
  assert_int_equal(brook_topology_new(&g_fx.topo, NULL), BROOK_OK);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.idle_timeout = idle;
  wo.advance_when_quiet = quiet;
  brook_stream_t *ins[2];
  for (size_t i = 0; i < n_sources; i++) {
    char name[24];
    snprintf(name, sizeof(name), "s%zu", i);
    ins[i] = brook_source_push(g_fx.topo, name, NULL);
    assert_int_equal(brook_source_set_watermark(ins[i], &wo), BROOK_OK);
  }
  brook_stream_t *in = n_sources == 1 ? ins[0] : brook_merge(ins, n_sources);
  brook_aggregator_t count = brook_agg_count();
  brook_window_opts_t o;
  brook_window_opts_init(&o);
  o.name = "count";
  brook_window_t win = brook_window_tumbling(BROOK_MIN);
  named_sink(brook_window_aggregate(in, &win, &count, &o), "out");
  brook_driver_opts_t d;
  brook_driver_opts_init(&d);
  assert_int_equal(brook_driver_new(&g_fx.drv, g_fx.topo, &d), BROOK_OK);
}

/* Advances processing time 1 s at a time, up to `steps` times, until the window's result is
 * out; returns the steps taken (fails if it never came). */
static int advance_until_closed(int steps) {
  for (int i = 1; i <= steps; i++) {
    assert_int_equal(brook_driver_advance_time(g_fx.drv, BROOK_S), BROOK_OK);
    if (brook_driver_output_count(g_fx.drv, "out") > 0)
      return i;
  }
  fail_msg("the window [0, 60 s) never closed: after %d s the watermark of 'count' is %lld", steps,
           (long long)brook_driver_watermark(g_fx.drv, "count"));
  return -1;
}

static void assert_one_window_of(int64_t expected_count) {
  assert_int_equal(brook_driver_output_count(g_fx.drv, "out"), 1);
  const brook_record_t *r = brook_driver_output(g_fx.drv, "out", 0);
  brook_window_value_t h;
  const void *result = NULL;
  assert_int_equal(brook_window_parse(r, &h, &result), BROOK_OK);
  assert_int_equal(h.result_len, sizeof(int64_t));
  int64_t n;
  memcpy(&n, result, sizeof(n));
  assert_int_equal(h.start, 0);
  assert_int_equal(n, expected_count);
}

/* The reproduction: idle 10 s, quiet 5 s, one record at 10 s (pushed at processing
 * time 10 s), then 1 s x 120. Before the fix the watermark stopped at 18,999 once the split
 * went idle (at 20 s) and the window never closed. */
static void test_idle_longer_than_quiet(void **state) {
  (void)state;
  build(1, 10 * BROOK_S, 5 * BROOK_S);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10 * BROOK_S), BROOK_OK);
  push_at("s0", 0, 10 * BROOK_S);
  int steps = advance_until_closed(120);
  /* The watermark is 9,999 + quiet time; the window ends at 59,999: 50 s after the record. */
  assert_true(steps >= 50 && steps <= 51);
  assert_one_window_of(1);
}

/* idle 3 s < quiet 5 s: before the fix the watermark never moved at all (the split was idle
 * before quiet advance began). */
static void test_idle_shorter_than_quiet(void **state) {
  (void)state;
  build(1, 3 * BROOK_S, 5 * BROOK_S);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10 * BROOK_S), BROOK_OK);
  push_at("s0", 0, 10 * BROOK_S);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 6 * BROOK_S), BROOK_OK);
  assert_int_equal(brook_driver_watermark(g_fx.drv, "count"), 9999 + 6000);
  int steps = advance_until_closed(120);
  assert_true(steps >= 44 && steps <= 45);
  assert_one_window_of(1);
}

/* Without idleness the quiet advance closed the window already; it still does. */
static void test_quiet_without_idle(void **state) {
  (void)state;
  build(1, 0, 5 * BROOK_S);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10 * BROOK_S), BROOK_OK);
  push_at("s0", 0, 10 * BROOK_S);
  int steps = advance_until_closed(120);
  assert_true(steps >= 50 && steps <= 51);
  assert_one_window_of(1);
}

/* Three splits, records on all three, then all quiet and idle: the watermark is the minimum
 * of the three quiet-advancing watermarks, and keeps moving. */
static void three_splits(brook_time_t idle, brook_time_t quiet) {
  build(1, idle, quiet);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10 * BROOK_S), BROOK_OK);
  push_at("s0", 0, 10 * BROOK_S);
  push_at("s0", 1, 12 * BROOK_S);
  push_at("s0", 2, 11 * BROOK_S);
  assert_int_equal(brook_driver_watermark(g_fx.drv, "count"), 10 * BROOK_S - 1);
  int steps = advance_until_closed(120);
  /* The slowest split (event time 10 s at processing time 10 s) reaches 59,999 after 50 s. */
  assert_true(steps >= 50 && steps <= 51);
  assert_one_window_of(3);
  /* And it goes on moving with the clock. */
  brook_time_t before = brook_driver_watermark(g_fx.drv, "count");
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 3 * BROOK_S), BROOK_OK);
  assert_int_equal(brook_driver_watermark(g_fx.drv, "count"), before + 3 * BROOK_S);
}

static void test_three_splits_idle_longer(void **state) {
  (void)state;
  three_splits(10 * BROOK_S, 5 * BROOK_S);
}

static void test_three_splits_idle_shorter(void **state) {
  (void)state;
  three_splits(3 * BROOK_S, 5 * BROOK_S);
}

/* Three splits, only split 1 ever gets a record: the other two hold nothing back once idle,
 * and (with no record, hence nothing to advance from) do not stop the quiet advance of the
 * split that had one. */
static void test_three_splits_one_with_records(void **state) {
  (void)state;
  build(1, 3 * BROOK_S, 5 * BROOK_S);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10 * BROOK_S), BROOK_OK);
  push_at("s0", 1, 10 * BROOK_S);
  int steps = advance_until_closed(120);
  assert_true(steps >= 50 && steps <= 51);
  assert_one_window_of(1);
}

/* Idleness still lifts a split's hold: an idle split whose quiet watermark lags does not hold
 * back an active split that runs ahead of processing time. */
static void test_idle_split_does_not_hold_active_one(void **state) {
  (void)state;
  build(1, 3 * BROOK_S, 5 * BROOK_S);
  push_at("s0", 0, 0);
  push_at("s0", 1, 0);
  /* Split 1 keeps receiving records far ahead of the clock; split 0 goes quiet and idle. */
  for (int i = 1; i <= 10; i++) {
    assert_int_equal(brook_driver_advance_time(g_fx.drv, BROOK_S), BROOK_OK);
    push_at("s0", 1, i * 10 * BROOK_S);
  }
  /* Split 0's quiet watermark is only -1 + 7 s; split 1's is 99,999 and rules. */
  assert_int_equal(brook_driver_watermark(g_fx.drv, "count"), 100 * BROOK_S - 1);
  assert_one_window_of(7); /* 0, 0 and 10..50 s */
}

/* Two sources merged, both idle and quiet: the merge's watermark keeps moving. */
static void test_two_sources_all_idle(void **state) {
  (void)state;
  build(2, 3 * BROOK_S, 5 * BROOK_S);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10 * BROOK_S), BROOK_OK);
  push_at("s0", 0, 10 * BROOK_S);
  push_at("s1", 0, 15 * BROOK_S);
  int steps = advance_until_closed(120);
  assert_true(steps >= 50 && steps <= 51);
  assert_one_window_of(2);
}

/* Idle without quiet advance: nothing moves the watermark once every input is idle (as
 * before: idleness alone claims no progress). */
static void test_idle_without_quiet_keeps_watermark(void **state) {
  (void)state;
  build(2, 3 * BROOK_S, 0);
  push_at("s0", 0, 10 * BROOK_S);
  push_at("s1", 0, 20 * BROOK_S);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 100 * BROOK_S), BROOK_OK);
  assert_int_equal(brook_driver_watermark(g_fx.drv, "count"), 10 * BROOK_S - 1);
  assert_int_equal(brook_driver_output_count(g_fx.drv, "out"), 0);
}

/* The README's event-time example: idle after 30 s, moving with the clock after 1 min. The
 * split is idle long before the quiet advance starts; the window still closes. */
static void test_readme_example_config(void **state) {
  (void)state;
  build(1, 30 * BROOK_S, BROOK_MIN);
  assert_int_equal(brook_driver_advance_time(g_fx.drv, 10 * BROOK_S), BROOK_OK);
  push_at("s0", 0, 10 * BROOK_S);
  /* Quiet advance from 9,999 once quiet for 60 s; the window ends at 59,999: 60 s after the
   * record the watermark is 69,999. */
  int steps = advance_until_closed(120);
  assert_int_equal(steps, 60);
  assert_one_window_of(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_idle_longer_than_quiet, teardown),
      cmocka_unit_test_teardown(test_idle_shorter_than_quiet, teardown),
      cmocka_unit_test_teardown(test_quiet_without_idle, teardown),
      cmocka_unit_test_teardown(test_three_splits_idle_longer, teardown),
      cmocka_unit_test_teardown(test_three_splits_idle_shorter, teardown),
      cmocka_unit_test_teardown(test_three_splits_one_with_records, teardown),
      cmocka_unit_test_teardown(test_idle_split_does_not_hold_active_one, teardown),
      cmocka_unit_test_teardown(test_two_sources_all_idle, teardown),
      cmocka_unit_test_teardown(test_idle_without_quiet_keeps_watermark, teardown),
      cmocka_unit_test_teardown(test_readme_example_config, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
