/* Runtime internals shared by the runtime's files: node instances (the operator context),
 * ports, sources and the runtime object itself. */
#ifndef BROOK_RUNTIME_IMPL_H
#define BROOK_RUNTIME_IMPL_H

#include <stdatomic.h>
#include <stddef.h>

#include <uv.h>

#include <brook/runtime.h>
#include <brook/state.h>

#include "core/arena.h"
#include "core/context.h"
#include "core/errmsg.h"
#include "core/topology.h"
#include "plan/plan.h"
#include "runtime/commit.h"
#include "runtime/delivery.h"
#include "runtime/services.h"
#include "runtime/worker.h"
#include "time/watermark.h"

typedef struct bk_src bk_src_t;

/* One input partition's instances of the per-task nodes (task.c), like a Kafka Streams task:
 * their operator state, timers and stores belong to that partition only. */
typedef struct bk_task {
  int32_t id;           /* the partition number (co-partitioned topics share a task) */
  int refs;             /* sources holding the partition */
  int state;            /* brook_task_state_t (task.h) */
  brook_ctx_t *insts;   /* indexed like plan.order; only per-task nodes are set up */
  brook_time_t fold_wm; /* event_time.c: a source's splits folded per task */
  int fold_active, fold_present;
  struct bk_task_db *db; /* its state on disk (runtime option state_dir), or NULL */
  void *log;             /* its changelogs' state (task_restore.c, runtime/task_log.h), or NULL */
  uint64_t restore_from_ms; /* when it began RESTORING */
  int log_committed;        /* suspended: its last changes and marker are written */
} bk_task_t;

struct bk_src {
  brook_runtime_t *rt;
  bk_worker_t *w; /* the worker this instance runs on */
  brook_ctx_t *ctx;
  const bk_source_vt_t *vt;
  const void *cfg;
  void *impl;
  int ready; /* has data to produce now */
  int ended;
  int started;         /* start succeeded: close must run */
  brook_ctx_t *home;   /* the process-wide instance; ctx moves to a task's during its batch */
  bk_wm_gen_t wm;      /* per-split watermarks (time/watermark.h) */
  int32_t *split_task; /* partitioned sources: split -> task id (-1: none) */
  size_t n_split_task;
  size_t cur_split; /* split of the records being emitted (0 for single-split sources) */
  /* Splittable sources: this worker runs splits split0 + k * split_stride (split_stride is
   * the number of workers) below n_splits, the source's split count; cur_split is k. */
  size_t split0, split_stride, n_splits;
};

struct brook_runtime {
  brook_allocator_t alloc;
  brook_topology_t *topo;
  brook_runtime_opts_t opts; /* opts.state_dir points to state_dir below */
  char *state_dir;           /* a copy of the option, or NULL: state in memory */
  bk_plan_t plan;
  unsigned char *per_task; /* plan index -> 1 if the node runs once per task (task.c) */
  /* task_ids.h: the sub-topologies that run tasks, numbered (sub -> rank, UINT32_MAX if it
   * runs none; rank -> sub); n_task_subs >= 1. */
  uint32_t *task_sub_rank, *task_rank_sub;
  uint32_t n_task_subs;
  /* fuse.c: plan index -> the length of the fused chain the node heads (0: none; 1: a chain
   * of one, fused only with a generator in front); NULL when no node is fusable. */
  unsigned char *fuse_len;
  bk_worker_t *workers; /* opts.num_workers of them; workers[0] runs on-done */
  size_t n_workers;
  bk_worker_t *w0;  /* &workers[0]: the worker of unsplittable sources (files, stdin) */
  int manual_clock; /* the test driver sets now_ms by hand; no loop */
  /* The test driver's tap on every sink (node without outputs): sees each record first. */
  brook_err_t (*sink_tap)(brook_ctx_t *sink, const brook_record_t *recs, size_t n, void *opaque);
  void *sink_tap_opaque;
  /* The test driver keeps a closing task's state (driver_partitions.c): bk_task_release calls
   * it after the task's operators flushed, before they close. */
  void (*task_closing)(brook_runtime_t *rt, struct bk_task *t, void *opaque);
  void *task_closing_opaque;
  /* task.c: fills a new task's stores before it runs (RESTORING; bk_tasks_set_restorer). */
  brook_err_t (*task_restore)(brook_runtime_t *rt, struct bk_task *t, void *opaque);
  void *task_restore_opaque;

