/* The timer queue: a min-heap of slot indices ordered by (time, key, tag), plus a hash set
 * over the slots for deduplication. Slots never move, so the set can point at them; only
 * the heap's indices move. Loop thread only. */
#include "time/timer_queue.h"

#include <assert.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "core/key_order.h"

#define BK_TQ_TOMB UINT32_MAX
#define BK_SLOT_FREE UINT32_MAX

void bk_timerq_init(bk_timerq_t *q, const brook_allocator_t *alloc) {
  memset(q, 0, sizeof(*q));
  q->alloc = alloc;
}

static const unsigned char *slot_key(const bk_timer_slot_t *s) {
  return s->key_len <= BK_TIMER_INLINE_KEY ? s->key.inl : s->key.ptr;
}

void bk_timerq_free(bk_timerq_t *q) {
  for (uint32_t i = 0; i < q->n; i++) {
    bk_timer_slot_t *s = &q->slots[q->heap[i]];
    if (s->key_len > BK_TIMER_INLINE_KEY)
      bk_free(q->alloc, s->key.ptr);
  }
  bk_free(q->alloc, q->slots);
  bk_free(q->alloc, q->free_slots);
  bk_free(q->alloc, q->heap);
  bk_free(q->alloc, q->set);
  bk_free(q->alloc, q->fired_key);
  memset(q, 0, sizeof(*q));
}

static uint64_t timer_hash(brook_time_t t, const unsigned char *k, size_t len, uint64_t tag) {
  return bk_hash_mix64(bk_hash_bytes(k, len) ^ bk_hash_mix64((uint64_t)t) ^
                       bk_hash_mix64(tag + UINT64_C(0x9e3779b97f4a7c15)));
}

/* Key order (core/key_order.h), the prefix first. */
static int key_cmp(const bk_timer_slot_t *a, const bk_timer_slot_t *b) {
  if (a->prefix != b->prefix)
    return a->prefix < b->prefix ? -1 : 1;
  return bk_key_compare(slot_key(a), a->key_len, slot_key(b), b->key_len);
}

static int slot_less(const bk_timer_slot_t *a, const bk_timer_slot_t *b) {
  if (a->time != b->time)
    return a->time < b->time;
  int c = key_cmp(a, b);
  if (c)
    return c < 0;
  return a->tag < b->tag;
}

static void heap_set(bk_timerq_t *q, uint32_t pos, uint32_t slot) {
  q->heap[pos] = slot;
  q->slots[slot].heap_pos = pos;
}

static void sift_up(bk_timerq_t *q, uint32_t pos) {
  uint32_t slot = q->heap[pos];
  const bk_timer_slot_t *s = &q->slots[slot];
  while (pos > 0) {
    uint32_t parent = (pos - 1) / 2;
    if (!slot_less(s, &q->slots[q->heap[parent]]))
      break;
    heap_set(q, pos, q->heap[parent]);
    pos = parent;
  }
  heap_set(q, pos, slot);
}

static void sift_down(bk_timerq_t *q, uint32_t pos) {
  uint32_t slot = q->heap[pos];
  const bk_timer_slot_t *s = &q->slots[slot];
  for (;;) {
    uint32_t child = 2 * pos + 1;
    if (child >= q->n)
      break;
    if (child + 1 < q->n && slot_less(&q->slots[q->heap[child + 1]], &q->slots[q->heap[child]]))
      child++;
    if (!slot_less(&q->slots[q->heap[child]], s))
      break;
    heap_set(q, pos, q->heap[child]);
    pos = child;
  }
  heap_set(q, pos, slot);
}

static int slot_equals(const bk_timer_slot_t *s, uint64_t hash, brook_time_t t, const void *key,
                       size_t len, uint64_t tag) {
  return s->hash == hash && s->time == t && s->tag == tag && s->key_len == len &&
         (len == 0 || memcmp(slot_key(s), key, len) == 0);
}

/* Rebuilds the set with `cap` cells (a power of two) from the pending timers. */
static int set_rebuild(bk_timerq_t *q, uint32_t cap) {
  uint32_t *set = bk_calloc(q->alloc, cap, sizeof(*set));
  if (!set)
    return -1;
  for (uint32_t i = 0; i < q->n; i++) {
    uint32_t slot = q->heap[i];
    uint32_t c = (uint32_t)q->slots[slot].hash & (cap - 1);
    while (set[c])
      c = (c + 1) & (cap - 1);
    set[c] = slot + 1;
  }
  bk_free(q->alloc, q->set);
  q->set = set;
  q->set_cap = cap;
  q->set_used = q->n;
  return 0;
}

