/* The Kafka sink (brook_sink_kafka) against the embedded broker, what it writes: records
 * come back from a plain consumer exactly once with their keys, values, headers and
 * timestamps, keyed records partitioned as the Java client does; the serialisers (INT64,
 * CUSTOM) and topic_fn; option validation and bad librdkafka properties. Delivery when the
 * brokers misbehave is tested in test_kafka_sink_delivery.c, secrets in
 * test_kafka_secrets.c. Every Kafka wait has a deadline. */
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
#include "log_capture.h"
#include "run_deadline.h"

/* ---- a generator of varied records (round trip) ---- */

#define RT_N 5000
#define RT_KEYS 53

/* Record i: key "user-<i % 53>" except every 10th (no key); value "value-<i>" except a few
 * tombstones; headers "seq" (i in decimal), "bin" (4 bytes with a NUL) unless i % 3 == 0,
 * "empty" (no bytes) when i % 5 == 0; timestamp TS_BASE + i. */
static int rt_has_key(int i) { return i % 10 != 9; }
static int rt_is_tombstone(int i) { return i % 500 == 7; }

static size_t rt_key(int i, char *buf, size_t cap) {
  return (size_t)snprintf(buf, cap, "user-%d", i % RT_KEYS);
}

static void rt_bin(int i, unsigned char out[4]) {
  out[0] = 0x00;
  out[1] = 0x01;
  out[2] = 0xff;
  out[3] = (unsigned char)i;
}

static brook_err_t gen_round_trip(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  counter_gen_t *g = opaque;
  if (g->next >= g->n)
    return BROOK_DONE;
  int i = g->next++;
  if (rt_has_key(i))
    out->key = ctx_strf(ctx, &out->key_len, "user-%d", i % RT_KEYS);
  if (!rt_is_tombstone(i))
    out->value = ctx_strf(ctx, &out->value_len, "value-%d", i);
  brook_header_t *h = brook_ctx_alloc(ctx, 3 * sizeof(*h));
  if (!h)
    return BROOK_ERR_NOMEM;
  size_t nh = 0;
  h[nh].name = "seq";
  h[nh].value = ctx_strf(ctx, &h[nh].value_len, "%d", i);
  nh++;
  if (i % 3 != 0) {
    unsigned char *bin = brook_ctx_alloc(ctx, 4);
    if (!bin)
      return BROOK_ERR_NOMEM;
    rt_bin(i, bin);
    h[nh++] = (brook_header_t){"bin", bin, 4};
  }
  if (i % 5 == 0)
    h[nh++] = (brook_header_t){"empty", NULL, 0};
  out->headers = h;
  out->header_count = nh;
  out->timestamp = TS_BASE + i;
  return BROOK_OK;
}

