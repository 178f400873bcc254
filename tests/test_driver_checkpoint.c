/* The test driver's checkpoint and restore (test_driver.h) against damaged input and
 * mismatched topologies: every truncation and bit flip of a checkpoint is refused with
 * BROOK_ERR_CORRUPT and a message saying where, and the target driver is left exactly as it
 * was (its own checkpoint is byte for byte a new driver's), still able to restore the intact
 * checkpoint; allocation failures during a restore leave it the same way. */
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
#include "fail_alloc.h"

/* ---- an operator with timers (the built-ins below bring the stores) ---- */

static brook_err_t timed_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  brook_err_t err =
      brook_timer_set(ctx, BROOK_EVENT_TIME, rec->timestamp + 5, rec->key, rec->key_len, 7);
  if (err >= 0)
    err = brook_timer_set(ctx, BROOK_PROCESSING_TIME, 1000, rec->key, rec->key_len, 8);
  return err < 0 ? err : brook_emit(ctx, rec);
}

static brook_err_t timed_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  (void)ctx, (void)state, (void)t;
  return BROOK_OK;
}

static const brook_operator_t timed_op = {.version = BROOK_OPERATOR_VERSION,
                                          .type_name = "timed",
                                          .process = timed_process,
                                          .on_timer = timed_on_timer};

/* in -> timed -> agg (sum) -> out, and in -> win (session) -> wout; `extra` 1 adds a node,
 * 2 makes agg a count (another operator type under the same name). */
static brook_topology_t *topology(const brook_allocator_t *a, int extra, const char *agg_name) {
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.allocator = a;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, &to), BROOK_OK);
  brook_stream_t *in = brook_source_push(t, "in", NULL), *timed = NULL;
  assert_non_null(in);
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "timed";
  assert_int_equal(brook_operator_add(&in, 1, &timed_op, NULL, &oo, &timed), BROOK_OK);
  brook_aggregator_t sum = brook_agg_sum(NULL, NULL);
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = agg_name;
  brook_aggregator_t count = brook_agg_count();
  named_sink(brook_aggregate(timed, extra == 2 ? &count : &sum, &ao), "out");
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "win";
  brook_window_t session = brook_window_session(10);
  named_sink(brook_window_aggregate(in, &session, &sum, &wo), "wout");
  if (extra == 1) {
    ao.name = "extra";
    named_sink(brook_count(in, &ao), "xout");
  }
  return t;
}

static void feed(brook_driver_t *d) {
  static const char *const keys[] = {"a", "bb", "a-long-key-of-more-than-24-bytes", "a"};
  for (int i = 0; i < 12; i++) {
    double v = i * 0.5;
    brook_record_t r = {0};
    r.key = keys[i % 4];
    r.key_len = strlen(r.key);
    r.value = &v;
    r.value_len = sizeof(v);
    r.timestamp = 100 + (i * 7) % 23;
    assert_int_equal(brook_driver_push_split(d, "in", (size_t)i % 2, &r), BROOK_OK);
  }
  assert_int_equal(brook_driver_advance_time(d, 10), BROOK_OK);
}

static byte_buf_t checkpoint_of(brook_driver_t *d) {
  byte_buf_t b = {0};
  assert_int_equal(brook_driver_checkpoint(d, byte_buf_write, &b), BROOK_OK);
  return b;
}

/* A checkpoint of a driver fed with records, and one of a new driver (what "unchanged" is). */
static void make_checkpoints(byte_buf_t *full, byte_buf_t *fresh) {
  brook_topology_t *t = topology(NULL, 0, "agg");
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  *fresh = checkpoint_of(d);
  feed(d);
  *full = checkpoint_of(d);
  brook_driver_free(d);
  brook_topology_free(t);
}

/* A target driver and the checkpoints to restore into it. */
typedef struct fixture {
  byte_buf_t full, fresh;
  brook_topology_t *t;
  brook_driver_t *d;
} fixture_t;

