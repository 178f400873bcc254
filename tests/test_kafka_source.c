/* The Kafka source through whole pipelines on the embedded broker: Kafka -> map -> Kafka
 * round trips (group subscription and explicit assignment), offsets committed only for
 * delivered output and resumed after a restart, malformed records skipped or dead-lettered
 * with their error headers, per-partition event time, and option validation. */
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

#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/kafka_helpers.h"

/* ---- the pipeline: in -> upper-case the value -> out ---- */

static brook_err_t upper(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char *v = brook_ctx_alloc(ctx, rec->value_len + 1);
  if (!v)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < rec->value_len; i++) {
    char c = ((const char *)rec->value)[i];
    v[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
  }
  rec->value = v;
  return BROOK_OK;
}

static brook_topology_t *pipeline(const char *bootstrap, const char *group,
                                  const brook_kafka_source_opts_t *custom) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  if (custom)
    so = *custom;
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  static const char *const in_topics[] = {"in", NULL};
  if (!so.partitions)
    so.topics = in_topics;
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = bootstrap;
  ko.topic = "out";
  assert_int_equal(brook_sink_kafka(brook_map(in, upper, NULL), "out", &ko), BROOK_OK);
  if (brook_topology_validate(t) != BROOK_OK)
    fail_msg("topology: %s", brook_topology_last_error(t));
  return t;
}

typedef struct seen {
  unsigned char *hit;
  int n, distinct, dups;
} seen_t;

static void note(const rd_kafka_message_t *m, void *opaque) {
  seen_t *s = opaque;
  char v[64];
  size_t n = m->len < sizeof(v) - 1 ? m->len : sizeof(v) - 1;
  memcpy(v, m->payload, n);
  v[n] = '\0';
  int i;
  if (sscanf(v, "VALUE-%d", &i) != 1 || i < 0 || i >= s->n)
    fail_msg("unexpected output value '%s'", v);
  if (s->hit[i])
    s->dups++;
  else
    s->distinct++;
  s->hit[i] = 1;
}

/* Reads `out` until values VALUE-0 .. VALUE-(n-1) have all been seen. */
static void expect_all(const char *bootstrap, int n, seen_t *s) {
  s->hit = calloc((size_t)n, 1);
  s->n = n;
  s->distinct = s->dups = 0;
  assert_non_null(s->hit);
  rd_kafka_t *r = kh_reader(bootstrap, "out", 3);
  long long deadline = kh_now_ms() + KH_TIMEOUT_MS;
  while (s->distinct < n && kh_now_ms() < deadline)
    kh_read(r, n - s->distinct, 500, note, s);
  kh_reader_close(r);
  if (s->distinct < n)
    fail_msg("only %d of %d records came out", s->distinct, n);
  free(s->hit);
}

/* Subscription in a group: every record comes out transformed, and after the stop the
 * group's committed offsets cover all the input. */
static void test_round_trip_subscribe(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 3, (const char *const[]){"in:4", "out:3", NULL}, NULL), 0);
  const int n = 3000;
  kh_produce(b.bootstrap, "in", "value-", 0, n, 97);
  brook_topology_t *t = pipeline(b.bootstrap, "app1", NULL);
  bg_run_t r;
  bg_start(&r, t);
  seen_t s;
  expect_all(b.bootstrap, n, &s);
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, n);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  int64_t total = 0;
  for (int p = 0; p < 4; p++) {
    int64_t off = kh_committed(b.bootstrap, "app1", "in", p);
    assert_true(off >= 0);
    total += off;
  }
  assert_int_equal(total, n); /* committed = the end of every partition */
  assert_int_equal(broker_stop(&b), 0);
}

/* A restart resumes from the committed offsets: the second run sees only the new records. */
static void test_restart_resumes(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:2", "out:3", NULL}, NULL), 0);
  kh_produce(b.bootstrap, "in", "value-", 0, 500, 13);
  brook_topology_t *t = pipeline(b.bootstrap, "app2", NULL);
  bg_run_t r;
  bg_start(&r, t);
  seen_t s;
  expect_all(b.bootstrap, 500, &s);
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_free(r.rt);
  kh_produce(b.bootstrap, "in", "value-", 500, 300, 13);
  bg_start(&r, t);
  expect_all(b.bootstrap, 800, &s);
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, 300); /* only the new ones */
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

