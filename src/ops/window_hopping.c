/* Hopping windows [k*advance, k*advance + size). Records update one slice of
 * gcd(size, advance) ms (O(1) per record); a window is merged from its slices when it fires.
 * The per-key index (sorted slice starts) lets a firing window find its slices and the next
 * window the key needs: each key has a chain of one pending timer, for the earliest window
 * not yet fired that holds any of its slices. Slices no later window needs are freed as
 * soon as a window fires. */

#include "core/context.h"
#include "ops/window_common.h"

/* Start of the first window (a multiple of advance) that contains slice `s`. */
static brook_time_t first_window(const bk_win_cfg_t *c, brook_time_t s) {
  return bk_win_floor(s - c->w.size, c->w.advance) + c->w.advance;
}

/* Merges the slices of window [ws, ws + size) of `key` into w->acc_tmp; returns how many. */
static size_t merge_window(bk_win_t *w, const void *key, size_t klen, const int64_t *idx, size_t n,
                           brook_time_t ws) {
  bk_win_acc_fresh(w);
  size_t found = 0;
  for (size_t i = bk_win_lower_bound(idx, n, ws); i < n && idx[i] < ws + w->cfg->w.size; i++) {
    const void *acc = bk_win_slice_find(w, key, klen, idx[i]);
    if (acc) {
      w->cfg->agg.merge(w->acc_tmp, acc, &w->cfg->agg);
      found++;
    }
  }
  return found;
}

static brook_err_t emit_open_windows(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                     brook_time_t s) {
  const bk_win_cfg_t *c = w->cfg;
  size_t n;
  for (brook_time_t ws = first_window(c, s); ws <= s; ws += c->w.advance) {
    if (bk_win_closed(w, ws + c->w.size, ctx->wm))
      continue;
    const int64_t *idx = bk_win_index_get(w, rec->key, rec->key_len, &n);
    merge_window(w, rec->key, rec->key_len, idx, n, ws);
    brook_err_t err =
        bk_win_emit(ctx, w, rec->key, rec->key_len, ws, ws + c->w.size, w->acc_tmp, 0);
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
  brook_err_t err = bk_win_slice_add(w, rec, s, &created, NULL);
  if (err < 0)
    return err;
  if (created) {
    if ((err = bk_win_index_insert(w, rec->key, rec->key_len, s)) < 0)
      return err;
    brook_time_t ws = first_window(c, s);
    while (bk_win_closed(w, ws + c->w.size, ctx->wm))
      ws += c->w.advance;
    /* The earliest open window of this slice. A later pending timer of the key stays: when
     * this one fires it chains to the next window anyway, and duplicates fire once. */
    if ((err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, ws + c->w.size), rec->key,
                               rec->key_len, (uint64_t)ws)) < 0)
      return err;
  }
  if (c->emit == BROOK_EMIT_ON_UPDATE)
    return emit_open_windows(ctx, w, rec, s);
  return BROOK_OK;
}

static brook_err_t hopping_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  bk_win_t *w = state;
  const bk_win_cfg_t *c = w->cfg;
  brook_time_t ws = (brook_time_t)t->tag;
  size_t n;
  const int64_t *idx = bk_win_index_get(w, t->key, t->key_len, &n);
  if (!n)
    return BROOK_OK; /* a duplicate of a window that already fired */
  brook_err_t err = BROOK_OK;
  if (merge_window(w, t->key, t->key_len, idx, n, ws))
    err = bk_win_emit(ctx, w, t->key, t->key_len, ws, ws + c->w.size, w->acc_tmp, 1);
  if (err < 0)
    return err;
  /* Later windows start at ws + advance or after: slices before that are done. */
  brook_time_t keep_from = ws + c->w.advance;
  size_t cut = bk_win_lower_bound(idx, n, keep_from);
  size_t rest = n - cut;
  brook_time_t next = rest ? idx[cut] : 0;
  if ((err = bk_win_drop_slices(w, t->key, t->key_len, idx, n, cut)) < 0)
    return err;
  if (!rest)
    return BROOK_OK;
  /* Chain: the next window holding any remaining slice. */
  brook_time_t nws = first_window(c, next);
  if (nws < keep_from)
    nws = keep_from;
  return brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, nws + c->w.size), t->key,
                         t->key_len, (uint64_t)nws);
}

const brook_operator_t bk_window_hopping_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_hopping",
    .open = bk_win_open,
    .process = hopping_process,
    .close = bk_win_close,
    .on_timer = hopping_on_timer,
};
