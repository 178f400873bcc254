/* The state stores' size-class allocator (see slab.h). Chunk metadata lives in a table
 * beside the chunks, not inside them, so a chunk's bytes are all blocks and a block's ref is
 * simply its chunk's index in that table. A chunk is exactly `cap` blocks long (plus
 * alignment padding if the allocator misaligns), so its size need not be stored. */
#include "state/slab.h"

#include <assert.h>
#include <string.h>

#include "core/alloc.h"

#define NONE UINT32_MAX
#define ALIGN 16

struct bk_slab_chunk {
  unsigned char *mem;   /* from the allocator; NULL while this id is unused */
  unsigned char *start; /* mem rounded up to ALIGN (equal unless the allocator misaligns) */
  void *free;           /* freed blocks, linked through their first bytes */
  uint32_t carved;      /* blocks handed out from start at least once; the rest is fresh */
  uint32_t cap;         /* blocks that fit in the chunk */
  uint32_t live;        /* blocks handed out and not yet freed */
  uint32_t prev, next;  /* the class's avail list; `next` also links unused ids */
  uint8_t cls;
  uint8_t listed; /* on the avail list: has a free or fresh block */
};

/* A block bigger than BK_SLAB_MAX_BLOCK: this header, padded to ALIGN, precedes it. */
struct bk_slab_large {
  bk_slab_large_t *prev, *next;
  void *mem;    /* from the allocator */
  size_t bytes; /* requested from the allocator */
};

#define LARGE_HDR ((sizeof(bk_slab_large_t) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

static size_t class_size(unsigned cls) {
  return cls < 16 ? (size_t)(cls + 1) * 16 : (size_t)512 << (cls - 16);
}

/* 16-byte steps up to 256 (small keys and values are the common case and waste little),
 * then powers of two up to the chunk size. */
static unsigned size_class(size_t size) {
  if (size <= 256)
    return size ? (unsigned)((size - 1) >> 4) : 0;
  unsigned lg = 64 - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
  return 16 + lg - 9;
}

size_t bk_slab_block_size(size_t size) {
  return size > BK_SLAB_MAX_BLOCK ? size : class_size(size_class(size));
}

/* Blocks in the next chunk of class `cls` while the class holds `held` chunks: the first
 * chunk is BK_SLAB_FIRST_CHUNK bytes, each further one doubles, up to BK_SLAB_CHUNK_SIZE;
 * always at least one block. */
static uint32_t chunk_blocks(unsigned cls, uint32_t held) {
  size_t bytes = BK_SLAB_CHUNK_SIZE;
  if (held < 16 && (BK_SLAB_FIRST_CHUNK << held) < bytes)
    bytes = BK_SLAB_FIRST_CHUNK << held;
  size_t blocks = bytes / class_size(cls);
  return blocks ? (uint32_t)blocks : 1;
}

static size_t chunk_bytes(const bk_slab_chunk_t *c) {
  size_t blocks = (size_t)c->cap * class_size(c->cls);
  return c->start == c->mem ? blocks : blocks + ALIGN - 1;
}

static unsigned char *align_up(unsigned char *p) {
  return p + ((ALIGN - (uintptr_t)p % ALIGN) % ALIGN);
}

void bk_slab_init(bk_slab_t *s, const brook_allocator_t *alloc) {
  memset(s, 0, sizeof(*s));
  s->alloc = alloc;
  s->unused = NONE;
  for (unsigned i = 0; i < BK_SLAB_NCLASSES; i++)
    s->avail[i] = NONE;
}

void bk_slab_destroy(bk_slab_t *s) {
  for (size_t i = 0; i < s->n_chunks; i++)
    bk_free(s->alloc, s->chunks[i].mem);
  bk_free(s->alloc, s->chunks);
  while (s->large) {
    bk_slab_large_t *l = s->large;
    s->large = l->next;
    bk_free(s->alloc, l->mem);
  }
  bk_slab_init(s, s->alloc);
}

static void avail_link(bk_slab_t *s, uint32_t id) {
  bk_slab_chunk_t *c = &s->chunks[id];
  c->prev = NONE;
  c->next = s->avail[c->cls];
  if (c->next != NONE)
    s->chunks[c->next].prev = id;
  s->avail[c->cls] = id;
  c->listed = 1;
}

