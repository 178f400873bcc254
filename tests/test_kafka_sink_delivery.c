/* The Kafka sink's deliveries when the brokers misbehave (embedded broker): a slow broker,
 * injected retriable errors and a broker down and up again lose and duplicate nothing; a
 * cluster unavailable for longer than message.timeout.ms fails the run with a clear error; a
 * permanent refusal fails the run or goes to the dead-letter topic; max_in_flight holds the
 * pipeline back. What the sink writes is tested in test_kafka_sink.c. Every Kafka wait has a
 * deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <brook/kafka.h>
#include <librdkafka/rdkafka.h>

#include "broker_proc.h"
#include "kafka_readback.h"
#include "kafka_sink_fixture.h"
#include "run_deadline.h"
#include "wait.h"

/* ---- broker trouble ---- */

/* Slow brokers (300 ms per response) and retriable Produce errors: the run waits for the
 * acknowledgements and every record lands exactly once. */
static void test_slow_broker_and_retries(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 3, (const char *const[]){"slow:6", NULL});
  for (int i = 1; i <= 3; i++)
    assert_int_equal(broker_cmd(&b, "rtt %d 300", i), 0);
  assert_int_equal(broker_cmd(&b, "error 0 6 3"), 0); /* NOT_LEADER_OR_FOLLOWER: retriable */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {3000, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "slow");
  assert_int_equal(brook_sink_kafka(s, "to_slow", &o), BROOK_OK);
  uint64_t ms = 0;
  run_expect(new_runtime(t, NULL, 0), BROOK_OK, NULL, 0, &ms);
  brook_topology_free(t);
  assert_true(ms >= 300); /* it waited for at least one delayed acknowledgement */
  for (int i = 1; i <= 3; i++)
    assert_int_equal(broker_cmd(&b, "rtt %d 0", i), 0);
  expect_exactly_once(&b, "slow", 3000);
  assert_int_equal(broker_stop(&b), 0);
}

typedef struct credit_arg {
  brook_push_source_t *src;
  size_t full;
} credit_arg_t;

static int credit_is_full(void *arg) {
  credit_arg_t *c = arg;
  return brook_push_credit(c->src) == c->full;
}

static void push_range(brook_push_source_t *src, int from, int to) {
  for (int i = from; i < to; i++) {
    char key[16], val[32];
    int kl = snprintf(key, sizeof(key), "k%d", i);
    int vl = snprintf(val, sizeof(val), "value-%d", i);
    brook_record_t rec = {.key = key,
                          .key_len = (size_t)kl,
                          .value = val,
                          .value_len = (size_t)vl,
                          .timestamp = TS_BASE + i};
    assert_int_equal(brook_push_wait(src, &rec, WAIT_MS), BROOK_OK);
  }
}

/* A broker goes down while the pipeline runs (records for its partitions wait in the
 * producer; the run cannot end) and comes back: the run ends once all are in, each exactly
 * once. */
static void test_broker_down_and_up(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 3, (const char *const[]){"flaky:6", NULL});
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 4096;
  brook_stream_t *s = brook_source_push(t, "in", &po);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "flaky");
  assert_int_equal(brook_sink_kafka(s, "to_flaky", &o), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, NULL, 0);
  credit_arg_t credit = {brook_runtime_push_source(rt, "in"), 4096};
  assert_non_null(credit.src);
  bg_run_t run;
  bg_run_start(&run, rt);

  push_range(credit.src, 0, 1000);
  assert_true(wait_until(credit_is_full, &credit, WAIT_MS)); /* all handed to the sink */
  assert_int_equal(broker_cmd(&b, "down 2"), 0);
  push_range(credit.src, 1000, 2000);
  assert_true(wait_until(credit_is_full, &credit, WAIT_MS));
  assert_int_equal(brook_push_end(credit.src), BROOK_OK);
  /* Broker 2 leads some partitions: their records cannot be acknowledged yet, so the run
   * cannot have finished. */
  assert_int_equal(wait_counter_get(&run.finished), 0);
  assert_int_equal(broker_cmd(&b, "up 2"), 0);
  brook_err_t err = bg_run_finish(&run, WAIT_MS);
  if (err != BROOK_OK)
    fail_msg("run: %s: %s", brook_errname(err), brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  expect_exactly_once(&b, "flaky", 2000);
  assert_int_equal(broker_stop(&b), 0);
}

