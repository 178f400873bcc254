/* The dirty set of an in-memory store: the entries changed in place (brook_store_update)
 * since the last flush, each reported once at the flush however often it changed. An
 * entry's `dirty` field is 1 + its index here (0: not in the set), so adding, removing and
 * testing are O(1). Shared by the hash store and the ordered store. Single-threaded. */
#ifndef BROOK_STATE_DIRTY_SET_H
#define BROOK_STATE_DIRTY_SET_H

#include <stddef.h>

#include <brook/alloc.h>
#include <brook/state.h>

typedef struct bk_entry bk_entry_t; /* store.h */

typedef struct bk_dirty {
  bk_entry_t **v;
  size_t n, cap;
} bk_dirty_t;

/* Makes room for one more entry. 0, or -1 when the allocator failed (nothing changed). */
int bk_dirty_reserve(bk_dirty_t *d, const brook_allocator_t *a);

/* Adds e (not in the set; room reserved). */
void bk_dirty_add(bk_dirty_t *d, bk_entry_t *e);

/* Removes e (in the set). */
void bk_dirty_remove(bk_dirty_t *d, bk_entry_t *e);

/* Forgets every mark, and frees an array grown far beyond a store of `count` entries. */
void bk_dirty_reset(bk_dirty_t *d, const brook_allocator_t *a, size_t count);

/* Reports every entry to fn (may be NULL: just forget them) in the order they were first
 * changed, then resets. Each entry is unmarked before its report, so the set stays
 * consistent whatever fn does. Returns fn's first error, or BROOK_OK. */
brook_err_t bk_dirty_flush(bk_dirty_t *d, const brook_allocator_t *a, size_t count,
                           brook_store_listener_fn fn, void *opaque);

/* Frees the array. */
void bk_dirty_fini(bk_dirty_t *d, const brook_allocator_t *a);

/* Bytes the array holds. */
static inline size_t bk_dirty_bytes(const bk_dirty_t *d) { return d->cap * sizeof(d->v[0]); }

#endif
