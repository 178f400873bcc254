/* The commit coordinator. A commit runs every commit_interval_ms (runtime options), when a
 * stop asks for one and at the end of the run, in this order:
 *   1. every open operator instance's flush() (what it emits is delivered downstream);
 *   2. every store's pending in-place changes to its listener (brook_store_flush_changes);
 *   3. with state on disk (runtime option state_dir), every task's database collects its
 *      stores' changes and the input positions they cover (task_state.c): the state is then
 *      exactly the input processed so far;
 *   3b. with changelogs (runtime option changelogs), every running task writes its stores'
 *      changes since the last commit and its commit marker with those positions
 *      (task_restore.c, runtime/task_log.h), counted as one delivery of the point's epoch
 *      that completes once the changelog acknowledged all of it, marker included;
 *   4. the commit point: the current delivery epoch (delivery.h) - every output derived from
 *      input processed so far, including what the flushes emitted, counts against an epoch
 *      <= point; the epoch moves on, so later output counts against later epochs. The
 *      commit then waits, without blocking the loop, until no delivery of an epoch <= point
 *      is pending (the brokers acknowledged every sink's records up to the commit point);
 *   5. the task databases write what step 3 collected (the positions become the restart
 *      point only now, once the outputs before them are acknowledged), then the sources'
 *      commits (bk_commit_register): each commits the input of its batches of epochs <= point
 *      (the Kafka source: their offsets). A crash between the two leaves the offsets behind
 *      the stored positions: a restart resumes at the positions (positions.h).
 * Steps 1-4 run on a scheduler turn outside any batch, so flush() never sees a batch half
 * done; a commit begins only once the previous one has completed (one at a time), and is
 * skipped while nothing ran since the last one (no batch, no timer) unless a stop asked for
 * it.
 *
 * Revocations (a rebalance takes partitions away; kafka_rebalance.c) do the same for the tasks
 * given up, out of step with the interval, like Kafka Streams' onPartitionsRevoked: the holder
 * suspends the tasks (their operators' and stores' flush, task.c), takes a revocation point
 * (bk_commit_revoke_point: every other operator and store flushes too, as after a key_by they
 * may hold output of the revoked input; the epoch moves on, so what is emitted later is not
 * waited for), is told when every delivery up to it is acknowledged (bk_commit_watch), then commits
 * the tasks' input and closes them. The wait never blocks the loop: other tasks run meanwhile.
 * Each worker commits on its own (its operators, stores, deliveries and sources), on its
 * thread, like Kafka Streams' stream threads; a source registers its commit with the worker
 * running its instance (services.h), so it commits the input that worker processed. */
#include "runtime/commit.h"

#include <assert.h>

#include "core/alloc.h"
#include "runtime/runtime_impl.h"

brook_err_t bk_commit_register(bk_worker_t *w, bk_commit_fn fn, void *opaque) {
  bk_commit_t *c = &w->commit;
  if (bk_grow(&w->rt->alloc, (void **)&c->fns, &c->cap_fns, c->n_fns + 1, sizeof(*c->fns)))
    return BROOK_ERR_NOMEM;
  c->fns[c->n_fns++] = (bk_committer_t){fn, opaque};
  return BROOK_OK;
}

uint64_t bk_rt_batch_epoch(const bk_worker_t *w) { return w->delivery.epoch; }

void bk_commit_request(bk_worker_t *w, int final) {
  w->commit.due = 1;
  w->commit.due_final |= final;
  if (!w->batch_src) /* inside a batch, the scheduler's turn after it begins the commit */
    bk_worker_poke(w);
}

static void on_interval(uv_timer_t *h) {
  bk_worker_t *w = h->data;
  w->commit.due = 1;
  bk_worker_poke(w);
}

void bk_commit_start(bk_worker_t *w) {
  bk_commit_t *c = &w->commit;
  uv_timer_init(w->loop, &c->timer); /* cannot fail (libuv), like the worker's clock */
  c->timer.data = w;
  c->timer_open = 1;
  uint64_t ms = (uint64_t)w->rt->opts.commit_interval_ms;
  uv_timer_start(&c->timer, on_interval, ms, ms);
}

void bk_commit_close(bk_worker_t *w) {
  bk_commit_t *c = &w->commit;
  bk_task_restore_close(w);
  if (!c->timer_open)
    return;
  c->timer_open = 0;
  uv_timer_stop(&c->timer);
  bk_worker_close_handle(w, (uv_handle_t *)&c->timer);
}

void bk_commit_free(bk_worker_t *w) {
  bk_free(&w->rt->alloc, w->commit.fns);
  w->commit.fns = NULL;
  w->commit.n_fns = w->commit.cap_fns = 0;
  bk_free(&w->rt->alloc, w->commit.watchers);
  w->commit.watchers = NULL;
  w->commit.n_watchers = w->commit.cap_watchers = 0;
  bk_tasks_state_free(w);
}

/* ---- revocations ---- */

uint64_t bk_commit_revoke_point(bk_worker_t *w) {
  assert(!w->batch_src); /* outside any batch: every output so far counts against <= point */
  /* The revoked tasks flushed when they suspended; the operators that serve every task (after
   * a key_by) may hold output derived from their input too: everything flushes, as at a
   * commit (Kafka Streams flushes its whole producer on revocation, too). */
  bk_for_each_operator(w, bk_call_flush);
  if (bk_runtime_status(w->rt) == BROOK_OK)
    bk_state_flush_changes(w);
  bk_tasks_log_commit(w, BROOK_TASK_SUSPENDED); /* the revoked tasks' changelogs: a delivery */
  uint64_t point = w->delivery.epoch;
  bk_delivery_next_epoch(&w->delivery);
  return point;
}