/* A cluster that stays unavailable longer than the configured delivery timeout
 * (message.timeout.ms, passed through) gives a clear error, not a hang and not a crash. */
static void test_broker_unavailable_times_out(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"gone:1", NULL});
  assert_int_equal(broker_cmd(&b, "down 1"), 0);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {10, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "gone");
  o.properties = (const char *const[]){"message.timeout.ms", "2000", NULL};
  assert_int_equal(brook_sink_kafka(s, "to_gone", &o), BROOK_OK);
  char msg[512];
  run_expect(new_runtime(t, NULL, 0), BROOK_ERR_KAFKA, msg, sizeof(msg), NULL);
  brook_topology_free(t);
  if (!strstr(msg, "gone") || !strstr(msg, "timed out"))
    fail_msg("the message should name the topic and the timeout: '%s'", msg);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- permanent failures ---- */

/* 87 = INVALID_RECORD: librdkafka fails the batch at once, no retry (checked: so do 10
 * MSG_SIZE_TOO_LARGE, 18, 29 TOPIC_AUTHORIZATION_FAILED, 17). */
#define PERMANENT_ERR 87

/* The brokers refuse a batch for good: by default the run fails with BROOK_ERR_KAFKA and a
 * message naming the topic. */
static void test_permanent_failure_fails_run(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"doomed:1", NULL});
  assert_int_equal(broker_cmd(&b, "error 0 %d 1", PERMANENT_ERR), 0);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {10, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "doomed");
  assert_int_equal(brook_sink_kafka(s, "to_doomed", &o), BROOK_OK);
  char msg[512];
  run_expect(new_runtime(t, NULL, 0), BROOK_ERR_KAFKA, msg, sizeof(msg), NULL);
  brook_topology_free(t);
  if (!strstr(msg, "doomed") || !strstr(msg, "to_doomed"))
    fail_msg("the message should name the topic and the sink: '%s'", msg);
  assert_int_equal(broker_stop(&b), 0);
}

typedef struct hdr_gen {
  int n, next;
} hdr_gen_t;

/* Keyed records with a "seq" header. */
static brook_err_t gen_with_seq(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  hdr_gen_t *g = opaque;
  if (g->next >= g->n)
    return BROOK_DONE;
  int i = g->next++;
  out->key = ctx_strf(ctx, &out->key_len, "k%d", i);
  out->value = ctx_strf(ctx, &out->value_len, "value-%d", i);
  brook_header_t *h = brook_ctx_alloc(ctx, sizeof(*h));
  if (!h)
    return BROOK_ERR_NOMEM;
  h->name = "seq";
  h->value = ctx_strf(ctx, &h->value_len, "%d", i);
  out->headers = h;
  out->header_count = 1;
  out->timestamp = TS_BASE + i;
  return BROOK_OK;
}

/* on_failure DEAD_LETTER: what the brokers refused goes to the dead-letter topic with its
 * key, value and headers plus brook.error, brook.error.message, brook.sink.topic and
 * brook.sink.partition; the rest reaches the topic; the run succeeds; nothing is lost or
 * doubled. */
