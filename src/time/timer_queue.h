/* A timer queue: pending timers of one operator in one time domain, ordered by (time, key,
 * tag) and deduplicated on that triple. A binary heap over stable slots gives O(log n)
 * registration and pop; a hash set over the same slots makes re-registering a pending
 * timer O(1) and free of memory growth. Loop thread only. */
#ifndef BROOK_TIME_TIMER_QUEUE_H
#define BROOK_TIME_TIMER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/time.h>

/* Keys up to this many bytes are stored inside the slot; longer ones are allocated. */
#define BK_TIMER_INLINE_KEY 24

typedef struct bk_timer_slot {
  brook_time_t time;
  uint64_t tag;
  uint64_t prefix; /* first 8 key bytes, big-endian, zero padded: orders most keys */
  uint64_t hash;
  uint32_t key_len;
  uint32_t heap_pos; /* index in heap; UINT32_MAX when free */
  union {
    unsigned char inl[BK_TIMER_INLINE_KEY];
    unsigned char *ptr;
  } key;
} bk_timer_slot_t;

typedef struct bk_timerq {
  const brook_allocator_t *alloc;
  bk_timer_slot_t *slots; /* stable storage; free ones chained through heap_pos = UINT32_MAX */
  uint32_t n_slots, cap_slots;
  uint32_t *free_slots; /* stack of free slot indices */
  uint32_t n_free, cap_free;
  uint32_t *heap; /* slot indices, min-heap by (time, key, tag) */
  uint32_t n;     /* pending timers */
  uint32_t cap_heap;
  uint32_t *set; /* open addressing: 0 empty, BK_TQ_TOMB deleted, else slot index + 1 */
  uint32_t set_cap, set_used;                   /* set_used counts live and tombstoned cells */
  unsigned char fired_inl[BK_TIMER_INLINE_KEY]; /* key of the timer last popped (short) */
  unsigned char *fired_key;                     /* ... (long: the slot's own buffer) */
  size_t fired_len;
  size_t key_bytes; /* allocated long-key bytes */
} bk_timerq_t;

void bk_timerq_init(bk_timerq_t *q, const brook_allocator_t *alloc);
void bk_timerq_free(bk_timerq_t *q);

/* Adds (time, key, tag) unless it is pending already. Returns 1 (added), 0 (it was pending:
 * nothing changed) or BROOK_ERR_NOMEM / BROOK_ERR_INVALID_ARG (queue unchanged). Callers that
 * mirror the queue elsewhere (the timer store, runtime/timers.c) write only on 1. */
brook_err_t bk_timerq_add(bk_timerq_t *q, brook_time_t time, const void *key, size_t key_len,
                          uint64_t tag);

/* Removes the pending timer (time, key, tag). Returns 1 if it was pending, else 0. */
int bk_timerq_remove(bk_timerq_t *q, brook_time_t time, const void *key, size_t key_len,
                     uint64_t tag);

/* Time of the earliest pending timer; BROOK_TIME_MAX when empty. */
static inline brook_time_t bk_timerq_next(const bk_timerq_t *q) {
  return q->n ? q->slots[q->heap[0]].time : BROOK_TIME_MAX;
}

/* Removes the earliest timer if its time is <= `upto` and describes it in *out (key valid
 * until the next call on the queue). Returns 1 if one was popped, else 0. */
int bk_timerq_pop(bk_timerq_t *q, brook_time_t upto, brook_timer_t *out);

static inline size_t bk_timerq_count(const bk_timerq_t *q) { return q->n; }

/* The i-th pending timer (0 <= i < count), in no particular order, into *out (key valid until
 * the next change to the queue; domain not set). For writing the timers out. */
void bk_timerq_at(const bk_timerq_t *q, size_t i, brook_timer_t *out);

/* Bytes of memory held. */
size_t bk_timerq_memory(const bk_timerq_t *q);

/* Checks the heap order and the set (for assert()). */
int bk_timerq_check(const bk_timerq_t *q);

#endif
