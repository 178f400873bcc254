/* Windowed aggregation: results per key and per window of event time.
 *
 * Windows are half-open intervals [start, end) of event time in ms:
 * - tumbling(size): fixed, non-overlapping, aligned to the epoch: start = ts - ts mod size.
 * - hopping(size, advance): fixed size, a new window every `advance` ms; a record belongs to
 *   size/advance windows (rounded down or up when advance does not divide size), at most
 *   BROOK_WINDOW_MAX_HOPS. Partial aggregates are kept per slice of gcd(size, advance) ms,
 *   so a record costs one update whatever size/advance is; a window of up to 64 slices is
 *   merged from them when it fires, a longer one from each key's running aggregates (two
 *   stacks: O(1) amortised per slice). Memory follows the slices that hold data.
 * - sliding(size): look-back sliding windows: each distinct event time t of a key defines
 *   the window [t - size + 1, t + 1), i.e. the records within `size` ms up to and including
 *   t (kept per key and distinct t, combined with running aggregates: O(1) amortised).
 *   These are the windows Kafka Streams' sliding windows create at each record (its
 *   timeDifference D corresponds to size = D + 1); the extra windows Kafka Streams also
 *   creates where a record drops out of the range are not produced.
 * - session(gap): per key, records less than `gap` ms apart form a session
 *   [first ts, last ts + gap); a record that bridges two sessions merges them (with the
 *   aggregator's merge).
 *
 * A window CLOSES when the operator's watermark reaches end - 1 + grace (time.h: the
 * watermark promises no more records <= it). Then its final result is emitted and its state
 * is freed. A record is LATE when every window it belongs to has closed: it is dropped and
 * counted (stats.records_late) or, with late = BROOK_LATE_ROUTE, sent to the side stream
 * brook_window_late().
 *
 * Timestamps, sizes, gaps and grace are limited to +-2^61 ms (73 million years), so every
 * window start, end, end + grace and timer is representable without overflow; a record
 * outside (INT64_MIN, INT64_MAX, ...) fails with BROOK_ERR_INVALID_ARG through the error
 * policy (fail, skip and count, or route), never wraps. A NULL key and an empty key are the
 * same group.
 *
 * Hopping, sliding and session windows combine partial aggregates with the aggregator's
 * merge, in time order but grouped as the windows slide: merge must be associative (double
 * sums may then differ from a left-to-right fold in the last bits).
 *
 * Output records: key = the key, timestamp = end - 1, value = a brook_window_value_t header
 * followed by the aggregator's result bytes (read them with brook_window_parse). Windows
 * closing on the same watermark are emitted in order of end (close time); among windows
 * with the same end the order is deterministic (the same input gives the same output):
 * - tumbling: keys in the order their first record of the window arrived;
 * - hopping: by the oldest slice (gcd(size, advance) ms) of the window holding the key,
 *   then the order the key's first record of that slice arrived;
 * - sliding and session: by key (bytewise, shorter first), then start.
 * Tumbling and hopping windows of up to 64 slices do not sort: all their windows of one end
 * are emitted straight from one table (longer hopping windows sort their keys). */
#ifndef BROOK_WINDOW_H
#define BROOK_WINDOW_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/aggregate.h>
#include <brook/error.h>
#include <brook/record.h>
#include <brook/timestamp.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum brook_window_kind {
  BROOK_WINDOW_TUMBLING = 0,
  BROOK_WINDOW_HOPPING = 1,
  BROOK_WINDOW_SLIDING = 2,
  BROOK_WINDOW_SESSION = 3
} brook_window_kind_t;

/* A window definition, passed to brook_window_aggregate by pointer. Build it with the
 * constructors below: they are inline, so the struct and its struct_size are the ones this
 * program was compiled with, and a library whose brook_window_t has grown (fields appended)
 * still reads an older program's struct by its size (like the options structs). A binding
 * that cannot call inline functions fills the struct itself with struct_size = the size of
 * the layout it mirrors; any other struct_size is refused with BROOK_ERR_INVALID_ARG. */
typedef struct brook_window {
  uint32_t struct_size;     /* sizeof(brook_window_t) as compiled by the caller */
  brook_window_kind_t kind; /* which of the fields below apply */
  brook_time_t size;        /* tumbling, hopping, sliding */
  brook_time_t advance;     /* hopping */
  brook_time_t gap;         /* session */
} brook_window_t;

/* The most windows a hopping definition may put a record in: ceil(size / advance). Beyond
 * it, brook_window_aggregate fails with BROOK_ERR_INVALID_ARG (every record would produce
 * more than this many results). Up to it, a record costs one slice update whatever the
 * ratio, and memory grows with the slices that hold data, not with size / advance. */