static void test_permanent_failure_dead_letter(void **state) {
  (void)state;
  enum { N = 50 };
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"doomed:2", "dlq:1", NULL});
  assert_int_equal(broker_cmd(&b, "error 0 %d 1", PERMANENT_ERR), 0);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  hdr_gen_t g = {N, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_with_seq, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "doomed");
  o.on_failure = BROOK_KAFKA_DELIVERY_DEAD_LETTER;
  o.dead_letter_topic = "dlq";
  assert_int_equal(brook_sink_kafka(s, "to_doomed", &o), BROOK_OK);
  run_expect(new_runtime(t, NULL, 0), BROOK_OK, NULL, 0, NULL);
  brook_topology_free(t);

  kr_topic_t main_t, dlq_t;
  read_topic(&b, "doomed", &main_t);
  read_topic(&b, "dlq", &dlq_t);
  assert_true(dlq_t.n >= 1);
  assert_int_equal(main_t.n + dlq_t.n, N);
  unsigned char seen[N] = {0};
  for (size_t j = 0; j < main_t.n; j++) {
    int i = value_index(main_t.msgs[j].value, main_t.msgs[j].value_len);
    assert_true(i >= 0 && i < N && !seen[i]);
    seen[i] = 1;
  }
  for (size_t j = 0; j < dlq_t.n; j++) {
    const kr_msg_t *m = &dlq_t.msgs[j];
    int i = value_index(m->value, m->value_len);
    assert_true(i >= 0 && i < N && !seen[i]);
    seen[i] = 1;
    char key[16], seq[16];
    snprintf(key, sizeof(key), "k%d", i);
    snprintf(seq, sizeof(seq), "%d", i);
    assert_non_null(m->key);
    assert_string_equal(m->key, key);
    const char *h = kr_header(m, "seq", NULL);
    assert_non_null(h);
    assert_string_equal(h, seq);
    h = kr_header(m, "brook.error", NULL);
    assert_non_null(h);
    assert_string_equal(h, "INVALID_RECORD");
    h = kr_header(m, "brook.error.message", NULL);
    assert_non_null(h);
    assert_string_equal(h, rd_kafka_err2str(PERMANENT_ERR));
    h = kr_header(m, "brook.sink.topic", NULL);
    assert_non_null(h);
    assert_string_equal(h, "doomed");
    h = kr_header(m, "brook.sink.partition", NULL);
    assert_non_null(h);
    char part[16];
    snprintf(part, sizeof(part), "%d", (int)kr_java_partition(key, strlen(key), 2));
    assert_string_equal(h, part);
  }
  kr_topic_free(&main_t);
  kr_topic_free(&dlq_t);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- dead letters that are too large (issue 11, item B) ---- */

#define MSG_SIZE_TOO_LARGE 10 /* Kafka's MESSAGE_TOO_LARGE */
#define BIG_VALUE 20000

/* One record whose value is BIG_VALUE bytes of 'v'. */
static brook_err_t gen_big(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  int *calls = opaque;
  if (++*calls > 1)
    return BROOK_DONE;
  char *v = brook_ctx_alloc(ctx, BIG_VALUE);
  if (!v)
    return BROOK_ERR_NOMEM;
  memset(v, 'v', BIG_VALUE);
  out->key = "big";
  out->key_len = 3;
  out->value = v;
  out->value_len = BIG_VALUE;
  out->timestamp = TS_BASE;
  return BROOK_OK;
}

/* Runs gen_big into a sink to `topic` (with `props` unless NULL) whose dead letters go to
 * "dlq", successfully, and returns that one dead letter, checked: a prefix of the record's
 * value, the original size said, the key kept, the given brook.error. The caller frees *t. */