/* Explicit assignment of two of three partitions: only their records come out. */
static void test_explicit_assignment(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", "out:3", NULL}, NULL), 0);
  kh_produce(b.bootstrap, "in", "value-", 0, 400, 7);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  brook_kafka_partition_t parts[] = {{"in", 0, BROOK_KAFKA_OFFSET_BEGINNING}};
  so.partitions = parts;
  so.n_partitions = 1;
  brook_topology_t *t = pipeline(b.bootstrap, "app3", &so);
  bg_run_t r;
  bg_start(&r, t);
  seen_t s;
  expect_all(b.bootstrap, 400, &s);
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  assert_int_equal(kh_committed(b.bootstrap, "app3", "in", 0), 400);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- malformed input ---- */

typedef struct dl {
  int count;
  char error[64], topic[32], partition[8], offset[16], value[16];
} dl_t;

static void header(const rd_kafka_message_t *m, const char *name, char *out, size_t cap) {
  rd_kafka_headers_t *h = NULL;
  const void *v;
  size_t sz;
  out[0] = '\0';
  if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &sz))
    return;
  size_t n = sz < cap - 1 ? sz : cap - 1;
  memcpy(out, v, n);
  out[n] = '\0';
}

static void note_dead(const rd_kafka_message_t *m, void *opaque) {
  dl_t *d = opaque;
  d->count++;
  header(m, "brook.error", d->error, sizeof(d->error));
  header(m, "brook.source.topic", d->topic, sizeof(d->topic));
  header(m, "brook.source.partition", d->partition, sizeof(d->partition));
  header(m, "brook.source.offset", d->offset, sizeof(d->offset));
  size_t n = m->len < sizeof(d->value) - 1 ? m->len : sizeof(d->value) - 1;
  memcpy(d->value, m->payload, n);
  d->value[n] = '\0';
}

static int64_t sum_seen;
static int n_seen;

static brook_err_t add_up(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  int64_t v; /* runs on the pipeline's thread: no cmocka assertions here */
  if (rec->value_len != sizeof(v))
    return BROOK_ERR_USER;
  memcpy(&v, rec->value, sizeof(v));
  sum_seen += v;
  n_seen++;
  return BROOK_OK;
}

/* Waits (deadline) until `group` has committed `want` or more on topic/partition. One client
 * asks every 100 ms: a new client per question in a tight loop (as this test once did) kept a
 * core and the broker busy with connections, starving the pipeline it waits for on a loaded
 * 2-core machine. */
static void wait_committed(const char *bootstrap, const char *group, const char *topic,
                           int32_t partition, int64_t want, int timeout_ms) {
  rd_kafka_t *c = kh_client(
      RD_KAFKA_CONSUMER, bootstrap,
      (const char *const[]){"group.id", group, "enable.auto.commit", "false", NULL}, NULL, NULL);
  long long deadline = kh_now_ms() + timeout_ms;
  int64_t off = -1;
  while (kh_now_ms() < deadline) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    if (rd_kafka_committed(c, l, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR)
      off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (off >= want)
      break;
    rd_kafka_poll(c, 100); /* the pause between questions */
  }
  rd_kafka_destroy(c);
}

/* Values must be 8-byte big-endian int64s; a 3-byte one is skipped (and counted) or
 * dead-lettered with its origin, and never stops the others. */
static void run_malformed(brook_kafka_malformed_t policy) {
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"nums:1", "dead:1", NULL}, NULL), 0);
  for (int i = 1; i <= 5; i++) {
    unsigned char be[8] = {0, 0, 0, 0, 0, 0, 0, (unsigned char)i};
    kh_produce_raw(b.bootstrap, "nums", "k", 1, be, 8);
    if (i == 3)
      kh_produce_raw(b.bootstrap, "nums", "bad", 3, "xyz", 3); /* offset 3 */
  }
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = b.bootstrap;
  so.group_id = "nums-app";
  so.topics = (const char *const[]){"nums", NULL};
  so.value.format = BROOK_KAFKA_INT64;
  so.on_malformed = policy;
  so.dead_letter_topic = "dead";
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  assert_int_equal(brook_sink_callback(brook_source_kafka(t, "nums", &so), add_up, NULL, NULL),
                   BROOK_OK);
  sum_seen = n_seen = 0;
  bg_run_t r;
  bg_start(&r, t);
  /* The sink runs on the pipeline's thread: wait for the committed offset instead. */
  wait_committed(b.bootstrap, "nums-app", "nums", 0, 6, KH_TIMEOUT_MS);
  assert_int_equal(bg_stop(&r), BROOK_OK);
  assert_int_equal(n_seen, 5);
  assert_int_equal(sum_seen, 15);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  dl_t d = {0};
  rd_kafka_t *rd = kh_reader(b.bootstrap, "dead", 1);
  if (policy == BROOK_KAFKA_MALFORMED_SKIP) {
    assert_int_equal(st.records_skipped, 1);
    assert_int_equal(kh_read(rd, 1, 1000, note_dead, &d), 0);
  } else {
    assert_int_equal(st.records_dead_lettered, 1);
    assert_int_equal(st.records_skipped, 0);
    assert_int_equal(kh_read(rd, 1, KH_TIMEOUT_MS, note_dead, &d), 1);
    assert_string_equal(d.error, "BROOK_ERR_CORRUPT");
    assert_string_equal(d.topic, "nums");
    assert_string_equal(d.partition, "0");
    assert_string_equal(d.offset, "3");
    assert_string_equal(d.value, "xyz");
  }
  kh_reader_close(rd);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

