/* Sources: where records enter a pipeline. Each returns its output stream, or NULL on error
 * (recorded in the topology). `name` is copied; it names the source in errors and stats and
 * must be unique (NULL = "<kind>#<n>"). */
#ifndef BROOK_SOURCE_H
#define BROOK_SOURCE_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/operator.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- generator: a user callback fills records ---- */

/* Fills *out with the next record and returns BROOK_OK, or returns BROOK_DONE when there are
 * no more (that split then ends), or a negative error (fails the pipeline). *out starts
 * zeroed. Bytes must come from brook_ctx_alloc(ctx, ...) or outlive the runtime. It must not
 * emit (brook_emit* on ctx returns BROOK_ERR_STATE, and the run fails at the end of the
 * batch: *out is the only way out). Runs on the thread of the worker that runs the split:
 * with `splits` > 1 and several workers, the callback runs on several threads at once (with
 * the same `opaque`); brook_ctx_split(ctx) says which split it is filling. */
typedef brook_err_t (*brook_generator_fn)(brook_record_t *out, brook_ctx_t *ctx, void *opaque);

typedef struct brook_generator_opts {
  uint32_t struct_size; /* set by brook_generator_opts_init() */
  uint64_t limit;       /* stop after this many records; 0 = until BROOK_DONE (default) */
  /* Appended (issue 12): */
  /* Independent splits of the generator, spread over the runtime's workers (split k on
   * worker k % num_workers); each ends on its own. With a limit, split k produces
   * limit / splits records, plus one for k < limit % splits. Default 1. */
  size_t splits;
  /* Appended (issue 12): */
  /* 1: the splits are partitioned by key, like the partitions of a topic a Kafka producer
   * keyed: split k produces only records whose key has brook_key_split(key, key_len, splits)
   * == k. The source is then a partitioned source (like Kafka's): each split is a task
   * (task id = split number, created and opened when the split produces its first batch;
   * when the split ends its watermark goes to the maximum, so its windows fire, and its task
   * is flushed and closed; on a stop or failure it closes with the run; each change is
   * reported to on_task_state), and the operators after it up to the first key change run
   * once per task, on the split's worker, with the task's own state (operator.h, "Tasks"): a
   * keyed aggregate or window needs no key_by and records never cross workers.
   * brook_topology_describe() shows it. Thread: as the callback (the split's worker).
   * Verified, not trusted: a record whose key belongs to another split is malformed input
   * and follows the topology's error policy with BROOK_ERR_INVALID_ARG (FAIL: the run fails
   * with a message naming the source, the split and the key's length; SKIP: dropped and
   * counted in records_skipped; ROUTE: to the error stream, e.g. a dead-letter topic). The
   * check costs one murmur2 hash per record (none with one split). A NULL key is the empty
   * key. Default 0 (records of any key in any split). */
  int partitioned_by_key;
} brook_generator_opts_t;

