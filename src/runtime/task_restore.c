/* Tasks and their changelogs (runtime option changelogs; the layer behind the hooks:
 * runtime/task_log.h). A new task whose operators are open goes RESTORING: its logged stores
 * (every store of its per-task instances not opened with changelog_disabled, and the timers
 * of every instance of an operator with on_timer) are handed to the layer, which replays
 * their changelogs into them. The restore runs in SLICES on the worker's loop (restore_timer:
 * a bounded number of records and milliseconds per turn, all restoring tasks taking turns),
 * so the worker's other tasks keep processing meanwhile; a restoring task is not in
 * w->tasks, so no batch, timer, flush or commit reaches it. Once the layer says it is done
 * (its stores restored, their restored commit acknowledged), the timers restored with it are
 * rebuilt into the instances' queues and the task runs (task.c, bk_task_running); its source
 * resumes the input at the positions the restore found (task_state.c,
 * bk_task_stored_position).
 *
 * Commits: at every commit's begin each RUNNING task logs its changes and its marker with the
 * input positions (commit.c); a revocation does it for the tasks it suspended. Worker
 * thread. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "runtime/runtime_impl.h"
#include "runtime/task_ids.h"
#include "runtime/task_log.h"
#include "runtime/timers.h"
#include "state/store.h"
#include "state/store_changelog.h"
#include "state/task_db.h"

#define SLICE_RECORDS_MS 1 /* the timer's period while any task restores */

int bk_task_log_set(bk_worker_t *w, const bk_task_log_vt_t *vt, void *layer) {
  if (w->log_vt && vt)
    return 0;
  w->log_vt = vt;
  w->log_layer = layer;
  return 1;
}

int bk_task_log_wanted(const bk_worker_t *w) {
  return w->rt->opts.changelogs && w->rt->per_task != NULL;
}

const struct brook_restore_listener *bk_task_log_listener(const bk_worker_t *w) {
  return w->rt->opts.restore_listener;
}

void bk_task_log_count(bk_worker_t *w, bk_log_stat_t which, uint64_t n) {
  switch (which) {
  case BK_LOG_STAT_RECORDS:
    w->stats.changelog_records += n;
    break;
  case BK_LOG_STAT_MARKERS:
    w->stats.changelog_markers += n;
    break;
  case BK_LOG_STAT_RESTORED:
    w->stats.restored_records += n;
    break;
  }
}

/* The store's name within its node: a store in a task database is named "<identity>/<name>"
 * (context_state.c). */
static const char *own_name(const char *qname, const char *identity) {
  size_t n = strlen(identity);
  if (strncmp(qname, identity, n) == 0 && qname[n] == '/')
    return qname + n + 1;
  return qname;
}

/* The task's logged stores, into a fresh array (*out, freed by the caller). Timers: every
 * instance of an operator that can set them gets its timer store now (written through from
 * here on: the changelog sees every change), so restored timers have a store to go to. */
static brook_err_t logged_stores(bk_worker_t *w, bk_task_t *t, bk_task_log_store_t **out,
                                 size_t *n_out) {
  brook_runtime_t *rt = w->rt;
  size_t n = 0, cap = 0;
  bk_task_log_store_t *v = NULL;
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < rt->plan.n && err == BROOK_OK; i++) {
    brook_ctx_t *c = &t->insts[i];
    if (!c->node || c->node->kind != BK_NODE_OPERATOR)
      continue;
    const char *id = rt->plan.nodes[i].identity;
    if (!id) /* a stateless node: its timers are a clock (a repartition sink's), not state */
      continue;
    size_t want = n + c->n_stores + 1;
    if (bk_grow(&rt->alloc, (void **)&v, &cap, want, sizeof(*v))) {
      err = BROOK_ERR_NOMEM;
      break;
    }
    for (size_t k = 0; k < c->n_stores; k++)
      if (bk_store_logged(c->stores[k]))
        v[n++] = (bk_task_log_store_t){c->stores[k], id, own_name(bk_store_name(c->stores[k]), id)};
    if (c->node->op.on_timer && (err = bk_timers_keep_synced(c)) == BROOK_OK)
      v[n++] = (bk_task_log_store_t){bk_timers_store(c), id, BK_TIMER_STORE_NAME};
  }
  if (err) {
    bk_free(&rt->alloc, v);
    return err;
  }
  *out = v;
  *n_out = n;
  return BROOK_OK;
}

static void on_restore_timer(uv_timer_t *h);

