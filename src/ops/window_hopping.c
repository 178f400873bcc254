/* Hopping windows [k*advance, k*advance + size). Time is cut into slices of
 * gcd(size, advance) ms; a record costs one slice update, whatever size/advance is.
 *
 * All state lives in the window store (state/window_store.h). Slices not yet covered by a
 * fired window live in its segments (per slice start, user key -> accumulator), the fast path of
 * in-order records. A window of up to HOP_MERGE_MAX_SLICES slices merges its buckets key by key
 * when it fires (cheap and sequential at that size). For longer windows that would be
 * O(size/advance) per result, so when the window [ws, we) fires, the buckets before `we` are
 * handed, entry by entry, to their key's ring (window_keys.h, window_ring.h: the key's slices with
 * two-stack running aggregates), and every key with data slides its ring to [ws, we) and emits sfx
 * + back: O(1) amortised per slice and per result. A record behind the fired windows that still
 * belongs to an open one goes straight into its key's ring (bk_ring_refresh).
 *
 * Timers are per firing time, not per window and record: a new slice sets ONE timer, at the
 * close of the first open window holding it, and each firing emits every window closed by
 * then and sets one timer for the next window with data. Memory follows the slices that
 * hold data (a ring per key with data, a bucket per slice start with data), never
 * size/advance; a definition with more than BROOK_WINDOW_MAX_HOPS windows per record is
 * refused by the builder (its output alone would be that many results per record).
 *
 * Results of one window come out ordered by the key's oldest slice in the window, then by
 * the arrival of the key's first record in that slice (window.h). Early results
 * (BROOK_EMIT_ON_UPDATE) sweep the key's slices over its open windows with the same two
 * stacks, in scratch. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/hash.h"
#include "ops/window_common.h"
#include "ops/window_keys.h"

/* Where a key's result comes among the results of one window. */
typedef struct hop_order {
  brook_time_t start; /* the key's oldest slice in the window */
  uint64_t seq;       /* arrival of the key's first record in that slice */
  bk_wkey_t *k;
} hop_order_t;

/* Windows of at most BK_WIN_HOP_MERGE_MAX_SLICES slices merge their buckets (window_common.h). */
#define HOP_MERGE_MAX_SLICES BK_WIN_HOP_MERGE_MAX_SLICES

/* Hopping's scalars: the window store's meta bytes (persisted with the slices). */
typedef struct hop_meta {
  brook_time_t done_ws; /* the last window fired, or known closed without data */
  uint64_t pushed_off;  /* pushed_end - BROOK_TIME_MIN (zeroed meta: nothing pushed) */
  uint64_t seq;         /* the last ring element's arrival number */
  uint32_t done;        /* done_ws is set */
  uint32_t unused;
} hop_meta_t;

_Static_assert(sizeof(hop_meta_t) <= BK_WIN_HOP_META_SIZE, "hop meta fits the store's meta");

typedef struct bk_hop {
  int rings;          /* size / slice > HOP_MERGE_MAX_SLICES: keys' rings, else merging */
  bk_seg_t merged;    /* merging: a window's slices merged by key, when it fires */
  bk_wkeys_t ks;      /* rings: user key -> its ring (window_keys.h) */
  bk_wkey_t **active; /* keys whose ring is not empty (flag set) */
  size_t n_active, cap_active;
  hop_order_t *order; /* scratch: a window's keys in emission order */
  size_t cap_order;
  struct hop_meta *m; /* the scalars, kept in the window store's meta */
} bk_hop_t;

/* Slices before it are in rings, the others in buckets. */
static inline brook_time_t pushed_end(const bk_hop_t *h) {
  return (brook_time_t)(h->m->pushed_off + (uint64_t)BROOK_TIME_MIN);
}

/* The first window to fire from now on that holds slice `s`. */
static brook_time_t next_window_of(const bk_win_t *w, brook_time_t s) {
  const bk_hop_t *h = w->hop;
  brook_time_t f = bk_win_hop_first(w->cfg, s);
  return h->m->done && h->m->done_ws + w->cfg->w.advance > f ? h->m->done_ws + w->cfg->w.advance
                                                             : f;
}

