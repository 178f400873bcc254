/* The window store's layouts and change tracking: segments per start, rings per key, meta.
 * See window_store.h. Starts close in order, so buckets are created near the end and dropped
 * from the front; a dropped bucket's segment is emptied at once and kept as a spare past the
 * live ones, so a steady stream of windows allocates nothing. Loop thread. */
#include "state/window_store.h"

#include <string.h>

#include "core/alloc.h"

brook_err_t bk_wstore_init(bk_wstore_t *ws, const brook_allocator_t *a,
                           const brook_aggregator_t *agg, size_t meta_size) {
  memset(ws, 0, sizeof(*ws));
  if (meta_size > BK_WSTORE_META_MAX)
    return BROOK_ERR_INVALID_ARG;
  ws->alloc = a;
  ws->acc_size = agg->acc_size;
  ws->meta_size = meta_size;
  bk_slab_init(&ws->slab, a);
  bk_ring_cfg_init(&ws->rc, agg, &ws->slab);
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = BK_WKEY_BACK_OFF + ws->rc.aw;
  return bk_store_create(a, &so, "window keys", &ws->keys, NULL);
}

static void bucket_free(bk_wstore_t *ws, bk_wbucket_t *b) {
  bk_seg_free(&b->seg);
  bk_free(ws->alloc, b->dbits);
  bk_free(ws->alloc, b->dlist);
  b->dbits = NULL;
  b->dlist = NULL;
  b->dbits_words = b->n_dirty = b->dlist_cap = 0;
}

/* Forgets the bucket's dirty entries (after reporting them, or when it empties). */
static void bucket_clean(bk_wbucket_t *b) {
  for (size_t i = 0; i < b->n_dirty; i++)
    b->dbits[b->dlist[i] / 64] &= ~((uint64_t)1 << (b->dlist[i] % 64));
  b->n_dirty = 0;
}

static void rings_reset(bk_wstore_t *ws) {
  if (!ws->keys)
    return;
  size_t cur = 0;
  const void *k, *v;
  size_t kl, vl;
  while (brook_store_next(ws->keys, &cur, &k, &kl, &v, &vl))
    bk_ring_free(&ws->rc, &((bk_wkey_t *)(uintptr_t)v)->ring);
  bk_hash_reset(ws->keys, 0);
  bk_slab_trim(&ws->slab);
  ws->n_kdirty = 0;
}

void bk_wstore_reset(bk_wstore_t *ws) {
  for (size_t i = 0; i < ws->n_buckets; i++) {
    bucket_clean(&ws->buckets[i]);
    bk_seg_reset(&ws->buckets[i].seg);
  }
  ws->n_buckets = ws->last_bucket = 0;
  rings_reset(ws);
  ws->gone_used = 0;
  memset(ws->meta, 0, sizeof(ws->meta));
  memset(ws->meta_seen, 0, sizeof(ws->meta_seen));
}

void bk_wstore_destroy(bk_wstore_t *ws) {
  if (!ws->alloc)
    return;
  for (size_t i = 0; i < ws->cap_buckets; i++)
    bucket_free(ws, &ws->buckets[i]);
  bk_free(ws->alloc, ws->buckets);
  bk_store_destroy(ws->keys); /* the rings' blocks go with the slab */
  bk_slab_destroy(&ws->slab);
  bk_free(ws->alloc, ws->kdirty);
  bk_free(ws->alloc, ws->gone);
  bk_free(ws->alloc, ws->view);
  memset(ws, 0, sizeof(*ws));
}

size_t bk_wstore_memory(const bk_wstore_t *ws) {
  size_t m = ws->cap_buckets * sizeof(*ws->buckets) + ws->kdirty_cap * sizeof(*ws->kdirty) +
             ws->view_cap + ws->gone_cap + bk_slab_bytes(&ws->slab) +
             (ws->keys ? brook_store_memory(ws->keys) : 0);
  for (size_t i = 0; i < ws->cap_buckets; i++) {
    const bk_wbucket_t *b = &ws->buckets[i];
    m += bk_seg_memory(&b->seg) + b->dbits_words * 8 + b->dlist_cap * sizeof(*b->dlist);
  }
  return m;
}

int bk_wstore_meta_present(const bk_wstore_t *ws) {
  for (size_t i = 0; i < ws->meta_size; i++)
    if (ws->meta[i])
      return 1;
  return 0;
}

