/* Tumbling windows whose state is on disk (the task keeps its state in a RocksDB task
 * database), in the layout of state/window_disk.h, with the operator's own write-behind
 * cache in front: between two commits a window's changed accumulators live in a segment of
 * the window in memory (key -> accumulator || seq, first-arrival order), exactly as in the
 * in-memory window store, and the operator's flush (which the runtime calls at the start of
 * every commit, before the task database collects its stores) writes them to the "window"
 * and "window_order" stores and empties the segments. So:
 * - a record costs a segment lookup, as in memory; a key new to its segment reads the disk
 *   only if its window has entries there (a window never written skips it entirely);
 * - a window that opens and closes between two commits (the common case: commits are
 *   wall-clock, windows event time) never touches RocksDB at all;
 * - memory is the entries changed since the last commit (a commit bounds it, as it bounds
 *   the write cache's dirty entries), not the keys or open windows;
 * - closing a window emits seq 0 .. keys - 1 in order: those on disk first (their newest
 *   value from the segment if it has one), then the segment's new keys: the very order and
 *   bytes of the in-memory backend; its disk entries are purged over the next commits, a
 *   bounded number per commit (window_disk.h).
 * Loop thread. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/hash.h"
#include "ops/window_common.h"
#include "state/segment.h"
#include "state/window_disk.h"

/* A window: open, or closed with entries left to purge from disk. */
typedef struct dwin {
  brook_time_t start;
  uint64_t keys;    /* keys that arrived: the next seq */
  uint64_t on_disk; /* seqs [0, on_disk) have their entries on disk */
  uint64_t purged;  /* BK_WDISK_OPEN, or closed: seqs [0, purged) deleted from disk */
  bk_seg_t seg;     /* changed since the last commit: key -> accumulator || u64 seq */
} dwin_t;

typedef struct bk_win_disk {
  brook_store_t *acc;   /* "window": be64(start) || key -> accumulator || seq */
  brook_store_t *order; /* "window_order": "" -> open windows; be64(start) || be64(seq) -> key */
  uint64_t acc_gen, order_gen; /* the stores' gen after this operator's last change */
  size_t seq_off;              /* where the seq follows the accumulator (8-aligned) */
  dwin_t *wins;                /* windows, sorted by start */
  size_t n_wins, cap_wins, last;
  bk_wdisk_win_t *list; /* scratch for the list written under "" */
  size_t list_cap;
  unsigned char *ekeys; /* keys of results not yet flushed (they borrow these bytes) */
  size_t ekeys_used, ekeys_cap;
} bk_win_disk_t;

#define EKEYS_BYTES ((size_t)64 << 10)     /* results' keys kept between two flushes of the port */
#define SEG_KEEP_BYTES ((size_t)256 << 10) /* a commit frees a segment bigger than this */

static size_t acc_key(bk_win_t *w, brook_time_t start, const void *key, size_t klen);

static void note_gen(bk_win_disk_t *d) {
  d->acc_gen = bk_win_store_gen(d->acc);
  d->order_gen = bk_win_store_gen(d->order);
}

int bk_win_disk_restored(const bk_win_t *w) {
  const bk_win_disk_t *d = w->disk;
  return bk_win_store_gen(d->acc) != d->acc_gen || bk_win_store_gen(d->order) != d->order_gen;
}

static brook_err_t store_failed(brook_ctx_t *ctx, brook_store_t *s, brook_err_t err) {
  if (err != BROOK_ERR_NOMEM)
    brook_ctx_set_error(ctx, "window state: %s", brook_store_last_error(s));
  return err;
}

static void drop_wins(bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  for (size_t i = 0; i < d->n_wins; i++)
    bk_seg_free(&d->wins[i].seg);
  d->n_wins = d->last = 0;
}

