/* What every window operator shares: its configuration and per-instance state, emitting
 * results and routing late records. Every window keeps all its state in stores of its
 * instance: tumbling, hopping and sliding windows in a window store (state/window_store.h),
 * session windows in an ordered store (window_session.c). The window kinds live in
 * window_tumbling.c, window_hopping.c, window_sliding.c and window_session.c. */
#ifndef BROOK_OPS_WINDOW_COMMON_H
#define BROOK_OPS_WINDOW_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <brook/state.h>
#include <brook/time.h>
#include <brook/window.h>

#include "core/context.h"
#include "core/hash.h"
#include "state/segment.h"
#include "state/store.h"
#include "state/window_store.h"

/* The node's configuration (the operator's opaque), copied from the builder's arguments. */
typedef struct bk_win_cfg {
  brook_window_t w;
  brook_time_t grace;
  brook_emit_mode_t emit;
  brook_late_policy_t late;
  brook_aggregator_t agg;
  brook_time_t slice; /* hopping: gcd(size, advance) */
} bk_win_cfg_t;

/* One operator instance's state. */
typedef struct bk_win {
  const bk_win_cfg_t *cfg;
  const brook_allocator_t *alloc; /* the topology's */
  size_t acc_size, result_size;
  /* Session windows only (window_session.c): */
  brook_store_t *slices; /* "sessions": key || encoded start -> end, accumulator */
  uint64_t slices_gen;   /* the store's change count after this operator's last change */
  int floors;            /* on disk: per-key floors of open session starts (window_session.c) */
  unsigned char *kbuf;   /* composite-key scratch */
  size_t kcap;
  unsigned char *acc_tmp; /* merge scratch */
  int64_t *arr_tmp;       /* (start, end) pairs of a key's sessions */
  size_t arr_cap;
  /* Tumbling, hopping and sliding: every bit of their state (segments per start, rings per
   * key, meta), and the store generation their derived structures were built from. */
  bk_wstore_t *ws;
  uint64_t ws_gen;
  /* Tumbling and hopping with state on disk (ctx->task_db; ops/window_disk.h, layout in
   * state/window_disk.h): ws is NULL and this is set instead. */
  struct bk_win_disk *disk;
  struct bk_hop *hop;     /* hopping: the keys' rings (window_hopping.c) */
  struct bk_wkeys *slide; /* sliding: the keys' rings (window_sliding.c) */
  /* Result values: one slot of `vstride` bytes per record slot of output port 0 (a slot is
   * reused only after the port has delivered the record in it). */
  unsigned char *vbuf;
  size_t vstride, vslots;
} bk_win_t;

/* Window arithmetic stays far from int64 overflow: timestamps, sizes, gaps and grace are
 * limited to +-2^61 ms (73 million years). */
#define BK_WIN_TIME_LIMIT ((brook_time_t)1 << 61)

/* Fails a record whose timestamp is out of range (error policy). */
brook_err_t bk_win_bad_time(brook_ctx_t *ctx, const brook_record_t *rec);

/* Checks a record's timestamp; out of range it fails the record (error policy). */
static inline brook_err_t bk_win_check_time(brook_ctx_t *ctx, const brook_record_t *rec) {
  if (rec->timestamp > -BK_WIN_TIME_LIMIT && rec->timestamp < BK_WIN_TIME_LIMIT)
    return BROOK_OK;
  return bk_win_bad_time(ctx, rec);
}

/* The event time up to which windows have closed: a window [s, e) is closed iff
 * e - 1 + grace <= watermark. */
static inline int bk_win_closed(const bk_win_t *w, brook_time_t end, brook_time_t wm) {
  return wm != BROOK_TIME_MIN && end - 1 + w->cfg->grace <= wm;
}

/* Timer time for a window ending at `end`. */
static inline brook_time_t bk_win_fire_time(const bk_win_t *w, brook_time_t end) {
  return end - 1 + w->cfg->grace;
}

/* Emits the window [start, end) of `key` with accumulator `acc`. The result value goes into
 * the port slot's value buffer; the key is BORROWED: it must stay valid until output port 0
 * is flushed (input records' keys are; segment keys are until the segment is reset, so
 * flush first). bk_win_emit_copy copies the key into the batch arena instead. */
