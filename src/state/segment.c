/* Segments: flat key -> accumulator tables emptied all at once. See segment.h. */
#include "state/segment.h"

#include "core/alloc.h"

#define MIN_ENTRIES 16u
#define MAX_ENTRIES (UINT32_MAX / 4) /* so the index (2x entries) fits uint32 numbers */

void bk_seg_init(bk_seg_t *s, const brook_allocator_t *a, size_t acc_size) {
  memset(s, 0, sizeof(*s));
  s->alloc = a;
  s->acc_size = acc_size;
  s->stride = 16 + ((acc_size + 15) & ~(size_t)15);
  s->acc_words = (s->stride - 16) / 8;
}

void bk_seg_free(bk_seg_t *s) {
  bk_free(s->alloc, s->index);
  bk_free(s->alloc, s->entries);
  bk_free(s->alloc, s->keys);
  bk_seg_init(s, s->alloc, s->acc_size);
}

/* Fills a fresh (zeroed) index of mask + 1 slots from the entries. */
static void fill_index(bk_seg_t *s, uint32_t *idx, uint32_t mask) {
  for (uint32_t i = 0; i < s->n; i++) {
    uint32_t slot = bk_seg_at(s, i)->hash & mask;
    while (idx[slot])
      slot = (slot + 1) & mask;
    idx[slot] = i + 1;
  }
}

/* Resizes to `cap` entries (>= n) and 2 * cap index slots; -1 (nothing changed) if memory
 * ran out. */
static int resize(bk_seg_t *s, uint32_t cap) {
  uint32_t *idx = bk_calloc(s->alloc, (size_t)cap * 2, sizeof(*idx));
  if (!idx)
    return -1;
  unsigned char *e = bk_realloc(s->alloc, s->entries, (size_t)cap * s->stride);
  if (!e) {
    bk_free(s->alloc, idx);
    return -1;
  }
  bk_free(s->alloc, s->index);
  s->entries = e;
  s->ecap = cap;
  s->index = idx;
  s->mask = cap * 2 - 1;
  fill_index(s, idx, s->mask);
  return 0;
}

/* Room for one more entry (and its index slot). */
static int reserve_one(bk_seg_t *s) {
  if (s->n < s->ecap)
    return 0;
  if (s->ecap >= MAX_ENTRIES)
    return -1;
  return resize(s, s->ecap ? s->ecap * 2 : MIN_ENTRIES);
}

void *bk_seg_insert_slow(bk_seg_t *s, const void *key, size_t klen, uint64_t h) {
  if (klen > UINT32_MAX)
    return NULL;
  if (s->n == s->ecap && reserve_one(s) < 0)
    return NULL;
  uint64_t off = klen <= 8 ? bk_seg_short_word(key, klen) : 0;
  if (klen > 8) {
    size_t need = s->keys_used + klen;
    if (need < klen)
      return NULL;
    if (need > s->keys_cap) {
      size_t cap = s->keys_cap;
      if (bk_grow(s->alloc, (void **)&s->keys, &cap, need < 256 ? 256 : need, 1))
        return NULL;
      s->keys_cap = cap;
    }
    memcpy(s->keys + s->keys_used, key, klen);
    off = s->keys_used;
    s->keys_used = need;
  }
  uint32_t slot = (uint32_t)h & s->mask;
  while (s->index[slot])
    slot = (slot + 1) & s->mask;
  return bk_seg_put_entry(s, slot, (uint32_t)h, (uint32_t)klen, off);
}

void bk_seg_pop(bk_seg_t *s) {
  if (!s->n)
    return;
  uint32_t last = s->n; /* its index value */
  bk_seg_entry_t *e = bk_seg_at(s, last - 1);
  uint32_t slot = e->hash & s->mask;
  while (s->index[slot] != last)
    slot = (slot + 1) & s->mask;
  /* No entry after it in its probe run can belong before it: every other entry was placed
   * (or re-placed by a resize, in entry order) before it, when its slot was still empty or
   * already its own. So clearing the slot keeps every probe run intact. */
  s->index[slot] = 0;
  if (e->klen > 8)
    s->keys_used = e->k.off;
  s->n--;
}

void bk_seg_reset(bk_seg_t *s) {
  uint32_t used = s->n;
  s->n = 0;
  s->keys_used = 0;
  if (!s->index)
    return;
  /* Far bigger than the last use needed: shrink, so memory follows live windows. */
  if (s->ecap > MIN_ENTRIES && s->ecap / 8 > used) {
    uint32_t cap = MIN_ENTRIES;
    while (cap < used * 2)
      cap *= 2;
    if (s->keys_cap > 4096) {
      bk_free(s->alloc, s->keys);
      s->keys = NULL;
      s->keys_cap = 0;
    }
    if (resize(s, cap) == 0) /* n == 0: a fresh, empty index */
      return;
  }
  memset(s->index, 0, ((size_t)s->mask + 1) * sizeof(*s->index));
}

size_t bk_seg_memory(const bk_seg_t *s) {
  return (s->index ? ((size_t)s->mask + 1) * sizeof(*s->index) : 0) + (size_t)s->ecap * s->stride +
         s->keys_cap;
}
