/* Slices of tumbling and hopping windows on disk (ops/window_disk.h; layout in
 * state/window_disk.h), with the operator's own write-behind cache in front: between two
 * commits a slice's changed accumulators live in a segment in memory (key -> accumulator || seq,
 * first-arrival order), exactly as in the in-memory window store, and the operator's flush
 * (which the runtime calls at the start of every commit, before the task database collects its
 * stores) writes them to the "window" and "window_order" stores and empties the segments. So:
 * - a record costs a segment lookup, as in memory; a key new to its segment reads the disk
 *   only if its slice has entries there (a slice never written skips it entirely);
 * - a slice that opens and closes between two commits (the common case: commits are
 *   wall-clock, windows event time) never touches RocksDB at all;
 * - memory is the entries changed since the last commit (a commit bounds it, as it bounds
 *   the write cache's dirty entries), not the keys or open windows;
 * - a slice's keys are read back in seq order: those on disk first (their newest value from
 *   the segment if it has one), then the segment's new keys: the very order and bytes of the
 *   in-memory backend; a closed slice's disk entries are purged over the next commits, a
 *   bounded number per commit (window_disk.h).
 * Loop thread. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/hash.h"
#include "ops/window_common.h"
#include "ops/window_disk.h"
#include "state/store_range.h"
#include "state/task_db.h"

#define EKEYS_BYTES ((size_t)64 << 10)     /* results' keys kept between two flushes of the port */
#define SEG_KEEP_BYTES ((size_t)256 << 10) /* a commit frees a segment bigger than this */
#define SEG_ENTRY_OVERHEAD 32              /* a segment entry's header and index slot, about */

static void note_gen(bk_win_disk_t *d) {
  d->acc_gen = bk_win_store_gen(d->acc);
  d->order_gen = bk_win_store_gen(d->order);
}

void bk_win_disk_noted(bk_win_t *w) { note_gen(w->disk); }

int bk_win_disk_restored(const bk_win_t *w) {
  const bk_win_disk_t *d = w->disk;
  return bk_win_store_gen(d->acc) != d->acc_gen || bk_win_store_gen(d->order) != d->order_gen;
}

