/* The runtime's services for source and sink implementations outside runtime/ (the Kafka
 * layer): everything such a file may ask of the runtime, as small functions, so it never
 * needs the runtime's internals (runtime_impl.h) and the runtime may change how it keeps them
 * (per worker, say) without touching it. Sources implement bk_source_vt_t; sinks are
 * operators (operator.h) that may count asynchronous writes as deliveries.
 *
 * Each worker (runtime/worker.h) has its own loop, clock, stats, deliveries, commits, tasks
 * and slots: the services take the worker they act on, the one running the source or sink
 * instance that calls them, and run on that worker's loop thread unless they say otherwise. */
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
/* A worker (runtime/worker.h): the services below act on the calling worker's loop, clock,
 * stats, deliveries, commits, tasks and slots. A source reaches its own with bk_src_worker,
 * an operator (a sink) its instance's with bk_ctx_worker. */
typedef struct bk_worker bk_worker_t;

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
  /* Close handles with bk_worker_close_handle / release holds. Called once, after start
   * succeeded (whether or not attach ran). */
  void (*close)(bk_src_t *src);
  void (*destroy)(bk_src_t *src);
  /* Optional, while its batch is processed: the input message that `rec`, a record of the
   * batch or one derived from it, comes from. 1 and *out filled, or 0 if it cannot tell.
   * Costs nothing until asked: it runs only for records that fail. */
  int (*origin)(bk_src_t *src, const brook_record_t *rec, bk_origin_t *out);
  /* Optional: how many splits the source's configuration has (the generator's and the push
   * source's `splits`); worker k runs splits k, k + n_workers, ... NULL: the source cannot be
   * split: see per_worker. */
  size_t (*split_count)(const void *cfg);
  /* With split_count NULL: 1 gives every worker an instance that finds its own input (the
   * Kafka source: a consumer per worker in the group, whose assignor spreads the
   * partitions); 0 runs the source on worker 0 only. */
  int per_worker;
} bk_source_vt_t;

/* ---- the runtime and its workers ---- */

/* The runtime's workers (runtime.h, num_workers): worker i, 0 <= i < bk_rt_n_workers. For
 * what reads every worker after the run (tests); any thread once the run is over. */
size_t bk_rt_n_workers(const brook_runtime_t *rt);
bk_worker_t *bk_rt_worker(brook_runtime_t *rt, size_t i);
/* The worker's index (0 .. num_workers - 1) and the number of workers. */
size_t bk_wk_index(const bk_worker_t *w);
size_t bk_wk_count(const bk_worker_t *w);

