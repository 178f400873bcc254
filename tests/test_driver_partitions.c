/* The test driver's partitions (test_driver.h): a Kafka source's splits are partitions with
 * one task each; revoking one flushes and closes its task and keeps its state; assigning it
 * again restores that state into the new task, and timers that came due meanwhile fire. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "checkpoint_helpers.h"
#include "driver_helpers.h"

/* ---- a counting operator with a store, event- and processing-time timers ---- */

typedef struct counter {
  brook_store_t *counts;
  int32_t task;
} counter_t;

static int opens, closes, flushes;

static brook_err_t counter_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)opaque;
  counter_t *c = calloc(1, sizeof(*c));
  if (!c)
    return BROOK_ERR_NOMEM;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = sizeof(uint64_t);
  brook_err_t err = brook_store_open(ctx, "counts", &so, &c->counts);
  if (err < 0) {
    free(c);
    return err;
  }
  c->task = brook_ctx_task(ctx);
  opens++;
  *state = c;
  return BROOK_OK;
}

static void counter_close(void *state, void *opaque) {
  (void)opaque;
  closes++;
  free(state);
}

static brook_err_t counter_flush(brook_ctx_t *ctx, void *state) {
  (void)ctx, (void)state;
  flushes++;
  return BROOK_OK;
}

/* Counts per key; sets an event-time timer at ts + 10 and a processing-time timer at now +
 * 100, both tagged with the count. */
static brook_err_t counter_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  counter_t *c = state;
  void *v;
  brook_err_t err = brook_store_update(c->counts, rec->key, rec->key_len, &v, NULL);
  if (err < 0)
    return err;
  uint64_t n;
  memcpy(&n, v, 8);
  n++;
  memcpy(v, &n, 8);
  if ((err = brook_timer_set(ctx, BROOK_EVENT_TIME, rec->timestamp + 10, rec->key, rec->key_len,
                             n)) < 0 ||
      (err = brook_timer_set(ctx, BROOK_PROCESSING_TIME, brook_ctx_now(ctx) + 100, rec->key,
                             rec->key_len, n)) < 0)
    return err;
  return emit_textf(ctx, rec->key, rec->key_len, rec->timestamp, "task=%d count=%" PRIu64,
                    (int)c->task, n);
}

static brook_err_t counter_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  counter_t *c = state;
  return emit_textf(ctx, t->key, t->key_len, t->time,
                    "task=%d %s timer at %" PRId64 " tag=%" PRIu64, (int)c->task,
                    t->domain == BROOK_EVENT_TIME ? "event" : "processing", t->time, t->tag);
}

static const brook_operator_t counter_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "counter",
    .open = counter_open,
    .process = counter_process,
    .flush = counter_flush,
    .close = counter_close,
    .on_timer = counter_on_timer,
};

static brook_stream_t *kafka_source(brook_topology_t *t, const char *name) {
  static const char *const topics[] = {"in", NULL};
  brook_kafka_source_opts_t ko;
  brook_kafka_source_opts_init(&ko);
  ko.bootstrap_servers = "127.0.0.1:1"; /* never contacted */
  ko.group_id = "driver-partitions";
  ko.topics = topics;
  brook_stream_t *s = brook_source_kafka(t, name, &ko);
  assert_non_null(s);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.ts_bounds = BROOK_TS_BOUNDS_OFF;
  assert_int_equal(brook_source_set_watermark(s, &wo), BROOK_OK);
  return s;
}

static brook_topology_t *counter_topology(void) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = kafka_source(t, "in"), *out = NULL;
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "counter";
  assert_int_equal(brook_operator_add(&in, 1, &counter_op, NULL, &oo, &out), BROOK_OK);
  named_sink(out, "out");
  return t;
}

static brook_err_t push(brook_driver_t *d, size_t part, const char *key, brook_time_t ts) {
  brook_record_t r = {0};
  r.key = key;
  r.key_len = strlen(key);
  r.value = "v";
  r.value_len = 1;
  r.timestamp = ts;
  return brook_driver_push_split(d, "in", part, &r);
}

/* The captured records' values, one per line. */
static void outputs(brook_driver_t *d, char *buf, size_t size) {
  size_t n = brook_driver_output_count(d, "out"), used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < size; i++) {
    const brook_record_t *r = brook_driver_output(d, "out", i);
    used += (size_t)snprintf(buf + used, size - used, "%.*s: %.*s\n", (int)r->key_len,
                             (const char *)r->key, (int)r->value_len, (const char *)r->value);
  }
  brook_driver_clear_output(d, "out");
}