static inline brook_err_t bk_win_emit(brook_ctx_t *ctx, bk_win_t *w, const void *key, size_t klen,
                                      brook_time_t start, brook_time_t end, const void *acc,
                                      int final) {
  bk_port_t *p = &ctx->ports[0];
  unsigned char *v = w->vbuf + p->n * w->vstride;
  size_t hdr = sizeof(brook_window_value_t);
  brook_window_value_t wv = {start, end, final ? BROOK_WINDOW_FINAL : 0, (uint32_t)w->result_size};
  memcpy(v, &wv, hdr);
  const brook_aggregator_t *agg = &w->cfg->agg;
  if (agg->result)
    agg->result(acc, v + hdr, agg);
  else
    memcpy(v + hdr, acc, w->result_size);
  brook_record_t *out = &p->buf[p->n];
  out->key = klen ? key : NULL;
  out->key_len = klen;
  out->value = v;
  out->value_len = hdr + w->result_size;
  out->timestamp = end - 1;
  out->headers = NULL;
  out->header_count = 0;
  return bk_emit_commit(ctx, 0);
}
brook_err_t bk_win_emit_copy(brook_ctx_t *ctx, bk_win_t *w, const void *key, size_t klen,
                             brook_time_t start, brook_time_t end, const void *acc, int final);

/* process_batch's handling of a record that failed with `err` (< 0): the error policy
 * (BROOK_OK: go on), or an error that ends the batch. */
brook_err_t bk_win_record_failed(brook_ctx_t *ctx, const brook_record_t *rec, brook_err_t err);

/* A record no open window accepts: drop and count, or route to the late stream. */
brook_err_t bk_win_late(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec);

/* The composite-key scratch w->kbuf with room for n bytes; NULL if no memory. */
unsigned char *bk_win_kbuf(bk_win_t *w, size_t n);

/* Scratch array of at least n elements (w->arr_tmp); NULL if no memory. */
int64_t *bk_win_scratch(bk_win_t *w, size_t n);

/* How many changes the store has seen (state/store.h counts those through a backend table):
 * an operator that remembers it after its own changes notices any other (a restore). */
static inline uint64_t bk_win_store_gen(const brook_store_t *s) { return s->gen; }

/* Whether the window's stores changed from outside the operator (a restore) since it last
 * looked: then it rebuilds what it derives from them (timers, lists) before anything else. */
int bk_win_disk_restored(const bk_win_t *w);
static inline int bk_win_restored(const bk_win_t *w) {
  if (w->disk)
    return bk_win_disk_restored(w);
  return w->ws ? w->ws_gen != w->ws->gen
               : w->slices && bk_win_store_gen(w->slices) != w->slices_gen;
}

/* The kinds' rebuilds after a restore: they set the timers the state implies (an
 * idempotent brook_timer_set, so restored timers are not doubled) and note the generation. */
brook_err_t bk_win_tumbling_rebuild(brook_ctx_t *ctx, bk_win_t *w);
brook_err_t bk_win_hopping_rebuild(brook_ctx_t *ctx, bk_win_t *w);
brook_err_t bk_win_sliding_rebuild(brook_ctx_t *ctx, bk_win_t *w);
brook_err_t bk_win_session_rebuild(brook_ctx_t *ctx, bk_win_t *w);

/* on_watermark of every kind: a restored window rebuilds at its first callback, and this is
 * the first when the watermark moves before any record comes (its timers at or before the
 * watermark then fire at once). */
brook_err_t bk_win_on_watermark(brook_ctx_t *ctx, void *state, brook_time_t wm);

/* Floor of t to a multiple of `step` (also for negative t). */
static inline brook_time_t bk_win_floor(brook_time_t t, brook_time_t step) {
  brook_time_t r = t % step;
  return r < 0 ? t - r - step : t - r;
}

