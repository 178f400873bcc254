/* The Kafka sink (brook_sink_kafka) against the embedded broker: records come back from a
 * plain consumer exactly once with their keys, values, headers and timestamps, keyed records
 * partitioned as the Java client does; the serialisers (INT64, CUSTOM) and topic_fn; option
 * validation; secrets never reaching a log line or error message; a slow broker, injected
 * retriable errors and a broker down and up again lose and duplicate nothing; a permanent
 * refusal fails the run or goes to the dead-letter topic; max_in_flight holds the pipeline
 * back. Every Kafka wait has a deadline. */
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
#include <uv.h>

#include "broker_proc.h"
#include "child_report.h"
#include "kafka_readback.h"
#include "log_capture.h"
#include "run_deadline.h"
#include "wait.h"

#define WAIT_MS 30000
#define TS_BASE ((brook_time_t)1700000000000)
#define CANARY "CANARY-s3cr3t-42"

/* Bounds every delivery: a record nobody acknowledges fails the run instead of hanging it. */
static const char *const common_props[] = {"message.timeout.ms", "20000", "linger.ms", "5", NULL};

/* ---- helpers ---- */

static brook_runtime_t *new_runtime(brook_topology_t *t, log_capture_t *log, size_t batch_size) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (log) {
    o.log = log_capture_cb;
    o.log_opaque = log;
  }
  if (batch_size)
    o.batch_size = batch_size;
  brook_runtime_t *rt = NULL;
  brook_err_t err = brook_runtime_new(&rt, t, &o);
  if (err != BROOK_OK)
    fail_msg("brook_runtime_new: %s: %s", brook_errname(err), brook_topology_last_error(t));
  return rt;
}

static brook_topology_t *new_topology(brook_error_policy_t policy) {
  brook_topology_opts_t o;
  brook_topology_opts_init(&o);
  o.error_policy = policy;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, &o), BROOK_OK);
  return t;
}

static brook_kafka_sink_opts_t sink_opts(const char *bootstrap, const char *topic) {
  brook_kafka_sink_opts_t o;
  brook_kafka_sink_opts_init(&o);
  o.bootstrap_servers = bootstrap;
  o.topic = topic;
  o.properties = common_props;
  return o;
}

/* Runs rt to the end (asserting the status) and returns its stats; frees rt. */
static brook_runtime_stats_t run_expect(brook_runtime_t *rt, brook_err_t expect, char *msg,
                                        size_t msg_len, uint64_t *elapsed_ms) {
  brook_err_t err = run_with_deadline(rt, WAIT_MS, elapsed_ms);
  if (err != expect)
    fail_msg("run returned %s, expected %s: %s", brook_errname(err), brook_errname(expect),
             brook_runtime_last_error(rt));
  if (msg)
    snprintf(msg, msg_len, "%s", brook_runtime_last_error(rt));
  brook_runtime_stats_t st;
  memset(&st, 0, sizeof(st));
  st.struct_size = sizeof(st);
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  brook_runtime_free(rt);
  return st;
}

static void read_topic(const broker_proc_t *b, const char *topic, kr_topic_t *out) {
  char why[512];
  if (kr_read_topic(b->bootstrap, topic, WAIT_MS, out, why, sizeof(why)) != 0)
    fail_msg("reading back '%s': %s (%zu messages read)", topic, why, out->n);
}

static void start_broker(broker_proc_t *b, int n, const char *const *topics) {
  assert_int_equal(broker_start(b, n, topics, NULL), 0);
}

/* "value-<i>" -> i, or -1. */
static int value_index(const char *v, size_t len) {
  if (!v || len < 7 || len > 20 || memcmp(v, "value-", 6) != 0)
    return -1;
  char *end;
  long i = strtol(v + 6, &end, 10);
  return end == v + len && i >= 0 ? (int)i : -1;
}

/* Reads `topic` and checks it holds records "value-0" .. "value-<n-1>" exactly once each. */
static void expect_exactly_once(broker_proc_t *b, const char *topic, int n) {
  kr_topic_t kt;
  read_topic(b, topic, &kt);
  unsigned char *seen = calloc((size_t)n, 1);
  assert_non_null(seen);
  int dups = 0, distinct = 0;
  for (size_t j = 0; j < kt.n; j++) {
    int i = value_index(kt.msgs[j].value, kt.msgs[j].value_len);
    assert_true(i >= 0 && i < n);
    if (seen[i])
      dups++;
    else
      distinct++;
    seen[i] = 1;
  }
  if (dups || distinct != n)
    fail_msg("'%s': %d distinct of %d records, %d duplicates (%zu messages)", topic, distinct, n,
             dups, kt.n);
  free(seen);
  kr_topic_free(&kt);
}

