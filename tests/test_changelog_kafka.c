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
#include "support/fail_alloc.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

#define TOPIC "app-node-store-changelog"

static broker_proc_t broker;

static int setup(void **state) {
  (void)state;
  const char *const topics[] = {TOPIC ":16", NULL};
  return broker_start(&broker, 1, topics, NULL);
}

static int teardown(void **state) {
  (void)state;
  return broker_stop(&broker) == 0 ? 0 : -1;
}

static rd_kafka_t *changelog_producer(void) {
  return kh_client(RD_KAFKA_PRODUCER, broker.bootstrap,
                   (const char *const[]){"linger.ms", "5", "enable.idempotence", "true", NULL},
                   bk_changelog_dr_msg_cb, NULL);
}

/* A writer that has not made its first commit yet (compensation goes there). */
static bk_changelog_writer_t *writer_unstarted(rd_kafka_t *p, int32_t part, uint64_t first,
                                               uint64_t committed) {
  bk_changelog_writer_opts_t o = {.producer = p,
                                  .topic = TOPIC,
                                  .partition = part,
                                  .first_epoch = first,
                                  .committed = committed};
  bk_changelog_writer_t *w = NULL;
  bk_errmsg_t why;
  if (bk_changelog_writer_new(&o, &w, &why) != BROOK_OK)
    fail_msg("writer: %s", why.text);
  return w;
}

/* The task's first commit (after its compensation), and its acknowledgement: puts may follow. */
static uint64_t start(bk_changelog_writer_t *w, rd_kafka_t *p, const char *positions) {
  uint64_t e = 0;
  assert_int_equal(bk_changelog_commit(w, positions, strlen(positions), &e), BROOK_OK);
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_acked(w) < e && wait_now_ms() - t0 < KH_TIMEOUT_MS)
    rd_kafka_poll(p, 10);
  assert_int_equal(bk_changelog_acked(w), e);
  return e;
}

/* A started writer: nothing to compensate. */
static bk_changelog_writer_t *writer(rd_kafka_t *p, int32_t part, uint64_t first,
                                     uint64_t committed) {
  bk_changelog_writer_t *w = writer_unstarted(p, part, first, committed);
  start(w, p, "start");
  return w;
}

static void put(bk_changelog_writer_t *w, rd_kafka_t *p, const char *k, const char *v) {
  brook_err_t err;
  while ((err = bk_changelog_put(w, k, strlen(k), v, v ? strlen(v) : 0)) == BROOK_ERR_FULL)
    rd_kafka_poll(p, 10);
  assert_int_equal(err, BROOK_OK);
}

static uint64_t commit(bk_changelog_writer_t *w, const char *positions) {
  uint64_t e = 0;
  assert_int_equal(bk_changelog_commit(w, positions, strlen(positions), &e), BROOK_OK);
  return e;
}

/* Serves the producer until everything the writer sent is acknowledged. */
static void drain(rd_kafka_t *p, bk_changelog_writer_t *w) {
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_in_flight(w) && wait_now_ms() - t0 < KH_TIMEOUT_MS)
    rd_kafka_poll(p, 10);
  assert_int_equal(bk_changelog_in_flight(w), 0);
  assert_string_equal(bk_changelog_writer_error(w), "");
}

/* ---- restoring into a brook store ---- */

static brook_err_t apply_store(const void *key, size_t klen, const void *value, size_t vlen,
                               void *opaque) {
  brook_store_t *s = opaque;
  if (!value) {
    brook_err_t err = brook_store_delete(s, key, klen);
    return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
  }
  return brook_store_put(s, key, klen, value, vlen);
}

static brook_err_t lookup_store(const void *key, size_t klen, const void **value, size_t *vlen,
                                void *opaque) {
  return brook_store_get(opaque, key, klen, value, vlen);
}

static void one_key(size_t i, const void **key, size_t *klen, void *opaque) {
  (void)i;
  *key = *(const char **)opaque;
  *klen = strlen(*key);
}

static brook_err_t missing(const void *key, size_t klen, const void **value, size_t *vlen,
                           void *opaque) {
  (void)key, (void)klen, (void)value, (void)vlen, (void)opaque;
  return BROOK_ERR_NOT_FOUND;
}

static void tail_key(size_t i, const void **key, size_t *klen, void *opaque) {
  bk_changelog_restore_tail_key(opaque, i, key, klen);
}

static brook_store_t *new_store(void) {
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  return s;
}

typedef struct restore_run {
  bk_changelog_restore_result_t res;
  char positions[64];
  brook_err_t err;
  bk_errmsg_t why;
  size_t max_step; /* the most records one step read */
  size_t steps;
} restore_run_t;

/* Runs the restore of `o` to its end in steps of `step` records. Leaves the restore open in
 * *keep (for its tail keys) when keep is not NULL and it started. */
