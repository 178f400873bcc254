/* Dead letters through Kafka on the embedded broker (issue 11, items B and D): a dead letter
 * is always deliverable (a payload too large for the producer's message.max.bytes is cut to
 * fit and the cut is said in brook.error.original_size; a letter the brokers refuse as too
 * large is sent once more, cut further), so one huge malformed message cannot put a pipeline
 * into a crash loop; and every dead letter, from the source and from the error stream, carries
 * the coordinates of its input, with brook's headers unambiguous (incoming brook.* headers are
 * renamed original.brook.*). Every wait has a deadline. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define BIG (1536 * 1024) /* 1.5 MiB: over the producer's default message.max.bytes */

/* ---- input: messages with headers, some larger than a default producer allows ---- */

typedef struct in_msg {
  const void *value;
  size_t len;
  const char *hname, *hvalue; /* one header, or NULL */
} in_msg_t;

static void count_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  int *acks = opaque;
  (*acks) += m->err ? 1000 : 1;
}

/* Produces `msgs` in order to partition 0 of `topic` and waits for every ack. */
static void produce(const char *bootstrap, const char *topic, const in_msg_t *msgs, int n) {
  int acks = 0;
  rd_kafka_t *p =
      kh_client(RD_KAFKA_PRODUCER, bootstrap,
                (const char *const[]){"message.max.bytes", "4000000", "linger.ms", "0", NULL},
                count_dr, &acks);
  for (int i = 0; i < n; i++) {
    rd_kafka_headers_t *h = NULL;
    if (msgs[i].hname) {
      h = rd_kafka_headers_new(1);
      rd_kafka_header_add(h, msgs[i].hname, -1, msgs[i].hvalue, -1);
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_VALUE((void *)(uintptr_t)msgs[i].value, msgs[i].len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_flush(p, KH_TIMEOUT_MS); /* one at a time: offsets are the array's indexes */
  }
  assert_int_equal(acks, n);
  rd_kafka_destroy(p);
}

/* ---- a runtime on its own thread, whose end the test can see ---- */

static atomic_int n_valid; /* records that reached the main sink */

typedef struct run {
  brook_runtime_t *rt;
  pthread_t thread;
  atomic_int ended;
  brook_err_t result;
} run_t;

static void *run_main(void *arg) {
  run_t *r = arg;
  r->result = brook_runtime_run(r->rt);
  atomic_store(&r->ended, 1);
  return NULL;
}

static void run_start(run_t *r, brook_topology_t *t) {
  r->rt = NULL;
  atomic_init(&r->ended, 0);
  if (brook_runtime_new(&r->rt, t, kh_rt_opts()) != BROOK_OK)
    fail_msg("runtime: %s", brook_runtime_last_error(r->rt));
  assert_int_equal(pthread_create(&r->thread, NULL, run_main, r), 0);
}

/* Runs `t` until the group's committed offset of partition 0 of "in" reaches `want` (or the
 * run ends, or the deadline passes), then stops it; fails the test unless the run succeeded.
 * Returns the runtime, for its stats (the caller frees it). */
static brook_runtime_t *run_to_offset(const char *bootstrap, brook_topology_t *t, const char *group,
                                      int64_t want) {
  atomic_store(&n_valid, 0);
  run_t r;
  run_start(&r, t);
  long long deadline = kh_now_ms() + KH_TIMEOUT_MS;
  while (!atomic_load(&r.ended) && kh_now_ms() < deadline &&
         kh_committed(bootstrap, group, "in", 0) < want) {
  }
  brook_runtime_stop(r.rt);
  pthread_join(r.thread, NULL);
  if (r.result != BROOK_OK)
    fail_msg("the run failed: %s", brook_runtime_last_error(r.rt));
  return r.rt;
}

static brook_runtime_stats_t stats_of(brook_runtime_t *rt) {
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  return st;
}

static void read_all(const char *bootstrap, const char *topic, kr_topic_t *out) {
  char why[512];
  if (kr_read_topic(bootstrap, topic, KH_TIMEOUT_MS, out, why, sizeof(why)) != 0)
    fail_msg("reading %s: %s", topic, why);
}

static void expect_header(const kr_msg_t *m, const char *name, const char *want) {
  const char *v = kr_header(m, name, NULL);
  if (!v)
    fail_msg("dead letter without header %s", name);
  if (strcmp(v, want) != 0)
    fail_msg("header %s is '%s', expected '%s'", name, v, want);
}

/* The dead letter whose brook.source.offset is `offset` (fails the test if none). */
static const kr_msg_t *by_offset(const kr_topic_t *t, const char *offset) {
  for (size_t i = 0; i < t->n; i++) {
    const char *v = kr_header(&t->msgs[i], "brook.source.offset", NULL);
    if (v && strcmp(v, offset) == 0)
      return &t->msgs[i];
  }
  fail_msg("no dead letter with brook.source.offset %s (of %zu)", offset, t->n);
  return NULL;
}

static brook_err_t count_valid(const brook_record_t *rec, void *opaque) {
  (void)rec;
  (void)opaque;
  atomic_fetch_add(&n_valid, 1);
  return BROOK_OK;
}

/* ---- item B: the source's dead letters ---- */

static brook_topology_t *utf8_pipeline(const char *bootstrap, const char *group) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){"in", NULL};
  so.value.format = BROOK_KAFKA_STRING;
  so.on_malformed = BROOK_KAFKA_MALFORMED_DEAD_LETTER;
  so.dead_letter_topic = "dead";
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  assert_int_equal(brook_sink_callback(brook_source_kafka(t, "in", &so), count_valid, NULL, NULL),
                   BROOK_OK);
  return t;
}