size_t bk_wstore_count(const bk_wstore_t *ws) {
  size_t n = (size_t)bk_wstore_meta_present(ws) + (ws->keys ? brook_store_count(ws->keys) : 0);
  for (size_t i = 0; i < ws->n_buckets; i++)
    n += bk_seg_count(&ws->buckets[i].seg);
  return n;
}

/* ---- segments ---- */

size_t bk_wstore_bucket_lower(const bk_wstore_t *ws, brook_time_t start) {
  size_t lo = 0, hi = ws->n_buckets;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ws->buckets[mid].start < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

bk_wbucket_t *bk_wstore_bucket_find_or_add(bk_wstore_t *ws, brook_time_t start, int *created) {
  *created = 0;
  size_t lo = bk_wstore_bucket_lower(ws, start);
  if (lo < ws->n_buckets && ws->buckets[lo].start == start) {
    ws->last_bucket = lo;
    return &ws->buckets[lo];
  }
  if (ws->n_buckets == ws->cap_buckets) {
    size_t cap = ws->cap_buckets;
    if (bk_grow(ws->alloc, (void **)&ws->buckets, &cap, ws->n_buckets + 1, sizeof(*ws->buckets)))
      return NULL;
    for (size_t i = ws->cap_buckets; i < cap; i++) {
      memset(&ws->buckets[i], 0, sizeof(ws->buckets[i]));
      bk_seg_init(&ws->buckets[i].seg, ws->alloc, ws->acc_size);
    }
    ws->cap_buckets = cap;
  }
  /* The first spare (past the live buckets) rotates into place, keeping its memory. */
  bk_wbucket_t b = ws->buckets[ws->n_buckets];
  memmove(ws->buckets + lo + 1, ws->buckets + lo, (ws->n_buckets - lo) * sizeof(*ws->buckets));
  b.start = start;
  ws->buckets[lo] = b;
  ws->n_buckets++;
  ws->last_bucket = lo;
  *created = 1;
  return &ws->buckets[lo];
}

brook_err_t bk_wstore_bucket_mark(bk_wstore_t *ws, bk_wbucket_t *b, size_t i) {
  size_t w = i / 64;
  uint64_t bit = (uint64_t)1 << (i % 64);
  if (w < b->dbits_words && (b->dbits[w] & bit))
    return BROOK_OK;
  if (w >= b->dbits_words) {
    size_t words = b->dbits_words;
    if (bk_grow(ws->alloc, (void **)&b->dbits, &words, w + 1, sizeof(*b->dbits)))
      return BROOK_ERR_NOMEM;
    memset(b->dbits + b->dbits_words, 0, (words - b->dbits_words) * sizeof(*b->dbits));
    b->dbits_words = words;
  }
  if (b->n_dirty == b->dlist_cap &&
      bk_grow(ws->alloc, (void **)&b->dlist, &b->dlist_cap, b->n_dirty + 1, sizeof(*b->dlist)))
    return BROOK_ERR_NOMEM;
  b->dbits[w] |= bit;
  b->dlist[b->n_dirty++] = (uint32_t)i;
  return BROOK_OK;
}

static void reverse(bk_wbucket_t *b, size_t from, size_t to) {
  while (from + 1 < to) {
    bk_wbucket_t t = b[from];
    b[from++] = b[--to];
    b[to] = t;
  }
}

/* Builds the logical key of slice (key, start) into the view scratch; its length, or 0 if out
 * of memory (window_store_view.c). */
size_t bk_wstore_slice_key(bk_wstore_t *ws, const void *key, size_t klen, brook_time_t start);

/* Tracks the deletion of the logical key in the view scratch (n bytes). Out of memory the
 * deletion goes unreported, as a failed listener call would leave it. */
static void track_gone(bk_wstore_t *ws, size_t n) {
  size_t need = ws->gone_used + 4 + n;
  if (need > ws->gone_cap) {
    size_t cap = ws->gone_cap;
    if (bk_grow(ws->alloc, (void **)&ws->gone, &cap, need < 1024 ? 1024 : need, 1))
      return;
    ws->gone_cap = cap;
  }
  uint32_t len = (uint32_t)n;
  memcpy(ws->gone + ws->gone_used, &len, 4);
  memcpy(ws->gone + ws->gone_used + 4, ws->view, n);
  ws->gone_used = need;
}

void bk_wstore_buckets_drop_before(bk_wstore_t *ws, brook_time_t start) {
  size_t k = 0;
  while (k < ws->n_buckets && ws->buckets[k].start < start)
    k++;
  if (!k)
    return;
  for (size_t i = 0; i < k; i++) {
    bk_wbucket_t *b = &ws->buckets[i];
    for (size_t j = 0, n = bk_seg_count(&b->seg); ws->tracking && j < n; j++) {
      bk_seg_entry_t *e = bk_seg_at(&b->seg, j);
      size_t kl = bk_wstore_slice_key(ws, bk_seg_key(&b->seg, e), e->klen, b->start);
      if (kl)
        track_gone(ws, kl);
    }
    bucket_clean(b);
    bk_seg_reset(&b->seg);
  }
  /* Rotate the k dropped buckets, emptied, to just past the live ones (three reversals). */
  reverse(ws->buckets, 0, k);
  reverse(ws->buckets, k, ws->n_buckets);
  reverse(ws->buckets, 0, ws->n_buckets);
  ws->n_buckets -= k;
  ws->last_bucket = ws->last_bucket >= k ? ws->last_bucket - k : 0;
}

/* ---- rings ---- */

bk_wkey_t *bk_wstore_key_get(bk_wstore_t *ws, const void *key, size_t klen, uint64_t hash,
                             int *created, brook_err_t *err) {
  void *v;
  if ((*err = bk_store_upsert(ws->keys, key, klen, hash, &v, created)) < 0)
    return NULL;
  bk_wkey_t *k = v;
  if (*created)
    k->klen = (uint32_t)klen;
  if ((*err = bk_wstore_key_mark(ws, k)) < 0)
    return NULL;
  return k;
}

brook_err_t bk_wstore_key_mark_slow(bk_wstore_t *ws, bk_wkey_t *k) {
  if (ws->n_kdirty == ws->kdirty_cap && bk_grow(ws->alloc, (void **)&ws->kdirty, &ws->kdirty_cap,
                                                ws->n_kdirty + 1, sizeof(*ws->kdirty)))
    return BROOK_ERR_NOMEM;
  ws->kdirty[ws->n_kdirty++] = k;
  k->dirty = (uint32_t)ws->n_kdirty;
  return BROOK_OK;
}

/* Builds the logical key of key k's ring into the view scratch (window_store_view.c). */
size_t bk_wstore_ring_key(bk_wstore_t *ws, const void *key, size_t klen);

void bk_wstore_key_unmark(bk_wstore_t *ws, bk_wkey_t *k) {
  bk_wkey_t *last = ws->kdirty[--ws->n_kdirty];
  ws->kdirty[k->dirty - 1] = last;
  last->dirty = k->dirty;
  k->dirty = 0;
}

void bk_wstore_key_remove(bk_wstore_t *ws, bk_wkey_t *k) {
  size_t klen = k->klen;
  bk_ring_free(&ws->rc, &k->ring);
  if (k->dirty) /* out of the dirty list: the deletion is what gets reported */
    bk_wstore_key_unmark(ws, k);
  /* The bytes live in the entry being removed: copy them (as the logical key) first. */
  size_t n = bk_wstore_ring_key(ws, bk_wkey_bytes(k), klen);
  if (!n) /* out of memory: the empty key stays, harmlessly, until it gets slices again */
    return;
  const unsigned char *key = ws->view + 1;
  if (ws->tracking)
    track_gone(ws, n);
  (void)bk_store_remove(ws->keys, key, klen, bk_hash_bytes(key, klen));
}

/* ---- change reports ---- */

/* Forgets every tracked change. */
static void untrack(bk_wstore_t *ws) {
  for (size_t i = 0; i < ws->n_buckets; i++)
    bucket_clean(&ws->buckets[i]);
  for (size_t i = 0; i < ws->n_kdirty; i++)
    ws->kdirty[i]->dirty = 0;
  ws->n_kdirty = 0;
  ws->gone_used = 0;
  memcpy(ws->meta_seen, ws->meta, ws->meta_size);
}

int bk_wstore_has_pending(const bk_wstore_t *ws) {
  if (!ws->tracking || ws->n_kdirty || ws->gone_used ||
      memcmp(ws->meta, ws->meta_seen, ws->meta_size))
    return 1;
  for (size_t i = 0; i < ws->n_buckets; i++)
    if (ws->buckets[i].n_dirty)
      return 1;
  return 0;
}

/* The ring record of `k` into the view scratch after its logical key (window_store_view.c):
 * the record's length, or 0 if out of memory; *klen gets the key's. */
size_t bk_wstore_ring_entry(bk_wstore_t *ws, bk_wkey_t *k, size_t *klen);

static void keep_first(brook_err_t *first, brook_err_t err) {
  if (err < 0 && *first >= 0)
    *first = err;
}

/* Reports every entry as it is: a listener's first flush. */
static brook_err_t report_all(bk_wstore_t *ws, brook_store_listener_fn fn, void *opaque) {
  brook_err_t first = BROOK_OK;
  bk_wstore_cursor_t c = {0};
  const void *k, *v;
  size_t kl, vl;
  while (bk_wstore_next(ws, &c, &k, &kl, &v, &vl))
    keep_first(&first, fn(k, kl, v, vl, opaque));
  if (c.phase != 3) /* the iteration ran out of memory */
    keep_first(&first, BROOK_ERR_NOMEM);
  return first;
}

brook_err_t bk_wstore_flush(bk_wstore_t *ws, brook_store_listener_fn fn, void *opaque) {
  if (!fn) {
    untrack(ws);
    ws->tracking = 0;
    return BROOK_OK;
  }
  if (!ws->tracking) {
    untrack(ws);
    ws->tracking = 1;
    return report_all(ws, fn, opaque);
  }
  brook_err_t first = BROOK_OK;
  /* Deletions first: a key deleted and then created again in the batch ends up present. */
  for (size_t pos = 0; pos < ws->gone_used;) {
    uint32_t len;
    memcpy(&len, ws->gone + pos, 4);
    keep_first(&first, fn(ws->gone + pos + 4, len, NULL, 0, opaque));
    pos += 4 + (size_t)len;
  }
  ws->gone_used = 0;
  if (ws->meta_size && memcmp(ws->meta, ws->meta_seen, ws->meta_size)) {
    unsigned char tag = BK_WSTORE_TAG_META;
    memcpy(ws->meta_seen, ws->meta, ws->meta_size);
    keep_first(&first, fn(&tag, 1, bk_wstore_meta_present(ws) ? ws->meta : NULL,
                          bk_wstore_meta_present(ws) ? ws->meta_size : 0, opaque));
  }
  for (size_t i = 0; i < ws->n_buckets; i++) {
    bk_wbucket_t *b = &ws->buckets[i];
    for (size_t j = 0; j < b->n_dirty; j++) {
      bk_seg_entry_t *e = bk_seg_at(&b->seg, b->dlist[j]);
      size_t kl = bk_wstore_slice_key(ws, bk_seg_key(&b->seg, e), e->klen, b->start);
      keep_first(&first,
                 kl ? fn(ws->view, kl, bk_seg_acc(e), ws->acc_size, opaque) : BROOK_ERR_NOMEM);
    }
    bucket_clean(b);
  }
  for (size_t i = 0; i < ws->n_kdirty; i++) {
    bk_wkey_t *k = ws->kdirty[i];
    k->dirty = 0;
    size_t kl, n = bk_wstore_ring_entry(ws, k, &kl);
    keep_first(&first, n ? fn(ws->view, kl, ws->view + kl, n, opaque) : BROOK_ERR_NOMEM);
  }
  ws->n_kdirty = 0;
  return first;
}

void bk_wstore_forget_gone(bk_wstore_t *ws, const void *key, size_t klen) {
  size_t out = 0;
  for (size_t pos = 0; pos < ws->gone_used;) {
    uint32_t len;
    memcpy(&len, ws->gone + pos, 4);
    size_t n = 4 + (size_t)len;
    if (!(len == klen && memcmp(ws->gone + pos + 4, key, klen) == 0)) {
      memmove(ws->gone + out, ws->gone + pos, n);
      out += n;
    }
    pos += n;
  }
  ws->gone_used = out;
}

int bk_wstore_check(const bk_wstore_t *ws) {
  for (size_t i = 1; i < ws->n_buckets; i++)
    if (ws->buckets[i - 1].start >= ws->buckets[i].start)
      return 0;
  if (ws->n_buckets > ws->cap_buckets || (ws->n_buckets && ws->last_bucket >= ws->n_buckets))
    return 0;
  size_t cur = 0, n = 0;
  const void *k, *v;
  size_t kl, vl;
  while (ws->keys && brook_store_next(ws->keys, &cur, &k, &kl, &v, &vl)) {
    const bk_wkey_t *wk = v;
    if (wk->klen != kl || !bk_ring_check(&ws->rc, &wk->ring) ||
        (wk->dirty && (wk->dirty > ws->n_kdirty || ws->kdirty[wk->dirty - 1] != wk)))
      return 0;
    n += wk->dirty != 0;
  }
  return n == ws->n_kdirty;
}
