/* The custom_operator example's heartbeat-absence detector (examples/custom_operator) under
 * the test driver: SILENT exactly when the watermark reaches last heartbeat + silence, BACK on
 * the next heartbeat, out-of-order heartbeats that must not move a deadline, the periodic
 * report on processing time (and its final one at the end), forgetting silent devices,
 * several devices, keyless records, and bad configuration. This is also how to test an
 * operator of your own: push records, move the clock, read exactly what came out. */
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
#include "custom_operator.h"

#define SILENCE 30000
#define REPORT_EVERY 60000
#define FORGET_AFTER 120000

typedef struct fixture {
  collect_t events, reports;
  brook_topology_t *t;
  brook_driver_t *d;
} fixture_t;

/* A detector with `config` (NULL: silence 30 s, reports every 60 s, forget after 120 s),
 * fed by push source "heartbeats", under a driver whose clock starts at 0. Returns the
 * status of brook_driver_new. */
static brook_err_t build(fixture_t *f, const char *const *config) {
  static const char *const defaults[] = {
      "silence", "30000", "report_every", "60000", "forget_after", "120000", NULL};
  collect_init(&f->events);
  collect_init(&f->reports);
  f->t = collect_topology(BROOK_ON_ERROR_SKIP);
  brook_stream_t *in = brook_source_push(f->t, "heartbeats", NULL);
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  o.name = "heartbeat_watch";
  o.config = config ? config : defaults;
  o.n_outputs = 2;
  brook_stream_t *outs[2] = {NULL, NULL};
  assert_int_equal(brook_operator_add(&in, 1, &heartbeat_watch_operator, NULL, &o, outs), BROOK_OK);
  assert_int_equal(collect_sink(outs[0], &f->events), BROOK_OK);
  assert_int_equal(collect_sink(outs[1], &f->reports), BROOK_OK);
  return brook_driver_new(&f->d, f->t, NULL);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(build(f, NULL), BROOK_OK);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  brook_driver_free(f->d);
  brook_topology_free(f->t);
  collect_free(&f->events);
  collect_free(&f->reports);
  free(f);
  return 0;
}

static void beat(fixture_t *f, const char *device, brook_time_t ts) {
  brook_record_t rec = {.key = device, .key_len = device ? strlen(device) : 0, .timestamp = ts};
  assert_int_equal(brook_driver_push(f->d, "heartbeats", &rec), BROOK_OK);
}

static void advance(fixture_t *f, brook_time_t ms) {
  assert_int_equal(brook_driver_advance_time(f->d, ms), BROOK_OK);
}

/* Asserts that event i is (kind, device, timestamp, last_seen, silent_ms). */
static void assert_event(const fixture_t *f, size_t i, heartbeat_event_kind_t kind,
                         const char *device, brook_time_t ts, brook_time_t last_seen,
                         brook_time_t silent_ms) {
  assert_true(i < f->events.n);
  const collect_rec_t *r = &f->events.recs[i];
  assert_string_equal(collect_key(&f->events, i), device);
  assert_int_equal(r->value_len, sizeof(heartbeat_event_t));
  heartbeat_event_t e;
  memcpy(&e, r->value, sizeof(e));
  assert_int_equal(e.kind, kind);
  assert_int_equal(r->timestamp, ts);
  assert_int_equal(e.last_seen, last_seen);
  assert_int_equal(e.silent_ms, silent_ms);
}

/* Asserts that report i is (timestamp, devices, silent, heartbeats, watermark). */
static void assert_report(const fixture_t *f, size_t i, brook_time_t ts, uint64_t devices,
                          uint64_t silent, uint64_t heartbeats, brook_time_t watermark) {
  assert_true(i < f->reports.n);
  const collect_rec_t *r = &f->reports.recs[i];
  assert_int_equal(r->key_len, 0);
  assert_int_equal(r->value_len, sizeof(heartbeat_report_t));
  heartbeat_report_t rep;
  memcpy(&rep, r->value, sizeof(rep));
  assert_int_equal(r->timestamp, ts);
  assert_int_equal(rep.devices, devices);
  assert_int_equal(rep.silent, silent);
  assert_int_equal(rep.heartbeats, heartbeats);
  assert_int_equal(rep.watermark, watermark);
}