/* The message must be exactly record i. */
static void check_round_trip_msg(const kr_msg_t *m, int i, int32_t partitions) {
  char key[32];
  size_t kl = rt_key(i, key, sizeof(key));
  if (rt_has_key(i)) {
    assert_non_null(m->key);
    assert_int_equal(m->key_len, kl);
    assert_memory_equal(m->key, key, kl);
    if (m->partition != kr_java_partition(key, kl, partitions))
      fail_msg("record %d (key %s) in partition %d, murmur2 says %d", i, key, (int)m->partition,
               (int)kr_java_partition(key, kl, partitions));
  } else {
    assert_null(m->key);
  }
  if (rt_is_tombstone(i)) {
    assert_null(m->value);
  } else {
    assert_non_null(m->value);
    assert_int_equal(value_index(m->value, m->value_len), i);
  }
  assert_int_equal(m->timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
  assert_int_equal(m->timestamp, TS_BASE + i);
  size_t want_h = 1 + (i % 3 != 0) + (i % 5 == 0);
  assert_int_equal(m->header_count, want_h);
  assert_string_equal(m->headers[0].name, "seq");
  char seq[16];
  snprintf(seq, sizeof(seq), "%d", i);
  assert_string_equal(m->headers[0].value, seq);
  size_t at = 1;
  if (i % 3 != 0) {
    unsigned char bin[4];
    rt_bin(i, bin);
    assert_string_equal(m->headers[at].name, "bin");
    assert_int_equal(m->headers[at].value_len, 4);
    assert_memory_equal(m->headers[at].value, bin, 4);
    at++;
  }
  if (i % 5 == 0) {
    assert_string_equal(m->headers[at].name, "empty");
    assert_int_equal(m->headers[at].value_len, 0); /* null or empty: both carry no bytes */
  }
}

/* 5000 varied records through a 4-partition topic on 3 brokers: the run returns only once
 * all are acknowledged, and the topic then holds each exactly once, intact, keyed records
 * in their murmur2 partition (so one key, one partition). */
static void test_round_trip(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 3, (const char *const[]){"orders:4", NULL});
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {RT_N, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_round_trip, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "orders");
  assert_int_equal(brook_sink_kafka(s, "to_orders", &o), BROOK_OK);
  brook_runtime_stats_t st = run_expect(new_runtime(t, NULL, 0), BROOK_OK, NULL, 0, NULL);
  brook_topology_free(t);
  assert_int_equal(st.records_in, RT_N);
  assert_int_equal(st.records_skipped, 0);

  kr_topic_t kt;
  read_topic(&b, "orders", &kt);
  assert_int_equal(kt.partitions, 4);
  assert_int_equal(kt.n, RT_N);
  unsigned char *seen = calloc(RT_N, 1);
  int key_part[RT_KEYS];
  int per_part[4] = {0};
  for (int k = 0; k < RT_KEYS; k++)
    key_part[k] = -1;
  for (size_t j = 0; j < kt.n; j++) {
    const kr_msg_t *m = &kt.msgs[j];
    const char *seq = kr_header(m, "seq", NULL);
    assert_non_null(seq);
    int i = atoi(seq);
    assert_true(i >= 0 && i < RT_N);
    if (seen[i])
      fail_msg("record %d arrived twice", i);
    seen[i] = 1;
    check_round_trip_msg(m, i, kt.partitions);
    per_part[m->partition]++;
    if (rt_has_key(i)) {
      int k = i % RT_KEYS;
      if (key_part[k] < 0)
        key_part[k] = m->partition;
      assert_int_equal(key_part[k], m->partition);
    }
  }
  for (int p = 0; p < 4; p++)
    assert_true(per_part[p] > 0);
  free(seen);
  kr_topic_free(&kt);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- serialisers ---- */

#define I64_N 200
#define I64_BAD 50

static int64_t i64_value(int i) { return ((int64_t)i - 100) * 1000000007LL; }

typedef struct i64_gen {
  int n, next, bad; /* record `bad` has a 7-byte value (-1: none) */
} i64_gen_t;

/* Key: i as a native int64; value: i64_value(i) as a native int64. */
static brook_err_t gen_int64(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  i64_gen_t *g = opaque;
  if (g->next >= g->n)
    return BROOK_DONE;
  int i = g->next++;
  int64_t *kv = brook_ctx_alloc(ctx, 2 * sizeof(int64_t));
  if (!kv)
    return BROOK_ERR_NOMEM;
  kv[0] = i;
  kv[1] = i64_value(i);
  out->key = &kv[0];
  out->key_len = sizeof(int64_t);
  out->value = &kv[1];
  out->value_len = i == g->bad ? 7 : sizeof(int64_t);
  out->timestamp = TS_BASE + i;
  return BROOK_OK;
}

static int64_t load_be64(const void *p) {
  const unsigned char *b = p;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | b[i];
  return (int64_t)v;
}

static brook_err_t run_int64(broker_proc_t *b, const char *topic, brook_error_policy_t policy,
                             int bad, brook_runtime_stats_t *st, char *msg, size_t msg_len) {
  brook_topology_t *t = new_topology(policy);
  i64_gen_t g = {I64_N, 0, bad};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_int64, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b->bootstrap, topic);
  o.key.format = BROOK_KAFKA_INT64;
  o.value.format = BROOK_KAFKA_INT64;
  assert_int_equal(brook_sink_kafka(s, "int64s", &o), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, NULL, 0);
  brook_err_t err = run_with_deadline(rt, WAIT_MS, NULL);
  snprintf(msg, msg_len, "%s", brook_runtime_last_error(rt));
  memset(st, 0, sizeof(*st));
  st->struct_size = sizeof(*st);
  assert_int_equal(brook_runtime_stats(rt, st), BROOK_OK);
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err;
}

