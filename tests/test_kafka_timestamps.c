/* Message timestamps on the Kafka source (time.h, timestamp bounds): one message with an odd
 * timestamp at the head of each partition (INT64_MAX, the year 2100, -5, INT64_MIN) is
 * malformed under the source's on_malformed policy (dead-lettered with the reason, skipped, or
 * failing the run) and never moves the watermark, so none of the valid messages behind it is
 * late. With the bounds off, the old damage is at least visible: counted and logged with the
 * partition and its watermark. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/broker_proc.h"
#include "support/kafka_helpers.h"
#include "support/kafka_readback.h"
#include "support/log_capture.h"
#include "support/run_deadline.h"
#include "support/wait.h"

#define PARTITIONS 4
#define VALID_PER_PARTITION 120             /* > BROOK_LATE_WARN_RECORDS */
#define YEAR_2100_MS INT64_C(4102444800000) /* 2100-01-01T00:00:00Z */

static const int64_t poison_ts[PARTITIONS] = {INT64_MAX, YEAR_2100_MS, -5, INT64_MIN};

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  int *failed = opaque;
  if (m->err)
    (*failed)++;
}

/* Produces `value` to topic "pay", partition `partition`, with message timestamp `ts`. */
static void produce_at(rd_kafka_t *p, int32_t partition, int64_t ts, const char *value) {
  rd_kafka_resp_err_t err = rd_kafka_producev(
      p, RD_KAFKA_V_TOPIC("pay"), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY("card", 4),
      RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
  assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* The poisoned head of every partition, then VALID_PER_PARTITION valid messages each, one
 * 100 ms apart, ending about two minutes ago. */
static void produce_poisoned(const char *bootstrap) {
  int failed = 0;
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, bootstrap, NULL, dr, &failed);
  int64_t base = kh_now_ms() - 2 * 60 * 1000;
  char v[32];
  for (int32_t part = 0; part < PARTITIONS; part++) {
    snprintf(v, sizeof(v), "poison-%d", (int)part);
    produce_at(p, part, poison_ts[part], v);
    for (int i = 0; i < VALID_PER_PARTITION; i++) {
      snprintf(v, sizeof(v), "valid-%d-%d", (int)part, i);
      produce_at(p, part, base + i * 100, v);
    }
  }
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(failed, 0);
  rd_kafka_destroy(p);
}

typedef struct run_result {
  brook_err_t status;
  char error[512];
  brook_runtime_stats_t st;
  int delivered; /* valid records that reached the sink */
  log_capture_t log;
} run_result_t;

static int delivered; /* written on the pipeline's thread, read after it finished */

static brook_err_t count_valid(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  if (rec->value_len > 6 && memcmp(rec->value, "valid-", 6) == 0)
    delivered++;
  return BROOK_OK;
}

typedef struct committed_arg {
  const char *bootstrap, *group;
  bg_run_t *run;
} committed_arg_t;

/* Every message committed, or the run is over (it failed: bg_run_finish says why). */
static int all_committed(void *arg) {
  const committed_arg_t *c = arg;
  if (wait_counter_get(&c->run->finished))
    return 1;
  for (int32_t p = 0; p < PARTITIONS; p++)
    if (kh_committed(c->bootstrap, c->group, "pay", p) < VALID_PER_PARTITION + 1)
      return 0;
  return 1;
}

/* Reads "pay" with `policy` and bounds `bounds` into a sink and (bounds not OFF) a 1-second
 * tumbling count (late records dropped and counted), until every message is committed (or, with
 * FAIL, the run fails). */
static void run_pipeline(const char *bootstrap, const char *group, brook_kafka_malformed_t policy,
                         brook_ts_bounds_t bounds, run_result_t *out) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){"pay", NULL};
  so.on_malformed = policy;
  so.dead_letter_topic = "pay.dlq";
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_stream_t *in = brook_source_kafka(t, "pay", &so);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.ts_bounds = bounds;
  assert_int_equal(brook_source_set_watermark(in, &wo), BROOK_OK);
  assert_int_equal(brook_sink_callback(in, count_valid, NULL, NULL), BROOK_OK);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(BROOK_S);
  if (bounds != BROOK_TS_BOUNDS_OFF) /* windows refuse times beyond +-2^61 ms (a failure) */
    assert_int_equal(brook_sink_callback(brook_window_aggregate(in, &win, &count, NULL),
                                         count_valid, NULL, NULL),
                     BROOK_OK);
  log_capture_init(&out->log);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100; /* commits often: the waits for committed offsets are short */
  ro.log = log_capture_cb;
  ro.log_opaque = &out->log;
  /* One message per batch: the watermark moves after every record, as it does when messages
   * trickle in (records of one batch are all judged against the watermark before it). */
  ro.batch_size = 1;
  brook_runtime_t *rt;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  delivered = 0;
  bg_run_t r;
  bg_run_start(&r, rt);
  if (policy != BROOK_KAFKA_MALFORMED_FAIL) {
    committed_arg_t c = {bootstrap, group, &r};
    if (!wait_until(all_committed, &c, KH_TIMEOUT_MS))
      fail_msg("not every message of 'pay' was committed in time");
    brook_runtime_stop(rt);
  }
  out->status = bg_run_finish(&r, KH_TIMEOUT_MS);
  snprintf(out->error, sizeof(out->error), "%s", brook_runtime_last_error(rt));
  out->st = (brook_runtime_stats_t){.struct_size = sizeof(out->st)};
  assert_int_equal(brook_runtime_stats(rt, &out->st), BROOK_OK);
  out->delivered = delivered;
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void assert_run_ok(const run_result_t *res) {
  if (res->status != BROOK_OK)
    fail_msg("the run failed: %s: %s", brook_errname(res->status), res->error);
}

