/* Serde tables (brook/serde.h) on the Kafka source and sink: key_serde / value_serde chains
 * read messages and write records on the embedded broker, a malformed message reaches the
 * dead-letter topic with the stage, field and reason in brook.error.message, and the builders
 * refuse chains that cannot run (unknown version, missing callback, table and deprecated
 * format both set). Every wait has a deadline. */
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

#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/kafka_helpers.h"
#include "support/kafka_readback.h"
#include "support/serde_amount.h"

static void assert_says(const char *msg, const char *part) {
  if (!msg || !strstr(msg, part))
    fail_msg("message \"%s\" does not say \"%s\"", msg ? msg : "(null)", part);
}

/* ---- a runtime on its own thread, stopped once the group committed `want` ---- */

static atomic_llong sum; /* of the amounts that reached the sink */

static brook_err_t add_amount(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  int64_t v;
  assert_int_equal(rec->value_len, sizeof(v));
  memcpy(&v, rec->value, sizeof(v));
  atomic_fetch_add(&sum, v);
  return BROOK_OK;
}

/* Runs `t` until group `group` committed offset `want` of partition 0 of "in" (or the
 * deadline passes), then stops it; fails the test unless the run succeeded. */
static void run_to_offset(const char *bootstrap, brook_topology_t *t, const char *group,
                          int64_t want) {
  bg_run_t r;
  bg_start(&r, t);
  long long deadline = kh_now_ms() + KH_TIMEOUT_MS;
  while (kh_now_ms() < deadline && kh_committed(bootstrap, group, "in", 0) < want) {
  }
  if (bg_stop(&r) != BROOK_OK)
    fail_msg("the run failed: %s", brook_runtime_last_error(r.rt));
  brook_runtime_free(r.rt);
}

static void read_all(const char *bootstrap, const char *topic, kr_topic_t *out) {
  char why[512];
  if (kr_read_topic(bootstrap, topic, KH_TIMEOUT_MS, out, why, sizeof(why)) != 0)
    fail_msg("reading %s: %s", topic, why);
}

/* Messages with int32 keys and "amount=..." values, some malformed, read through
 * key_serde int32 and value_serde utf8 -> amount; written back through the sink's int32 and
 * amount serdes. Malformed ones are dead letters saying which stage and field refused them. */
