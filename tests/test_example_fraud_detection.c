/* The fraud_detection example's detection (examples/fraud_detection/pipeline.c,
 * pipeline_detect) under the test driver, fed by a push source instead of Kafka: the alerts
 * it raises (exact texts), amounts that must be dead-lettered (not a whole number of cents,
 * out of the documented range), and totals that cannot wrap however large the amounts
 * (11 payments of 18 digits in one window used to overflow the int64_t total). */
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
#include "pipeline.h"

/* 2026-01-01 00:00:00 UTC: windows print as HH:MM:SS of that day. */
#define T0 INT64_C(1767225600000)
#define MAX_18_DIGITS "999999999999999999"
/* INT64_MAX cents, the largest total an alert can show. */
#define SATURATED_TOTAL "total>=92233720368547758.07"

typedef struct fixture {
  pipeline_counts_t counts;
  collect_t alerts, dead;
  brook_topology_t *t;
  brook_driver_t *d;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  pipeline_counts_init(&f->counts);
  collect_init(&f->alerts);
  collect_init(&f->dead);
  f->t = collect_topology(BROOK_ON_ERROR_ROUTE); /* as main.c: bad payments to the DLQ */
  brook_stream_t *payments = brook_source_push(f->t, "payments", NULL);
  assert_non_null(payments);
  brook_stream_t *alerts = pipeline_detect(payments, &f->counts);
  assert_non_null(alerts);
  assert_int_equal(collect_sink(alerts, &f->alerts), BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(f->t), &f->dead), BROOK_OK);
  assert_int_equal(brook_driver_new(&f->d, f->t, NULL), BROOK_OK);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  brook_driver_free(f->d);
  brook_topology_free(f->t);
  collect_free(&f->alerts);
  collect_free(&f->dead);
  pipeline_counts_free(&f->counts);
  free(f);
  collect_strings_free();
  return 0;
}

/* One payment as brook-paygen writes it: key = card, value "card,cents,merchant,time_ms",
 * timestamp = time_ms. */
static void pay(fixture_t *f, const char *card, const char *cents, brook_time_t ts) {
  const char *text = collect_strf("%s,%s,grocery,%lld", card, cents, (long long)ts);
  brook_record_t rec = {.key = card,
                        .key_len = strlen(card),
                        .value = text,
                        .value_len = strlen(text),
                        .timestamp = ts};
  assert_int_equal(brook_driver_push(f->d, "payments", &rec), BROOK_OK);
}

static void end(fixture_t *f) {
  assert_int_equal(brook_driver_end(f->d), BROOK_OK);
  assert_int_equal(brook_driver_status(f->d), BROOK_OK);
}

/* The six hopping windows (60 s every 10 s) that contain [T0, T0 + 10 s), in order of start:
 * [23:59:10,00:00:10) ... [00:00:00,00:01:00). */
static const char *const first_slice_windows[] = {
    "window=[23:59:10,00:00:10)", "window=[23:59:20,00:00:20)", "window=[23:59:30,00:00:30)",
    "window=[23:59:40,00:00:40)", "window=[23:59:50,00:00:50)", "window=[00:00:00,00:01:00)"};

/* ---- alerts, exactly ---- */

static void test_small_burst_and_large_payment_alert(void **state) {
  fixture_t *f = *state;
  for (int i = 0; i < 6; i++) /* six payments of 1.00 within 6 s: too many */
    pay(f, "card-00001", "100", T0 + i * 1000);
  pay(f, "card-00002", "250000", T0 + 500); /* 2500.00 at once: too large */
  pay(f, "card-00003", "249999", T0 + 700); /* 2499.99: nothing */
  end(f);
  assert_int_equal(f->alerts.n, 12);
  for (size_t w = 0; w < 6; w++) {
    /* Windows close in order of end; within a window's results cards come in key order. */
    assert_string_equal(
        collect_value(&f->alerts, 2 * w),
        collect_strf("card-00001 too_many count=6 total=6.00 %s", first_slice_windows[w]));
    assert_string_equal(
        collect_value(&f->alerts, 2 * w + 1),
        collect_strf("card-00002 too_large count=1 total=2500.00 %s", first_slice_windows[w]));
  }
  assert_int_equal(f->dead.n, 0);
  assert_int_equal(f->counts.alerts, 12);
  assert_int_equal(f->counts.alerted.n, 2);
}