/* Room for one more window. */
static brook_err_t wins_room(bk_win_t *w, size_t n) {
  bk_win_disk_t *d = w->disk;
  if (n <= d->cap_wins)
    return BROOK_OK;
  size_t cap = d->cap_wins;
  if (bk_grow(w->alloc, (void **)&d->wins, &cap, n, sizeof(*d->wins)))
    return BROOK_ERR_NOMEM;
  d->cap_wins = cap;
  return BROOK_OK;
}

/* The open windows as the last commit left them (what "" holds); nothing in memory. */
static brook_err_t load_wins(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  drop_wins(w);
  const void *v;
  size_t vl;
  brook_err_t err = brook_store_get(d->order, "", 0, &v, &vl);
  if (err == BROOK_ERR_NOT_FOUND)
    return BROOK_OK;
  if (err < 0)
    return store_failed(ctx, d->order, err);
  if (vl % sizeof(bk_wdisk_win_t)) {
    brook_ctx_set_error(ctx, "window state: the list of open windows has %zu bytes", vl);
    return BROOK_ERR_CORRUPT;
  }
  size_t n = vl / sizeof(bk_wdisk_win_t);
  if (wins_room(w, n) < 0)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    bk_wdisk_win_t x;
    memcpy(&x, (const unsigned char *)v + i * sizeof(x), sizeof(x));
    dwin_t *dw = &d->wins[i];
    dw->start = x.start;
    dw->keys = dw->on_disk = x.keys;
    dw->purged = x.purged;
    bk_seg_init(&dw->seg, w->alloc, d->seq_off + 8);
  }
  d->n_wins = n;
  return BROOK_OK;
}

/* Writes the open windows under "" (after their entries). */
static brook_err_t save_wins(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  if (d->n_wins > d->list_cap) {
    size_t cap = d->list_cap;
    if (bk_grow(w->alloc, (void **)&d->list, &cap, d->n_wins, sizeof(*d->list)))
      return BROOK_ERR_NOMEM;
    d->list_cap = cap;
  }
  for (size_t i = 0; i < d->n_wins; i++)
    d->list[i] = (bk_wdisk_win_t){d->wins[i].start, d->wins[i].keys, d->wins[i].purged};
  brook_err_t err = d->n_wins
                        ? brook_store_put(d->order, "", 0, d->list, d->n_wins * sizeof(*d->list))
                        : brook_store_delete(d->order, "", 0);
  if (err == BROOK_ERR_NOT_FOUND)
    err = BROOK_OK;
  return err < 0 ? store_failed(ctx, d->order, err) : BROOK_OK;
}

brook_err_t bk_win_disk_open(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = bk_calloc(w->alloc, 1, sizeof(*d));
  if (!d)
    return BROOK_ERR_NOMEM;
  w->disk = d;
  d->seq_off = (w->acc_size + 7) & ~(size_t)7;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.ordered = 1; /* the default backend: the task database */
  so.value_size = d->seq_off + 8;
  brook_err_t err = brook_store_open(ctx, "window", &so, &d->acc);
  so.value_size = 0;
  if (err >= 0)
    err = brook_store_open(ctx, "window_order", &so, &d->order);
  if (err < 0)
    return err;
  /* The first callback reads the windows found and sets their timers (bk_win_disk_rebuild). */
  d->acc_gen = bk_win_store_gen(d->acc) - 1;
  return BROOK_OK;
}

void bk_win_disk_free(bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  if (!d)
    return; /* the stores belong to the runtime */
  drop_wins(w);
  bk_free(w->alloc, d->wins);
  bk_free(w->alloc, d->list);
  bk_free(w->alloc, d->ekeys);
  bk_free(w->alloc, d);
  w->disk = NULL;
}

size_t bk_win_disk_memory(const bk_win_t *w) {
  const bk_win_disk_t *d = w->disk;
  if (!d)
    return 0;
  size_t m =
      sizeof(*d) + d->cap_wins * sizeof(*d->wins) + d->list_cap * sizeof(*d->list) + d->ekeys_cap;
  for (size_t i = 0; i < d->n_wins; i++)
    m += bk_seg_memory(&d->wins[i].seg);
  return m;
}

