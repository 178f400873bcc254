/* Tasks: like Kafka Streams, the part of the DAG that keeps a partitioned source's
 * partitioning runs as one task per input partition. A task holds its own instance of each
 * such node (operator state, stores, timers, watermark), is created and opened when its
 * partition is assigned and flushed and closed when it is revoked, so the state of one
 * partition never mixes with another's and leaves with its partition.
 *
 * Which nodes run per task is the plan's decision (plan/placement.c): the nodes it marks
 * partition_local, i.e. per task and fed only by a partitioned source without crossing a key
 * change. The plan also places the nodes after a key_by per task of their own sub-topology;
 * the exchange (exchange.c) routes each record to the worker of its task, where they run as
 * that worker's one instance (w->insts) for all its tasks. Sinks and everything else have one
 * instance per worker too.
 *
 * A task's output ports share the buffer of the process-wide instance's port: a port is
 * empty whenever control leaves its node (delivery is synchronous and each activation ends
 * by flushing), and a task's records never reach another task. Tasks belong to a worker
 * (w->tasks); everything here runs on that worker's thread.
 *
 * Its life cycle (brook/task.h), each change reported to the runtime's on_task_state:
 * CREATED (instances built; with state on disk its task database opens, with the timers it
 * holds) -> RESTORING (operators open, so their stores exist - on disk they hold what the last
 * commit wrote; a restorer may fill them: a synchronous hook, set by the test driver's
 * snapshots; with changelogs the restore runs in slices on the loop, task_restore.c, the task
 * waiting in w->restoring meanwhile) -> RUNNING
 * (enters the task map: only now do records reach it, bk_src_enter_task) -> SUSPENDED (flushed: its
 * part of a commit; its holder commits its input) -> CLOSED (operators closed, state freed). The
 * holder (the Kafka source) acquires a task outside the consumer's rebalance callback. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "runtime/positions.h"
#include "runtime/runtime_impl.h"
#include "runtime/task_event_time.h"
#include "runtime/task_ids.h"
#include "runtime/timers.h"
#include "state/task_db.h"

brook_err_t bk_tasks_plan(brook_runtime_t *rt) {
  const bk_plan_t *plan = &rt->plan;
  if (!plan->any_partition_local)
    return BROOK_OK; /* every node has its one process-wide instance */
  if (!(rt->per_task = bk_calloc(&rt->alloc, plan->n, 1)))
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < plan->n; i++)
    rt->per_task[i] = (unsigned char)plan->nodes[i].partition_local;
  return BROOK_OK;
}

static void free_ports(bk_worker_t *w, brook_ctx_t *c) {
  for (size_t p = 0; p < c->n_ports; p++)
    bk_free(&w->rt->alloc, c->ports[p].to); /* buf belongs to the process-wide instance */
  bk_free(&w->rt->alloc, c->ports);
  c->ports = NULL;
  c->n_ports = 0;
}

static brook_err_t build_task(bk_worker_t *w, bk_task_t *t) {
  const bk_plan_t *plan = &w->rt->plan;
  for (size_t i = 0; i < plan->n; i++) {
    if (!w->rt->per_task[i] || !bk_task_has_node(w->rt, t->id, i))
      continue; /* another sub-topology's node (runtime/task_ids.h) */
    const brook_ctx_t *home = &w->insts[i];
    brook_ctx_t *c = &t->insts[i];
    c->rt = w->rt;
    c->w = w;
    c->svc = home->svc;
    c->node = home->node;
    c->src = home->src;
    c->task = t->id;
    c->wm = BROOK_TIME_MIN;
    if (!home->n_ports)
      continue;
    if (!(c->ports = bk_calloc(&w->rt->alloc, home->n_ports, sizeof(*c->ports))))
      return BROOK_ERR_NOMEM;
    c->n_ports = home->n_ports;
    for (size_t p = 0; p < c->n_ports; p++) {
      const bk_port_t *hp = &home->ports[p];
      bk_port_t *port = &c->ports[p];
      port->buf = hp->buf;
      port->cap = hp->cap;
      if (!(port->to = bk_calloc(&w->rt->alloc, hp->n_to ? hp->n_to : 1, sizeof(*port->to))))
        return BROOK_ERR_NOMEM;
      port->n_to = hp->n_to;
      for (size_t k = 0; k < hp->n_to; k++) {
        size_t pos = (size_t)(hp->to[k].ctx - w->insts);
        port->to[k].ctx = w->rt->per_task[pos] ? &t->insts[pos] : &w->insts[pos];
        port->to[k].input = hp->to[k].input;
      }
    }
  }
  return BROOK_OK;
}