static void fixture_open(fixture_t *f, int extra, const char *agg_name) {
  make_checkpoints(&f->full, &f->fresh);
  f->t = topology(NULL, extra, agg_name);
  f->d = NULL;
  assert_int_equal(brook_driver_new(&f->d, f->t, NULL), BROOK_OK);
}

static void fixture_close(fixture_t *f) {
  brook_driver_free(f->d);
  brook_topology_free(f->t);
  byte_buf_free(&f->full);
  byte_buf_free(&f->fresh);
}

static void assert_unchanged(brook_driver_t *d, const byte_buf_t *fresh) {
  byte_buf_t now = checkpoint_of(d);
  assert_int_equal(now.len, fresh->len);
  assert_memory_equal(now.data, fresh->data, now.len);
  free(now.data);
}

static void test_roundtrip_restores_everything(void **state) {
  (void)state;
  fixture_t f;
  fixture_open(&f, 0, "agg");
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_OK);
  byte_buf_t again = checkpoint_of(f.d); /* the same state gives the same bytes */
  assert_int_equal(again.len, f.full.len);
  assert_memory_equal(again.data, f.full.data, f.full.len);
  assert_int_equal(brook_driver_time(f.d), 10);
  assert_true(brook_driver_watermark(f.d, "agg") > 100);
  /* Used now: a second restore is refused. */
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_ERR_STATE);
  assert_non_null(strstr(brook_driver_last_error(f.d), "new driver"));
  byte_buf_free(&again);
  fixture_close(&f);
}

static void test_every_truncation_is_corrupt(void **state) {
  (void)state;
  fixture_t f;
  fixture_open(&f, 0, "agg");
  for (size_t len = 0; len < f.full.len; len++) {
    brook_err_t err = brook_driver_restore(f.d, len ? f.full.data : NULL, len);
    if (err != BROOK_ERR_CORRUPT)
      fail_msg("restore of the first %zu of %zu bytes gave %s", len, f.full.len,
               brook_errname(err));
    const char *msg = brook_driver_last_error(f.d);
    if (!strstr(msg, "truncated") && !strstr(msg, "checksum"))
      fail_msg("truncated at %zu: message '%s' does not say so", len, msg);
    if (len % 97 == 0)
      assert_unchanged(f.d, &f.fresh);
  }
  assert_unchanged(f.d, &f.fresh);
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_OK); /* new */
  fixture_close(&f);
}

static void test_every_bit_flip_is_corrupt(void **state) {
  (void)state;
  fixture_t f;
  fixture_open(&f, 0, "agg");
  for (size_t i = 0; i < f.full.len; i++) {
    for (int bit = (int)(i % 3); bit < 8; bit += 3) {
      f.full.data[i] ^= (unsigned char)(1u << bit);
      brook_err_t err = brook_driver_restore(f.d, f.full.data, f.full.len);
      f.full.data[i] ^= (unsigned char)(1u << bit);
      if (err != BROOK_ERR_CORRUPT)
        fail_msg("flipping bit %d of byte %zu of %zu gave %s", bit, i, f.full.len,
                 brook_errname(err));
    }
    if (i % 101 == 0)
      assert_unchanged(f.d, &f.fresh);
  }
  assert_unchanged(f.d, &f.fresh);
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_OK);
  fixture_close(&f);
}

/* A flip inside a store's bytes names the section, the node and the store. */
static void test_corrupt_store_is_named(void **state) {
  (void)state;
  fixture_t f;
  fixture_open(&f, 0, "agg");
  /* The section of the aggregate's store: its names "agg" then "aggregate", then the store's
   * snapshot; flip a byte of the snapshot. */
  unsigned char *at = NULL;
  for (size_t i = 0; i + 12 < f.full.len && !at; i++)
    if (memcmp(f.full.data + i, "aggaggregate", 12) == 0)
      at = f.full.data + i + 12 + 20;
  assert_non_null(at);
  *at ^= 0x10;
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_ERR_CORRUPT);
  const char *msg = brook_driver_last_error(f.d);
  assert_non_null(strstr(msg, "node 'agg'"));
  assert_non_null(strstr(msg, "store 'aggregate'"));
  assert_non_null(strstr(msg, "checksum mismatch"));
  assert_unchanged(f.d, &f.fresh);
  fixture_close(&f);
}