/* After a restore (or at open): the state is what the stores hold; one timer per window. */
brook_err_t bk_win_disk_rebuild(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  brook_err_t err = load_wins(ctx, w);
  for (size_t i = 0; i < d->n_wins && err >= 0; i++) {
    brook_time_t start = d->wins[i].start;
    if (d->wins[i].purged != BK_WDISK_OPEN)
      continue; /* closed: only its purge is left */
    err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + w->cfg->w.size), NULL,
                          0, (uint64_t)start);
  }
  if (err >= 0)
    note_gen(d);
  return err;
}

/* Takes window i out of the list. */
static void remove_win(bk_win_t *w, size_t i) {
  bk_win_disk_t *d = w->disk;
  bk_seg_free(&d->wins[i].seg);
  memmove(d->wins + i, d->wins + i + 1, (d->n_wins - i - 1) * sizeof(*d->wins));
  d->n_wins--;
  d->last = 0;
}

/* Deletes up to `limit` more keys of closed window dw from disk. */
static brook_err_t purge(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, uint64_t limit) {
  bk_win_disk_t *d = w->disk;
  for (; dw->purged < dw->on_disk && limit; dw->purged++, limit--) {
    unsigned char ok[BK_WDISK_ORDER_LEN];
    bk_wdisk_order_key(ok, dw->start, dw->purged);
    const void *key;
    size_t klen;
    brook_err_t err = brook_store_get(d->order, ok, sizeof(ok), &key, &klen);
    if (err == BROOK_ERR_NOT_FOUND)
      continue;
    if (err < 0)
      return store_failed(ctx, d->order, err);
    size_t kl = acc_key(w, dw->start, key, klen);
    if (!kl)
      return BROOK_ERR_NOMEM;
    if ((err = brook_store_delete(d->acc, w->kbuf, kl)) < 0 && err != BROOK_ERR_NOT_FOUND)
      return store_failed(ctx, d->acc, err);
    if ((err = brook_store_delete(d->order, ok, sizeof(ok))) < 0 && err != BROOK_ERR_NOT_FOUND)
      return store_failed(ctx, d->order, err);
  }
  return BROOK_OK;
}

/* The open window of `start`, added (with its timer) if new; NULL with *err on failure. */
static dwin_t *win_for(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start, brook_err_t *err) {
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
    if (d->wins[lo].purged == BK_WDISK_OPEN) {
      d->last = lo;
      return &d->wins[lo];
    }
    /* A closed window again (the watermark restarted low after a restart): its old entries
     * go first, as in memory, where it was gone. */
    if ((*err = purge(ctx, w, &d->wins[lo], BK_WDISK_OPEN)) < 0)
      return NULL;
    remove_win(w, lo);
  }
  if ((*err = wins_room(w, d->n_wins + 1)) < 0)
    return NULL;
  *err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + w->cfg->w.size), NULL,
                         0, (uint64_t)start);
  if (*err < 0)
    return NULL;
  memmove(d->wins + lo + 1, d->wins + lo, (d->n_wins - lo) * sizeof(*d->wins));
  dwin_t *dw = &d->wins[lo];
  memset(dw, 0, sizeof(*dw));
  dw->start = start;
  dw->purged = BK_WDISK_OPEN;
  bk_seg_init(&dw->seg, w->alloc, d->seq_off + 8);
  d->n_wins++;
  d->last = lo;
  return dw;
}

/* w->kbuf = be64(start) || key; its length, or 0 out of memory. */
static size_t acc_key(bk_win_t *w, brook_time_t start, const void *key, size_t klen) {
  size_t n = BK_WDISK_START_LEN + klen;
  unsigned char *p = bk_win_kbuf(w, n);
  if (!p)
    return 0;
  bk_wdisk_start_key(p, start);
  if (klen)
    memcpy(p + BK_WDISK_START_LEN, key, klen);
  return n;
}

static uint64_t acc_seq(const bk_win_disk_t *d, const void *acc) {
  uint64_t seq;
  memcpy(&seq, (const unsigned char *)acc + d->seq_off, 8);
  return seq;
}