/* The per-kind operator tables, all sharing open/close. */
extern const brook_operator_t bk_window_tumbling_op;
extern const brook_operator_t bk_window_hopping_op;
extern const brook_operator_t bk_window_sliding_op;
extern const brook_operator_t bk_window_session_op;

/* Hopping windows of at most this many slices are merged from their slices when they fire
 * (each slice is then merged into at most this many windows: sequential work that beats the
 * rings' per-key bookkeeping); larger ones use per-key rings (window_hopping.c). On disk only
 * the merged kind exists (window_hopping_disk.c): the rings stay in memory. */
#define BK_WIN_HOP_MERGE_MAX_SLICES 64

/* Whether a window of this configuration keeps its state on disk in a task database. */
static inline int bk_win_on_disk(const bk_win_cfg_t *c) {
  return c->w.kind == BROOK_WINDOW_TUMBLING ||
         (c->w.kind == BROOK_WINDOW_HOPPING && c->w.size / c->slice <= BK_WIN_HOP_MERGE_MAX_SLICES);
}

/* Start of the first hopping window (a multiple of advance) that contains slice `s`. */
static inline brook_time_t bk_win_hop_first(const bk_win_cfg_t *c, brook_time_t s) {
  return bk_win_floor(s - c->w.size, c->w.advance) + c->w.advance;
}

/* Where a hopping record goes: its slice in *s; -1 if it is late (every window holding it has
 * closed), 1 if some have (*closed: the start of the last closed one, which none of them may
 * fire after), else 0. */
static inline int bk_win_hop_slice(const bk_win_t *w, brook_time_t ts, brook_time_t wm,
                                   brook_time_t *s, brook_time_t *closed) {
  const bk_win_cfg_t *c = w->cfg;
  *s = bk_win_floor(ts, c->slice);
  brook_time_t last = bk_win_floor(*s, c->w.advance); /* latest window holding s */
  if (bk_win_closed(w, last + c->w.size, wm))
    return -1;
  /* Its first window ends after s, so it can only have closed if s + grace <= wm (checked
   * first: it spares the division of bk_win_hop_first on the usual record). */
  if (*s + c->grace > wm || !bk_win_closed(w, bk_win_hop_first(c, *s) + c->w.size, wm))
    return 0;
  /* The last closed start: ws + size - 1 + grace <= wm (no overflow: |wm| is bounded by a
   * closed window's end, itself within +-2^62, and size, grace <= 2^61). */
  *closed = bk_win_floor(wm - c->grace - c->w.size + 1, c->w.advance);
  return 1;
}

/* Bytes of hopping's meta in its window store (window_hopping.c). */
#define BK_WIN_HOP_META_SIZE 32

brook_err_t bk_win_open(brook_ctx_t *ctx, void *opaque, void **state);
void bk_win_close(void *state, void *opaque);

/* Tumbling and hopping on disk (ops/window_disk.h): bk_win_open calls open when the task
 * keeps its state on disk; the kinds' tables hand over to the others when w->disk is set.
 * Changes stay in the operator's memory until its flush, which the runtime calls at the start
 * of every commit. Same results, in the same order, as the in-memory window store gives. */
brook_err_t bk_win_disk_open(brook_ctx_t *ctx, bk_win_t *w);
void bk_win_disk_free(bk_win_t *w);
size_t bk_win_disk_memory(const bk_win_t *w);
brook_err_t bk_win_disk_batch(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *recs, size_t n);
brook_err_t bk_win_disk_on_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start);
brook_err_t bk_win_disk_hopping_on_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t time);
brook_err_t bk_win_disk_rebuild(brook_ctx_t *ctx, bk_win_t *w);
/* The operator's flush (at the start of every commit): writes what changed to the stores. */
brook_err_t bk_win_disk_flush(brook_ctx_t *ctx, bk_win_t *w);

/* Hopping's and sliding's own state (window_hopping.c, window_sliding.c): released by
 * bk_win_close, counted in the operator's memory. */
void bk_win_hop_free(bk_win_t *w);
size_t bk_win_hop_memory(const bk_win_t *w);
void bk_win_slide_free(bk_win_t *w);
size_t bk_win_slide_memory(const bk_win_t *w);

#endif