brook_err_t bk_wdisk_failed(brook_ctx_t *ctx, brook_store_t *s, brook_err_t err) {
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

/* Room for n slices. */
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

/* Hopping's scalars as the last commit left them. */
static brook_err_t load_meta(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  d->done = 0;
  d->done_ws = 0;
  if (w->cfg->w.kind != BROOK_WINDOW_HOPPING)
    return BROOK_OK;
  const void *v;
  size_t vl;
  brook_err_t err = brook_store_get(d->order, "m", 1, &v, &vl);
  if (err == BROOK_ERR_NOT_FOUND)
    return BROOK_OK;
  if (err < 0)
    return bk_wdisk_failed(ctx, d->order, err);
  bk_wdisk_hop_meta_t m;
  if (vl != sizeof(m)) {
    brook_ctx_set_error(ctx, "window state: hopping's scalars have %zu bytes, not %zu", vl,
                        sizeof(m));
    return BROOK_ERR_CORRUPT;
  }
  memcpy(&m, v, sizeof(m));
  d->done_ws = m.done_ws;
  d->done = m.done != 0;
  return BROOK_OK;
}

/* The slices as the last commit left them (what "" holds); nothing in memory. */
static brook_err_t load_wins(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  drop_wins(w);
  brook_err_t err = load_meta(ctx, w);
  if (err < 0)
    return err;
  const void *v;
  size_t vl;
  err = brook_store_get(d->order, "", 0, &v, &vl);
  if (err == BROOK_ERR_NOT_FOUND)
    return BROOK_OK;
  if (err < 0)
    return bk_wdisk_failed(ctx, d->order, err);
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

/* Writes the slices under "" (after their entries), and hopping's scalars under "m". */
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
  if (err >= 0 && w->cfg->w.kind == BROOK_WINDOW_HOPPING && d->done) {
    bk_wdisk_hop_meta_t m = {d->done_ws, 1};
    err = brook_store_put(d->order, "m", 1, &m, sizeof(m));
  }
  return err < 0 ? bk_wdisk_failed(ctx, d->order, err) : BROOK_OK;
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
  bk_seg_init(&d->merged, w->alloc, w->acc_size);
  if (!(d->vtmp = bk_malloc(w->alloc, so.value_size)))
    return BROOK_ERR_NOMEM;
  brook_err_t err = brook_store_open(ctx, "window", &so, &d->acc);
  so.value_size = 0;
  if (err >= 0)
    err = brook_store_open(ctx, "window_order", &so, &d->order);
  if (err < 0)
    return err;
  /* The first callback reads the slices found and sets their timers (bk_win_disk_rebuild). */
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
  bk_free(w->alloc, d->accs);
  bk_free(w->alloc, d->vtmp);
  bk_seg_free(&d->merged);
  bk_free(w->alloc, d);
  w->disk = NULL;
}

size_t bk_win_disk_memory(const bk_win_t *w) {
  const bk_win_disk_t *d = w->disk;
  if (!d)
    return 0;
  size_t m = sizeof(*d) + d->cap_wins * sizeof(*d->wins) + d->list_cap * sizeof(*d->list) +
             d->ekeys_cap + d->accs_cap + d->seq_off + 8;
  for (size_t i = 0; i < d->n_wins; i++)
    m += bk_seg_memory(&d->wins[i].seg);
  return m;
}

/* After a restore (or at open): the state is what the stores hold; the timers it implies. */
brook_err_t bk_win_disk_rebuild(brook_ctx_t *ctx, bk_win_t *w) {
  bk_win_disk_t *d = w->disk;
  brook_err_t err = load_wins(ctx, w);
  if (err >= 0 && w->cfg->w.kind == BROOK_WINDOW_HOPPING)
    err = bk_wdisk_hopping_timers(ctx, w);
  for (size_t i = 0; i < d->n_wins && err >= 0 && w->cfg->w.kind == BROOK_WINDOW_TUMBLING; i++) {
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

/* Takes slice i out of the list. */
static void remove_win(bk_win_t *w, size_t i) {
  bk_win_disk_t *d = w->disk;
  bk_seg_free(&d->wins[i].seg);
  memmove(d->wins + i, d->wins + i + 1, (d->n_wins - i - 1) * sizeof(*d->wins));
  d->n_wins--;
  d->last = 0;
}

void bk_wdisk_close_slice(bk_win_t *w, size_t i) {
  bk_win_disk_t *d = w->disk;
  dwin_t *dw = &d->wins[i];
  if (!dw->on_disk) {
    remove_win(w, i);
    return;
  }
  dw->purged = 0; /* its entries on disk are purged at the next commits */
  bk_seg_free(&dw->seg);
  bk_seg_init(&dw->seg, w->alloc, d->seq_off + 8);
}

/* Deletes up to `limit` more keys of closed slice dw from disk. */
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
      return bk_wdisk_failed(ctx, d->order, err);
    size_t kl = bk_wdisk_acc_key(w, dw->start, key, klen);
    if (!kl)
      return BROOK_ERR_NOMEM;
    if ((err = brook_store_delete(d->acc, w->kbuf, kl)) < 0 && err != BROOK_ERR_NOT_FOUND)
      return bk_wdisk_failed(ctx, d->acc, err);
    if ((err = brook_store_delete(d->order, ok, sizeof(ok))) < 0 && err != BROOK_ERR_NOT_FOUND)
      return bk_wdisk_failed(ctx, d->order, err);
  }
  return BROOK_OK;
}

/* Deletes closed slice dw's entries from disk: two range deletions (written by the next
 * commit, whatever the number of keys), or, where the stores cannot (a listener must see
 * each deletion), up to `limit` more keys one by one. */
static brook_err_t drop_slice(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, uint64_t limit) {
  bk_win_disk_t *d = w->disk;
  unsigned char lo[BK_WDISK_ORDER_LEN], hi[BK_WDISK_ORDER_LEN + 1];
  bk_wdisk_start_key(lo, dw->start);
  bk_wdisk_start_key(hi, dw->start + 1);
  brook_err_t err = bk_store_delete_range(d->acc, lo, BK_WDISK_START_LEN, hi, BK_WDISK_START_LEN);
  if (err == BROOK_ERR_STATE)
    return purge(ctx, w, dw, limit);
  if (err < 0)
    return bk_wdisk_failed(ctx, d->acc, err);
  /* The order entries are be64(start) || be64(seq): 16 bytes from P || 0 to below P || ff x 9
   * (which leaves "" and "m" out, whatever P is). */
  memset(lo + BK_WDISK_START_LEN, 0, BK_WDISK_ORDER_LEN - BK_WDISK_START_LEN);
  memcpy(hi, lo, BK_WDISK_START_LEN);
  memset(hi + BK_WDISK_START_LEN, 0xff, sizeof(hi) - BK_WDISK_START_LEN);
  err = bk_store_delete_range(d->order, lo, sizeof(lo), hi, sizeof(hi));
  if (err == BROOK_ERR_STATE)
    return purge(ctx, w, dw, limit);
  if (err < 0)
    return bk_wdisk_failed(ctx, d->order, err);
  dw->purged = dw->on_disk;
  return BROOK_OK;
}

size_t bk_wdisk_lower(const bk_win_disk_t *d, brook_time_t start) {
  size_t lo = 0, hi = d->n_wins;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (d->wins[mid].start < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

dwin_t *bk_wdisk_slice_for(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start, brook_err_t *err) {
  bk_win_disk_t *d = w->disk;
  if (d->last < d->n_wins && d->wins[d->last].start == start)
    return &d->wins[d->last]; /* most records hit the previous record's slice */
  size_t lo = bk_wdisk_lower(d, start);
  if (lo < d->n_wins && d->wins[lo].start == start) {
    if (d->wins[lo].purged == BK_WDISK_OPEN) {
      d->last = lo;
      return &d->wins[lo];
    }
    /* A closed slice again (the watermark restarted low after a restart): its old entries
     * go first, as in memory, where it was gone. */
    if ((*err = drop_slice(ctx, w, &d->wins[lo], BK_WDISK_OPEN)) < 0)
      return NULL;
    remove_win(w, lo);
  }
  if ((*err = wins_room(w, d->n_wins + 1)) < 0)
    return NULL;
  if (w->cfg->w.kind == BROOK_WINDOW_HOPPING)
    *err = bk_wdisk_hopping_slice_timer(ctx, w, start);
  else
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

size_t bk_wdisk_acc_key(bk_win_t *w, brook_time_t start, const void *key, size_t klen) {
  size_t n = BK_WDISK_START_LEN + klen;
  unsigned char *p = bk_win_kbuf(w, n);
  if (!p)
    return 0;
  bk_wdisk_start_key(p, start);
  if (klen)
    memcpy(p + BK_WDISK_START_LEN, key, klen);
  return n;
}

/* The disk's value of composite key w->kbuf (kl bytes) in slice dw, copied to d->vtmp, or
 * NULL (*err set on failure). */
static const void *disk_get(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, size_t kl,
                            brook_err_t *err) {
  bk_win_disk_t *d = w->disk;
  *err = BROOK_OK;
  if (!dw->on_disk)
    return NULL; /* never written: nothing to read */
  const void *v;
  size_t vl;
  brook_err_t e = brook_store_get(d->acc, w->kbuf, kl, &v, &vl);
  if (e == BROOK_ERR_NOT_FOUND)
    return NULL;
  if (e < 0) {
    *err = bk_wdisk_failed(ctx, d->acc, e);
    return NULL;
  }
  if (vl != d->seq_off + 8) {
    brook_ctx_set_error(ctx, "window state: an accumulator of %zu bytes, not %zu", vl,
                        d->seq_off + 8);
    *err = BROOK_ERR_CORRUPT;
    return NULL;
  }
  memcpy(d->vtmp, v, vl); /* aligned for the aggregator (a view of the disk may not be) */
  return d->vtmp;
}

const void *bk_wdisk_find(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, size_t kl, uint64_t h,
                          brook_err_t *err) {
  const void *acc = bk_seg_find(&dw->seg, w->kbuf + BK_WDISK_START_LEN, kl - BK_WDISK_START_LEN, h);
  *err = BROOK_OK;
  return acc ? acc : disk_get(ctx, w, dw, kl, err);
}

/* A segment gained an entry: past the task database's cache size, the segments ask for an
 * early commit (once per commit), whose flush writes them to the stores and empties them. */
static void note_growth(brook_ctx_t *ctx, bk_win_disk_t *d, size_t klen) {
  d->seg_bytes += d->seq_off + 8 + klen + SEG_ENTRY_OVERHEAD;
  if (!d->commit_asked && ctx->task_db && d->seg_bytes > bk_task_db_cache_bytes(ctx->task_db)) {
    d->commit_asked = 1;
    bk_task_db_want_commit(ctx->task_db);
  }
}

brook_err_t bk_wdisk_add(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, const brook_record_t *rec,
                         void **accp) {
  bk_win_disk_t *d = w->disk;
  int created;
  void *acc = bk_seg_upsert(&dw->seg, rec->key, rec->key_len, bk_hash_bytes(rec->key, rec->key_len),
                            &created);
  if (!acc)
    return BROOK_ERR_NOMEM;
  const brook_aggregator_t *agg = &w->cfg->agg;
  int found = 0;
  brook_err_t err = BROOK_OK;
  if (created && dw->on_disk) { /* a key new to the segment: its value on disk, if any */
    size_t kl = bk_wdisk_acc_key(w, dw->start, rec->key, rec->key_len);
    const void *v = kl ? disk_get(ctx, w, dw, kl, &err) : NULL;
    if (!kl)
      err = BROOK_ERR_NOMEM;
    if (err < 0) {
      bk_seg_pop(&dw->seg);
      return err;
    }
    if (v) {
      memcpy(acc, v, d->seq_off + 8);
      found = 1;
    }
  }
  if (created && !found && agg->init)
    agg->init(acc, agg);
  if ((err = agg->add(acc, rec, agg)) < 0) {
    if (created) /* no window for a refused record; a key read from disk stays there */
      bk_seg_pop(&dw->seg);
    return err;
  }
  if (created && !found) { /* its place in the slice's order */
    uint64_t seq = dw->keys++;
    memcpy((unsigned char *)acc + d->seq_off, &seq, 8);
  }
  if (created)
    note_growth(ctx, d, rec->key_len);
  *accp = acc;
  return BROOK_OK;
}

brook_err_t bk_win_disk_batch(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *recs, size_t n) {
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_disk_rebuild(ctx, w)) < 0)
    return err;
  int hop = w->cfg->w.kind == BROOK_WINDOW_HOPPING;
  for (size_t i = 0; i < n; i++) {
    err = hop ? bk_wdisk_hopping_one(ctx, w, &recs[i]) : bk_wdisk_tumbling_one(ctx, w, &recs[i]);
    if (err < 0 && (err = bk_win_record_failed(ctx, &recs[i], err)) < 0)
      return err;
  }
  return BROOK_OK;
}

/* Writes a slice's segment to the stores and empties it. */
static brook_err_t write_window(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw) {
  bk_win_disk_t *d = w->disk;
  bk_seg_t *seg = &dw->seg;
  for (size_t j = 0, n = bk_seg_count(seg); j < n; j++) {
    bk_seg_entry_t *e = bk_seg_at(seg, j);
    const unsigned char *key = bk_seg_key(seg, e);
    void *acc = bk_seg_acc(e);
    size_t kl = bk_wdisk_acc_key(w, dw->start, key, e->klen);
    if (!kl)
      return BROOK_ERR_NOMEM;
    brook_err_t err = brook_store_put(d->acc, w->kbuf, kl, acc, d->seq_off + 8);
    if (err < 0)
      return bk_wdisk_failed(ctx, d->acc, err);
    uint64_t seq = bk_wdisk_seq(d, acc);
    if (seq < dw->on_disk)
      continue; /* its order entry is there already */
    unsigned char ok[BK_WDISK_ORDER_LEN];
    bk_wdisk_order_key(ok, dw->start, seq);
    if ((err = brook_store_put(d->order, ok, sizeof(ok), key, e->klen)) < 0)
      return bk_wdisk_failed(ctx, d->order, err);
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
    if ((err = drop_slice(ctx, w, dw, budget)) < 0)
      break;
    if (dw->purged - before < budget) /* one by one: a bounded number per commit */
      budget -= dw->purged - before;
    else
      budget = 0;
    if (dw->purged >= dw->on_disk)
      remove_win(w, i);
    else
      i++;
  }
  if (err >= 0)
    err = save_wins(ctx, w);
  if (err >= 0) {
    d->seg_bytes = 0;
    d->commit_asked = 0;
  }
  note_gen(d);
  return err;
}

brook_err_t bk_wdisk_flush_port(brook_ctx_t *ctx, bk_win_t *w) {
  brook_err_t err = bk_ctx_flush(ctx);
  w->disk->ekeys_used = 0; /* nothing borrows the copies any more */
  return err;
}

const void *bk_wdisk_emit_key(brook_ctx_t *ctx, bk_win_t *w, const void *key, size_t klen,
                              brook_err_t *err) {
  bk_win_disk_t *d = w->disk;
  *err = BROOK_OK;
  if (d->ekeys_used + klen > d->ekeys_cap) {
    if ((*err = bk_wdisk_flush_port(ctx, w)) < 0)
      return NULL;
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

int bk_wdisk_key_at(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, uint64_t seq, size_t *kl) {
  bk_win_disk_t *d = w->disk;
  const void *key;
  size_t klen;
  unsigned char ok[BK_WDISK_ORDER_LEN];
  bk_wdisk_order_key(ok, dw->start, seq);
  brook_err_t err = brook_store_get(d->order, ok, sizeof(ok), &key, &klen);
  if (err < 0)
    return err == BROOK_ERR_NOT_FOUND ? 0 : bk_wdisk_failed(ctx, d->order, err);
  if (!(*kl = bk_wdisk_acc_key(w, dw->start, key, klen)))
    return BROOK_ERR_NOMEM;
  return 1;
}
