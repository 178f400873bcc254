/* Aggregators and keyed stateful operators: aggregate, count, reduce (continuous: one output
 * per update) and dedupe. Windowed aggregation is in window.h and uses the same
 * aggregators.
 *
 * An aggregator folds records into a fixed-size ACCUMULATOR of plain bytes (no pointers:
 * accumulators are copied, merged, snapshotted and, later, written to changelogs), then turns
 * it into a fixed-size RESULT. */
#ifndef BROOK_AGGREGATE_H
#define BROOK_AGGREGATE_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>
#include <brook/operator.h>
#include <brook/record.h>
#include <brook/timestamp.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of brook_aggregator_t this header describes. The table only grows by appending
 * fields, each growth a new version; the library copies a caller's table by the version it
 * says it is (fields of later versions take their defaults) and refuses a version it does
 * not know, naming it. */
#define BROOK_AGGREGATOR_VERSION 1

/* Reads the number a built-in numeric aggregator works on. Return BROOK_OK, or an error for
 * a record without a usable number (it then follows the error policy). */
typedef brook_err_t (*brook_number_fn)(const brook_record_t *rec, double *out, void *opaque);

typedef struct brook_aggregator {
  uint32_t version;   /* BROOK_AGGREGATOR_VERSION */
  const char *name;   /* e.g. "count" (static string; names the operator by default) */
  size_t acc_size;    /* accumulator bytes, 1..65536; accumulators start zeroed */
  size_t result_size; /* result bytes, 0..65536; 0 with result NULL: the accumulator is
                         the result */
  /* Optional: prepares a zeroed accumulator. */
  void (*init)(void *acc, const struct brook_aggregator *agg);
  /* Required: folds `rec` into `acc`. An error applies the error policy to `rec`; `acc` must
   * then be left unchanged. */
  brook_err_t (*add)(void *acc, const brook_record_t *rec, const struct brook_aggregator *agg);
  /* Combines `other` into `acc`. Required by hopping, sliding and session windows (they
   * build windows from partial aggregates and merge sessions). */
  void (*merge)(void *acc, const void *other, const struct brook_aggregator *agg);
  /* Optional: writes result_size bytes of result for `acc`. */
  void (*result)(const void *acc, void *out, const struct brook_aggregator *agg);

  void *opaque;           /* the user's, for their callbacks */
  brook_number_fn number; /* built-in numeric aggregators: NULL = the value is a native
                             `double` (value_len == sizeof(double)) */
  void *number_opaque;
} brook_aggregator_t;

/* The built-in aggregators. */
typedef enum brook_agg_builtin {
  BROOK_AGG_COUNT = 0, /* result int64_t: records per key/window */
  BROOK_AGG_SUM = 1,   /* result double */
  BROOK_AGG_MIN = 2,   /* result double (never NaN: every accumulator has a record) */
  BROOK_AGG_MAX = 3,   /* result double */
  BROOK_AGG_MEAN = 4,  /* result double */
  BROOK_AGG_STATS = 5  /* result brook_agg_stats_t */
} brook_agg_builtin_t;

/* Fills *agg with the built-in `which`, as the layout of table version `version` (the
 * BROOK_AGGREGATOR_VERSION the caller was compiled with: only that version's fields are
 * written, so an older program's smaller table is never overrun). Numeric built-ins read a
 * double with number(rec, &x, opaque) (NULL: the value is a native double); count ignores
 * both. BROOK_OK, or BROOK_ERR_INVALID_ARG (agg NULL, an unknown `which` or `version`; *agg
 * untouched). Any thread. */
BROOK_API brook_err_t brook_agg_builtin(brook_aggregator_t *agg, uint32_t version,
                                        brook_agg_builtin_t which, brook_number_fn number,
                                        void *opaque);

/* The built-ins by value, for brook_aggregate and brook_window_aggregate (`&agg`). Inline
 * (compiled into the caller with its own table layout), so no struct crosses the ABI by
 * value. The result may be copied freely. */
