/* Per-batch bump allocator (see arena.h). */
#include "core/arena.h"

#include <stdalign.h>
#include <stdint.h>

#include "core/alloc.h"

struct bk_arena_block {
  bk_arena_block_t *next;
  size_t size; /* usable bytes in data[] */
  size_t used;
  alignas(max_align_t) unsigned char data[];
};

void bk_arena_init(bk_arena_t *a, const brook_allocator_t *alloc, size_t block_size) {
  a->alloc = alloc;
  a->head = NULL;
  a->spare = NULL;
  a->block_size = block_size ? block_size : 64 * 1024;
  a->retained = 4 * a->block_size;
  a->allocated = 0;
}

static bk_arena_block_t *block_new(bk_arena_t *a, size_t min) {
  size_t size = min > a->block_size ? min : a->block_size;
  if (size > SIZE_MAX - sizeof(bk_arena_block_t))
    return NULL;
  bk_arena_block_t *b = bk_malloc(a->alloc, sizeof(*b) + size);
  if (!b)
    return NULL;
  b->size = size;
  b->used = 0;
  a->allocated += size;
  return b;
}

void *bk_arena_alloc(bk_arena_t *a, size_t size) {
  const size_t align = alignof(max_align_t);
  if (size > SIZE_MAX - align)
    return NULL;
  size = (size + align - 1) & ~(align - 1);
  bk_arena_block_t *b = a->head;
  if (!b || b->size - b->used < size) {
    if (a->spare && a->spare->size >= size) {
      b = a->spare;
      a->spare = b->next;
    } else if (!(b = block_new(a, size))) {
      return NULL;
    }
    b->used = 0;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += size;
  return p;
}

void bk_arena_reset(bk_arena_t *a) {
  size_t kept = 0;
  for (bk_arena_block_t *s = a->spare; s; s = s->next)
    kept += s->size;
  while (a->head) {
    bk_arena_block_t *b = a->head;
    a->head = b->next;
    if (kept + b->size <= a->retained) {
      kept += b->size;
      b->next = a->spare;
      a->spare = b;
    } else {
      a->allocated -= b->size;
      bk_free(a->alloc, b);
    }
  }
}

void bk_arena_free(bk_arena_t *a) {
  bk_arena_reset(a);
  while (a->spare) {
    bk_arena_block_t *b = a->spare;
    a->spare = b->next;
    bk_free(a->alloc, b);
  }
  a->allocated = 0;
}