/* ---- a generator of varied records (round trip) ---- */

#define RT_N 5000
#define RT_KEYS 53

typedef struct counter_gen {
  int n, next;
} counter_gen_t;

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

static char *ctx_strf(brook_ctx_t *ctx, size_t *len, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  char *p = brook_ctx_alloc(ctx, (size_t)n + 1);
  if (p)
    memcpy(p, tmp, (size_t)n + 1);
  *len = (size_t)n;
  return p;
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

static brook_err_t gen_plain(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  counter_gen_t *g = opaque;
  if (g->next >= g->n)
    return BROOK_DONE;
  int i = g->next++;
  out->key = ctx_strf(ctx, &out->key_len, "k%d", i);
  out->value = ctx_strf(ctx, &out->value_len, "value-%d", i);
  out->timestamp = TS_BASE + i;
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

/* Builds a generator -> Kafka sink pipeline with `props` (to 127.0.0.1:9, where nothing
 * listens) and runs it; returns the status, with the run's or the topology's message. */
static brook_err_t run_with_props(const char *const *props, int n_records, log_capture_t *log,
                                  char *msg, size_t msg_len) {
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {n_records, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts("127.0.0.1:9", "t");
  o.properties = props;
  brook_err_t err = brook_sink_kafka(s, "secretive", &o);
  if (err != BROOK_OK) {
    snprintf(msg, msg_len, "%s", brook_topology_last_error(t));
    brook_topology_free(t);
    return err;
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.log = log_capture_cb;
  ro.log_opaque = log;
  brook_runtime_t *rt = NULL;
  err = brook_runtime_new(&rt, t, &ro);
  if (err != BROOK_OK) {
    snprintf(msg, msg_len, "%s", brook_topology_last_error(t));
    brook_topology_free(t);
    return err;
  }
  err = run_with_deadline(rt, WAIT_MS, NULL);
  snprintf(msg, msg_len, "%s", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err;
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

/* ---- secrets ---- */

static void assert_no_canary(const char *what, const char *text) {
  if (strstr(text, "CANARY") || strstr(text, "s3cr3t"))
    fail_msg("the secret leaked into %s:\n%s", what, text);
}

static void test_property_is_secret(void **state) {
  (void)state;
  static const char *const secret[] = {"sasl.password",
                                       "ssl.key.password",
                                       "ssl.keystore.password",
                                       "ssl.key.pem",
                                       "sasl.oauthbearer.config",
                                       "sasl.oauthbearer.client.secret",
                                       "my.app.secret",
                                       "schema.registry.basic.auth.user.info.password",
                                       NULL};
  static const char *const plain[] = {"bootstrap.servers",
                                      "sasl.username",
                                      "security.protocol",
                                      "sasl.mechanisms",
                                      "client.id",
                                      "ssl.ca.location",
                                      "ssl.certificate.pem",
                                      "acks",
                                      "linger.ms",
                                      "",
                                      NULL};
  for (size_t i = 0; secret[i]; i++)
    if (!brook_kafka_property_is_secret(secret[i]))
      fail_msg("'%s' should be secret", secret[i]);
  for (size_t i = 0; plain[i]; i++)
    if (brook_kafka_property_is_secret(plain[i]))
      fail_msg("'%s' should not be secret", plain[i]);
  assert_int_equal(brook_kafka_property_is_secret(NULL), 0);
}

/* Configuration errors with a password set: the messages name the property and never show
 * the secret; an unknown secret-looking property has its value redacted. */
static void test_secret_config_errors(void **state) {
  (void)state;
  static const char *const combo[] = {"security.protocol",
                                      "plaintext",
                                      "sasl.username",
                                      "svc",
                                      "sasl.password",
                                      CANARY,
                                      "acks",
                                      "1",
                                      NULL};
  static const char *const unknown_secret[] = {"sasl.password", CANARY, "my.app.secret", CANARY,
                                               NULL};
  /* The keystore path happens to contain the password: it shows up in librdkafka's error. */
  static const char *const bad_secret_value[] = {"security.protocol",
                                                 "ssl",
                                                 "ssl.keystore.password",
                                                 CANARY,
                                                 "ssl.keystore.location",
                                                 "/nonexistent/" CANARY ".p12",
                                                 NULL};
  const char *const *cases[] = {combo, unknown_secret, bad_secret_value};
  const char *needles[] = {"acks", "my.app.secret", "ssl.keystore.location"};
  for (size_t c = 0; c < 3; c++) {
    log_capture_t log;
    log_capture_init(&log);
    char msg[1024];
    brook_err_t err = run_with_props(cases[c], 3, &log, msg, sizeof(msg));
    if (err == BROOK_OK || !strstr(msg, needles[c]))
      fail_msg("case %zu: %s: '%s' should name '%s'", c, brook_errname(err), msg, needles[c]);
    assert_no_canary("the error message", msg);
    assert_no_canary("the log", log_capture_text(&log));
    if (c == 1)
      assert_non_null(strstr(msg, "[redacted]"));
    log_capture_free(&log);
  }
}

/* A sink whose librdkafka properties make librdkafka warn while the producer is created
 * (group.id is a consumer property; sasl.* without a SASL security.protocol), with a
 * password set: the warnings reach the log, the pipeline still delivers everything and
 * finishes, and the password shows nowhere. */
static void test_config_warnings(void **state) {
  (void)state;
  static const char *const props[] = {"message.timeout.ms",
                                      "20000",
                                      "group.id",
                                      "not-for-producers",
                                      "security.protocol",
                                      "plaintext",
                                      "sasl.mechanisms",
                                      "PLAIN",
                                      "sasl.username",
                                      "svc",
                                      "sasl.password",
                                      CANARY,
                                      NULL};
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"warned:2", NULL});
  log_capture_t log;
  log_capture_init(&log);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {20, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "warned");
  o.properties = props;
  assert_int_equal(brook_sink_kafka(s, "warned_sink", &o), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, &log, 0);
  brook_err_t err = run_with_deadline(rt, 10000, NULL);
  if (err != BROOK_OK)
    fail_msg("run: %s: %s", brook_errname(err), brook_runtime_last_error(rt));
  assert_no_canary("the error message", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  assert_no_canary("the log", log_capture_text(&log));
  assert_non_null(strstr(log_capture_text(&log), "group.id"));
  assert_non_null(strstr(log_capture_text(&log), "sasl"));
  log_capture_free(&log);
  expect_exactly_once(&b, "warned", 20);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- secrets librdkafka itself quotes (OAUTHBEARER) ----
 * librdkafka 2.0.2 reports a bad sasl.oauthbearer.config with an error that quotes the
 * value from the first unrecognised item on (cut at its own buffer size). Its builtin
 * token refresher also crashes the process ~10 s later (a NULL queue in its retry timer),
 * so these runs happen in a child that the test kills after 8 s. */

typedef struct oauth_sink {
  const char *name;
  const char *config; /* sasl.oauthbearer.config */
} oauth_sink_t;

typedef struct oauth_scenario {
  const oauth_sink_t *sinks;
  size_t n;
  int debug_conf;   /* librdkafka's configuration dump on */
  int password_too; /* sasl.password = the secret as well (its value is then redacted
                       wherever it appears, which would hide a partial quote) */
} oauth_scenario_t;

/* Runs in the child: one generator -> Kafka sink per entry, nothing can connect without a
 * token, so every record times out after 2 s. Reports "log: <line>" per log line as it
 * comes, then "status: <code name>" and "message: <last error>". No cmocka here. */
static void oauth_log_line(int level, const char *msg, void *opaque) {
  (void)level;
  int fd = *(int *)opaque;
  child_puts(fd, "log: ");
  child_puts(fd, msg);
  child_puts(fd, "\n");
}

static void oauth_child(int fd, void *arg) {
  const oauth_scenario_t *sc = arg;
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return;
  counter_gen_t gens[4];
  for (size_t i = 0; i < sc->n && i < 4; i++) {
    const char *props[] = {"security.protocol",
                           "sasl_plaintext",
                           "sasl.mechanisms",
                           "OAUTHBEARER",
                           "enable.sasl.oauthbearer.unsecure.jwt",
                           "true",
                           "sasl.oauthbearer.config",
                           sc->sinks[i].config,
                           "message.timeout.ms",
                           "2000",
                           sc->debug_conf ? "debug" : "client.id",
                           sc->debug_conf ? "conf" : "brook-test",
                           sc->password_too ? "sasl.password" : NULL,
                           CANARY,
                           NULL};
    gens[i] = (counter_gen_t){2, 0};
    char gname[32];
    snprintf(gname, sizeof(gname), "gen%zu", i);
    brook_stream_t *s = brook_source_generator(t, gname, gen_plain, &gens[i], NULL);
    brook_kafka_sink_opts_t o;
    brook_kafka_sink_opts_init(&o);
    o.bootstrap_servers = "127.0.0.1:9";
    o.topic = "t";
    o.properties = props;
    brook_sink_kafka(s, sc->sinks[i].name, &o);
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.log = oauth_log_line;
  ro.log_opaque = &fd;
  brook_runtime_t *rt = NULL;
  brook_err_t err = brook_runtime_new(&rt, t, &ro);
  const char *msg = brook_topology_last_error(t);
  if (err == BROOK_OK) {
    err = brook_runtime_run(rt);
    msg = brook_runtime_last_error(rt);
  }
  char line[1200];
  snprintf(line, sizeof(line), "status: %s\nmessage: %s\n", brook_errname(err), msg);
  child_puts(fd, line);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* Runs the scenario in a child; fails the test if it did not report a finished run. */
static char *run_oauth_scenario(const oauth_scenario_t *sc) {
  char *report = NULL;
  int code = child_report(oauth_child, (void *)sc, 8000, &report);
  if (code != 0 || !strstr(report, "status: ")) {
    print_error("what the child reported:\n%s\n", report);
    free(report);
    fail_msg("the pipeline %s (exit code %d)",
             code < 0 ? "did not finish within 8 s" : "did not finish normally", code);
  }
  return report;
}

/* Checks a child's report: every needle is in it and the secret is not; frees it. */
static void check_report(char *report, const char *const *needles) {
  const char *missing = NULL;
  for (size_t i = 0; needles[i] && !missing; i++)
    if (!strstr(report, needles[i]))
      missing = needles[i];
  int leaked = strstr(report, "CANARY") || strstr(report, "s3cr3t");
  if (missing || leaked) {
    print_error("what the child reported:\n%s\n", report);
    free(report);
    if (leaked)
      fail_msg("the secret leaked into the log or the error message (above)");
    fail_msg("'%s' is not in the report", missing);
  }
  free(report);
}

/* The whole value quoted, with librdkafka's configuration dump on and a password set: the
 * run fails (no token, so no delivery) and "[redacted]" stands where the secret would be. */
static void test_secret_runtime_logs(void **state) {
  (void)state;
  static const oauth_sink_t sinks[] = {{"whole_echo", CANARY " principal=svc"}};
  oauth_scenario_t sc = {sinks, 1, 1, 1};
  check_report(run_oauth_scenario(&sc),
               (const char *const[]){"status: BROOK_ERR_KAFKA", "OAUTHBEARER", "[redacted]", NULL});
}

/* Only PART of the secret quoted: what follows an unrecognised item ("lifeSecond" for
 * "lifeSeconds"), and a long value cut short by librdkafka's buffer. Brook must not pass
 * the secret on in either case. */
static void test_secret_partial_echo(void **state) {
  (void)state;
  char longcfg[1200];
  int n = snprintf(longcfg, sizeof(longcfg), "%s principal=svc extension_pad=", CANARY);
  memset(longcfg + n, 'x', sizeof(longcfg) - (size_t)n - 1);
  longcfg[sizeof(longcfg) - 1] = '\0';
  const oauth_sink_t sinks[] = {
      {"suffix_echo", "principal=svc lifeSecond=60 extension_apikey=" CANARY},
      {"cut_echo", longcfg}};
  oauth_scenario_t sc = {sinks, 2, 0, 0};
  check_report(run_oauth_scenario(&sc),
               (const char *const[]){"status: BROOK_ERR_KAFKA", "'suffix_echo': _AUTHENTICATION",
                                     "'cut_echo': _AUTHENTICATION", NULL});
}

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
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_int64_serialiser),
      cmocka_unit_test(test_custom_serialiser),
      cmocka_unit_test(test_topic_fn),
      cmocka_unit_test(test_options_invalid),
      cmocka_unit_test(test_bad_property),
      cmocka_unit_test(test_property_is_secret),
      cmocka_unit_test(test_secret_config_errors),
      cmocka_unit_test(test_config_warnings),
      cmocka_unit_test(test_secret_runtime_logs),
      cmocka_unit_test(test_secret_partial_echo),
      cmocka_unit_test(test_slow_broker_and_retries),
      cmocka_unit_test(test_broker_down_and_up),
      cmocka_unit_test(test_broker_unavailable_times_out),
      cmocka_unit_test(test_permanent_failure_fails_run),
      cmocka_unit_test(test_permanent_failure_dead_letter),
      cmocka_unit_test(test_max_in_flight_holds_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
