/* The window store's logical view: its entries as tagged byte keys and values (see
 * window_store.h), for iteration, snapshots, listeners and the store interface's get, put and
 * delete. Nothing here is on a record's path. Loop thread. */
#include <string.h>

#include "core/alloc.h"
#include "state/window_store.h"

#define RING_HDR 24 /* u32 n, fe, pe, 0; int64 upto */
#define START_BIAS ((uint64_t)1 << 63)

/* A ring record's header fields, in native byte order like the accumulators and ring
 * elements that follow them (window state moves between processes of one build). */
static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

static uint32_t get_u32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Room for n bytes in the view scratch. */
static int view_reserve(bk_wstore_t *ws, size_t n) {
  if (n <= ws->view_cap)
    return 0;
  size_t cap = ws->view_cap;
  return bk_grow(ws->alloc, (void **)&ws->view, &cap, n < 256 ? 256 : n, 1)
             ? -1
             : (ws->view_cap = cap, 0);
}

size_t bk_wstore_slice_key(bk_wstore_t *ws, const void *key, size_t klen, brook_time_t start) {
  if (view_reserve(ws, klen + 9) < 0)
    return 0;
  ws->view[0] = BK_WSTORE_TAG_SLICE;
  if (klen)
    memcpy(ws->view + 1, key, klen);
  uint64_t s = (uint64_t)start ^ START_BIAS; /* sorts as unsigned big-endian bytes */
  for (int i = 0; i < 8; i++)
    ws->view[1 + klen + i] = (unsigned char)(s >> (56 - 8 * i));
  return klen + 9;
}

size_t bk_wstore_ring_key(bk_wstore_t *ws, const void *key, size_t klen) {
  if (view_reserve(ws, klen + 1) < 0)
    return 0;
  ws->view[0] = BK_WSTORE_TAG_RING;
  if (klen)
    memcpy(ws->view + 1, key, klen);
  return klen + 1;
}

static size_t ring_record_size(const bk_wstore_t *ws, uint32_t n) {
  return RING_HDR + ws->rc.aw + (size_t)n * ws->rc.stride;
}

size_t bk_wstore_ring_entry(bk_wstore_t *ws, bk_wkey_t *k, size_t *klen) {
  *klen = (size_t)k->klen + 1;
  size_t n = ring_record_size(ws, k->ring.n);
  if (view_reserve(ws, *klen + n) < 0 || !bk_wstore_ring_key(ws, bk_wkey_bytes(k), k->klen))
    return 0;
  unsigned char *p = ws->view + *klen;
  put_u32(p, k->ring.n);
  put_u32(p + 4, k->ring.fe);
  put_u32(p + 8, k->ring.pe);
  put_u32(p + 12, 0);
  memcpy(p + 16, &k->upto, 8);
  memcpy(p + RING_HDR, bk_wkey_back(k), ws->rc.aw);
  if (k->ring.n)
    memcpy(p + RING_HDR + ws->rc.aw, bk_ring_el(&ws->rc, &k->ring, 0),
           (size_t)k->ring.n * ws->rc.stride);
  return n;
}

/* Splits a slice key into user key and start; -1 if it is not one. */
static int slice_parse(const unsigned char *key, size_t klen, size_t *ulen, brook_time_t *start) {
  if (klen < 9 || key[0] != BK_WSTORE_TAG_SLICE)
    return -1;
  uint64_t s = 0;
  for (int i = 0; i < 8; i++)
    s = (s << 8) | key[klen - 8 + i];
  *ulen = klen - 9;
  *start = (brook_time_t)(s ^ START_BIAS);
  return 0;
}

/* Checks a ring record: sizes, runs, starts strictly increasing. */
static int ring_record_ok(const bk_wstore_t *ws, const unsigned char *v, size_t vlen) {
  if (vlen < RING_HDR + ws->rc.aw)
    return 0;
  uint32_t n = get_u32(v), fe = get_u32(v + 4), pe = get_u32(v + 8);
  if (fe > pe || pe > n || get_u32(v + 12) || (vlen - RING_HDR - ws->rc.aw) / ws->rc.stride != n ||
      (vlen - RING_HDR - ws->rc.aw) % ws->rc.stride)
    return 0;
  const unsigned char *el = v + RING_HDR + ws->rc.aw;
  for (uint32_t i = 1; i < n; i++) {
    brook_time_t a, b;
    memcpy(&a, el + (size_t)(i - 1) * ws->rc.stride, 8);
    memcpy(&b, el + (size_t)i * ws->rc.stride, 8);
    if (a >= b)
      return 0;
  }
  return 1;
}

/* ---- get ---- */