brook_err_t bk_task_restore_begin(bk_worker_t *w, bk_task_t *t, int *restoring) {
  *restoring = 0;
  if (!w->log_vt || !bk_task_log_wanted(w))
    return BROOK_OK;
  brook_runtime_t *rt = w->rt;
  char name[32];
  bk_task_name(rt, t, name, sizeof(name));
  bk_task_log_store_t *stores = NULL;
  size_t n = 0;
  brook_err_t err = logged_stores(w, t, &stores, &n);
  if (err) {
    bk_runtime_fail(rt, err, "runtime: the changelogs of task %s: %s", name, brook_strerror(err));
    return err;
  }
  if (!n) {
    bk_free(&rt->alloc, stores);
    return BROOK_OK; /* nothing logged: a stateless task */
  }
  if (bk_grow(&rt->alloc, (void **)&w->restoring, &w->cap_restoring, w->n_restoring + 1,
              sizeof(*w->restoring))) {
    bk_free(&rt->alloc, stores);
    bk_runtime_fail(rt, BROOK_ERR_NOMEM, "runtime: out of memory restoring task %s", name);
    return BROOK_ERR_NOMEM;
  }
  bk_task_log_task_t lt = {t->id, bk_task_partition(rt, t->id), name, stores, n, NULL, 0};
  if (t->db && bk_task_db_positions(t->db, &lt.local_positions, &lt.local_len) != BROOK_OK)
    lt.local_positions = NULL, lt.local_len = 0;
  bk_errmsg_t why;
  err = w->log_vt->open(w->log_layer, &lt, &t->log, &why);
  bk_free(&rt->alloc, stores);
  if (err) {
    bk_runtime_fail(rt, err, "runtime: the changelogs of task %s: %s", name, why.text);
    return err;
  }
  t->restore_from_ms = (uint64_t)bk_wallclock_ms();
  w->restoring[w->n_restoring++] = t;
  w->stats.tasks_restored++;
  if (!w->restore_timer_open && w->loop) {
    uv_timer_init(w->loop, &w->restore_timer);
    w->restore_timer.data = w;
    w->restore_timer_open = 1;
  }
  if (w->restore_timer_open && !uv_is_active((uv_handle_t *)&w->restore_timer))
    uv_timer_start(&w->restore_timer, on_restore_timer, 0, SLICE_RECORDS_MS);
  *restoring = 1;
  return BROOK_OK;
}

int bk_task_restore_unlink(bk_worker_t *w, bk_task_t *t) {
  for (size_t k = 0; k < w->n_restoring; k++) {
    if (w->restoring[k] == t) {
      memmove(&w->restoring[k], &w->restoring[k + 1],
              (w->n_restoring - k - 1) * sizeof(*w->restoring));
      w->n_restoring--;
      return 1;
    }
  }
  return 0;
}

/* The task's timers came back in their stores: the instances' queues are rebuilt. */
static brook_err_t rebuild_timers(bk_worker_t *w, bk_task_t *t) {
  for (size_t i = 0; i < w->rt->plan.n; i++) {
    brook_ctx_t *c = &t->insts[i];
    brook_err_t err;
    if (c->node && bk_timers_store(c) && (err = bk_timers_rebuild(c)) < 0)
      return err;
  }
  return BROOK_OK;
}

/* One slice of every restoring task; the ones done run. */
static void on_restore_timer(uv_timer_t *h) {
  bk_worker_t *w = h->data;
  brook_runtime_t *rt = w->rt;
  int ran = 0;
  for (size_t k = 0; k < w->n_restoring && bk_runtime_status(rt) == BROOK_OK;) {
    bk_task_t *t = w->restoring[k];
    int done = 0;
    bk_errmsg_t why;
    brook_err_t err = w->log_vt->step(w->log_layer, t->log, &done, &why);
    char name[32];
    if (err == BROOK_OK && done && (err = rebuild_timers(w, t)) < 0)
      snprintf(why.text, sizeof(why.text), "its restored timers: %s",
               err == BROOK_ERR_CORRUPT ? "an entry of a timer store is no timer"
                                        : brook_strerror(err));
    if (err) {
      bk_task_name(rt, t, name, sizeof(name));
      bk_runtime_fail(rt, err, "runtime: restoring task %s: %s", name, why.text);
      bk_worker_poke(w);
      break;
    }
    if (!done) {
      k++;
      continue;
    }
    bk_task_restore_unlink(w, t);
    uint64_t now = (uint64_t)bk_wallclock_ms();
    w->stats.restore_ms += now > t->restore_from_ms ? now - t->restore_from_ms : 0;
    bk_task_running(w, t, "restored from its changelogs");
    ran = 1;
  }
  if (!w->n_restoring || bk_runtime_status(rt) != BROOK_OK)
    uv_timer_stop(&w->restore_timer);
  if (ran) /* a task that runs now: its source resumes its input (kafka_positions.c) */
    for (size_t i = 0; i < w->n_sources; i++)
      if (w->sources[i].started)
        bk_sched_ready(&w->sources[i]);
  bk_worker_poke(w);
}

void bk_task_log_close(bk_worker_t *w, bk_task_t *t) {
  if (t->log && w->log_vt)
    w->log_vt->close(w->log_layer, t->log);
  t->log = NULL;
}

void bk_tasks_log_commit(bk_worker_t *w, int state) {
  brook_runtime_t *rt = w->rt;
  for (size_t i = 0; i < w->n_tasks && bk_runtime_status(rt) == BROOK_OK; i++) {
    bk_task_t *t = w->tasks[i];
    if (!t->log || t->state != state || (state == BROOK_TASK_SUSPENDED && t->log_committed))
      continue;
    t->log_committed = state == BROOK_TASK_SUSPENDED;
    const void *pos;
    size_t len;
    bk_errmsg_t why;
    brook_err_t err = bk_task_positions(w, t, &pos, &len);
    if (err)
      snprintf(why.text, sizeof(why.text), "%s", brook_strerror(err));
    else
      err = w->log_vt->commit(w->log_layer, t->log, pos, len, &why);
    if (err) {
      char name[32];
      bk_task_name(rt, t, name, sizeof(name));
      bk_runtime_fail(rt, err, "runtime: logging the changes of task %s: %s", name, why.text);
    }
  }
}

void bk_task_restore_close(bk_worker_t *w) {
  if (!w->restore_timer_open)
    return;
  w->restore_timer_open = 0;
  uv_timer_stop(&w->restore_timer);
  bk_worker_close_handle(w, (uv_handle_t *)&w->restore_timer);
}