static const kr_msg_t *run_big_to_dlq(broker_proc_t *b, const char *topic, const char *const *props,
                                      kr_topic_t *t, const char *error, size_t max_len) {
  brook_topology_t *topo = new_topology(BROOK_ON_ERROR_FAIL);
  int calls = 0;
  brook_stream_t *s = brook_source_generator(topo, "gen", gen_big, &calls, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b->bootstrap, topic);
  if (props)
    o.properties = props;
  o.on_failure = BROOK_KAFKA_DELIVERY_DEAD_LETTER;
  o.dead_letter_topic = "dlq";
  assert_int_equal(brook_sink_kafka(s, "to_big", &o), BROOK_OK);
  brook_runtime_stats_t st = run_expect(new_runtime(topo, NULL, 0), BROOK_OK, NULL, 0, NULL);
  brook_topology_free(topo);
  assert_int_equal(st.records_dead_lettered, 1);
  read_topic(b, "dlq", t);
  assert_int_equal(t->n, 1);
  const kr_msg_t *m = &t->msgs[0];
  if (m->value_len == 0 || m->value_len > max_len)
    fail_msg("dead letter value of %zu bytes, expected 1..%zu", m->value_len, max_len);
  for (size_t i = 0; i < m->value_len; i++)
    assert_int_equal(m->value[i], 'v');
  assert_non_null(m->key);
  assert_string_equal(m->key, "big");
  const char *h = kr_header(m, "brook.error.original_size", NULL);
  if (!h)
    fail_msg("no brook.error.original_size on the cut dead letter");
  assert_int_equal(atoi(h), BIG_VALUE);
  h = kr_header(m, "brook.error", NULL);
  assert_non_null(h);
  assert_string_equal(h, error);
  h = kr_header(m, "brook.sink.topic", NULL);
  assert_non_null(h);
  assert_string_equal(h, topic);
  return m;
}

/* The producer refuses an output larger than its message.max.bytes: with on_failure
 * DEAD_LETTER it goes to the dead-letter topic, cut to fit (it used to fail the run). */
static void test_output_too_large_dead_lettered_cut(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"out:1", "dlq:1", NULL});
  kr_topic_t dlq;
  run_big_to_dlq(
      &b, "out",
      (const char *const[]){"message.timeout.ms", "20000", "message.max.bytes", "10000", NULL},
      &dlq, "MSG_SIZE_TOO_LARGE", 10000);
  kr_topic_free(&dlq);
  assert_int_equal(broker_stop(&b), 0);
}

/* The brokers refuse the record (INVALID_RECORD) and then its dead letter as too large: the
 * letter is sent once more, cut, and the run succeeds (it used to fail). */
static void test_dead_letter_refused_too_large_retried_cut(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"doomed:1", "dlq:1", NULL});
  assert_int_equal(broker_cmd(&b, "error 0 %d 1", PERMANENT_ERR), 0);
  assert_int_equal(broker_cmd(&b, "error 0 %d 1", MSG_SIZE_TOO_LARGE), 0);
  kr_topic_t dlq;
  run_big_to_dlq(&b, "doomed", NULL, &dlq, "INVALID_RECORD", BIG_VALUE - 1);
  kr_topic_free(&dlq);
  assert_int_equal(broker_stop(&b), 0);
}

/* One record whose key and only header are larger than the limit below. */
static brook_err_t gen_bulky(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  int *calls = opaque;
  if (++*calls > 1)
    return BROOK_DONE;
  char *k = brook_ctx_alloc(ctx, 12000), *hv = brook_ctx_alloc(ctx, 12000);
  brook_header_t *h = brook_ctx_alloc(ctx, sizeof(*h));
  if (!k || !hv || !h)
    return BROOK_ERR_NOMEM;
  memset(k, 'k', 12000);
  memset(hv, 'h', 12000);
  *h = (brook_header_t){"bulk", hv, 12000};
  *out = (brook_record_t){.key = k,
                          .key_len = 12000,
                          .value = "small",
                          .value_len = 5,
                          .timestamp = TS_BASE,
                          .headers = h,
                          .header_count = 1};
  return BROOK_OK;
}

/* Still deliverable when even an empty value does not fit: the record's own headers are
 * dropped, then its key is cut, each said in a header. */