  bk_rt_state_t state; /* NEW, RUNNING (workers started) or DONE (all finished) */
  atomic_int stop_flag;
  int free_on_done;
  int in_run; /* inside brook_runtime_run: a free from on_done waits for run to return */
  atomic_int workers_left; /* workers not yet DONE */
  uv_async_t done_async;   /* on worker 0's loop: the last worker to finish wakes it */
  int done_async_open;

  /* The first failure of any worker wins: status changes once from BROOK_OK, under
   * fail_lock, with its message written before status (readers that see a failure status
   * with an acquire load see its message). */
  atomic_int status;
  atomic_flag fail_lock;
  bk_errmsg_t msg;
};

/* ---- exec.c: moving records ---- */
brook_err_t bk_ctx_process(brook_ctx_t *ctx, size_t input, const brook_record_t *recs, size_t n);
/* The end of bk_ctx_process after the operator ran over the batch (`err`: what it returned):
 * delivers what it emitted, records its failure. Also ends a generator's fused batch. */
brook_err_t bk_ctx_process_end(brook_ctx_t *ctx, brook_err_t err);
brook_err_t bk_ctx_flush_ports(brook_ctx_t *ctx);
/* The services behind core/context.h's bk_emit_batch_owned and bk_ctx_routes_failures. */
brook_err_t bk_rt_emit_batch_owned(brook_ctx_t *ctx, size_t port, brook_record_t *recs, size_t n);
int bk_rt_routes_failures(const brook_ctx_t *ctx);
/* Delivers a port's buffered records to its targets (direct calls) and empties it. */
brook_err_t bk_port_deliver(brook_ctx_t *from, bk_port_t *p);
/* Records `err` as the pipeline's failure unless one is already recorded (by any worker),
 * and wakes the other workers so that they stop too. Any worker's thread. */
