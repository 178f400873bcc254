/* Tumbling windows whose state is on disk (the task keeps its state in a RocksDB task
 * database): the layout of state/window_disk.h. A record updates its (window, key)
 * accumulator in place in the "window" store (the write cache absorbs it); a key new to its
 * window also gets an order entry, so that a closing window emits its keys in first-arrival
 * order, exactly as the in-memory window store does; closing walks the order entries and
 * deletes both entries of each key. The open windows and their key counts are kept in
 * memory (a handful) and written under "" of "window_order" at the end of every callback that
 * changed them. Loop thread. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "ops/window_common.h"
#include "state/window_disk.h"

typedef struct bk_win_disk {
  brook_store_t *acc;   /* "window": be64(start) || key -> accumulator */
  brook_store_t *order; /* "window_order": "" -> open windows; be64(start) || be64(seq) -> key */
  uint64_t acc_gen, order_gen; /* the stores' gen after this operator's last change */
  bk_wdisk_win_t *wins;        /* open windows, sorted by start */
  size_t n_wins, cap_wins, last;
  int wins_dirty;      /* the list differs from what "" holds */
  unsigned char *kbuf; /* be64(start) || key */
  size_t kcap;
  unsigned char *ekeys; /* keys of results not yet flushed (they borrow these bytes) */
  size_t ekeys_used, ekeys_cap;
} bk_win_disk_t;

#define EKEYS_BYTES ((size_t)64 << 10) /* results' keys kept between two flushes of the port */

static void note_gen(bk_win_disk_t *d) {
  d->acc_gen = bk_win_store_gen(d->acc);
  d->order_gen = bk_win_store_gen(d->order);
}

int bk_win_disk_restored(const bk_win_t *w) {
  const bk_win_disk_t *d = w->disk;
  return bk_win_store_gen(d->acc) != d->acc_gen || bk_win_store_gen(d->order) != d->order_gen;
}

/* Reads the open windows back from "". BROOK_OK, BROOK_ERR_CORRUPT or a store error. */
static brook_err_t load_wins(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  const void *v;
  size_t vl;
  d->n_wins = d->last = 0;
  d->wins_dirty = 0;
  brook_err_t err = brook_store_get(d->order, "", 0, &v, &vl);
  if (err == BROOK_ERR_NOT_FOUND)
    return BROOK_OK;
  if (err < 0) {
    brook_ctx_set_error(ctx, "window state: %s", brook_store_last_error(d->order));
    return err;
  }
  if (vl % sizeof(bk_wdisk_win_t)) {
    brook_ctx_set_error(ctx, "window state: the list of open windows has %zu bytes", vl);
    return BROOK_ERR_CORRUPT;
  }
  size_t n = vl / sizeof(bk_wdisk_win_t);
  if (n > d->cap_wins) {
    size_t cap = d->cap_wins;
    if (bk_grow(w->alloc, (void **)&d->wins, &cap, n, sizeof(*d->wins)))
      return BROOK_ERR_NOMEM;
    d->cap_wins = cap;
  }
  if (n)
    memcpy(d->wins, v, vl);
  d->n_wins = n;
  return BROOK_OK;
}

/* Writes the open windows under "" if they changed. */
static brook_err_t save_wins(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  if (!d->wins_dirty)
    return BROOK_OK;
  brook_err_t err = d->n_wins
                        ? brook_store_put(d->order, "", 0, d->wins, d->n_wins * sizeof(*d->wins))
                        : brook_store_delete(d->order, "", 0);
  if (err == BROOK_ERR_NOT_FOUND)
    err = BROOK_OK;
  if (err < 0) {
    brook_ctx_set_error(ctx, "window state: %s", brook_store_last_error(d->order));
    return err;
  }
  d->wins_dirty = 0;
  note_gen(d);
  return BROOK_OK;
}

brook_err_t bk_win_disk_open(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = bk_calloc(w->alloc, 1, sizeof(*d));
  if (!d)
    return BROOK_ERR_NOMEM;
  w->disk = d;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.ordered = 1; /* the default backend: the task database */
  so.value_size = w->acc_size;
  brook_err_t err = brook_store_open(ctx, "window", &so, &d->acc);
  so.value_size = 0;
  if (err >= 0)
    err = brook_store_open(ctx, "window_order", &so, &d->order);
  if (err >= 0)
    err = load_wins(ctx, w);
  if (err < 0)
    return err;
  /* The first callback sets the timers of the windows found (bk_win_disk_rebuild). */
  d->acc_gen = bk_win_store_gen(d->acc) - 1;
  return BROOK_OK;
}

