/* A bump allocator for per-batch memory: allocations are O(1) pointer bumps, and everything
 * is released at once by bk_arena_reset() when the batch has passed through the pipeline.
 * Blocks are kept across resets so a steady stream allocates nothing from the system. */
#ifndef BROOK_CORE_ARENA_H
#define BROOK_CORE_ARENA_H

#include <stddef.h>

#include <brook/alloc.h>

typedef struct bk_arena_block bk_arena_block_t;

typedef struct bk_arena {
  const brook_allocator_t *alloc;
  bk_arena_block_t *head;  /* block being filled; older full blocks follow */
  bk_arena_block_t *spare; /* blocks kept from earlier resets */
  size_t block_size;
  size_t retained;  /* bytes held across resets at most (extra blocks are freed) */
  size_t allocated; /* bytes currently held from the allocator */
} bk_arena_t;

void bk_arena_init(bk_arena_t *a, const brook_allocator_t *alloc, size_t block_size);
void *bk_arena_alloc(bk_arena_t *a, size_t size);
void bk_arena_reset(bk_arena_t *a);
void bk_arena_free(bk_arena_t *a);

#endif