static void avail_unlink(bk_slab_t *s, uint32_t id) {
  bk_slab_chunk_t *c = &s->chunks[id];
  if (c->prev != NONE)
    s->chunks[c->prev].next = c->next;
  else
    s->avail[c->cls] = c->next;
  if (c->next != NONE)
    s->chunks[c->next].prev = c->prev;
  c->listed = 0;
}

/* Allocates a chunk for class `cls`, lists it as available and empty. NONE on failure. */
static uint32_t chunk_new(bk_slab_t *s, unsigned cls) {
  uint32_t id = s->unused;
  if (id == NONE) {
    if (s->n_chunks >= NONE - 1)
      return NONE;
    if (s->n_chunks == s->chunks_cap) {
      void *arr = s->chunks;
      size_t cap = s->chunks_cap;
      if (bk_grow(s->alloc, &arr, &cap, s->n_chunks + 1, sizeof(bk_slab_chunk_t)))
        return NONE;
      s->bytes += (cap - s->chunks_cap) * sizeof(bk_slab_chunk_t);
      s->chunks = arr;
      s->chunks_cap = cap;
    }
    id = (uint32_t)s->n_chunks;
  }
  uint32_t cap = chunk_blocks(cls, s->held[cls]);
  size_t size = (size_t)cap * class_size(cls);
  unsigned char *mem = bk_malloc(s->alloc, size);
  if (mem && align_up(mem) != mem) {
    /* An allocator weaker than malloc: pay for the padding rather than lose a block. */
    bk_free(s->alloc, mem);
    mem = bk_malloc(s->alloc, size + ALIGN - 1);
  }
  if (!mem)
    return NONE;
  if (id == s->unused)
    s->unused = s->chunks[id].next;
  else
    s->n_chunks++;
  bk_slab_chunk_t *c = &s->chunks[id];
  memset(c, 0, sizeof(*c));
  c->mem = mem;
  c->start = align_up(mem);
  c->cap = cap;
  c->cls = (uint8_t)cls;
  s->bytes += chunk_bytes(c);
  s->empty[cls]++;
  s->held[cls]++;
  avail_link(s, id);
  return id;
}

static void chunk_release(bk_slab_t *s, uint32_t id) {
  bk_slab_chunk_t *c = &s->chunks[id];
  if (c->listed)
    avail_unlink(s, id);
  s->bytes -= chunk_bytes(c);
  s->held[c->cls]--;
  bk_free(s->alloc, c->mem);
  c->mem = c->start = NULL;
  c->free = NULL;
  c->next = s->unused;
  s->unused = id;
}

void bk_slab_trim(bk_slab_t *s) {
  for (size_t i = 0; i < s->n_chunks; i++) {
    bk_slab_chunk_t *c = &s->chunks[i];
    if (c->mem && c->live == 0) {
      s->empty[c->cls]--;
      chunk_release(s, (uint32_t)i);
    }
  }
}

static void *large_alloc(bk_slab_t *s, size_t size, uint32_t *ref) {
  if (size > SIZE_MAX - LARGE_HDR - ALIGN)
    return NULL;
  size_t bytes = size + LARGE_HDR + ALIGN - 1;
  unsigned char *mem = bk_malloc(s->alloc, bytes);
  if (!mem)
    return NULL;
  bk_slab_large_t *l = (bk_slab_large_t *)(void *)align_up(mem);
  l->mem = mem;
  l->bytes = bytes;
  l->prev = NULL;
  l->next = s->large;
  if (l->next)
    l->next->prev = l;
  s->large = l;
  s->bytes += bytes;
  *ref = BK_SLAB_LARGE;
  return (unsigned char *)l + LARGE_HDR;
}

static void large_free(bk_slab_t *s, void *block) {
  bk_slab_large_t *l = (bk_slab_large_t *)(void *)((unsigned char *)block - LARGE_HDR);
  if (l->prev)
    l->prev->next = l->next;
  else
    s->large = l->next;
  if (l->next)
    l->next->prev = l->prev;
  s->bytes -= l->bytes;
  bk_free(s->alloc, l->mem);
}

