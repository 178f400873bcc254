/* A key's slices with two-stack running aggregates. See window_ring.h. Loop thread. */
#include "state/window_ring.h"

#include <assert.h>

#define MIN_CAP 4u

void bk_ring_cfg_init(bk_ring_cfg_t *c, const brook_aggregator_t *agg, bk_slab_t *slab) {
  c->agg = agg;
  c->acc_size = agg->acc_size;
  c->aw = (agg->acc_size + 15) & ~(size_t)15;
  c->stride = 16 + 2 * c->aw;
  c->slab = slab;
}

size_t bk_ring_lower(const bk_ring_cfg_t *c, const bk_ring_t *r, brook_time_t start) {
  size_t lo = 0, hi = r->n;
  if (hi && bk_ring_start(c, r, hi - 1) < start)
    return hi; /* the common case: a slice after all the others */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (bk_ring_start(c, r, mid) < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Moves the elements into a block of `cap` (>= n) elements at head 0; -1 if out of memory
 * (nothing changed). cap 0 frees the block. */
static int relocate(const bk_ring_cfg_t *c, bk_ring_t *r, uint32_t cap) {
  unsigned char *buf = NULL;
  uint32_t ref = 0;
  if (cap && !(buf = bk_slab_alloc(c->slab, (size_t)cap * c->stride, &ref)))
    return -1;
  if (r->n)
    memcpy(buf, bk_ring_el(c, r, 0), (size_t)r->n * c->stride);
  if (r->buf)
    bk_slab_free(c->slab, r->buf, r->ref);
  r->buf = buf;
  r->ref = ref;
  r->cap = cap;
  r->head = 0;
  return 0;
}

void *bk_ring_insert(const bk_ring_cfg_t *c, bk_ring_t *r, size_t pos, brook_time_t start,
                     uint64_t seq, int pushed) {
  assert(pos <= r->n && (pushed ? pos <= r->pe : pos >= r->pe));
  if (r->head + r->n == r->cap) {
    if (r->n >= UINT32_MAX / 2)
      return NULL;
    if (r->head > r->n) { /* plenty of room before head: slide down instead of growing */
      memmove(r->buf, bk_ring_el(c, r, 0), (size_t)r->n * c->stride);
      r->head = 0;
    } else if (relocate(c, r, r->cap ? r->cap * 2 : MIN_CAP) < 0) {
      return NULL;
    }
  }
  unsigned char *e = bk_ring_el(c, r, pos);
  if (pos < r->n)
    memmove(e + c->stride, e, (r->n - pos) * c->stride);
  r->n++;
  if (pushed) {
    if (pos < r->fe)
      r->fe++;
    r->pe++;
  }
  memcpy(e, &start, sizeof(start));
  memcpy(e + 8, &seq, sizeof(seq));
  memset(e + 16, 0, 2 * c->aw);
  if (c->agg->init)
    c->agg->init(e + 16, c->agg);
  return e + 16;
}

void bk_ring_erase(const bk_ring_cfg_t *c, bk_ring_t *r, size_t pos) {
  assert(pos < r->n);
  unsigned char *e = bk_ring_el(c, r, pos);
  memmove(e, e + c->stride, (r->n - pos - 1) * c->stride);
  r->n--;
  if (pos < r->fe)
    r->fe--;
  if (pos < r->pe)
    r->pe--;
}

/* sfx[i] = acc[i], merged with sfx[i + 1] when that is in the front. */
static void suffix(const bk_ring_cfg_t *c, bk_ring_t *r, size_t i) {
  memcpy(bk_ring_sfx(c, r, i), bk_ring_acc(c, r, i), c->acc_size);
  if (i + 1 < r->fe)
    c->agg->merge(bk_ring_sfx(c, r, i), bk_ring_sfx(c, r, i + 1), c->agg);
}

/* Folds acc[i] into back (copying the first element of the back run). */
static void back_add(const bk_ring_cfg_t *c, const bk_ring_t *r, size_t i, void *back) {
  if (i == r->fe)
    memcpy(back, bk_ring_acc(c, r, i), c->acc_size);
  else
    c->agg->merge(back, bk_ring_acc(c, r, i), c->agg);
}

void bk_ring_refresh(const bk_ring_cfg_t *c, bk_ring_t *r, size_t pos, void *back) {
  assert(pos < r->pe && bk_ring_check(c, r)); /* O(n), like the refresh itself */
  if (pos < r->fe) {
    for (size_t i = pos + 1; i-- > 0;)
      suffix(c, r, i);
    return;
  }
  for (size_t i = r->fe; i < r->pe; i++)
    back_add(c, r, i, back);
}

void bk_ring_push(const bk_ring_cfg_t *c, bk_ring_t *r, brook_time_t upto, void *back) {
  while (r->pe < r->n && bk_ring_start(c, r, r->pe) < upto) {
    back_add(c, r, r->pe, back);
    r->pe++;
  }
}

void bk_ring_evict(const bk_ring_cfg_t *c, bk_ring_t *r, brook_time_t from, void *back) {
  (void)back; /* the back run loses nothing: a flip empties it first */
  uint32_t before = r->n;
  while (r->n && bk_ring_start(c, r, 0) < from) {
    if (r->pe == 0) { /* pending: in no aggregate */
      r->head++;
      r->n--;
      continue;
    }
    if (r->fe == 0) { /* the front ran empty: turn the back into suffixes, once */
      r->fe = r->pe;
      for (size_t i = r->pe; i-- > 0;)
        suffix(c, r, i);
    }
    r->head++;
    r->n--;
    r->fe--;
    r->pe--;
  }
  if (r->n == before)
    return;
  if (!r->n) {
    (void)relocate(c, r, 0); /* never fails: frees */
    r->fe = r->pe = 0;
  } else if (r->cap > 4 * MIN_CAP && r->n < r->cap / 4) {
    (void)relocate(c, r, r->n * 2); /* out of memory: stays bigger, which is harmless */
  }
}

const void *bk_ring_query(const bk_ring_cfg_t *c, const bk_ring_t *r, const void *back, void *tmp) {
  if (!r->pe)
    return NULL;
  if (!r->fe)
    return back;
  if (r->fe == r->pe)
    return bk_ring_sfx(c, r, 0);
  memcpy(tmp, bk_ring_sfx(c, r, 0), c->acc_size);
  c->agg->merge(tmp, back, c->agg);
  return tmp;
}

int bk_ring_assign(const bk_ring_cfg_t *c, bk_ring_t *r, const void *elements, uint32_t n,
                   uint32_t fe, uint32_t pe) {
  uint32_t ref = 0, cap = n < MIN_CAP ? MIN_CAP : n;
  unsigned char *buf = n ? bk_slab_alloc(c->slab, (size_t)cap * c->stride, &ref) : NULL;
  if (n && !buf)
    return -1;
  if (n)
    memcpy(buf, elements, (size_t)n * c->stride);
  bk_ring_free(c, r);
  r->buf = buf;
  r->ref = ref;
  r->cap = n ? cap : 0;
  r->n = n;
  r->fe = fe;
  r->pe = pe;
  return 0;
}

void bk_ring_free(const bk_ring_cfg_t *c, bk_ring_t *r) {
  if (r->buf)
    bk_slab_free(c->slab, r->buf, r->ref);
  memset(r, 0, sizeof(*r));
}

int bk_ring_check(const bk_ring_cfg_t *c, const bk_ring_t *r) {
  if (r->fe > r->pe || r->pe > r->n || (size_t)r->head + r->n > r->cap || (r->cap && !r->buf))
    return 0;
  for (size_t i = 1; i < r->n; i++)
    if (bk_ring_start(c, r, i - 1) >= bk_ring_start(c, r, i))
      return 0;
  return 1;
}
