/* The test driver: runs a topology synchronously, without an event loop or a broker, so a
 * pipeline can be unit-tested deterministically (like Kafka Streams' TopologyTestDriver).
 *
 * - Records are pushed by hand into named sources (any kind: generator, lines, push, later
 *   Kafka); the sources' own inputs are not read. Each push runs the record through the whole
 *   pipeline before returning, then advances watermarks (firing event-time timers).
 * - Processing time is a manual clock: it starts at opts.start_time and moves only with
 *   brook_driver_advance_time(), which fires processing-time timers and applies watermark
 *   idleness and quiet advance.
 * - Every sink (a node without outputs) is tapped: the driver keeps a copy of every record it
 *   received, readable by sink name (the sink itself still runs). Callback sinks get names
 *   through brook_sink_callback_v2; brook_driver_sink_name finds a sink by the node and output
 *   port it consumes.
 * - brook_driver_end() is a natural end of input: watermarks go to BROOK_TIME_MAX (all
 *   windows close), then end_of_input and flush run.
 *
 * - Partitions: the splits of a partitioned source (Kafka) are its partitions, and the nodes
 *   that keep its partitioning run as one task per partition, as in a runtime (operator.h,
 *   "Tasks"). A partition is assigned by its first record or by brook_driver_assign; revoking
 *   it (brook_driver_revoke) flushes and closes its task and keeps the task's state (stores,
 *   timers, watermarks) the way a changelog would; assigning it again opens a new task restored
 *   from that state, whose due timers then fire.
 * - Checkpoints: brook_driver_checkpoint writes the whole state (every operator instance's
 *   stores and timers, the watermarks of sources, partitions and nodes, processing time, the
 *   partitions' assignment and revoked tasks' state) and brook_driver_restore loads it into a
 *   new driver built from the same topology, so a test can show that a pipeline continues
 *   after a restart exactly as if it had not stopped.
 *
 * Same input, same output, every run. Single-threaded: use a driver from one thread. */
#ifndef BROOK_TEST_DRIVER_H
#define BROOK_TEST_DRIVER_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>
#include <brook/record.h>
#include <brook/runtime.h>
#include <brook/state.h>
#include <brook/timestamp.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_driver brook_driver_t;

typedef struct brook_driver_opts {
  uint32_t struct_size;    /* set by brook_driver_opts_init() */
  brook_time_t start_time; /* initial processing time (ms); default 0 */
  brook_log_cb log;        /* optional, as in brook_runtime_opts_t */
  void *log_opaque;
  /* State on disk, as with the runtime option state_dir (runtime.h), so that a test can run
   * the same pipeline against both backends: 1 keeps the operators' state (default-backend
   * stores, window state, timers) of the driver's unpartitioned pipeline in ONE RocksDB task
   * database, <state_dir>/driver (state_dir NULL: a temporary directory removed at free).
   * The driver commits it (atomically, with no input positions) after every 64 records pushed,
   * at every brook_driver_advance_time and at brook_driver_end, so a driver built later on the
   * same state_dir finds the state of the last commit, as a restarted task would. Partitions'
   * tasks (brook_driver_assign) keep theirs in memory. 0 (default): state in memory. */
  int state_on_disk;
  const char *state_dir;    /* copied; see state_on_disk */
  size_t state_cache_bytes; /* the write cache per store (runtime.h); 0: its default */
} brook_driver_opts_t;

