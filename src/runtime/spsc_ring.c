/* The single-producer / single-consumer ring (spsc_ring.h). */
#include "runtime/spsc_ring.h"

#include "core/alloc.h"

brook_err_t bk_spsc_init(bk_spsc_t *r, const brook_allocator_t *a, size_t cap) {
  size_t c = 2;
  while (c < cap)
    c <<= 1;
  r->slots = bk_calloc(a, c, sizeof(*r->slots));
  if (!r->slots)
    return BROOK_ERR_NOMEM;
  r->mask = c - 1;
  atomic_init(&r->head, 0);
  atomic_init(&r->tail, 0);
  return BROOK_OK;
}

void bk_spsc_free(bk_spsc_t *r, const brook_allocator_t *a) {
  bk_free(a, r->slots);
  r->slots = NULL;
}

int bk_spsc_push(bk_spsc_t *r, void *item) {
  size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
  if (tail - head > r->mask)
    return -1;
  r->slots[tail & r->mask] = item;
  atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
  return 0;
}

void *bk_spsc_pop(bk_spsc_t *r) {
  size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
  if (head == tail)
    return NULL;
  void *item = r->slots[head & r->mask];
  atomic_store_explicit(&r->head, head + 1, memory_order_release);
  return item;
}

size_t bk_spsc_count(bk_spsc_t *r) {
  return atomic_load_explicit(&r->tail, memory_order_acquire) -
         atomic_load_explicit(&r->head, memory_order_acquire);
}
