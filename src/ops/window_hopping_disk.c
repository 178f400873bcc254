/* Hopping windows whose state is on disk (ops/window_disk.h): time is cut into slices of
 * gcd(size, advance), as in memory (window_hopping.c), and a record updates ONE per-slice
 * accumulator of its key, whatever size/advance is. A window [ws, ws + size) is combined from
 * its slices when it fires (merged key by key into a scratch segment, as in memory, so every
 * slice entry is read once; the scratch holds the window's keys during the firing only): its keys
 * come out ordered by their oldest slice in the window, then by arrival in that slice (the order of
 * the in-memory backend, window.h), each key's accumulator being its oldest slice's merged with the
 * later ones in time order. A slice no later window holds is closed after the firing, its disk
 * entries purged over the next commits.
 *
 * Timers are per firing time, as in memory: a new slice sets one timer, at the close of the
 * first window that may still fire holding it, and each firing emits every window closed by
 * then and sets one timer for the next window with data. The last window fired is kept on disk
 * with the slices ("m" in window_order), so that a restart neither fires a window twice nor
 * lets a record into one the watermark had closed. Loop thread. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/hash.h"
#include "ops/window_disk.h"

/* The first window to fire from now on that holds slice `s`. */
static brook_time_t next_window_of(const bk_win_t *w, brook_time_t s) {
  const bk_win_disk_t *d = w->disk;
  brook_time_t f = bk_win_hop_first(w->cfg, s), adv = w->cfg->w.advance;
  return d->done && d->done_ws + adv > f ? d->done_ws + adv : f;
}

static brook_err_t set_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t ws) {
  return brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, ws + w->cfg->w.size), NULL, 0,
                         0);
}

brook_err_t bk_wdisk_hopping_slice_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t s) {
  return set_timer(ctx, w, next_window_of(w, s));
}

/* Position of the first open slice (n_wins if none). */
static size_t first_open(const bk_win_disk_t *d) {
  size_t i = 0;
  while (i < d->n_wins && d->wins[i].purged != BK_WDISK_OPEN)
    i++;
  return i;
}

brook_err_t bk_wdisk_hopping_timers(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  size_t i = first_open(d);
  return i < d->n_wins ? set_timer(ctx, w, next_window_of(w, d->wins[i].start)) : BROOK_OK;
}

/* Room for n entries of the slices' scratch: {int64 start, pad, accumulator} each. */
static size_t accs_stride(const bk_win_t *w) { return 16 + ((w->acc_size + 15) & ~(size_t)15); }

static unsigned char *accs_room(bk_win_t *w, size_t n) {
  bk_win_disk_t *d = w->disk;
  size_t need = n * accs_stride(w);
  if (need > d->accs_cap) {
    size_t cap = need < 1024 ? 1024 : need * 2;
    unsigned char *p = bk_realloc(w->alloc, d->accs, cap);
    if (!p)
      return NULL;
    d->accs = p;
    d->accs_cap = cap;
  }
  return d->accs;
}

/* Early results: each open window holding slice `s`, combined from the key's slices. */
static brook_err_t emit_open_windows(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                     brook_time_t s) {
  bk_win_disk_t *d = w->disk;
  const bk_win_cfg_t *c = w->cfg;
  const brook_aggregator_t *agg = &c->agg;
  brook_time_t first = bk_win_hop_first(c, s), last = bk_win_floor(s, c->w.advance);
  size_t lo = bk_wdisk_lower(d, first), hi = bk_wdisk_lower(d, last + c->w.size), m = 0;
  size_t stride = accs_stride(w);
  unsigned char *accs = accs_room(w, hi - lo);
  size_t kl = bk_wdisk_acc_key(w, first, rec->key, rec->key_len);
  if (!accs || !kl)
    return BROOK_ERR_NOMEM;
  uint64_t h = bk_hash_bytes(rec->key, rec->key_len);
  brook_err_t err = BROOK_OK;
  for (size_t i = lo; i < hi; i++) {
    dwin_t *dw = &d->wins[i];
    if (dw->purged != BK_WDISK_OPEN)
      continue; /* closed: in closed windows only */
    bk_wdisk_start_key(w->kbuf, dw->start);
    const void *a = bk_wdisk_find(ctx, w, dw, kl, h, &err);
    if (err < 0)
      return err;
    if (!a)
      continue;
    unsigned char *e = accs + m++ * stride;
    memcpy(e, &dw->start, sizeof(dw->start));
    memcpy(e + 16, a, w->acc_size);
  }
  for (brook_time_t ws = first; ws <= last && err >= 0; ws += c->w.advance) {
    brook_time_t we = ws + c->w.size;
    if (bk_win_closed(w, we, ctx->wm))
      continue;
    int any = 0;
    for (size_t i = 0; i < m; i++) {
      brook_time_t st;
      memcpy(&st, accs + i * stride, sizeof(st));
      if (st < ws || st >= we)
        continue;
      if (any)
        agg->merge(w->acc_tmp, accs + i * stride + 16, agg);
      else
        memcpy(w->acc_tmp, accs + i * stride + 16, w->acc_size);
      any = 1;
    }
    if (any)
      err = bk_win_emit(ctx, w, rec->key, rec->key_len, ws, we, w->acc_tmp, 0);
  }
  return err;
}