static void test_revoke_keeps_state_and_timers_fire_after_reassign(void **state) {
  (void)state;
  opens = closes = flushes = 0;
  brook_topology_t *t = counter_topology();
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  char out[2048];
  assert_int_equal(push(d, 0, "a", 100), BROOK_OK); /* opens the task of partition 0 */
  assert_int_equal(push(d, 1, "b", 100), BROOK_OK); /* ... and of partition 1 */
  assert_int_equal(push(d, 0, "a", 101), BROOK_OK);
  assert_int_equal(opens, 2);
  outputs(d, out, sizeof(out));
  assert_string_equal(out, "a: task=0 count=1\nb: task=1 count=1\na: task=0 count=2\n");

  /* Revoked: the task flushes and closes; its records are refused. */
  assert_int_equal(brook_driver_revoke(d, "in", 0), BROOK_OK);
  assert_int_equal(flushes, 1);
  assert_int_equal(closes, 1);
  assert_int_equal(push(d, 0, "a", 102), BROOK_ERR_STATE);
  assert_non_null(strstr(brook_driver_last_error(d), "partition 0 of source 'in' is revoked"));
  assert_int_equal(brook_driver_status(d), BROOK_OK); /* a refusal, not a failure */

  /* Time passes while it is revoked: partition 1's processing-time timer fires, partition
   * 0's does not (its task is closed). */
  assert_int_equal(brook_driver_advance_time(d, 150), BROOK_OK);
  outputs(d, out, sizeof(out));
  assert_string_equal(out, "b: task=1 processing timer at 100 tag=1\n");

  /* Assigned again: a new task restored from the kept state; the processing-time timers that
   * came due meanwhile fire at once; the count goes on. */
  assert_int_equal(brook_driver_assign(d, "in", 0), BROOK_OK);
  assert_int_equal(opens, 3);
  outputs(d, out, sizeof(out));
  assert_string_equal(out, "a: task=0 processing timer at 100 tag=1\n"
                           "a: task=0 processing timer at 100 tag=2\n");
  assert_int_equal(push(d, 0, "a", 120), BROOK_OK);
  outputs(d, out, sizeof(out));
  /* The watermark passes 110 and 111: the restored event-time timers fire after the record. */
  assert_string_equal(out, "a: task=0 count=3\n"
                           "a: task=0 event timer at 110 tag=1\n"
                           "a: task=0 event timer at 111 tag=2\n");
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  brook_driver_free(d);
  brook_topology_free(t);
  assert_int_equal(opens, closes);
}

static void test_partition_calls_refused(void **state) {
  (void)state;
  brook_topology_t *t = counter_topology();
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  assert_int_equal(brook_driver_revoke(d, "in", 3), BROOK_ERR_STATE);
  assert_non_null(strstr(brook_driver_last_error(d), "is not assigned"));
  assert_int_equal(brook_driver_assign(d, "in", 3), BROOK_OK);
  assert_int_equal(brook_driver_assign(d, "in", 3), BROOK_ERR_STATE);
  assert_non_null(strstr(brook_driver_last_error(d), "assigned already"));
  assert_int_equal(brook_driver_assign(d, "nope", 0), BROOK_ERR_NOT_FOUND);
  assert_int_equal(brook_driver_assign(d, "in", (size_t)INT32_MAX + 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_assign(NULL, "in", 0), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_assign(d, "in", 4), BROOK_ERR_STOPPED);
  brook_driver_free(d);
  brook_topology_free(t);

  /* A push source has splits but no partitions: its operators keep one state for all. */
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  named_sink(brook_source_push(t, "in", NULL), "out");
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  assert_int_equal(brook_driver_assign(d, "in", 0), BROOK_ERR_STATE);
  assert_non_null(strstr(brook_driver_last_error(d), "not partitioned"));
  brook_driver_free(d);
  brook_topology_free(t);
}

/* A revoked partition's kept state travels in a checkpoint: assigned in the restored driver,
 * it continues where it was. */
static void test_revoked_state_survives_a_checkpoint(void **state) {
  (void)state;
  brook_topology_t *t = counter_topology();
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  assert_int_equal(push(d, 2, "k", 50), BROOK_OK);
  assert_int_equal(push(d, 2, "k", 51), BROOK_OK);
  assert_int_equal(brook_driver_revoke(d, "in", 2), BROOK_OK);
  byte_buf_t b = {0};
  assert_int_equal(brook_driver_checkpoint(d, byte_buf_write, &b), BROOK_OK);
  brook_driver_free(d);
  brook_topology_free(t);

  t = counter_topology();
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  assert_int_equal(brook_driver_restore(d, b.data, b.len), BROOK_OK);
  byte_buf_free(&b);
  assert_int_equal(push(d, 2, "k", 52), BROOK_ERR_STATE); /* still revoked */
  assert_int_equal(brook_driver_assign(d, "in", 2), BROOK_OK);
  char out[1024];
  outputs(d, out, sizeof(out));
  assert_string_equal(out, "");
  assert_int_equal(push(d, 2, "k", 70), BROOK_OK);
  outputs(d, out, sizeof(out));
  assert_string_equal(out, "k: task=2 count=3\n"
                           "k: task=2 event timer at 60 tag=1\n"
                           "k: task=2 event timer at 61 tag=2\n");
  brook_driver_free(d);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_revoke_keeps_state_and_timers_fire_after_reassign),
      cmocka_unit_test(test_partition_calls_refused),
      cmocka_unit_test(test_revoked_state_survives_a_checkpoint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