static restore_run_t restore_with(const bk_changelog_restore_opts_t *o, size_t step,
                                  bk_changelog_restore_t **keep) {
  restore_run_t run;
  memset(&run, 0, sizeof(run));
  bk_changelog_restore_t *r = NULL;
  run.err = bk_changelog_restore_new(o, &r, &run.why);
  if (run.err)
    return run;
  int done = 0;
  uint64_t t0 = wait_now_ms();
  while (!done && wait_now_ms() - t0 < 2 * KH_TIMEOUT_MS) {
    uint64_t before = bk_changelog_restore_result(r)->records_read;
    run.err = bk_changelog_restore_step(r, step, 50, 10, &done, &run.why);
    size_t n = (size_t)(bk_changelog_restore_result(r)->records_read - before);
    if (n > run.max_step)
      run.max_step = n;
    run.steps++;
    if (run.err)
      break;
  }
  assert_true(done);
  if (!run.err)
    run.err = bk_changelog_restore_finish(r, 0, 0, &run.why); /* a task of one store */
  run.res = *bk_changelog_restore_result(r);
  if (run.res.positions)
    snprintf(run.positions, sizeof(run.positions), "%.*s", (int)run.res.positions_len,
             (const char *)run.res.positions);
  run.res.positions = NULL;
  if (keep)
    *keep = r;
  else
    bk_changelog_restore_free(r);
  return run;
}

/* Restores partition `part` of TOPIC from `start` into `s`. */
static restore_run_t restore(rd_kafka_t *c, int32_t part, int64_t start, uint64_t known,
                             brook_store_t *s, size_t step, bk_changelog_restore_t **keep) {
  bk_changelog_restore_opts_t o = {.consumer = c,
                                   .topic = TOPIC,
                                   .partition = part,
                                   .start_offset = start,
                                   .known_epoch = known,
                                   .apply = apply_store,
                                   .apply_opaque = s};
  return restore_with(&o, step, keep);
}

static rd_kafka_t *restore_consumer(void) {
  rd_kafka_t *c = NULL;
  bk_errmsg_t why;
  if (bk_changelog_restore_consumer(broker.bootstrap, (const char *const[]){"log_level", "0", NULL},
                                    &c, &why))
    fail_msg("restore consumer: %s", why.text);
  return c;
}