static brook_err_t reserve_active(bk_win_t *w) {
  bk_hop_t *h = w->hop;
  if (h->n_active < h->cap_active)
    return BROOK_OK;
  return bk_grow(w->alloc, (void **)&h->active, &h->cap_active, h->n_active + 1, sizeof(*h->active))
             ? BROOK_ERR_NOMEM
             : BROOK_OK;
}

/* The key's ring state, created if new (*created). Reserves room in the active list. */
static bk_wkey_t *key_get(bk_win_t *w, const void *key, size_t klen, uint64_t hash, int *created,
                          brook_err_t *err) {
  if ((*err = reserve_active(w)) < 0)
    return NULL;
  return bk_wkeys_get(&w->hop->ks, key, klen, hash, created, err);
}

static void key_activate(bk_win_t *w, bk_wkey_t *k) {
  if (!k->flag) { /* room was reserved by key_get */
    k->flag = 1;
    w->hop->active[w->hop->n_active++] = k;
  }
}

static brook_err_t set_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t ws) {
  return brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, ws + w->cfg->w.size), NULL, 0,
                         0);
}

/* A record for a slice already handed to rings (behind the fired windows, in an open one). */
static brook_err_t ring_add(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                            brook_time_t s) {
  bk_hop_t *h = w->hop;
  const brook_aggregator_t *agg = &w->cfg->agg;
  int created;
  brook_err_t err;
  bk_wkey_t *k =
      key_get(w, rec->key, rec->key_len, bk_hash_bytes(rec->key, rec->key_len), &created, &err);
  if (!k)
    return err;
  size_t pos = bk_ring_lower(&h->ks.rc, &k->ring, s);
  if (pos < k->ring.n && bk_ring_start(&h->ks.rc, &k->ring, pos) == s) {
    err = agg->add(bk_ring_acc(&h->ks.rc, &k->ring, pos), rec, agg);
  } else {
    void *acc = bk_ring_insert(&h->ks.rc, &k->ring, pos, s, ++h->m->seq, 1);
    if (!acc)
      err = BROOK_ERR_NOMEM;
    else if ((err = agg->add(acc, rec, agg)) < 0)
      bk_ring_erase(&h->ks.rc, &k->ring, pos);
  }
  if (err < 0) {
    if (!k->ring.n)
      bk_wkeys_remove(&h->ks, k);
    return err;
  }
  bk_ring_refresh(&h->ks.rc, &k->ring, pos, bk_wkey_back(k));
  key_activate(w, k);
  return set_timer(ctx, w, h->m->done_ws + w->cfg->w.advance);
}

/* The watermark has closed windows a record's slice belongs to, up to `last`: they had no
 * data, or they were fired; either way none of them may fire from now on. */
static void note_closed(bk_win_t *w, brook_time_t last) {
  if (!w->hop->m->done || last > w->hop->m->done_ws) {
    w->hop->m->done_ws = last;
    w->hop->m->done = 1;
  }
}

/* Early results: each open window holding slice `s`, swept over the key's slices (in its
 * ring and in the buckets) with two stacks. */
