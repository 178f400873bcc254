/* What a builder says when its options are wrong: the message names the actual mistake (a
 * missing topic list is not "not both"; a missing bootstrap is not "properties must be
 * pairs"), so a user can fix it from the message alone. No broker is needed: the Kafka
 * builders check their options without connecting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"

static const char *const vals[] = {"a"};
static const char *const topics[] = {"in", NULL};

/* Builds a Kafka source from `o` in a fresh topology; returns the recorded message ("" when
 * it was accepted) in msg. */
static int kafka_source_refused(const brook_kafka_source_opts_t *o, char *msg, size_t cap) {
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = brook_source_kafka(t, "k", o);
  snprintf(msg, cap, "%s", s ? "" : brook_topology_last_error(t));
  brook_err_t recorded = brook_topology_error(t);
  brook_topology_free(t);
  assert_int_equal(recorded, s ? BROOK_OK : BROOK_ERR_INVALID_ARG);
  return s == NULL;
}

static void kafka_source_base(brook_kafka_source_opts_t *o) {
  brook_kafka_source_opts_init(o);
  o->bootstrap_servers = "127.0.0.1:1";
  o->group_id = "app";
  o->topics = topics;
}

static void assert_says(const char *msg, const char *want, const char *not_want) {
  if (!strstr(msg, want) || (not_want && strstr(msg, not_want)))
    fail_msg("message \"%s\": wanted \"%s\"%s%s", msg, want, not_want ? ", not " : "",
             not_want ? not_want : "");
}

static void test_kafka_source_without_topics_says_required(void **state) {
  (void)state;
  char msg[512];
  brook_kafka_source_opts_t o;
  kafka_source_base(&o);
  o.topics = NULL; /* forgotten: neither a subscription nor an assignment */
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "topics (a subscription) or partitions (an explicit assignment) is required",
              "not both");

  /* Both given: that one is "not both". */
  static const brook_kafka_partition_t parts[] = {{"in", 0, BROOK_KAFKA_OFFSET_STORED}};
  kafka_source_base(&o);
  o.partitions = parts;
  o.n_partitions = 1;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "not both", NULL);
}

static void test_kafka_source_each_mistake_named(void **state) {
  (void)state;
  char msg[512];
  brook_kafka_source_opts_t o;

  static const char *const none[] = {NULL};
  kafka_source_base(&o);
  o.topics = none;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "topics is empty", "bootstrap");

  static const char *const blank[] = {"in", "", NULL};
  kafka_source_base(&o);
  o.topics = blank;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "topics[1] is an empty name", "bootstrap");

  static const char *const odd[] = {"client.id", "x", "fetch.max.bytes", NULL};
  kafka_source_base(&o);
  o.properties = odd;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "properties: 'fetch.max.bytes' has no value", "bootstrap");

  kafka_source_base(&o);
  o.bootstrap_servers = NULL;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "bootstrap_servers (or the property bootstrap.servers) is required",
              "properties must");
  static const char *const boot[] = {"bootstrap.servers", "127.0.0.1:1", NULL};
  o.properties = boot; /* given as a property instead: fine */
  assert_false(kafka_source_refused(&o, msg, sizeof(msg)));

  static const brook_kafka_partition_t bad_parts[] = {{"in", 0, 0}, {"in", -1, 0}};
  kafka_source_base(&o);
  o.topics = NULL;
  o.partitions = bad_parts;
  o.n_partitions = 2;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "partitions[1]", NULL);

  kafka_source_base(&o);
  o.value.format = (brook_kafka_format_t)42;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "value deserialiser", NULL);

  kafka_source_base(&o);
  o.max_in_flight = 0;
  assert_true(kafka_source_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "max_in_flight must be > 0", "commit_interval_ms");
}

static int kafka_sink_refused(const brook_kafka_sink_opts_t *o, char *msg, size_t cap) {
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, vals, 1);
  brook_err_t err = brook_sink_kafka(collect_gen_source(t, "g", &g), "ks", o);
  snprintf(msg, cap, "%s", err ? brook_topology_last_error(t) : "");
  brook_topology_free(t);
  return err != BROOK_OK;
}

static void test_kafka_sink_each_mistake_named(void **state) {
  (void)state;
  char msg[512];
  brook_kafka_sink_opts_t o;
  brook_kafka_sink_opts_init(&o);
  o.topic = "out";
  assert_true(kafka_sink_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "bootstrap_servers (or the property bootstrap.servers) is required",
              "properties must");

  static const char *const odd[] = {"linger.ms", NULL};
  o.bootstrap_servers = "127.0.0.1:1";
  o.properties = odd;
  assert_true(kafka_sink_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "properties: 'linger.ms' has no value", "bootstrap");

  brook_kafka_sink_opts_init(&o);
  o.topic = "out";
  o.bootstrap_servers = "127.0.0.1:1";
  o.key.format = BROOK_KAFKA_CUSTOM; /* without fn */
  assert_true(kafka_sink_refused(&o, msg, sizeof(msg)));
  assert_says(msg, "key serialiser", NULL);
}

static void test_push_bounds_say_which(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_push_opts_t o;
  brook_push_opts_init(&o);
  o.max_bytes = 0;
  assert_null(brook_source_push(t, "p", &o));
  assert_says(brook_topology_last_error(t), "max_bytes", NULL);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kafka_source_without_topics_says_required),
      cmocka_unit_test(test_kafka_source_each_mistake_named),
      cmocka_unit_test(test_kafka_sink_each_mistake_named),
      cmocka_unit_test(test_push_bounds_say_which),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