void bk_win_disk_free(bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  if (!d)
    return; /* the stores belong to the runtime */
  bk_free(w->alloc, d->wins);
  bk_free(w->alloc, d->kbuf);
  bk_free(w->alloc, d->ekeys);
  bk_free(w->alloc, d);
  w->disk = NULL;
}

size_t bk_win_disk_memory(const bk_win_t *w) {
  const bk_win_disk_t *d = w->disk;
  return d ? sizeof(*d) + d->cap_wins * sizeof(*d->wins) + d->kcap + d->ekeys_cap : 0;
}

brook_err_t bk_win_disk_rebuild(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  brook_err_t err = load_wins(ctx, w);
  for (size_t i = 0; i < d->n_wins && err >= 0; i++) {
    brook_time_t start = d->wins[i].start;
    err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + w->cfg->w.size), NULL,
                          0, (uint64_t)start);
  }
  if (err >= 0)
    note_gen(d);
  return err;
}

/* The open window of `start`, added (with its timer) if new; NULL with *err on failure. */
static bk_wdisk_win_t *win_for(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start,
                               brook_err_t *err) {
  bk_win_disk_t *d = w->disk;
  if (d->last < d->n_wins && d->wins[d->last].start == start)
    return &d->wins[d->last]; /* most records hit the previous record's window */
  size_t lo = 0, hi = d->n_wins;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (d->wins[mid].start < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < d->n_wins && d->wins[lo].start == start) {
    d->last = lo;
    return &d->wins[lo];
  }
  if (d->n_wins == d->cap_wins) {
    size_t cap = d->cap_wins;
    if (bk_grow(w->alloc, (void **)&d->wins, &cap, d->n_wins + 1, sizeof(*d->wins))) {
      *err = BROOK_ERR_NOMEM;
      return NULL;
    }
    d->cap_wins = cap;
  }
  *err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + w->cfg->w.size), NULL,
                         0, (uint64_t)start);
  if (*err < 0)
    return NULL;
  memmove(d->wins + lo + 1, d->wins + lo, (d->n_wins - lo) * sizeof(*d->wins));
  d->wins[lo] = (bk_wdisk_win_t){start, 0};
  d->n_wins++;
  d->last = lo;
  d->wins_dirty = 1;
  return &d->wins[lo];
}

/* d->kbuf = be64(start) || key; its length, or 0 out of memory. */
static size_t acc_key(bk_win_t *w, brook_time_t start, const void *key, size_t klen) {
  bk_win_disk_t *d = w->disk;
  size_t n = BK_WDISK_START_LEN + klen;
  if (n > d->kcap) {
    size_t cap = n < 64 ? 64 : n * 2;
    unsigned char *p = bk_realloc(w->alloc, d->kbuf, cap);
    if (!p)
      return 0;
    d->kbuf = p;
    d->kcap = cap;
  }
  bk_wdisk_start_key(d->kbuf, start);
  if (klen)
    memcpy(d->kbuf + BK_WDISK_START_LEN, key, klen);
  return n;
}

static brook_err_t store_failed(brook_ctx_t *ctx, brook_store_t *s, brook_err_t err) {
  if (err != BROOK_ERR_NOMEM)
    brook_ctx_set_error(ctx, "window state: %s", brook_store_last_error(s));
  return err;
}

static brook_err_t disk_one(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_disk_t *d = w->disk;
  brook_time_t size = w->cfg->w.size;
  brook_time_t start = bk_win_floor(rec->timestamp, size);
  if (bk_win_closed(w, start + size, ctx->wm))
    return bk_win_late(ctx, w, rec);
  brook_err_t err = BROOK_OK;
  bk_wdisk_win_t *win = win_for(ctx, w, start, &err);
  if (!win)
    return err; /* an empty window stays; it closes with nothing to emit */
  size_t kl = acc_key(w, start, rec->key, rec->key_len);
  if (!kl)
    return BROOK_ERR_NOMEM;
  void *acc;
  int created;
  if ((err = brook_store_update(d->acc, d->kbuf, kl, &acc, &created)) < 0)
    return store_failed(ctx, d->acc, err);
  const brook_aggregator_t *agg = &w->cfg->agg;
  if (created && agg->init)
    agg->init(acc, agg);
  err = agg->add(acc, rec, agg);
  if (created) {
    if (err >= 0) { /* its place in the window's emission order */
      unsigned char ok[BK_WDISK_ORDER_LEN];
      bk_wdisk_order_key(ok, start, win->keys);
      if ((err = brook_store_put(d->order, ok, sizeof(ok), rec->key, rec->key_len)) < 0)
        store_failed(ctx, d->order, err);
      else
        win->keys++, d->wins_dirty = 1;
    }
    if (err < 0) /* no window for a refused record */
      (void)brook_store_delete(d->acc, d->kbuf, kl);
  }
  note_gen(d);
  if (err < 0 || w->cfg->emit != BROOK_EMIT_ON_UPDATE)
    return err;
  /* acc is still the store's view: only the other store was called since. */
  return bk_win_emit(ctx, w, rec->key, rec->key_len, start, start + size, acc, 0);
}

