/* Watermark generation for one source instance: per-split state (largest timestamp, last
 * arrival, idleness) under a strategy from brook_watermark_opts_t, combined into the
 * source's watermark. Pure bookkeeping: the runtime calls it on the loop thread. */
#ifndef BROOK_TIME_WATERMARK_H
#define BROOK_TIME_WATERMARK_H

#include <stddef.h>

#include <brook/alloc.h>
#include <brook/time.h>

typedef struct bk_wm_split {
  brook_time_t max_ts;       /* largest timestamp seen; BROOK_TIME_MIN before any */
  brook_time_t wm;           /* the split's watermark (never decreases) */
  brook_time_t wm_at_last;   /* the watermark right after the last record (quiet advance) */
  brook_time_t last_arrival; /* processing time of the last record, or of the split's start */
  int idle;                  /* no record for idle_timeout: holds nothing back */
  int present;               /* has had a record (splits between used numbers may have none) */
  /* Records at or behind the watermark on arrival, counted since behind_since (the late
   * warning's period). */
  uint64_t behind_n;
  brook_time_t behind_since;
} bk_wm_split_t;

/* How a watermark holds its consumers back: the value of bk_wm_gen_t.idle and of a node's
 * ctx->wm_idle (true = idle). Idleness only lifts a hold; it never stops the quiet advance:
 * when every input of a consumer is idle, the consumer follows the slowest of its inputs whose
 * watermark still moves with the clock (BK_WM_IDLE_MOVING), and stays put if there is none. */
enum {
  BK_WM_ACTIVE = 0,     /* holds the minimum */
  BK_WM_IDLE = 1,       /* holds nothing back and does not move */
  BK_WM_IDLE_MOVING = 2 /* holds nothing back, but moves with the clock (advance_when_quiet) */
};

/* The minimum over inputs (splits, sources, operators) by their BK_WM_* state: over the
 * active ones; if there is none, over the idle ones that still move. */
typedef struct bk_wm_fold {
  brook_time_t wm; /* the minimum over the inputs of the best class seen */
  int rank;        /* 2: an active input seen, 1: only idle moving ones, 0: none */
} bk_wm_fold_t;

static inline bk_wm_fold_t bk_wm_fold_new(void) { return (bk_wm_fold_t){BROOK_TIME_MAX, 0}; }

static inline void bk_wm_fold_add(bk_wm_fold_t *f, brook_time_t wm, int state) {
  int rank = state == BK_WM_ACTIVE ? 2 : state == BK_WM_IDLE_MOVING ? 1 : 0;
  if (rank > f->rank) {
    f->rank = rank;
    f->wm = wm;
  } else if (rank && rank == f->rank && wm < f->wm) {
    f->wm = wm;
  }
}

/* The fold's BK_WM_* state. Its wm counts only when the state is not BK_WM_IDLE. */
static inline int bk_wm_fold_state(const bk_wm_fold_t *f) {
  return f->rank == 2 ? BK_WM_ACTIVE : f->rank == 1 ? BK_WM_IDLE_MOVING : BK_WM_IDLE;
}

typedef struct bk_wm_gen {
  const brook_allocator_t *alloc;
  const brook_watermark_opts_t *opts; /* the node's strategy (defaults if the node has none) */
  bk_wm_split_t *splits;
  size_t n_splits, cap_splits;
  brook_time_t wm; /* combined over non-idle splits; never decreases */
  int idle;        /* BK_WM_*: every split is idle (or none had a record within idle_timeout) */
  brook_time_t started; /* processing time the source started (idleness without records) */
  int ended;            /* the source ended naturally: its watermark is BROOK_TIME_MAX */
  /* Timestamp bounds in force (bk_wm_bounds_set): event times below ts_min, or above
   * processing time + ts_max_ahead, are rejected. */
  int check_min, check_ahead;
  brook_time_t ts_min, ts_max_ahead;
  brook_time_t warned_at; /* processing time of the last late warning */
  int warned;
  /* The source stamps and observes its batches (bk_src_stamp): 1, or 0 when nothing needs
   * its event time, or -1 until decided at its first batch (runtime/event_time.c). */
  int track;
} bk_wm_gen_t;

/* The defaults (own timestamps, bounded with max_delay 0), for sources without a strategy. */
const brook_watermark_opts_t *bk_wm_default_opts(void);

void bk_wm_gen_init(bk_wm_gen_t *g, const brook_allocator_t *alloc,
                    const brook_watermark_opts_t *opts);
void bk_wm_gen_free(bk_wm_gen_t *g);

/* Resolves the timestamp bounds from the options: `strict` = the source checks by default
 * (Kafka sources: BROOK_TS_BOUNDS_AUTO means ON). bk_wm_gen_init sets them non-strict. */
void bk_wm_bounds_set(bk_wm_gen_t *g, int strict);

/* 1 if some timestamp bound is in force. */
static inline int bk_wm_bounds_on(const bk_wm_gen_t *g) { return g->check_min || g->check_ahead; }

/* BROOK_OK if event time `ts` is within the bounds at processing time `now`; else
 * BROOK_ERR_CORRUPT with the reason written to `why` (`cap` bytes, NUL-terminated). */
brook_err_t bk_wm_check_ts(const bk_wm_gen_t *g, brook_time_t ts, brook_time_t now, char *why,
                           size_t cap);

/* Notes that `n` records of split `s` arrived at or behind its watermark at processing time
 * `now`. Returns 1 if a late warning is due now (BROOK_LATE_WARN_RECORDS in one period, none
 * from this source in the last period); *count = the split's count in the period then. */
int bk_wm_note_behind(bk_wm_gen_t *g, bk_wm_split_t *s, size_t n, brook_time_t now,
                      uint64_t *count);

/* The source starts at processing time `now` (a source that never gets a record becomes idle
 * idle_timeout after that). */
void bk_wm_gen_start(bk_wm_gen_t *g, brook_time_t now);

/* Split `split`, created (active, last arrival = now) if it does not exist yet. NULL if out of
 * memory. */
bk_wm_split_t *bk_wm_split(bk_wm_gen_t *g, size_t split, brook_time_t now);

/* Split `split` is gone (a Kafka partition revoked): it holds nothing back until it gets a
 * record again (its watermark is kept: it never decreases). */
void bk_wm_split_retire(bk_wm_gen_t *g, size_t split);

/* Split `split`, if it exists, forgets its records: it starts again at processing time `now`
 * as if new (a Kafka partition assigned again gets a new task). The combined watermark still
 * never decreases. */
void bk_wm_split_restart(bk_wm_gen_t *g, size_t split, brook_time_t now);

/* A batch of records (already stamped with their event time) arrived on split `s` at
 * processing time `now`: advances the split's watermark. */
void bk_wm_observe(bk_wm_gen_t *g, bk_wm_split_t *s, size_t split, const brook_record_t *recs,
                   size_t n, brook_time_t now);

/* Processing time moved to `now`: marks idle splits, advances quiet ones. */
void bk_wm_tick(bk_wm_gen_t *g, brook_time_t now);

/* The split's BK_WM_* state. */
int bk_wm_split_state(const bk_wm_gen_t *g, const bk_wm_split_t *s);

/* Recomputes g->wm / g->idle from the splits. Returns 1 if the watermark advanced or the
 * idleness changed. */
int bk_wm_combine(bk_wm_gen_t *g);

/* When bk_wm_tick next needs to run for idleness or quiet advance (BROOK_TIME_MAX: never). */
brook_time_t bk_wm_next_tick(const bk_wm_gen_t *g, brook_time_t now);

#endif