static void test_malformed_skip(void **state) {
  (void)state;
  run_malformed(BROOK_KAFKA_MALFORMED_SKIP);
}

static void test_malformed_dead_letter(void **state) {
  (void)state;
  run_malformed(BROOK_KAFKA_MALFORMED_DEAD_LETTER);
}

/* The default policy stops the pipeline with a message naming the offset. */
static void test_malformed_fails(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"nums:1", NULL}, NULL), 0);
  kh_produce_raw(b.bootstrap, "nums", "bad", 3, "xyz", 3);
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = b.bootstrap;
  so.group_id = "fail-app";
  so.topics = (const char *const[]){"nums", NULL};
  so.value.format = BROOK_KAFKA_INT64;
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  assert_int_equal(brook_sink_callback(brook_source_kafka(t, "nums", &so), add_up, NULL, NULL),
                   BROOK_OK);
  brook_runtime_t *rt;
  assert_int_equal(brook_runtime_new(&rt, t, kh_rt_opts()), BROOK_OK);
  assert_int_equal(brook_runtime_run(rt), BROOK_ERR_CORRUPT);
  const char *msg = brook_runtime_last_error(rt);
  assert_non_null(strstr(msg, "offset 0"));
  assert_non_null(strstr(msg, "nums"));
  brook_runtime_free(rt);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

/* Misuse is refused when the topology is built, with a message. */
static void test_option_validation(void **state) {
  (void)state;
  struct {
    const char *name, *group, *bootstrap;
    int topics, parts, dlq_policy;
    const char *expect;
  } cases[] = {
      {NULL, "g", "x:1", 1, 0, 0, "name"},
      {"s", NULL, "x:1", 1, 0, 0, "group_id"},
      {"s", "g", "x:1", 0, 0, 0,
       "topics (a subscription) or partitions (an explicit "
       "assignment) is required"},
      {"s", "g", "x:1", 1, 1, 0, "either topics"},
      {"s", "g", NULL, 1, 0, 0, "bootstrap_servers"},
      {"s", "g", "x:1", 1, 0, 1, "dead_letter_topic"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    brook_topology_t *t;
    assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
    brook_kafka_source_opts_t so;
    brook_kafka_source_opts_init(&so);
    brook_kafka_partition_t p = {"in", 0, BROOK_KAFKA_OFFSET_BEGINNING};
    so.group_id = cases[i].group;
    so.bootstrap_servers = cases[i].bootstrap;
    static const char *const topics[] = {"in", NULL};
    if (cases[i].topics)
      so.topics = topics;
    if (cases[i].parts) {
      so.partitions = &p;
      so.n_partitions = 1;
    }
    if (cases[i].dlq_policy)
      so.on_malformed = BROOK_KAFKA_MALFORMED_DEAD_LETTER;
    assert_null(brook_source_kafka(t, cases[i].name, &so));
    assert_int_not_equal(brook_topology_error(t), BROOK_OK);
    if (!strstr(brook_topology_last_error(t), cases[i].expect))
      fail_msg("case %zu: message '%s' lacks '%s'", i, brook_topology_last_error(t),
               cases[i].expect);
    brook_topology_free(t);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_option_validation), cmocka_unit_test(test_round_trip_subscribe),
      cmocka_unit_test(test_restart_resumes),   cmocka_unit_test(test_explicit_assignment),
      cmocka_unit_test(test_malformed_skip),    cmocka_unit_test(test_malformed_dead_letter),
      cmocka_unit_test(test_malformed_fails),
  };
  if (getenv("BROOK_TEST_FILTER")) /* one test, e.g. BROOK_TEST_FILTER=test_missing_topic_stop */
    cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
