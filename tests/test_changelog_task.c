/* A task's changelogs (src/kafka/changelog_writer.c: bk_changelog_task_t, and the task's
 * restore in changelog_restore.c) against the embedded broker, the review's cases: a commit's
 * markers wait for every record of the commit, in every store, to be acknowledged (a refused
 * record never gets a marker over it); a task of two stores killed between its markers
 * restores both stores to one commit in one pass, or stops at an older one (upto_epoch);
 * puts wait for the first commit after compensation; a marker that finds the producer's queue
 * full waits for room; every allocation failing in turn. */
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
#include "support/fail_alloc.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

#define TOPIC CL_TOPIC

/* Review: a record of epoch E is refused (its own Produce request) and its report is not served
 * yet when E is committed. Its marker must not be written over the lost record: the restore
 * must stay at the commit before. */
static void test_marker_over_a_lost_record(void **state) {
  (void)state;
  const int32_t part = 8;
  rd_kafka_t *p = cl_held_producer();
  bk_changelog_writer_t *w = cl_writer_unstarted(p, part, bk_cl_first_epoch(0), 0);
  cl_commit(w, "p0");
  cl_serve_until_idle(p, w);
  cl_put(w, p, "k", "a");
  uint64_t e1 = cl_commit(w, "p1");
  cl_serve_until_idle(p, w);
  assert_int_equal(bk_changelog_acked(w), e1);
  assert_int_equal(broker_cmd(&cl_broker, "error 0 87 1"), 0);
  cl_put(w, p, "k", "b");
  cl_held_t h = {0};
  cl_hold_reports(p, &h, 1); /* refused; the writer does not know yet */
  uint64_t e2 = cl_commit(w, "p2");
  assert_int_equal(bk_changelog_writer_stats(w)->markers, 2); /* E2's waits for the report */
  cl_release_reports(&h);
  cl_serve_until_idle(p, w);
  assert_int_equal(broker_cmd(&cl_broker, "clear 0"), 0);
  print_message("writer: '%s', acked %llu, e2 %llu\n", bk_changelog_writer_error(w),
                (unsigned long long)bk_changelog_acked(w), (unsigned long long)e2);
  assert_non_null(strstr(bk_changelog_writer_error(w), "was not written"));
  assert_true(bk_changelog_acked(w) < e2);
  rd_kafka_t *c = cl_restore_consumer();
  brook_store_t *got = cl_new_store();
  cl_restore_run_t run = cl_restore(c, part, 0, 0, got, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  print_message("restore: marker epoch %llu (e1 %llu, e2 %llu), positions '%s'\n",
                (unsigned long long)run.res.marker_epoch, (unsigned long long)e1,
                (unsigned long long)e2, run.positions);
  assert_int_equal(run.res.marker_epoch, e1);
  assert_string_equal(run.positions, "p1");
  cl_assert_value(got, "k", "a");
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
                                     .apply = cl_apply_store,
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
  rd_kafka_t *hp = cl_held_producer();
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
  cl_serve_until_idle(hp, w[0]);
  assert_int_equal(bk_changelog_task_acked(t), e0);
  cl_put(w[0], hp, "k", "1");
  cl_put(w[1], hp, "k", "1");
  assert_int_equal(bk_changelog_task_commit(t, "p1", 2, &e1), BROOK_OK);
  cl_held_t h = {0};
  cl_hold_reports(hp, &h, 2); /* both records written, the writer does not know yet */
  for (int i = 0; i < 2; i++)
    assert_int_equal(bk_changelog_writer_stats(w[i])->markers, 1); /* e0's only */
  assert_int_equal(bk_changelog_task_in_flight(t), 4); /* 2 records, 2 markers to come */
  cl_release_reports(&h);
  for (int i = 0; i < 2; i++)
    assert_int_equal(bk_changelog_writer_stats(w[i])->markers, 2);
  cl_serve_until_idle(hp, w[0]);
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
  rd_kafka_t *p = cl_changelog_producer();
  bk_changelog_writer_t *wc = cl_writer(p, parts[0], bk_cl_first_epoch(e1), e1);
  bk_changelog_writer_t *ww = cl_writer(p, parts[1], bk_cl_first_epoch(e1), e1);
  cl_put(wc, p, "k", "2");
  cl_put(ww, p, "k", "2");
  cl_put(ww, p, "only-w", "2");
  cl_drain(p, ww); /* W's records of commit 2 acknowledged */
  uint64_t e2 = cl_commit(wc, "p2");
  cl_drain(p, wc);
  assert_int_equal(bk_changelog_epoch(ww), e2); /* the same epoch, W's marker never written */
  bk_changelog_writer_free(wc);
  bk_changelog_writer_free(ww);

  rd_kafka_t *c = cl_restore_consumer();
  brook_store_t *st[2] = {cl_new_store(), cl_new_store()};
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
  cl_assert_value(st[0], "k", "2");
  cl_assert_value(st[1], "k", "2");
  cl_assert_value(st[1], "only-w", "2");
  assert_int_equal(res[1].tail_keys, 0);
  assert_int_equal(res[0].next_epoch, res[1].next_epoch);
  brook_store_free(st[0]);
  brook_store_free(st[1]);

  /* Stopped at commit 1 instead (upto_epoch): both stores at it, commit 2 is the tail. */
  brook_store_t *old[2] = {cl_new_store(), cl_new_store()};
  restore_task(c, parts, old, 2, e1, res, positions, sizeof(positions));
  assert_string_equal(positions, "p1");
  for (int i = 0; i < 2; i++) {
    assert_int_equal(res[i].committed_epoch, e1);
    cl_assert_value(old[i], "k", "1");
    assert_true(res[i].next_epoch > e2);
  }
  cl_assert_value(old[1], "only-w", NULL);
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
  rd_kafka_t *p = cl_changelog_producer();
  bk_changelog_writer_t *w = cl_writer_unstarted(p, 11, bk_cl_first_epoch(0), 0);
  assert_int_equal(bk_changelog_put(w, "k", 1, "v", 1), BROOK_ERR_STATE);
  const char *k = "c";
  assert_int_equal(bk_changelog_compensate(w, 1, cl_one_key, &k, cl_missing, NULL), BROOK_OK);
  uint64_t e = cl_commit(w, "restored");
  assert_int_equal(bk_changelog_put(w, "k", 1, "v", 1), BROOK_ERR_STATE); /* not acked yet */
  cl_drain(p, w);
  assert_int_equal(bk_changelog_acked(w), e);
  cl_put(w, p, "k", "v");
  cl_drain(p, w);
  bk_changelog_writer_free(w);
  rd_kafka_t *c = cl_restore_consumer();
  brook_store_t *s = cl_new_store();
  cl_restore_run_t run = cl_restore(c, 11, 0, 0, s, 1000, NULL);
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
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, cl_broker.bootstrap,
                            (const char *const[]){"linger.ms", "0", "enable.idempotence", "true",
                                                  "queue.buffering.max.messages", "1", NULL},
                            bk_changelog_dr_msg_cb, NULL);
  bk_changelog_writer_t *w = cl_writer(p, 12, bk_cl_first_epoch(0), 0);
  bk_changelog_task_t *t = bk_changelog_writer_task(w);
  cl_put(w, p, "k", "v");
  uint64_t e = cl_commit(w, "p1");
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
  rd_kafka_t *c = cl_restore_consumer();
  brook_store_t *s = cl_new_store();
  cl_restore_run_t run = cl_restore(c, 12, 0, 0, s, 1000, NULL);
  assert_int_equal(run.err, BROOK_OK);
  assert_string_equal(run.positions, "p1");
  cl_assert_value(s, "k", "v");
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
    if ((err = bk_changelog_compensate(w[i], 1, cl_one_key, &key, cl_missing, NULL)))
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
  rd_kafka_t *p = cl_changelog_producer();
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
      cmocka_unit_test(test_marker_over_a_lost_record),
      cmocka_unit_test(test_two_stores_one_commit),
      cmocka_unit_test(test_first_commit_before_any_put),
      cmocka_unit_test(test_marker_waits_for_room_in_the_queue),
      cmocka_unit_test(test_task_allocation_failures),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, cl_setup, cl_teardown);
}
