/* Starting against a cluster that is not there, and subscribing to a topic that is not there
 * (yet):
 *   - a Kafka source or sink whose brokers cannot be reached fails the run after its
 *     startup_timeout_ms with BROOK_ERR_TIMEOUT, naming the brokers and why (librdkafka alone
 *     retries and warns every second forever); each broker's failure is logged once meanwhile;
 *   - one unreachable broker among reachable ones is no failure;
 *   - a subscribed topic that does not exist gets a warning naming it through the runtime's
 *     logger, the source keeps waiting, and records produced once the topic is created are
 *     consumed.
 * Every run is bounded by a deadline (run_deadline.h). */
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
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "broker_proc.h"
#include "kafka_helpers.h"
#include "log_capture.h"
#include "run_deadline.h"
#include "wait.h"

/* Nothing listens on port 1 of loopback: connections are refused at once. */
#define NOBODY "127.0.0.1:1"

static atomic_int n_seen;

static brook_err_t count(const brook_record_t *rec, void *opaque) {
  (void)rec;
  (void)opaque;
  atomic_fetch_add(&n_seen, 1);
  return BROOK_OK;
}

static void log_to_stderr_too(int level, const char *msg, void *opaque) {
  fprintf(stderr, "[%d] %s\n", level, msg);
  log_capture_cb(level, msg, opaque);
}

static brook_runtime_t *runtime_of(brook_topology_t *t, log_capture_t *log) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.log = getenv("BROOK_TEST_LOG") ? log_to_stderr_too : log_capture_cb;
  ro.log_opaque = log;
  brook_runtime_t *rt;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK)
    fail_msg("runtime: %s", brook_topology_last_error(t));
  return rt;
}