/* The crash loop: a 1.5 MiB malformed message, dead-letter policy, the dead-letter producer
 * with its default message.max.bytes (1,000,000). The run goes past it, the dead letter
 * arrives cut to fit with its original size, the offset is committed, and a restart does not
 * see the message again. */
static void test_source_huge_malformed_truncated(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", "dead:1", NULL}, NULL), 0);
  unsigned char *huge = malloc(BIG);
  assert_non_null(huge);
  memset(huge, 0xff, BIG); /* not UTF-8 */
  in_msg_t msgs[] = {
      {"before", 6, NULL, NULL}, {huge, BIG, "trace", "t-1"}, {"after", 5, NULL, NULL}};
  produce(b.bootstrap, "in", msgs, 3);
  brook_topology_t *t = utf8_pipeline(b.bootstrap, "huge-app");
  brook_runtime_t *rt = run_to_offset(b.bootstrap, t, "huge-app", 3);
  assert_int_equal(atomic_load(&n_valid), 2);
  assert_int_equal(stats_of(rt).records_dead_lettered, 1);
  brook_runtime_free(rt);

  kr_topic_t dead;
  read_all(b.bootstrap, "dead", &dead);
  assert_int_equal(dead.n, 1);
  const kr_msg_t *m = &dead.msgs[0];
  assert_true(m->value_len > 900000 && m->value_len < 1000000);
  for (size_t i = 0; i < m->value_len; i++) /* a prefix of the original */
    assert_int_equal((unsigned char)m->value[i], 0xff);
  char size[32];
  snprintf(size, sizeof(size), "%d", BIG);
  expect_header(m, "brook.error.original_size", size);
  expect_header(m, "brook.error", "BROOK_ERR_CORRUPT");
  expect_header(m, "brook.source.topic", "in");
  expect_header(m, "brook.source.partition", "0");
  expect_header(m, "brook.source.offset", "1");
  expect_header(m, "trace", "t-1");
  kr_topic_free(&dead);

  /* The restart resumes after it: one new valid message, nothing dead-lettered again. */
  in_msg_t later = {"later", 5, NULL, NULL};
  produce(b.bootstrap, "in", &later, 1);
  rt = run_to_offset(b.bootstrap, t, "huge-app", 4);
  assert_int_equal(atomic_load(&n_valid), 1);
  assert_int_equal(stats_of(rt).records_dead_lettered, 0);
  brook_runtime_free(rt);
  brook_topology_free(t);
  free(huge);
  assert_int_equal(broker_stop(&b), 0);
}

#define MSG_SIZE_TOO_LARGE 10 /* Kafka's MESSAGE_TOO_LARGE */

/* The brokers' limit may be lower than the producer's: a dead letter they refuse as too large
 * (reported asynchronously) is sent once more, cut, rather than failing the run. */
static void test_source_dead_letter_refused_by_broker_retried(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", "dead:1", NULL}, NULL), 0);
  unsigned char bad[3000];
  memset(bad, 0xfe, sizeof(bad));
  in_msg_t msgs[] = {{bad, sizeof(bad), NULL, NULL}, {"after", 5, NULL, NULL}};
  produce(b.bootstrap, "in", msgs, 2);
  /* The next Produce request, the dead letter's, is refused as too large. */
  assert_int_equal(broker_cmd(&b, "error 0 %d 1", MSG_SIZE_TOO_LARGE), 0);
  brook_topology_t *t = utf8_pipeline(b.bootstrap, "refused-app");
  brook_runtime_free(run_to_offset(b.bootstrap, t, "refused-app", 2));
  assert_int_equal(atomic_load(&n_valid), 1);
  brook_topology_free(t);

  kr_topic_t dead;
  read_all(b.bootstrap, "dead", &dead);
  assert_int_equal(dead.n, 1);
  const kr_msg_t *m = &dead.msgs[0];
  assert_true(m->value_len < sizeof(bad));
  assert_true(m->value_len > 0);
  expect_header(m, "brook.error.original_size", "3000");
  expect_header(m, "brook.source.offset", "0");
  kr_topic_free(&dead);
  assert_int_equal(broker_stop(&b), 0);
}