const brook_allocator_t *bk_rt_alloc(bk_worker_t *w);
/* The loop, or NULL before start and in the test driver (no loop: nothing asynchronous). */
uv_loop_t *bk_rt_loop(const bk_worker_t *w);
/* BROOK_OK, or the error that failed the run. */
brook_err_t bk_rt_status(const bk_worker_t *w);
/* The runtime's processing time now (ms), as its operators see it. */
brook_time_t bk_rt_now(const bk_worker_t *w);
brook_time_t bk_wallclock_ms(void);
/* Whether a logger is set (to skip building a message nobody reads), and a message to it. */
int bk_rt_logs(const bk_worker_t *w);
void bk_rt_log(bk_worker_t *w, int level, const char *msg);
/* Records `err` as the pipeline's failure unless one is already recorded. */
void bk_wk_fail(bk_worker_t *w, brook_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counters of brook_runtime_stats_t a source or sink adds to. */
typedef enum bk_stat {
  BK_STAT_RECORDS_SKIPPED,
  BK_STAT_RECORDS_OUT_OF_BOUNDS,
  BK_STAT_RECORDS_DEAD_LETTERED,
  BK_STAT_REPARTITION_REPLAYS_DROPPED,
  BK_STAT_REPARTITION_UNPOSITIONED
} bk_stat_t;
void bk_rt_count(bk_worker_t *w, bk_stat_t which, uint64_t n);

/* Handles and requests (scheduler.c): finishing waits for every hold to be released. */
void bk_worker_hold(bk_worker_t *w);
void bk_worker_release(bk_worker_t *w);
/* Closes a handle on behalf of the worker; finishing waits for its callback. */
void bk_worker_close_handle(bk_worker_t *w, uv_handle_t *h);
/* Wakes the worker's loop from any thread (async-signal-safe). */
void bk_worker_wake(bk_worker_t *w);
/* Asks the worker's loop to look at its state soon (sources ended, a stop, a failure,
 * deliveries that came in). */
void bk_worker_poke(bk_worker_t *w);

/* Per-runtime slots where a source or sink layer keeps what its instances share (the Kafka
 * layer: its producers, one client per configuration; the Kafka source whose batch was read
 * last, for the repartition sinks it feeds). The layer frees what it keeps there before the
 * runtime is freed: when its last user closes, or, for what must outlive its users (a
 * producer whose records are still unacknowledged when its last user closes), in the slot's
 * closer, which the worker calls once, after its sources and operators closed, as the run
 * ends. Starts NULL. */
typedef enum bk_rt_slot {
  BK_SLOT_KAFKA_PRODUCERS,
  BK_SLOT_KAFKA_BATCH,
  BK_SLOT_COUNT
} bk_rt_slot_t;
void **bk_rt_slot(bk_worker_t *w, bk_rt_slot_t which);
void bk_rt_slot_closer(bk_worker_t *w, bk_rt_slot_t which, void (*fn)(bk_worker_t *w));

/* ---- asynchronous deliveries (runtime/delivery.h: epochs) ---- */

/* Counts one asynchronous write against the current epoch; returns its token for
 * bk_rt_delivery_done, or 0 if memory ran out (nothing counted). */
uint64_t bk_rt_delivery_add(bk_worker_t *w);
/* The write counted against `epoch` completed (acknowledged, dead-lettered, or failed). */
void bk_rt_delivery_done(bk_worker_t *w, uint64_t epoch);
/* Writes pending over all epochs. */
uint64_t bk_rt_deliveries_pending(const bk_worker_t *w);
/* Whether backpressure holds the sources (too many writes pending). */
int bk_rt_delivery_held(const bk_worker_t *w);
/* Sources are held while `limit` or more writes are pending: the smallest limit wins. */
void bk_rt_delivery_limit(bk_worker_t *w, uint64_t limit);
/* Whether the records being delivered now are error-stream records (a sink's flags). */
int bk_rt_in_error_stream(const bk_worker_t *w);

/* ---- commits (runtime/commit.c) ---- */

/* A source's commit: the input of every batch whose delivery epoch is <= `epoch` is
 * finished (flushed from operators and stores, its outputs acknowledged) and may be
 * committed. `final` is set for the commit a stop or the end of the run asked for. */
typedef void (*bk_commit_fn)(void *opaque, uint64_t epoch, int final);
/* Registers a source's commit; called at every completed commit. BROOK_ERR_NOMEM. */
brook_err_t bk_commit_register(bk_worker_t *w, bk_commit_fn fn, void *opaque);
/* The delivery epoch of the batch being processed (a source queues its batch's end by it). */
uint64_t bk_rt_batch_epoch(const bk_worker_t *w);
/* Asks for a commit as soon as the loop gets to it (a stop: `final`). Never runs it here. */
void bk_commit_request(bk_worker_t *w, int final);

/* ---- revocations (runtime/commit.c) ---- */

/* A holder giving up tasks (the Kafka source's revoked partitions), like Kafka Streams'
 * onPartitionsRevoked: once it suspended them (bk_task_suspend: flushed), outside any batch,
 * it takes a revocation point. Every other operator instance and store of the worker flushes
 * too (after a key_by, instances that serve every task may hold output of the revoked
 * input), so every output derived from their input counts against an epoch <= the point;
 * what runs afterwards counts against later epochs. */
uint64_t bk_commit_revoke_point(bk_worker_t *w);
/* Whether every delivery of an epoch <= point is acknowledged (or failed for good). */
int bk_commit_acknowledged(const bk_worker_t *w, uint64_t point);
/* Calls fn(opaque) once, when every delivery of an epoch <= point is acknowledged (never if it
 * is already: check bk_commit_acknowledged). fn runs inside the acknowledging write's
 * completion (a sink's delivery callback): it must only schedule its work (arm a timer).
 * BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_commit_watch(bk_worker_t *w, uint64_t point, void (*fn)(void *opaque), void *opaque);
/* Forgets every watch of `opaque`. */
void bk_commit_unwatch(bk_worker_t *w, void *opaque);
/* Counts `n` partitions handed over: after their outputs were acknowledged, or at the timeout
 * (brook_runtime_stats_t.revocations, revocations_timed_out). */
void bk_commit_revoked(bk_worker_t *w, uint64_t n, int timed_out);

/* The worker running an operator instance (a sink's context). */
bk_worker_t *bk_ctx_worker(const brook_ctx_t *ctx);

/* ---- sources ---- */

/* The worker running this instance of the source. */
bk_worker_t *bk_src_worker(const bk_src_t *src);
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
brook_err_t bk_task_acquire(bk_worker_t *w, int32_t id, const char *reason);
/* Suspends a RUNNING task held once (its last holder is letting it go): its operators flush
 * (their output goes on) and its stores report their changes, then SUSPENDED (`reason`).
 * The holder then commits its input and releases it. */
void bk_task_suspend(bk_worker_t *w, int32_t id, const char *reason);
/* One holder fewer: the last suspends the task unless it is already (`reason`), then closes
 * it (operators closed, state and timers freed; CLOSED reported). */
void bk_task_release(bk_worker_t *w, int32_t id, const char *reason);
/* The task's state, or -1 if there is no such task (or nothing runs per task: then records
 * need no task and the source treats every partition as running). */
int bk_task_state(const bk_worker_t *w, int32_t id);
/* Whether anything runs per task (a partitioned source's pipeline has tasks). */
int bk_rt_has_tasks(const bk_worker_t *w);
/* The id of the task of input partition `partition` of partitioned source `src`: its
 * sub-topology's task (runtime/task_ids.h; the partition itself unless several
 * sub-topologies run tasks, as with repartition topics). */
int32_t bk_src_task_id(const bk_src_t *src, int32_t partition);
/* Split `split` of partitioned source `src` feeds task `id` (its watermark is the task's). */
brook_err_t bk_src_split_task(bk_src_t *src, size_t split, int32_t id);
/* The input partition of the task whose instance `ctx` is (-1: a process-wide instance). */
int32_t bk_ctx_task_partition(const brook_ctx_t *ctx);
/* The records in the source's port belong to task `id`: they move to the task's instance
 * until the batch is done. Returns 0, or -1 if the task is not running (records left). */
int bk_src_enter_task(bk_src_t *src, int32_t id);

#endif