int bk_commit_acknowledged(const bk_worker_t *w, uint64_t point) {
  return bk_delivery_oldest_pending(&w->delivery) > point;
}

/* The delivery watch is the smallest point still watched. */
static void rewatch(bk_worker_t *w) {
  bk_commit_t *c = &w->commit;
  uint64_t min = 0;
  for (size_t i = 0; i < c->n_watchers; i++)
    if (!min || c->watchers[i].point < min)
      min = c->watchers[i].point;
  w->delivery.watch = min;
}

/* Inside a delivery's completion (delivery.h): the watchers whose point is passed are told. */
static void on_passed(void *opaque) {
  bk_worker_t *w = opaque;
  bk_commit_t *c = &w->commit;
  uint64_t oldest = bk_delivery_oldest_pending(&w->delivery);
  for (size_t i = 0; i < c->n_watchers;) {
    if (c->watchers[i].point >= oldest) {
      i++;
      continue;
    }
    bk_commit_watcher_t done = c->watchers[i];
    c->watchers[i] = c->watchers[--c->n_watchers];
    done.fn(done.opaque);
  }
  rewatch(w);
}

brook_err_t bk_commit_watch(bk_worker_t *w, uint64_t point, void (*fn)(void *opaque),
                            void *opaque) {
  bk_commit_t *c = &w->commit;
  if (bk_commit_acknowledged(w, point))
    return BROOK_OK; /* nothing to wait for */
  if (bk_grow(&w->rt->alloc, (void **)&c->watchers, &c->cap_watchers, c->n_watchers + 1,
              sizeof(*c->watchers)))
    return BROOK_ERR_NOMEM;
  c->watchers[c->n_watchers++] = (bk_commit_watcher_t){point, fn, opaque};
  w->delivery.on_passed = on_passed;
  w->delivery.on_passed_opaque = w;
  rewatch(w);
  return BROOK_OK;
}

void bk_commit_unwatch(bk_worker_t *w, void *opaque) {
  bk_commit_t *c = &w->commit;
  for (size_t i = 0; i < c->n_watchers;) {
    if (c->watchers[i].opaque == opaque)
      c->watchers[i] = c->watchers[--c->n_watchers];
    else
      i++;
  }
  rewatch(w);
}

void bk_commit_revoked(bk_worker_t *w, uint64_t n, int timed_out) {
  if (timed_out)
    w->stats.revocations_timed_out += n;
  else
    w->stats.revocations += n;
}

/* Steps 1-4: flushes, the task databases' collects, then the commit point. */
static void begin(bk_worker_t *w, int final) {
  bk_commit_t *c = &w->commit;
  c->due = 0;
  if (final)
    c->due_final = 0;
  c->work_seen = w->stats.batches + w->stats.timers_fired;
  bk_for_each_operator(w, bk_call_flush);
  if (bk_runtime_status(w->rt) == BROOK_OK)
    bk_state_flush_changes(w);
  if (bk_runtime_status(w->rt) == BROOK_OK)
    bk_tasks_state_prepare(w);
  bk_tasks_log_commit(w, BROOK_TASK_RUNNING); /* changelogs: a delivery of this point */
  if (bk_runtime_status(w->rt) != BROOK_OK)
    return;
  c->point = w->delivery.epoch;
  c->point_final = final;
  bk_delivery_next_epoch(&w->delivery);
}

/* Step 5, once every delivery up to the point is acknowledged. */
static int complete(bk_worker_t *w) {
  bk_commit_t *c = &w->commit;
  if (!c->point || bk_delivery_oldest_pending(&w->delivery) <= c->point)
    return 0;
  uint64_t point = c->point;
  int final = c->point_final;
  c->point = 0;
  w->stats.commits++;
  if (bk_tasks_state_write(w) > 0)
    w->stats.state_commits++;
  for (size_t i = 0; i < c->n_fns && bk_runtime_status(w->rt) == BROOK_OK; i++)
    c->fns[i].fn(c->fns[i].opaque, point, final);
  return 1;
}

void bk_commit_poll(bk_worker_t *w) {
  bk_commit_t *c = &w->commit;
  if (bk_runtime_status(w->rt) != BROOK_OK)
    return;
  complete(w);
  if (c->point || !c->due)
    return;
  /* After the end's final commit began, only that one (queued behind another) may start. */
  if (w->state != BK_RT_RUNNING && w->state != BK_RT_DRAINING &&
      !(w->state == BK_RT_FLUSHING && c->due_final))
    return;
  if (!c->due_final && w->stats.batches + w->stats.timers_fired == c->work_seen) {
    c->due = 0; /* nothing ran since the last commit: nothing to flush or commit */
    return;
  }
  begin(w, c->due_final);
  complete(w); /* nothing was pending: done at once */
}

void bk_commit_final(bk_worker_t *w) {
  bk_commit_t *c = &w->commit;
  if (c->final_begun || bk_runtime_status(w->rt) != BROOK_OK)
    return;
  c->final_begun = 1;
  if (c->point) { /* after the one in progress */
    c->due = c->due_final = 1;
    return;
  }
  begin(w, 1);
  complete(w);
}