/* INT64 writes a native int64 as 8 big-endian bytes (key and value). A 7-byte value is a
 * failed record: skipped and counted under SKIP (the rest delivered), the run's error with a
 * clear message under FAIL. */
static void test_int64_serialiser(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"nums:2", "nums_fail:1", NULL});
  brook_runtime_stats_t st;
  char msg[512];
  brook_err_t err = run_int64(&b, "nums", BROOK_ON_ERROR_SKIP, I64_BAD, &st, msg, sizeof(msg));
  if (err != BROOK_OK)
    fail_msg("SKIP run: %s: %s", brook_errname(err), msg);
  assert_int_equal(st.records_in, I64_N);
  assert_int_equal(st.records_skipped, 1);

  kr_topic_t kt;
  read_topic(&b, "nums", &kt);
  assert_int_equal(kt.n, I64_N - 1);
  unsigned char seen[I64_N] = {0};
  for (size_t j = 0; j < kt.n; j++) {
    const kr_msg_t *m = &kt.msgs[j];
    assert_int_equal(m->key_len, 8);
    assert_int_equal(m->value_len, 8);
    int64_t i = load_be64(m->key);
    assert_true(i >= 0 && i < I64_N && i != I64_BAD);
    assert_false(seen[i]);
    seen[i] = 1;
    assert_int_equal(load_be64(m->value), i64_value((int)i));
    if (i == 1) { /* the exact bytes: big-endian, not native */
      static const unsigned char one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
      assert_memory_equal(m->key, one, 8);
    }
  }
  kr_topic_free(&kt);

  err = run_int64(&b, "nums_fail", BROOK_ON_ERROR_FAIL, 5, &st, msg, sizeof(msg));
  assert_int_equal(err, BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(msg, "int64"));
  assert_non_null(strstr(msg, "8 bytes"));
  assert_non_null(strstr(msg, "int64s")); /* the sink's name */
  assert_int_equal(broker_stop(&b), 0);
}

/* A CUSTOM value serialiser: "value-<i>" -> "<value-<i>>"; fails for i == fail_at with a
 * message of its own and a user-defined code. */
#define CUSTOM_ERR -4321

typedef struct wrap_serde {
  int calls;
  int fail_at;
} wrap_serde_t;

static brook_err_t wrap_value(brook_ctx_t *ctx, const void *in, size_t in_len, const void **out,
                              size_t *out_len, void *opaque) {
  wrap_serde_t *w = opaque;
  w->calls++;
  if (value_index(in, in_len) == w->fail_at) {
    brook_ctx_set_error(ctx, "refusing %.*s", (int)in_len, (const char *)in);
    return CUSTOM_ERR;
  }
  char *p = brook_ctx_alloc(ctx, in_len + 2);
  if (!p)
    return BROOK_ERR_NOMEM;
  p[0] = '<';
  memcpy(p + 1, in, in_len);
  p[in_len + 1] = '>';
  *out = p;
  *out_len = in_len + 2;
  return BROOK_OK;
}

static brook_err_t run_custom(broker_proc_t *b, const char *topic, wrap_serde_t *w, int n,
                              char *msg, size_t msg_len) {
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {n, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b->bootstrap, topic);
  o.key.format = BROOK_KAFKA_STRING;
  o.value = (brook_kafka_serde_t){BROOK_KAFKA_CUSTOM, wrap_value, w};
  assert_int_equal(brook_sink_kafka(s, "wrapped", &o), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, NULL, 0);
  brook_err_t err = run_with_deadline(rt, WAIT_MS, NULL);
  snprintf(msg, msg_len, "%s", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err;
}

/* The CUSTOM serialiser is called once per record and its bytes are what Kafka gets; its
 * failure (code and message) is the run's. */
static void test_custom_serialiser(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"wrapped:2", "wrapped_fail:1", NULL});
  wrap_serde_t w = {0, -1};
  char msg[512];
  brook_err_t err = run_custom(&b, "wrapped", &w, 100, msg, sizeof(msg));
  if (err != BROOK_OK)
    fail_msg("run: %s: %s", brook_errname(err), msg);
  assert_int_equal(w.calls, 100);
  kr_topic_t kt;
  read_topic(&b, "wrapped", &kt);
  assert_int_equal(kt.n, 100);
  unsigned char seen[100] = {0};
  for (size_t j = 0; j < kt.n; j++) {
    const kr_msg_t *m = &kt.msgs[j];
    assert_non_null(m->value);
    assert_true(m->value_len > 2 && m->value[0] == '<' && m->value[m->value_len - 1] == '>');
    int i = value_index(m->value + 1, m->value_len - 2);
    assert_true(i >= 0 && i < 100 && !seen[i]);
    seen[i] = 1;
    char key[16];
    snprintf(key, sizeof(key), "k%d", i);
    assert_string_equal(m->key, key);
  }
  kr_topic_free(&kt);

  wrap_serde_t wf = {0, 10};
  err = run_custom(&b, "wrapped_fail", &wf, 50, msg, sizeof(msg));
  assert_int_equal(err, CUSTOM_ERR);
  assert_non_null(strstr(msg, "refusing value-10"));
  assert_int_equal(broker_stop(&b), 0);
}

