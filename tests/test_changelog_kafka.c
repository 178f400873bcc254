/* The changelog writer (src/kafka/changelog_writer.c) and the sliced restore
 * (src/kafka/changelog_restore.c) against the embedded broker: epochs with markers restore
 * exactly; a killed writer's epoch is dropped and compensated, and later restores stay exact;
 * damaged records and a log that starts after the needed offset fail with BROOK_ERR_CORRUPT
 * naming topic, partition and offset, with nothing applied past the problem; a restore in
 * slices equals one in a single step. Topics are pre-created with the broker's topic command
 * (the embedded broker has no admin API). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#include <brook/state.h>

#include "kafka/changelog_format.h"
#include "kafka/changelog_restore.h"
#include "kafka/changelog_writer.h"
#include "support/broker_proc.h"
#include "support/changelog_kit.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

#define TOPIC CL_TOPIC

/* ---- tests ---- */

typedef struct acked_log {
  int calls, errors;
  uint64_t last;
} acked_log_t;

static void on_acked(uint64_t epoch, void *opaque) {
  acked_log_t *a = opaque;
  assert_true(epoch > a->last); /* in order, each once */
  a->last = epoch;
  a->calls++;
}

static void on_error(brook_err_t err, void *opaque) {
  acked_log_t *a = opaque;
  assert_int_equal(err, BROOK_ERR_KAFKA);
  a->errors++;
}

/* Acknowledgements arrive per epoch, in order; a refused record fails the writer for good. */
static void test_acks_per_epoch_and_failure(void **state) {
  (void)state;
  rd_kafka_t *p = cl_changelog_producer();
  acked_log_t log = {0};
  bk_changelog_writer_opts_t o = {.producer = p,
                                  .topic = TOPIC,
                                  .partition = 6,
                                  .first_epoch = bk_cl_first_epoch(5000),
                                  .on_acked = on_acked,
                                  .on_error = on_error,
                                  .opaque = &log};
  bk_changelog_writer_t *w = NULL;
  bk_errmsg_t why;
  assert_int_equal(bk_changelog_writer_new(&o, &w, &why), BROOK_OK);
  uint64_t e0 = cl_start(w, p, "pos0");
  assert_int_equal(log.calls, 1);
  uint64_t e[3];
  for (int i = 0; i < 3; i++) {
    cl_put(w, p, "k", "v");
    e[i] = cl_commit(w, "pos");
  }
  assert_int_equal(bk_changelog_acked(w), e0); /* nothing served yet */
  cl_drain(p, w);
  assert_int_equal(log.calls, 4);
  assert_int_equal(log.last, e[2]);
  assert_int_equal(bk_changelog_acked(w), e[2]);
  /* An epoch with records but no marker yet is never acknowledged. */
  cl_put(w, p, "k", "open");
  cl_drain(p, w);
  assert_int_equal(bk_changelog_acked(w), e[2]);

  /* The broker refuses the next produce requests for good (INVALID_RECORD). */
  assert_int_equal(broker_cmd(&cl_broker, "error 0 87 20"), 0);
  cl_put(w, p, "k", "refused");
  uint64_t e4 = cl_commit(w, "pos");
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_in_flight(w) && wait_now_ms() - t0 < KH_TIMEOUT_MS)
    rd_kafka_poll(p, 10);
  assert_int_equal(broker_cmd(&cl_broker, "clear 0"), 0);
  print_message("failed: %s\n", bk_changelog_writer_error(w));
  assert_int_equal(log.errors, 1);
  assert_non_null(strstr(bk_changelog_writer_error(w), "changelog '" TOPIC "' partition 6"));
  assert_true(bk_changelog_acked(w) < e4);
  assert_int_equal(bk_changelog_put(w, "k", 1, "v", 1), BROOK_ERR_KAFKA);
  assert_int_equal(bk_changelog_commit(w, NULL, 0, NULL), BROOK_ERR_KAFKA);
  bk_changelog_writer_free(w);
  rd_kafka_destroy(p);
}