/* ---- the event-time timer: SILENT at last heartbeat + silence, not a millisecond before ---- */

static void test_silent_exactly_at_the_deadline(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-a", 0);
  beat(f, "pump-b", 0);
  for (brook_time_t ts = 10000; ts <= 30000; ts += 10000)
    beat(f, "pump-b", ts); /* b keeps beating: its deadline moves, a's stays at 30000 */
  /* The watermark is the newest heartbeat - 1 = 29999: a's deadline is not reached. */
  assert_int_equal(brook_driver_watermark(f->d, "heartbeat_watch"), 29999);
  assert_int_equal(f->events.n, 0);
  beat(f, "pump-b", 30001); /* watermark 30000 */
  assert_int_equal(f->events.n, 1);
  assert_event(f, 0, HEARTBEAT_SILENT, "pump-a", 30000, 0, SILENCE);
  /* b's heartbeats keep it alive; a is alerted once, however far the watermark goes. */
  for (brook_time_t ts = 40000; ts <= 100000; ts += 10000)
    beat(f, "pump-b", ts);
  assert_int_equal(f->events.n, 1);
}

static void test_back_on_the_next_heartbeat_then_silent_again(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-a", 1000);
  beat(f, "pump-b", 31001); /* watermark 31000: a is silent since 1000 */
  assert_int_equal(f->events.n, 1);
  assert_event(f, 0, HEARTBEAT_SILENT, "pump-a", 31000, 1000, SILENCE);
  beat(f, "pump-a", 45000);
  assert_int_equal(f->events.n, 2);
  assert_event(f, 1, HEARTBEAT_BACK, "pump-a", 45000, 1000, 44000);
  beat(f, "pump-a", 46000); /* alive: no event */
  assert_int_equal(f->events.n, 2);
  beat(f, "pump-c", 76001); /* watermark 76000 = 46000 + silence */
  assert_int_equal(f->events.n, 4);
  /* b's previous heartbeat was 31001, so it went quiet at 61001, before a did: deadlines
   * fire in order of time. */
  assert_event(f, 2, HEARTBEAT_SILENT, "pump-b", 61001, 31001, SILENCE);
  assert_event(f, 3, HEARTBEAT_SILENT, "pump-a", 76000, 46000, SILENCE);
}

/* Timers fire in time order, so silences come out in the order they began. */
static void test_several_devices_in_deadline_order(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-c", 3000);
  beat(f, "pump-a", 1000);
  beat(f, "pump-b", 2000);
  beat(f, "clock", 40000); /* watermark 39999: all three are due */
  assert_int_equal(f->events.n, 3);
  assert_event(f, 0, HEARTBEAT_SILENT, "pump-a", 31000, 1000, SILENCE);
  assert_event(f, 1, HEARTBEAT_SILENT, "pump-b", 32000, 2000, SILENCE);
  assert_event(f, 2, HEARTBEAT_SILENT, "pump-c", 33000, 3000, SILENCE);
}

/* With several splits (Kafka partitions) the watermark is their minimum: a partition that
 * lags behind (a slow producer, a consumer catching up) holds the silence back until its
 * heartbeats have arrived, so a device on it is not declared silent by mistake. */
static void test_lagging_split_holds_the_silence_back(void **state) {
  fixture_t *f = *state;
  brook_record_t a0 = {.key = "pump-a", .key_len = 6, .timestamp = 0};
  brook_record_t b10 = {.key = "pump-b", .key_len = 6, .timestamp = 10000};
  brook_record_t c40 = {.key = "pump-c", .key_len = 6, .timestamp = 40000};
  brook_record_t b30 = {.key = "pump-b", .key_len = 6, .timestamp = 30001};
  assert_int_equal(brook_driver_push_split(f->d, "heartbeats", 0, &a0), BROOK_OK);
  assert_int_equal(brook_driver_push_split(f->d, "heartbeats", 1, &b10), BROOK_OK);
  assert_int_equal(brook_driver_push_split(f->d, "heartbeats", 0, &c40), BROOK_OK);
  /* Split 0 is at 39999, split 1 at 9999: a's deadline (30000) is not proven yet. */
  assert_int_equal(brook_driver_watermark(f->d, "heartbeat_watch"), 9999);
  assert_int_equal(f->events.n, 0);
  assert_int_equal(brook_driver_push_split(f->d, "heartbeats", 1, &b30), BROOK_OK);
  assert_int_equal(brook_driver_watermark(f->d, "heartbeat_watch"), 30000);
  assert_int_equal(f->events.n, 1);
  assert_event(f, 0, HEARTBEAT_SILENT, "pump-a", 30000, 0, SILENCE);
}