static void assert_value(brook_store_t *s, const char *k, const char *want) {
  const void *v = NULL;
  size_t vlen = 0;
  brook_err_t err = brook_store_get(s, k, strlen(k), &v, &vlen);
  if (!want) {
    if (err != BROOK_ERR_NOT_FOUND)
      fail_msg("key %s: expected absent, got '%.*s'", k, (int)vlen, (const char *)v);
    return;
  }
  if (err != BROOK_OK)
    fail_msg("key %s: expected '%s', absent", k, want);
  if (vlen != strlen(want) || memcmp(v, want, vlen) != 0)
    fail_msg("key %s: expected '%s', got '%.*s'", k, want, (int)vlen, (const char *)v);
}

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
  rd_kafka_t *p = changelog_producer();
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
  uint64_t e0 = start(w, p, "pos0");
  assert_int_equal(log.calls, 1);
  uint64_t e[3];
  for (int i = 0; i < 3; i++) {
    put(w, p, "k", "v");
    e[i] = commit(w, "pos");
  }
  assert_int_equal(bk_changelog_acked(w), e0); /* nothing served yet */
  drain(p, w);
  assert_int_equal(log.calls, 4);
  assert_int_equal(log.last, e[2]);
  assert_int_equal(bk_changelog_acked(w), e[2]);
  /* An epoch with records but no marker yet is never acknowledged. */
  put(w, p, "k", "open");
  drain(p, w);
  assert_int_equal(bk_changelog_acked(w), e[2]);

  /* The broker refuses the next produce requests for good (INVALID_RECORD). */
  assert_int_equal(broker_cmd(&broker, "error 0 87 20"), 0);
  put(w, p, "k", "refused");
  uint64_t e4 = commit(w, "pos");
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_in_flight(w) && wait_now_ms() - t0 < KH_TIMEOUT_MS)
    rd_kafka_poll(p, 10);
  assert_int_equal(broker_cmd(&broker, "clear 0"), 0);
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
  rd_kafka_t *p = changelog_producer();
  bk_changelog_writer_t *w = writer(p, 0, bk_cl_first_epoch(0), 0);
  char k[16], v[16], pos[16];
  uint64_t last = 0;
  for (int e = 0; e < 5; e++) {
    for (int i = 0; i < 20; i++) {
      snprintf(k, sizeof(k), "k%d", (e * 7 + i) % 30);
      snprintf(v, sizeof(v), "e%d.%d", e, i);
      put(w, p, k, (e + i) % 9 == 0 ? NULL : v);
    }
    snprintf(pos, sizeof(pos), "p%d", e);
    last = commit(w, pos);
  }
  /* A store key equal to the marker key's bytes is data, not a marker. */
  bk_changelog_put(w, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN, "user", 4);
  last = commit(w, "p5");
  drain(p, w);
  assert_int_equal(bk_changelog_acked(w), last);
  const bk_changelog_writer_stats_t *ws = bk_changelog_writer_stats(w);
  assert_int_equal(ws->records, 101);
  assert_int_equal(ws->markers, 7); /* the first commit's, then one per commit */

  /* The expected state: the same writes on a store directly. */
  brook_store_t *want = new_store();
  for (int e = 0; e < 5; e++)
    for (int i = 0; i < 20; i++) {
      snprintf(k, sizeof(k), "k%d", (e * 7 + i) % 30);
      snprintf(v, sizeof(v), "e%d.%d", e, i);
      apply_store(k, strlen(k), (e + i) % 9 == 0 ? NULL : v, strlen(v), want);
    }
  rd_kafka_t *c = restore_consumer();
  brook_store_t *got = new_store();
  restore_run_t run = restore(c, 0, 0, 0, got, 1000, NULL);
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
      assert_value(got, k, buf);
    } else {
      assert_value(got, k, NULL);
    }
  }
  const void *uv = NULL;
  size_t ul = 0;
  assert_int_equal(brook_store_get(got, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN, &uv, &ul),
                   BROOK_OK);
  assert_memory_equal(uv, "user", 4);

  /* From the stored position: only the tail after it, nothing new here. */
  restore_run_t tail = restore(c, 0, run.res.marker_offset + 1, last, got, 1000, NULL);
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
  rd_kafka_t *p = changelog_producer();
  rd_kafka_t *c = restore_consumer();
  const int32_t part = 1;
  bk_changelog_writer_t *a = writer(p, part, bk_cl_first_epoch(0), 0);
  put(a, p, "x", "1");
  put(a, p, "y", "1");
  uint64_t ea = commit(a, "a1");
  put(a, p, "x", "2");
  put(a, p, "z", "2");
  commit(a, "a2");
  /* Killed during its third epoch: these two are written, its marker never is. */
  uint64_t dead = bk_changelog_epoch(a);
  put(a, p, "x", "dead");
  put(a, p, "w", "dead");
  put(a, p, "y", NULL);
  drain(p, a);
  bk_changelog_writer_free(a);
  (void)ea;

  brook_store_t *s1 = new_store();
  bk_changelog_restore_t *r1 = NULL;
  restore_run_t run1 = restore(c, part, 0, 0, s1, 1000, &r1);
  assert_int_equal(run1.err, BROOK_OK);
  assert_string_equal(run1.positions, "a2");
  assert_value(s1, "x", "2");
  assert_value(s1, "y", "1");
  assert_value(s1, "z", "2");
  assert_value(s1, "w", NULL);
  assert_int_equal(run1.res.records_dropped, 3);
  assert_int_equal(run1.res.tail_keys, 3);
  assert_int_equal(run1.res.max_epoch, dead);
  assert_true(run1.res.next_epoch > dead);

  /* Incarnation B: compensation first, then its own commits. */
  bk_changelog_writer_t *b =
      writer_unstarted(p, part, run1.res.next_epoch, run1.res.committed_epoch);
  assert_int_equal(bk_changelog_compensate(b, run1.res.tail_keys, tail_key, r1, lookup_store, s1),
                   BROOK_OK);
  assert_int_equal(bk_changelog_writer_stats(b)->compensations, 3);
  bk_changelog_restore_free(r1);
  start(b, p, "a2"); /* the compensation's marker: the restored positions */
  put(b, p, "v", "b");
  uint64_t eb = commit(b, "b1");
  assert_true(eb > dead);
  /* B dies too, mid-epoch. */
  put(b, p, "z", "dead2");
  drain(p, b);
  assert_int_equal(bk_changelog_acked(b), eb);
  bk_changelog_writer_free(b);

  brook_store_t *s2 = new_store();
  bk_changelog_restore_t *r2 = NULL;
  restore_run_t run2 = restore(c, part, 0, 0, s2, 1000, &r2);
  assert_int_equal(run2.err, BROOK_OK);
  assert_string_equal(run2.positions, "b1");
  assert_value(s2, "x", "2");
  assert_value(s2, "y", "1");
  assert_value(s2, "z", "2");
  assert_value(s2, "w", NULL);
  assert_value(s2, "v", "b");
  assert_int_equal(run2.res.marker_epoch, eb);
  assert_int_equal(run2.res.records_dropped, 4); /* A's three, B's one */
  assert_int_equal(run2.res.tail_keys, 1);
  assert_true(run2.res.next_epoch > run2.res.max_epoch);

  /* C compensates B's tail and commits; a third restore is exact again. */
  bk_changelog_writer_t *cw =
      writer_unstarted(p, part, run2.res.next_epoch, run2.res.committed_epoch);
  assert_int_equal(bk_changelog_compensate(cw, run2.res.tail_keys, tail_key, r2, lookup_store, s2),
                   BROOK_OK);
  bk_changelog_restore_free(r2);
  start(cw, p, "b1");
  put(cw, p, "u", "c");
  uint64_t ec = commit(cw, "c1");
  drain(p, cw);
  bk_changelog_writer_free(cw);
  brook_store_t *s3 = new_store();
  restore_run_t run3 = restore(c, part, 0, 0, s3, 1000, NULL);
  assert_int_equal(run3.err, BROOK_OK);
  assert_string_equal(run3.positions, "c1");
  assert_int_equal(run3.res.marker_epoch, ec);
  assert_value(s3, "z", "2");
  assert_value(s3, "u", "c");
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
  rd_kafka_t *raw = kh_client(RD_KAFKA_PRODUCER, broker.bootstrap, NULL, NULL, NULL);
  rd_kafka_t *p = changelog_producer();
  rd_kafka_t *c = restore_consumer();
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
    bk_changelog_writer_t *w = writer(p, part, e1 + 10 * (uint64_t)(i + 1), 0);
    put(w, p, "before", "ok");
    commit(w, "pos");
    drain(p, w);
    bk_changelog_writer_free(w);
    const damage_t *d = &cases[i];
    produce_raw(raw, part, d->key, d->klen, d->val, d->vlen, d->hdr, d->hlen);
    /* A valid, committed epoch after the damage: never applied. */
    w = writer(p, part, e1 + 10 * (uint64_t)(i + 1) + 5, e1 + 10 * (uint64_t)(i + 1));
    put(w, p, "after", "never");
    commit(w, "pos2");
    drain(p, w);
    bk_changelog_writer_free(w);

    brook_store_t *s = new_store();
    restore_run_t run = restore(c, part, hi, 0, s, 1000, NULL);
    print_message("%s: %s\n", d->name, run.why.text);
    assert_int_equal(run.err, BROOK_ERR_CORRUPT);
    char where[128];
    snprintf(where, sizeof(where), "changelog '" TOPIC "' partition %d offset %lld", (int)part,
             (long long)hi + 3); /* the first commit's marker, "before", its marker */
    if (!strstr(run.why.text, where))
      fail_msg("%s: '%s' does not name '%s'", d->name, run.why.text, where);
    assert_non_null(strstr(run.why.text, d->expect));
    assert_value(s, "before", "ok");
    assert_value(s, "after", NULL);
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
  assert_int_equal(broker_cmd(&broker, "topic small-changelog 1"), 0);
  rd_kafka_t *p = changelog_producer();
  rd_kafka_t *c = restore_consumer();
  bk_changelog_writer_opts_t o = {.producer = p,
                                  .topic = "small-changelog",
                                  .partition = 0,
                                  .first_epoch = bk_cl_first_epoch(0)};
  bk_changelog_writer_t *w = NULL;
  bk_errmsg_t why;
  assert_int_equal(bk_changelog_writer_new(&o, &w, &why), BROOK_OK);
  start(w, p, "pos");
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
  drain(p, w);
  bk_changelog_writer_free(w);
  int64_t lo = -1, hi = -1;
  assert_int_equal(rd_kafka_query_watermark_offsets(c, "small-changelog", 0, &lo, &hi, 10000), 0);
  print_message("log now %lld..%lld\n", (long long)lo, (long long)hi);
  assert_true(lo > 0);

  brook_store_t *s = new_store();
  bk_changelog_restore_opts_t ro = {.consumer = c,
                                    .topic = "small-changelog",
                                    .partition = 0,
                                    .start_offset = 0,
                                    .apply = apply_store,
                                    .apply_opaque = s};
  restore_run_t run = restore_with(&ro, 1000, NULL);
  print_message("from 0: %s\n", run.why.text);
  assert_int_equal(run.err, BROOK_ERR_CORRUPT);
  assert_non_null(strstr(run.why.text, "changelog 'small-changelog' partition 0 offset 0"));
  char starts[64];
  snprintf(starts, sizeof(starts), "the log starts at offset %lld", (long long)lo);
  assert_non_null(strstr(run.why.text, starts));
  assert_int_equal(brook_store_count(s), 0);

  /* From the log's start instead (a store whose changelog has time retention): no error. */
  ro.start_offset = BK_CL_FROM_LOG_START;
  run = restore_with(&ro, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  assert_int_equal(run.res.end_offset, hi);
  assert_true(brook_store_count(s) > 0);
  brook_store_free(s);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

static void test_missing_partition_times_out(void **state) {
  (void)state;
  rd_kafka_t *c = restore_consumer();
  brook_store_t *s = new_store();
  bk_changelog_restore_opts_t ro = {.consumer = c,
                                    .topic = TOPIC,
                                    .partition = 50,
                                    .start_offset = 0,
                                    .timeout_ms = 1000,
                                    .apply = apply_store,
                                    .apply_opaque = s};
  restore_run_t run = restore_with(&ro, 1000, NULL);
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
  rd_kafka_t *p = changelog_producer();
  rd_kafka_t *c = restore_consumer();
  int64_t lo = 0, hi = 0;
  assert_int_equal(rd_kafka_query_watermark_offsets(c, TOPIC, part, &lo, &hi, 10000), 0);
  bk_changelog_writer_t *w = writer(p, part, bk_cl_first_epoch(1000000), 0);
  char k[16], v[16];
  for (int i = 0; i < 100000; i++) {
    snprintf(k, sizeof(k), "key%d", (i * 7919) % 30011);
    snprintf(v, sizeof(v), "%d", i);
    put(w, p, k, i % 13 == 0 ? NULL : v);
    if (i % 1000 == 999) {
      snprintf(v, sizeof(v), "pos%d", i);
      commit(w, v);
    }
  }
  put(w, p, "tail", "x");
  drain(p, w);
  bk_changelog_writer_free(w);

  brook_store_t *one = new_store(), *sliced = new_store();
  restore_run_t a = restore(c, part, hi, 0, one, SIZE_MAX, NULL);
  restore_run_t b = restore(c, part, hi, 0, sliced, 1000, NULL);
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

/* ---- delivery reports the test holds back ---- */

/* A changelog producer whose delivery reports arrive as events the test serves itself, so it
 * can hold some back: what the writer does before it knows a record's fate. */
static rd_kafka_t *held_producer(void) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[256];
  const char *const kv[] = {"bootstrap.servers",
                            broker.bootstrap,
                            "linger.ms",
                            "5",
                            "enable.idempotence",
                            "true",
                            "log_level",
                            "0",
                            NULL};
  for (size_t i = 0; kv[i]; i += 2)
    assert_int_equal(rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof(err)), RD_KAFKA_CONF_OK);
  rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  assert_non_null(p);
  return p;
}