static void test_epochs_with_markers_restore_exactly(void **state) {
  (void)state;
  rd_kafka_t *p = cl_changelog_producer();
  bk_changelog_writer_t *w = cl_writer(p, 0, bk_cl_first_epoch(0), 0);
  char k[16], v[16], pos[16];
  uint64_t last = 0;
  for (int e = 0; e < 5; e++) {
    for (int i = 0; i < 20; i++) {
      snprintf(k, sizeof(k), "k%d", (e * 7 + i) % 30);
      snprintf(v, sizeof(v), "e%d.%d", e, i);
      cl_put(w, p, k, (e + i) % 9 == 0 ? NULL : v);
    }
    snprintf(pos, sizeof(pos), "p%d", e);
    last = cl_commit(w, pos);
  }
  /* A store key equal to the marker key's bytes is data, not a marker. */
  bk_changelog_put(w, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN, "user", 4);
  last = cl_commit(w, "p5");
  cl_drain(p, w);
  assert_int_equal(bk_changelog_acked(w), last);
  const bk_changelog_writer_stats_t *ws = bk_changelog_writer_stats(w);
  assert_int_equal(ws->records, 101);
  assert_int_equal(ws->markers, 7); /* the first commit's, then one per commit */

  /* The expected state: the same writes on a store directly. */
  brook_store_t *want = cl_new_store();
  for (int e = 0; e < 5; e++)
    for (int i = 0; i < 20; i++) {
      snprintf(k, sizeof(k), "k%d", (e * 7 + i) % 30);
      snprintf(v, sizeof(v), "e%d.%d", e, i);
      cl_apply_store(k, strlen(k), (e + i) % 9 == 0 ? NULL : v, strlen(v), want);
    }
  rd_kafka_t *c = cl_restore_consumer();
  brook_store_t *got = cl_new_store();
  cl_restore_run_t run = cl_restore(c, 0, 0, 0, got, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  assert_int_equal(run.res.has_marker, 1);
  assert_int_equal(run.res.marker_epoch, last);
  assert_int_equal(run.res.marker_offset, 107); /* 101 records + 7 markers, the last one */
  assert_string_equal(run.positions, "p5");
  assert_int_equal(run.res.records_read, 108);
  assert_int_equal(run.res.records_applied, 101);
  assert_int_equal(run.res.records_dropped, 0);
  assert_int_equal(run.res.markers, 7);
  assert_int_equal(run.res.tail_keys, 0);
  assert_true(run.res.next_epoch > last);
  assert_int_equal(brook_store_count(got), brook_store_count(want) + 1);
  for (int i = 0; i < 30; i++) {
    snprintf(k, sizeof(k), "k%d", i);
    char buf[16];
    size_t n = 0;
    if (brook_store_get_copy(want, k, strlen(k), buf, sizeof(buf) - 1, &n) == BROOK_OK) {
      buf[n] = 0;
      cl_assert_value(got, k, buf);
    } else {
      cl_assert_value(got, k, NULL);
    }
  }
  const void *uv = NULL;
  size_t ul = 0;
  assert_int_equal(brook_store_get(got, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN, &uv, &ul),
                   BROOK_OK);
  assert_memory_equal(uv, "user", 4);

  /* From the stored position: only the tail after it, nothing new here. */
  cl_restore_run_t tail = cl_restore(c, 0, run.res.marker_offset + 1, last, got, 1000, NULL);
  assert_int_equal(tail.err, BROOK_OK);
  assert_int_equal(tail.res.records_read, 0);
  assert_int_equal(tail.res.has_marker, 0);
  assert_int_equal(tail.res.committed_epoch, last); /* the local state's */
  assert_true(tail.res.next_epoch > last);

  brook_store_free(want);
  brook_store_free(got);
  bk_changelog_writer_free(w);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

/* A writer killed mid-epoch (records out, no marker), the next incarnation restores without
 * them, compensates their keys and goes on; a restore after that is still exact, and each
 * incarnation's epochs are above every epoch before. */
static void test_killed_writer_is_dropped_and_compensated(void **state) {
  (void)state;
  rd_kafka_t *p = cl_changelog_producer();
  rd_kafka_t *c = cl_restore_consumer();
  const int32_t part = 1;
  bk_changelog_writer_t *a = cl_writer(p, part, bk_cl_first_epoch(0), 0);
  cl_put(a, p, "x", "1");
  cl_put(a, p, "y", "1");
  uint64_t ea = cl_commit(a, "a1");
  cl_put(a, p, "x", "2");
  cl_put(a, p, "z", "2");
  cl_commit(a, "a2");
  /* Killed during its third epoch: these two are written, its marker never is. */
  uint64_t dead = bk_changelog_epoch(a);
  cl_put(a, p, "x", "dead");
  cl_put(a, p, "w", "dead");
  cl_put(a, p, "y", NULL);
  cl_drain(p, a);
  bk_changelog_writer_free(a);
  (void)ea;

  brook_store_t *s1 = cl_new_store();
  bk_changelog_restore_t *r1 = NULL;
  cl_restore_run_t run1 = cl_restore(c, part, 0, 0, s1, 1000, &r1);
  assert_int_equal(run1.err, BROOK_OK);
  assert_string_equal(run1.positions, "a2");
  cl_assert_value(s1, "x", "2");
  cl_assert_value(s1, "y", "1");
  cl_assert_value(s1, "z", "2");
  cl_assert_value(s1, "w", NULL);
  assert_int_equal(run1.res.records_dropped, 3);
  assert_int_equal(run1.res.tail_keys, 3);
  assert_int_equal(run1.res.max_epoch, dead);
  assert_true(run1.res.next_epoch > dead);

  /* Incarnation B: compensation first, then its own commits. */
  bk_changelog_writer_t *b =
      cl_writer_unstarted(p, part, run1.res.next_epoch, run1.res.committed_epoch);
  assert_int_equal(
      bk_changelog_compensate(b, run1.res.tail_keys, cl_tail_key, r1, cl_lookup_store, s1),
      BROOK_OK);
  assert_int_equal(bk_changelog_writer_stats(b)->compensations, 3);
  bk_changelog_restore_free(r1);
  cl_start(b, p, "a2"); /* the compensation's marker: the restored positions */
  cl_put(b, p, "v", "b");
  uint64_t eb = cl_commit(b, "b1");
  assert_true(eb > dead);
  /* B dies too, mid-epoch. */
  cl_put(b, p, "z", "dead2");
  cl_drain(p, b);
  assert_int_equal(bk_changelog_acked(b), eb);
  bk_changelog_writer_free(b);

  brook_store_t *s2 = cl_new_store();
  bk_changelog_restore_t *r2 = NULL;
  cl_restore_run_t run2 = cl_restore(c, part, 0, 0, s2, 1000, &r2);
  assert_int_equal(run2.err, BROOK_OK);
  assert_string_equal(run2.positions, "b1");
  cl_assert_value(s2, "x", "2");
  cl_assert_value(s2, "y", "1");
  cl_assert_value(s2, "z", "2");
  cl_assert_value(s2, "w", NULL);
  cl_assert_value(s2, "v", "b");
  assert_int_equal(run2.res.marker_epoch, eb);
  assert_int_equal(run2.res.records_dropped, 4); /* A's three, B's one */
  assert_int_equal(run2.res.tail_keys, 1);
  assert_true(run2.res.next_epoch > run2.res.max_epoch);

  /* C compensates B's tail and commits; a third restore is exact again. */
  bk_changelog_writer_t *cw =
      cl_writer_unstarted(p, part, run2.res.next_epoch, run2.res.committed_epoch);
  assert_int_equal(
      bk_changelog_compensate(cw, run2.res.tail_keys, cl_tail_key, r2, cl_lookup_store, s2),
      BROOK_OK);
  bk_changelog_restore_free(r2);
  cl_start(cw, p, "b1");
  cl_put(cw, p, "u", "c");
  uint64_t ec = cl_commit(cw, "c1");
  cl_drain(p, cw);
  bk_changelog_writer_free(cw);
  brook_store_t *s3 = cl_new_store();
  cl_restore_run_t run3 = cl_restore(c, part, 0, 0, s3, 1000, NULL);
  assert_int_equal(run3.err, BROOK_OK);
  assert_string_equal(run3.positions, "c1");
  assert_int_equal(run3.res.marker_epoch, ec);
  cl_assert_value(s3, "z", "2");
  cl_assert_value(s3, "u", "c");
  assert_int_equal(brook_store_count(s3), 5);
  assert_int_equal(run3.res.tail_keys, 0);

  brook_store_free(s1);
  brook_store_free(s2);
  brook_store_free(s3);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

/* Raw records with damaged framing, each after a committed epoch and before a valid one. */
typedef struct damage {
  const char *name;
  const void *key;
  size_t klen;
  const void *val;
  size_t vlen;
  const void *hdr; /* NULL: no header */
  size_t hlen;
  const char *expect;
} damage_t;

static void produce_raw(rd_kafka_t *p, int32_t part, const void *key, size_t klen, const void *val,
                        size_t vlen, const void *hdr, size_t hlen) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(1);
  if (hdr)
    rd_kafka_header_add(h, BK_CL_EPOCH_HEADER, -1, hdr, (ssize_t)hlen);
  assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
                                     RD_KAFKA_V_KEY(key, klen),
                                     RD_KAFKA_V_VALUE((void *)(uintptr_t)val, vlen),
                                     RD_KAFKA_V_HEADERS(h),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void test_damaged_records_are_corrupt_naming_where(void **state) {
  (void)state;
  rd_kafka_t *raw = kh_client(RD_KAFKA_PRODUCER, cl_broker.bootstrap, NULL, NULL, NULL);
  rd_kafka_t *p = cl_changelog_producer();
  rd_kafka_t *c = cl_restore_consumer();
  uint64_t e1 = bk_cl_first_epoch(0), e2 = e1 + 1;
  unsigned char good[16], garbled[16], marker[64];
  bk_cl_epoch_header(good, e2, e1);
  bk_cl_epoch_header(garbled, e1, e2); /* committed after its own epoch */
  bk_cl_marker_encode(marker, e2, e1, "positions", 9);
  unsigned char bad_key[8];
  memcpy(bad_key, bk_cl_prefix, 7);
  bad_key[7] = 7;
  const damage_t cases[] = {
      {"no header", "k", 1, "v", 1, NULL, 0, "without its 'brook.e' epoch header"},
      {"short header", "k", 1, "v", 1, good, 8, "of the wrong length"},
      {"garbled header", "k", 1, "v", 1, garbled, 16, "header garbled"},
      {"truncated marker", bk_cl_marker_key, 8, marker, BK_CL_MARKER_OVERHEAD + 4, good, 16,
       "marker positions blob truncated"},
      {"marker tombstone", bk_cl_marker_key, 8, NULL, 0, good, 16, "marker is a tombstone"},
      {"reserved key", bad_key, 8, "v", 1, good, 16, "reserved prefix"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const int32_t part = 2 + (int32_t)i % 6;
    /* Distinct partitions (2..7); a second use of one starts after the first's records. */
    int64_t lo = 0, hi = 0;
    assert_int_equal(rd_kafka_query_watermark_offsets(raw, TOPIC, part, &lo, &hi, 10000), 0);
    bk_changelog_writer_t *w = cl_writer(p, part, e1 + 10 * (uint64_t)(i + 1), 0);
    cl_put(w, p, "before", "ok");
    cl_commit(w, "pos");
    cl_drain(p, w);
    bk_changelog_writer_free(w);
    const damage_t *d = &cases[i];
    produce_raw(raw, part, d->key, d->klen, d->val, d->vlen, d->hdr, d->hlen);
    /* A valid, committed epoch after the damage: never applied. */
    w = cl_writer(p, part, e1 + 10 * (uint64_t)(i + 1) + 5, e1 + 10 * (uint64_t)(i + 1));
    cl_put(w, p, "after", "never");
    cl_commit(w, "pos2");
    cl_drain(p, w);
    bk_changelog_writer_free(w);

    brook_store_t *s = cl_new_store();
    cl_restore_run_t run = cl_restore(c, part, hi, 0, s, 1000, NULL);
    print_message("%s: %s\n", d->name, run.why.text);
    assert_int_equal(run.err, BROOK_ERR_CORRUPT);
    char where[128];
    snprintf(where, sizeof(where), "changelog '" TOPIC "' partition %d offset %lld", (int)part,
             (long long)hi + 3); /* the first commit's marker, "before", its marker */
    if (!strstr(run.why.text, where))
      fail_msg("%s: '%s' does not name '%s'", d->name, run.why.text, where);
    assert_non_null(strstr(run.why.text, d->expect));
    cl_assert_value(s, "before", "ok");
    cl_assert_value(s, "after", NULL);
    brook_store_free(s);
  }
  rd_kafka_destroy(raw);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

/* The embedded broker keeps ~5 MiB per partition: past it, the log's start moves and a
 * restore from 0 must fail instead of restoring a state with holes. */
static void test_log_start_after_needed_offset(void **state) {
  (void)state;
  assert_int_equal(broker_cmd(&cl_broker, "topic small-changelog 1"), 0);
  rd_kafka_t *p = cl_changelog_producer();
  rd_kafka_t *c = cl_restore_consumer();
  bk_changelog_writer_opts_t o = {.producer = p,
                                  .topic = "small-changelog",
                                  .partition = 0,
                                  .first_epoch = bk_cl_first_epoch(0)};
  bk_changelog_writer_t *w = NULL;
  bk_errmsg_t why;
  assert_int_equal(bk_changelog_writer_new(&o, &w, &why), BROOK_OK);
  cl_start(w, p, "pos");
  static char big[4096];
  memset(big, 'x', sizeof(big));
  char k[16];
  for (int i = 0; i < 2000; i++) { /* 8 MB */
    snprintf(k, sizeof(k), "k%d", i);
    brook_err_t err;
    while ((err = bk_changelog_put(w, k, strlen(k), big, sizeof(big))) == BROOK_ERR_FULL)
      rd_kafka_poll(p, 10);
    assert_int_equal(err, BROOK_OK);
    if (i % 100 == 99)
      assert_int_equal(bk_changelog_commit(w, "pos", 3, NULL), BROOK_OK);
  }
  cl_drain(p, w);
  bk_changelog_writer_free(w);
  int64_t lo = -1, hi = -1;
  assert_int_equal(rd_kafka_query_watermark_offsets(c, "small-changelog", 0, &lo, &hi, 10000), 0);
  print_message("log now %lld..%lld\n", (long long)lo, (long long)hi);
  assert_true(lo > 0);

  brook_store_t *s = cl_new_store();
  bk_changelog_restore_opts_t ro = {.consumer = c,
                                    .topic = "small-changelog",
                                    .partition = 0,
                                    .start_offset = 0,
                                    .apply = cl_apply_store,
                                    .apply_opaque = s};
  cl_restore_run_t run = cl_restore_with(&ro, 1000, NULL);
  print_message("from 0: %s\n", run.why.text);
  assert_int_equal(run.err, BROOK_ERR_CORRUPT);
  assert_non_null(strstr(run.why.text, "changelog 'small-changelog' partition 0 offset 0"));
  char starts[64];
  snprintf(starts, sizeof(starts), "the log starts at offset %lld", (long long)lo);
  assert_non_null(strstr(run.why.text, starts));
  assert_int_equal(brook_store_count(s), 0);

  /* From the log's start instead (a store whose changelog has time retention): no error. */
  ro.start_offset = BK_CL_FROM_LOG_START;
  run = cl_restore_with(&ro, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  assert_int_equal(run.res.end_offset, hi);
  assert_true(brook_store_count(s) > 0);
  brook_store_free(s);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

static void test_missing_partition_times_out(void **state) {
  (void)state;
  rd_kafka_t *c = cl_restore_consumer();
  brook_store_t *s = cl_new_store();
  bk_changelog_restore_opts_t ro = {.consumer = c,
                                    .topic = TOPIC,
                                    .partition = 50,
                                    .start_offset = 0,
                                    .timeout_ms = 1000,
                                    .apply = cl_apply_store,
                                    .apply_opaque = s};
  cl_restore_run_t run = cl_restore_with(&ro, 1000, NULL);
  print_message("missing: %s\n", run.why.text);
  assert_int_equal(run.err, BROOK_ERR_TIMEOUT);
  assert_non_null(strstr(run.why.text, "changelog '" TOPIC "' partition 50"));
  brook_store_free(s);
  rd_kafka_destroy(c);
}

/* 100,000 records restored in steps of 1,000 give exactly what one step gives. */
static void test_slices_equal_one_step(void **state) {
  (void)state;
  const int32_t part = 7;
  rd_kafka_t *p = cl_changelog_producer();
  rd_kafka_t *c = cl_restore_consumer();
  int64_t lo = 0, hi = 0;
  assert_int_equal(rd_kafka_query_watermark_offsets(c, TOPIC, part, &lo, &hi, 10000), 0);
  bk_changelog_writer_t *w = cl_writer(p, part, bk_cl_first_epoch(1000000), 0);
  char k[16], v[16];
  for (int i = 0; i < 100000; i++) {
    snprintf(k, sizeof(k), "key%d", (i * 7919) % 30011);
    snprintf(v, sizeof(v), "%d", i);
    cl_put(w, p, k, i % 13 == 0 ? NULL : v);
    if (i % 1000 == 999) {
      snprintf(v, sizeof(v), "pos%d", i);
      cl_commit(w, v);
    }
  }
  cl_put(w, p, "tail", "x");
  cl_drain(p, w);
  bk_changelog_writer_free(w);

  brook_store_t *one = cl_new_store(), *sliced = cl_new_store();
  cl_restore_run_t a = cl_restore(c, part, hi, 0, one, SIZE_MAX, NULL);
  cl_restore_run_t b = cl_restore(c, part, hi, 0, sliced, 1000, NULL);
  assert_int_equal(a.err, BROOK_OK);
  assert_int_equal(b.err, BROOK_OK);
  print_message("one step: %zu calls; sliced: %zu calls, at most %zu records each\n", a.steps,
                b.steps, b.max_step);
  assert_true(b.max_step <= 1000);
  assert_true(b.steps >= 100);
  assert_int_equal(a.res.records_read, 100102); /* and the first commit's marker */
  assert_int_equal(b.res.records_read, a.res.records_read);
  assert_int_equal(b.res.records_applied, a.res.records_applied);
  assert_int_equal(a.res.records_applied, 100000);
  assert_int_equal(b.res.records_dropped, 1);
  assert_int_equal(b.res.marker_offset, a.res.marker_offset);
  assert_string_equal(a.positions, "pos99999");
  assert_string_equal(b.positions, a.positions);
  assert_int_equal(brook_store_count(one), brook_store_count(sliced));
  brook_store_iter_t *it = NULL;
  assert_int_equal(brook_store_iter_all(one, &it), BROOK_OK);
  brook_store_entry_t e;
  size_t n = 0;
  while (brook_store_iter_next(it, &e)) {
    const void *sv;
    size_t sl;
    assert_int_equal(brook_store_get(sliced, e.key, e.key_len, &sv, &sl), BROOK_OK);
    assert_int_equal(sl, e.value_len);
    assert_memory_equal(sv, e.value, sl);
    n++;
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_int_equal(n, brook_store_count(one));
  brook_store_free(one);
  brook_store_free(sliced);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_epochs_with_markers_restore_exactly),
      cmocka_unit_test(test_killed_writer_is_dropped_and_compensated),
      cmocka_unit_test(test_damaged_records_are_corrupt_naming_where),
      cmocka_unit_test(test_acks_per_epoch_and_failure),
      cmocka_unit_test(test_missing_partition_times_out),
      cmocka_unit_test(test_slices_equal_one_step),
      cmocka_unit_test(test_log_start_after_needed_offset),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, cl_setup, cl_teardown);
}
