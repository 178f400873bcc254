/* Timestamp bounds and the late-record warning (time.h) on non-Kafka sources, through the test
 * driver: off by default (the driver's clock starts at 0); ts_max_ahead and ts_bounds ON when
 * set; a record outside them is malformed under every error policy (fail, skip, route with the
 * reason) and never moves the watermark, whether the time is the record's own or an
 * extractor's; validation and the older struct size; records behind their split's watermark
 * counted, and a mass of them logged with the split and watermark, rate-limited. The Kafka
 * defaults are tested in test_kafka_timestamps.c. */
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
#include "log_capture.h"

static driver_fixture_t g_fx;
static log_capture_t g_log;

static int setup(void **state) {
  (void)state;
  log_capture_init(&g_log);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  driver_fixture_free(&g_fx);
  log_capture_free(&g_log);
  return 0;
}

/* A push source "in" with watermark options `wo` (NULL: none) under `policy`, into sink
 * "out"; the error stream (ROUTE) into sink "errs". */
static void build(brook_error_policy_t policy, const brook_watermark_opts_t *wo) {
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.error_policy = policy;
  assert_int_equal(brook_topology_new(&g_fx.topo, &to), BROOK_OK);
  brook_stream_t *in = brook_source_push(g_fx.topo, "in", NULL);
  if (wo)
    assert_int_equal(brook_source_set_watermark(in, wo), BROOK_OK);
  named_sink(in, "out");
  if (policy == BROOK_ON_ERROR_ROUTE)
    named_sink(brook_error_stream(g_fx.topo), "errs");
  brook_driver_opts_t d;
  brook_driver_opts_init(&d);
  d.log = log_capture_cb;
  d.log_opaque = &g_log;
  assert_int_equal(brook_driver_new(&g_fx.drv, g_fx.topo, &d), BROOK_OK);
}

static brook_err_t push(size_t split, brook_time_t ts) {
  brook_record_t r = {.value = "v", .value_len = 1, .timestamp = ts};
  return brook_driver_push_split(g_fx.drv, "in", split, &r);
}

static brook_runtime_stats_t stats(void) {
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(g_fx.drv, &st), BROOK_OK);
  return st;
}

#define WM() brook_driver_watermark(g_fx.drv, "in")

/* Without options nothing is checked, as before: the driver's clock starts at 0 and tests push
 * any time, negative ones included. */
static void test_default_checks_nothing(void **state) {
  (void)state;
  build(BROOK_ON_ERROR_FAIL, NULL);
  assert_int_equal(push(0, -5), BROOK_OK);
  assert_int_equal(push(0, 100 * 365 * 24 * BROOK_H), BROOK_OK);
  assert_int_equal(brook_driver_output_count(g_fx.drv, "out"), 2);
  assert_int_equal(stats().records_out_of_bounds, 0);
}

static void max_ahead_1h(brook_watermark_opts_t *wo) {
  brook_watermark_opts_init(wo);
  wo->ts_max_ahead = BROOK_H;
}

static void test_max_ahead_fails(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  max_ahead_1h(&wo);
  build(BROOK_ON_ERROR_FAIL, &wo);
  assert_int_equal(push(0, BROOK_H), BROOK_OK); /* exactly the bound: accepted */
  assert_int_equal(push(0, BROOK_H + 1), BROOK_ERR_CORRUPT);
  const char *msg = brook_driver_last_error(g_fx.drv);
  if (!strstr(msg, "timestamp 3600001 is more than 1 h ahead of processing time 0"))
    fail_msg("message: %s", msg);
  assert_int_equal(WM(), BROOK_H - 1);
  assert_int_equal(stats().records_out_of_bounds, 1);
}

static void test_max_ahead_skips_without_moving_watermark(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  max_ahead_1h(&wo);
  build(BROOK_ON_ERROR_SKIP, &wo);
  assert_int_equal(push(0, 1000), BROOK_OK);
  assert_int_equal(push(0, INT64_MAX), BROOK_OK);
  assert_int_equal(push(0, 2 * BROOK_H), BROOK_OK);
  assert_int_equal(WM(), 999);
  assert_int_equal(push(0, 2000), BROOK_OK); /* not late: the watermark did not move */
  assert_int_equal(WM(), 1999);
  brook_runtime_stats_t st = stats();
  assert_int_equal(st.records_out_of_bounds, 2);
  assert_int_equal(st.records_skipped, 2);
  assert_int_equal(st.records_behind_watermark, 0);
  assert_int_equal(brook_driver_output_count(g_fx.drv, "out"), 2);
  /* The bound follows processing time. */
  assert_int_equal(brook_driver_advance_time(g_fx.drv, BROOK_H), BROOK_OK);
  assert_int_equal(push(0, 2 * BROOK_H), BROOK_OK);
  assert_int_equal(brook_driver_output_count(g_fx.drv, "out"), 3);
  assert_int_equal(WM(), 2 * BROOK_H - 1);
}