static void start_broker(broker_proc_t *b) {
  assert_int_equal(broker_start(b, 1, (const char *const[]){"pay:4", "pay.dlq:1", NULL}, NULL), 0);
  produce_poisoned(b->bootstrap);
}

/* The acceptance scenario: dead-lettered with the reason, and no valid record late. Before
 * the fix every valid record behind INT64_MAX and the year 2100 was late, and -5 / INT64_MIN
 * became the wall clock, which put the valid records of those partitions (from 2 minutes ago)
 * behind the watermark too. */
static void test_poison_dead_lettered(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b);
  run_result_t res;
  run_pipeline(b.bootstrap, "poison-dlq", BROOK_KAFKA_MALFORMED_DEAD_LETTER, BROOK_TS_BOUNDS_AUTO,
               &res);
  assert_run_ok(&res);
  if (res.st.records_late || res.st.records_behind_watermark)
    fail_msg("valid records late: %llu dropped by the window, %llu behind their partition's "
             "watermark",
             (unsigned long long)res.st.records_late,
             (unsigned long long)res.st.records_behind_watermark);
  /* Each valid record reached the sink, and its window result too. */
  assert_int_equal(res.delivered, PARTITIONS * VALID_PER_PARTITION);
  assert_int_equal(res.st.records_out_of_bounds, PARTITIONS);
  assert_int_equal(res.st.records_dead_lettered, PARTITIONS);
  kr_topic_t dlq;
  char why[256];
  if (kr_read_topic(b.bootstrap, "pay.dlq", KH_TIMEOUT_MS, &dlq, why, sizeof(why)) != 0)
    fail_msg("reading pay.dlq: %s", why);
  assert_int_equal(dlq.n, PARTITIONS);
  for (size_t i = 0; i < dlq.n; i++) {
    const kr_msg_t *m = &dlq.msgs[i];
    const char *part = kr_header(m, "brook.source.partition", NULL);
    const char *msg = kr_header(m, "brook.error.message", NULL);
    assert_non_null(part);
    assert_non_null(msg);
    assert_string_equal(kr_header(m, "brook.error", NULL), "BROOK_ERR_CORRUPT");
    assert_string_equal(kr_header(m, "brook.source.offset", NULL), "0");
    int p = atoi(part);
    char expect[96];
    if (poison_ts[p] < 0)
      snprintf(expect, sizeof(expect), "timestamp %lld is negative", (long long)poison_ts[p]);
    else
      snprintf(expect, sizeof(expect), "timestamp %lld is more than 24 h ahead of processing time",
               (long long)poison_ts[p]);
    if (!strstr(msg, expect))
      fail_msg("dead letter of partition %d says '%s', expected '%s'", p, msg, expect);
    char value[16];
    snprintf(value, sizeof(value), "poison-%d", p);
    assert_string_equal(m->value, value);
  }
  kr_topic_free(&dlq);
  log_capture_free(&res.log);
  assert_int_equal(broker_stop(&b), 0);
}

