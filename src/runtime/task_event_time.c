/* A task's event time, kept with its state. Each commit stores, with the task's input
 * positions (positions.h: atomically with the state, in the task database and in the
 * changelog markers), the watermark of every per-task instance of a stateful node, as the
 * position ("<identity>#wm", the task's id, the watermark): '#' cannot occur in a Kafka topic
 * name, so it never meets an input's position. When the task runs again (a restart on its
 * state directory, or a restore from its changelogs, here or on another instance), each of
 * those instances starts from its stored watermark instead of BROOK_TIME_MIN, and moves on
 * from there as in the uninterrupted run (event_time.c: a watermark never decreases).
 *
 * Without it a restarted task's watermark started over: records replayed from the stored
 * positions, and late ones, reopened windows that had closed before the commit (their state
 * gone) and emitted partial results again (found by the crash-loop test). With a single input
 * partition per task, the watermark after the restart equals the uninterrupted run's at every
 * record; with several (co-partitioned topics, or a repartition topic's upstream tasks) it can
 * lag behind it until every input has delivered a record, never fall below the stored one.
 * Worker thread. */
#include <stdio.h>

#include "runtime/positions.h"
#include "runtime/runtime_impl.h"
#include "runtime/task_event_time.h"

/* Positions hold offsets >= 0: a watermark below 0 (event time before 1970) is stored as its
 * magnitude under "<identity>#wm-". */
#define WM_SUFFIX "#wm"
#define WM_NEG_SUFFIX "#wm-"
#define WM_NAME_MAX (BK_IDENTITY_MAX + sizeof(WM_NEG_SUFFIX))

/* The position name of `identity`'s watermark (`neg`: of a negative one); 0 if it does not
 * fit. */
static int wm_name(const char *identity, int neg, char *buf, size_t size) {
  int n = snprintf(buf, size, "%s%s", identity, neg ? WM_NEG_SUFFIX : WM_SUFFIX);
  return n > 0 && (size_t)n < size;
}

/* The watermark stored for `identity` in task `task`: 1 found (*wm set), else 0. */
static int stored_wm(bk_worker_t *w, int32_t task, const char *identity, int64_t *wm) {
  char name[WM_NAME_MAX];
  int64_t v;
  if (wm_name(identity, 0, name, sizeof(name)) &&
      bk_task_stored_position(w, task, name, task, &v)) {
    *wm = v;
    return 1;
  }
  if (wm_name(identity, 1, name, sizeof(name)) &&
      bk_task_stored_position(w, task, name, task, &v)) {
    *wm = -v;
    return 1;
  }
  return 0;
}

/* bk_positions_fn: the watermarks of task `task`'s stateful instances. */
static brook_err_t positions_of(void *opaque, int32_t task, bk_positions_t *out) {
  bk_worker_t *w = opaque;
  bk_task_t *t = bk_task_find(w, task);
  const bk_plan_t *plan = &w->rt->plan;
  for (size_t i = 0; t && i < plan->n; i++) {
    const brook_ctx_t *c = &t->insts[i];
    const char *identity = plan->nodes[i].identity;
    if (!c->opened || !identity)
      continue;
    /* A task that restores commits once before it runs (its changelogs' restored commit):
     * its instances are not at their stored watermarks yet, and must not lose them. */
    int64_t wm = c->wm, stored;
    if (stored_wm(w, task, identity, &stored) && stored > wm)
      wm = stored;
    char name[WM_NAME_MAX];
    if (wm == BROOK_TIME_MIN || !wm_name(identity, wm < 0, name, sizeof(name)))
      continue;
    brook_err_t err = bk_positions_add(out, name, task, wm < 0 ? -wm : wm);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

brook_err_t bk_task_event_time_start(bk_worker_t *w) {
  const brook_runtime_t *rt = w->rt;
  if (!rt->per_task || (!rt->state_dir && !rt->opts.changelogs))
    return BROOK_OK; /* nothing is kept across runs */
  return bk_positions_register(w, positions_of, w);
}

void bk_task_event_time_restore(bk_worker_t *w, bk_task_t *t) {
  const bk_plan_t *plan = &w->rt->plan;
  for (size_t i = 0; i < plan->n; i++) {
    brook_ctx_t *c = &t->insts[i];
    const char *identity = plan->nodes[i].identity;
    int64_t wm;
    if (c->opened && identity && stored_wm(w, t->id, identity, &wm) && wm > c->wm)
      c->wm = wm;
  }
}