static void test_source_and_sink_chains(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(
      broker_start(&b, 1, (const char *const[]){"in:1", "out:1", "dead:1", NULL}, NULL), 0);
  const struct {
    const char *value;
    size_t len;
  } msgs[] = {{"amount=5", 8}, {"amount=1x", 9}, {"amount=\xff", 8}, {"amount=20", 9}};
  for (int i = 0; i < 4; i++) {
    unsigned char key[4] = {0, 0, 1, (unsigned char)i}; /* 256 + i, big-endian */
    kh_produce_raw(b.bootstrap, "in", key, 4, msgs[i].value, msgs[i].len);
  }

  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_serde_t amount = serde_amount(NULL);
  brook_serde_t text = brook_serde_utf8();
  text.next = &amount;
  brook_serde_t key = brook_serde_int32();
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = b.bootstrap;
  so.group_id = "serde-app";
  so.topics = (const char *const[]){"in", NULL};
  so.key_serde = &key;
  so.value_serde = &text;
  so.on_malformed = BROOK_KAFKA_MALFORMED_DEAD_LETTER;
  so.dead_letter_topic = "dead";
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  /* The tables are copied: the builder's locals may change. */
  text.next = NULL;
  key = brook_serde_bytes();
  assert_int_equal(brook_sink_callback(in, add_amount, NULL, NULL), BROOK_OK);
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = b.bootstrap;
  ko.topic = "out";
  brook_serde_t out_key = brook_serde_int32();
  brook_serde_t out_value = serde_amount(NULL);
  ko.key_serde = &out_key;
  ko.value_serde = &out_value;
  assert_int_equal(brook_sink_kafka(in, "out", &ko), BROOK_OK);
  atomic_store(&sum, 0);
  run_to_offset(b.bootstrap, t, "serde-app", 4);
  assert_int_equal(atomic_load(&sum), 25);

  kr_topic_t out;
  read_all(b.bootstrap, "out", &out);
  assert_int_equal(out.n, 2);
  assert_int_equal(out.msgs[0].key_len, 4);
  assert_memory_equal(out.msgs[0].key, "\0\0\1\0", 4);
  assert_string_equal(out.msgs[0].value, "amount=5");
  assert_memory_equal(out.msgs[1].key, "\0\0\1\3", 4);
  assert_string_equal(out.msgs[1].value, "amount=20");
  kr_topic_free(&out);

  kr_topic_t dead;
  read_all(b.bootstrap, "dead", &dead);
  assert_int_equal(dead.n, 2);
  assert_says(kr_header(&dead.msgs[0], "brook.error.message", NULL),
              "value deserialiser 'amount' (2 of 2), field 'amount': not a number: '1x'");
  assert_says(kr_header(&dead.msgs[0], "brook.error", NULL), "BROOK_ERR_CORRUPT");
  assert_says(kr_header(&dead.msgs[1], "brook.error.message", NULL),
              "value deserialiser 'utf8' (1 of 2): not valid UTF-8 at byte 7 of 8");
  assert_string_equal(kr_header(&dead.msgs[1], "brook.source.offset", NULL), "2");
  kr_topic_free(&dead);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- builders (no broker needed) ---- */

static const char *source_refuses(brook_kafka_source_opts_t *so) {
  static char msg[512];
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  so->bootstrap_servers = "127.0.0.1:1";
  so->group_id = "g";
  so->topics = (const char *const[]){"in", NULL};
  assert_null(brook_source_kafka(t, "in", so));
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
  snprintf(msg, sizeof(msg), "%s", brook_topology_last_error(t));
  brook_topology_free(t);
  return msg;
}

static const char *sink_refuses(brook_kafka_sink_opts_t *ko) {
  static char msg[512];
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  ko->bootstrap_servers = "127.0.0.1:1";
  ko->topic = "out";
  assert_int_equal(brook_sink_kafka(brook_source_push(t, "in", NULL), "out", ko),
                   BROOK_ERR_INVALID_ARG);
  snprintf(msg, sizeof(msg), "%s", brook_topology_last_error(t));
  brook_topology_free(t);
  return msg;
}

static void test_builders_refuse_bad_chains(void **state) {
  (void)state;
  brook_serde_t amount = serde_amount(NULL);
  brook_serde_t text = brook_serde_utf8();
  text.next = &amount;

  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  amount.version = 9;
  so.value_serde = &text;
  assert_says(source_refuses(&so), "source_kafka: value deserialiser: serde table 2 of the chain "
                                   "has version 9, not one this library knows (1 to 1)");
  amount.version = BROOK_SERDE_VERSION;
  amount.deserialize = NULL;
  assert_says(source_refuses(&so), "value deserialiser: serde 'amount' (table 2 of the chain) "
                                   "has no deserialize callback");
  amount.deserialize = serde_amount_read;
  brook_kafka_source_opts_init(&so);
  so.key_serde = &text;
  so.key.format = BROOK_KAFKA_STRING;
  assert_says(source_refuses(&so), "key deserialiser: both a serde table and the deprecated "
                                   "format (1) are set; set only the table");

  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  amount.serialize = NULL;
  ko.value_serde = &text;
  assert_says(sink_refuses(&ko), "sink_kafka: value serialiser: serde 'amount' (table 2 of the "
                                 "chain) has no serialize callback");
  amount.serialize = serde_amount_write;
  text.version = 0;
  assert_says(sink_refuses(&ko), "value serialiser: serde table 1 of the chain has version 0");
  text.version = BROOK_SERDE_VERSION;
  brook_kafka_sink_opts_init(&ko);
  ko.key.format = (brook_kafka_format_t)42; /* the deprecated fields are still checked */
  assert_says(sink_refuses(&ko), "key serialiser: unknown format 42");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builders_refuse_bad_chains),
      cmocka_unit_test(test_source_and_sink_chains),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
