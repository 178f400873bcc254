/* The runtime's services for source and sink implementations outside runtime/ (the Kafka
 * layer): everything such a file may ask of the runtime, as small functions, so it never
 * needs the runtime's internals (runtime_impl.h) and the runtime may change how it keeps them
 * (per worker, say) without touching it. Sources implement bk_source_vt_t; sinks are
 * operators (operator.h) that may count asynchronous writes as deliveries.
 *
 * Everything here runs on the loop thread of the runtime (or, for a source, of the worker
 * running it) unless it says otherwise. */
#ifndef BROOK_RUNTIME_SERVICES_H
#define BROOK_RUNTIME_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/runtime.h>
#include <brook/task.h>

#include "core/context.h"
#include "time/watermark.h"

typedef struct bk_src bk_src_t;

/* Where a record came from: the input message behind it (runtime-owned strings valid while
 * the source's batch is processed). */
typedef struct bk_origin {
  const char *topic;
  int32_t partition;
  int64_t offset;
} bk_origin_t;

/* A source kind's runtime side (the bk_source_type_t's runtime_vt). Runs on the loop thread
 * except create/destroy, which run where the runtime is created and freed. */
typedef struct bk_source_vt {
  brook_err_t (*create)(bk_src_t *src);
  /* Acquires synchronous resources (opens files); no loop handles yet. On failure it must
   * leave nothing behind: the runtime then fails to start cleanly. */
  brook_err_t (*start)(bk_src_t *src);
  /* Opens handles on the loop and marks the source ready (bk_sched_ready) when data is
   * available. A failure here is reported through the runtime's status. */
  brook_err_t (*attach)(bk_src_t *src);
  /* Optional: the runtime's async handle fired (another thread may have queued data). */
  void (*on_wake)(bk_src_t *src);
  /* Emits at most one batch (bk_src_port(src) or bk_src_emit_array). Returns BROOK_OK,
   * BROOK_DONE when the source has ended (it may have emitted records too), or an error. */
  brook_err_t (*produce)(bk_src_t *src);
  /* The batch has passed through the pipeline: its memory may be reused. */
  void (*batch_done)(bk_src_t *src);
  /* A stop was requested: take no new input; end once what was accepted is processed. */
  void (*stop)(bk_src_t *src);
  /* Close handles with bk_runtime_close_handle / release holds. Called once, after start
   * succeeded (whether or not attach ran). */
  void (*close)(bk_src_t *src);
  void (*destroy)(bk_src_t *src);
  /* Optional, while its batch is processed: the input message that `rec`, a record of the
   * batch or one derived from it, comes from. 1 and *out filled, or 0 if it cannot tell.
   * Costs nothing until asked: it runs only for records that fail. */
  int (*origin)(bk_src_t *src, const brook_record_t *rec, bk_origin_t *out);
  /* Optional: how many splits the source's configuration has (the generator's and the push
   * source's `splits`); worker k runs splits k, k + n_workers, ... NULL: the source cannot be
   * split and runs on worker 0 only (files, Kafka today). */
  size_t (*split_count)(const void *cfg);
} bk_source_vt_t;

/* ---- the runtime ---- */

