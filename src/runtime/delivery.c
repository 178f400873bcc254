/* Epoch-tracked asynchronous deliveries. See delivery.h. Loop thread. */
#include "runtime/delivery.h"

#include <string.h>

#include "core/alloc.h"

void bk_delivery_init(bk_delivery_t *d, const brook_allocator_t *alloc) {
  memset(d, 0, sizeof(*d));
  d->alloc = alloc;
  d->epoch = 1;
}

void bk_delivery_free(bk_delivery_t *d) {
  bk_free(d->alloc, d->ring);
  d->ring = NULL;
  d->head = d->n = d->cap = 0;
}

static bk_delivery_epoch_t *at(const bk_delivery_t *d, size_t i) {
  return &d->ring[(d->head + i) & (d->cap - 1)];
}

uint64_t bk_delivery_add(bk_delivery_t *d) {
  if (d->n && at(d, d->n - 1)->epoch == d->epoch) {
    at(d, d->n - 1)->pending++;
    d->total++;
    return d->epoch;
  }
  if (d->n == d->cap) { /* grow the ring, unrolled to start at 0 */
    size_t cap = d->cap ? d->cap * 2 : 16;
    bk_delivery_epoch_t *r = bk_malloc(d->alloc, cap * sizeof(*r));
    if (!r)
      return 0;
    for (size_t i = 0; i < d->n; i++)
      r[i] = *at(d, i);
    bk_free(d->alloc, d->ring);
    d->ring = r;
    d->cap = cap;
    d->head = 0;
  }
  *at(d, d->n++) = (bk_delivery_epoch_t){d->epoch, 1};
  d->total++;
  return d->epoch;
}

void bk_delivery_done(bk_delivery_t *d, uint64_t epoch) {
  /* Acks arrive roughly in order: search from the oldest. */
  size_t i = 0;
  while (i < d->n && at(d, i)->epoch != epoch)
    i++;
  if (i == d->n || at(d, i)->pending == 0)
    return; /* not ours: a bug elsewhere, but never underflow */
  at(d, i)->pending--;
  d->total--;
  while (d->n && at(d, 0)->pending == 0) {
    d->head = (d->head + 1) & (d->cap - 1);
    d->n--;
  }
  if (d->watch && bk_delivery_oldest_pending(d) > d->watch) {
    d->watch = 0;
    if (d->on_passed)
      d->on_passed(d->on_passed_opaque);
  }
  int resume = d->held && d->total <= d->limit / 2;
  if (resume)
    d->held = 0;
  if ((d->total == 0 || resume) && d->on_drained)
    d->on_drained(d->on_drained_opaque);
}

uint64_t bk_delivery_oldest_pending(const bk_delivery_t *d) {
  return d->n ? at(d, 0)->epoch : UINT64_MAX;
}
