/* Runtime internals shared by the runtime's files: node instances (the operator context),
 * ports, sources and the runtime object itself. */
#ifndef BROOK_RUNTIME_IMPL_H
#define BROOK_RUNTIME_IMPL_H

#include <stdatomic.h>
#include <stddef.h>

#include <uv.h>

#include <brook/runtime.h>

#include "core/arena.h"
#include "core/context.h"
#include "core/errmsg.h"
#include "core/topology.h"
#include "plan/plan.h"
#include "runtime/commit.h"
#include "runtime/delivery.h"
#include "runtime/services.h"
#include "time/watermark.h"

/* One input partition's instances of the per-task nodes (task.c), like a Kafka Streams task:
 * their operator state, timers and stores belong to that partition only. */
typedef struct bk_task {
  int32_t id;           /* the partition number (co-partitioned topics share a task) */
  int refs;             /* sources holding the partition */
  int state;            /* brook_task_state_t (task.h) */
  brook_ctx_t *insts;   /* indexed like plan.order; only per-task nodes are set up */
  brook_time_t fold_wm; /* event_time.c: a source's splits folded per task */
  int fold_active, fold_present;
} bk_task_t;

struct bk_src {
  brook_runtime_t *rt;
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
};

typedef enum bk_rt_state {
  BK_RT_NEW,
  BK_RT_RUNNING,
  BK_RT_DRAINING, /* stop requested: sources finish what they accepted */
  BK_RT_FLUSHING, /* input is over: waiting for asynchronous deliveries (delivery.h) */
  BK_RT_CLOSING,  /* waiting for handle close callbacks */
  BK_RT_DONE
} bk_rt_state_t;

struct brook_runtime {
  brook_allocator_t alloc;
  brook_topology_t *topo;
  brook_runtime_opts_t opts;
  bk_plan_t plan;
  brook_ctx_t *insts; /* indexed like plan.order; the process-wide instances */
  /* Tasks (task.c): the nodes that keep a partitioned source's partitioning (per_task) get
   * one instance per input partition, opened on assignment and closed on revocation. */
  unsigned char *per_task; /* plan index -> 1 if the node runs once per task */
  struct bk_task **tasks;  /* open tasks */
  size_t n_tasks, cap_tasks;
  struct bk_task **task_by_id; /* task id (partition) -> open task or NULL */
  size_t n_task_ids;
  brook_ctx_t *errors_inst;
  bk_src_t *sources;
  size_t n_sources;
  size_t next_source;  /* round-robin start */
  bk_src_t *batch_src; /* the source whose batch is being processed (NULL: none) */
  bk_arena_t arena;
  brook_time_t now_ms;
  int manual_clock; /* the test driver sets now_ms by hand; no loop */
  /* The test driver's tap on every sink (node without outputs): sees each record first. */
  brook_err_t (*sink_tap)(brook_ctx_t *sink, const brook_record_t *recs, size_t n, void *opaque);
  void *sink_tap_opaque;

  uv_timer_t clock;       /* fires processing-time timers and watermark ticks */
  brook_time_t clock_due; /* when `clock` is armed for; BROOK_TIME_MAX = not armed */
  int clock_open;

  uv_loop_t own_loop;
  uv_loop_t *loop;
  uv_idle_t idle;
  uv_async_t async;
  int idle_active;
  int handles_open; /* idle and async were initialised */
  int holds;        /* close callbacks and requests still outstanding */

  bk_rt_state_t state;
  atomic_int stop_flag;
  atomic_int async_live; /* async may be sent to */
  atomic_int senders;    /* threads inside bk_runtime_wake */
  int free_on_done;
  int in_run; /* inside brook_runtime_run: a free from on_done waits for run to return */

  int error_depth;         /* > 0 while error-stream records are being delivered */
  brook_ctx_t *failed_ctx; /* the operator whose own failure set status, while unwinding */
  brook_err_t status;
  bk_errmsg_t msg;
  brook_runtime_stats_t stats;
  bk_delivery_t delivery;     /* asynchronous sink writes by source-batch epoch */
  bk_commit_t commit;         /* commit.c */
  void *slots[BK_SLOT_COUNT]; /* services.h: what a source/sink layer shares per runtime */
  /* task.c: fills a new task's stores before it runs (the test driver's snapshots). */
  brook_err_t (*task_restore)(brook_runtime_t *rt, struct bk_task *t, void *opaque);
  void *task_restore_opaque;
};

/* ---- exec.c: moving records ---- */
brook_err_t bk_ctx_process(brook_ctx_t *ctx, size_t input, const brook_record_t *recs, size_t n);
brook_err_t bk_ctx_flush_ports(brook_ctx_t *ctx);

/* ---- event_time.c: watermarks and timers ---- */
/* Stamps a source's batch in place: event time from the extractor (records it fails on
 * follow the error policy and are removed: *n shrinks), then the split's watermark. */
