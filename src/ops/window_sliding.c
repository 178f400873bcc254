/* Sliding windows (Kafka Streams' semantics, looking back): every distinct event time t of a
 * key defines the window [t - size + 1, t + 1). Each key has a ring (window_keys.h) of one
 * slice per distinct timestamp; the window of t fires at t + grace (a timer per key and
 * distinct t: one window each), pushes the key's slices up to t into the ring's back run,
 * evicts those before t - size + 1 and emits sfx + back: O(1) amortised per slice, where
 * merging every slice of the window made a dense key cost O(size) per record (and rewriting
 * its sorted index array O(size) more).
 *
 * A record whose own window already closed still counts in the key's later windows that are
 * open (if there is none it is late); if its slice is already pushed, the ring refreshes the
 * aggregates holding it. Slices no window can reach any more are evicted as windows fire and
 * by a cleanup timer at last + size - 1 + grace for the newest one; a key whose ring empties
 * is removed. Early results (BROOK_EMIT_ON_UPDATE) sweep the key's slices over its open
 * windows holding t with the same two stacks, in scratch. All of it lives in the operator's
 * window store (state/window_store.h): the rings, and in each slice a mark telling whether
 * its window's timer is pending, so a restored store implies its timers exactly. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/hash.h"
#include "ops/window_common.h"
#include "ops/window_keys.h"

/* Early results: every open window of the key that contains t, in order of end. */
static brook_err_t emit_updates(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                bk_wkey_t *k, brook_time_t t) {
  bk_wkeys_t *ks = w->slide;
  brook_time_t size = w->cfg->w.size;
  size_t lo = bk_ring_lower(&ks->rc, &k->ring, t - size + 1), hi = lo, m = 0;
  while (hi < k->ring.n && bk_ring_start(&ks->rc, &k->ring, hi) <= t + size - 1)
    hi++;
  if (bk_wkeys_sweep_reserve(ks, hi - lo) < 0)
    return BROOK_ERR_NOMEM;
  for (size_t i = lo; i < hi; i++) {
    ks->s_start[m] = bk_ring_start(&ks->rc, &k->ring, i);
    ks->s_acc[m++] = bk_ring_acc(&ks->rc, &k->ring, i);
  }
  bk_sweep_t sw;
  bk_sweep_init(&sw, m);
  for (size_t i = 0; i < m; i++) {
    brook_time_t end = ks->s_start[i] + 1;
    if (end <= t || bk_win_closed(w, end, ctx->wm))
      continue;
    const void *acc = bk_wkeys_sweep(ks, &sw, end - size, end);
    brook_err_t err = bk_win_emit(ctx, w, rec->key, rec->key_len, end - size, end, acc, 0);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

/* Whether the key has a window after t's own that is open and holds t. */
static int later_open(const bk_win_t *w, const bk_wkey_t *k, brook_time_t t, brook_time_t wm) {
  const bk_ring_cfg_t *rc = &w->slide->rc;
  for (size_t i = k ? bk_ring_lower(rc, &k->ring, t) : 0; k && i < k->ring.n; i++) {
    brook_time_t ti = bk_ring_start(rc, &k->ring, i);
    if (ti > t + w->cfg->w.size - 1)
      return 0;
    if (!bk_win_closed(w, ti + 1, wm))
      return 1;
  }
  return 0;
}

/* A ring element's seq holds which timers of its slice are pending, so that a restored
 * store implies its timers exactly (when an eviction happens decides how the two stacks
 * group merges, hence the last bits of a floating-point result). */
#define SLICE_TIMED 1u   /* its window got a timer; pending while the slice is >= upto */
#define SLICE_CLEANUP 2u /* its cleanup timer is pending */

static void slice_time(bk_wkeys_t *ks, bk_wkey_t *k, size_t i, uint64_t what) {
  unsigned char *seq = bk_ring_el(&ks->rc, &k->ring, i) + 8;
  uint64_t v;
  memcpy(&v, seq, 8);
  v |= what;
  memcpy(seq, &v, 8);
}

/* The timer `what` of slice t has fired. O(log slices). */
static void slice_untime(bk_wkeys_t *ks, bk_wkey_t *k, brook_time_t t, uint64_t what) {
  size_t i = bk_ring_lower(&ks->rc, &k->ring, t);
  if (i < k->ring.n && bk_ring_start(&ks->rc, &k->ring, i) == t) {
    unsigned char *seq = bk_ring_el(&ks->rc, &k->ring, i) + 8;
    uint64_t v;
    memcpy(&v, seq, 8);
    v &= ~what;
    memcpy(seq, &v, 8);
  }
}

/* After a restore: the timers the slices' marks say are pending. */
brook_err_t bk_win_sliding_rebuild(brook_ctx_t *ctx, bk_win_t *w) {
  bk_wkeys_t *ks = w->slide;
  brook_time_t size = w->cfg->w.size;
  w->ws_gen = w->ws->gen;
  size_t cur = 0;
  const void *key, *v;
  size_t kl, vl;
  while (brook_store_next(w->ws->keys, &cur, &key, &kl, &v, &vl)) {
    const bk_wkey_t *k = v;
    brook_err_t err;
    for (size_t i = 0; i < k->ring.n; i++) {
      brook_time_t t = bk_ring_start(&ks->rc, &k->ring, i);
      uint64_t marks = bk_ring_seq(&ks->rc, &k->ring, i);
      if ((marks & SLICE_TIMED) && t >= k->upto && /* else its window has fired */
          (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, t + 1), key, kl,
                                 (uint64_t)t)) < 0)
        return err;
      if ((marks & SLICE_CLEANUP) &&
          (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, t + size), key, kl,
                                 (uint64_t)t)) < 0)
        return err;
    }
  }
  return BROOK_OK;
}

