/* The runtime: runs a topology on a libuv loop, either its own (brook_runtime_run) or the
 * application's (brook_runtime_start), in bounded slices so other handles on that loop keep
 * firing.
 *
 * Threading: every function here runs on the thread that drives the runtime's loop, except
 * brook_runtime_stop() (any thread, and async-signal-safe) and the push functions in
 * source.h (any thread). Several runtimes may live in one process; none shares state. */
#ifndef BROOK_RUNTIME_H
#define BROOK_RUNTIME_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>
#include <brook/source.h>
#include <brook/task.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_runtime brook_runtime_t;

/* Called on the loop thread once the runtime has finished (all sources ended, stopped, or
 * failed) and has closed all its handles: the loop holds nothing of brook any more.
 * `status` is BROOK_OK or the error that failed the pipeline. The runtime may be freed
 * from inside this callback. */
typedef void (*brook_done_cb)(brook_runtime_t *rt, brook_err_t status, void *opaque);

/* Receives the library's log messages (it never prints). level: BROOK_LOG_* (operator.h). */
typedef void (*brook_log_cb)(int level, const char *msg, void *opaque);

typedef struct brook_runtime_opts {
  uint32_t struct_size; /* set by brook_runtime_opts_init() */
  size_t batch_size;    /* records per batch; default 1024 */
  uint64_t slice_us;    /* max processing time before yielding to the loop; default 1000 */
  brook_done_cb on_done;
  void *on_done_opaque;
  brook_log_cb log;
  void *log_opaque;
  /* Appended (a caller whose struct_size ends before a field gets its default): */
  /* Workers: execution contexts, each with a loop and a thread of its own (worker 0 runs on
   * the thread of brook_runtime_run, or on the application's loop with brook_runtime_start).
   * Splittable sources spread their splits over them (split k on worker k % num_workers);
   * records cross workers only after a key_by, to the worker owning the key. Default 1. A
   * Kafka source runs a consumer per worker in its group (the group spreads the partitions)
   * and each worker has its own producer; a key_by downstream of it crosses a repartition
   * topic (README, "Repartition topics"), with any number of workers. A line sink fed by a
   * Kafka source needs 1 in this version (brook_runtime_new refuses more with
   * BROOK_ERR_INVALID_ARG, naming the node). */
  size_t num_workers;
  /* How often a commit runs (README, "Commits"): operators' flush(), stores' changes to their
   * listeners, then every sink's outputs acknowledged, then the sources' input positions
   * committed (Kafka offsets). Also at stop, at the end and when a partition is revoked.
   * Default 1000 (0 also means the default); negative is refused. It replaces the Kafka
   * source's own commit_interval_ms, which is ignored. */
  int64_t commit_interval_ms;
  /* Optional: every task state change (task.h), on the loop thread. */
  brook_task_state_cb on_task_state;
  void *on_task_state_opaque;
  /* Durable state (README, "State on disk"). NULL (the default): operator state lives in
   * memory and is lost when the process ends. Else a directory (created if missing) where
   * every task keeps its state in a RocksDB database of its own, <state_dir>/<task>/ (task
   * "0_3": sub-topology 0, partition 3, like Kafka Streams), written at each commit in one
   * atomic batch with the input positions it covers; a restart on the same directory resumes
   * from there. Stores opened with the default backend and operators' built-in state live
   * there; every stateful node then needs a name of its own (brook_runtime_new refuses a
   * generated one: state is found again by name). Copied. One process at a time per task
   * directory (RocksDB's lock: a second one fails with BROOK_ERR_IO naming the directory). */
  const char *state_dir;
  /* Bytes of write cache in front of each store on disk (updates between commits collapse
   * there; a full cache forces an early commit). 0: 16 MiB. Ignored without state_dir. */
  size_t state_cache_bytes;
  /* Changelogs (README, "Changelogs"; appended in issue 13). 1: in a Kafka pipeline (a Kafka
   * source with a group), every store of a task (and its timers) not opened with
   * changelog_disabled is written at each commit to `<group>-<node>-<store>-changelog`,
   * partition = the task's partition, and a task restores its stores from there before it
   * processes input (RESTORING, in slices on its worker's loop). The topics are created if
   * missing (or checked: a partition count that does not match the input's is an error naming
   * the topic). 0 (the default in this version): not logged; state lives as long as the
   * process (or on disk with state_dir). */
  int changelogs;
  /* Optional: the restore's progress, per store of a task (on the task's worker's thread).
   * Borrowed: must outlive the runtime. NULL: none. */
  const struct brook_restore_listener *restore_listener;
} brook_runtime_opts_t;