/* How many lines of `text` contain `needle`. */
static int lines_with(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static void expect_startup_failure(brook_runtime_t *rt, log_capture_t *log, const char *who) {
  uint64_t ms = 0;
  brook_err_t err = run_with_deadline(rt, 20000, &ms);
  const char *msg = brook_runtime_last_error(rt);
  printf("  %s: %s after %llu ms: %s\n", who, brook_errname(err), (unsigned long long)ms, msg);
  assert_int_equal(err, BROOK_ERR_TIMEOUT);
  assert_non_null(strstr(msg, who));
  assert_non_null(strstr(msg, "no broker reachable within 1500 ms"));
  assert_non_null(strstr(msg, NOBODY "/bootstrap: Connect to"));
  assert_true(ms >= 1500);
  /* librdkafka retries with a back-off; the failure was logged once, not at each retry. */
  assert_true(lines_with(log_capture_text(log), NOBODY "/bootstrap: Connect to") <= 1);
}

static void test_source_unreachable_fails(void **state) {
  (void)state;
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  assert_int_equal(so.startup_timeout_ms, 30000); /* the documented default */
  so.bootstrap_servers = NOBODY;
  so.group_id = "nobody";
  so.topics = (const char *const[]){"in", NULL};
  so.startup_timeout_ms = 1500;
  assert_int_equal(brook_sink_callback(brook_source_kafka(t, "in", &so), count, NULL, NULL),
                   BROOK_OK);
  log_capture_t log;
  log_capture_init(&log);
  brook_runtime_t *rt = runtime_of(t, &log);
  expect_startup_failure(rt, &log, "Kafka source 'in'");
  brook_runtime_free(rt);
  brook_topology_free(t);
  log_capture_free(&log);
}

static brook_err_t one_record(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  (void)opaque;
  out->value = "x";
  out->value_len = 1;
  return BROOK_OK;
}

static void test_sink_unreachable_fails(void **state) {
  (void)state;
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = 1;
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  assert_int_equal(ko.startup_timeout_ms, 30000);
  ko.bootstrap_servers = NOBODY;
  ko.topic = "out";
  ko.startup_timeout_ms = 1500;
  assert_int_equal(
      brook_sink_kafka(brook_source_generator(t, "gen", one_record, NULL, &go), "out", &ko),
      BROOK_OK);
  log_capture_t log;
  log_capture_init(&log);
  brook_runtime_t *rt = runtime_of(t, &log);
  expect_startup_failure(rt, &log, "Kafka sink 'out'");
  brook_runtime_free(rt);
  brook_topology_free(t);
  log_capture_free(&log);
}

static int seen_at_least(void *arg) { return atomic_load(&n_seen) >= *(int *)arg; }

/* A running application: a source subscribed to `topic` whose records are counted (n_seen),
 * its log captured. */
typedef struct app {
  brook_topology_t *t;
  brook_runtime_t *rt;
  log_capture_t log;
  bg_run_t run;
} app_t;

static void app_start(app_t *a, const char *bootstrap, const char *group, const char *topic,
                      int64_t startup_timeout_ms) {
  assert_int_equal(brook_topology_new(&a->t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){topic, NULL};
  so.startup_timeout_ms = startup_timeout_ms;
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  assert_int_equal(brook_sink_callback(brook_source_kafka(a->t, "in", &so), count, NULL, NULL),
                   BROOK_OK);
  log_capture_init(&a->log);
  a->rt = runtime_of(a->t, &a->log);
  atomic_store(&n_seen, 0);
  bg_run_start(&a->run, a->rt);
}

/* Stops it within timeout_ms; what the run returned. */
static brook_err_t app_stop(app_t *a, int64_t timeout_ms) {
  brook_runtime_stop(a->rt);
  return bg_run_finish(&a->run, timeout_ms);
}

static void app_free(app_t *a) {
  brook_runtime_free(a->rt);
  brook_topology_free(a->t);
  log_capture_free(&a->log);
}

/* One unreachable bootstrap broker next to a reachable one: the run goes on. */
static void test_one_broker_down_is_no_failure(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", NULL}, NULL), 0);
  kh_produce(b.bootstrap, "in", "value-", 0, 10, 3);
  char servers[1100];
  snprintf(servers, sizeof(servers), "%s,%s", NOBODY, b.bootstrap);
  app_t a;
  app_start(&a, servers, "half", "in", 1500);
  int want = 10;
  int ok = wait_until(seen_at_least, &want, 20000);
  brook_err_t err = app_stop(&a, 30000);
  if (err != BROOK_OK)
    fail_msg("%s: %s", brook_errname(err), brook_runtime_last_error(a.rt));
  assert_true(ok);
  app_free(&a);
  assert_int_equal(broker_stop(&b), 0);
}

/* A subscription to a topic that is created only later. The cluster is a mock in this
 * process rather than brook-broker: librdkafka 2.0.2's mock answers Metadata only up to
 * version 2, which has no AllowAutoTopicCreation flag, so the consumer's own metadata requests
 * would create the topic at once. Raised to version 4, the consumer says "do not create", as
 * it does with real brokers. */
static void missing_topic(int create) {
  char err[256];
  rd_kafka_conf_t *hc = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(hc, "log_level", "0", err, sizeof(err)), RD_KAFKA_CONF_OK);
  rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, hc, err, sizeof(err));
  assert_non_null(host);
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
  assert_non_null(mc);
  assert_int_equal(rd_kafka_mock_set_apiversion(mc, 3 /* Metadata */, 0, 4), 0);
  const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
  app_t a;
  app_start(&a, bootstrap, "later-app", "later", 30000);
  log_wait_t w = {&a.log, "subscribed topic 'later' does not exist"};
  int warned = wait_until(log_capture_has, &w, 15000);
  uint64_t warned_ms = wait_now_ms() - a.run.started_ms;
  int consumed = !create;
  if (warned && create) {
    assert_int_equal(rd_kafka_mock_topic_create(mc, "later", 2, 1), 0);
    kh_produce(bootstrap, "later", "value-", 0, 10, 3);
    int want = 10;
    consumed = wait_until(seen_at_least, &want, 30000);
  }
  uint64_t consumed_ms = wait_now_ms() - a.run.started_ms;
  /* Never assigned, but the consumer has not joined either (nothing to subscribe to yet): the
   * stop does not wait for a join (kafka_group.h). */
  brook_err_t rerr = app_stop(&a, create ? 30000 : 10000);
  if (!warned)
    fail_msg("no warning naming the missing topic within 15 s; the log:\n%s",
             log_capture_text(&a.log));
  if (!consumed)
    fail_msg("%d of 10 records produced after the topic was created were consumed; the log:\n%s",
             atomic_load(&n_seen), log_capture_text(&a.log));
  printf("  warned after %llu ms; %s by %llu ms\n", (unsigned long long)warned_ms,
         create ? "the records of the new topic consumed" : "stopped",
         (unsigned long long)consumed_ms);
  assert_int_equal(rerr, BROOK_OK);
  const char *text = log_capture_text(&a.log);
  assert_int_equal(lines_with(text, "subscribed topic 'later' does not exist"), 1);
  if (create)
    assert_non_null(strstr(text, "subscribed topic 'later' exists now"));
  app_free(&a);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(host);
}

static void test_missing_topic_warns_then_is_consumed(void **state) {
  (void)state;
  missing_topic(1);
}

static void test_missing_topic_stop(void **state) {
  (void)state;
  missing_topic(0);
}

/* A negative startup_timeout_ms is refused when the topology is built. */
static void test_startup_timeout_validated(void **state) {
  (void)state;
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = NOBODY;
  so.group_id = "g";
  so.topics = (const char *const[]){"in", NULL};
  so.startup_timeout_ms = -1;
  assert_null(brook_source_kafka(t, "in", &so));
  assert_non_null(strstr(brook_topology_last_error(t), "startup_timeout_ms"));
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_startup_timeout_validated),
      cmocka_unit_test(test_source_unreachable_fails),
      cmocka_unit_test(test_sink_unreachable_fails),
      cmocka_unit_test(test_one_broker_down_is_no_failure),
      cmocka_unit_test(test_missing_topic_warns_then_is_consumed),
      cmocka_unit_test(test_missing_topic_stop),
  };
  if (getenv("BROOK_TEST_FILTER")) /* one test, e.g. BROOK_TEST_FILTER=test_missing_topic_stop */
    cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