/* A heartbeat older than the newest one seen (out of order, or a duplicate) changes nothing:
 * the deadline stays where the newest put it. */
static void test_out_of_order_heartbeat_keeps_the_deadline(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-a", 10000);
  beat(f, "pump-a", 5000);  /* older */
  beat(f, "pump-a", 10000); /* duplicate */
  beat(f, "pump-b", 35001); /* watermark 35000 = 5000 + silence: must not fire */
  assert_int_equal(f->events.n, 0);
  beat(f, "pump-b", 40001); /* watermark 40000 = 10000 + silence */
  assert_int_equal(f->events.n, 1);
  assert_event(f, 0, HEARTBEAT_SILENT, "pump-a", 40000, 10000, SILENCE);
}

/* ---- the processing-time timer: a report every REPORT_EVERY ms of the clock ---- */

static void test_report_every_period_of_processing_time(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-a", 1000);
  beat(f, "pump-b", 2000);
  beat(f, "pump-b", 40000); /* a silent at 31000 */
  advance(f, REPORT_EVERY - 1);
  assert_int_equal(f->reports.n, 0);
  advance(f, 1);
  assert_int_equal(f->reports.n, 1);
  assert_report(f, 0, REPORT_EVERY, 2, 1, 3, 39999);
  beat(f, "pump-a", 41000); /* back */
  advance(f, REPORT_EVERY);
  assert_int_equal(f->reports.n, 2);
  assert_report(f, 1, 2 * REPORT_EVERY, 2, 0, 1, 40999);
  /* A clock that jumps over several periods gives one report (stamped with the time it was
   * due), not one per missed period; the schedule goes on from the period the clock is in. */
  advance(f, 3 * REPORT_EVERY + 500); /* now 300500 */
  assert_int_equal(f->reports.n, 3);
  assert_report(f, 2, 3 * REPORT_EVERY, 2, 0, 0, 40999);
  advance(f, REPORT_EVERY - 501);
  assert_int_equal(f->reports.n, 3);
  advance(f, 1);
  assert_int_equal(f->reports.n, 4);
  assert_report(f, 3, 6 * REPORT_EVERY, 2, 0, 0, 40999);
  /* Processing time never raises an event-time alert: only the watermark does. */
  assert_int_equal(f->events.n, 2);
}

/* ---- the end of the input: no alert for the devices, a final report ---- */

static void test_end_of_input_reports_without_alerting(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-a", 1000);
  beat(f, "pump-b", 31001); /* a silent at 31000 */
  beat(f, "pump-b", 32000);
  assert_int_equal(f->events.n, 1);
  assert_int_equal(brook_driver_end(f->d), BROOK_OK);
  /* The watermark jumped to the end of time: b's deadline (62000) is pending, but the input
   * ended, not the device. */
  assert_int_equal(f->events.n, 1);
  assert_int_equal(f->reports.n, 1);
  assert_report(f, 0, 0, 2, 1, 3, BROOK_TIME_MAX);
}

/* Deadlines the data has passed still fire at the end, even when the watermark had not
 * reached them before the input ended (it stays newest - 1 until then). */
