/* The operator interface: how users write custom operators in C. The built-in operators
 * (map, filter, ..., sinks) are implemented on this same interface.
 *
 * Tasks: downstream of a partitioned source (Kafka), up to the first key_by, every operator
 * with outputs runs as one instance per input partition, like a Kafka Streams task: open()
 * when the partition is assigned, flush() and close() when it is revoked (or at the end),
 * with its own state, stores, timers and watermark (brook_ctx_task() says which partition).
 * This assumes the stream is partitioned by the key the operator groups by (the producer
 * keyed the input topic by it); after key_by in a Kafka pipeline, the records cross a
 * repartition topic (README, "Repartition topics") and operators run per task of its
 * partitions again; in other pipelines they run once per runtime over all partitions. Sinks
 * and every operator of other topologies run once per runtime.
 * A custom operator may change keys unless its opts declare key_preserving: a stateful
 * operator after it then repartitions by key, as after key_by (stateless.h, "Key changes");
 * a custom operator with open() or on_timer counts as stateful. A custom sink (n_outputs =
 * 0) causes no repartition, whatever it keeps: sinks run once per worker, not per task.
 *
 * Life cycle, per instance: open() once before the first record; then process() (or
 * process_batch()) for every input record; end_of_input() once all inputs have ended (a
 * bounded source is exhausted) - NOT after brook_runtime_stop(), which only drains and
 * flushes; flush() once at every commit (runtime.h: every commit_interval_ms, at stop, at
 * the end before close, and for a task when its partition is revoked; not when the runtime
 * goes idle); close() once at the end, also after a failure (then without flush). All
 * callbacks of one instance run on its worker's thread, one at a time: an operator needs no
 * locking for its own state.
 *
 * Workers (brook_runtime_opts_t.num_workers): with N workers every node has an instance per
 * worker, and the callbacks of the same node may run at the same time on different workers'
 * threads, with the same `opaque` pointer. Give each instance its own state through open()
 * (as today); whatever `opaque` points to is shared by all of them and must be thread-safe.
 * After a key_by each key is processed by exactly one instance, on the worker owning it.
 *
 * Order: an operator of your own handles a whole batch (process() for each record, or
 * process_batch()) before the operators after it see any of it, and so do the built-in
 * operators, except lines of map, filter, peek, key_by and a callback sink, which run record
 * by record (fused; see stateless.h for the lines and for which failure is met first).
 *
 * Records handed to process() are borrowed for the call (see record.h). Records emitted
 * with brook_emit() are copied as structs; the bytes they point at must live until the
 * current batch is done: point into the input record or allocate with brook_ctx_alloc().
 *
 * Version 2 adds event time: on_timer (timers registered with brook_timer_set, time.h) and
 * on_watermark; keyed state lives in stores opened in open() (state.h). The function table
 * only grows by appending: a table with version 1 is read without the version-2 fields. A
 * version this library does not know (0, or above BROOK_OPERATOR_VERSION: a table from a
 * newer brook, or garbage) is refused when the operator is added, naming the version.
 *
 * Emitting to an output the operator does not have (brook_emit_to / brook_emit_batch with
 * port >= n_outputs, or a NULL record) is a bug in the operator, not a bad record: it fails
 * the run with BROOK_ERR_INVALID_ARG and a message naming the operator and the port, under
 * every error policy (nothing is skipped or routed to the error stream), even if the
 * operator ignores the return value. Records emitted before it are still delivered. Kafka
 * Streams does the same when a processor forwards to a child it does not have (the
 * exception stops the stream thread). An operator that means to drop or divert some records
 * tests for them and returns an error for the record (the error policy applies) or emits
 * to a port it has. */
#ifndef BROOK_OPERATOR_H
#define BROOK_OPERATOR_H

#include <brook/export.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>
#include <brook/record.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_ctx brook_ctx_t;

#define BROOK_OPERATOR_VERSION 2

/* Most outputs an operator (or a branch) may have. Each output of each running instance
 * holds a buffer of batch_size records, so this also bounds that memory. */
#define BROOK_OPERATOR_MAX_OUTPUTS 1024

struct brook_timer;

typedef struct brook_operator {
  uint32_t version;      /* BROOK_OPERATOR_VERSION */
  const char *type_name; /* e.g. "dedupe"; used for default node names. Static string. */

  /* Optional. Creates per-runtime state in *state (passed to every other callback).
   * `opaque` is the pointer given to brook_operator_add. */
  brook_err_t (*open)(brook_ctx_t *ctx, void *opaque, void **state);

  /* Required (unless process_batch is set). One input record. Returning an error applies the
   * topology's error policy to `rec`. */
  brook_err_t (*process)(brook_ctx_t *ctx, void *state, const brook_record_t *rec);

  /* Optional, faster path: `n` records of one input at once. Per-record failures inside must
   * be reported with brook_ctx_fail_record(); returning an error fails the pipeline. */
  brook_err_t (*process_batch)(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n);

  /* Optional. All inputs have ended: emit any final results. */
  brook_err_t (*end_of_input)(brook_ctx_t *ctx, void *state);

  /* Optional. Make everything received so far visible/durable (write buffers out). Runs at
   * every commit: what it emits is delivered before the commit's input positions. */
  brook_err_t (*flush)(brook_ctx_t *ctx, void *state);

  /* Optional. Release `state`. Called exactly once per successful open(). */
  void (*close)(void *state, void *opaque);

  /* ---- version 2 ---- */

  /* Required to use timers. A timer registered with brook_timer_set fired; records emitted
   * here go downstream before the watermark that fired it. Returning an error fails the
   * pipeline. */
  brook_err_t (*on_timer)(brook_ctx_t *ctx, void *state, const struct brook_timer *timer);

  /* Optional. The operator's watermark advanced to `watermark` (after the event-time timers
   * up to it fired). Returning an error fails the pipeline. */
  brook_err_t (*on_watermark)(brook_ctx_t *ctx, void *state, brook_time_t watermark);
} brook_operator_t;