/* A producer's own "brook.error" header on a malformed message: the dead letter's brook.error
 * is brook's (the producer's is kept as original.brook.error), not the producer's. */
static void test_source_dead_letter_forged_header(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", "dead:1", NULL}, NULL), 0);
  in_msg_t msgs[] = {{"\xff\xfe", 2, "brook.error", "forged"}, {"after", 5, NULL, NULL}};
  produce(b.bootstrap, "in", msgs, 2);
  brook_topology_t *t = utf8_pipeline(b.bootstrap, "forged-app");
  brook_runtime_free(run_to_offset(b.bootstrap, t, "forged-app", 2));
  brook_topology_free(t);
  kr_topic_t dead;
  read_all(b.bootstrap, "dead", &dead);
  assert_int_equal(dead.n, 1);
  const kr_msg_t *m = &dead.msgs[0];
  expect_header(m, "brook.error", "BROOK_ERR_CORRUPT");
  expect_header(m, "original.brook.error", "forged");
  expect_header(m, "brook.source.offset", "0");
  assert_null(kr_header(m, "brook.error.original_size", NULL));
  kr_topic_free(&dead);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- items B and D: the error stream into a Kafka sink ---- */

/* Fails every record whose value starts with "bad". Keeps the value otherwise. */
static brook_err_t reject_bad(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  if (rec->value_len >= 3 && memcmp(rec->value, "bad", 3) == 0) {
    brook_ctx_set_error(ctx, "bad record");
    return BROOK_ERR_USER;
  }
  return BROOK_OK;
}

/* Replaces the value (as a parser would): "BAD..." becomes "bad-prs", which the next map
 * fails; the dead letter must still name the input message. */
static brook_err_t parse(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char *v = brook_ctx_alloc(ctx, 8);
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, rec->value_len >= 3 && memcmp(rec->value, "BAD", 3) == 0 ? "bad-prs" : "goodprs", 8);
  rec->value = v;
  rec->value_len = 7;
  return BROOK_OK;
}

static brook_topology_t *routed_pipeline(const char *bootstrap, const char *group) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_topology_set_error_policy(t, BROOK_ON_ERROR_ROUTE);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){"in", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  brook_stream_t *checked = brook_map(brook_map(in, reject_bad, NULL), parse, NULL);
  assert_int_equal(
      brook_sink_callback(brook_map(checked, reject_bad, NULL), count_valid, NULL, NULL), BROOK_OK);
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = bootstrap;
  ko.topic = "errors";
  assert_int_equal(brook_sink_kafka(brook_error_stream(t), "errors-out", &ko), BROOK_OK);
  if (brook_topology_validate(t) != BROOK_OK)
    fail_msg("topology: %s", brook_topology_last_error(t));
  return t;
}

/* Runs routed_pipeline over `msgs` (produced to "in" unless NULL: already there) until all n
 * are committed, checking that `valid` reached the main sink; the error
 * records written go to *errs (the caller frees it). Returns the topology, for a restart. */
static brook_topology_t *run_routed(broker_proc_t *b, const char *group, const in_msg_t *msgs,
                                    int n, int valid, kr_topic_t *errs) {
  if (msgs)
    produce(b->bootstrap, "in", msgs, n);
  brook_topology_t *t = routed_pipeline(b->bootstrap, group);
  brook_runtime_free(run_to_offset(b->bootstrap, t, group, n));
  assert_int_equal(atomic_load(&n_valid), valid);
  read_all(b->bootstrap, "errors", errs);
  return t;
}

/* An error-stream record of 1.5 MiB written by a Kafka sink is cut to fit (it used to fail the
 * run, and every restart, on the same message); the offset is committed and a restart has
 * nothing left to do. */