static void test_max_ahead_routes_with_reason(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  max_ahead_1h(&wo);
  wo.ts_bounds = BROOK_TS_BOUNDS_ON; /* and negative times */
  build(BROOK_ON_ERROR_ROUTE, &wo);
  assert_int_equal(push(0, INT64_MAX), BROOK_OK);
  assert_int_equal(push(0, INT64_MIN), BROOK_OK);
  assert_int_equal(WM(), BROOK_TIME_MIN);
  assert_int_equal(brook_driver_output_count(g_fx.drv, "errs"), 2);
  static const char *const expected[] = {
      "timestamp 9223372036854775807 is more than 1 h ahead of processing time 0",
      "timestamp -9223372036854775808 is negative"};
  for (size_t i = 0; i < 2; i++) {
    const brook_record_t *r = brook_driver_output(g_fx.drv, "errs", i);
    const char *msg = NULL, *code = NULL;
    for (size_t h = 0; h < r->header_count; h++) {
      if (strcmp(r->headers[h].name, "brook.error.message") == 0)
        msg = r->headers[h].value;
      if (strcmp(r->headers[h].name, "brook.error") == 0)
        code = r->headers[h].value;
    }
    assert_non_null(msg);
    assert_non_null(code);
    assert_memory_equal(code, "BROOK_ERR_CORRUPT", 17);
    assert_memory_equal(msg, expected[i], strlen(expected[i]));
  }
}

/* ON: negative times rejected (ts_min 0 by default); ts_min moves the lower bound, and
 * BROOK_TIME_MIN removes it. Without ts_max_ahead a non-Kafka source has no upper bound. */
static void test_bounds_on_lower_bound(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.ts_bounds = BROOK_TS_BOUNDS_ON;
  build(BROOK_ON_ERROR_SKIP, &wo);
  assert_int_equal(push(0, -5), BROOK_OK);
  assert_int_equal(push(0, 0), BROOK_OK);
  assert_int_equal(push(0, INT64_MAX - 1), BROOK_OK);
  assert_int_equal(stats().records_out_of_bounds, 1);
  assert_int_equal(brook_driver_output_count(g_fx.drv, "out"), 2);
  teardown(NULL);
  setup(NULL);

  wo.ts_min = 1000;
  build(BROOK_ON_ERROR_FAIL, &wo);
  assert_int_equal(push(0, 999), BROOK_ERR_CORRUPT);
  if (!strstr(brook_driver_last_error(g_fx.drv),
              "timestamp 999 is below the smallest accepted 1000"))
    fail_msg("message: %s", brook_driver_last_error(g_fx.drv));
  teardown(NULL);
  setup(NULL);

  wo.ts_min = BROOK_TIME_MIN;
  build(BROOK_ON_ERROR_FAIL, &wo);
  assert_int_equal(push(0, INT64_MIN), BROOK_OK);
}

static void test_bounds_off_ignores_max_ahead(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  max_ahead_1h(&wo);
  wo.ts_bounds = BROOK_TS_BOUNDS_OFF;
  build(BROOK_ON_ERROR_FAIL, &wo);
  assert_int_equal(push(0, -5), BROOK_OK);
  assert_int_equal(push(0, 10 * BROOK_H), BROOK_OK);
  assert_int_equal(WM(), 10 * BROOK_H - 1);
}

/* The extractor's time is what is checked. */
static brook_err_t time_from_value(const brook_record_t *rec, brook_time_t *ts, void *opaque) {
  (void)opaque;
  char buf[32];
  size_t n = rec->value_len < sizeof(buf) - 1 ? rec->value_len : sizeof(buf) - 1;
  memcpy(buf, rec->value, n);
  buf[n] = '\0';
  *ts = strtoll(buf, NULL, 10);
  return BROOK_OK;
}

static void test_extracted_time_checked(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  max_ahead_1h(&wo);
  wo.timestamp = time_from_value;
  build(BROOK_ON_ERROR_SKIP, &wo);
  brook_record_t ok = {.value = "500", .value_len = 3, .timestamp = INT64_MAX};
  brook_record_t bad = {.value = "99999999999", .value_len = 11, .timestamp = 0};
  assert_int_equal(brook_driver_push(g_fx.drv, "in", &ok), BROOK_OK);
  assert_int_equal(brook_driver_push(g_fx.drv, "in", &bad), BROOK_OK);
  assert_int_equal(WM(), 499);
  assert_int_equal(stats().records_out_of_bounds, 1);
  assert_int_equal(brook_driver_output_count(g_fx.drv, "out"), 1);
}

/* A custom strategy never sees a rejected record. */
static brook_time_t custom_wm(const brook_record_t *rec, size_t split, brook_time_t current,
                              void *opaque) {
  (void)split;
  (void)current;
  (*(int *)opaque)++;
  return rec->timestamp;
}

static void test_custom_strategy_never_sees_rejected(void **state) {
  (void)state;
  int calls = 0;
  brook_watermark_opts_t wo;
  max_ahead_1h(&wo);
  wo.kind = BROOK_WATERMARK_CUSTOM;
  wo.custom = custom_wm;
  wo.custom_opaque = &calls;
  build(BROOK_ON_ERROR_SKIP, &wo);
  assert_int_equal(push(0, 10), BROOK_OK);
  assert_int_equal(push(0, INT64_MAX), BROOK_OK);
  assert_int_equal(calls, 1);
  assert_int_equal(WM(), 10);
}

