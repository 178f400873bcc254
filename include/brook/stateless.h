/* Stateless operators: map, map_values, filter, flat_map, flat_map_values, branch, merge,
 * peek, key_by.
 *
 * Key changes (as in Kafka Streams): stateful operators (aggregate, reduce, count, dedupe,
 * the windows, custom operators with stores or timers) need each key's records in one
 * instance. Records from a partitioned source (Kafka, a source partitioned_by_key) are, by
 * the key they came with. An operator that may change the key - map, flat_map, and a custom
 * operator unless it declares key_preserving (operator.h) - marks its stream; filter, peek,
 * branch, merge, map_values and flat_map_values keep the mark as it is (a merge of a marked and an
 * unmarked stream is marked); a stateful operator's output is unmarked (its input was
 * repartitioned), unless it is a custom operator that may change keys. A stateful operator fed by a
 * marked stream with no key_by in between repartitions it automatically: the operator that
 * changed the key becomes a re-keying node of the plan, its output crosses an exchange by
 * murmur2(key) exactly as key_by's does (brook_topology_describe shows "repartition (key
 * changed by '<node>', ...)"), so the results are those key_by would give, never one partial
 * result per input partition. Kafka sinks and other stateless consumers do not cause one.
 * When the key does not change, use map_values or flat_map_values (or a key_preserving
 * custom operator): no exchange, the stateful operator runs in the source partition's task.
 * key_by is the explicit form: its output always crosses an exchange. Either's partition
 * count can be set (brook_stream_set_partitions).
 *
 * Every callback gets the user's `opaque` (given when the operator is added) as its last
 * argument; it is borrowed and must outlive every runtime built from the topology.
 * Callbacks run on the runtime's loop thread. A callback that returns a negative value fails
 * for that record, and the topology's error policy decides what happens (fail the pipeline,
 * skip the record, or route it to brook_error_stream()).
 *
 * Fused chains: a line of map, map_values, filter, peek and key_by ending, or not, at a callback
 * sink (brook_sink_callback) runs record by record: each record of a batch goes through every
 * operator of the line before the next record enters it, with direct calls. A line ends where
 * a stream has two consumers, at flat_map, flat_map_values, branch, merge, a custom operator or
 * another sink, and, with num_workers > 1, after key_by (its output crosses to the key's worker).
 * So the callbacks of different operators of a line interleave (filter(r0), map(r0), sink(r0),
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

/* Computes a record's new value in *value / *value_len, which start as the record's own;
 * the key, timestamp and headers stay (the record is read-only, so the key cannot change).
 * Same memory rules as brook_map_fn; it must not emit: brook_emit* on ctx returns
 * BROOK_ERR_STATE and the record fails, as for map. Giving NULL bytes with a length fails
 * the record (BROOK_ERR_INVALID_ARG). */
typedef brook_err_t (*brook_value_fn)(const brook_record_t *rec, const void **value,
                                      size_t *value_len, brook_ctx_t *ctx, void *opaque);

/* map may change the key (see "Key changes" above: a stateful operator after it
 * repartitions); map_values cannot, and costs no repartition. map_values fuses like map. */
BROOK_API brook_stream_t *brook_map(brook_stream_t *in, brook_map_fn fn, void *opaque);
BROOK_API brook_stream_t *brook_map_values(brook_stream_t *in, brook_value_fn fn, void *opaque);
BROOK_API brook_stream_t *brook_filter(brook_stream_t *in, brook_predicate_fn fn, void *opaque);
/* flat_map may change the key (a stateful operator after it repartitions); flat_map_values
 * cannot (Kafka Streams' flatMapValues) and costs no repartition. */
BROOK_API brook_stream_t *brook_flat_map(brook_stream_t *in, brook_flat_map_fn fn, void *opaque);

/* What a flat_map_values callback emits with (valid during the callback only). */
typedef struct brook_values brook_values_t;

/* Emits one record with the input record's key, timestamp and headers and `value` (bytes
 * borrowed: same memory rules as brook_map_fn). Returns BROOK_OK, an error a downstream
 * operator failed with (return it), or BROOK_ERR_INVALID_ARG for a NULL `out` or NULL bytes
 * with a length. Loop thread, inside the callback. */
BROOK_API brook_err_t brook_emit_value(brook_values_t *out, const void *value, size_t value_len);

/* Emits 0..n values for one input record with brook_emit_value(out, ...); the key cannot
 * change. brook_emit on ctx is refused (BROOK_ERR_STATE, and the record fails). */
typedef brook_err_t (*brook_flat_map_values_fn)(const brook_record_t *rec, brook_values_t *out,
                                                brook_ctx_t *ctx, void *opaque);

BROOK_API brook_stream_t *brook_flat_map_values(brook_stream_t *in, brook_flat_map_values_fn fn,
                                                void *opaque);
BROOK_API brook_stream_t *brook_peek(brook_stream_t *in, brook_peek_fn fn, void *opaque);

/* Re-keys the stream. The value and timestamp are unchanged. The key change is an exchange
 * of the physical plan (brook_topology_describe): what follows is a new sub-topology whose
 * tasks each own the keys with murmur2(key) % tasks == task (set the count with
 * brook_stream_set_partitions). In a Kafka pipeline the records cross the repartition topic
 * "<group>-<name>-repartition" (README, "Repartition topics"), so the keys' state is right
 * with any number of instances; elsewhere they cross workers in-process.
 * The same happens automatically after map, flat_map or a custom operator that may change
 * the key, when a stateful operator follows (see "Key changes" above). */
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