brook_err_t bk_wstore_get(bk_wstore_t *ws, const void *key, size_t klen, const void **value,
                          size_t *vlen) {
  const unsigned char *kb = key;
  *value = NULL;
  *vlen = 0;
  if (!klen || !key)
    return BROOK_ERR_NOT_FOUND;
  if (kb[0] == BK_WSTORE_TAG_META && klen == 1 && bk_wstore_meta_present(ws)) {
    *value = ws->meta;
    *vlen = ws->meta_size;
    return BROOK_OK;
  }
  size_t ulen;
  brook_time_t start;
  if (slice_parse(kb, klen, &ulen, &start) == 0) {
    size_t i = bk_wstore_bucket_lower(ws, start);
    if (i < ws->n_buckets && ws->buckets[i].start == start) {
      void *acc = bk_seg_find(&ws->buckets[i].seg, kb + 1, ulen, bk_hash_bytes(kb + 1, ulen));
      if (acc) {
        *value = acc;
        *vlen = ws->acc_size;
        return BROOK_OK;
      }
    }
  }
  if (kb[0] == BK_WSTORE_TAG_RING) {
    bk_wkey_t *k = bk_wstore_key_find(ws, kb + 1, klen - 1, bk_hash_bytes(kb + 1, klen - 1));
    size_t kl, n;
    if (k && (n = bk_wstore_ring_entry(ws, k, &kl))) {
      *value = ws->view + kl;
      *vlen = n;
      return BROOK_OK;
    }
    if (k)
      return BROOK_ERR_NOMEM;
  }
  return BROOK_ERR_NOT_FOUND;
}

/* ---- put ---- */

static brook_err_t put_slice(bk_wstore_t *ws, const unsigned char *key, size_t klen,
                             const void *value, size_t vlen) {
  size_t ulen;
  brook_time_t start;
  if (slice_parse(key, klen, &ulen, &start) < 0 || vlen != ws->acc_size || ulen > UINT32_MAX)
    return BROOK_ERR_INVALID_ARG;
  int created;
  bk_wbucket_t *b = bk_wstore_bucket_find_or_add(ws, start, &created);
  if (!b)
    return BROOK_ERR_NOMEM;
  void *acc = bk_seg_upsert(&b->seg, key + 1, ulen, bk_hash_bytes(key + 1, ulen), &created);
  if (!acc)
    return BROOK_ERR_NOMEM; /* an empty bucket may stay: it holds no entry */
  memcpy(acc, value, vlen);
  return BROOK_OK;
}

static brook_err_t put_ring(bk_wstore_t *ws, const unsigned char *key, size_t klen,
                            const unsigned char *v, size_t vlen) {
  if (!ring_record_ok(ws, v, vlen) || klen - 1 > UINT32_MAX)
    return BROOK_ERR_INVALID_ARG;
  int created;
  void *slot;
  brook_err_t err = bk_store_upsert(ws->keys, key + 1, klen - 1, bk_hash_bytes(key + 1, klen - 1),
                                    &slot, &created);
  if (err < 0)
    return err;
  bk_wkey_t *k = slot;
  if (bk_ring_assign(&ws->rc, &k->ring, v + RING_HDR + ws->rc.aw, get_u32(v), get_u32(v + 4),
                     get_u32(v + 8)) < 0) {
    if (created)
      (void)bk_store_remove(ws->keys, key + 1, klen - 1, bk_hash_bytes(key + 1, klen - 1));
    return BROOK_ERR_NOMEM;
  }
  k->klen = (uint32_t)(klen - 1);
  k->flag = 0;
  memcpy(&k->upto, v + 16, 8);
  memcpy(bk_wkey_back(k), v + RING_HDR, ws->rc.aw);
  if (k->dirty) /* the store layer reports this put: no need to again */
    bk_wstore_key_unmark(ws, k);
  return BROOK_OK;
}

brook_err_t bk_wstore_put(bk_wstore_t *ws, const void *key, size_t klen, const void *value,
                          size_t vlen) {
  const unsigned char *kb = key;
  if (!key || !klen || (!value && vlen))
    return BROOK_ERR_INVALID_ARG;
  ws->gen++;
  bk_wstore_forget_gone(ws, key, klen);
  switch (kb[0]) {
  case BK_WSTORE_TAG_META:
    if (klen != 1 || vlen != ws->meta_size || !vlen)
      return BROOK_ERR_INVALID_ARG;
    memcpy(ws->meta, value, vlen);
    memcpy(ws->meta_seen, value, vlen);
    return BROOK_OK;
  case BK_WSTORE_TAG_SLICE:
    return put_slice(ws, kb, klen, value, vlen);
  case BK_WSTORE_TAG_RING:
    return put_ring(ws, kb, klen, value, vlen);
  default:
    return BROOK_ERR_INVALID_ARG;
  }
}

/* ---- delete ---- */