static brook_err_t sliding_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_t *w = state;
  brook_err_t rerr;
  if (bk_win_restored(w) && (rerr = bk_win_sliding_rebuild(ctx, w)) < 0)
    return rerr;
  bk_wkeys_t *ks = w->slide;
  const brook_aggregator_t *agg = &w->cfg->agg;
  brook_time_t t = rec->timestamp;
  uint64_t hash = bk_hash_bytes(rec->key, rec->key_len);
  int own_open = !bk_win_closed(w, t + 1, ctx->wm);
  if (!own_open && !later_open(w, bk_wkeys_find(ks, rec->key, rec->key_len, hash), t, ctx->wm))
    return bk_win_late(ctx, w, rec);
  int created;
  brook_err_t err;
  bk_wkey_t *k = bk_wkeys_get(ks, rec->key, rec->key_len, hash, &created, &err);
  if (!k)
    return err;
  if (created)
    k->upto = BROOK_TIME_MIN;
  size_t pos = bk_ring_lower(&ks->rc, &k->ring, t);
  int fresh = !(pos < k->ring.n && bk_ring_start(&ks->rc, &k->ring, pos) == t);
  if (!fresh) {
    err = agg->add(bk_ring_acc(&ks->rc, &k->ring, pos), rec, agg);
  } else {
    int pushed = pos < k->ring.pe || (pos == k->ring.pe && t < k->upto);
    /* The element's seq says whether its window has a pending timer (set just below). */
    void *acc = bk_ring_insert(&ks->rc, &k->ring, pos, t, own_open ? SLICE_TIMED : 0, pushed);
    if (!acc)
      err = BROOK_ERR_NOMEM;
    else if ((err = agg->add(acc, rec, agg)) < 0)
      bk_ring_erase(&ks->rc, &k->ring, pos);
  }
  if (err < 0) {
    if (!k->ring.n)
      bk_wkeys_remove(ks, k);
    return err;
  }
  if (pos < k->ring.pe)
    bk_ring_refresh(&ks->rc, &k->ring, pos, bk_wkey_back(k));
  if (fresh && own_open &&
      (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, t + 1), rec->key,
                             rec->key_len, (uint64_t)t)) < 0)
    return err;
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return emit_updates(ctx, w, rec, k, t);
  return BROOK_OK;
}

/* Two kinds of timer, told apart by time: the window of slice t fires at t + grace; the
 * CLEANUP of slice t at t + size - 1 + grace, when no window that could still be created can
 * reach back to it (without it, a key's last slices would stay forever). */
