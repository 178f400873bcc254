/* The topology: a DAG of sources, operators and sinks, built before a runtime runs it.
 *
 * Building: every builder function takes an input stream (owned by its topology) and
 * returns a new stream, also owned by the topology and freed with it. A builder that fails
 * returns NULL (or an error code) and records the error in the topology; builders given a
 * NULL input return NULL, so a chain of calls can be checked once at the end with
 * brook_topology_error() or by brook_runtime_new(), which refuses a topology with build
 * errors. Building is single-threaded: one thread at a time per topology.
 *
 * A topology can be run by several runtimes (each gets its own operator instances); it is
 * FROZEN from the first brook_runtime_new() on: every builder then fails with
 * BROOK_ERR_FROZEN. */
#ifndef BROOK_TOPOLOGY_H
#define BROOK_TOPOLOGY_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_topology brook_topology_t;
typedef struct brook_stream brook_stream_t;

/* What happens when a user callback returns an error for a record. */
typedef enum brook_error_policy {
  BROOK_ON_ERROR_FAIL = 0, /* default: the pipeline stops with that error */
  BROOK_ON_ERROR_SKIP = 1, /* drop the record, count it (stats.records_skipped), go on */
  BROOK_ON_ERROR_ROUTE = 2 /* send the record to brook_error_stream(), go on */
} brook_error_policy_t;

typedef struct brook_topology_opts {
  uint32_t struct_size;               /* set by brook_topology_opts_init() */
  const brook_allocator_t *allocator; /* copied; NULL = malloc/realloc/free */
  brook_error_policy_t error_policy;  /* default BROOK_ON_ERROR_FAIL */
} brook_topology_opts_t;