/* Rebuilds bucket i without entry `gone` (segments delete nothing else in place). */
static brook_err_t bucket_remove_entry(bk_wstore_t *ws, size_t i, size_t gone) {
  bk_wbucket_t *b = &ws->buckets[i];
  bk_seg_t fresh;
  bk_seg_init(&fresh, ws->alloc, ws->acc_size);
  for (size_t j = 0, n = bk_seg_count(&b->seg); j < n; j++) {
    if (j == gone)
      continue;
    bk_seg_entry_t *e = bk_seg_at(&b->seg, j);
    const unsigned char *k = bk_seg_key(&b->seg, e);
    int created;
    void *acc = bk_seg_upsert(&fresh, k, e->klen, bk_hash_bytes(k, e->klen), &created);
    if (!acc) {
      bk_seg_free(&fresh);
      return BROOK_ERR_NOMEM;
    }
    memcpy(acc, bk_seg_acc(e), ws->acc_size);
  }
  bk_seg_free(&b->seg);
  b->seg = fresh;
  size_t keep = 0; /* entries after the gone one move down by one */
  for (size_t j = 0; j < b->n_dirty; j++) {
    uint32_t x = b->dlist[j];
    b->dbits[x / 64] &= ~((uint64_t)1 << (x % 64));
    if (x != gone)
      b->dlist[keep++] = x > gone ? x - 1 : x;
  }
  b->n_dirty = keep;
  for (size_t j = 0; j < keep; j++)
    b->dbits[b->dlist[j] / 64] |= (uint64_t)1 << (b->dlist[j] % 64);
  if (!bk_seg_count(&fresh)) { /* an empty bucket goes back to the spares */
    bk_wbucket_t e = *b;
    memmove(b, b + 1, (ws->n_buckets - i - 1) * sizeof(*b));
    ws->buckets[--ws->n_buckets] = e;
    ws->last_bucket = 0;
  }
  return BROOK_OK;
}

brook_err_t bk_wstore_delete(bk_wstore_t *ws, const void *key, size_t klen) {
  const unsigned char *kb = key;
  if (!key || !klen)
    return BROOK_ERR_NOT_FOUND;
  size_t ulen;
  brook_time_t start;
  if (kb[0] == BK_WSTORE_TAG_META && klen == 1 && bk_wstore_meta_present(ws)) {
    ws->gen++;
    memset(ws->meta, 0, sizeof(ws->meta));
    memset(ws->meta_seen, 0, sizeof(ws->meta_seen));
    return BROOK_OK;
  }
  if (slice_parse(kb, klen, &ulen, &start) == 0) {
    size_t i = bk_wstore_bucket_lower(ws, start);
    void *acc = i < ws->n_buckets && ws->buckets[i].start == start
                    ? bk_seg_find(&ws->buckets[i].seg, kb + 1, ulen, bk_hash_bytes(kb + 1, ulen))
                    : NULL;
    if (acc) {
      ws->gen++;
      return bucket_remove_entry(ws, i, bk_wstore_bucket_index(&ws->buckets[i], acc));
    }
  }
  if (kb[0] == BK_WSTORE_TAG_RING) {
    bk_wkey_t *k = bk_wstore_key_find(ws, kb + 1, klen - 1, bk_hash_bytes(kb + 1, klen - 1));
    if (k) {
      ws->gen++;
      int tracking = ws->tracking; /* the store layer reports this deletion */
      ws->tracking = 0;
      bk_wstore_key_remove(ws, k);
      ws->tracking = tracking;
      return BROOK_OK;
    }
  }
  return BROOK_ERR_NOT_FOUND;
}

void bk_wstore_clear(bk_wstore_t *ws) {
  ws->gen++;
  bk_wstore_reset(ws); /* tracked changes go too: the store layer reports the deletions */
}

/* ---- iteration ---- */

int bk_wstore_next(bk_wstore_t *ws, bk_wstore_cursor_t *c, const void **key, size_t *klen,
                   const void **value, size_t *vlen) {
  static const unsigned char meta_key = BK_WSTORE_TAG_META;
  if (c->phase == 0) {
    c->phase = 1;
    c->bucket = c->at = 0;
    if (bk_wstore_meta_present(ws)) {
      *key = &meta_key;
      *klen = 1;
      *value = ws->meta;
      *vlen = ws->meta_size;
      return 1;
    }
  }
  while (c->phase == 1) {
    if (c->bucket >= ws->n_buckets) {
      c->phase = 2;
      c->at = 0;
      break;
    }
    bk_wbucket_t *b = &ws->buckets[c->bucket];
    if (c->at >= bk_seg_count(&b->seg)) {
      c->bucket++;
      c->at = 0;
      continue;
    }
    bk_seg_entry_t *e = bk_seg_at(&b->seg, c->at++);
    size_t kl = bk_wstore_slice_key(ws, bk_seg_key(&b->seg, e), e->klen, b->start);
    if (!kl)
      return 0; /* out of memory: the iteration ends early */
    *key = ws->view;
    *klen = kl;
    *value = bk_seg_acc(e);
    *vlen = ws->acc_size;
    return 1;
  }
  if (c->phase == 2) {
    const void *k, *v;
    size_t kl, vl;
    if (brook_store_next(ws->keys, &c->at, &k, &kl, &v, &vl)) {
      size_t n = bk_wstore_ring_entry(ws, (bk_wkey_t *)(uintptr_t)v, &kl);
      if (!n)
        return 0;
      *key = ws->view;
      *klen = kl;
      *value = ws->view + kl;
      *vlen = n;
      return 1;
    }
    c->phase = 3;
  }
  return 0;
}