static void test_end_of_input_keeps_deadlines_the_data_passed(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-a", 1000);
  beat(f, "pump-b", 31000); /* watermark 30999: a's deadline 31000 not reached yet */
  assert_int_equal(f->events.n, 0);
  assert_int_equal(brook_driver_end(f->d), BROOK_OK);
  assert_int_equal(f->events.n, 1);
  assert_event(f, 0, HEARTBEAT_SILENT, "pump-a", 31000, 1000, SILENCE);
  assert_report(f, 0, 0, 2, 1, 2, BROOK_TIME_MAX);
}

/* ---- forgetting: a silent device's state is deleted after forget_after ---- */

static void test_forget_after_deletes_silent_devices(void **state) {
  fixture_t *f = *state;
  beat(f, "pump-a", 0);
  beat(f, "pump-b", 0);
  beat(f, "pump-b", 100000); /* a silent at 30000; b alive */
  advance(f, REPORT_EVERY);
  assert_report(f, 0, REPORT_EVERY, 2, 1, 3, 99999);
  beat(f, "pump-b", 120001); /* watermark 120000 = a's last + forget_after */
  advance(f, REPORT_EVERY);
  assert_report(f, 1, 2 * REPORT_EVERY, 1, 0, 1, 120000);
  /* A forgotten device that comes back is new: no BACK, it is simply tracked again. */
  size_t before = f->events.n;
  beat(f, "pump-a", 130000);
  assert_int_equal(f->events.n, before);
  advance(f, REPORT_EVERY);
  assert_report(f, 2, 3 * REPORT_EVERY, 2, 0, 1, 129999);
}

/* A device still beating is never forgotten: its forget deadline moves with it. */
static void test_live_device_is_not_forgotten(void **state) {
  fixture_t *f = *state;
  for (brook_time_t ts = 0; ts <= 300000; ts += 20000)
    beat(f, "pump-a", ts);
  advance(f, REPORT_EVERY);
  assert_report(f, 0, REPORT_EVERY, 1, 0, 16, 299999);
  assert_int_equal(f->events.n, 0);
}

/* ---- bad input and configuration ---- */

static void test_heartbeat_without_device_is_skipped(void **state) {
  fixture_t *f = *state;
  beat(f, NULL, 1000);
  beat(f, "pump-a", 2000);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(f->d, &st), BROOK_OK);
  assert_int_equal(st.records_skipped, 1);
  advance(f, REPORT_EVERY);
  assert_report(f, 0, REPORT_EVERY, 1, 0, 1, 1999);
}

static void test_bad_configuration_stops_the_start(void **state) {
  (void)state;
  static const struct {
    const char *key, *value, *message;
  } bad[] = {
      {"silence", "0", "config silence=\"0\": must be a whole number of ms in 1..31536000000"},
      {"silence", "ten", "config silence=\"ten\": must be a whole number of ms in 1..31536000000"},
      {"report_every", "-1",
       "config report_every=\"-1\": must be a whole number of ms in 0..31536000000"},
      {"forget_after", "30000",
       "config forget_after=30000 must be 0 (never) or more than "
       "silence=30000"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    fixture_t f = {0};
    const char *config[] = {bad[i].key, bad[i].value, NULL};
    assert_int_equal(build(&f, config), BROOK_ERR_INVALID_ARG);
    assert_null(f.d);
    const char *msg = brook_topology_last_error(f.t);
    if (!strstr(msg, bad[i].message))
      fail_msg("config %s=%s: message '%s' does not contain '%s'", bad[i].key, bad[i].value, msg,
               bad[i].message);
    brook_topology_free(f.t);
    collect_free(&f.events);
    collect_free(&f.reports);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_silent_exactly_at_the_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_back_on_the_next_heartbeat_then_silent_again, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_several_devices_in_deadline_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lagging_split_holds_the_silence_back, setup, teardown),
      cmocka_unit_test_setup_teardown(test_out_of_order_heartbeat_keeps_the_deadline, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_report_every_period_of_processing_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_end_of_input_reports_without_alerting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_end_of_input_keeps_deadlines_the_data_passed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_forget_after_deletes_silent_devices, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_device_is_not_forgotten, setup, teardown),
      cmocka_unit_test_setup_teardown(test_heartbeat_without_device_is_skipped, setup, teardown),
      cmocka_unit_test(test_bad_configuration_stops_the_start),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