brook_err_t bk_src_stamp(bk_src_t *src, brook_record_t *recs, size_t *n);
/* Moves processing time to rt->now_ms for the sources' idleness / quiet advance and fires the
 * processing-time timers that are due. Then runs bk_time_pass. Failures go to rt->status. */
void bk_time_tick(brook_runtime_t *rt);
/* Propagates watermarks through the DAG in topological order, firing due event-time timers
 * and on_watermark; delivers what they emit. Failures go to rt->status. */
void bk_time_pass(brook_runtime_t *rt);
/* Earliest processing time at which bk_time_tick has work (BROOK_TIME_MAX: none). */
brook_time_t bk_time_next_due(const brook_runtime_t *rt);
/* Releases timer queues (after close). */
void bk_time_free_ctx(brook_runtime_t *rt, brook_ctx_t *c);

/* ---- context_state.c ---- */
/* Reports in-place store changes to their listeners (after each batch). */
void bk_state_flush_changes(brook_runtime_t *rt);
/* The same for one operator instance's stores. */
void bk_state_flush_ctx(brook_runtime_t *rt, brook_ctx_t *c);
/* Frees an operator's stores (after close). */
void bk_state_free_ctx(brook_runtime_t *rt, brook_ctx_t *c);

/* ---- runtime.c ---- */
void bk_runtime_destroy(brook_runtime_t *rt);
/* Frees the runtime if brook_runtime_free asked for it while it was still running. */
void bk_runtime_destroy_if_requested(brook_runtime_t *rt);

/* ---- scheduler.c: the loop side ---- */
brook_err_t bk_sched_start(brook_runtime_t *rt, uv_loop_t *loop);
/* Operator life cycle (also used by the test driver). */
brook_err_t bk_open_operators(brook_runtime_t *rt);
void bk_close_operators(brook_runtime_t *rt);
/* Calls `fn` on every operator in topological order, delivering what each emits; stops at
 * the first failure (recorded in rt->status). */
void bk_for_each_operator(brook_runtime_t *rt, brook_err_t (*fn)(brook_ctx_t *, void *state));
/* The same for one operator instance, without releasing the batch arena (a task closing in a
 * rebalance callback may run while a source batch still holds arena memory). */
void bk_call_operator(brook_runtime_t *rt, brook_ctx_t *c,
                      brook_err_t (*fn)(brook_ctx_t *, void *state));
/* Runs the instance's open(); a failure is recorded in rt->status and returned. */
brook_err_t bk_open_operator(brook_runtime_t *rt, brook_ctx_t *c);
brook_err_t bk_call_end_of_input(brook_ctx_t *c, void *state);
brook_err_t bk_call_flush(brook_ctx_t *c, void *state);

/* ---- task.c: one instance of the partitioned part of the DAG per input partition ---- */
/* Marks the nodes that run once per task: those fed only by partitioned sources (or by
 * other per-task nodes), up to the first re-keying (key_by), sinks excluded. */
brook_err_t bk_tasks_plan(brook_runtime_t *rt);
/* Closes every task (the runtime is closing): SUSPENDED then CLOSED with `reason`, without
 * flushing (a finished run has committed already; a failed one must not flush). */
void bk_tasks_close_all(brook_runtime_t *rt, const char *reason);
void bk_tasks_free(brook_runtime_t *rt);
/* Sets what restores a task's state in RESTORING (task.c): called with its operators open
 * (their stores exist, empty); an error fails the run and the task closes. NULL: nothing to
 * restore. */
typedef brook_err_t (*bk_task_restore_fn)(brook_runtime_t *rt, bk_task_t *t, void *opaque);
void bk_tasks_set_restorer(brook_runtime_t *rt, bk_task_restore_fn fn, void *opaque);
void bk_src_leave_task(bk_src_t *src);

static inline bk_task_t *bk_task_find(const brook_runtime_t *rt, int32_t id) {
  return id >= 0 && (size_t)id < rt->n_task_ids ? rt->task_by_id[id] : NULL;
}

/* The instances of plan node `i`: one per open task for per-task nodes, else the
 * process-wide one. */
static inline size_t bk_inst_count(const brook_runtime_t *rt, size_t i) {
  return rt->per_task && rt->per_task[i] ? rt->n_tasks : 1;
}
static inline brook_ctx_t *bk_inst_at(const brook_runtime_t *rt, size_t i, size_t k) {
  return rt->per_task && rt->per_task[i] ? &rt->tasks[k]->insts[i] : &rt->insts[i];
}

/* ---- sources ---- */
static inline bk_port_t *bk_src_port(bk_src_t *src) { return &src->ctx->ports[0]; }
/* Delivers an array of records produced by a source without copying. */
brook_err_t bk_src_emit_array(bk_src_t *src, brook_record_t *recs, size_t n);

#endif