static void test_poison_skipped(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b);
  run_result_t res;
  run_pipeline(b.bootstrap, "poison-skip", BROOK_KAFKA_MALFORMED_SKIP, BROOK_TS_BOUNDS_AUTO, &res);
  assert_run_ok(&res);
  assert_int_equal(res.st.records_late, 0);
  assert_int_equal(res.st.records_behind_watermark, 0);
  assert_int_equal(res.delivered, PARTITIONS * VALID_PER_PARTITION);
  assert_int_equal(res.st.records_out_of_bounds, PARTITIONS);
  assert_int_equal(res.st.records_skipped, PARTITIONS);
  assert_int_equal(res.st.records_dead_lettered, 0);
  log_capture_free(&res.log);
  assert_int_equal(broker_stop(&b), 0);
}

/* The default policy fails the run with the offset and the reason. */
static void test_poison_fails(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b);
  run_result_t res;
  run_pipeline(b.bootstrap, "poison-fail", BROOK_KAFKA_MALFORMED_FAIL, BROOK_TS_BOUNDS_AUTO, &res);
  if (res.status != BROOK_ERR_CORRUPT ||
      !strstr(res.error, "malformed record at offset 0 of pay [") ||
      !strstr(res.error, "timestamp "))
    fail_msg("expected BROOK_ERR_CORRUPT for the timestamp, got %s: %s", brook_errname(res.status),
             res.error);
  assert_int_equal(res.delivered, 0);
  log_capture_free(&res.log);
  assert_int_equal(broker_stop(&b), 0);
}

/* Bounds off (the user's choice): INT64_MAX and the year 2100 move their partitions' watermarks
 * and the valid records behind them are late, but no longer silently: counted, and a warning
 * names the partition and its watermark. */
static void test_bounds_off_late_records_visible(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b);
  run_result_t res;
  run_pipeline(b.bootstrap, "poison-off", BROOK_KAFKA_MALFORMED_SKIP, BROOK_TS_BOUNDS_OFF, &res);
  assert_run_ok(&res);
  assert_int_equal(res.st.records_out_of_bounds, 0);
  /* The valid records behind INT64_MAX and 2100 (the negative heads do no harm now: they are
   * no longer replaced with the wall clock). */
  assert_int_equal(res.st.records_behind_watermark, 2 * VALID_PER_PARTITION);
  /* One warning (rate-limited per source), naming one of the two partitions and its
   * watermark. */
  const char *log = log_capture_text(&res.log);
  const char *w = strstr(log, "records within 10 s arrived at or behind its watermark");
  if (!w)
    fail_msg("no late warning in the log:\n%s", log);
  if (!strstr(log, "pay: partition 0: 100 records within 10 s arrived at or behind its "
                   "watermark 9223372036854775806") &&
      !strstr(log, "pay: partition 1: 100 records within 10 s arrived at or behind its "
                   "watermark 4102444799999"))
    fail_msg("the warning does not name the partition and its watermark:\n%s", log);
  log_capture_free(&res.log);
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_poison_dead_lettered),
      cmocka_unit_test(test_poison_skipped),
      cmocka_unit_test(test_poison_fails),
      cmocka_unit_test(test_bounds_off_late_records_visible),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