/* Makes room for one more timer in every array. */
static int reserve_one(bk_timerq_t *q) {
  if ((uint64_t)q->n + 1 >= UINT32_MAX / 4)
    return -1;
  /* Keep the set at most half full (live + tombstones) so probes stay short; a rebuild
   * drops the tombstones and leaves the live entries at most a quarter of the cells. */
  if ((q->set_used + 1) * 2 > q->set_cap) {
    uint32_t cap = q->set_cap ? q->set_cap : 64;
    while ((q->n + 1) * 4 > cap)
      cap *= 2;
    if (set_rebuild(q, cap))
      return -1;
  }
  size_t cap;
  if (q->n + 1 > q->cap_heap) {
    cap = q->cap_heap;
    if (bk_grow(q->alloc, (void **)&q->heap, &cap, q->n + 1, sizeof(*q->heap)))
      return -1;
    q->cap_heap = (uint32_t)cap;
  }
  if (q->n_free == 0 && q->n_slots + 1 > q->cap_slots) {
    cap = q->cap_slots;
    if (bk_grow(q->alloc, (void **)&q->slots, &cap, q->n_slots + 1, sizeof(*q->slots)))
      return -1;
    q->cap_slots = (uint32_t)cap;
  }
  return 0;
}

/* The set cell holding (time, key, tag), or UINT32_MAX if it is not pending. */
static uint32_t set_find(const bk_timerq_t *q, uint64_t h, brook_time_t time, const void *key,
                         size_t key_len, uint64_t tag) {
  if (!q->set_cap)
    return UINT32_MAX;
  uint32_t mask = q->set_cap - 1;
  for (uint32_t c = (uint32_t)h & mask; q->set[c]; c = (c + 1) & mask)
    if (q->set[c] != BK_TQ_TOMB &&
        slot_equals(&q->slots[q->set[c] - 1], h, time, key, key_len, tag))
      return c;
  return UINT32_MAX;
}

brook_err_t bk_timerq_add(bk_timerq_t *q, brook_time_t time, const void *key, size_t key_len,
                          uint64_t tag) {
  if (key_len > UINT32_MAX)
    return BROOK_ERR_INVALID_ARG;
  uint64_t h = timer_hash(time, key, key_len, tag);
  if (set_find(q, h, time, key, key_len, tag) != UINT32_MAX)
    return 0; /* already pending: fires once */
  if (reserve_one(q))
    return BROOK_ERR_NOMEM;
  unsigned char *long_key = NULL;
  if (key_len > BK_TIMER_INLINE_KEY) {
    if (!(long_key = bk_malloc(q->alloc, key_len)))
      return BROOK_ERR_NOMEM;
    memcpy(long_key, key, key_len);
    q->key_bytes += key_len;
  }
  /* Free slots are reused before the slot array grows; the stack of free indices needs no
   * allocation on this path because it only ever shrinks here. */
  uint32_t slot = q->n_free ? q->free_slots[--q->n_free] : q->n_slots++;
  bk_timer_slot_t *s = &q->slots[slot];
  s->time = time;
  s->tag = tag;
  s->hash = h;
  s->key_len = (uint32_t)key_len;
  if (long_key)
    s->key.ptr = long_key;
  else if (key_len)
    memcpy(s->key.inl, key, key_len);
  s->prefix = bk_key_prefix(slot_key(s), key_len);
  uint32_t mask = q->set_cap - 1;
  uint32_t c = (uint32_t)h & mask;
  while (q->set[c] && q->set[c] != BK_TQ_TOMB)
    c = (c + 1) & mask;
  if (q->set[c] == 0)
    q->set_used++;
  q->set[c] = slot + 1;
  q->heap[q->n] = slot;
  s->heap_pos = q->n;
  q->n++;
  sift_up(q, q->n - 1);
  assert(q->n > 512 || bk_timerq_check(q)); /* exhaustive check on small queues */
  return 1;
}

static void set_remove(bk_timerq_t *q, uint32_t slot) {
  uint32_t mask = q->set_cap - 1;
  uint32_t c = (uint32_t)q->slots[slot].hash & mask;
  while (q->set[c] != slot + 1)
    c = (c + 1) & mask;
  q->set[c] = BK_TQ_TOMB;
}