static void test_topology_mismatch_names_the_node(void **state) {
  (void)state;
  fixture_t f;
  fixture_open(&f, 1, "agg"); /* a node the checkpoint does not have */
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_ERR_CORRUPT);
  assert_non_null(strstr(brook_driver_last_error(f.d), "node 'extra' of this topology is not in "
                                                       "the checkpoint"));
  fixture_close(&f);
  fixture_open(&f, 0, "total"); /* a node renamed: the checkpoint's 'agg' is unknown here */
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_ERR_CORRUPT);
  assert_non_null(strstr(brook_driver_last_error(f.d), "node 'agg'"));
  assert_non_null(strstr(brook_driver_last_error(f.d), "no node of that name"));
  fixture_close(&f);
  fixture_open(&f, 2, "agg"); /* the same name, another operator */
  byte_buf_free(&f.fresh);
  f.fresh = checkpoint_of(f.d); /* this topology's new driver */
  assert_int_equal(brook_driver_restore(f.d, f.full.data, f.full.len), BROOK_ERR_CORRUPT);
  assert_non_null(strstr(brook_driver_last_error(f.d), "it is a 'sum' node, this topology's is "
                                                       "a 'count'"));
  assert_unchanged(f.d, &f.fresh);
  fixture_close(&f);
}

static brook_err_t failing_write(const void *data, size_t len, void *opaque) {
  (void)data, (void)len;
  int *calls = opaque;
  return ++*calls == 3 ? BROOK_ERR_IO : BROOK_OK;
}

static void test_writer_error_is_returned(void **state) {
  (void)state;
  brook_topology_t *t = topology(NULL, 0, "agg");
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  feed(d);
  int calls = 0;
  assert_int_equal(brook_driver_checkpoint(d, failing_write, &calls), BROOK_ERR_IO);
  assert_int_equal(calls, 3); /* nothing written after the failure */
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  brook_driver_free(d);
  brook_topology_free(t);
}

/* Every allocation of a restore failing in turn: NOMEM, nothing leaked, the driver new. */
static void test_allocation_failures_leave_the_driver_new(void **state) {
  (void)state;
  byte_buf_t full, fresh;
  make_checkpoints(&full, &fresh);
  for (long k = 1;; k++) {
    fail_alloc_t fa = {0};
    brook_allocator_t a = fa_allocator(&fa);
    brook_topology_t *t = topology(&a, 0, "agg");
    brook_driver_t *d = NULL;
    assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
    fa.attempts = 0;
    fa.fail_at = k;
    brook_err_t err = brook_driver_restore(d, full.data, full.len);
    long injected = fa.injected;
    fa.fail_at = 0;
    if (!injected) {
      assert_int_equal(err, BROOK_OK);
      brook_driver_free(d);
      brook_topology_free(t);
      assert_int_equal(fa.live, 0);
      break;
    }
    if (err != BROOK_ERR_NOMEM)
      fail_msg("allocation %ld failing: %s (%s)", k, brook_errname(err),
               brook_driver_last_error(d));
    assert_int_equal(brook_driver_status(d), BROOK_OK);
    assert_unchanged(d, &fresh);
    assert_int_equal(brook_driver_restore(d, full.data, full.len), BROOK_OK);
    brook_driver_free(d);
    brook_topology_free(t);
    assert_int_equal(fa.live, 0);
  }
  byte_buf_free(&full);
  byte_buf_free(&fresh);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_restores_everything),
      cmocka_unit_test(test_every_truncation_is_corrupt),
      cmocka_unit_test(test_every_bit_flip_is_corrupt),
      cmocka_unit_test(test_corrupt_store_is_named),
      cmocka_unit_test(test_topology_mismatch_names_the_node),
      cmocka_unit_test(test_writer_error_is_returned),
      cmocka_unit_test(test_allocation_failures_leave_the_driver_new),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