static void test_error_stream_huge_record_cut(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", "errors:1", NULL}, NULL), 0);
  char *huge = malloc(BIG);
  assert_non_null(huge);
  memset(huge, 'x', BIG);
  memcpy(huge, "bad", 3);
  in_msg_t msgs[] = {{"good-0", 6, NULL, NULL}, {huge, BIG, NULL, NULL}, {"good-1", 6, NULL, NULL}};
  kr_topic_t errs;
  brook_topology_t *t = run_routed(&b, "huge-routed", msgs, 3, 2, &errs);
  assert_int_equal(errs.n, 1);
  const kr_msg_t *m = &errs.msgs[0];
  assert_true(m->value_len < 1000000 && m->value_len > 900000);
  assert_memory_equal(m->value, "bad", 3);
  char size[32];
  snprintf(size, sizeof(size), "%d", BIG);
  expect_header(m, "brook.error.original_size", size);
  expect_header(m, "brook.error", "BROOK_ERR_USER");
  expect_header(m, "brook.error.message", "bad record");
  kr_topic_free(&errs);

  brook_runtime_t *rt = run_to_offset(b.bootstrap, t, "huge-routed", 3);
  assert_int_equal(stats_of(rt).records_routed, 0);
  brook_runtime_free(rt);
  brook_topology_free(t);
  free(huge);
  assert_int_equal(broker_stop(&b), 0);
}

/* An error-stream record the brokers refuse as too large (their limit below the producer's)
 * is sent once more, cut, with its error headers and coordinates. */
static void test_error_stream_record_refused_by_broker_retried(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", "errors:1", NULL}, NULL), 0);
  char bad[3000];
  memset(bad, 'x', sizeof(bad));
  memcpy(bad, "bad", 3);
  in_msg_t msgs[] = {{bad, sizeof(bad), NULL, NULL}, {"good-0", 6, NULL, NULL}};
  produce(b.bootstrap, "in", msgs, 2);
  assert_int_equal(broker_cmd(&b, "error 0 %d 1", MSG_SIZE_TOO_LARGE), 0);
  kr_topic_t errs;
  brook_topology_t *t = run_routed(&b, "refused-routed", NULL, 2, 1, &errs);
  assert_int_equal(errs.n, 1);
  const kr_msg_t *m = &errs.msgs[0];
  assert_true(m->value_len > 0 && m->value_len < sizeof(bad));
  assert_memory_equal(m->value, "bad", 3);
  expect_header(m, "brook.error.original_size", "3000");
  expect_header(m, "brook.error", "BROOK_ERR_USER");
  expect_header(m, "brook.source.offset", "0");
  kr_topic_free(&errs);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

/* Error-stream records name their input message (brook.source.*), whether the failing operator
 * saw the message's own bytes or a parsed value, with or without message headers; a producer's
 * own "brook.error" header never shadows brook's (kept as original.brook.error). */
static void test_error_stream_traced_to_input(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", "errors:1", NULL}, NULL), 0);
  in_msg_t msgs[] = {
      {"good-0", 6, NULL, NULL},
      {"bad-forged", 10, "brook.error", "forged"}, /* 1: fails in the first map */
      {"good-1", 6, "trace", "t-2"},
      {"BAD", 3, NULL, NULL},         /* 3: fails after parse replaced it, no message headers */
      {"BAD-hdr", 7, "trace", "t-4"}, /* 4: the same, with message headers */
      {"bad-late", 8, NULL, NULL}};   /* 5: fails in the first map, no message headers */
  kr_topic_t errs;
  brook_topology_t *t = run_routed(&b, "traced", msgs, 6, 2, &errs);
  assert_int_equal(errs.n, 4);
  const kr_msg_t *m = by_offset(&errs, "1");
  assert_string_equal(m->value, "bad-forged");
  expect_header(m, "brook.error", "BROOK_ERR_USER");
  expect_header(m, "brook.error.message", "bad record");
  expect_header(m, "original.brook.error", "forged");
  expect_header(m, "brook.source.topic", "in");
  expect_header(m, "brook.source.partition", "0");
  assert_null(kr_header(m, "brook.error.original_size", NULL));
  m = by_offset(&errs, "3");
  assert_string_equal(m->value, "bad-prs");
  expect_header(m, "brook.source.topic", "in");
  m = by_offset(&errs, "4");
  assert_string_equal(m->value, "bad-prs");
  expect_header(m, "trace", "t-4");
  m = by_offset(&errs, "5");
  assert_string_equal(m->value, "bad-late");
  expect_header(m, "brook.source.partition", "0");
  kr_topic_free(&errs);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_source_huge_malformed_truncated),
      cmocka_unit_test(test_source_dead_letter_refused_by_broker_retried),
      cmocka_unit_test(test_source_dead_letter_forged_header),
      cmocka_unit_test(test_error_stream_huge_record_cut),
      cmocka_unit_test(test_error_stream_record_refused_by_broker_retried),
      cmocka_unit_test(test_error_stream_traced_to_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