/* Closes the task's operators (each opened one exactly once) and frees its instances. */
static void destroy_task(bk_worker_t *w, bk_task_t *t) {
  for (size_t i = 0; t->insts && i < w->rt->plan.n; i++) {
    brook_ctx_t *c = &t->insts[i];
    if (!c->node)
      continue;
    if (c->opened && c->node->op.close)
      c->node->op.close(c->state, c->node->opaque);
    c->opened = 0;
    c->state = NULL;
    if (w->failed_ctx == c)
      w->failed_ctx = NULL;
    bk_time_free_ctx(w->rt, c);
    bk_state_free_ctx(w->rt, c);
    free_ports(w, c);
  }
  bk_task_log_close(w, t); /* after its stores (it listened to them) */
  bk_task_db_close(t->db); /* after its stores: uncommitted changes are dropped */
  bk_free(&w->rt->alloc, t->insts);
  bk_free(&w->rt->alloc, t);
}

void bk_task_name(const brook_runtime_t *rt, const bk_task_t *t, char *buf, size_t size) {
  bk_task_id_name(rt, t->id, buf, size);
}

/* A store's write cache is full: its changes wait for a commit, so one is asked for now. */
static void on_cache_full(void *opaque) { bk_commit_request(opaque, 0); }

/* With state on disk: opens the task's database (<state_dir>/<task name>), so its operators'
 * stores open in it and find what the last commit wrote; checks the positions it stored (its
 * source resumes there, positions.h) and brings back the timers of each instance that had
 * some, before the operators open. */
static brook_err_t open_task_db(bk_worker_t *w, bk_task_t *t) {
  brook_runtime_t *rt = w->rt;
  if (!rt->state_dir)
    return BROOK_OK;
  brook_rocksdb_opts_t ro;
  brook_rocksdb_opts_init(&ro);
  if (rt->opts.state_cache_bytes)
    ro.cache_bytes = rt->opts.state_cache_bytes;
  char name[32];
  bk_task_name(rt, t, name, sizeof(name));
  bk_errmsg_t why;
  brook_err_t err = bk_task_db_open(&t->db, rt->state_dir, name, &ro, &rt->alloc, &why);
  if (err < 0) {
    bk_runtime_fail(rt, err, "runtime: the state of task %s: %s", name, why.text);
    return err;
  }
  const void *pos;
  size_t len;
  if (bk_task_db_positions(t->db, &pos, &len) == BROOK_OK &&
      (err = bk_positions_check(pos, len, bk_task_db_path(t->db), &why)) != BROOK_OK) {
    bk_runtime_fail(rt, err, "runtime: the state of task %s: %s", name, why.text);
    return err;
  }
  bk_task_db_on_full(t->db, on_cache_full, w);
  for (size_t i = 0; i < rt->plan.n; i++)
    t->insts[i].task_db = t->db;
  for (size_t i = 0; i < rt->plan.n; i++) {
    brook_ctx_t *c = &t->insts[i];
    if (c->node && c->node->kind == BK_NODE_OPERATOR && (err = bk_timers_reopen(c)) < 0) {
      bk_runtime_fail(rt, err, "runtime: the timers of operator '%s' in task %s: %s", c->node->name,
                      name,
                      err == BROOK_ERR_CORRUPT ? "an entry of its timer store is no timer"
                                               : brook_strerror(err));
      return err;
    }
  }
  return BROOK_OK;
}

static brook_err_t open_task(bk_worker_t *w, bk_task_t *t) {
  for (size_t i = 0; i < w->rt->plan.n; i++) {
    brook_ctx_t *c = &t->insts[i];
    if (c->node && c->node->kind == BK_NODE_OPERATOR && bk_open_operator(c) < 0)
      return w->rt->status;
  }
  return BROOK_OK;
}

/* ---- the life cycle (brook/task.h) ---- */

const char *brook_task_state_name(int state) {
  static const char *const names[] = {"CREATED", "RESTORING", "RUNNING", "SUSPENDED", "CLOSED"};
  return state >= 0 && state <= BROOK_TASK_CLOSED ? names[state] : "UNKNOWN";
}

static void report(brook_runtime_t *rt, int32_t id, int old, int state, const char *reason) {
  if (rt->opts.on_task_state)
    rt->opts.on_task_state(id, old, state, reason, rt->opts.on_task_state_opaque);
}

