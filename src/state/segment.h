/* A segment: a flat table of key -> fixed-size accumulator that is filled, read in insertion
 * order and then emptied all at once. Window operators keep one per window start (tumbling)
 * or slice start (hopping): every key of a segment closes at the same watermark, so a
 * segment never deletes single keys (except undoing the newest insert) and needs neither
 * tombstones nor per-entry headers.
 *
 * Layout: a dense array of entries of `stride` bytes, in insertion order:
 *   [uint32 hash][uint32 klen][8 bytes: the key if klen <= 8, else its offset in `keys`]
 *   [accumulator, 16-byte aligned]
 * and an open-addressing index (linear probing, load <= 1/2) of uint32 entry numbers + 1.
 * Keys longer than 8 bytes live in one growing byte buffer. Growing moves entries: an
 * accumulator pointer is valid until the next insert into the same segment.
 *
 * No per-entry allocation: a reset keeps the arrays for the next use (shrinking them when
 * they are far larger than the last use needed). Memory is accounted exactly
 * (bk_seg_memory). Single-threaded. */
#ifndef BROOK_STATE_SEGMENT_H
#define BROOK_STATE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <brook/alloc.h>
#include <brook/error.h>

/* The per-record paths are always inlined: callers sit in tight loops. */
#if defined(__GNUC__)
#define BK_SEG_INLINE static inline __attribute__((always_inline))
#else
#define BK_SEG_INLINE static inline
#endif

typedef struct bk_seg {
  uint32_t *index;        /* mask + 1 slots (0 = empty, else entry number + 1); NULL if none */
  uint32_t mask;          /* index slots - 1 */
  uint32_t n, ecap;       /* entries used / allocated */
  size_t stride;          /* bytes per entry: 16 + the accumulator rounded up to 16 */
  size_t acc_size;        /* accumulator bytes (zeroed on insert) */
  size_t acc_words;       /* (stride - 16) / 8 */
  unsigned char *entries; /* ecap * stride bytes */
  unsigned char *keys;    /* long keys' bytes */
  size_t keys_used, keys_cap;
  const brook_allocator_t *alloc;
} bk_seg_t;

/* An entry's header; the accumulator follows at +16. */
typedef struct bk_seg_entry {
  uint32_t hash; /* low 32 bits of the key's hash */
  uint32_t klen;
  union {
    unsigned char bytes[8]; /* klen <= 8: the key, zero padded */
    uint64_t off;           /* klen > 8: offset of the key in seg->keys */
  } k;
} bk_seg_entry_t;

/* An empty segment for accumulators of acc_size bytes (no allocation until the first
 * insert). `a` must outlive the segment. */
void bk_seg_init(bk_seg_t *s, const brook_allocator_t *a, size_t acc_size);

/* Frees the segment's memory; it is empty and usable again afterwards. */
void bk_seg_free(bk_seg_t *s);

/* Removes the newest entry (undoes the last insert). No-op if empty. */
void bk_seg_pop(bk_seg_t *s);

/* Empties the segment, keeping (or trimming) its arrays for reuse. */
void bk_seg_reset(bk_seg_t *s);

/* Bytes the segment holds. */
size_t bk_seg_memory(const bk_seg_t *s);

static inline size_t bk_seg_count(const bk_seg_t *s) { return s->n; }

/* Entry i (0 = oldest) of n = bk_seg_count. */
static inline bk_seg_entry_t *bk_seg_at(const bk_seg_t *s, size_t i) {
  return (bk_seg_entry_t *)(void *)(s->entries + i * s->stride);
}

static inline const unsigned char *bk_seg_key(const bk_seg_t *s, const bk_seg_entry_t *e) {
  return e->klen <= 8 ? e->k.bytes : s->keys + e->k.off;
}

static inline void *bk_seg_acc(bk_seg_entry_t *e) { return (unsigned char *)e + 16; }

/* The first 8 bytes of a short key, zero padded: how entries hold it. */
static inline uint64_t bk_seg_short_word(const void *key, size_t klen) {
  uint64_t w = 0;
  if (klen == 8)
    memcpy(&w, key, 8);
  else if (klen)
    memcpy(&w, key, klen);
  return w;
}

static inline int bk_seg_entry_is(const bk_seg_t *s, const bk_seg_entry_t *e, uint32_t h32,
                                  const void *key, size_t klen, uint64_t word) {
  if (e->hash != h32 || e->klen != klen)
    return 0;
  if (klen <= 8)
    return e->k.off == word;
  return memcmp(s->keys + e->k.off, key, klen) == 0;
}

/* Writes entry n at index `slot` (free); its accumulator, zeroed. */
BK_SEG_INLINE void *bk_seg_put_entry(bk_seg_t *s, uint32_t slot, uint32_t h32, uint32_t klen,
                                     uint64_t off) {
  bk_seg_entry_t *e = bk_seg_at(s, s->n);
  e->hash = h32;
  e->klen = klen;
  e->k.off = off;
  uint64_t *acc = bk_seg_acc(e);
  for (size_t i = 0; i < s->acc_words; i++)
    acc[i] = 0;
  s->index[slot] = ++s->n;
  return acc;
}

/* Inserts an absent key (growing, long keys); NULL if memory ran out. */
void *bk_seg_insert_slow(bk_seg_t *s, const void *key, size_t klen, uint64_t h);

/* The accumulator of `key` (hash h from bk_hash_bytes), inserted (zeroed) if absent;
 * *created tells which. NULL if memory ran out (or the key is longer than 4 GiB - 1); the
 * segment's contents are then unchanged (its capacity may have grown). `key` must not point
 * into this segment's own memory. */
BK_SEG_INLINE void *bk_seg_upsert(bk_seg_t *s, const void *key, size_t klen, uint64_t h,
                                  int *created) {
  uint32_t h32 = (uint32_t)h;
  uint64_t word = klen <= 8 ? bk_seg_short_word(key, klen) : 0;
  uint32_t slot = h32 & s->mask;
  if (s->index) {
    for (;; slot = (slot + 1) & s->mask) {
      uint32_t x = s->index[slot];
      if (!x)
        break;
      bk_seg_entry_t *e = bk_seg_at(s, x - 1);
      if (bk_seg_entry_is(s, e, h32, key, klen, word)) {
        *created = 0;
        return bk_seg_acc(e);
      }
    }
  }
  *created = 1;
  if (s->n < s->ecap && klen <= 8)
    return bk_seg_put_entry(s, slot, h32, (uint32_t)klen, word);
  void *acc = bk_seg_insert_slow(s, key, klen, h);
  if (!acc)
    *created = 0;
  return acc;
}

/* The accumulator of `key`, or NULL. */
static inline void *bk_seg_find(const bk_seg_t *s, const void *key, size_t klen, uint64_t h) {
  if (!s->n)
    return NULL;
  uint32_t h32 = (uint32_t)h;
  uint64_t word = klen <= 8 ? bk_seg_short_word(key, klen) : 0;
  for (uint32_t slot = h32 & s->mask;; slot = (slot + 1) & s->mask) {
    uint32_t x = s->index[slot];
    if (!x)
      return NULL;
    bk_seg_entry_t *e = bk_seg_at(s, x - 1);
    if (bk_seg_entry_is(s, e, h32, key, klen, word))
      return bk_seg_acc(e);
  }
}

#endif
