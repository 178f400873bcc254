/* Deliveries that complete after the batch that caused them (a Kafka sink's records, acked
 * by the brokers later), tracked by EPOCH: the runtime starts a new epoch before every source
 * batch, so every record emitted while that batch (and the timers after it) runs derives from
 * input of that epoch or earlier. A sink counts each asynchronous write against the current
 * epoch and reports its completion; a source may commit the input of epoch e once no write
 * of an epoch <= e is pending (bk_delivery_oldest_pending() > e). At the end the runtime
 * waits for pending deliveries before it closes the operators. Loop thread. */
#ifndef BROOK_RUNTIME_DELIVERY_H
#define BROOK_RUNTIME_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>

typedef struct bk_delivery_epoch {
  uint64_t epoch;
  uint64_t pending;
} bk_delivery_epoch_t;

typedef struct bk_delivery {
  const brook_allocator_t *alloc;
  uint64_t epoch;            /* the current epoch (starts at 1) */
  bk_delivery_epoch_t *ring; /* epochs with writes, oldest first (pending may reach 0 in the
                                middle; such entries leave when they reach the front) */
  size_t head, n, cap;       /* cap is a power of two (or 0) */
  uint64_t total;            /* pending writes over all epochs */
  /* Called when total drops to 0 (the runtime finishes a wait on it), and when a hold ends. */
  void (*on_drained)(void *opaque);
  void *on_drained_opaque;
  /* Backpressure: sources are held while total >= limit (0 = no limit), until it falls to
   * limit / 2. The smallest max_in_flight of the pipeline's asynchronous sinks. */
  uint64_t limit;
  int held;
  /* A watch (commit.c, revocations): on_passed runs once every write of an epoch <= watch is
   * done (bk_delivery_oldest_pending() > watch), inside the write's completion like
   * on_drained, and the watch is cleared (0: none). */
  uint64_t watch;
  void (*on_passed)(void *opaque);
  void *on_passed_opaque;
} bk_delivery_t;

/* Whether sources must wait: at or over the limit (and then held until limit / 2). */
static inline int bk_delivery_hold(bk_delivery_t *d) {
  if (d->limit && d->total >= d->limit)
    d->held = 1;
  return d->held;
}

void bk_delivery_init(bk_delivery_t *d, const brook_allocator_t *alloc);
void bk_delivery_free(bk_delivery_t *d);

/* A new source batch begins. */
static inline void bk_delivery_next_epoch(bk_delivery_t *d) { d->epoch++; }

/* Counts one asynchronous write against the current epoch; returns that epoch (the token to
 * give bk_delivery_done), or 0 if memory ran out (nothing counted). */
uint64_t bk_delivery_add(bk_delivery_t *d);

/* The write counted against `epoch` completed (delivered, dead-lettered, or failed for good). */
void bk_delivery_done(bk_delivery_t *d, uint64_t epoch);

/* The oldest epoch with a pending write, or UINT64_MAX if none. */
uint64_t bk_delivery_oldest_pending(const bk_delivery_t *d);

#endif