/* ---- totals that would not fit in an int64_t ---- */

/* The case: 11 payments of 18 digits (9,999,999,999,999,999.99 each) in one window
 * add up to more than INT64_MAX cents. The total saturates and the alert says so. */
static void test_eleven_18_digit_payments_saturate(void **state) {
  fixture_t *f = *state;
  for (int i = 0; i < 11; i++)
    pay(f, "card-00007", MAX_18_DIGITS, T0 + i * 100);
  end(f);
  assert_int_equal(f->dead.n, 0);
  assert_int_equal(f->alerts.n, 6);
  for (size_t w = 0; w < 6; w++)
    assert_string_equal(collect_value(&f->alerts, w),
                        collect_strf("card-00007 too_many,too_large count=11 " SATURATED_TOTAL
                                     " %s",
                                     first_slice_windows[w]));
}

/* The same total split over two 10-s slices: each slice's sum fits, their merge does not.
 * Windows holding both slices saturate; the others show their exact sums. */
static void test_slice_merge_saturates(void **state) {
  fixture_t *f = *state;
  for (int i = 0; i < 6; i++) /* [00:00:00, 00:00:10) */
    pay(f, "card-00008", MAX_18_DIGITS, T0 + i * 100);
  for (int i = 0; i < 5; i++) /* [00:00:10, 00:00:20) */
    pay(f, "card-00008", MAX_18_DIGITS, T0 + 10000 + i * 100);
  end(f);
  assert_int_equal(f->dead.n, 0);
  static const char *const expected[] = {
      "card-00008 too_many,too_large count=6 total=59999999999999999.94 "
      "window=[23:59:10,00:00:10)",
      "card-00008 too_many,too_large count=11 " SATURATED_TOTAL " window=[23:59:20,00:00:20)",
      "card-00008 too_many,too_large count=11 " SATURATED_TOTAL " window=[23:59:30,00:00:30)",
      "card-00008 too_many,too_large count=11 " SATURATED_TOTAL " window=[23:59:40,00:00:40)",
      "card-00008 too_many,too_large count=11 " SATURATED_TOTAL " window=[23:59:50,00:00:50)",
      "card-00008 too_many,too_large count=11 " SATURATED_TOTAL " window=[00:00:00,00:01:00)",
      "card-00008 too_large count=5 total=49999999999999999.95 window=[00:00:10,00:01:10)",
  };
  collect_assert_values(&f->alerts, expected, sizeof(expected) / sizeof(expected[0]));
}

/* ---- amounts that are not amounts ---- */

static void test_bad_amounts_are_dead_lettered(void **state) {
  fixture_t *f = *state;
  static const struct {
    const char *cents, *message;
  } bad[] = {
      {"1000000000000000000",
       "amount '1000000000000000000' is out of range: 1..999999999999999999 cents"},
      {"99999999999999999999999", "amount '99999999999999999999999' is out of range: "
                                  "1..999999999999999999 cents"},
      {"0", "amount '0' is out of range: 1..999999999999999999 cents"},
      {"000", "amount '000' is out of range: 1..999999999999999999 cents"},
      {"12.50", "amount '12.50' is not a whole number of cents"},
      {"-5", "amount '-5' is not a whole number of cents"},
      {"+5", "amount '+5' is not a whole number of cents"},
      {" 5", "amount ' 5' is not a whole number of cents"},
      {"", "amount '' is not a whole number of cents"},
  };
  size_t n = sizeof(bad) / sizeof(bad[0]);
  for (size_t i = 0; i < n; i++)
    pay(f, "card-00009", bad[i].cents, T0 + (brook_time_t)i);
  pay(f, "card-00009", "000000000000000001", T0 + 100); /* 18 digits, value 0.01: fine */
  end(f);
  assert_int_equal(f->dead.n, n);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(collect_header(&f->dead, i, "brook.error.operator"), "parse_payment");
    assert_string_equal(collect_header(&f->dead, i, "brook.error.message"), bad[i].message);
  }
  assert_int_equal(f->alerts.n, 0);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(f->d, &st), BROOK_OK);
  assert_int_equal(st.records_routed, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_small_burst_and_large_payment_alert, setup, teardown),
      cmocka_unit_test_setup_teardown(test_eleven_18_digit_payments_saturate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slice_merge_saturates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_amounts_are_dead_lettered, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
