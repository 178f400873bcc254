/* Iterators of a store (store_iter.c): what store_api.c and store_snapshot.c need besides
 * the public brook_store_iter_* calls. */
#ifndef BROOK_STATE_STORE_ITER_H
#define BROOK_STATE_STORE_ITER_H

#include <stddef.h>

#include <brook/state.h>

/* brook_store_next on a store with a backend table: a store-owned iterator, restarted when
 * the cursor is not the position it left off at. */
int bk_store_cursor_next(brook_store_t *s, size_t *cursor, const void **key, size_t *key_len,
                         const void **value, size_t *value_len);

/* Bytes held by the store's iterator pool. */
size_t bk_store_iters_memory(const brook_store_t *s);

/* Closes the iterator brook_store_next keeps; returns how many iterators are still open. */
size_t bk_store_iters_settle(brook_store_t *s);

#endif
