/* Sliding windows (Kafka Streams' semantics, looking back): every distinct event time t of a
 * key defines the window [t - size + 1, t + 1). Slices are per distinct timestamp; the
 * window of t fires at t + grace and merges the slices within it. A record whose own window
 * already closed still counts in the key's later windows that are open (if there is none it
 * is late). Slices older than any open window can reach are freed as windows fire. */

#include "core/context.h"
#include "ops/window_common.h"

/* Merges the slices of the window ending at t (inclusive) into w->acc_tmp. */
static void merge_window(bk_win_t *w, const void *key, size_t klen, const int64_t *idx, size_t n,
                         brook_time_t t) {
  bk_win_acc_fresh(w);
  for (size_t i = bk_win_lower_bound(idx, n, t - w->cfg->w.size + 1); i < n && idx[i] <= t; i++) {
    const void *acc = bk_win_slice_find(w, key, klen, idx[i]);
    if (acc)
      w->cfg->agg.merge(w->acc_tmp, acc, &w->cfg->agg);
  }
}

/* Early results: every open window of the key that contains t. */
static brook_err_t emit_updates(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                brook_time_t t) {
  size_t n;
  const int64_t *idx = bk_win_index_get(w, rec->key, rec->key_len, &n);
  for (size_t i = bk_win_lower_bound(idx, n, t); i < n && idx[i] <= t + w->cfg->w.size - 1; i++) {
    brook_time_t end = idx[i] + 1;
    if (bk_win_closed(w, end, ctx->wm))
      continue;
    merge_window(w, rec->key, rec->key_len, idx, n, idx[i]);
    brook_err_t err =
        bk_win_emit(ctx, w, rec->key, rec->key_len, end - w->cfg->w.size, end, w->acc_tmp, 0);
    if (err < 0)
      return err;
    idx = bk_win_index_get(w, rec->key, rec->key_len, &n); /* unchanged, but stay safe */
  }
  return BROOK_OK;
}

static brook_err_t sliding_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_t *w = state;
  brook_time_t t = rec->timestamp;
  int own_open = !bk_win_closed(w, t + 1, ctx->wm);
  if (!own_open) {
    /* Only the key's existing later windows that are still open can take it. */
    size_t n;
    const int64_t *idx = bk_win_index_get(w, rec->key, rec->key_len, &n);
    size_t i = bk_win_lower_bound(idx, n, t);
    while (i < n && idx[i] <= t + w->cfg->w.size - 1 && bk_win_closed(w, idx[i] + 1, ctx->wm))
      i++;
    if (i >= n || idx[i] > t + w->cfg->w.size - 1)
      return bk_win_late(ctx, w, rec);
  }
  int created;
  brook_err_t err = bk_win_slice_add(w, rec, t, &created, NULL);
  if (err < 0)
    return err;
  if (created) {
    if ((err = bk_win_index_insert(w, rec->key, rec->key_len, t)) < 0)
      return err;
    if (own_open && (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, t + 1),
                                           rec->key, rec->key_len, (uint64_t)t)) < 0)
      return err;
  }
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return emit_updates(ctx, w, rec, t);
  return BROOK_OK;
}

/* Two kinds of timer, told apart by time: the window of slice t fires at t + grace; the
 * CLEANUP of slice t at t + size - 1 + grace, when no window that could still be created can
 * reach back to it (without it, a key's last slice would stay forever). */
static brook_err_t sliding_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *tm) {
  bk_win_t *w = state;
  brook_time_t t = (brook_time_t)tm->tag, size = w->cfg->w.size;
  size_t n;
  const int64_t *idx = bk_win_index_get(w, tm->key, tm->key_len, &n);
  if (!n)
    return BROOK_OK;
  brook_err_t err;
  brook_time_t reach = tm->time - w->cfg->grace; /* the window end - 1 this timer is about */
  if (reach == t) {
    merge_window(w, tm->key, tm->key_len, idx, n, t);
    if ((err = bk_win_emit_copy(ctx, w, tm->key, tm->key_len, t + 1 - size, t + 1, w->acc_tmp, 1)) <
        0)
      return err;
  }
  /* Windows created later end after `reach`: they reach back to slices >= reach - size + 2.
   * Windows already pending (slice s >= reach, possibly firing at this same time after this
   * timer) reach back to s - size + 1. Everything before both is done. */
  brook_time_t keep = reach - size + 2;
  size_t first_pending = bk_win_lower_bound(idx, n, reach);
  if (first_pending < n && idx[first_pending] - size + 1 < keep)
    keep = idx[first_pending] - size + 1;
  size_t cut = bk_win_lower_bound(idx, n, keep);
  size_t rest = n - cut;
  brook_time_t last = idx[n - 1];
  if ((err = bk_win_drop_slices(w, tm->key, tm->key_len, idx, n, cut)) < 0)
    return err;
  if (!rest || size == 1)
    return BROOK_OK;
  /* The newest slice is freed by its cleanup timer unless a later record's window does it. */
  return brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, last + size), tm->key,
                         tm->key_len, (uint64_t)last);
}

const brook_operator_t bk_window_sliding_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_sliding",
    .open = bk_win_open,
    .process = sliding_process,
    .close = bk_win_close,
    .on_timer = sliding_on_timer,
};