void bk_runtime_fail(brook_runtime_t *rt, brook_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The run's status (the first failure, or BROOK_OK); any thread. */
static inline brook_err_t bk_runtime_status(const brook_runtime_t *rt) {
  return (brook_err_t)atomic_load_explicit(&((brook_runtime_t *)rt)->status, memory_order_acquire);
}

/* ---- fuse.c: chains of built-in callback operators run record by record ---- */
/* Decides the chains from the plan and the worker count (rt->fuse_len). */
brook_err_t bk_fuse_plan(brook_runtime_t *rt);
/* Runs the chain of `len` operators headed by `head` over its input (head->input_owned:
 * the records may be rewritten where they lie) and delivers what comes out of its last
 * operator. Called by bk_ctx_process in place of the head's process_batch. */
brook_err_t bk_fuse_run(brook_ctx_t *head, size_t len, const brook_record_t *recs, size_t n);

/* ---- event_time.c: watermarks and timers ---- */
/* Stamps a source's batch in place: event time from the extractor (records it fails on
 * follow the error policy and are removed: *n shrinks), then the split's watermark. */
brook_err_t bk_src_stamp(bk_src_t *src, brook_record_t *recs, size_t *n);
/* 1 if `src`'s batches are stamped and observed (bk_src_stamp): decided at its first batch. */
int bk_src_tracks_time(bk_src_t *src);
/* Moves processing time to w->now_ms for the sources' idleness / quiet advance and fires the
 * processing-time timers that are due. Then runs bk_time_pass. Failures go to rt->status. */
void bk_time_tick(bk_worker_t *w);
/* Propagates watermarks through the worker's DAG in topological order, firing due event-time
 * timers and on_watermark; delivers what they emit. Failures go to rt->status. */
void bk_time_pass(bk_worker_t *w);
/* Earliest processing time at which bk_time_tick has work (BROOK_TIME_MAX: none). */
brook_time_t bk_time_next_due(const bk_worker_t *w);
/* Releases timer queues (after close). */
void bk_time_free_ctx(brook_runtime_t *rt, brook_ctx_t *c);

/* ---- context_state.c ---- */
/* Reports the worker's in-place store changes to their listeners (at commits, commit.c; the
 * test driver after each call). */
void bk_state_flush_changes(bk_worker_t *w);
/* The same for one operator instance's stores. */
void bk_state_flush_ctx(brook_runtime_t *rt, brook_ctx_t *c);
/* Frees an operator's stores (after close). */
void bk_state_free_ctx(brook_runtime_t *rt, brook_ctx_t *c);

/* ---- runtime.c ---- */
void bk_runtime_destroy(brook_runtime_t *rt);
/* Frees the runtime if brook_runtime_free asked for it while it was still running. */
void bk_runtime_destroy_if_requested(brook_runtime_t *rt);

/* ---- scheduler.c: the loop side ---- */
/* Starting a worker, in three steps (worker.c runs them for every worker): open starts its
 * sources and opens its operators (on failure everything is undone, failure recorded);
 * bk_worker_unopen undoes a successful open while nothing is attached to a loop; attach
 * initialises its handles on `loop` (fails only if uv_async_init does, then nothing is left
 * on the loop and the caller undoes the open); go attaches the sources and schedules, on the
 * worker's thread or before its thread runs the loop. */
brook_err_t bk_worker_open(bk_worker_t *w);
void bk_worker_unopen(bk_worker_t *w);
brook_err_t bk_worker_attach(bk_worker_t *w, uv_loop_t *loop);
void bk_worker_go(bk_worker_t *w);
/* worker.c: the worker reached DONE (everything closed). The last worker to finish ends the
 * run on worker 0's loop: threads joined, then on_done. May free rt. */
void bk_worker_finished(bk_worker_t *w);
/* worker.c: starts every worker: worker 0 on `loop`, the others on threads of their own.
 * `own`: brook_runtime_run (worker 0 on its own loop, run by the caller). */
brook_err_t bk_workers_start(brook_runtime_t *rt, uv_loop_t *loop);
/* Marks `src` ready and makes sure the idle handle runs. Worker thread. */
void bk_sched_ready(bk_src_t *src);
/* Operator life cycle (also used by the test driver). */
brook_err_t bk_open_operators(bk_worker_t *w);
void bk_close_operators(bk_worker_t *w);
/* Calls `fn` on every operator in topological order, delivering what each emits; stops at
 * the first failure (recorded in rt->status). */
void bk_for_each_operator(bk_worker_t *w, brook_err_t (*fn)(brook_ctx_t *, void *state));
/* The same for one operator instance, without releasing the batch arena (a task closing in a
 * rebalance callback may run while a source batch still holds arena memory). */
void bk_call_operator(bk_worker_t *w, brook_ctx_t *c,
                      brook_err_t (*fn)(brook_ctx_t *, void *state));
/* Runs the instance's open(); a failure is recorded in rt->status and returned. */
brook_err_t bk_open_operator(brook_ctx_t *c);
brook_err_t bk_call_end_of_input(brook_ctx_t *c, void *state);
brook_err_t bk_call_flush(brook_ctx_t *c, void *state);

/* ---- context_state.c ---- */
/* Longest store name in a task database: "<node identity>/<store name>". */
#define BK_STATE_NAME_MAX 512
/* The options and name a store of `ctx` named `name` opens with: `opts` (NULL: defaults)
 * copied into *out; in a task with its state on disk, a store of the default backend goes to
 * the task database under "<identity>/<name>" (in qname), else qname is `name`.
 * BROOK_OK or BROOK_ERR_INVALID_ARG (bad struct_size, a name too long) with *why (may be
 * NULL) set. */
brook_err_t bk_state_store_opts(const brook_ctx_t *ctx, const char *name,
                                const brook_store_opts_t *opts, brook_store_opts_t *out,
                                char *qname, size_t qsize, bk_errmsg_t *why);

/* ---- task.c: one instance of the partitioned part of the DAG per input partition ---- */
/* Marks the nodes that run once per task (rt->per_task): the plan's partition_local nodes
 * (plan/placement.c). */
brook_err_t bk_tasks_plan(brook_runtime_t *rt);
/* bk_task_acquire, bk_task_suspend and bk_task_release: services.h. */
/* Closes every task without flushing (the runtime is closing or failed), then frees them;
 * `reason` goes to on_task_state (a finished run has committed already; a failed one must
 * not flush). */
void bk_tasks_close_all(bk_worker_t *w, const char *reason);
/* Sets what restores a task's state in RESTORING: called with its operators open (their
 * stores exist, empty). NULL: nothing to restore. */
typedef brook_err_t (*bk_task_restore_fn)(brook_runtime_t *rt, bk_task_t *t, void *opaque);
void bk_tasks_set_restorer(brook_runtime_t *rt, bk_task_restore_fn fn, void *opaque);
void bk_tasks_free(bk_worker_t *w);
/* Split `split` of partitioned source `src` feeds task `id` (its watermark is the task's). */
brook_err_t bk_src_split_task(bk_src_t *src, size_t split, int32_t id);
/* The records in the source's port belong to task `id`: they move to the task's instance,
 * which src->ctx becomes until bk_src_leave_task. Returns 0, or -1 if the task is not open
 * (the records are left in place). */
int bk_src_enter_task(bk_src_t *src, int32_t id);
void bk_src_leave_task(bk_src_t *src);

/* ---- task_restore.c: changelogs (runtime/task_log.h) ---- */
/* A new task's operators are open: with changelogs, it starts RESTORING in slices (returns
 * BROOK_OK with *restoring = 1: the task waits in w->restoring and becomes RUNNING later,
 * task.c's bk_task_running); else *restoring = 0. A failure fails the run. */
brook_err_t bk_task_restore_begin(bk_worker_t *w, bk_task_t *t, int *restoring);
/* The task's changelogs are closed (its restore abandoned). */
void bk_task_log_close(bk_worker_t *w, bk_task_t *t);
/* Removes a restoring task from w->restoring; 1 if it was there. */
int bk_task_restore_unlink(bk_worker_t *w, bk_task_t *t);
/* Logs the changes and the marker of every task in `state` (RUNNING at a commit's begin;
 * SUSPENDED at a revocation's point, once each). A failure fails the run. */
void bk_tasks_log_commit(bk_worker_t *w, int state);
/* Closes the restore timer (the worker is finishing). */
void bk_task_restore_close(bk_worker_t *w);
/* task.c: a task restored: it enters the worker's tasks and runs. */
void bk_task_running(bk_worker_t *w, bk_task_t *t, const char *reason);

/* ---- task_state.c: tasks' state on disk through the commits (positions.h) ---- */
/* The input positions of task t now (every registered source's), in the worker's buffer
 * (valid until the next call). BROOK_OK or an error. */
brook_err_t bk_task_positions(bk_worker_t *w, bk_task_t *t, const void **data, size_t *len);
/* A commit's begin: every task with a database collects its state and positions (a failure
 * fails the run). */
void bk_tasks_state_prepare(bk_worker_t *w);
/* The commit's outputs are acknowledged: every task writes what it collected. Returns the
 * number of tasks written (a failure fails the run). */
int bk_tasks_state_write(bk_worker_t *w);
void bk_tasks_state_free(bk_worker_t *w);

/* A task's name: "<sub-topology>_<partition>" like Kafka Streams' task ids (its state
 * directory under state_dir; task_ids.h). Writes at most `size` bytes with a NUL. */
void bk_task_name(const brook_runtime_t *rt, const bk_task_t *t, char *buf, size_t size);

static inline bk_task_t *bk_task_find(const bk_worker_t *w, int32_t id) {
  return id >= 0 && (size_t)id < w->n_task_ids ? w->task_by_id[id] : NULL;
}

/* The instances of plan node `i` on worker `w`: one per open task for per-task nodes, else
 * the worker's process-wide one. */
static inline size_t bk_inst_count(const bk_worker_t *w, size_t i) {
  return w->rt->per_task && w->rt->per_task[i] ? w->n_tasks : 1;
}
static inline brook_ctx_t *bk_inst_at(const bk_worker_t *w, size_t i, size_t k) {
  return w->rt->per_task && w->rt->per_task[i] ? &w->tasks[k]->insts[i] : &w->insts[i];
}
/* Whether instance k of node i may fire timers and pass watermarks now: a process-wide
 * instance always; a task's only if the task has the node and while it is RUNNING (a suspended task
 * waiting for its revocation's acknowledgements must emit nothing the wait does not cover, and one
 * still restoring has not started). */
static inline int bk_inst_live(const bk_worker_t *w, size_t i, size_t k) {
  if (!(w->rt->per_task && w->rt->per_task[i]))
    return 1;
  /* A task has instances of its own sub-topology's nodes only (task_ids.h). */
  return w->tasks[k]->state == BROOK_TASK_RUNNING && w->tasks[k]->insts[i].node;
}

/* ---- sources ---- */
static inline bk_port_t *bk_src_port(bk_src_t *src) { return &src->ctx->ports[0]; }
/* Delivers an array of records produced by a source without copying. */
brook_err_t bk_src_emit_array(bk_src_t *src, brook_record_t *recs, size_t n);
brook_time_t bk_wallclock_ms(void);

#endif