/* topic_fn: even records to "evens", odd multiples of 3 to the fixed topic (fn says NULL),
 * the other odd ones to "odds". */
static const char *route_by_parity(const brook_record_t *rec, void *opaque) {
  int *calls = opaque;
  (*calls)++;
  int i = value_index(rec->value, rec->value_len);
  if (i % 2 == 0)
    return "evens";
  return i % 3 == 0 ? NULL : "odds";
}

/* No fixed topic: record 4 gets none. */
static const char *route_all_but_4(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return value_index(rec->value, rec->value_len) == 4 ? NULL : "routed";
}

/* topic_fn picks each record's topic, NULL meaning the fixed topic; with no fixed topic a
 * NULL answer is a failed record (skipped under SKIP). */
static void test_topic_fn(void **state) {
  (void)state;
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"evens:2", "odds:2", "rest:1", "routed:1", NULL});
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {300, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  int calls = 0;
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "rest");
  o.topic_fn = route_by_parity;
  o.topic_opaque = &calls;
  assert_int_equal(brook_sink_kafka(s, "router", &o), BROOK_OK);
  run_expect(new_runtime(t, NULL, 0), BROOK_OK, NULL, 0, NULL);
  brook_topology_free(t);
  assert_int_equal(calls, 300);

  const char *topics[3] = {"evens", "odds", "rest"};
  size_t want[3] = {150, 100, 50};
  unsigned char seen[300] = {0};
  for (int k = 0; k < 3; k++) {
    kr_topic_t kt;
    read_topic(&b, topics[k], &kt);
    assert_int_equal(kt.n, want[k]);
    for (size_t j = 0; j < kt.n; j++) {
      int i = value_index(kt.msgs[j].value, kt.msgs[j].value_len);
      assert_true(i >= 0 && i < 300 && !seen[i]);
      seen[i] = 1;
      int expect = i % 2 == 0 ? 0 : i % 3 == 0 ? 2 : 1;
      assert_int_equal(k, expect);
    }
    kr_topic_free(&kt);
  }

  t = new_topology(BROOK_ON_ERROR_SKIP);
  counter_gen_t g2 = {10, 0};
  s = brook_source_generator(t, "gen", gen_plain, &g2, NULL);
  o = sink_opts(b.bootstrap, NULL);
  o.topic_fn = route_all_but_4;
  assert_int_equal(brook_sink_kafka(s, "router", &o), BROOK_OK);
  brook_runtime_stats_t st = run_expect(new_runtime(t, NULL, 0), BROOK_OK, NULL, 0, NULL);
  brook_topology_free(t);
  assert_int_equal(st.records_skipped, 1);
  kr_topic_t kt;
  read_topic(&b, "routed", &kt);
  assert_int_equal(kt.n, 9);
  for (size_t j = 0; j < kt.n; j++)
    assert_int_not_equal(value_index(kt.msgs[j].value, kt.msgs[j].value_len), 4);
  kr_topic_free(&kt);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- option validation ---- */

