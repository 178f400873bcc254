/* A bounded single-producer / single-consumer ring of pointers: the only queue between
 * workers (exchange.c). Lock-free: the producer owns `tail`, the consumer owns `head`, each
 * published with release and read with acquire, so what the producer wrote into an item
 * before pushing it is visible to the consumer that pops it. Full and empty are reported,
 * never waited on: waking is the caller's (uv_async). */
#ifndef BROOK_RUNTIME_SPSC_RING_H
#define BROOK_RUNTIME_SPSC_RING_H

#include <stdatomic.h>
#include <stddef.h>

#include <brook/alloc.h>
#include <brook/error.h>

typedef struct bk_spsc {
  void **slots;
  size_t mask;                     /* capacity - 1; capacity is a power of two */
  _Alignas(64) atomic_size_t head; /* next slot to pop (consumer) */
  _Alignas(64) atomic_size_t tail; /* next slot to push (producer) */
} bk_spsc_t;

/* A ring for at least `cap` items (rounded up to a power of two). BROOK_ERR_NOMEM. */
brook_err_t bk_spsc_init(bk_spsc_t *r, const brook_allocator_t *a, size_t cap);
void bk_spsc_free(bk_spsc_t *r, const brook_allocator_t *a);
/* Producer thread: 0, or -1 if the ring is full (nothing pushed). */
int bk_spsc_push(bk_spsc_t *r, void *item);
/* Consumer thread: the oldest item, or NULL if the ring is empty. */
void *bk_spsc_pop(bk_spsc_t *r);
/* Items in the ring (exact on either thread for its own side's view). */
size_t bk_spsc_count(bk_spsc_t *r);

#endif