static inline brook_aggregator_t brook_agg_builtin_value_(brook_agg_builtin_t which,
                                                          brook_number_fn number, void *opaque) {
  brook_aggregator_t a;
  (void)brook_agg_builtin(&a, BROOK_AGGREGATOR_VERSION, which, number, opaque);
  return a;
}
static inline brook_aggregator_t brook_agg_count(void) {
  return brook_agg_builtin_value_(BROOK_AGG_COUNT, (brook_number_fn)0, (void *)0);
}
static inline brook_aggregator_t brook_agg_sum(brook_number_fn number, void *opaque) {
  return brook_agg_builtin_value_(BROOK_AGG_SUM, number, opaque);
}
static inline brook_aggregator_t brook_agg_min(brook_number_fn number, void *opaque) {
  return brook_agg_builtin_value_(BROOK_AGG_MIN, number, opaque);
}
static inline brook_aggregator_t brook_agg_max(brook_number_fn number, void *opaque) {
  return brook_agg_builtin_value_(BROOK_AGG_MAX, number, opaque);
}
static inline brook_aggregator_t brook_agg_mean(brook_number_fn number, void *opaque) {
  return brook_agg_builtin_value_(BROOK_AGG_MEAN, number, opaque);
}
static inline brook_aggregator_t brook_agg_stats(brook_number_fn number, void *opaque) {
  return brook_agg_builtin_value_(BROOK_AGG_STATS, number, opaque);
}

typedef struct brook_agg_stats {
  int64_t count;
  double sum, min, max, mean;
} brook_agg_stats_t;

/* ---- continuous keyed operators: state per key, a result per update ---- */

typedef struct brook_aggregate_opts {
  uint32_t struct_size; /* set by brook_aggregate_opts_init() */
  const char *name;     /* copied; NULL = "<aggregator name>#<n>" */
} brook_aggregate_opts_t;

BROOK_API void brook_aggregate_opts_init_size(brook_aggregate_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_aggregate_opts_init(brook_aggregate_opts_t *opts) {
  brook_aggregate_opts_init_size(opts, sizeof(*opts));
}

/* Folds each key's records with `agg` (copied by its version; its opaque pointers are borrowed and
 * must outlive every runtime) and emits, after every record, the key with its new result: value =
 * result bytes (result_size, or the accumulator), timestamp = the record's. Records without a key
 * (key NULL) share one "null key" group with the empty key. State is kept per key for the life of
 * the runtime (use windows to bound it by time). NULL on error (recorded in the topology). */
BROOK_API brook_stream_t *brook_aggregate(brook_stream_t *in, const brook_aggregator_t *agg,
                                          const brook_aggregate_opts_t *opts);

/* brook_aggregate with brook_agg_count(): value = int64_t count so far. */
BROOK_API brook_stream_t *brook_count(brook_stream_t *in, const brook_aggregate_opts_t *opts);

/* Combines the key's previous value `acc` (acc_len bytes) with `rec`: writes the new value's
 * address and length to *out / *out_len (memory from brook_ctx_alloc or inside acc/rec; it
 * is copied into the state). The first record of a key is its initial value (no call).
 * An error applies the error policy to `rec`. */
typedef brook_err_t (*brook_reduce_fn)(brook_ctx_t *ctx, const void *acc, size_t acc_len,
                                       const brook_record_t *rec, const void **out, size_t *out_len,
                                       void *opaque);

/* Reduces each key's values with `fn` and emits the key with its new value after every
 * record (Kafka Streams' reduce). NULL on error. */
BROOK_API brook_stream_t *brook_reduce(brook_stream_t *in, brook_reduce_fn fn, void *opaque,
                                       const brook_aggregate_opts_t *opts);

/* Lets the first record of each key through and drops later records of the same key whose
 * timestamp is less than `horizon` ms away from that first one (after or before it; a record
 * further back passes and leaves the first one's horizon in place). The key's state expires by an
 * event-time timer once the watermark reaches first + horizon - 1 (no duplicate can come any more;
 * saturated at BROOK_TIME_MAX: a horizon past the end of time lasts until the end of input), so
 * state stays bounded, and the next record of the key passes again. Any timestamp in the int64_t
 * range is accepted. Duplicates are filtered out, not treated as errors. NULL on error. */
BROOK_API brook_stream_t *brook_dedupe(brook_stream_t *in, brook_time_t horizon,
                                       const brook_aggregate_opts_t *opts);

#ifdef __cplusplus
}
#endif
#endif