static void test_dead_letter_key_and_headers_cut(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"out:1", "dlq:1", NULL});
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  int calls = 0;
  brook_stream_t *s = brook_source_generator(t, "gen", gen_bulky, &calls, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "out");
  o.properties =
      (const char *const[]){"message.timeout.ms", "20000", "message.max.bytes", "10000", NULL};
  o.on_failure = BROOK_KAFKA_DELIVERY_DEAD_LETTER;
  o.dead_letter_topic = "dlq";
  assert_int_equal(brook_sink_kafka(s, "to_out", &o), BROOK_OK);
  run_expect(new_runtime(t, NULL, 0), BROOK_OK, NULL, 0, NULL);
  brook_topology_free(t);
  kr_topic_t dlq;
  read_topic(&b, "dlq", &dlq);
  assert_int_equal(dlq.n, 1);
  const kr_msg_t *m = &dlq.msgs[0];
  assert_int_equal(m->value_len, 0);
  assert_true(m->key_len > 8000 && m->key_len < 10000);
  assert_null(kr_header(m, "bulk", NULL));
  const char *expect[][2] = {{"brook.error.original_size", "5"},
                             {"brook.error.headers_dropped", "1"},
                             {"brook.error.original_key_size", "12000"},
                             {"brook.error", "MSG_SIZE_TOO_LARGE"}};
  for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
    const char *h = kr_header(m, expect[i][0], NULL);
    if (!h || strcmp(h, expect[i][1]) != 0)
      fail_msg("header %s: '%s', expected '%s'", expect[i][0], h ? h : "(none)", expect[i][1]);
  }
  kr_topic_free(&dlq);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- backpressure ---- */

typedef struct pass_times {
  uint64_t first_ms, last_ms;
  int count;
} pass_times_t;

static brook_err_t note_pass(const brook_record_t *rec, void *opaque) {
  (void)rec;
  pass_times_t *p = opaque;
  uint64_t now = wait_now_ms();
  if (p->count++ == 0)
    p->first_ms = now;
  p->last_ms = now;
  return BROOK_OK;
}

/* max_in_flight: "beyond it the sink holds the pipeline back (sources pause)". With 4 in
 * flight allowed, batches of 4, and every broker response delayed 250 ms, the 24th record
 * cannot reach the sink before the first acknowledgement, which comes at least 250 ms
 * after the first record reached it. */
static void test_max_in_flight_holds_back(void **state) {
  (void)state;
  enum { N = 24 };
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"bp:1", NULL});
  assert_int_equal(broker_cmd(&b, "rtt 1 250"), 0);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {N, 0};
  pass_times_t times = {0, 0, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  s = brook_peek(s, note_pass, &times);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "bp");
  o.max_in_flight = 4;
  assert_int_equal(brook_sink_kafka(s, "bounded", &o), BROOK_OK);
  run_expect(new_runtime(t, NULL, 4), BROOK_OK, NULL, 0, NULL);
  brook_topology_free(t);
  assert_int_equal(times.count, N);
  if (times.last_ms - times.first_ms < 200)
    fail_msg("all %d records reached the sink within %llu ms: max_in_flight=4 did not hold "
             "the pipeline back",
             N, (unsigned long long)(times.last_ms - times.first_ms));
  assert_int_equal(broker_cmd(&b, "rtt 1 0"), 0);
  expect_exactly_once(&b, "bp", N);
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slow_broker_and_retries),
      cmocka_unit_test(test_broker_down_and_up),
      cmocka_unit_test(test_broker_unavailable_times_out),
      cmocka_unit_test(test_permanent_failure_fails_run),
      cmocka_unit_test(test_permanent_failure_dead_letter),
      cmocka_unit_test(test_max_in_flight_holds_back),
      cmocka_unit_test(test_output_too_large_dead_lettered_cut),
      cmocka_unit_test(test_dead_letter_refused_too_large_retried_cut),
      cmocka_unit_test(test_dead_letter_key_and_headers_cut),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
