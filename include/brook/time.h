/* Event time, watermarks and timers.
 *
 * Time unit: every time in the API is a brook_time_t in MILLISECONDS (see timestamp.h);
 * event time is the record's `timestamp`, processing time is the wall clock (or the test
 * driver's manual clock).
 *
 * A WATERMARK W is a source's promise that no more records with timestamp <= W will come
 * (records that still do are "late"). Sources compute watermarks per split (one split per
 * source for the built-in sources; one per partition for Kafka) with a strategy set by
 * brook_source_set_watermark(); a source's watermark is the minimum over its splits, an
 * operator's is the minimum over its inputs. A split (or a whole input) that has been idle
 * for `idle_timeout` stops holding the minimum back; when every split (input) is idle, the
 * watermark follows the slowest of those that advance_when_quiet still moves with the clock,
 * and stays put if none does. When every source has ended naturally
 * the watermark becomes BROOK_TIME_MAX, so every event-time timer fires (all windows close)
 * before end_of_input (each source's watermark becomes BROOK_TIME_MAX when it ends
 * naturally, so an operator reaches it once all its upstream sources have ended; a
 * brook_runtime_stop does not do this). Watermarks never go backwards. They advance between batches
 * (after each batch has passed through the pipeline), and operators see records first, then the
 * watermark that follows them.
 *
 * TIMESTAMP BOUNDS: a source can reject event times that cannot be right (negative, or far
 * ahead of the clock): one such record would otherwise move its split's watermark so far that
 * every later record of the split is late. A record outside the bounds is MALFORMED: it never
 * moves any watermark, is counted in stats.records_out_of_bounds, and fails with
 * BROOK_ERR_CORRUPT and a reason such as "timestamp 9223372036854775807 is more than 24 h ahead
 * of processing time 1767225600000". On a Kafka source it then follows on_malformed (fail,
 * skip, or dead-letter with the reason in brook.error.message); on other sources, and when a
 * timestamp extractor gave the time (the extracted time is the one checked), the topology's
 * error policy (fail, skip, or route to the error stream). Kafka sources check by default
 * (ts_bounds, below); other sources only check what is set.
 *
 * LATE RECORDS are visible: a record whose event time is at or behind its split's watermark
 * when it arrives is late for every window fed only by that split (on a source that tracks
 * event time: see brook_ctx_watermark); it is counted in
 * stats.records_behind_watermark, and once BROOK_LATE_WARN_RECORDS such records of one split
 * arrive within BROOK_LATE_WARN_PERIOD of processing time, the runtime's logger gets a warning
 * naming the source, the split (for Kafka: the partition) and its watermark, at most once per
 * source per BROOK_LATE_WARN_PERIOD.
 *
 * TIMERS: an operator registers event-time timers (fire when its watermark reaches the
 * time) and processing-time timers (fire when the clock reaches it) per key; they call the
 * operator's on_timer callback (operator.h). Windows, dedupe and joins are built on them. */
#ifndef BROOK_TIME_H
#define BROOK_TIME_H

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

/* ---- watermark strategies (per source) ---- */

/* Extracts the event time of `rec` into *ts. Return BROOK_OK, or an error for a record
 * whose time cannot be read (it then follows the topology's error policy and is not part
 * of the stream). Runs on the loop thread. */
typedef brook_err_t (*brook_timestamp_fn)(const brook_record_t *rec, brook_time_t *ts,
                                          void *opaque);

/* Custom strategy: called for every record of split `split` (after timestamp extraction)
 * with the split's current watermark; returns the split's new watermark (a smaller value
 * is ignored: watermarks never go back). Runs on the loop thread. */
typedef brook_time_t (*brook_watermark_fn)(const brook_record_t *rec, size_t split,
                                           brook_time_t current, void *opaque);

typedef enum brook_watermark_kind {
  /* Default. W = (largest timestamp seen) - max_delay - 1: records may arrive up to
   * max_delay ms out of order and still be on time. With max_delay 0 this is the
   * "monotonous" strategy (Kafka Streams' stream time minus 1). */
  BROOK_WATERMARK_BOUNDED = 0,
  /* Timestamps only go up: W = (largest timestamp seen) - 1. */
  BROOK_WATERMARK_MONOTONOUS = 1,
  /* W = custom(rec, ...) after each record. */
  BROOK_WATERMARK_CUSTOM = 2
} brook_watermark_kind_t;

typedef enum brook_ts_bounds {
  /* Default. Kafka sources: as BROOK_TS_BOUNDS_ON. Other sources (and the test driver, whose
   * clock starts at 0): only ts_max_ahead, if it is set (> 0); no lower bound. */
  BROOK_TS_BOUNDS_AUTO = 0,
  /* Event times below ts_min, or more than ts_max_ahead ahead of processing time, are
   * rejected. ts_max_ahead 0: BROOK_TS_MAX_AHEAD_DEFAULT on Kafka sources, no bound on
   * others. */
  BROOK_TS_BOUNDS_ON = 1,
  /* No check: every event time is accepted (a far-future one moves the watermark). */
  BROOK_TS_BOUNDS_OFF = 2
} brook_ts_bounds_t;

/* The default skew bound of Kafka sources: a message timestamp at most 24 hours ahead of the
 * consumer's wall clock. */
#define BROOK_TS_MAX_AHEAD_DEFAULT (24 * BROOK_H)

/* Late-record warning (see the top of this file): this many records of one split at or
 * behind its watermark within this much processing time. */
#define BROOK_LATE_WARN_RECORDS 100
#define BROOK_LATE_WARN_PERIOD (10 * BROOK_S)