#define BROOK_WINDOW_MAX_HOPS 10000

/* Window definitions, by value (inline: nothing crosses the library's ABI by value). Values
 * are checked by brook_window_aggregate, not here. E.g.
 *   brook_window_t w = brook_window_hopping(60 * BROOK_S, 10 * BROOK_S);
 *   brook_stream_t *out = brook_window_aggregate(in, &w, &agg, &opts); */
static inline brook_window_t brook_window_define(brook_window_kind_t kind, brook_time_t size,
                                                 brook_time_t advance, brook_time_t gap) {
  brook_window_t w;
  w.struct_size = (uint32_t)sizeof(w);
  w.kind = kind;
  w.size = size;
  w.advance = advance;
  w.gap = gap;
  return w;
}
static inline brook_window_t brook_window_tumbling(brook_time_t size) {
  return brook_window_define(BROOK_WINDOW_TUMBLING, size, size, 0);
}
static inline brook_window_t brook_window_hopping(brook_time_t size, brook_time_t advance) {
  return brook_window_define(BROOK_WINDOW_HOPPING, size, advance, 0);
}
static inline brook_window_t brook_window_sliding(brook_time_t size) {
  return brook_window_define(BROOK_WINDOW_SLIDING, size, 0, 0);
}
static inline brook_window_t brook_window_session(brook_time_t gap) {
  return brook_window_define(BROOK_WINDOW_SESSION, 0, 0, gap);
}

typedef enum brook_emit_mode {
  BROOK_EMIT_ON_CLOSE = 0, /* default: one final result per window, when it closes */
  BROOK_EMIT_ON_UPDATE = 1 /* an early result after every update, then the final one; each
                              record sweeps the key's slices within about two window sizes
                              (README, "Emitting") */
} brook_emit_mode_t;

typedef enum brook_late_policy {
  BROOK_LATE_DROP = 0, /* default: drop, count in stats.records_late */
  BROOK_LATE_ROUTE = 1 /* send to brook_window_late(result stream) (must be consumed) */
} brook_late_policy_t;

typedef struct brook_window_opts {
  uint32_t struct_size; /* set by brook_window_opts_init() */
  const char *name;     /* copied; NULL = "window_<kind>#<n>" */
  brook_time_t grace;   /* extra ms a window stays open for out-of-order records; default 0 */
  brook_emit_mode_t emit;
  brook_late_policy_t late;
} brook_window_opts_t;

BROOK_API void brook_window_opts_init_size(brook_window_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_window_opts_init(brook_window_opts_t *opts) {
  brook_window_opts_init_size(opts, sizeof(*opts));
}

/* Aggregates `in` per key and `window` (copied by its struct_size) with `agg` (copied by its
 * version; hopping, sliding and session need agg->merge). Records without a key share one
 * group. Returns the result stream, or NULL on error (recorded in the topology,
 * BROOK_ERR_INVALID_ARG: window NULL or of a struct_size this library does not know, an
 * unknown kind, a size/advance/gap <= 0, advance > size, more than BROOK_WINDOW_MAX_HOPS
 * hopping windows per record, a negative grace, a size, advance, gap or grace beyond 2^61
 * ms, a missing merge, an aggregator table version this library does not know). */
BROOK_API brook_stream_t *brook_window_aggregate(brook_stream_t *in, const brook_window_t *window,
                                                 const brook_aggregator_t *agg,
                                                 const brook_window_opts_t *opts);

/* The late-records side stream of a window operator built with late = BROOK_LATE_ROUTE (the
 * late records unchanged), or NULL (recorded in the topology) if it has none. */
BROOK_API brook_stream_t *brook_window_late(brook_stream_t *windowed);

#define BROOK_WINDOW_FINAL 1u /* flags: the window closed; this is its last result */

/* The header at the start of every window result value (native byte order). */
typedef struct brook_window_value {
  brook_time_t start;  /* inclusive */
  brook_time_t end;    /* exclusive */
  uint32_t flags;      /* BROOK_WINDOW_FINAL or 0 (an early result) */
  uint32_t result_len; /* bytes of result following the header */
} brook_window_value_t;

/* Reads a window result record: fills *out (may be NULL) and points *result at the result
 * bytes (may be NULL). BROOK_OK, or BROOK_ERR_INVALID_ARG if `rec` is not a window result. */
BROOK_API brook_err_t brook_window_parse(const brook_record_t *rec, brook_window_value_t *out,
                                         const void **result);

#ifdef __cplusplus
}
#endif
#endif