typedef struct held {
  rd_kafka_event_t *ev[256];
  size_t n_ev, n_msgs;
} held_t;

/* Waits (deadline) until at least `n` more delivery reports arrived, and keeps them. */
static void hold_reports(rd_kafka_t *p, held_t *h, size_t n) {
  rd_kafka_queue_t *q = rd_kafka_queue_get_main(p);
  size_t want = h->n_msgs + n;
  uint64_t t0 = wait_now_ms();
  while (h->n_msgs < want && wait_now_ms() - t0 < KH_TIMEOUT_MS) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10);
    if (!ev)
      continue;
    if (rd_kafka_event_type(ev) != RD_KAFKA_EVENT_DR || h->n_ev == 256) {
      assert_true(rd_kafka_event_type(ev) != RD_KAFKA_EVENT_DR);
      rd_kafka_event_destroy(ev);
      continue;
    }
    h->n_msgs += rd_kafka_event_message_count(ev);
    h->ev[h->n_ev++] = ev;
  }
  rd_kafka_queue_destroy(q);
  assert_true(h->n_msgs >= want);
}

/* Hands the held reports to the changelog, in order. */
static void release_reports(held_t *h) {
  for (size_t i = 0; i < h->n_ev; i++) {
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(h->ev[i])))
      assert_int_equal(bk_changelog_delivery(m), 1);
    rd_kafka_event_destroy(h->ev[i]);
  }
  h->n_ev = h->n_msgs = 0;
}