typedef struct brook_watermark_opts {
  uint32_t struct_size; /* set by brook_watermark_opts_init() */
  brook_watermark_kind_t kind;
  brook_time_t max_delay;       /* BOUNDED: allowed disorder in ms; default 0 */
  brook_timestamp_fn timestamp; /* NULL (default): the record's own timestamp */
  void *timestamp_opaque;
  brook_watermark_fn custom; /* CUSTOM: required */
  void *custom_opaque;
  /* > 0: a split that received no record for this many ms of processing time is idle and
   * no longer holds the watermark back (until it receives a record again). If all splits of
   * a source are idle, the source no longer holds back its consumers. Idleness only lifts a
   * hold: it does not stop advance_when_quiet. 0 = never (default). */
  brook_time_t idle_timeout;
  /* > 0: once a split received no record for this many ms of processing time, its watermark
   * advances with the processing-time clock as if event time kept pace with it:
   * W = (bounded watermark at the last record) + (now - arrival of the last record). So a
   * quiet stream still closes its last windows, also once it is idle (with every split and
   * input idle, consumers follow the slowest split still moving). 0 = off (default). */
  brook_time_t advance_when_quiet;
  /* Timestamp bounds (appended: a caller whose struct_size ends before them gets AUTO). */
  brook_ts_bounds_t ts_bounds; /* default BROOK_TS_BOUNDS_AUTO */
  /* With the bounds ON: the smallest event time accepted. Default 0 (negative timestamps
   * rejected); BROOK_TIME_MIN accepts any. Ignored with AUTO on non-Kafka sources and OFF. */
  brook_time_t ts_min;
  /* > 0: an event time more than this many ms ahead of processing time is rejected (on any
   * source, unless ts_bounds is OFF). 0 (default): BROOK_TS_MAX_AHEAD_DEFAULT on Kafka
   * sources, no bound on others. */
  brook_time_t ts_max_ahead;
} brook_watermark_opts_t;

BROOK_API void brook_watermark_opts_init_size(brook_watermark_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_watermark_opts_init(brook_watermark_opts_t *opts) {
  brook_watermark_opts_init_size(opts, sizeof(*opts));
}

/* Sets the timestamp extractor and watermark strategy of the source producing `source`
 * (which must be a source's stream). `opts` is copied; the opaque pointers are borrowed and
 * must outlive every runtime. A source without a strategy uses the defaults (own timestamp,
 * bounded with max_delay 0, timestamp bounds AUTO). Returns BROOK_OK or an error recorded in the
 * topology (BROOK_ERR_INVALID_ARG for a non-source stream, a negative delay or ts_max_ahead,
 * CUSTOM without custom, an unknown kind or ts_bounds). */
BROOK_API brook_err_t brook_source_set_watermark(brook_stream_t *source,
                                                 const brook_watermark_opts_t *opts);

/* ---- timers (inside operator callbacks, loop thread) ---- */

typedef enum brook_time_domain {
  BROOK_EVENT_TIME = 0,     /* fires when the operator's watermark reaches `time` */
  BROOK_PROCESSING_TIME = 1 /* fires when processing time (brook_ctx_now) reaches `time` */
} brook_time_domain_t;

/* A timer as handed to on_timer: key and tag as registered. The key is borrowed for the
 * call. */
typedef struct brook_timer {
  brook_time_domain_t domain;
  brook_time_t time;
  const void *key;
  size_t key_len;
  uint64_t tag; /* free for the operator (windows put the window start here) */
} brook_timer_t;

/* Registers a timer for (domain, time, key, tag). The key is copied. Registering the same
 * (domain, time, key, tag) again before it fires has no further effect: it fires once.
 * Timers fire in order of time, then key (bytewise, shorter first on a common prefix), then
 * tag. An event-time timer at or before the current watermark fires at the end of the
 * current batch. Registration is O(log n) for a new timer and O(1) for one already pending.
 * BROOK_OK, BROOK_ERR_INVALID_ARG, BROOK_ERR_STATE (outside a callback of an operator that
 * has on_timer), BROOK_ERR_NOMEM. */
BROOK_API brook_err_t brook_timer_set(brook_ctx_t *ctx, brook_time_domain_t domain,
                                      brook_time_t time, const void *key, size_t key_len,
                                      uint64_t tag);

/* Cancels the pending timer (domain, time, key, tag). Returns BROOK_OK, BROOK_ERR_NOT_FOUND
 * (not pending: never set, already fired or cancelled) or BROOK_ERR_INVALID_ARG. O(log n). */
BROOK_API brook_err_t brook_timer_delete(brook_ctx_t *ctx, brook_time_domain_t domain,
                                         brook_time_t time, const void *key, size_t key_len,
                                         uint64_t tag);

/* Pending timers of the operator in `domain`. */
BROOK_API size_t brook_timer_count(const brook_ctx_t *ctx, brook_time_domain_t domain);

/* The operator's current event-time watermark (the minimum over its inputs), or
 * BROOK_TIME_MIN before any. A source whose records reach only the built-in callback
 * operators (map, filter, flat_map, peek, key_by, callback sinks) and that has no watermark
 * strategy, timestamp extractor or bounds does not track event time (it would cost a pass
 * over every batch); the first call of this function starts tracking on every source, so it
 * may see BROOK_TIME_MIN, or a watermark that does not yet reflect the batches before it. */
BROOK_API brook_time_t brook_ctx_watermark(const brook_ctx_t *ctx);

#ifdef __cplusplus
}
#endif
#endif