BROOK_API void brook_driver_opts_init_size(brook_driver_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_driver_opts_init(brook_driver_opts_t *opts) {
  brook_driver_opts_init_size(opts, sizeof(*opts));
}

/* Builds a driver for `t` (validated and frozen like brook_runtime_new) and opens every
 * operator. Returns BROOK_OK, or an error with the message in brook_topology_last_error(t)
 * (build/validation errors, or an operator's open() failure); *out is NULL then. */
BROOK_API brook_err_t brook_driver_new(brook_driver_t **out, brook_topology_t *t,
                                       const brook_driver_opts_t *opts);

/* Closes the operators and frees everything, including the captured records. NULL: no-op. */
BROOK_API void brook_driver_free(brook_driver_t *d);

/* Runs `rec` (borrowed for the call) through the pipeline as a record of source `source`
 * (split 0), then advances watermarks. Returns BROOK_OK or the pipeline's failure (which is
 * sticky: later calls return it too); BROOK_ERR_NOT_FOUND for an unknown source name,
 * BROOK_ERR_STOPPED after brook_driver_end. */
BROOK_API brook_err_t brook_driver_push(brook_driver_t *d, const char *source,
                                        const brook_record_t *rec);

/* Same, on split `split` of the source (splits have separate watermarks and idleness, like
 * the partitions of a Kafka topic; a split exists from its first record). */
BROOK_API brook_err_t brook_driver_push_split(brook_driver_t *d, const char *source, size_t split,
                                              const brook_record_t *rec);

/* Advances processing time by `ms` (>= 0): fires due processing-time timers, marks idle
 * splits, moves quiet splits' watermarks. The clock saturates: an advance past BROOK_TIME_MAX
 * stops it there (so advancing by BROOK_TIME_MAX fires every pending processing-time timer).
 * Returns BROOK_OK or the pipeline's failure; BROOK_ERR_INVALID_ARG for a negative `ms` (the
 * clock is unchanged and the pipeline does not fail). */
BROOK_API brook_err_t brook_driver_advance_time(brook_driver_t *d, brook_time_t ms);

/* The current processing time. */
BROOK_API brook_time_t brook_driver_time(const brook_driver_t *d);

/* The watermark of node `name` (source or operator), or BROOK_TIME_MIN if unknown / none. */
BROOK_API brook_time_t brook_driver_watermark(const brook_driver_t *d, const char *name);

/* Ends the input: every source's watermark becomes BROOK_TIME_MAX (event-time timers fire,
 * windows close), then end_of_input and flush run on every operator. Further pushes fail
 * with BROOK_ERR_STOPPED. Returns BROOK_OK or the pipeline's failure. */
BROOK_API brook_err_t brook_driver_end(brook_driver_t *d);

/* Records captured at sink `sink` so far (0 for an unknown name), and the i-th of them
 * (NULL if out of range). `sink` names a sink:
 * - by its own name: the name given to brook_sink_callback_v2 (brook_callback_sink_opts_t.name),
 *   brook_operator_opts_t.name or a sink's options, or a name brook_driver_sink_name returned;
 * - or, when no sink has that name, by the name of the node whose output it consumes (the
 *   first sink, in the plan's order, fed by any output of that node; kept for callback sinks
 *   made by brook_sink_callback, which have no name of their own). With several sinks after
 *   one node (a branch's outputs, or one stream fanned out), name the sinks or look them up
 *   with brook_driver_sink_name.
 * The record and its bytes are owned by the driver and valid until brook_driver_clear_output or
 * brook_driver_free. */
BROOK_API size_t brook_driver_output_count(const brook_driver_t *d, const char *sink);
BROOK_API const brook_record_t *brook_driver_output(const brook_driver_t *d, const char *sink,
                                                    size_t i);

/* The name of the i-th sink (0-based, in the order the sinks were added to the topology) that
 * consumes output `port` of the node named `node` (port 0 for single-output nodes; port k for
 * the k-th output a builder returned, e.g. brook_branch's outs[k]; the default output of
 * brook_branch comes after the n branches), or NULL if there is none. The name is owned by the
 * driver (valid until brook_driver_free); pass it to brook_driver_output and friends. */
BROOK_API const char *brook_driver_sink_name(const brook_driver_t *d, const char *node, size_t port,
                                             size_t i);

/* Forgets the records captured at `sink` (named as above; NULL: at every sink). */
BROOK_API void brook_driver_clear_output(brook_driver_t *d, const char *sink);

/* The pipeline's status and failure message ("" if none). */
BROOK_API brook_err_t brook_driver_status(const brook_driver_t *d);
BROOK_API const char *brook_driver_last_error(const brook_driver_t *d);

/* ---- partitions and rebalances (partitioned sources: Kafka) ---- */

/* Assigns partition `partition` (a split number) of source `source`, as a rebalance would: the
 * partition's task is created and opened unless another source holding that partition
 * (co-partitioned) has it open; if the partition was revoked before, the new task is restored
 * from the state its task had when it closed (stores, timers, watermarks); then timers that
 * are due fire. Returns BROOK_OK or the pipeline's failure; BROOK_ERR_NOT_FOUND (no such
 * source), BROOK_ERR_STATE (not a partitioned source, or assigned already),
 * BROOK_ERR_INVALID_ARG (partition above INT32_MAX), BROOK_ERR_STOPPED after
 * brook_driver_end; the message is in brook_driver_last_error. */
BROOK_API brook_err_t brook_driver_assign(brook_driver_t *d, const char *source, size_t partition);

/* Revokes an assigned partition: if no other source holds its task, the task's operators
 * flush (their output is captured as usual), its state is kept by the driver, and they close.
 * Records pushed to a revoked partition fail with BROOK_ERR_STATE until it is assigned again.
 * Returns as brook_driver_assign (BROOK_ERR_STATE: not assigned). */
BROOK_API brook_err_t brook_driver_revoke(brook_driver_t *d, const char *source, size_t partition);

/* ---- checkpoint and restore ---- */

/* Writes the driver's whole state through `write` (brook_write_fn, state.h: called with the
 * bytes in order, in pieces; an error it returns aborts the checkpoint and is returned). The
 * format is versioned, every section carries a CRC32C and sections are keyed by node and
 * store names (give stateful nodes names: generated ones change when the topology does).
 * Captured sink records and counters are not part of it. The driver is unchanged and may go
 * on. Returns BROOK_OK, the writer's error, BROOK_ERR_NOMEM, or the pipeline's failure (a
 * failed pipeline cannot be checkpointed). */
BROOK_API brook_err_t brook_driver_checkpoint(brook_driver_t *d, brook_write_fn write,
                                              void *opaque);

/* Loads a checkpoint (borrowed for the call) into `d`, a driver that has done nothing yet
 * (no push, clock move, assignment or restore) and was built from the same topology (a
 * topology built the same way: nodes are matched by name). Afterwards it continues exactly
 * where the checkpointed driver was. Returns BROOK_OK; BROOK_ERR_CORRUPT for a truncated or
 * damaged checkpoint, or one whose nodes or stores do not match this topology (the message
 * in brook_driver_last_error names the section, node and store and what was wrong);
 * BROOK_ERR_STATE if `d` was used already; BROOK_ERR_NOMEM. On any failure `d` is left as it
 * was: nothing is half restored. */
BROOK_API brook_err_t brook_driver_restore(brook_driver_t *d, const void *data, size_t len);

/* Counters, as brook_runtime_stats. */
BROOK_API brook_err_t brook_driver_stats(const brook_driver_t *d, brook_runtime_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif
