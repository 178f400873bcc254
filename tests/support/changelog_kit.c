/* See changelog_kit.h. */
#include "changelog_kit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/changelog_format.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

broker_proc_t cl_broker;

int cl_setup(void **state) {
  (void)state;
  const char *const topics[] = {CL_TOPIC ":16", NULL};
  return broker_start(&cl_broker, 1, topics, NULL);
}

int cl_teardown(void **state) {
  (void)state;
  return broker_stop(&cl_broker) == 0 ? 0 : -1;
}

rd_kafka_t *cl_changelog_producer(void) {
  return kh_client(RD_KAFKA_PRODUCER, cl_broker.bootstrap,
                   (const char *const[]){"linger.ms", "5", "enable.idempotence", "true", NULL},
                   bk_changelog_dr_msg_cb, NULL);
}

/* A writer that has not made its first commit yet (compensation goes there). */
bk_changelog_writer_t *cl_writer_unstarted(rd_kafka_t *p, int32_t part, uint64_t first,
                                           uint64_t committed) {
  bk_changelog_writer_opts_t o = {.producer = p,
                                  .topic = CL_TOPIC,
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
uint64_t cl_start(bk_changelog_writer_t *w, rd_kafka_t *p, const char *positions) {
  uint64_t e = 0;
  assert_int_equal(bk_changelog_commit(w, positions, strlen(positions), &e), BROOK_OK);
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_acked(w) < e && wait_now_ms() - t0 < KH_TIMEOUT_MS)
    rd_kafka_poll(p, 10);
  assert_int_equal(bk_changelog_acked(w), e);
  return e;
}

/* A started writer: nothing to compensate. */
bk_changelog_writer_t *cl_writer(rd_kafka_t *p, int32_t part, uint64_t first, uint64_t committed) {
  bk_changelog_writer_t *w = cl_writer_unstarted(p, part, first, committed);
  cl_start(w, p, "start");
  return w;
}

void cl_put(bk_changelog_writer_t *w, rd_kafka_t *p, const char *k, const char *v) {
  brook_err_t err;
  while ((err = bk_changelog_put(w, k, strlen(k), v, v ? strlen(v) : 0)) == BROOK_ERR_FULL)
    rd_kafka_poll(p, 10);
  assert_int_equal(err, BROOK_OK);
}

uint64_t cl_commit(bk_changelog_writer_t *w, const char *positions) {
  uint64_t e = 0;
  assert_int_equal(bk_changelog_commit(w, positions, strlen(positions), &e), BROOK_OK);
  return e;
}

/* Serves the producer until everything the writer sent is acknowledged. */
void cl_drain(rd_kafka_t *p, bk_changelog_writer_t *w) {
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_in_flight(w) && wait_now_ms() - t0 < KH_TIMEOUT_MS)
    rd_kafka_poll(p, 10);
  assert_int_equal(bk_changelog_in_flight(w), 0);
  assert_string_equal(bk_changelog_writer_error(w), "");
}

/* ---- restoring into a brook store ---- */

brook_err_t cl_apply_store(const void *key, size_t klen, const void *value, size_t vlen,
                           void *opaque) {
  brook_store_t *s = opaque;
  if (!value) {
    brook_err_t err = brook_store_delete(s, key, klen);
    return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
  }
  return brook_store_put(s, key, klen, value, vlen);
}

brook_err_t cl_lookup_store(const void *key, size_t klen, const void **value, size_t *vlen,
                            void *opaque) {
  return brook_store_get(opaque, key, klen, value, vlen);
}

void cl_one_key(size_t i, const void **key, size_t *klen, void *opaque) {
  (void)i;
  *key = *(const char **)opaque;
  *klen = strlen(*key);
}

brook_err_t cl_missing(const void *key, size_t klen, const void **value, size_t *vlen,
                       void *opaque) {
  (void)key, (void)klen, (void)value, (void)vlen, (void)opaque;
  return BROOK_ERR_NOT_FOUND;
}

void cl_tail_key(size_t i, const void **key, size_t *klen, void *opaque) {
  bk_changelog_restore_tail_key(opaque, i, key, klen);
}

brook_store_t *cl_new_store(void) {
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  return s;
}

/* Runs the restore of `o` to its end in steps of `step` records. Leaves the restore open in
 * *keep (for its tail keys) when keep is not NULL and it started. */
cl_restore_run_t cl_restore_with(const bk_changelog_restore_opts_t *o, size_t step,
                                 bk_changelog_restore_t **keep) {
  cl_restore_run_t run;
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

/* Restores partition `part` of CL_TOPIC from `start` into `s`. */
cl_restore_run_t cl_restore(rd_kafka_t *c, int32_t part, int64_t start, uint64_t known,
                            brook_store_t *s, size_t step, bk_changelog_restore_t **keep) {
  bk_changelog_restore_opts_t o = {.consumer = c,
                                   .topic = CL_TOPIC,
                                   .partition = part,
                                   .start_offset = start,
                                   .known_epoch = known,
                                   .apply = cl_apply_store,
                                   .apply_opaque = s};
  return cl_restore_with(&o, step, keep);
}

rd_kafka_t *cl_restore_consumer(void) {
  rd_kafka_t *c = NULL;
  bk_errmsg_t why;
  if (bk_changelog_restore_consumer(cl_broker.bootstrap,
                                    (const char *const[]){"log_level", "0", NULL}, &c, &why))
    fail_msg("restore consumer: %s", why.text);
  return c;
}

void cl_assert_value(brook_store_t *s, const char *k, const char *want) {
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

/* ---- delivery reports the test holds back ---- */

/* A changelog producer whose delivery reports arrive as events the test serves itself, so it
 * can hold some back: what the writer does before it knows a record's fate. */
rd_kafka_t *cl_held_producer(void) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[256];
  const char *const kv[] = {"bootstrap.servers",
                            cl_broker.bootstrap,
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

/* Waits (deadline) until at least `n` more delivery reports arrived, and keeps them. */
void cl_hold_reports(rd_kafka_t *p, cl_held_t *h, size_t n) {
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
void cl_release_reports(cl_held_t *h) {
  for (size_t i = 0; i < h->n_ev; i++) {
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(h->ev[i])))
      assert_int_equal(bk_changelog_delivery(m), 1);
    rd_kafka_event_destroy(h->ev[i]);
  }
  h->n_ev = h->n_msgs = 0;
}

/* Serves the held producer's reports as they come until `w` has nothing in flight. */
void cl_serve_until_idle(rd_kafka_t *p, bk_changelog_writer_t *w) {
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_in_flight(w) && wait_now_ms() - t0 < KH_TIMEOUT_MS) {
    cl_held_t h = {0};
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(p);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10);
    rd_kafka_queue_destroy(q);
    if (!ev)
      continue;
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
      h.ev[h.n_ev++] = ev;
      cl_release_reports(&h);
    } else {
      rd_kafka_event_destroy(ev);
    }
  }
  assert_int_equal(bk_changelog_in_flight(w), 0);
}