brook_err_t bk_win_disk_batch(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *recs, size_t n) {
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_disk_rebuild(ctx, w)) < 0)
    return err;
  for (size_t i = 0; i < n; i++) {
    err = disk_one(ctx, w, &recs[i]);
    if (err < 0 && (err = bk_win_record_failed(ctx, &recs[i], err)) < 0) {
      (void)save_wins(ctx, w);
      return err;
    }
  }
  return save_wins(ctx, w);
}

/* A copy of a result's key that stays valid until output port 0 is flushed; NULL out of
 * memory. Flushes the port when the copies fill their buffer. */
static const void *emit_key(brook_ctx_t *ctx, bk_win_t *w, const void *key, size_t klen,
                            brook_err_t *err) {
  bk_win_disk_t *d = w->disk;
  *err = BROOK_OK;
  if (d->ekeys_used + klen > d->ekeys_cap) {
    if ((*err = bk_ctx_flush(ctx)) < 0)
      return NULL;
    d->ekeys_used = 0; /* nothing borrows the copies any more */
    if (klen > d->ekeys_cap) {
      size_t cap = klen > EKEYS_BYTES ? klen : EKEYS_BYTES;
      unsigned char *p = bk_realloc(w->alloc, d->ekeys, cap);
      if (!p) {
        *err = BROOK_ERR_NOMEM;
        return NULL;
      }
      d->ekeys = p;
      d->ekeys_cap = cap;
    }
  }
  unsigned char *k = d->ekeys + d->ekeys_used;
  if (klen)
    memcpy(k, key, klen);
  d->ekeys_used += klen;
  return k;
}

/* Emits the seq-th key of window `start` and deletes its entries. */
static brook_err_t close_key(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start, uint64_t seq) {
  bk_win_disk_t *d = w->disk;
  unsigned char ok[BK_WDISK_ORDER_LEN];
  bk_wdisk_order_key(ok, start, seq);
  const void *key, *acc;
  size_t klen, alen;
  brook_err_t err = brook_store_get(d->order, ok, sizeof(ok), &key, &klen);
  if (err == BROOK_ERR_NOT_FOUND)
    return BROOK_OK; /* closed already, before a failure stopped the walk */
  if (err < 0)
    return store_failed(ctx, d->order, err);
  size_t kl = acc_key(w, start, key, klen);
  const void *ekey = kl ? emit_key(ctx, w, key, klen, &err) : NULL;
  if (!kl || !ekey)
    return kl ? err : BROOK_ERR_NOMEM;
  if ((err = brook_store_get(d->acc, d->kbuf, kl, &acc, &alen)) < 0)
    return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : store_failed(ctx, d->acc, err);
  if ((err = bk_win_emit(ctx, w, ekey, klen, start, start + w->cfg->w.size, acc, 1)) < 0)
    return err;
  if ((err = brook_store_delete(d->acc, d->kbuf, kl)) < 0 ||
      (err = brook_store_delete(d->order, ok, sizeof(ok))) < 0)
    return store_failed(ctx, d->order, err);
  return BROOK_OK;
}

brook_err_t bk_win_disk_on_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start) {
  bk_win_disk_t *d = w->disk;
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_disk_rebuild(ctx, w)) < 0)
    return err;
  err = BROOK_OK;
  /* This window, and any before it left open by a failure. */
  while (d->n_wins && d->wins[0].start <= start && err >= 0) {
    bk_wdisk_win_t win = d->wins[0];
    for (uint64_t seq = 0; seq < win.keys && err >= 0; seq++)
      err = close_key(ctx, w, win.start, seq);
    if (err < 0)
      break;
    memmove(d->wins, d->wins + 1, (d->n_wins - 1) * sizeof(*d->wins));
    d->n_wins--;
    d->last = 0;
    d->wins_dirty = 1;
  }
  brook_err_t ferr = bk_ctx_flush(ctx); /* the results borrow ekeys */
  d->ekeys_used = 0;
  note_gen(d);
  brook_err_t serr = save_wins(ctx, w);
  return err < 0 ? err : ferr < 0 ? ferr : serr;
}
