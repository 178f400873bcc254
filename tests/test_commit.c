/* The commit coordinator (runtime/commit.c) without Kafka: a commit runs every
 * commit_interval_ms, flushing every operator exactly once and then its stores (in-place
 * changes reported once per commit, not per batch); a commit with nothing new since the last
 * one is skipped; the end of the run commits once more; the option is validated and has a
 * documented default. Counted with a custom operator (support/flush_counter.h) and
 * brook_runtime_stats().commits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/collect.h"
#include "support/flush_counter.h"
#include "support/wait.h"

typedef struct rig {
  uv_loop_t loop;
  brook_topology_t *t;
  brook_runtime_t *rt;
  brook_push_source_t *push;
  flush_counter_t fc;
  long sunk;
} rig_t;

static brook_err_t count_sunk(const brook_record_t *rec, void *opaque) {
  (void)rec;
  ((rig_t *)opaque)->sunk++;
  return BROOK_OK;
}

static void rig_start(rig_t *r, int64_t interval_ms) {
  memset(r, 0, sizeof(*r));
  flush_counter_init(&r->fc);
  assert_int_equal(uv_loop_init(&r->loop), 0);
  r->t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = brook_apply(brook_source_push(r->t, "P", NULL), &flush_counter_op, &r->fc);
  assert_int_equal(brook_sink_callback(s, count_sunk, NULL, r), BROOK_OK);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.commit_interval_ms = interval_ms;
  assert_int_equal(brook_runtime_new(&r->rt, r->t, &o), BROOK_OK);
  assert_int_equal(brook_runtime_start(r->rt, &r->loop), BROOK_OK);
  r->push = brook_runtime_push_source(r->rt, "P");
  assert_non_null(r->push);
}

static uint64_t commits(rig_t *r) {
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r->rt, &st), BROOK_OK);
  return st.commits;
}

typedef struct want {
  rig_t *r;
  long sunk;
  uint64_t commits;
} want_t;

static int reached(void *arg) {
  want_t *w = arg;
  return w->r->sunk >= w->sunk && commits(w->r) >= w->commits;
}

static void push_n(rig_t *r, int n) {
  for (int i = 0; i < n; i++) {
    brook_record_t rec = {.value = "x", .value_len = 1};
    assert_int_equal(brook_push(r->push, &rec), BROOK_OK);
  }
}

static void rig_finish(rig_t *r) {
  assert_int_equal(brook_push_end(r->push), BROOK_OK);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_true(brook_runtime_done(r->rt));
  assert_int_equal(brook_runtime_status(r->rt), BROOK_OK);
}

static void rig_free(rig_t *r) {
  brook_runtime_free(r->rt);
  assert_int_equal(uv_loop_close(&r->loop), 0);
  brook_topology_free(r->t);
  flush_counter_destroy(&r->fc);
}

/* Bursts of records, each followed by a commit: every commit flushes the operator once, and
 * its store reports the key it updated once per commit that followed updates (not once per
 * batch: a burst runs in several batches). The end commits once more. */
static void test_flush_once_per_commit(void **state) {
  (void)state;
  rig_t r;
  rig_start(&r, 20);
  long pushed = 0;
  for (int burst = 0; burst < 6; burst++) {
    uint64_t before = commits(&r);
    push_n(&r, 3000); /* several batches (batch_size 1024) */
    pushed += 3000;
    want_t w = {&r, pushed, before + 1};
    assert_true(wait_loop_until(&r.loop, reached, &w, 10000));
  }
  rig_finish(&r);
  uint64_t n = commits(&r);
  assert_true(n >= 7); /* six bursts, then the end */
  assert_int_equal(r.sunk, pushed);
  assert_int_equal(r.fc.records, pushed);
  assert_int_equal(r.fc.n_closed, 1);
  assert_int_equal(r.fc.flushes, (long)n); /* exactly once per commit */
  assert_true(r.fc.dirty_flushes >= 6);
  assert_int_equal(r.fc.listener_calls, r.fc.dirty_flushes); /* stores: once per commit */
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  assert_true(st.batches > (uint64_t)r.fc.listener_calls); /* not flushed per batch */
  rig_free(&r);
}

typedef struct ticks {
  uv_timer_t timer;
  int fired;
} ticks_t;

static void on_tick(uv_timer_t *h) { ((ticks_t *)h->data)->fired = 1; }

static int tick_fired(void *arg) { return ((ticks_t *)arg)->fired; }

/* Runs the loop for `ms` (asserting that nothing happens needs time to pass). */
static void pass_ms(uv_loop_t *loop, uint64_t ms) {
  ticks_t t = {0};
  uv_timer_init(loop, &t.timer);
  t.timer.data = &t;
  uv_timer_start(&t.timer, on_tick, ms, 0);
  assert_true(wait_loop_until(loop, tick_fired, &t, 10000));
  uv_close((uv_handle_t *)&t.timer, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* the close callback */
}

/* Nothing ran since the last commit: the interval passes without a commit (no flush). */
static void test_idle_commits_are_skipped(void **state) {
  (void)state;
  rig_t r;
  rig_start(&r, 10);
  push_n(&r, 10);
  want_t w = {&r, 10, 1};
  assert_true(wait_loop_until(&r.loop, reached, &w, 10000));
  pass_ms(&r.loop, 50); /* the commit of the last records, if they came after the first */
  uint64_t after_work = commits(&r);
  long flushes = r.fc.flushes;
  assert_int_equal(flushes, (long)after_work);
  pass_ms(&r.loop, 100); /* ten intervals */
  assert_int_equal(commits(&r), after_work);
  assert_int_equal(r.fc.flushes, flushes);
  rig_finish(&r);
  assert_int_equal(commits(&r), after_work + 1); /* the end's commit */
  assert_int_equal(r.fc.flushes, (long)after_work + 1);
  rig_free(&r);
}

static void test_option(void **state) {
  (void)state;
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  assert_int_equal(o.commit_interval_ms, 1000); /* the documented default */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  assert_int_equal(brook_sink_callback(brook_source_push(t, "P", NULL), count_sunk, NULL, NULL),
                   BROOK_OK);
  brook_runtime_t *rt = NULL;
  o.commit_interval_ms = -5;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  assert_non_null(strstr(brook_topology_last_error(t), "commit_interval_ms"));
  o.commit_interval_ms = 0; /* the default */
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flush_once_per_commit),
      cmocka_unit_test(test_idle_commits_are_skipped),
      cmocka_unit_test(test_option),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