static void set_state(bk_worker_t *w, bk_task_t *t, int state, const char *reason) {
  int old = t->state;
  t->state = state;
  report(w->rt, t->id, old, state, reason);
}

/* Closes a task (operators closed, state freed) and reports CLOSED. */
static void close_task(bk_worker_t *w, bk_task_t *t, const char *reason) {
  int32_t id = t->id;
  int old = t->state;
  destroy_task(w, t);
  report(w->rt, id, old, BROOK_TASK_CLOSED, reason);
}

void bk_tasks_set_restorer(brook_runtime_t *rt, bk_task_restore_fn fn, void *opaque) {
  rt->task_restore = fn;
  rt->task_restore_opaque = opaque;
}

/* RESTORING: the operators are open (their stores exist: empty in memory, as the last commit
 * left them on disk, task_state.c); a restorer (the test driver's snapshots; changelogs next)
 * fills them before the task runs. */
static brook_err_t restore_task(bk_worker_t *w, bk_task_t *t) {
  brook_runtime_t *rt = w->rt;
  set_state(w, t, BROOK_TASK_RESTORING,
            rt->task_restore ? "restoring its state" : "nothing to restore");
  if (!rt->task_restore)
    return BROOK_OK;
  brook_err_t err = rt->task_restore(rt, t, rt->task_restore_opaque);
  if (err < 0)
    bk_runtime_fail(rt, err, "runtime: restoring the task of partition %d failed: %s", (int)t->id,
                    rt->msg.text[0] ? rt->msg.text : brook_strerror(err));
  return err;
}

brook_err_t bk_task_acquire(bk_worker_t *w, int32_t id, const char *reason) {
  if (!w->rt->per_task || id < 0)
    return BROOK_OK; /* nothing runs per task */
  bk_task_t *t = bk_task_find(w, id);
  if (t) {
    t->refs++;
    return BROOK_OK;
  }
  const brook_allocator_t *a = &w->rt->alloc;
  brook_err_t err = BROOK_ERR_NOMEM;
  if ((size_t)id >= w->n_task_ids) {
    size_t cap = w->n_task_ids;
    if (bk_grow(a, (void **)&w->task_by_id, &cap, (size_t)id + 1, sizeof(*w->task_by_id)))
      goto fail;
    memset(w->task_by_id + w->n_task_ids, 0, (cap - w->n_task_ids) * sizeof(*w->task_by_id));
    w->n_task_ids = cap;
  }
  /* Room for it and for every task restoring, as each becomes RUNNING (bk_task_running). */
  if (bk_grow(a, (void **)&w->tasks, &w->cap_tasks, w->n_tasks + w->n_restoring + 1,
              sizeof(*w->tasks)))
    goto fail;
  if (!(t = bk_calloc(a, 1, sizeof(*t))))
    goto fail;
  t->id = id;
  t->refs = 1;
  t->state = BROOK_TASK_CREATED;
  if (!(t->insts = bk_calloc(a, w->rt->plan.n, sizeof(*t->insts))) || build_task(w, t)) {
    destroy_task(w, t);
    goto fail;
  }
  set_state(w, t, BROOK_TASK_CREATED, reason);
  int restoring = 0;
  if ((err = open_task_db(w, t)) < 0 || (err = open_task(w, t)) < 0 ||
      (err = restore_task(w, t)) < 0 || (err = bk_task_restore_begin(w, t, &restoring)) < 0) {
    close_task(w, t, "failed to open or restore");
    return err;
  }
  w->task_by_id[id] = t; /* found while it restores (bk_task_state): RESTORING */
  if (!restoring)
    bk_task_running(w, t, "restored");
  return BROOK_OK;
fail:
  bk_runtime_fail(w->rt, err, "runtime: out of memory creating the task of partition %d", (int)id);
  return err;
}

void bk_task_running(bk_worker_t *w, bk_task_t *t, const char *reason) {
  bk_task_event_time_restore(w, t); /* its watermarks as its state left them */
  w->tasks[w->n_tasks++] = t;       /* room reserved by bk_task_acquire */
  w->stats.tasks_opened++;
  set_state(w, t, BROOK_TASK_RUNNING, reason);
}

/* Runs every opened operator of the task through flush(), delivering what it emits, then
 * reports its stores' changes: the task's part of a commit (commit.c), at its revocation. */