/* brook_sink_kafka with `o` on a fresh topology: the code, and the topology's message. */
static brook_err_t try_sink(const brook_kafka_sink_opts_t *o, char *msg, size_t msg_len,
                            int build_runtime) {
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {1, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_err_t err = brook_sink_kafka(s, "k", o);
  snprintf(msg, msg_len, "%s", brook_topology_last_error(t));
  brook_runtime_t *rt = NULL;
  brook_err_t new_err = brook_runtime_new(&rt, t, NULL);
  if (err != BROOK_OK) {
    assert_int_not_equal(new_err, BROOK_OK); /* a failed builder call fails the topology */
    assert_null(rt);
  } else if (build_runtime) {
    assert_int_equal(new_err, BROOK_OK);
  }
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err;
}

static void expect_invalid(const brook_kafka_sink_opts_t *o, const char *needle) {
  char msg[512];
  brook_err_t err = try_sink(o, msg, sizeof(msg), 0);
  if (err != BROOK_ERR_INVALID_ARG || !strstr(msg, needle))
    fail_msg("expected BROOK_ERR_INVALID_ARG mentioning '%s', got %s: '%s'", needle,
             brook_errname(err), msg);
  assert_non_null(strstr(msg, "sink_kafka"));
}

static void test_options_invalid(void **state) {
  (void)state;
  const char *bs = "127.0.0.1:9";
  brook_kafka_sink_opts_t o;

  o = sink_opts(bs, NULL);
  expect_invalid(&o, "topic");

  o = sink_opts(NULL, "t");
  expect_invalid(&o, "bootstrap");

  o = sink_opts(bs, "t");
  o.on_failure = BROOK_KAFKA_DELIVERY_DEAD_LETTER;
  expect_invalid(&o, "dead_letter_topic");

  o = sink_opts(bs, "t");
  o.on_failure = (brook_kafka_delivery_failure_t)7;
  expect_invalid(&o, "on_failure");

  o = sink_opts(bs, "t");
  o.properties = (const char *const[]){"acks", "all", "linger.ms", NULL};
  expect_invalid(&o, "key/value");

  o = sink_opts(bs, "t");
  o.value.format = BROOK_KAFKA_CUSTOM;
  expect_invalid(&o, "CUSTOM");

  o = sink_opts(bs, "t");
  o.key.format = BROOK_KAFKA_CUSTOM;
  expect_invalid(&o, "CUSTOM");

  o = sink_opts(bs, "t");
  o.value.format = (brook_kafka_format_t)99;
  expect_invalid(&o, "serialiser");

  o = sink_opts(bs, "t");
  o.max_in_flight = 0;
  expect_invalid(&o, "max_in_flight");

  o = sink_opts(bs, "t");
  o.struct_size = (uint32_t)sizeof(o) + 64;
  expect_invalid(&o, "struct_size");

  expect_invalid(NULL, "topic"); /* NULL opts: the defaults, which have no topic */
  assert_int_equal(brook_sink_kafka(NULL, "k", &o), BROOK_ERR_INVALID_ARG);

  /* Positive controls: bootstrap.servers among the properties will do; so will topic_fn
   * alone. */
  char msg[512];
  o = sink_opts(NULL, "t");
  o.properties = (const char *const[]){"bootstrap.servers", bs, NULL};
  assert_int_equal(try_sink(&o, msg, sizeof(msg), 1), BROOK_OK);
  o = sink_opts(bs, NULL);
  o.topic_fn = route_all_but_4;
  assert_int_equal(try_sink(&o, msg, sizeof(msg), 1), BROOK_OK);
}

/* A bad librdkafka property (a bad value, an unknown name, a combination librdkafka refuses)
 * fails the run with a message that names it. */
static void test_bad_property(void **state) {
  (void)state;
  static const struct {
    const char *const props[5];
    const char *needle;
  } cases[] = {
      {{"acks", "sometimes", NULL}, "acks"},
      {{"no.such.property", "1", NULL}, "no.such.property"},
      {{"linger.ms", "-5", NULL}, "linger.ms"},
      {{"acks", "1", NULL}, "acks"}, /* refused with enable.idempotence=true */
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    log_capture_t log;
    log_capture_init(&log);
    char msg[1024];
    brook_err_t err = run_with_props(cases[c].props, 3, &log, msg, sizeof(msg));
    if (err == BROOK_OK || !strstr(msg, cases[c].needle))
      fail_msg("case %zu: %s: '%s' should name '%s'", c, brook_errname(err), msg, cases[c].needle);
    log_capture_free(&log);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_int64_serialiser),
      cmocka_unit_test(test_custom_serialiser), cmocka_unit_test(test_topic_fn),
      cmocka_unit_test(test_options_invalid),   cmocka_unit_test(test_bad_property),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