static brook_err_t emit_open_windows(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                     brook_time_t s) {
  bk_hop_t *h = w->hop;
  bk_wkeys_t *ks = &h->ks;
  const bk_win_cfg_t *c = w->cfg;
  brook_time_t first = bk_win_hop_first(c, s), last = bk_win_floor(s, c->w.advance);
  brook_time_t reach = last + c->w.size;
  uint64_t hash = bk_hash_bytes(rec->key, rec->key_len);
  bk_wkey_t *k = first < pushed_end(h) ? bk_wkeys_find(ks, rec->key, rec->key_len, hash) : NULL;
  size_t r0 = k ? bk_ring_lower(&ks->rc, &k->ring, first) : 0, r1 = r0;
  while (k && r1 < k->ring.n && bk_ring_start(&ks->rc, &k->ring, r1) < reach)
    r1++;
  size_t b0 = bk_wstore_bucket_lower(w->ws, first), b1 = bk_wstore_bucket_lower(w->ws, reach),
         m = 0;
  if (bk_wkeys_sweep_reserve(ks, (r1 - r0) + (b1 - b0)) < 0)
    return BROOK_ERR_NOMEM;
  for (size_t i = r0; i < r1; i++) {
    ks->s_start[m] = bk_ring_start(&ks->rc, &k->ring, i);
    ks->s_acc[m++] = bk_ring_acc(&ks->rc, &k->ring, i);
  }
  for (size_t i = b0; i < b1; i++) {
    const void *acc = bk_seg_find(&w->ws->buckets[i].seg, rec->key, rec->key_len, hash);
    if (acc) {
      ks->s_start[m] = w->ws->buckets[i].start;
      ks->s_acc[m++] = acc;
    }
  }
  bk_sweep_t sw;
  bk_sweep_init(&sw, m);
  for (brook_time_t ws = first; ws <= last; ws += c->w.advance) {
    const void *acc = bk_wkeys_sweep(ks, &sw, ws, ws + c->w.size);
    if (!acc || bk_win_closed(w, ws + c->w.size, ctx->wm))
      continue;
    brook_err_t err = bk_win_emit(ctx, w, rec->key, rec->key_len, ws, ws + c->w.size, acc, 0);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

/* The next window that holds data (valid if there is any). */
static brook_time_t next_window(const bk_win_t *w);

/* After a restore: the active list is every key with slices in its ring, and the next window
 * with data has its timer (the one the records and firings before the snapshot left). */
brook_err_t bk_win_hopping_rebuild(brook_ctx_t *ctx, bk_win_t *w) {
  bk_hop_t *h = w->hop;
  w->ws_gen = w->ws->gen;
  h->n_active = 0;
  size_t cur = 0;
  const void *key, *v;
  size_t kl, vl;
  while (brook_store_next(w->ws->keys, &cur, &key, &kl, &v, &vl)) {
    bk_wkey_t *k = (bk_wkey_t *)(uintptr_t)v;
    k->flag = 0;
    if (!k->ring.n)
      continue;
    if (reserve_active(w) < 0)
      return BROOK_ERR_NOMEM;
    key_activate(w, k);
  }
  if (!h->n_active && !w->ws->n_buckets)
    return BROOK_OK;
  return set_timer(ctx, w, next_window(w));
}

static brook_err_t hopping_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  bk_win_t *w = state;
  if (w->disk) /* state on disk: window_hopping_disk.c */
    return bk_win_disk_batch(ctx, w, rec, 1);
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  brook_err_t rerr;
  if (bk_win_restored(w) && (rerr = bk_win_hopping_rebuild(ctx, w)) < 0)
    return rerr;
  const bk_win_cfg_t *c = w->cfg;
  brook_time_t s, closed;
  int where = bk_win_hop_slice(w, rec->timestamp, ctx->wm, &s, &closed);
  if (where < 0)
    return bk_win_late(ctx, w, rec);
  if (where > 0)
    note_closed(w, closed);
  brook_err_t err;
  if (s < pushed_end(w->hop)) {
    err = ring_add(ctx, w, rec, s);
  } else {
    int created;
    bk_wbucket_t *b = bk_wstore_bucket_for(w->ws, s, &created);
    if (!b)
      return BROOK_ERR_NOMEM;
    if (created && (err = set_timer(ctx, w, next_window_of(w, s))) < 0)
      return err; /* the empty bucket stays; it is dropped when a later window fires */
    void *acc;
    err = bk_wstore_bucket_add(w->ws, b, &w->cfg->agg, rec, &acc);
  }
  if (err >= 0 && c->emit == BROOK_EMIT_ON_UPDATE)
    err = emit_open_windows(ctx, w, rec, s);
  return err;
}

/* Hands the buckets before `we` to their keys' rings (in slice order, and within a slice in
 * the order keys arrived), pushing them into the keys' back runs. */
static brook_err_t push_buckets(bk_win_t *w, brook_time_t we) {
  bk_hop_t *h = w->hop;
  size_t nb = bk_wstore_bucket_lower(w->ws, we);
  for (size_t i = 0; i < nb; i++) {
    bk_seg_t *seg = &w->ws->buckets[i].seg;
    for (size_t j = 0, n = bk_seg_count(seg); j < n; j++) {
      bk_seg_entry_t *e = bk_seg_at(seg, j);
      const unsigned char *key = bk_seg_key(seg, e);
      int created;
      brook_err_t err;
      bk_wkey_t *k = key_get(w, key, e->klen, bk_hash_bytes(key, e->klen), &created, &err);
      if (!k)
        return err;
      void *acc =
          bk_ring_insert(&h->ks.rc, &k->ring, k->ring.n, w->ws->buckets[i].start, ++h->m->seq, 0);
      if (!acc) {
        if (!k->ring.n)
          bk_wkeys_remove(&h->ks, k);
        return BROOK_ERR_NOMEM;
      }
      memcpy(acc, bk_seg_acc(e), w->acc_size);
      bk_ring_push(&h->ks.rc, &k->ring, we, bk_wkey_back(k));
      key_activate(w, k);
    }
  }
  bk_wstore_buckets_drop_before(w->ws, we);
  h->m->pushed_off = (uint64_t)we - (uint64_t)BROOK_TIME_MIN;
  return BROOK_OK;
}

static int order_cmp(const void *pa, const void *pb) {
  const hop_order_t *a = pa, *b = pb;
  if (a->start != b->start)
    return a->start < b->start ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Fires window [ws, we) of few slices: merges its buckets key by key into a scratch
 * segment (keys in the order of their oldest slice, then of arrival in it) and emits it;
 * the buckets no later window needs are emptied for reuse. */
static brook_err_t merge_window(brook_ctx_t *ctx, bk_win_t *w, brook_time_t ws, brook_time_t we) {
  const brook_aggregator_t *agg = &w->cfg->agg;
  size_t lo = bk_wstore_bucket_lower(w->ws, ws), hi = bk_wstore_bucket_lower(w->ws, we);
  brook_err_t err = BROOK_OK;
  bk_seg_t *out = lo < hi ? &w->ws->buckets[lo].seg : NULL;
  if (hi - lo > 1) {
    out = &w->hop->merged;
    for (size_t i = lo; i < hi && err >= 0; i++) {
      bk_seg_t *seg = &w->ws->buckets[i].seg;
      for (size_t j = 0, n = bk_seg_count(seg); j < n; j++) {
        bk_seg_entry_t *e = bk_seg_at(seg, j);
        int created;
        void *acc = bk_seg_upsert(out, bk_seg_key(seg, e), e->klen, e->hash, &created);
        if (!acc) {
          err = BROOK_ERR_NOMEM;
          break;
        }
        if (created) /* segment accumulators are acc_words words long */
          memcpy(acc, bk_seg_acc(e), out->acc_words * 8);
        else
          agg->merge(acc, bk_seg_acc(e), agg);
      }
    }
  }
  for (size_t j = 0, n = out ? bk_seg_count(out) : 0; j < n && err >= 0; j++) {
    bk_seg_entry_t *e = bk_seg_at(out, j);
    err = bk_win_emit(ctx, w, bk_seg_key(out, e), e->klen, ws, we, bk_seg_acc(e), 1);
  }
  brook_err_t ferr = bk_ctx_flush(ctx); /* the results borrow the segments' keys */
  if (err >= 0)
    err = ferr;
  bk_seg_reset(&w->hop->merged);
  bk_wstore_buckets_drop_before(w->ws, ws + w->cfg->w.advance); /* later windows start there */
  return err;
}

/* Fires window [ws, ws + size): every key with a slice in it emits its result. */
static brook_err_t fire_window(brook_ctx_t *ctx, bk_win_t *w, brook_time_t ws) {
  bk_hop_t *h = w->hop;
  brook_time_t we = ws + w->cfg->w.size;
  if (!h->rings)
    return merge_window(ctx, w, ws, we);
  brook_err_t err = push_buckets(w, we);
  if (err < 0)
    return err;
  if (h->n_active > h->cap_order) {
    size_t cap = h->cap_order;
    if (bk_grow(w->alloc, (void **)&h->order, &cap, h->n_active, sizeof(*h->order)))
      return BROOK_ERR_NOMEM;
    h->cap_order = cap;
  }
  size_t n = 0, keep = 0;
  for (size_t i = 0; i < h->n_active; i++) {
    bk_wkey_t *k = h->active[i];
    bk_ring_evict(&h->ks.rc, &k->ring, ws, bk_wkey_back(k));
    if ((err = bk_wkeys_touch(&h->ks, k)) < 0)
      return err;
    if (!k->ring.n) {
      k->flag = 0; /* out of the active list (and stays out if the removal cannot happen) */
      bk_wkeys_remove(&h->ks, k);
      continue;
    }
    h->active[keep++] = k;
    h->order[n++] = (hop_order_t){bk_ring_start(&h->ks.rc, &k->ring, 0),
                                  bk_ring_seq(&h->ks.rc, &k->ring, 0), k};
  }
  h->n_active = keep;
  qsort(h->order, n, sizeof(*h->order), order_cmp);
  for (size_t i = 0; i < n && err >= 0; i++) {
    bk_wkey_t *k = h->order[i].k;
    const void *acc = bk_wkeys_query(&h->ks, k);
    err = bk_win_emit(ctx, w, bk_wkey_bytes(k), k->klen, ws, we, acc, 1);
  }
  return err;
}

/* The next window that holds data (valid if there is any). */
static brook_time_t next_window(const bk_win_t *w) {
  const bk_hop_t *h = w->hop;
  if (h->n_active) /* they have slices in [done_ws, done_ws + size) */
    return h->m->done_ws + w->cfg->w.advance;
  return next_window_of(w, w->ws->buckets[0].start);
}

static brook_err_t hopping_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  bk_win_t *w = state;
  if (w->disk)
    return bk_win_disk_hopping_on_timer(ctx, w, t->time);
  bk_hop_t *h = w->hop;
  brook_time_t upto = t->time > ctx->wm ? t->time : ctx->wm;
  brook_err_t err = BROOK_OK;
  if (bk_win_restored(w) && (err = bk_win_hopping_rebuild(ctx, w)) < 0)
    return err;
  while (err >= 0 && (h->n_active || w->ws->n_buckets)) {
    brook_time_t ws = next_window(w);
    if (bk_win_fire_time(w, ws + w->cfg->w.size) > upto)
      return set_timer(ctx, w, ws);
    err = fire_window(ctx, w, ws);
    h->m->done_ws = ws;
    h->m->done = 1;
    brook_err_t ferr = bk_ctx_flush(ctx); /* results borrow the keys' bytes */
    if (err >= 0)
      err = ferr;
  }
  return err;
}

static brook_err_t hopping_open(brook_ctx_t *ctx, void *opaque, void **state) {
  brook_err_t err = bk_win_open(ctx, opaque, state);
  if (err < 0)
    return err;
  bk_win_t *w = *state;
  if (w->disk)
    return BROOK_OK; /* state on disk: none of the in-memory structures */
  bk_hop_t *h = bk_calloc(w->alloc, 1, sizeof(*h));
  if (!h) {
    bk_win_close(w, opaque);
    return BROOK_ERR_NOMEM;
  }
  w->hop = h;
  h->rings = w->cfg->w.size / w->cfg->slice > HOP_MERGE_MAX_SLICES;
  h->m = (hop_meta_t *)(void *)w->ws->meta;
  bk_seg_init(&h->merged, w->alloc, w->acc_size);
  /* Early results sweep with the rings' scratch in both modes. */
  if ((err = bk_wkeys_open(&h->ks, w->ws, w->alloc)) < 0) {
    bk_win_close(w, opaque);
    return err;
  }
  return BROOK_OK;
}

void bk_win_hop_free(bk_win_t *w) {
  bk_hop_t *h = w->hop;
  if (!h)
    return;
  bk_seg_free(&h->merged);
  bk_wkeys_free(&h->ks);
  bk_free(w->alloc, h->active);
  bk_free(w->alloc, h->order);
  bk_free(w->alloc, h);
  w->hop = NULL;
}

size_t bk_win_hop_memory(const bk_win_t *w) {
  const bk_hop_t *h = w->hop;
  if (!h)
    return 0;
  return sizeof(*h) + bk_seg_memory(&h->merged) + bk_wkeys_memory(&h->ks) +
         h->cap_active * sizeof(*h->active) + h->cap_order * sizeof(*h->order);
}

/* State on disk: what changed since the last commit goes to the stores now. */
static brook_err_t hopping_flush(brook_ctx_t *ctx, void *state) {
  bk_win_t *w = state;
  return w->disk ? bk_win_disk_flush(ctx, w) : BROOK_OK;
}

const brook_operator_t bk_window_hopping_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_hopping",
    .open = hopping_open,
    .process = hopping_process,
    .close = bk_win_close,
    .flush = hopping_flush,
    .on_timer = hopping_on_timer,
    .on_watermark = bk_win_on_watermark,
};