/* A task's restore from its changelogs (runtime option changelogs), reported per store. Each
 * callback is optional; `task` is on_task_state's id, `store` "<node>/<store>" (the timers of
 * a node are its store "timers"); strings are borrowed for the call. Called on the loop thread
 * of the task's worker; they must not call into the runtime except brook_runtime_stop. */
typedef struct brook_restore_listener {
  /* The store's restore begins: `to_restore` records at most (the changelog partition's end
   * minus the start offset; compaction and dead epochs make it fewer). */
  void (*on_start)(int32_t task, const char *store, uint64_t to_restore, void *opaque);
  /* A slice restored `batch` records of the store, `total` so far. */
  void (*on_batch)(int32_t task, const char *store, uint64_t batch, uint64_t total, void *opaque);
  /* The store is restored: `total` records applied out of `read` read, in `ms` milliseconds. */
  void (*on_end)(int32_t task, const char *store, uint64_t total, uint64_t read, uint64_t ms,
                 void *opaque);
  void *opaque;
} brook_restore_listener_t;

BROOK_API void brook_runtime_opts_init_size(brook_runtime_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_runtime_opts_init(brook_runtime_opts_t *opts) {
  brook_runtime_opts_init_size(opts, sizeof(*opts));
}

/* Builds a runtime for `t`: validates it (build errors, cycles, dangling streams) and
 * freezes it. `t` is borrowed but kept alive by the runtime (the topology's memory outlives
 * brook_topology_free until the runtime is freed). `opts` may be NULL; copied.
 * On error *out is NULL and brook_topology_last_error(t) says why (BROOK_ERR_INVALID_ARG
 * for an opts struct_size that is no version of brook_runtime_opts_t). A topology that runs
 * but cannot do what it says (an error stream no policy feeds) gets a BROOK_LOG_WARN
 * through opts->log, from this call, on the calling thread. */
BROOK_API brook_err_t brook_runtime_new(brook_runtime_t **out, brook_topology_t *t,
                                        const brook_runtime_opts_t *opts);

/* Runs on a loop of its own until every source has ended or brook_runtime_stop() is called,
 * then drains, flushes the sinks and closes. Returns BROOK_OK or the error that failed the
 * pipeline (message: brook_runtime_last_error). A runtime runs once: BROOK_ERR_STATE if it
 * was already started. */
BROOK_API brook_err_t brook_runtime_run(brook_runtime_t *rt);

/* Attaches to the application's `loop` and returns at once; the pipeline then runs as the
 * application runs its loop, in slices of at most opts.slice_us. When it has finished,
 * opts.on_done is called. Returns BROOK_ERR_STATE if already started. */
/* `loop` is a libuv uv_loop_t (declared here by its struct tag so that this header does not
 * pull in <uv.h> and its POSIX requirements). */
struct uv_loop_s;
BROOK_API brook_err_t brook_runtime_start(brook_runtime_t *rt, struct uv_loop_s *loop);

/* Asks the runtime to stop: sources stop taking new input, records already accepted
 * (including queued pushes) are processed, sinks are flushed, then the runtime finishes.
 * Any thread; async-signal-safe (a signal handler may call it). Idempotent. */
BROOK_API void brook_runtime_stop(brook_runtime_t *rt);

/* 1 once the runtime has finished (on_done has run or run() returned), else 0. */
BROOK_API int brook_runtime_done(const brook_runtime_t *rt);

/* The final status (BROOK_OK while running or on success). */
BROOK_API brook_err_t brook_runtime_status(const brook_runtime_t *rt);

/* A message about the most recent error, "" if none. Valid until the next call on `rt`. */
BROOK_API const char *brook_runtime_last_error(const brook_runtime_t *rt);

/* The push-source handle named `name`, or NULL if there is none. Borrowed: valid until the
 * runtime is freed. */
BROOK_API brook_push_source_t *brook_runtime_push_source(brook_runtime_t *rt, const char *name);

/* The handle of split `split` (0 .. opts.splits - 1) of the push source named `name`, or
 * NULL if there is no such source or split. Each split is a queue of its own, processed by
 * worker split % num_workers: one per producer thread keeps that producer's order and lets
 * the workers share the load. Borrowed: valid until the runtime is freed. Any thread. */
BROOK_API brook_push_source_t *brook_runtime_push_source_split(brook_runtime_t *rt,
                                                               const char *name, size_t split);

typedef struct brook_runtime_stats {
  uint32_t struct_size;           /* set by the caller: sizeof(brook_runtime_stats_t) */
  uint64_t records_in;            /* records produced by sources */
  uint64_t records_out;           /* records delivered to sinks (not counting error-stream sinks) */
  uint64_t records_skipped;       /* failed records dropped by BROOK_ON_ERROR_SKIP */
  uint64_t records_routed;        /* failed records sent to the error stream */
  uint64_t batches;               /* source batches processed */
  uint64_t slices;                /* times the runtime yielded back to the loop */
  uint64_t timers_fired;          /* event- and processing-time timers that fired */
  uint64_t records_late;          /* late records dropped by window operators (not routed) */
  uint64_t state_bytes;           /* memory held by operator state now: every keyed store
                                     (brook_store_memory) plus the built-in windows' buckets */
  uint64_t records_dead_lettered; /* records sent to a Kafka dead-letter topic (malformed
                                     input, or output the brokers refused) */
  uint64_t tasks_opened;          /* per-partition tasks created on assignment (operator.h) */
  uint64_t tasks_closed;          /* ... and closed on revocation or at the end */
  /* Appended (a caller whose struct_size ends before a field does not get it): */
  uint64_t records_out_of_bounds;    /* records whose event time was outside the source's
                                        timestamp bounds (time.h): malformed, never moved a
                                        watermark, then skipped, dead-lettered or routed */
  uint64_t records_behind_watermark; /* records that arrived at or behind their split's
                                        watermark: late for every window fed only by that
                                        split (a mass of them is logged, time.h) */
  uint64_t commits;                  /* commits completed (runtime opts commit_interval_ms):
                                        each ran every operator's flush() once */
  uint64_t revocations;              /* partitions revoked by rebalances whose tasks were handed
                                        over after their outputs were acknowledged (kafka.h,
                                        revoke_timeout_ms) */
  uint64_t revocations_timed_out;    /* ... and revoked partitions handed over at the timeout, with
                                        outputs still unacknowledged (their offsets not committed
                                        past the last commit) */
  /* State on disk (runtime option state_dir; appended in issue 13): */
  uint64_t state_commits;         /* commits that wrote task databases (their state with the input
                                     positions it covers): the runtime's commits that wrote any,
                                     plus one per task handed over (revoked, or its split ended) */
  uint64_t state_writes;          /* task database writes (one per task per such commit) */
  uint64_t state_bytes_written;   /* bytes of those atomic write batches */
  uint64_t state_entries_written; /* entries in them: changed keys (each written once however
                                     often it changed between commits), deletes, bookkeeping */
  /* Changelogs (runtime option changelogs; appended in issue 13): */
  uint64_t changelog_records; /* store changes written to changelogs (one per key changed
                                 since the previous commit; deletes as tombstones), including
                                 a new owner's compensation records; per records_in: the
                                 changelog records per input record */
  uint64_t changelog_markers; /* commit markers written (one per logged store per commit) */
  uint64_t tasks_restored;    /* tasks that went through a changelog restore */
  uint64_t restored_records;  /* changelog records applied to stores by restores */
  uint64_t restore_ms;        /* milliseconds tasks spent RESTORING (summed over tasks) */
  /* Repartition topics (appended in issue 13; README "Repartition topics"): */
  uint64_t repartition_replays_dropped;      /* records read from a repartition topic at or
                                                below the last position applied of their
                                                upstream stream: written again by a replay of
                                                the upstream input, dropped */
  uint64_t repartition_records_unpositioned; /* records written to a repartition topic without
                                                a position (not traced to an input message:
                                                emitted by a timer, or built by a callback
                                                without the input's headers): applied by the
                                                reader whatever came before, at least once */
} brook_runtime_stats_t;

/* Copies the counters into `stats`, as far as the caller's version of the struct goes
 * (stats->struct_size: sizeof(brook_runtime_stats_t) of the header it was compiled with).
 * BROOK_ERR_INVALID_ARG for NULL, or a struct_size that is no version of the struct
 * (brook_runtime_last_error says so, unless the run already failed: its message is kept).
 * Loop thread, or after the runtime finished. */
BROOK_API brook_err_t brook_runtime_stats(const brook_runtime_t *rt, brook_runtime_stats_t *stats);

/* Frees the runtime. NULL is a no-op. If it is still attached to a loop and running, it is
 * stopped and its memory is released after it has closed its handles (before on_done's
 * point, no callback is called after this). */
BROOK_API void brook_runtime_free(brook_runtime_t *rt);

#ifdef __cplusplus
}
#endif
#endif