static void test_validation(void **state) {
  (void)state;
  assert_int_equal(brook_topology_new(&g_fx.topo, NULL), BROOK_OK);
  brook_stream_t *in = brook_source_push(g_fx.topo, "in", NULL);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.ts_max_ahead = -1;
  assert_int_equal(brook_source_set_watermark(in, &wo), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(g_fx.topo), "ts_max_ahead must be >= 0"));
  brook_topology_free(g_fx.topo);
  assert_int_equal(brook_topology_new(&g_fx.topo, NULL), BROOK_OK);
  in = brook_source_push(g_fx.topo, "in", NULL);
  brook_watermark_opts_init(&wo);
  wo.ts_bounds = (brook_ts_bounds_t)7;
  assert_int_equal(brook_source_set_watermark(in, &wo), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(g_fx.topo), "unknown ts_bounds 7"));
}

/* A caller built before the bounds existed passes the older, smaller struct: AUTO. */
static void test_older_struct_size(void **state) {
  (void)state;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.ts_bounds = BROOK_TS_BOUNDS_ON; /* beyond the old size: ignored */
  wo.struct_size = (uint32_t)offsetof(brook_watermark_opts_t, ts_bounds);
  build(BROOK_ON_ERROR_FAIL, &wo);
  assert_int_equal(push(0, -5), BROOK_OK);
}

/* ---- late records ---- */

static size_t count_lines(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p++)
    n++;
  return n;
}

static void test_mass_of_late_records_is_logged(void **state) {
  (void)state;
  build(BROOK_ON_ERROR_FAIL, NULL);
  assert_int_equal(push(2, 100 * BROOK_S), BROOK_OK);
  for (int i = 0; i < BROOK_LATE_WARN_RECORDS - 1; i++)
    assert_int_equal(push(2, i), BROOK_OK);
  assert_int_equal(stats().records_behind_watermark, BROOK_LATE_WARN_RECORDS - 1);
  assert_int_equal(count_lines(log_capture_text(&g_log), "behind its watermark"), 0);
  assert_int_equal(push(2, 99999), BROOK_OK); /* at the watermark: late too */
  const char *log = log_capture_text(&g_log);
  if (!strstr(log, "in: split 2: 100 records within 10 s arrived at or behind its watermark "
                   "99999 (newest event time seen 100000)"))
    fail_msg("log: %s", log);
  /* Rate-limited: no second warning within the period, whatever the split. */
  for (int i = 0; i < 3 * BROOK_LATE_WARN_RECORDS; i++)
    assert_int_equal(push(i % 2 ? 2 : 0, i % 2 ? 5 : BROOK_TIME_MIN), BROOK_OK);
  assert_int_equal(count_lines(log_capture_text(&g_log), "behind its watermark"), 1);
  /* A period later, a new mass warns again. */
  assert_int_equal(brook_driver_advance_time(g_fx.drv, BROOK_LATE_WARN_PERIOD), BROOK_OK);
  for (int i = 0; i < BROOK_LATE_WARN_RECORDS; i++)
    assert_int_equal(push(2, 7), BROOK_OK);
  assert_int_equal(count_lines(log_capture_text(&g_log), "behind its watermark"), 2);
  /* Split 0's records at BROOK_TIME_MIN before its first watermark are not behind anything. */
  assert_int_equal(stats().records_behind_watermark,
                   2 * BROOK_LATE_WARN_RECORDS + 3 * BROOK_LATE_WARN_RECORDS / 2);
}

/* A trickle stays below the threshold: counted, not logged. */
static void test_few_late_records_not_logged(void **state) {
  (void)state;
  build(BROOK_ON_ERROR_FAIL, NULL);
  assert_int_equal(push(0, 100 * BROOK_S), BROOK_OK);
  for (int k = 0; k < 5; k++) {
    for (int i = 0; i < BROOK_LATE_WARN_RECORDS / 2; i++)
      assert_int_equal(push(0, i), BROOK_OK);
    assert_int_equal(brook_driver_advance_time(g_fx.drv, BROOK_LATE_WARN_PERIOD), BROOK_OK);
  }
  assert_int_equal(stats().records_behind_watermark, 5 * BROOK_LATE_WARN_RECORDS / 2);
  assert_int_equal(count_lines(log_capture_text(&g_log), "behind its watermark"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_default_checks_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_ahead_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_ahead_skips_without_moving_watermark, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_max_ahead_routes_with_reason, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounds_on_lower_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounds_off_ignores_max_ahead, setup, teardown),
      cmocka_unit_test_setup_teardown(test_extracted_time_checked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_custom_strategy_never_sees_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_older_struct_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mass_of_late_records_is_logged, setup, teardown),
      cmocka_unit_test_setup_teardown(test_few_late_records_not_logged, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