/* Takes the timer at heap position `pos` out of the heap and the set; its slot goes back to
 * the free stack (its contents stay readable until the next add). */
static void detach(bk_timerq_t *q, uint32_t pos) {
  uint32_t slot = q->heap[pos];
  q->n--;
  if (pos < q->n) { /* the last element fills the hole, then moves down or up */
    uint32_t moved = q->heap[q->n];
    heap_set(q, pos, moved);
    sift_down(q, pos);
    sift_up(q, q->slots[moved].heap_pos);
  }
  set_remove(q, slot);
  /* The free stack never needs to grow past the number of slots: reserve it lazily here,
   * and if that fails keep the slot unused (a leak of one slot, not of memory). */
  size_t cap = q->cap_free;
  if (q->n_free + 1 <= cap ||
      !bk_grow(q->alloc, (void **)&q->free_slots, &cap, q->n_free + 1, sizeof(uint32_t))) {
    q->cap_free = (uint32_t)cap;
    q->free_slots[q->n_free++] = slot;
  }
  q->slots[slot].heap_pos = BK_SLOT_FREE;
}

static void maybe_clean_set(bk_timerq_t *q) {
  /* Many tombstones make probes long: rebuild when they outnumber live entries. */
  if (q->set_used > 64 && q->set_used - q->n > q->n + q->set_cap / 8)
    (void)set_rebuild(q, q->set_cap); /* on failure keep the old (still correct) set */
}

int bk_timerq_remove(bk_timerq_t *q, brook_time_t time, const void *key, size_t key_len,
                     uint64_t tag) {
  if (key_len > UINT32_MAX)
    return 0;
  uint32_t c = set_find(q, timer_hash(time, key, key_len, tag), time, key, key_len, tag);
  if (c == UINT32_MAX)
    return 0;
  bk_timer_slot_t *s = &q->slots[q->set[c] - 1];
  detach(q, s->heap_pos);
  if (s->key_len > BK_TIMER_INLINE_KEY) {
    bk_free(q->alloc, s->key.ptr);
    q->key_bytes -= s->key_len;
  }
  maybe_clean_set(q);
  assert(q->n > 512 || bk_timerq_check(q)); /* exhaustive check on small queues */
  return 1;
}

int bk_timerq_pop(bk_timerq_t *q, brook_time_t upto, brook_timer_t *out) {
  if (q->n == 0 || q->slots[q->heap[0]].time > upto)
    return 0;
  bk_timer_slot_t *s = &q->slots[q->heap[0]];
  detach(q, 0);
  out->time = s->time;
  out->tag = s->tag;
  out->key_len = s->key_len;
  if (s->key_len <= BK_TIMER_INLINE_KEY) {
    /* Copy out: on_timer may add timers, which can reuse this slot. */
    memcpy(q->fired_inl, s->key.inl, s->key_len);
    out->key = q->fired_inl;
  } else {
    /* Hand the long key's buffer over as the fired key: no copy. */
    bk_free(q->alloc, q->fired_key);
    q->fired_key = s->key.ptr;
    q->fired_len = s->key_len;
    q->key_bytes -= s->key_len;
    out->key = q->fired_key;
  }
  maybe_clean_set(q);
  assert(q->n > 512 || bk_timerq_check(q)); /* exhaustive check on small queues */
  return 1;
}

void bk_timerq_at(const bk_timerq_t *q, size_t i, brook_timer_t *out) {
  assert(i < q->n);
  const bk_timer_slot_t *s = &q->slots[q->heap[i]];
  out->time = s->time;
  out->tag = s->tag;
  out->key_len = s->key_len;
  out->key = slot_key(s);
}

size_t bk_timerq_memory(const bk_timerq_t *q) {
  return (size_t)q->cap_slots * sizeof(*q->slots) + (size_t)q->cap_heap * sizeof(*q->heap) +
         (size_t)q->cap_free * sizeof(uint32_t) + (size_t)q->set_cap * sizeof(uint32_t) +
         q->fired_len + q->key_bytes;
}

int bk_timerq_check(const bk_timerq_t *q) {
  for (uint32_t i = 0; i < q->n; i++) {
    if (q->slots[q->heap[i]].heap_pos != i)
      return 0;
    if (i && slot_less(&q->slots[q->heap[i]], &q->slots[q->heap[(i - 1) / 2]]))
      return 0;
  }
  return 1;
}