/* A key new to the window's segment: its accumulator and seq from disk if the window has it
 * there (1), else 0; or an error. */
static int load_key(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, const brook_record_t *rec,
                    void *acc) {
  bk_win_disk_t *d = w->disk;
  if (!dw->on_disk)
    return 0; /* never written: nothing to read */
  size_t kl = acc_key(w, dw->start, rec->key, rec->key_len);
  if (!kl)
    return BROOK_ERR_NOMEM;
  const void *v;
  size_t vl;
  brook_err_t err = brook_store_get(d->acc, w->kbuf, kl, &v, &vl);
  if (err == BROOK_ERR_NOT_FOUND)
    return 0;
  if (err < 0)
    return store_failed(ctx, d->acc, err);
  if (vl != d->seq_off + 8) {
    brook_ctx_set_error(ctx, "window state: an accumulator of %zu bytes, not %zu", vl,
                        d->seq_off + 8);
    return BROOK_ERR_CORRUPT;
  }
  memcpy(acc, v, vl);
  return 1;
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
  dwin_t *dw = win_for(ctx, w, start, &err);
  if (!dw)
    return err; /* an empty window stays; it closes with nothing to emit */
  int created;
  void *acc = bk_seg_upsert(&dw->seg, rec->key, rec->key_len, bk_hash_bytes(rec->key, rec->key_len),
                            &created);
  if (!acc)
    return BROOK_ERR_NOMEM;
  const brook_aggregator_t *agg = &w->cfg->agg;
  int found = 0;
  if (created && (found = load_key(ctx, w, dw, rec, acc)) < 0) {
    bk_seg_pop(&dw->seg);
    return found;
  }
  if (created && !found && agg->init)
    agg->init(acc, agg);
  if ((err = agg->add(acc, rec, agg)) < 0) {
    if (created) /* no window for a refused record; a key read from disk stays there */
      bk_seg_pop(&dw->seg);
    return err;
  }
  if (created && !found) { /* its place in the window's emission order */
    uint64_t seq = dw->keys++;
    memcpy((unsigned char *)acc + d->seq_off, &seq, 8);
  }
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return bk_win_emit(ctx, w, rec->key, rec->key_len, start, start + size, acc, 0);
  return BROOK_OK;
}

brook_err_t bk_win_disk_batch(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *recs, size_t n) {
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_disk_rebuild(ctx, w)) < 0)
    return err;
  for (size_t i = 0; i < n; i++) {
    err = disk_one(ctx, w, &recs[i]);
    if (err < 0 && (err = bk_win_record_failed(ctx, &recs[i], err)) < 0)
      return err;
  }
  return BROOK_OK;
}

/* Writes a window's segment to the stores and empties it. */
static brook_err_t write_window(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw) {
  bk_win_disk_t *d = w->disk;
  bk_seg_t *seg = &dw->seg;
  for (size_t j = 0, n = bk_seg_count(seg); j < n; j++) {
    bk_seg_entry_t *e = bk_seg_at(seg, j);
    const unsigned char *key = bk_seg_key(seg, e);
    void *acc = bk_seg_acc(e);
    size_t kl = acc_key(w, dw->start, key, e->klen);
    if (!kl)
      return BROOK_ERR_NOMEM;
    brook_err_t err = brook_store_put(d->acc, w->kbuf, kl, acc, d->seq_off + 8);
    if (err < 0)
      return store_failed(ctx, d->acc, err);
    uint64_t seq = acc_seq(d, acc);
    if (seq < dw->on_disk)
      continue; /* its order entry is there already */
    unsigned char ok[BK_WDISK_ORDER_LEN];
    bk_wdisk_order_key(ok, dw->start, seq);
    if ((err = brook_store_put(d->order, ok, sizeof(ok), key, e->klen)) < 0)
      return store_failed(ctx, d->order, err);
  }
  dw->on_disk = dw->keys;
  if (bk_seg_memory(seg) > SEG_KEEP_BYTES) {
    bk_seg_free(seg);
    bk_seg_init(seg, w->alloc, d->seq_off + 8);
  } else {
    bk_seg_reset(seg);
  }
  return BROOK_OK;
}