brook_err_t bk_wdisk_hopping_one(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  const bk_win_cfg_t *c = w->cfg;
  bk_win_disk_t *d = w->disk;
  brook_time_t s, closed;
  int where = bk_win_hop_slice(w, rec->timestamp, ctx->wm, &s, &closed);
  if (where < 0)
    return bk_win_late(ctx, w, rec);
  if (where > 0 && (!d->done || closed > d->done_ws)) { /* none of them may fire from now on */
    d->done_ws = closed;
    d->done = 1;
  }
  brook_err_t err = BROOK_OK;
  dwin_t *dw = bk_wdisk_slice_for(ctx, w, s, &err);
  if (!dw)
    return err; /* an empty slice stays; it is closed when a later window fires */
  void *acc;
  if ((err = bk_wdisk_add(ctx, w, dw, rec, &acc)) < 0)
    return err;
  if (c->emit == BROOK_EMIT_ON_UPDATE)
    return emit_open_windows(ctx, w, rec, s);
  return BROOK_OK;
}

/* Adds a slice's accumulator of a key to the window's merged results (a new key takes a
 * copy: keys come out in the order they are first met, slices in time order). */
static brook_err_t merge_key(bk_win_t *w, const void *key, size_t klen, uint64_t h,
                             const void *acc) {
  bk_seg_t *out = &w->disk->merged;
  int created;
  void *m = bk_seg_upsert(out, key, klen, h, &created);
  if (!m)
    return BROOK_ERR_NOMEM;
  if (created)
    memcpy(m, acc, w->acc_size);
  else
    w->cfg->agg.merge(m, acc, &w->cfg->agg);
  return BROOK_OK;
}

/* Fires window [ws, ws + size): its slices are merged key by key, in time order and each in
 * arrival order (those on disk, their newest value from the segment if it has one, then the
 * segment's new keys), into a scratch segment that is emitted and emptied: every entry is read
 * once. */
static brook_err_t fire_window(brook_ctx_t *ctx, bk_win_t *w, brook_time_t ws) {
  bk_win_disk_t *d = w->disk;
  brook_time_t we = ws + w->cfg->w.size;
  size_t lo = bk_wdisk_lower(d, ws), hi = bk_wdisk_lower(d, we);
  brook_err_t err = BROOK_OK;
  for (size_t i = lo; i < hi && err >= 0; i++) {
    dwin_t *dw = &d->wins[i];
    if (dw->purged != BK_WDISK_OPEN)
      continue;
    for (uint64_t seq = 0; seq < dw->on_disk && err >= 0; seq++) {
      size_t kl;
      int found = bk_wdisk_key_at(ctx, w, dw, seq, &kl);
      if (found <= 0) {
        err = found;
        continue;
      }
      const unsigned char *key = w->kbuf + BK_WDISK_START_LEN;
      uint64_t h = bk_hash_bytes(key, kl - BK_WDISK_START_LEN);
      const void *acc = bk_wdisk_find(ctx, w, dw, kl, h, &err);
      if (acc)
        err = merge_key(w, key, kl - BK_WDISK_START_LEN, h, acc);
    }
    bk_seg_t *seg = &dw->seg; /* then the keys never written, in arrival order */
    for (size_t j = 0, n = bk_seg_count(seg); j < n && err >= 0; j++) {
      bk_seg_entry_t *e = bk_seg_at(seg, j);
      if (bk_wdisk_seq(d, bk_seg_acc(e)) >= dw->on_disk)
        err = merge_key(w, bk_seg_key(seg, e), e->klen, e->hash, bk_seg_acc(e));
    }
  }
  bk_seg_t *out = &d->merged;
  for (size_t j = 0, n = bk_seg_count(out); j < n && err >= 0; j++) {
    bk_seg_entry_t *e = bk_seg_at(out, j);
    err = bk_win_emit(ctx, w, bk_seg_key(out, e), e->klen, ws, we, bk_seg_acc(e), 1);
  }
  brook_err_t ferr = bk_wdisk_flush_port(ctx, w); /* results borrow the merged keys */
  bk_seg_free(out);                               /* scratch: its memory goes back at once */
  bk_seg_init(out, w->alloc, w->acc_size);
  return err < 0 ? err : ferr;
}

brook_err_t bk_win_disk_hopping_on_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t time) {
  bk_win_disk_t *d = w->disk;
  brook_err_t err = BROOK_OK;
  if (bk_win_restored(w) && (err = bk_win_disk_rebuild(ctx, w)) < 0)
    return err;
  brook_time_t upto = time > ctx->wm ? time : ctx->wm;
  for (size_t i = first_open(d); i < d->n_wins && err >= 0; i = first_open(d)) {
    brook_time_t ws = next_window_of(w, d->wins[i].start);
    if (bk_win_fire_time(w, ws + w->cfg->w.size) > upto) {
      err = set_timer(ctx, w, ws);
      break;
    }
    err = fire_window(ctx, w, ws);
    d->done_ws = ws;
    d->done = 1;
    /* Slices before the next window are in no window that may still fire. */
    for (size_t j = i; j < d->n_wins && d->wins[j].start < ws + w->cfg->w.advance;) {
      int kept = d->wins[j].purged != BK_WDISK_OPEN || d->wins[j].on_disk != 0;
      if (d->wins[j].purged == BK_WDISK_OPEN)
        bk_wdisk_close_slice(w, j);
      j += kept;
    }
  }
  bk_win_disk_noted(w);
  return err;
}
