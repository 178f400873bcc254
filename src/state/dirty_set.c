/* The dirty set of an in-memory store (see dirty_set.h). */
#include "state/dirty_set.h"

#include <assert.h>
#include <stdint.h>

#include "core/alloc.h"
#include "state/store.h"

#define DIRTY_KEEP 64 /* capacity always kept after a flush */

int bk_dirty_reserve(bk_dirty_t *d, const brook_allocator_t *a) {
  if (d->n < d->cap)
    return 0;
  if (d->n >= UINT32_MAX - 1)
    return -1;
  void *arr = d->v;
  if (bk_grow(a, &arr, &d->cap, d->n + 1, sizeof(bk_entry_t *)))
    return -1;
  d->v = arr;
  return 0;
}

void bk_dirty_add(bk_dirty_t *d, bk_entry_t *e) {
  assert(!e->dirty && d->n < d->cap);
  d->v[d->n++] = e;
  e->dirty = (uint32_t)d->n;
}

void bk_dirty_remove(bk_dirty_t *d, bk_entry_t *e) {
  size_t i = e->dirty - 1;
  assert(i < d->n && d->v[i] == e);
  bk_entry_t *last = d->v[--d->n];
  d->v[i] = last;
  last->dirty = (uint32_t)(i + 1);
  e->dirty = 0;
}

void bk_dirty_reset(bk_dirty_t *d, const brook_allocator_t *a, size_t count) {
  for (size_t i = 0; i < d->n; i++)
    d->v[i]->dirty = 0;
  d->n = 0;
  if (d->cap > DIRTY_KEEP && d->cap > 2 * count) {
    bk_free(a, d->v);
    d->v = NULL;
    d->cap = 0;
  }
}

brook_err_t bk_dirty_flush(bk_dirty_t *d, const brook_allocator_t *a, size_t count,
                           brook_store_listener_fn fn, void *opaque) {
  brook_err_t first = BROOK_OK;
  for (size_t i = 0; i < d->n; i++) {
    bk_entry_t *e = d->v[i];
    e->dirty = 0;
    if (!fn)
      continue;
    brook_err_t err = fn(bk_entry_key(e), e->klen, bk_entry_value(e), e->vlen, opaque);
    if (err && first == BROOK_OK)
      first = err;
  }
  d->n = 0;
  bk_dirty_reset(d, a, count);
  return first;
}

void bk_dirty_fini(bk_dirty_t *d, const brook_allocator_t *a) {
  bk_free(a, d->v);
  d->v = NULL;
  d->n = d->cap = 0;
}
