/* Tumbling windows: one slice per window, [start, start + size) with start aligned to the
 * epoch. All keys' windows with the same start end together, so each start has a bucket
 * in the window store (state/window_store.h): a segment of user key -> accumulator, and ONE
 * event-time timer at
 * end - 1 + grace. When it fires, every window is emitted straight from the segment, in the
 * order the keys first arrived in it, and the segment is emptied at once and reused for a
 * later start (like Kafka Streams' segmented window stores): no per-window timer, no
 * composite key, no per-window delete and no sort. */
#include "core/context.h"
#include "ops/window_common.h"

static inline brook_err_t tumbling_one(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  brook_time_t size = w->cfg->w.size;
  brook_time_t start = bk_win_floor(rec->timestamp, size);
  if (bk_win_closed(w, start + size, ctx->wm))
    return bk_win_late(ctx, w, rec);
  int created;
  bk_wbucket_t *b = bk_wstore_bucket_for(w->ws, start, &created);
  if (!b)
    return BROOK_ERR_NOMEM;
  brook_err_t err;
  if (created && (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + size),
                                        NULL, 0, (uint64_t)start)) < 0)
    return err; /* the empty bucket stays; it is dropped when a later start fires */
  void *acc;
  if ((err = bk_wstore_bucket_add(w->ws, b, &w->cfg->agg, rec, &acc)) < 0)
    return err;
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return bk_win_emit(ctx, w, rec->key, rec->key_len, start, start + size, acc, 0);
  return BROOK_OK;
}

/* After a restore: one timer per start with data, as the records that made them set. */
brook_err_t bk_win_tumbling_rebuild(brook_ctx_t *ctx, bk_win_t *w) {
  w->ws_gen = w->ws->gen;
  for (size_t i = 0; i < w->ws->n_buckets; i++) {
    brook_time_t start = w->ws->buckets[i].start;
    brook_err_t err =
        brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + w->cfg->w.size), NULL, 0,
                        (uint64_t)start);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static brook_err_t tumbling_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                  size_t n) {
  bk_win_t *w = state;
  if (w->disk)
    return bk_win_disk_batch(ctx, w, recs, n);
  brook_err_t rerr;
  if (bk_win_restored(w) && (rerr = bk_win_tumbling_rebuild(ctx, w)) < 0)
    return rerr;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = tumbling_one(ctx, w, &recs[i]);
    if (err < 0 && (err = bk_win_record_failed(ctx, &recs[i], err)) < 0)
      return err;
  }
  return BROOK_OK;
}

static brook_err_t tumbling_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (((bk_win_t *)state)->disk)
    return bk_win_disk_batch(ctx, state, rec, 1);
  brook_err_t err;
  if (bk_win_restored(state) && (err = bk_win_tumbling_rebuild(ctx, state)) < 0)
    return err;
  return tumbling_one(ctx, state, rec);
}

static brook_err_t tumbling_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  bk_win_t *w = state;
  if (w->disk)
    return bk_win_disk_on_timer(ctx, w, (brook_time_t)t->tag);
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_tumbling_rebuild(ctx, w)) < 0)
    return err;
  brook_time_t start = (brook_time_t)t->tag;
  bk_wstore_t *ws = w->ws;
  size_t i = bk_wstore_bucket_lower(ws, start);
  err = BROOK_OK;
  if (i < ws->n_buckets && ws->buckets[i].start == start) {
    bk_seg_t *seg = &ws->buckets[i].seg;
    brook_time_t end = start + w->cfg->w.size;
    for (size_t j = 0, n = bk_seg_count(seg); j < n && err >= 0; j++) {
      bk_seg_entry_t *e = bk_seg_at(seg, j);
      err = bk_win_emit(ctx, w, bk_seg_key(seg, e), e->klen, start, end, bk_seg_acc(e), 1);
    }
    brook_err_t ferr = bk_ctx_flush(ctx); /* the results borrow the segment's keys */
    if (err >= 0)
      err = ferr;
  }
  bk_wstore_buckets_drop_before(ws, start + 1); /* this one, and any left empty by a failure */
  return err;
}

/* State on disk: what changed since the last commit goes to the stores now. */
static brook_err_t tumbling_flush(brook_ctx_t *ctx, void *state) {
  bk_win_t *w = state;
  return w->disk ? bk_win_disk_flush(ctx, w) : BROOK_OK;
}

const brook_operator_t bk_window_tumbling_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_tumbling",
    .open = bk_win_open,
    .process = tumbling_process,
    .process_batch = tumbling_batch,
    .close = bk_win_close,
    .flush = tumbling_flush,
    .on_timer = tumbling_on_timer,
    .on_watermark = bk_win_on_watermark,
};
