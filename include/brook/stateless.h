/* Stateless operators: map, filter, flat_map, branch, merge, peek, key_by.
 *
 * Every callback gets the user's `opaque` (given when the operator is added) as its last
 * argument; it is borrowed and must outlive every runtime built from the topology.
 * Callbacks run on the runtime's loop thread. A callback that returns a negative value fails
 * for that record, and the topology's error policy decides what happens (fail the pipeline,
 * skip the record, or route it to brook_error_stream()).
 *
 * Fused chains: a line of map, filter, peek and key_by ending, or not, at a callback sink
 * (brook_sink_callback) runs record by record: each record of a batch goes through every
 * operator of the line before the next record enters it, with direct calls. A line ends where
 * a stream has two consumers, at flat_map, branch, merge, a custom operator or another sink,
 * and, with num_workers > 1, after key_by (its output crosses to the key's worker). So the
 * callbacks of different operators of a line interleave (filter(r0), map(r0), sink(r0),
 * filter(r1), ...). Failures are met in record order: under BROOK_ON_ERROR_FAIL the run
 * fails with the first record of the batch that fails in any operator of the line (the message
 * names that operator), and the records before it have gone through the whole line; under
 * SKIP and ROUTE each failure is handled where it happens, a routed record as it came into
 * the operator that failed. Between lines (and for everything else) an operator handles a
 * whole batch before the next operator sees it.
 *
 * Each builder returns the new stream, or NULL on error (recorded in the topology). */
#ifndef BROOK_STATELESS_H
#define BROOK_STATELESS_H

#include <brook/export.h>

#include <stddef.h>

#include <brook/operator.h>
#include <brook/record.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Rewrites `rec` in place: it starts as a copy of the input record (same pointers); change
 * any field. New bytes must come from brook_ctx_alloc(ctx, ...) or outlive the runtime. It
 * must not emit: brook_emit* on ctx returns BROOK_ERR_STATE and the record fails (use
 * flat_map). */
typedef brook_err_t (*brook_map_fn)(brook_record_t *rec, brook_ctx_t *ctx, void *opaque);

/* Returns > 0 to keep the record, 0 to drop it, < 0 (an error code) on failure. */
typedef int (*brook_predicate_fn)(const brook_record_t *rec, void *opaque);

/* Emits 0..n records with brook_emit(ctx, ...) for one input record. */
typedef brook_err_t (*brook_flat_map_fn)(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque);

/* Looks at a record (logging, metrics); cannot change it. */
typedef brook_err_t (*brook_peek_fn)(const brook_record_t *rec, void *opaque);

/* Sets the new key in *key / *key_len (same memory rules as brook_map_fn). */
typedef brook_err_t (*brook_key_fn)(const brook_record_t *rec, const void **key, size_t *key_len,
                                    brook_ctx_t *ctx, void *opaque);

BROOK_API brook_stream_t *brook_map(brook_stream_t *in, brook_map_fn fn, void *opaque);
BROOK_API brook_stream_t *brook_filter(brook_stream_t *in, brook_predicate_fn fn, void *opaque);
BROOK_API brook_stream_t *brook_flat_map(brook_stream_t *in, brook_flat_map_fn fn, void *opaque);
BROOK_API brook_stream_t *brook_peek(brook_stream_t *in, brook_peek_fn fn, void *opaque);

/* Re-keys the stream. The value and timestamp are unchanged. The key change is an exchange
 * of the physical plan (brook_topology_describe): what follows is a new sub-topology whose
 * tasks each own the keys with murmur2(key) % tasks == task (set the count with
 * brook_stream_set_partitions). In a Kafka pipeline the records cross the repartition topic
 * "<group>-<name>-repartition" (README, "Repartition topics"), so the keys' state is right
 * with any number of instances; elsewhere they cross workers in-process. */
BROOK_API brook_stream_t *brook_key_by(brook_stream_t *in, brook_key_fn fn, void *opaque);

/* One stream from several (fan-in), all from the same topology. Order between inputs is
 * the order the runtime processes their batches; order within one input is kept. */
BROOK_API brook_stream_t *brook_merge(brook_stream_t *const *ins, size_t n);

/* Adds one more input to a stream made by brook_merge (for building merges incrementally;
 * a merge fed from its own downstream is a cycle, which validation rejects). */
BROOK_API brook_err_t brook_merge_add(brook_stream_t *merged, brook_stream_t *in);

/* One branch: records for which `pred` returns > 0. */
typedef struct brook_branch {
  brook_predicate_fn pred;
  void *opaque;
} brook_branch_t;

/* Routes each record to the FIRST branch whose predicate accepts it (like Kafka Streams'
 * split()). outs[i] receives branches[i]'s records. If `default_out` is not NULL it
 * receives records no predicate accepted; otherwise those are dropped. n is 1 to
 * BROOK_OPERATOR_MAX_OUTPUTS (one less with a default). Returns BROOK_OK or
 * BROOK_ERR_INVALID_ARG (also recorded in the topology, naming the problem). */
BROOK_API brook_err_t brook_branch(brook_stream_t *in, const brook_branch_t *branches, size_t n,
                                   brook_stream_t **outs, brook_stream_t **default_out);

#ifdef __cplusplus
}
#endif
#endif