/* Fills `opts` with the defaults. */
BROOK_API void brook_topology_opts_init_size(brook_topology_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_topology_opts_init(brook_topology_opts_t *opts) {
  brook_topology_opts_init_size(opts, sizeof(*opts));
}

/* Creates an empty topology. `opts` may be NULL (defaults) and is copied. On success *out
 * owns the topology (free it with brook_topology_free). Returns BROOK_ERR_NOMEM if
 * allocation fails (*out is NULL), or BROOK_ERR_INVALID_ARG for a NULL `out`, or for
 * refused options: a struct_size that is no version of brook_topology_opts_t, an unknown
 * error_policy, an allocator missing a function. For refused options, as with SQLite's
 * open, *out still receives a topology (on malloc) that holds the error: read why with
 * brook_topology_last_error(), then free it; it cannot be run (BROOK_ERR_BUILD). *out is
 * NULL only if even that allocation failed. */
BROOK_API brook_err_t brook_topology_new(brook_topology_t **out, const brook_topology_opts_t *opts);

/* Releases the caller's reference. The topology's memory is freed once no runtime built
 * from it remains. NULL is a no-op. */
BROOK_API void brook_topology_free(brook_topology_t *t);

/* Sets the error policy (see brook_error_policy_t). BROOK_ERR_FROZEN once a runtime exists. */
BROOK_API brook_err_t brook_topology_set_error_policy(brook_topology_t *t,
                                                      brook_error_policy_t policy);

/* The stream of records that failed in a user callback when the policy is
 * BROOK_ON_ERROR_ROUTE. Each carries the failed input record's key, value and timestamp plus
 * headers "brook.error" (error name, e.g. "BROOK_ERR_USER"), "brook.error.code" (the code in
 * decimal, so user-defined codes survive), "brook.error.operator" (node name) and
 * "brook.error.message", and, when the runtime can tell which input message the record comes
 * from (a Kafka source's record, or one derived from it that kept its headers, key or value),
 * "brook.source.topic", "brook.source.partition" and "brook.source.offset" (see kafka.h,
 * dead letters). Headers named "brook.*" that the record already carried are kept renamed
 * "original.brook.*": every brook.* header is brook's own. The node is named "errors" (a
 * reserved name).
 * A record of this stream that fails again (in any operator it reaches) fails the pipeline,
 * so a failed record is routed at most once: no error loops. Sinks it feeds are not counted
 * in stats.records_out. Calling it again returns the same stream. NULL on error (recorded in the
 * topology). Used while the policy is FAIL or SKIP, nothing can reach it: that is allowed
 * (the policy may be chosen per deployment) and each runtime made from the topology logs a
 * warning about it when it is created. */
BROOK_API brook_stream_t *brook_error_stream(brook_topology_t *t);

/* Checks the topology: no build errors, no cycle, every stream consumed, every operator fed.
 * On failure returns the code and sets the message (brook_topology_last_error). */
BROOK_API brook_err_t brook_topology_validate(brook_topology_t *t);

/* The first error recorded by a builder call (sticky), or BROOK_OK. */
BROOK_API brook_err_t brook_topology_error(const brook_topology_t *t);

/* The message of the most recent error, "" if none. Valid until the next call on `t`. */
BROOK_API const char *brook_topology_last_error(const brook_topology_t *t);

/* The topology a stream belongs to (NULL for NULL). */
BROOK_API brook_topology_t *brook_stream_topology(const brook_stream_t *s);

/* Names the operator or source that produces `s` (copied). Names appear in error messages
 * and stats and must be unique within the topology; push sources are looked up by name.
 * Unnamed nodes get "<kind>#<n>". Returns `s`, or NULL on error. */
BROOK_API brook_stream_t *brook_stream_set_name(brook_stream_t *s, const char *name);

/* The name of the node producing `s`. Valid while the topology lives. */
BROOK_API const char *brook_stream_name(const brook_stream_t *s);

/* Most tasks a key change can fan out to (brook_stream_set_partitions). */
#define BROOK_MAX_PARTITIONS 65536u

/* Sets how many tasks (partitions) the stream of a key_by is spread over: each record goes
 * to task murmur2(key) % n (Kafka's partitioner, as a Kafka producer would pick the
 * partition of a topic with n partitions), and everything downstream up to the next key
 * change runs once per task (see brook_topology_describe). The default is the largest
 * partition count upstream (a Kafka source's partitions, a generator's or push source's
 * splits); it never depends on the number of workers, so state keyed by task stays valid
 * when that changes. Streams merged after key changes are one sub-topology: their explicit
 * counts must agree. Also allowed on the stream of a map, flat_map or custom operator that
 * may change the key: the count of its automatic repartition (stateless.h, "Key changes");
 * if no stateful operator makes one, building the plan (describe, runtime_new) fails with
 * BROOK_ERR_INVALID_ARG naming the node, rather than ignore it. Returns BROOK_OK,
 * BROOK_ERR_INVALID_ARG (recorded in the topology) for a NULL stream, n outside
 * 1..BROOK_MAX_PARTITIONS or a stream that does not change the key, or BROOK_ERR_FROZEN once
 * a runtime exists. */
BROOK_API brook_err_t brook_stream_set_partitions(brook_stream_t *s, uint32_t n);

/* Writes the physical plan of `t` as text into `buf` (at most `size` bytes, always
 * NUL-terminated when size > 0, truncated like snprintf) and its full length, without the
 * NUL, into *len (may be NULL): call with size 0 to learn the length, then with len + 1.
 * The topology is validated first (as brook_runtime_new would) but not frozen: describing
 * is free of side effects and can be repeated while building. The text is stable (tests
 * compare it with golden text; a change is a change of the plan):
 *
 *   brook plan: <n> sub-topologies, <m> exchanges
 *   sub-topology <k>: tasks=<n> | tasks=partitions('<source>') | tasks=max(<n>, ...)
 *                     | tasks=<n> (set on '<key_by>') | no tasks
 *     exchange from '<key_by>': task = murmur2(key) % tasks
 *     exchange from '<node>'[<port>]: task = murmur2(key) % tasks, repartition (key changed
 *         by '<node>', before stateful '<node>')
 *     exchange into '<node>' from '<input>'[<port>]: every record to its one instance (worker 0)
 *     <source|operator|sink|errors> '<name>' [<type>] <per-task|per-worker|once>
 *         [splits=<n> [by key: split = murmur2(key) % splits]|splits=partitions]
 *         [state=<identity> [(generated name)]]
 *         [<- '<input>'[<port>], ...] [=> exchange[<port>] to sub-topology <k> ...]
 *     fused: '<operator>' -> '<operator>' ...
 *   with one worker (exchanges stay on it):
 *     fused: '<operator>' -> ... -> '<key_by>' -> '<operator>' ...
 *
 * A sub-topology is the part of the topology between key changes (key_by, or a map,
 * flat_map or custom operator that may change the key feeding a stateful operator: an
 * automatic repartition, the "repartition (...)" exchanges; stateless.h, "Key changes"); it
 * runs as `tasks`
 * parallel tasks (a Kafka source's partition count is known only at run time: "partitions"
 * until then). Nodes are listed in execution order; each runs per task (its own instance,
 * state and timers per task), per worker (sinks, the error stream) or once per runtime (on
 * worker 0: a stateful node fed from every worker without a key change, a line sink; its
 * inputs that come from every worker are the "exchange into" lines, counted in <m>). A
 * stateful node shows its identity, the escaped name its persisted state will be found by;
 * "(generated name)" marks one the user did not name, which persisting state will refuse.
 * A "fused" line lists operators that run record by record, each record through the whole
 * line before the next (a line of map, map_values, filter, peek and key_by, ending or not at
 * a callback sink; README "Fused lines"); a line ends at a re-keying node (key_by, or one
 * repartitioned automatically), whose records cross an exchange to other workers. The last
 * section, present only if it differs, lists the lines a runtime of one worker runs
 * instead: there a line goes on past it.
 * Returns BROOK_OK, BROOK_ERR_INVALID_ARG (NULL t, NULL buf with size > 0, or partition
 * counts that contradict each other), the validation error (message in
 * brook_topology_last_error) or BROOK_ERR_NOMEM. Same thread rules as building. */
BROOK_API brook_err_t brook_topology_describe(brook_topology_t *t, char *buf, size_t size,
                                              size_t *len);

#ifdef __cplusplus
}
#endif
#endif
