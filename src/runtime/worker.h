/* A worker: one execution context of a runtime, with its own libuv loop (or the
 * application's, for worker 0 in attach mode), its own instances of the nodes, its tasks,
 * its batch arena, stats, delivery epochs and error state. With N workers each runs on its
 * own thread; everything here is touched only by the worker's thread, except `async`
 * (bk_worker_wake, any thread) and what the runtime reads after the worker has finished.
 * The runtime (runtime_impl.h) keeps what workers share: topology, plan, options, the
 * first failure and the stop flag. */
#ifndef BROOK_RUNTIME_WORKER_H
#define BROOK_RUNTIME_WORKER_H

#include <stdatomic.h>
#include <stddef.h>

#include <uv.h>

#include <brook/runtime.h>

#include "core/arena.h"
#include "core/context.h"
#include "runtime/commit.h"
#include "runtime/delivery.h"

typedef struct bk_src bk_src_t;
typedef struct bk_xchg_worker bk_xchg_worker_t;

typedef enum bk_rt_state {
  BK_RT_NEW,
  BK_RT_RUNNING,
  BK_RT_DRAINING, /* stop requested: sources finish what they accepted */
  BK_RT_FLUSHING, /* input is over: waiting for asynchronous deliveries (delivery.h) */
  BK_RT_CLOSING,  /* waiting for handle close callbacks */
  BK_RT_DONE
} bk_rt_state_t;

typedef struct bk_worker {
  brook_runtime_t *rt;
  size_t index;
  brook_ctx_t *insts; /* indexed like plan.order; this worker's process-wide instances */
  /* Tasks (task.c): the nodes that keep a partitioned source's partitioning (rt->per_task)
   * get one instance per input partition, opened on assignment and closed on revocation. */
  struct bk_task **tasks; /* open tasks */
  size_t n_tasks, cap_tasks;
  struct bk_task **task_by_id; /* task id (partition) -> open task or NULL */
  size_t n_task_ids;
  brook_ctx_t *errors_inst;
  bk_src_t *sources; /* this worker's instance of every source (some may have no split) */
  size_t n_sources;
  size_t next_source;  /* round-robin start */
  bk_src_t *batch_src; /* the source whose batch is being processed (NULL: none) */
  bk_arena_t arena;
  brook_time_t now_ms;

  uv_timer_t clock;       /* fires processing-time timers and watermark ticks */
  brook_time_t clock_due; /* when `clock` is armed for; BROOK_TIME_MAX = not armed */
  int clock_open;

  uv_loop_t own_loop;
  int own_loop_open;
  uv_loop_t *loop;
  uv_idle_t idle;
  uv_async_t async;
  int idle_active;
  int holds; /* close callbacks and requests still outstanding */
  uv_thread_t thread;
  int thread_started;

  bk_rt_state_t state;
  atomic_int async_live; /* async may be sent to */
  atomic_int senders;    /* threads inside bk_worker_wake */

  int error_depth;                 /* > 0 while error-stream records are being delivered */
  brook_ctx_t *failed_ctx;         /* the operator whose own failure set status, while unwinding */
  brook_runtime_stats_t stats;     /* written by the worker only */
  brook_runtime_stats_t published; /* with N workers: a copy for readers (published_lock) */
  atomic_flag published_lock;
  bk_delivery_t delivery;     /* asynchronous sink writes by source-batch epoch */
  bk_commit_t commit;         /* commit.c: this worker's commits */
  void *slots[BK_SLOT_COUNT]; /* services.h: what a source/sink layer shares per worker */
  void (*slot_closers[BK_SLOT_COUNT])(bk_worker_t *w); /* services.h: at the run's end */

  bk_xchg_worker_t *xchg; /* exchange.c: rings to and from the other workers (NULL: none) */

  /* task_restore.c: the changelog layer's hooks (runtime/task_log.h), and the tasks RESTORING
   * (not in `tasks` yet: nothing iterates them but the restore's slices). */
  const struct bk_task_log_vt *log_vt;
  void *log_layer;
  struct bk_task **restoring;
  size_t n_restoring, cap_restoring;
  uv_timer_t restore_timer; /* runs the restores' slices while any task restores */
  int restore_timer_open;
} bk_worker_t;

/* ---- worker.c ---- */
/* Sets up worker `index` of `rt` (no loop yet). */
void bk_worker_init(bk_worker_t *w, brook_runtime_t *rt, size_t index);
/* Frees what bk_worker_init and the runtime built in it (after it finished or never ran). */
void bk_worker_free(bk_worker_t *w);
/* The services operators reach through their context (core/context.h). */
extern const bk_ctx_services_t bk_worker_services;

/* Publishes the worker's stats for brook_runtime_stats (N workers; worker thread). */
void bk_worker_publish_stats(bk_worker_t *w);
/* The runtime's stats: the sum over workers (brook_runtime_stats). */
void bk_runtime_stats_sum(const brook_runtime_t *rt, brook_runtime_stats_t *out);

/* ---- scheduler.c ---- */
/* bk_worker_wake, _close_handle, _hold, _release and _poke: services.h. */

#endif