/* The operator's flush, at the start of every commit: everything changed goes to the stores,
 * which the task's commit then writes. */
brook_err_t bk_win_disk_flush(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_disk_rebuild(ctx, w)) < 0)
    return err;
  err = BROOK_OK;
  uint64_t budget = BK_WDISK_PURGE;
  for (size_t i = 0; i < d->n_wins && err >= 0;) {
    dwin_t *dw = &d->wins[i];
    if (dw->purged == BK_WDISK_OPEN) {
      if (bk_seg_count(&dw->seg))
        err = write_window(ctx, w, dw);
      i++;
      continue;
    }
    uint64_t before = dw->purged;
    if ((err = purge(ctx, w, dw, budget)) < 0)
      break;
    budget -= dw->purged - before;
    if (dw->purged >= dw->on_disk)
      remove_win(w, i);
    else
      i++;
  }
  if (err >= 0)
    err = save_wins(ctx, w);
  note_gen(d);
  return err;
}

/* A copy of a result's key that stays valid until output port 0 is flushed; NULL with *err.
 * Flushes the port when the copies fill their buffer. */
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

/* Emits the seq-th key of window dw, which is on disk (its newest value may be in the
 * segment). Its entries are purged later (window_disk.h). */
static brook_err_t close_disk_key(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, uint64_t seq) {
  bk_win_disk_t *d = w->disk;
  unsigned char ok[BK_WDISK_ORDER_LEN];
  bk_wdisk_order_key(ok, dw->start, seq);
  const void *key, *acc;
  size_t klen, alen;
  brook_err_t err = brook_store_get(d->order, ok, sizeof(ok), &key, &klen);
  if (err < 0)
    return store_failed(ctx, d->order, err);
  size_t kl = acc_key(w, dw->start, key, klen);
  const void *ekey = kl ? emit_key(ctx, w, key, klen, &err) : NULL;
  if (!kl || !ekey)
    return kl ? err : BROOK_ERR_NOMEM;
  acc = bk_seg_find(&dw->seg, ekey, klen, bk_hash_bytes(ekey, klen));
  if (!acc && (err = brook_store_get(d->acc, w->kbuf, kl, &acc, &alen)) < 0)
    return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : store_failed(ctx, d->acc, err);
  brook_time_t end = dw->start + w->cfg->w.size;
  return bk_win_emit(ctx, w, ekey, klen, dw->start, end, acc, 1);
}

/* Emits every key of window dw in seq order. */
static brook_err_t close_window(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw) {
  brook_err_t err = BROOK_OK;
  for (uint64_t seq = 0; seq < dw->on_disk && err >= 0; seq++)
    err = close_disk_key(ctx, w, dw, seq);
  /* Then the keys never written, in the segment in the order they arrived. */
  bk_seg_t *seg = &dw->seg;
  brook_time_t end = dw->start + w->cfg->w.size;
  for (size_t j = 0, n = bk_seg_count(seg); j < n && err >= 0; j++) {
    bk_seg_entry_t *e = bk_seg_at(seg, j);
    if (acc_seq(w->disk, bk_seg_acc(e)) >= dw->on_disk)
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
    brook_err_t ferr = bk_ctx_flush(ctx); /* the results borrow ekeys and the segment's keys */
    d->ekeys_used = 0;
    if (err >= 0)
      err = ferr;
    if (err < 0)
      break;
    if (dw->on_disk) { /* closed: its entries on disk are purged at the next commits */
      dw->purged = 0;
      bk_seg_free(&dw->seg);
      bk_seg_init(&dw->seg, w->alloc, d->seq_off + 8);
      i++;
    } else {
      remove_win(w, i);
    }
  }
  note_gen(d);
  return err;
}