const brook_allocator_t *bk_rt_alloc(brook_runtime_t *rt);
/* The loop, or NULL before start and in the test driver (no loop: nothing asynchronous). */
uv_loop_t *bk_rt_loop(const brook_runtime_t *rt);
/* BROOK_OK, or the error that failed the run. */
brook_err_t bk_rt_status(const brook_runtime_t *rt);
/* The runtime's processing time now (ms), as its operators see it. */
brook_time_t bk_rt_now(const brook_runtime_t *rt);
brook_time_t bk_wallclock_ms(void);
/* Whether a logger is set (to skip building a message nobody reads), and a message to it. */
int bk_rt_logs(const brook_runtime_t *rt);
void bk_rt_log(brook_runtime_t *rt, int level, const char *msg);
/* Records `err` as the pipeline's failure unless one is already recorded. */
void bk_runtime_fail(brook_runtime_t *rt, brook_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counters of brook_runtime_stats_t a source or sink adds to. */
typedef enum bk_stat {
  BK_STAT_RECORDS_SKIPPED,
  BK_STAT_RECORDS_OUT_OF_BOUNDS,
  BK_STAT_RECORDS_DEAD_LETTERED
} bk_stat_t;
void bk_rt_count(brook_runtime_t *rt, bk_stat_t which, uint64_t n);

/* Handles and requests: finishing waits for every hold to be released. */
void bk_runtime_hold(brook_runtime_t *rt);
void bk_runtime_release(brook_runtime_t *rt);
/* Closes a handle on behalf of the runtime; finishing waits for its callback. */
void bk_runtime_close_handle(brook_runtime_t *rt, uv_handle_t *h);
/* Wakes the loop from any thread (async-signal-safe). */
void bk_runtime_wake(brook_runtime_t *rt);
/* Asks the loop to look at the runtime's state soon (a failure, deliveries that came in). */
void bk_sched_poke(brook_runtime_t *rt);

/* Per-runtime slots where a source or sink layer keeps what its instances share (the Kafka
 * layer: its producers, one client per configuration). The layer frees what it keeps there
 * before the runtime is freed (when its last user closes). Starts NULL. */
typedef enum bk_rt_slot { BK_SLOT_KAFKA_PRODUCERS, BK_SLOT_COUNT } bk_rt_slot_t;
void **bk_rt_slot(brook_runtime_t *rt, bk_rt_slot_t which);

/* ---- asynchronous deliveries (runtime/delivery.h: epochs) ---- */

/* Counts one asynchronous write against the current epoch; returns its token for
 * bk_rt_delivery_done, or 0 if memory ran out (nothing counted). */
uint64_t bk_rt_delivery_add(brook_runtime_t *rt);
/* The write counted against `epoch` completed (acknowledged, dead-lettered, or failed). */
void bk_rt_delivery_done(brook_runtime_t *rt, uint64_t epoch);
/* Writes pending over all epochs. */
uint64_t bk_rt_deliveries_pending(const brook_runtime_t *rt);
/* Whether backpressure holds the sources (too many writes pending). */
int bk_rt_delivery_held(const brook_runtime_t *rt);
/* Sources are held while `limit` or more writes are pending: the smallest limit wins. */
void bk_rt_delivery_limit(brook_runtime_t *rt, uint64_t limit);
/* Whether the records being delivered now are error-stream records (a sink's flags). */
int bk_rt_in_error_stream(const brook_runtime_t *rt);

/* ---- commits (runtime/commit.c) ---- */

/* A source's commit: the input of every batch whose delivery epoch is <= `epoch` is
 * finished (flushed from operators and stores, its outputs acknowledged) and may be
 * committed. `final` is set for the commit a stop or the end of the run asked for. */
typedef void (*bk_commit_fn)(void *opaque, uint64_t epoch, int final);
/* Registers a source's commit; called at every completed commit. BROOK_ERR_NOMEM. */
brook_err_t bk_commit_register(brook_runtime_t *rt, bk_commit_fn fn, void *opaque);
/* The delivery epoch of the batch being processed (a source queues its batch's end by it). */
uint64_t bk_rt_batch_epoch(const brook_runtime_t *rt);
/* Asks for a commit as soon as the loop gets to it (a stop: `final`). Never runs it here. */
void bk_commit_request(brook_runtime_t *rt, int final);

/* ---- sources ---- */

brook_runtime_t *bk_src_runtime(const bk_src_t *src);
const void *bk_src_cfg(const bk_src_t *src);
void *bk_src_impl(const bk_src_t *src);
void bk_src_set_impl(bk_src_t *src, void *impl);
/* The context records are emitted through (a task's while a batch runs in it). */
brook_ctx_t *bk_src_ctx(const bk_src_t *src);
const char *bk_src_name(const bk_src_t *src);
/* The source's output port: a batch is written into it. */
bk_port_t *bk_src_port_of(bk_src_t *src);
/* The source's per-split watermarks (time/watermark.h). */
bk_wm_gen_t *bk_src_wm(bk_src_t *src);
/* The split of the records being emitted now. */
void bk_src_set_split(bk_src_t *src, size_t split);
/* Has data now (makes sure the loop runs it), or none until it says so again. */
void bk_sched_ready(bk_src_t *src);
void bk_src_unready(bk_src_t *src);
int bk_src_is_ready(const bk_src_t *src);

/* ---- tasks (runtime/task.c; states in brook/task.h) ---- */

/* One more holder of task `id` (>= 0): the first creates it (CREATED, `reason` reported),
 * opens its operators, restores its state (RESTORING) and runs it (RUNNING). Loop thread,
 * outside a rebalance callback (operators open here). A failure is also recorded in the
 * status. */
brook_err_t bk_task_acquire(brook_runtime_t *rt, int32_t id, const char *reason);
/* Suspends a RUNNING task held once (its last holder is letting it go): its operators flush
 * (their output goes on) and its stores report their changes, then SUSPENDED (`reason`).
 * The holder then commits its input and releases it. */
void bk_task_suspend(brook_runtime_t *rt, int32_t id, const char *reason);
/* One holder fewer: the last suspends the task unless it is already (`reason`), then closes
 * it (operators closed, state and timers freed; CLOSED reported). */
void bk_task_release(brook_runtime_t *rt, int32_t id, const char *reason);
/* The task's state, or -1 if there is no such task (or nothing runs per task: then records
 * need no task and the source treats every partition as running). */
int bk_task_state(const brook_runtime_t *rt, int32_t id);
/* Whether anything runs per task (a partitioned source's pipeline has tasks). */
int bk_rt_has_tasks(const brook_runtime_t *rt);
/* Split `split` of partitioned source `src` feeds task `id` (its watermark is the task's). */
brook_err_t bk_src_split_task(bk_src_t *src, size_t split, int32_t id);
/* The records in the source's port belong to task `id`: they move to the task's instance
 * until the batch is done. Returns 0, or -1 if the task is not running (records left). */
int bk_src_enter_task(bk_src_t *src, int32_t id);

#endif