typedef struct brook_operator_opts {
  uint32_t struct_size;      /* set by brook_operator_opts_init() */
  const char *name;          /* copied; NULL = "<type_name>#<n>" */
  const char *const *config; /* NULL or NULL-terminated key, value, key, value ...; copied */
  size_t n_outputs; /* output streams, 0..BROOK_OPERATOR_MAX_OUTPUTS (0 = a sink); default 1 */
  /* 1: every record the operator emits carries the key of the input record it came from
   * (like map_values; see stateless.h, "Key changes"). Default 0: the operator may change
   * keys, so a stateful operator after it (with no key_by in between) repartitions its output
   * by key, as Kafka Streams does after process(). Declaring 1 for an operator that does
   * change keys gives stateful operators after it one partial result per input partition. */
  int key_preserving;
} brook_operator_opts_t;

BROOK_API void brook_operator_opts_init_size(brook_operator_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_operator_opts_init(brook_operator_opts_t *opts) {
  brook_operator_opts_init_size(opts, sizeof(*opts));
}

/* Adds a custom operator reading `n_inputs` streams (all of the same topology) and
 * producing opts->n_outputs streams, stored in outputs[0..n_outputs-1]. `op` is copied (as
 * far as its version goes); `opaque` is borrowed and must outlive every runtime built from
 * the topology. Returns BROOK_OK or BROOK_ERR_INVALID_ARG (also recorded in the topology,
 * with a message): a NULL or empty inputs array (not recorded: no topology to record it in),
 * a NULL input, a NULL table, a table version this library does not know, no process
 * callback, n_outputs above BROOK_OPERATOR_MAX_OUTPUTS, a NULL outputs array with
 * n_outputs > 0, or an opts struct_size that is no version of brook_operator_opts_t. */
BROOK_API brook_err_t brook_operator_add(brook_stream_t *const *inputs, size_t n_inputs,
                                         const brook_operator_t *op, void *opaque,
                                         const brook_operator_opts_t *opts,
                                         brook_stream_t **outputs);

/* Shorthand: one input, one output, default options (the key may change). NULL on error. */
BROOK_API brook_stream_t *brook_apply(brook_stream_t *in, const brook_operator_t *op, void *opaque);

/* ---- the context, usable only inside the operator's callbacks (loop thread) ---- */

/* Emits `rec` (struct copied) to output 0 / to output `port`. Returns BROOK_OK, or an error
 * a downstream operator failed with, which the caller should return. A port the operator
 * does not have, or a NULL `rec`, fails the run (BROOK_ERR_INVALID_ARG; see the top). */
BROOK_API brook_err_t brook_emit(brook_ctx_t *ctx, const brook_record_t *rec);
BROOK_API brook_err_t brook_emit_to(brook_ctx_t *ctx, size_t port, const brook_record_t *rec);

/* Emits `n` records to output `port` at once, in order. The array is borrowed for the call
 * (it may be passed downstream without copying), so an operator can forward the batch it
 * was given. Same return as brook_emit. */
BROOK_API brook_err_t brook_emit_batch(brook_ctx_t *ctx, size_t port, const brook_record_t *recs,
                                       size_t n);

/* Memory that lives until the current batch has passed through the whole pipeline. No free
 * needed. Aligned for any type. NULL if out of memory. */
BROOK_API void *brook_ctx_alloc(brook_ctx_t *ctx, size_t size);

/* Applies the error policy to `rec`, which failed with `err` (negative). Returns BROOK_OK if
 * the record was skipped or routed (carry on), else `err` (return it). `fmt` may be NULL. */
BROOK_API brook_err_t brook_ctx_fail_record(brook_ctx_t *ctx, const brook_record_t *rec, int err,
                                            const char *fmt, ...);

/* Explains the failure a callback is about to return (or an open() failure): the text goes
 * into the error policy's output (the error stream's brook.error.message header, or the
 * runtime's last error) instead of a generic message. Callable from any callback of this
 * operator, including the user callbacks of map, filter, flat_map, peek, key_by, branch, the
 * generator and the callback sink (they receive ctx or can keep it from open). */
BROOK_API void brook_ctx_set_error(brook_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Index of the input the current record came from (0 for single-input operators). */
BROOK_API size_t brook_ctx_input(const brook_ctx_t *ctx);

/* The operator's configuration value for `key` (from opts.config), or NULL. */
BROOK_API const char *brook_ctx_config(const brook_ctx_t *ctx, const char *key);

/* The operator's node name. */
BROOK_API const char *brook_ctx_name(const brook_ctx_t *ctx);

/* The input partition whose task this instance belongs to (see "Tasks" above; after a
 * repartition topic, the topic's partition), or -1 for an instance that runs once per
 * runtime. */
BROOK_API int32_t brook_ctx_task(const brook_ctx_t *ctx);

/* Processing time: wall-clock ms since the epoch, cached per batch. */
BROOK_API brook_time_t brook_ctx_now(const brook_ctx_t *ctx);

/* Sends a message to the runtime's log callback (nothing if none). level: BROOK_LOG_*. */
BROOK_API void brook_ctx_log(brook_ctx_t *ctx, int level, const char *fmt, ...);

#define BROOK_LOG_ERROR 3
#define BROOK_LOG_WARN 4
#define BROOK_LOG_INFO 6
#define BROOK_LOG_DEBUG 7

#ifdef __cplusplus
}
#endif
#endif
