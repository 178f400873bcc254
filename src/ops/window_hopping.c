/* Hopping windows [k*advance, k*advance + size). Time is cut into slices of
 * gcd(size, advance) ms, and each slice start has a bucket (window_buckets.c): a segment of
 * user key -> the slice's accumulator, so a record costs one slice update whatever the
 * overlap. Each window end has ONE event-time timer for all keys (set when a slice of the
 * window first gets a record). When it fires, the window's slices are merged key by key
 * into a scratch segment with the aggregator's merge, every key's result is emitted (in the
 * order keys first appear, oldest slice first) and the slices no later window needs are
 * emptied at once and reused. Early results (BROOK_EMIT_ON_UPDATE) merge the updated key's
 * slices of each open window. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/hash.h"
#include "ops/window_common.h"
#include "runtime/runtime_impl.h"

/* Start of the first window (a multiple of advance) that contains slice `s`. */
static brook_time_t first_window(const bk_win_cfg_t *c, brook_time_t s) {
  return bk_win_floor(s - c->w.size, c->w.advance) + c->w.advance;
}

/* Early results: each open window holding slice `s`, merged from the key's slices. */
static brook_err_t emit_open_windows(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                     brook_time_t s) {
  const bk_win_cfg_t *c = w->cfg;
  const brook_aggregator_t *agg = &c->agg;
  brook_time_t first = first_window(c, s), last = bk_win_floor(s, c->w.advance);
  /* The key's accumulator in every bucket any of these windows covers (found once). */
  size_t lo = bk_win_bucket_lower(w, first), hi = bk_win_bucket_lower(w, last + c->w.size);
  size_t n = hi - lo;
  if (n > w->acc_ptrs_cap) {
    size_t cap = w->acc_ptrs_cap;
    if (bk_grow(w->alloc, (void **)&w->acc_ptrs, &cap, n, sizeof(*w->acc_ptrs)))
      return BROOK_ERR_NOMEM;
    w->acc_ptrs_cap = cap;
  }
  uint64_t h = bk_hash_bytes(rec->key, rec->key_len);
  for (size_t i = 0; i < n; i++)
    w->acc_ptrs[i] = bk_seg_find(&w->buckets[lo + i].seg, rec->key, rec->key_len, h);
  for (brook_time_t ws = first; ws <= last; ws += c->w.advance) {
    if (bk_win_closed(w, ws + c->w.size, ctx->wm))
      continue;
    bk_win_acc_fresh(w);
    for (size_t i = 0; i < n; i++) {
      brook_time_t st = w->buckets[lo + i].start;
      if (st >= ws && st < ws + c->w.size && w->acc_ptrs[i])
        agg->merge(w->acc_tmp, w->acc_ptrs[i], agg);
    }
    brook_err_t err =
        bk_win_emit(ctx, w, rec->key, rec->key_len, ws, ws + c->w.size, w->acc_tmp, 0);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

/* A timer for every window holding slice `s` that is still open. */
static brook_err_t set_timers(brook_ctx_t *ctx, bk_win_t *w, brook_time_t s) {
  const bk_win_cfg_t *c = w->cfg;
  for (brook_time_t ws = first_window(c, s); ws <= s; ws += c->w.advance) {
    if (bk_win_closed(w, ws + c->w.size, ctx->wm))
      continue;
    brook_err_t err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, ws + c->w.size),
                                      NULL, 0, (uint64_t)ws);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static brook_err_t hopping_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_t *w = state;
  const bk_win_cfg_t *c = w->cfg;
  brook_time_t s = bk_win_floor(rec->timestamp, c->slice);
  brook_time_t last = bk_win_floor(s, c->w.advance); /* latest window holding s */
  if (bk_win_closed(w, last + c->w.size, ctx->wm))
    return bk_win_late(ctx, w, rec);
  int created;
  bk_win_bucket_t *b = bk_win_bucket_for(w, s, &created);
  if (!b)
    return BROOK_ERR_NOMEM;
  brook_err_t err;
  if (created && (err = set_timers(ctx, w, s)) < 0)
    return err;
  void *acc;
  if ((err = bk_win_bucket_add(w, b, rec, &acc)) < 0)
    return err;
  if (c->emit == BROOK_EMIT_ON_UPDATE)
    return emit_open_windows(ctx, w, rec, s);
  return BROOK_OK;
}

/* Emits every key's result of window [ws, ws + size) from buckets [lo, hi). */
static brook_err_t emit_window(brook_ctx_t *ctx, bk_win_t *w, brook_time_t ws, size_t lo,
                               size_t hi) {
  const brook_aggregator_t *agg = &w->cfg->agg;
  brook_time_t we = ws + w->cfg->w.size;
  brook_err_t err = BROOK_OK;
  bk_seg_t *out = &w->buckets[lo].seg;
  if (hi - lo > 1) { /* merge the slices key by key */
    out = &w->merged;
    for (size_t i = lo; i < hi; i++) {
      bk_seg_t *seg = &w->buckets[i].seg;
      for (size_t j = 0, n = bk_seg_count(seg); j < n; j++) {
        bk_seg_entry_t *e = bk_seg_at(seg, j);
        int created;
        void *acc = bk_seg_upsert(out, bk_seg_key(seg, e), e->klen, e->hash, &created);
        if (!acc) {
          bk_seg_reset(out);
          return BROOK_ERR_NOMEM;
        }
        if (created) { /* segment accumulators are acc_words words long */
          const uint64_t *from = bk_seg_acc(e);
          for (size_t k = 0; k < out->acc_words; k++)
            ((uint64_t *)acc)[k] = from[k];
        } else
          agg->merge(acc, bk_seg_acc(e), agg);
      }
    }
  }
  for (size_t j = 0, n = bk_seg_count(out); j < n && err >= 0; j++) {
    bk_seg_entry_t *e = bk_seg_at(out, j);
    err = bk_win_emit(ctx, w, bk_seg_key(out, e), e->klen, ws, we, bk_seg_acc(e), 1);
  }
  brook_err_t ferr = bk_ctx_flush_ports(ctx); /* the results borrow the segments' keys */
  if (err >= 0)
    err = ferr;
  if (out == &w->merged)
    bk_seg_reset(out);
  return err;
}

static brook_err_t hopping_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  bk_win_t *w = state;
  const bk_win_cfg_t *c = w->cfg;
  brook_time_t ws = (brook_time_t)t->tag;
  size_t lo = bk_win_bucket_lower(w, ws), hi = bk_win_bucket_lower(w, ws + c->w.size);
  brook_err_t err = lo < hi ? emit_window(ctx, w, ws, lo, hi) : BROOK_OK;
  /* Later windows start at ws + advance or after: slices before that are done. */
  bk_win_buckets_drop_before(w, ws + c->w.advance);
  return err;
}

const brook_operator_t bk_window_hopping_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_hopping",
    .open = bk_win_open,
    .process = hopping_process,
    .close = bk_win_close,
    .on_timer = hopping_on_timer,
};