void *bk_slab_alloc(bk_slab_t *s, size_t size, uint32_t *ref) {
  if (size > BK_SLAB_MAX_BLOCK)
    return large_alloc(s, size, ref);
  unsigned cls = size_class(size);
  uint32_t id = s->avail[cls];
  if (id == NONE && (id = chunk_new(s, cls)) == NONE)
    return NULL;
  bk_slab_chunk_t *c = &s->chunks[id];
  void *p;
  if (c->free) {
    p = c->free;
    memcpy(&c->free, p, sizeof(void *));
  } else {
    assert(c->carved < c->cap);
    p = c->start + (size_t)c->carved++ * class_size(cls);
  }
  if (c->live++ == 0)
    s->empty[cls]--;
  if (!c->free && c->carved == c->cap)
    avail_unlink(s, id);
  *ref = id;
  return p;
}

void bk_slab_free(bk_slab_t *s, void *block, uint32_t ref) {
  if (ref == BK_SLAB_LARGE) {
    large_free(s, block);
    return;
  }
  assert(ref < s->n_chunks);
  bk_slab_chunk_t *c = &s->chunks[ref];
  assert(c->mem && c->live > 0);
  assert((unsigned char *)block >= c->start &&
         (unsigned char *)block < c->start + (size_t)c->carved * class_size(c->cls));
  memcpy(block, &c->free, sizeof(void *));
  c->free = block;
  if (!c->listed)
    avail_link(s, ref);
  if (--c->live == 0) {
    if (s->empty[c->cls] > 0)
      chunk_release(s, ref);
    else
      s->empty[c->cls]++;
  }
}

int bk_slab_check(const bk_slab_t *s) {
  size_t bytes = s->chunks_cap * sizeof(bk_slab_chunk_t);
  size_t listed[BK_SLAB_NCLASSES] = {0}, empty[BK_SLAB_NCLASSES] = {0}, unused = 0;
  size_t held[BK_SLAB_NCLASSES] = {0};
  if (s->n_chunks > s->chunks_cap)
    return 0;
  for (size_t i = 0; i < s->n_chunks; i++) {
    const bk_slab_chunk_t *c = &s->chunks[i];
    if (!c->mem) {
      unused++;
      continue;
    }
    if (c->cls >= BK_SLAB_NCLASSES || c->live > c->carved || c->carved > c->cap || !c->cap ||
        (size_t)c->cap * class_size(c->cls) > BK_SLAB_CHUNK_SIZE)
      return 0;
    size_t csize = class_size(c->cls), nfree = 0;
    for (void *p = c->free; p; memcpy(&p, p, sizeof(void *))) {
      unsigned char *b = p;
      if (b < c->start || b >= c->start + (size_t)c->carved * csize ||
          (size_t)(b - c->start) % csize || ++nfree > c->carved)
        return 0;
    }
    if (nfree != c->carved - c->live || c->listed != (nfree > 0 || c->carved < c->cap))
      return 0;
    listed[c->cls] += c->listed;
    empty[c->cls] += c->live == 0;
    held[c->cls]++;
    bytes += chunk_bytes(c);
  }
  for (uint32_t id = s->unused; id != NONE; id = s->chunks[id].next)
    if (id >= s->n_chunks || s->chunks[id].mem || unused-- == 0)
      return 0;
  if (unused)
    return 0;
  for (unsigned cls = 0; cls < BK_SLAB_NCLASSES; cls++) {
    if (empty[cls] != s->empty[cls] || empty[cls] > 1 || held[cls] != s->held[cls])
      return 0;
    uint32_t prev = NONE;
    for (uint32_t id = s->avail[cls]; id != NONE; prev = id, id = s->chunks[id].next) {
      if (id >= s->n_chunks || !s->chunks[id].listed || s->chunks[id].cls != cls ||
          s->chunks[id].prev != prev || listed[cls]-- == 0)
        return 0;
    }
    if (listed[cls])
      return 0;
  }
  for (const bk_slab_large_t *l = s->large; l; l = l->next) {
    if (l->next && l->next->prev != l)
      return 0;
    bytes += l->bytes;
  }
  return bytes == s->bytes;
}
