/* Session windows: per key, records less than `gap` ms apart form a session
 * [first ts, last ts + gap). The index holds each key's open sessions as sorted,
 * non-overlapping (start, end) pairs; the slice store holds one accumulator per session,
 * under its start. A record overlapping several sessions merges them (aggregator merge),
 * and each session has exactly one pending timer (moved when the session grows). */
#include <string.h>

#include "core/context.h"
#include "ops/window_common.h"
#include "state/store.h"

static brook_err_t emit_session(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                brook_time_t s, brook_time_t e) {
  const void *acc = bk_win_slice_find(w, rec->key, rec->key_len, s);
  return acc ? bk_win_emit(ctx, w, rec->key, rec->key_len, s, e, acc, 0) : BROOK_OK;
}

static brook_err_t session_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_t *w = state;
  const brook_aggregator_t *agg = &w->cfg->agg;
  const void *key = rec->key;
  size_t klen = rec->key_len;
  brook_time_t t = rec->timestamp, gap = w->cfg->w.gap;
  size_t n2;
  const int64_t *pairs = bk_win_index_get(w, key, klen, &n2);
  size_t n = n2 / 2;
  /* Sessions overlapping [t, t + gap) are contiguous in start order. */
  size_t lo = 0;
  while (lo < n && pairs[2 * lo + 1] <= t)
    lo++;
  size_t hi = lo;
  brook_time_t ms = t, me = t + gap;
  while (hi < n && pairs[2 * hi] < t + gap) {
    ms = pairs[2 * hi] < ms ? pairs[2 * hi] : ms;
    me = pairs[2 * hi + 1] > me ? pairs[2 * hi + 1] : me;
    hi++;
  }
  if (hi == lo && bk_win_closed(w, me, ctx->wm))
    return bk_win_late(ctx, w, rec);
  brook_err_t err;
  if (hi - lo == 1 && pairs[2 * lo] == ms) {
    /* The common case: the record falls into (or extends) one session with the same start. */
    brook_time_t old_end = pairs[2 * lo + 1];
    int created;
    if ((err = bk_win_slice_add(w, rec, ms, &created, NULL)) < 0)
      return err;
    if (me != old_end) {
      brook_timer_delete(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, old_end), key, klen,
                         (uint64_t)ms);
      int64_t *tmp = bk_win_scratch(w, n2);
      if (!tmp)
        return BROOK_ERR_NOMEM;
      memcpy(tmp, pairs, n2 * sizeof(*tmp));
      tmp[2 * lo + 1] = me;
      if ((err = bk_win_index_put(w, key, klen, tmp, n2)) < 0 ||
          (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, me), key, klen,
                                 (uint64_t)ms)) < 0)
        return err;
    }
  } else {
    /* A new session, or a merge: fold everything into a fresh accumulator first, so a
     * refused record changes nothing. */
    bk_win_acc_fresh(w);
    if ((err = agg->add(w->acc_tmp, rec, agg)) < 0)
      return err;
    for (size_t i = lo; i < hi; i++) {
      const void *acc = bk_win_slice_find(w, key, klen, pairs[2 * i]);
      if (acc)
        agg->merge(w->acc_tmp, acc, agg);
    }
    int64_t *tmp = bk_win_scratch(w, n2 + 2);
    if (!tmp)
      return BROOK_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      if (i >= lo && i < hi) {
        brook_timer_delete(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, pairs[2 * i + 1]), key, klen,
                           (uint64_t)pairs[2 * i]);
        bk_win_slice_remove(w, key, klen, pairs[2 * i]);
        if (i == lo) {
          tmp[k++] = ms;
          tmp[k++] = me;
        }
        continue;
      }
      if (i == lo && lo == hi) { /* a new session goes before pairs[lo] */
        tmp[k++] = ms;
        tmp[k++] = me;
      }
      tmp[k++] = pairs[2 * i];
      tmp[k++] = pairs[2 * i + 1];
    }
    if (lo == hi && lo == n) {
      tmp[k++] = ms;
      tmp[k++] = me;
    }
    size_t kl = bk_win_slice_key(w, key, klen, ms);
    void *acc;
    int created;
    if (!kl)
      return BROOK_ERR_NOMEM;
    if ((err = bk_store_upsert(w->slices, w->kbuf, kl, bk_hash_bytes(w->kbuf, kl), &acc,
                               &created)) < 0)
      return err;
    memcpy(acc, w->acc_tmp, w->acc_size);
    if ((err = bk_win_index_put(w, key, klen, tmp, k)) < 0 ||
        (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, me), key, klen,
                               (uint64_t)ms)) < 0)
      return err;
  }
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return emit_session(ctx, w, rec, ms, me);
  return BROOK_OK;
}

static brook_err_t session_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *tm) {
  bk_win_t *w = state;
  brook_time_t s = (brook_time_t)tm->tag;
  size_t n2;
  const int64_t *pairs = bk_win_index_get(w, tm->key, tm->key_len, &n2);
  size_t n = n2 / 2, i = 0;
  while (i < n && pairs[2 * i] != s)
    i++;
  if (i == n)
    return BROOK_OK;
  brook_time_t e = pairs[2 * i + 1];
  const void *acc = bk_win_slice_find(w, tm->key, tm->key_len, s);
  brook_err_t err = acc ? bk_win_emit_copy(ctx, w, tm->key, tm->key_len, s, e, acc, 1) : BROOK_OK;
  if (err < 0)
    return err;
  bk_win_slice_remove(w, tm->key, tm->key_len, s);
  int64_t *tmp = bk_win_scratch(w, n2);
  if (!tmp)
    return BROOK_ERR_NOMEM;
  memcpy(tmp, pairs, 2 * i * sizeof(*tmp));
  memcpy(tmp + 2 * i, pairs + 2 * i + 2, (n2 - 2 * i - 2) * sizeof(*tmp));
  return bk_win_index_put(w, tm->key, tm->key_len, tmp, n2 - 2);
}

const brook_operator_t bk_window_session_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_session",
    .open = bk_win_open,
    .process = session_process,
    .close = bk_win_close,
    .on_timer = session_on_timer,
};
