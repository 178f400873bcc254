/* Tumbling windows whose state is on disk (ops/window_disk.h): a window is one slice. A record
 * updates its key's accumulator in the window's slice; the window's one timer closes it: every
 * key is emitted in seq order (those on disk first, their newest value from the segment if it
 * has one, then the segment's new keys: the very order and bytes of the in-memory backend,
 * window_tumbling.c), and the slice's disk entries are purged over the next commits.
 * Loop thread. */
#include <string.h>

#include "core/context.h"
#include "core/hash.h"
#include "ops/window_disk.h"

brook_err_t bk_wdisk_tumbling_one(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  brook_time_t size = w->cfg->w.size;
  brook_time_t start = bk_win_floor(rec->timestamp, size);
  if (bk_win_closed(w, start + size, ctx->wm))
    return bk_win_late(ctx, w, rec);
  brook_err_t err = BROOK_OK;
  dwin_t *dw = bk_wdisk_slice_for(ctx, w, start, &err);
  if (!dw)
    return err; /* an empty window stays; it closes with nothing to emit */
  void *acc;
  if ((err = bk_wdisk_add(ctx, w, dw, rec, &acc)) < 0)
    return err;
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return bk_win_emit(ctx, w, rec->key, rec->key_len, start, start + size, acc, 0);
  return BROOK_OK;
}

/* Emits every key of window dw in seq order. */
static brook_err_t close_window(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw) {
  brook_err_t err = BROOK_OK;
  brook_time_t end = dw->start + w->cfg->w.size;
  for (uint64_t seq = 0; seq < dw->on_disk && err >= 0; seq++) {
    size_t kl;
    int found = bk_wdisk_key_at(ctx, w, dw, seq, &kl);
    if (found <= 0) {
      err = found;
      continue;
    }
    size_t klen = kl - BK_WDISK_START_LEN;
    const void *ekey = bk_wdisk_emit_key(ctx, w, w->kbuf + BK_WDISK_START_LEN, klen, &err);
    if (!ekey)
      break;
    const void *acc = bk_wdisk_find(ctx, w, dw, kl, bk_hash_bytes(ekey, klen), &err);
    if (acc)
      err = bk_win_emit(ctx, w, ekey, klen, dw->start, end, acc, 1);
  }
  /* Then the keys never written, in the segment in the order they arrived. */
  bk_seg_t *seg = &dw->seg;
  for (size_t j = 0, n = bk_seg_count(seg); j < n && err >= 0; j++) {
    bk_seg_entry_t *e = bk_seg_at(seg, j);
    if (bk_wdisk_seq(w->disk, bk_seg_acc(e)) >= dw->on_disk)
      err = bk_win_emit(ctx, w, bk_seg_key(seg, e), e->klen, dw->start, end, bk_seg_acc(e), 1);
  }
  return err;
}

brook_err_t bk_win_disk_on_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start) {
  bk_win_disk_t *d = w->disk;
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_disk_rebuild(ctx, w)) < 0)
    return err;
  err = BROOK_OK;
  /* This window, and any open one before it left by a failure. */
  for (size_t i = 0; i < d->n_wins && d->wins[i].start <= start && err >= 0;) {
    dwin_t *dw = &d->wins[i];
    if (dw->purged != BK_WDISK_OPEN) {
      i++;
      continue;
    }
    err = close_window(ctx, w, dw);
    brook_err_t ferr = bk_wdisk_flush_port(ctx, w); /* results borrow ekeys and segment keys */
    if (err >= 0)
      err = ferr;
    if (err < 0)
      break;
    int kept = dw->on_disk != 0;
    bk_wdisk_close_slice(w, i);
    i += kept;
  }
  bk_win_disk_noted(w);
  return err;
}