static brook_err_t sliding_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *tm) {
  bk_win_t *w = state;
  bk_wkeys_t *ks = w->slide;
  brook_time_t t = (brook_time_t)tm->tag, size = w->cfg->w.size;
  brook_err_t err;
  if (bk_win_restored(w)) {
    if ((err = bk_win_sliding_rebuild(ctx, w)) < 0)
      return err;
    /* The rebuild re-set this timer too (its slice is still marked): it fires now, once. */
    (void)brook_timer_delete(ctx, tm->domain, tm->time, tm->key, tm->key_len, tm->tag);
  }
  bk_wkey_t *k = bk_wkeys_find(ks, tm->key, tm->key_len, bk_hash_bytes(tm->key, tm->key_len));
  if (!k)
    return BROOK_OK;
  if ((err = bk_wkeys_touch(ks, k)) < 0)
    return err;
  brook_time_t reach = tm->time - w->cfg->grace; /* the window end - 1 this timer is about */
  if (reach == t) {
    bk_ring_push(&ks->rc, &k->ring, t + 1, bk_wkey_back(k));
    if (t + 1 > k->upto)
      k->upto = t + 1;
    bk_ring_evict(&ks->rc, &k->ring, t - size + 1, bk_wkey_back(k));
    const void *acc = bk_wkeys_query(ks, k);
    if (acc &&
        (err = bk_win_emit_copy(ctx, w, tm->key, tm->key_len, t + 1 - size, t + 1, acc, 1)) < 0)
      return err;
  }
  /* Windows created later end after `reach`: they reach back to slices >= reach - size + 2.
   * Windows already pending (slice s >= reach, possibly firing at this same time after this
   * timer; not slice t when its own window just fired) reach back to s - size + 1.
   * Everything before both is done. */
  brook_time_t keep = reach - size + 2;
  size_t first_pending = bk_ring_lower(&ks->rc, &k->ring, reach == t ? reach + 1 : reach);
  if (first_pending < k->ring.n &&
      bk_ring_start(&ks->rc, &k->ring, first_pending) - size + 1 < keep)
    keep = bk_ring_start(&ks->rc, &k->ring, first_pending) - size + 1;
  bk_ring_evict(&ks->rc, &k->ring, keep, bk_wkey_back(k));
  /* A cleanup timer has fired: its slice, if still there, no longer has one pending. */
  if (reach != t && k->ring.n && bk_ring_start(&ks->rc, &k->ring, 0) <= t)
    slice_untime(ks, k, t, SLICE_CLEANUP);
  if (!k->ring.n) {
    bk_wkeys_remove(ks, k);
    return BROOK_OK;
  }
  if (size == 1)
    return BROOK_OK;
  /* The newest slice is freed by its cleanup timer unless a later record's window does it. */
  brook_time_t last = bk_ring_start(&ks->rc, &k->ring, k->ring.n - 1);
  if ((err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, last + size), tm->key,
                             tm->key_len, (uint64_t)last)) < 0)
    return err;
  slice_time(ks, k, k->ring.n - 1, SLICE_CLEANUP);
  return BROOK_OK;
}

static brook_err_t sliding_open(brook_ctx_t *ctx, void *opaque, void **state) {
  brook_err_t err = bk_win_open(ctx, opaque, state);
  if (err < 0)
    return err;
  bk_win_t *w = *state;
  if (!(w->slide = bk_calloc(w->alloc, 1, sizeof(*w->slide))))
    err = BROOK_ERR_NOMEM;
  else
    err = bk_wkeys_open(w->slide, w->ws, w->alloc);
  if (err < 0) {
    bk_win_close(w, opaque);
    return err;
  }
  return BROOK_OK;
}

void bk_win_slide_free(bk_win_t *w) {
  if (!w->slide)
    return;
  bk_wkeys_free(w->slide);
  bk_free(w->alloc, w->slide);
  w->slide = NULL;
}

size_t bk_win_slide_memory(const bk_win_t *w) {
  return w->slide ? sizeof(*w->slide) + bk_wkeys_memory(w->slide) : 0;
}

const brook_operator_t bk_window_sliding_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_sliding",
    .open = sliding_open,
    .process = sliding_process,
    .close = bk_win_close,
    .on_timer = sliding_on_timer,
    .on_watermark = bk_win_on_watermark,
};
