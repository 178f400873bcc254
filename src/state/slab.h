/* A size-class small-object allocator for state-store entries: blocks of up to 64 KiB are
 * carved from chunks (one size class per chunk) and recycled through per-chunk free lists, so
 * a store under insert/delete churn asks its allocator for nothing. A chunk whose blocks are
 * all free goes back to the allocator (one empty chunk per class is kept so a store hovering
 * at a chunk boundary does not thrash). Bigger blocks go straight to the allocator.
 *
 * Chunks start small and grow: a class's first chunk is BK_SLAB_FIRST_CHUNK bytes (or one
 * block, if bigger), and each new chunk is twice the size of the one before, as many as the
 * class holds, up to BK_SLAB_CHUNK_SIZE. A store holding three small entries needs one
 * 512-byte chunk, not 64 KiB per size class (stores are paid for per task), while a big store
 * still makes one allocation per 64 KiB: chunk allocations stay amortised O(1) per block.
 *
 * Every block is 16-byte aligned, whatever alignment the allocator gives. Single-threaded:
 * a slab belongs to one store. */
#ifndef BROOK_STATE_SLAB_H
#define BROOK_STATE_SLAB_H

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>

#define BK_SLAB_CHUNK_SIZE ((size_t)64 * 1024) /* the largest chunk */
#define BK_SLAB_FIRST_CHUNK ((size_t)512)      /* a class's first chunk */
#define BK_SLAB_MAX_BLOCK BK_SLAB_CHUNK_SIZE   /* larger requests bypass the chunks */
#define BK_SLAB_NCLASSES 24                    /* 16, 32, ..., 256, then 512 ... 64 KiB */
#define BK_SLAB_LARGE UINT32_MAX               /* the ref of a block from the allocator */

typedef struct bk_slab_chunk bk_slab_chunk_t;
typedef struct bk_slab_large bk_slab_large_t;

typedef struct bk_slab {
  const brook_allocator_t *alloc;   /* borrowed; must outlive the slab */
  bk_slab_chunk_t *chunks;          /* indexed by chunk id (a block's ref) */
  size_t n_chunks, chunks_cap;      /* ids in use or on the unused list; array capacity */
  uint32_t unused;                  /* head of the list of unused ids (BK_SLAB_LARGE = none) */
  uint32_t avail[BK_SLAB_NCLASSES]; /* per class: chunks with a free block (doubly linked) */
  uint32_t empty[BK_SLAB_NCLASSES]; /* per class: chunks whose blocks are all free */
  uint32_t held[BK_SLAB_NCLASSES];  /* per class: chunks held (sets the next chunk's size) */
  bk_slab_large_t *large;           /* blocks bigger than BK_SLAB_MAX_BLOCK */
  size_t bytes;                     /* bytes currently held from the allocator */
} bk_slab_t;

/* Initialises an empty slab that allocates through `alloc` (borrowed). Allocates nothing. */
void bk_slab_init(bk_slab_t *s, const brook_allocator_t *alloc);

/* Frees every chunk and large block: all blocks become invalid. */
void bk_slab_destroy(bk_slab_t *s);

/* A 16-byte aligned block of at least `size` bytes (size 0 gets a 16-byte block), or NULL if
 * the allocator failed. *ref receives the handle bk_slab_free needs: the caller keeps it
 * (inside the block is fine, it is read before the block is reused). */
void *bk_slab_alloc(bk_slab_t *s, size_t size, uint32_t *ref);

/* Returns a block from bk_slab_alloc, with the ref it got. */
void bk_slab_free(bk_slab_t *s, void *block, uint32_t ref);

/* Returns every chunk with no block in use to the allocator, including the one per class
 * normally kept for reuse. O(chunks): for when the owner has just emptied out. */
void bk_slab_trim(bk_slab_t *s);

/* The bytes a request of `size` really occupies: its class size, or `size` itself for a
 * large block. Two sizes with equal block sizes can share a block. */
size_t bk_slab_block_size(size_t size);

/* Bytes held from the allocator: chunks, large blocks and the chunk table. */
static inline size_t bk_slab_bytes(const bk_slab_t *s) { return s->bytes; }

/* Checks the slab's internal invariants (lists, counts, byte total). Returns 1 if they hold.
 * O(chunks + free blocks): for tests and assert(). */
int bk_slab_check(const bk_slab_t *s);

#endif