/* Serves the held producer's reports as they come until `w` has nothing in flight. */
static void serve_until_idle(rd_kafka_t *p, bk_changelog_writer_t *w) {
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_in_flight(w) && wait_now_ms() - t0 < KH_TIMEOUT_MS) {
    held_t h = {0};
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(p);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10);
    rd_kafka_queue_destroy(q);
    if (!ev)
      continue;
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
      h.ev[h.n_ev++] = ev;
      release_reports(&h);
    } else {
      rd_kafka_event_destroy(ev);
    }
  }
  assert_int_equal(bk_changelog_in_flight(w), 0);
}

/* Review: a record of epoch E is refused (its own Produce request) and its report is not served
 * yet when E is committed. Its marker must not be written over the lost record: the restore
 * must stay at the commit before. */
static void test_marker_over_a_lost_record(void **state) {
  (void)state;
  const int32_t part = 8;
  rd_kafka_t *p = held_producer();
  bk_changelog_writer_t *w = writer_unstarted(p, part, bk_cl_first_epoch(0), 0);
  commit(w, "p0");
  serve_until_idle(p, w);
  put(w, p, "k", "a");
  uint64_t e1 = commit(w, "p1");
  serve_until_idle(p, w);
  assert_int_equal(bk_changelog_acked(w), e1);
  assert_int_equal(broker_cmd(&broker, "error 0 87 1"), 0);
  put(w, p, "k", "b");
  held_t h = {0};
  hold_reports(p, &h, 1); /* refused; the writer does not know yet */
  uint64_t e2 = commit(w, "p2");
  assert_int_equal(bk_changelog_writer_stats(w)->markers, 2); /* E2's waits for the report */
  release_reports(&h);
  serve_until_idle(p, w);
  assert_int_equal(broker_cmd(&broker, "clear 0"), 0);
  print_message("writer: '%s', acked %llu, e2 %llu\n", bk_changelog_writer_error(w),
                (unsigned long long)bk_changelog_acked(w), (unsigned long long)e2);
  assert_non_null(strstr(bk_changelog_writer_error(w), "was not written"));
  assert_true(bk_changelog_acked(w) < e2);
  rd_kafka_t *c = restore_consumer();
  brook_store_t *got = new_store();
  restore_run_t run = restore(c, part, 0, 0, got, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  print_message("restore: marker epoch %llu (e1 %llu, e2 %llu), positions '%s'\n",
                (unsigned long long)run.res.marker_epoch, (unsigned long long)e1,
                (unsigned long long)e2, run.positions);
  assert_int_equal(run.res.marker_epoch, e1);
  assert_string_equal(run.positions, "p1");
  assert_value(got, "k", "a");
  assert_int_equal(bk_changelog_writer_stats(w)->markers, 2); /* never E2's */
  brook_store_free(got);
  bk_changelog_writer_free(w);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

/* Restores the stores of one task as the runtime does (changelog_restore.h): every partition
 * to its end, then each finished with the commit of the store that has the highest one. */
static void restore_task(rd_kafka_t *c, const int32_t *parts, brook_store_t **stores, size_t n,
                         uint64_t upto, bk_changelog_restore_result_t *res, char *positions,
                         size_t positions_cap) {
  bk_changelog_restore_t *r[4];
  assert_true(n <= 4);
  bk_errmsg_t why;
  for (size_t i = 0; i < n; i++) {
    bk_changelog_restore_opts_t o = {.consumer = c,
                                     .topic = TOPIC,
                                     .partition = parts[i],
                                     .start_offset = 0,
                                     .upto_epoch = upto,
                                     .apply = apply_store,
                                     .apply_opaque = stores[i]};
    assert_int_equal(bk_changelog_restore_new(&o, &r[i], &why), BROOK_OK);
  }
  size_t left = n, top = 0;
  int done[4] = {0};
  uint64_t t0 = wait_now_ms();
  while (left && wait_now_ms() - t0 < 2 * KH_TIMEOUT_MS)
    for (size_t i = 0; i < n; i++)
      if (!done[i]) {
        assert_int_equal(bk_changelog_restore_step(r[i], 1000, 50, 10, &done[i], &why), BROOK_OK);
        left -= (size_t)done[i];
      }
  assert_int_equal(left, 0);
  for (size_t i = 1; i < n; i++)
    if (bk_changelog_restore_result(r[i])->committed_epoch >
        bk_changelog_restore_result(r[top])->committed_epoch)
      top = i;
  const bk_changelog_restore_result_t *t = bk_changelog_restore_result(r[top]);
  snprintf(positions, positions_cap, "%.*s", (int)t->positions_len, (const char *)t->positions);
  uint64_t epoch = t->committed_epoch, prev = t->marker_prev;
  for (size_t i = 0; i < n; i++) {
    if (bk_changelog_restore_finish(r[i], epoch, prev, &why) != BROOK_OK)
      fail_msg("finish: %s", why.text);
    res[i] = *bk_changelog_restore_result(r[i]);
    res[i].positions = NULL;
    bk_changelog_restore_free(r[i]);
  }
}

/* Review: one task, two stores C and W (two changelog partitions), killed between the two
 * markers of one commit: both stores must restore to the same commit. */
static void test_two_stores_one_commit(void **state) {
  (void)state;
  const int32_t parts[2] = {9, 10};
  /* The task's markers wait until every record of the commit, in both stores, is acked. */
  rd_kafka_t *hp = held_producer();
  bk_changelog_task_t *t = NULL;
  bk_errmsg_t why;
  bk_changelog_task_opts_t to = {.first_epoch = bk_cl_first_epoch(0)};
  assert_int_equal(bk_changelog_task_new(&to, &t, &why), BROOK_OK);
  bk_changelog_writer_t *w[2];
  for (int i = 0; i < 2; i++) {
    bk_changelog_writer_opts_t o = {
        .producer = hp, .topic = TOPIC, .partition = parts[i], .task = t};
    assert_int_equal(bk_changelog_writer_new(&o, &w[i], &why), BROOK_OK);
  }
  uint64_t e0 = 0, e1 = 0;
  assert_int_equal(bk_changelog_task_commit(t, "p0", 2, &e0), BROOK_OK);
  serve_until_idle(hp, w[0]);
  assert_int_equal(bk_changelog_task_acked(t), e0);
  put(w[0], hp, "k", "1");
  put(w[1], hp, "k", "1");
  assert_int_equal(bk_changelog_task_commit(t, "p1", 2, &e1), BROOK_OK);
  held_t h = {0};
  hold_reports(hp, &h, 2); /* both records written, the writer does not know yet */
  for (int i = 0; i < 2; i++)
    assert_int_equal(bk_changelog_writer_stats(w[i])->markers, 1); /* e0's only */
  assert_int_equal(bk_changelog_task_in_flight(t), 4); /* 2 records, 2 markers to come */
  release_reports(&h);
  for (int i = 0; i < 2; i++)
    assert_int_equal(bk_changelog_writer_stats(w[i])->markers, 2);
  serve_until_idle(hp, w[0]);
  assert_int_equal(bk_changelog_task_acked(t), e1);
  /* A store cannot join once the task committed. */
  bk_changelog_writer_t *late = NULL;
  bk_changelog_writer_opts_t lo = {.producer = hp, .topic = TOPIC, .partition = 11, .task = t};
  assert_int_equal(bk_changelog_writer_new(&lo, &late, &why), BROOK_ERR_STATE);
  bk_changelog_task_free(t);
  rd_kafka_destroy(hp);

  /* Killed between the markers of commit 2: both stores' records of it are acknowledged (the
   * writer's rule), C's marker is written, W's never. Two tasks of one store each with the
   * same epochs write exactly that log. */
  rd_kafka_t *p = changelog_producer();
  bk_changelog_writer_t *wc = writer(p, parts[0], bk_cl_first_epoch(e1), e1);
  bk_changelog_writer_t *ww = writer(p, parts[1], bk_cl_first_epoch(e1), e1);
  put(wc, p, "k", "2");
  put(ww, p, "k", "2");
  put(ww, p, "only-w", "2");
  drain(p, ww); /* W's records of commit 2 acknowledged */
  uint64_t e2 = commit(wc, "p2");
  drain(p, wc);
  assert_int_equal(bk_changelog_epoch(ww), e2); /* the same epoch, W's marker never written */
  bk_changelog_writer_free(wc);
  bk_changelog_writer_free(ww);

  rd_kafka_t *c = restore_consumer();
  brook_store_t *st[2] = {new_store(), new_store()};
  bk_changelog_restore_result_t res[2];
  char positions[32];
  restore_task(c, parts, st, 2, 0, res, positions, sizeof(positions));
  print_message("C: own marker %llu, W: own marker %llu; both at %llu/%llu, positions '%s'\n",
                (unsigned long long)res[0].marker_epoch, (unsigned long long)res[1].marker_epoch,
                (unsigned long long)res[0].committed_epoch,
                (unsigned long long)res[1].committed_epoch, positions);
  assert_int_equal(res[0].marker_epoch, e2);
  assert_true(res[1].marker_epoch < e2); /* W rolled forward to the task's commit */
  assert_int_equal(res[0].committed_epoch, e2);
  assert_int_equal(res[1].committed_epoch, e2);
  assert_string_equal(positions, "p2");
  assert_value(st[0], "k", "2");
  assert_value(st[1], "k", "2");
  assert_value(st[1], "only-w", "2");
  assert_int_equal(res[1].tail_keys, 0);
  assert_int_equal(res[0].next_epoch, res[1].next_epoch);
  brook_store_free(st[0]);
  brook_store_free(st[1]);

  /* Stopped at commit 1 instead (upto_epoch): both stores at it, commit 2 is the tail. */
  brook_store_t *old[2] = {new_store(), new_store()};
  restore_task(c, parts, old, 2, e1, res, positions, sizeof(positions));
  assert_string_equal(positions, "p1");
  for (int i = 0; i < 2; i++) {
    assert_int_equal(res[i].committed_epoch, e1);
    assert_value(old[i], "k", "1");
    assert_true(res[i].next_epoch > e2);
  }
  assert_value(old[1], "only-w", NULL);
  assert_int_equal(res[0].markers_beyond, 2); /* the two after it: the emulation's start, e2 */
  assert_int_equal(res[0].tail_keys, 1);
  assert_int_equal(res[1].tail_keys, 2);
  brook_store_free(old[0]);
  brook_store_free(old[1]);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

/* A new owner writes its marker right after its compensation, before any input: a put before
 * the task's first commit is acknowledged is refused; compensation is not. */
static void test_first_commit_before_any_put(void **state) {
  (void)state;
  rd_kafka_t *p = changelog_producer();
  bk_changelog_writer_t *w = writer_unstarted(p, 11, bk_cl_first_epoch(0), 0);
  assert_int_equal(bk_changelog_put(w, "k", 1, "v", 1), BROOK_ERR_STATE);
  const char *k = "c";
  assert_int_equal(bk_changelog_compensate(w, 1, one_key, &k, missing, NULL), BROOK_OK);
  uint64_t e = commit(w, "restored");
  assert_int_equal(bk_changelog_put(w, "k", 1, "v", 1), BROOK_ERR_STATE); /* not acked yet */
  drain(p, w);
  assert_int_equal(bk_changelog_acked(w), e);
  put(w, p, "k", "v");
  drain(p, w);
  bk_changelog_writer_free(w);
  rd_kafka_t *c = restore_consumer();
  brook_store_t *s = new_store();
  restore_run_t run = restore(c, 11, 0, 0, s, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  assert_string_equal(run.positions, "restored");
  assert_int_equal(run.res.records_applied, 1); /* the compensation's tombstone */
  assert_int_equal(run.res.tail_keys, 1);       /* k, after it */
  brook_store_free(s);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

/* A marker that finds the producer's queue full waits and is produced by the task's next
 * report, put or commit, or bk_changelog_task_pump; in_flight counts it meanwhile. */
static void test_marker_waits_for_room_in_the_queue(void **state) {
  (void)state;
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, broker.bootstrap,
                            (const char *const[]){"linger.ms", "0", "enable.idempotence", "true",
                                                  "queue.buffering.max.messages", "1", NULL},
                            bk_changelog_dr_msg_cb, NULL);
  bk_changelog_writer_t *w = writer(p, 12, bk_cl_first_epoch(0), 0);
  bk_changelog_task_t *t = bk_changelog_writer_task(w);
  put(w, p, "k", "v");
  uint64_t e = commit(w, "p1");
  int deferred = 0;
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_task_acked(t) < e && wait_now_ms() - t0 < KH_TIMEOUT_MS) {
    rd_kafka_poll(p, 10);
    if (bk_changelog_task_in_flight(t) == 1 && bk_changelog_writer_stats(w)->markers == 1)
      deferred++; /* the record is reported, its marker found no room from inside the report */
    brook_err_t err = bk_changelog_task_pump(t);
    assert_true(err == BROOK_OK || err == BROOK_ERR_FULL);
  }
  print_message("the marker waited for room %d time(s)\n", deferred);
  assert_true(deferred > 0);
  assert_int_equal(bk_changelog_task_acked(t), e);
  bk_changelog_writer_free(w);
  rd_kafka_t *c = restore_consumer();
  brook_store_t *s = new_store();
  restore_run_t run = restore(c, 12, 0, 0, s, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  assert_string_equal(run.positions, "p1");
  assert_value(s, "k", "v");
  brook_store_free(s);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
}

/* Every allocation of a task and its writers (task, writers' list, per-epoch slots, a closed
 * epoch, an escaped key, a marker) failing in turn: an error (returned, or the task's failure
 * when a marker is produced from a report), and nothing leaks. */
static brook_err_t task_error(bk_changelog_task_t *t) {
  const char *e = bk_changelog_task_error(t);
  return !e[0] ? BROOK_OK : strstr(e, "out of memory") ? BROOK_ERR_NOMEM : BROOK_ERR_KAFKA;
}

static brook_err_t commit_and_wait(rd_kafka_t *p, bk_changelog_task_t *t, const char *pos) {
  uint64_t e = 0;
  brook_err_t err = bk_changelog_task_commit(t, pos, strlen(pos), &e);
  if (err)
    return err;
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_task_acked(t) < e && !task_error(t) && wait_now_ms() - t0 < KH_TIMEOUT_MS)
    rd_kafka_poll(p, 10);
  if ((err = task_error(t)))
    return err;
  assert_int_equal(bk_changelog_task_acked(t), e);
  return BROOK_OK;
}

static brook_err_t alloc_scenario(rd_kafka_t *p, const brook_allocator_t *a,
                                  bk_changelog_task_t **out) {
  bk_errmsg_t why;
  bk_changelog_task_opts_t to = {.first_epoch = bk_cl_first_epoch(0), .alloc = a};
  brook_err_t err = bk_changelog_task_new(&to, out, &why);
  if (err)
    return err;
  bk_changelog_writer_t *w[2];
  for (int i = 0; i < 2; i++) {
    bk_changelog_writer_opts_t o = {
        .producer = p, .topic = TOPIC, .partition = 13 + i, .task = *out};
    if ((err = bk_changelog_writer_new(&o, &w[i], &why)))
      return err;
  }
  for (int i = 0; i < 2; i++) {
    const char *key = i ? "plain" : "x";
    if ((err = bk_changelog_compensate(w[i], 1, one_key, &key, missing, NULL)))
      return err;
  }
  if ((err = commit_and_wait(p, *out, "p0")))
    return err;
  unsigned char esc[10]; /* an escaped key: the writer's key buffer */
  memcpy(esc, bk_cl_prefix, BK_CL_PREFIX_LEN);
  memcpy(esc + BK_CL_PREFIX_LEN, "abc", 3);
  if ((err = bk_changelog_put(w[0], esc, BK_CL_PREFIX_LEN + 3, "v", 1)))
    return err;
  return commit_and_wait(p, *out, "p1");
}

static void test_task_allocation_failures(void **state) {
  (void)state;
  rd_kafka_t *p = changelog_producer();
  for (long k = 1;; k++) {
    fail_alloc_t fa = {.fail_at = k, .persistent = 1};
    brook_allocator_t a = fa_allocator(&fa);
    bk_changelog_task_t *t = NULL;
    brook_err_t err = alloc_scenario(p, &a, &t);
    if (t) {
      uint64_t t0 = wait_now_ms();
      while (bk_changelog_task_in_flight(t) && wait_now_ms() - t0 < KH_TIMEOUT_MS &&
             bk_changelog_task_pump(t) != BROOK_ERR_NOMEM && !task_error(t))
        rd_kafka_poll(p, 10);
      bk_changelog_task_free(t);
      t0 = wait_now_ms();
      while (fa.live && wait_now_ms() - t0 < KH_TIMEOUT_MS)
        rd_kafka_poll(p, 10); /* the reports of a freed task free it */
    }
    assert_int_equal(fa.live, 0);
    if (!fa.injected) {
      assert_int_equal(err, BROOK_OK);
      print_message("%ld allocations, each failing in turn\n", k - 1);
      break;
    }
    if (err != BROOK_ERR_NOMEM)
      fail_msg("allocation %ld failing: %s", k, brook_strerror(err));
  }
  rd_kafka_destroy(p);
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
      cmocka_unit_test(test_marker_over_a_lost_record),
      cmocka_unit_test(test_two_stores_one_commit),
      cmocka_unit_test(test_first_commit_before_any_put),
      cmocka_unit_test(test_marker_waits_for_room_in_the_queue),
      cmocka_unit_test(test_task_allocation_failures),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, setup, teardown);
}
