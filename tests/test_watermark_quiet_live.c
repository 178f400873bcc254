/* Idleness with the quiet-stream advance, live (issue 11, item 1): a real runtime on its own
 * loop and the wall clock, push sources and a Kafka source of three partitions on the embedded
 * broker. Once every input is idle, advance_when_quiet must still move the watermark with the
 * clock and close the last window. Idle shorter and longer than quiet; one source, two merged,
 * a Kafka topic with records on every partition and on one only. Every wait is on a counter
 * with a deadline. Before the fix no window closed in any of these runs. */
#include <pthread.h>
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

#include "support/broker_proc.h"
#include "support/kafka_helpers.h"
#include "support/run_deadline.h"
#include "support/wait.h"

#define WINDOW_MS 1000
#define DEADLINE_MS 15000

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The start of the current window: a record there needs a full window of quiet advance
 * (WINDOW_MS) before its window closes, far more than idle_timeout. */
static int64_t window_start_now(void) { return wall_ms() / WINDOW_MS * WINDOW_MS; }

static wait_counter_t closed; /* window results (the sink runs on the pipeline's thread) */

static brook_err_t on_result(const brook_record_t *rec, void *opaque) {
  (void)rec;
  (void)opaque;
  wait_counter_add(&closed, 1);
  return BROOK_OK;
}

static void set_quiet(brook_stream_t *s, brook_time_t idle, brook_time_t quiet) {
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.idle_timeout = idle;
  wo.advance_when_quiet = quiet;
  assert_int_equal(brook_source_set_watermark(s, &wo), BROOK_OK);
}

static void window_into_sink(brook_stream_t *in) {
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(WINDOW_MS);
  assert_int_equal(
      brook_sink_callback(brook_window_aggregate(in, &win, &count, NULL), on_result, NULL, NULL),
      BROOK_OK);
}

/* Waits for `want` window results; fails with the elapsed time if they do not come. */
static void expect_closed(int64_t want, const char *what) {
  if (!wait_counter_wait_ge(&closed, want, DEADLINE_MS))
    fail_msg("%s: %lld of %lld windows closed within %d ms of quiet", what,
             (long long)wait_counter_get(&closed), (long long)want, DEADLINE_MS);
}

/* ---- push sources ---- */

static void run_push(size_t n_sources, brook_time_t idle, brook_time_t quiet) {
  wait_counter_init(&closed, 0);
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *ins[2];
  static const char *const names[] = {"a", "b"};
  for (size_t i = 0; i < n_sources; i++) {
    ins[i] = brook_source_push(t, names[i], NULL);
    set_quiet(ins[i], idle, quiet);
  }
  window_into_sink(n_sources == 1 ? ins[0] : brook_merge(ins, n_sources));
  brook_runtime_t *rt;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  bg_run_t r;
  bg_run_start(&r, rt);
  int64_t ts = window_start_now();
  for (size_t i = 0; i < n_sources; i++) {
    brook_record_t rec = {.key = "k", .key_len = 1, .value = "v", .value_len = 1, .timestamp = ts};
    assert_int_equal(brook_push(brook_runtime_push_source(rt, names[i]), &rec), BROOK_OK);
  }
  char what[64];
  snprintf(what, sizeof(what), "%zu push source(s), idle %lld, quiet %lld", n_sources,
           (long long)idle, (long long)quiet);
  expect_closed(1, what);
  brook_runtime_stop(rt);
  assert_int_equal(bg_run_finish(&r, DEADLINE_MS), BROOK_OK);
  brook_runtime_free(rt);
  brook_topology_free(t);
  wait_counter_destroy(&closed);
}

static void test_push_idle_shorter(void **state) {
  (void)state;
  run_push(1, 200, 400);
}

static void test_push_idle_longer(void **state) {
  (void)state;
  run_push(1, 400, 200);
}

static void test_two_push_sources_idle_shorter(void **state) {
  (void)state;
  run_push(2, 200, 400);
}

static void test_two_push_sources_idle_longer(void **state) {
  (void)state;
  run_push(2, 400, 200);
}

/* ---- a Kafka source of three partitions (three splits, one task each) ---- */

static void produce_to(const char *bootstrap, const int32_t *parts, size_t n, int64_t ts) {
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, bootstrap, NULL, NULL, NULL);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("q"), RD_KAFKA_V_PARTITION(parts[i]),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_KEY("k", 1), RD_KAFKA_V_VALUE("v", 1),
                                       RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);
}

static void run_kafka(const int32_t *parts, size_t n, brook_time_t idle, brook_time_t quiet) {
  wait_counter_init(&closed, 0);
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"q:3", NULL}, NULL), 0);
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = b.bootstrap;
  so.group_id = "quiet";
  so.topics = (const char *const[]){"q", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_stream_t *in = brook_source_kafka(t, "q", &so);
  set_quiet(in, idle, quiet);
  window_into_sink(in);
  brook_runtime_t *rt;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  bg_run_t r;
  bg_run_start(&r, rt);
  produce_to(b.bootstrap, parts, n, window_start_now());
  char what[96];
  snprintf(what, sizeof(what), "Kafka, records on %zu of 3 partitions, idle %lld, quiet %lld", n,
           (long long)idle, (long long)quiet);
  expect_closed((int64_t)n, what); /* one window per partition: one task each */
  brook_runtime_stop(rt);
  assert_int_equal(bg_run_finish(&r, DEADLINE_MS), BROOK_OK);
  brook_runtime_free(rt);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
  wait_counter_destroy(&closed);
}

static const int32_t all_three[] = {0, 1, 2};
static const int32_t only_one[] = {1};

static void test_kafka_three_partitions_idle_shorter(void **state) {
  (void)state;
  run_kafka(all_three, 3, 200, 400);
}

static void test_kafka_three_partitions_idle_longer(void **state) {
  (void)state;
  run_kafka(all_three, 3, 400, 200);
}

static void test_kafka_one_of_three_partitions(void **state) {
  (void)state;
  run_kafka(only_one, 1, 200, 400);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_push_idle_shorter),
      cmocka_unit_test(test_push_idle_longer),
      cmocka_unit_test(test_two_push_sources_idle_shorter),
      cmocka_unit_test(test_two_push_sources_idle_longer),
      cmocka_unit_test(test_kafka_three_partitions_idle_shorter),
      cmocka_unit_test(test_kafka_three_partitions_idle_longer),
      cmocka_unit_test(test_kafka_one_of_three_partitions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