static void flush_task(bk_worker_t *w, bk_task_t *t) {
  for (size_t i = 0; i < w->rt->plan.n && w->rt->status == BROOK_OK; i++) {
    brook_ctx_t *c = &t->insts[i];
    if (c->opened && c->node->kind == BK_NODE_OPERATOR)
      bk_call_operator(w, c, bk_call_flush);
  }
  for (size_t i = 0; i < w->rt->plan.n && w->rt->status == BROOK_OK; i++)
    bk_state_flush_ctx(w->rt, &t->insts[i]);
}

static void unlink_task(bk_worker_t *w, bk_task_t *t) {
  for (size_t k = 0; !bk_task_restore_unlink(w, t) && k < w->n_tasks; k++) {
    if (w->tasks[k] == t) { /* keep the others in order: output order stays deterministic */
      memmove(&w->tasks[k], &w->tasks[k + 1], (w->n_tasks - k - 1) * sizeof(*w->tasks));
      w->n_tasks--;
      break;
    }
  }
  w->task_by_id[t->id] = NULL;
}

void bk_task_suspend(bk_worker_t *w, int32_t id, const char *reason) {
  bk_task_t *t = bk_task_find(w, id);
  if (!t || t->refs > 1 || t->state != BROOK_TASK_RUNNING)
    return;
  flush_task(w, t);
  set_state(w, t, BROOK_TASK_SUSPENDED, reason);
}

void bk_task_release(bk_worker_t *w, int32_t id, const char *reason) {
  bk_task_t *t = bk_task_find(w, id);
  if (!t || --t->refs > 0)
    return;
  bk_task_suspend(w, id, reason);
  brook_runtime_t *rt = w->rt;
  if (rt->task_closing && bk_runtime_status(rt) == BROOK_OK)
    rt->task_closing(rt, t, rt->task_closing_opaque);
  unlink_task(w, t);
  w->stats.tasks_closed++;
  close_task(w, t, "closed");
}

void bk_tasks_close_all(bk_worker_t *w, const char *reason) {
  while (w->n_restoring) {
    bk_task_t *t = w->restoring[w->n_restoring - 1];
    unlink_task(w, t);
    close_task(w, t, "closed while restoring");
  }
  while (w->n_tasks) {
    bk_task_t *t = w->tasks[w->n_tasks - 1];
    if (t->state == BROOK_TASK_RUNNING)
      set_state(w, t, BROOK_TASK_SUSPENDED, reason);
    unlink_task(w, t);
    w->stats.tasks_closed++;
    close_task(w, t, "closed");
  }
}

void bk_tasks_free(bk_worker_t *w) {
  bk_tasks_close_all(w, "the runtime was freed");
  bk_free(&w->rt->alloc, w->tasks);
  bk_free(&w->rt->alloc, w->task_by_id);
  bk_free(&w->rt->alloc, w->restoring);
  w->restoring = NULL;
  w->n_restoring = w->cap_restoring = 0;
  w->tasks = w->task_by_id = NULL;
  w->n_tasks = w->cap_tasks = w->n_task_ids = 0;
}

int bk_task_state(const bk_worker_t *w, int32_t id) {
  const bk_task_t *t = bk_task_find(w, id);
  return t ? t->state : -1;
}

int bk_rt_has_tasks(const bk_worker_t *w) { return w->rt->per_task != NULL; }

brook_err_t bk_src_split_task(bk_src_t *src, size_t split, int32_t id) {
  if (split >= src->n_split_task) {
    size_t cap = src->n_split_task;
    if (bk_grow(&src->rt->alloc, (void **)&src->split_task, &cap, split + 1,
                sizeof(*src->split_task)))
      return BROOK_ERR_NOMEM;
    for (size_t i = src->n_split_task; i < cap; i++)
      src->split_task[i] = -1;
    src->n_split_task = cap;
  }
  src->split_task[split] = id;
  return BROOK_OK;
}

int bk_src_enter_task(bk_src_t *src, int32_t id) {
  brook_runtime_t *rt = src->rt;
  size_t pos = rt->plan.pos[src->home->node->id];
  bk_task_t *t = rt->per_task && rt->per_task[pos] ? bk_task_find(src->w, id) : NULL;
  if (!t || t->state != BROOK_TASK_RUNNING)
    return -1;
  brook_ctx_t *c = &t->insts[pos];
  c->ports[0].n = src->home->ports[0].n; /* same buffer: the records stay where they are */
  src->home->ports[0].n = 0;
  src->ctx = c;
  return 0;
}

void bk_src_leave_task(bk_src_t *src) {
  src->ctx->ports[0].n = 0;
  src->ctx = src->home;
}