BROOK_API void brook_generator_opts_init_size(brook_generator_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_generator_opts_init(brook_generator_opts_t *opts) {
  brook_generator_opts_init_size(opts, sizeof(*opts));
}

/* The split a generator callback is filling, 0..brook_ctx_split_count(ctx) - 1 (0 outside
 * a splittable source's callback). Worker thread. */
BROOK_API size_t brook_ctx_split(const brook_ctx_t *ctx);
BROOK_API size_t brook_ctx_split_count(const brook_ctx_t *ctx);

/* `opts` may be NULL (defaults); copied. `opaque` is borrowed. */
BROOK_API brook_stream_t *brook_source_generator(brook_topology_t *t, const char *name,
                                                 brook_generator_fn fn, void *opaque,
                                                 const brook_generator_opts_t *opts);

/* The split (task, partition) that owns `key` among `n`: (murmur2(key) & 0x7fffffff) % n,
 * the partition Kafka's default partitioner (and librdkafka's "murmur2") picks for a keyed
 * record in a topic of n partitions, and the task a key_by sends the key to. `key` (borrowed
 * for the call) may be NULL when key_len is 0: the empty key. Returns 0 if n is 0. No state;
 * any thread. */
BROOK_API uint32_t brook_key_split(const void *key, size_t key_len, uint32_t n);

/* ---- lines: one record per line of a file or of standard input ---- */

typedef struct brook_lines_opts {
  uint32_t struct_size; /* set by brook_lines_opts_init() */
  size_t max_line;      /* longer lines follow the error policy (BROOK_ERR_TOO_LARGE), the
                           record carrying the first max_line bytes; default 1 MiB */
  size_t read_size;     /* bytes per read; default 256 KiB */
  int keep_cr;          /* keep a trailing '\r'; default 0 (stripped) */
} brook_lines_opts_t;

BROOK_API void brook_lines_opts_init_size(brook_lines_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_lines_opts_init(brook_lines_opts_t *opts) {
  brook_lines_opts_init_size(opts, sizeof(*opts));
}

/* Reads `path` (copied; NULL or "-" = standard input, which may be a file, pipe or tty).
 * Each record: value = the line without its '\n', no key, timestamp = wall-clock time the
 * batch was read (ingestion time). The source ends at end of file. */
BROOK_API brook_stream_t *brook_source_lines(brook_topology_t *t, const char *name,
                                             const char *path, const brook_lines_opts_t *opts);

/* ---- push: the application pushes records from any thread ---- */

typedef struct brook_push_source brook_push_source_t;

typedef struct brook_push_opts {
  uint32_t struct_size; /* set by brook_push_opts_init() */
  size_t max_records;   /* bound on records queued or being processed; default 65536 */
  size_t max_bytes;     /* bound on their key+value+header bytes; default 16 MiB */
  /* Optional: called on the loop thread when credit becomes available again after a push
   * was refused with BROOK_ERR_FULL (to resume a paused producer on the same loop). */
  void (*on_credit)(brook_push_source_t *src, void *opaque);
  void *on_credit_opaque;
  /* Appended (issue 12): */
  /* Independent splits, each a queue of its own with its own bounds (max_records and
   * max_bytes apply per split), spread over the runtime's workers (split k on worker
   * k % num_workers): give each producer thread its split (brook_runtime_push_source_split),
   * or choose the split from the key. Order is kept within a split. The source ends when
   * every split has ended (brook_push_end on each). Default 1. */
  size_t splits;
  /* Appended (issue 12): */
  /* 1: the splits are partitioned by key: a record pushed into split k must have
   * brook_key_split(key, key_len, splits) == k (push each record into the split of its key:
   * brook_runtime_push_source_split(rt, name, brook_key_split(...))). As for the generator's
   * partitioned_by_key: each split is a task (created when its first records are processed,
   * flushed and closed once the split has ended and is drained, its windows fired), the
   * operators after the source up to the first key change run per task with no exchange,
   * and a record in the wrong split is malformed input that follows the error policy
   * (checked on the worker's loop thread, not in brook_push, so the push still succeeds).
   * Default 0. */
  int partitioned_by_key;
} brook_push_opts_t;

BROOK_API void brook_push_opts_init_size(brook_push_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_push_opts_init(brook_push_opts_t *opts) {
  brook_push_opts_init_size(opts, sizeof(*opts));
}

/* Declares a push source. The handle to push into exists per runtime and split:
 * brook_runtime_push_source(rt, name) (split 0), brook_runtime_push_source_split(rt, name,
 * k). `name` is required. */
BROOK_API brook_stream_t *brook_source_push(brook_topology_t *t, const char *name,
                                            const brook_push_opts_t *opts);

/* Pushes a copy of `rec` (key, value, headers copied). Never blocks. Returns BROOK_OK;
 * BROOK_ERR_FULL when the queue bound is reached (nothing was queued: retry when
 * brook_push_credit() > 0, after on_credit, or use brook_push_wait); BROOK_ERR_TOO_LARGE if
 * the record alone exceeds max_bytes; BROOK_ERR_STOPPED after brook_push_end() or once the
 * runtime is stopping (from the moment brook_runtime_stop returns); BROOK_ERR_NOMEM.
 * Thread-safe: any thread, concurrently. */
BROOK_API brook_err_t brook_push(brook_push_source_t *src, const brook_record_t *rec);

/* Like brook_push but waits up to `timeout_ms` (< 0, or more than the monotonic clock can
 * count, about 584 years: forever) for credit. Returns
 * BROOK_ERR_TIMEOUT if none came. Must not be called on the runtime's loop thread (it would
 * wait for itself). Thread-safe. */
BROOK_API brook_err_t brook_push_wait(brook_push_source_t *src, const brook_record_t *rec,
                                      int64_t timeout_ms);

/* How many records could be pushed right now (0 = no credit): the record bound minus the
 * records queued or being processed. A record also needs byte credit (max_bytes), so a push
 * can still be refused with BROOK_ERR_FULL when the queued bytes are near their bound. 0 once
 * the source ended or the runtime is stopping. Thread-safe. */
BROOK_API size_t brook_push_credit(brook_push_source_t *src);

/* Ends the source: records already queued are still processed, further pushes fail with
 * BROOK_ERR_STOPPED. Idempotent. Thread-safe.
 *
 * Lifetime: a push handle dies with its runtime. Every producer thread must have returned
 * from its last push call before brook_runtime_free (join producers, e.g. in on_done). */
BROOK_API brook_err_t brook_push_end(brook_push_source_t *src);

#ifdef __cplusplus
}
#endif
#endif
