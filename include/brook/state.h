/* Keyed state: a store of byte keys to byte values that an operator keeps across records.
 *
 * A custom operator opens its stores in open() with brook_store_open(); the runtime owns
 * them and frees them after close(). Each runtime (and later each task) has its own
 * instances. Stores are in memory: an open-addressing hash table whose keys and values live
 * in the store's own slab memory (no malloc per entry on the hot path), with the memory used
 * accounted per store (brook_store_memory).
 *
 * Values are bytes with COPY semantics: put copies key and value in; get returns a pointer
 * into the store. A store opened with a fixed value_size also offers brook_store_update(),
 * an in-place path for fixed-size aggregates (counters, sums) that avoids a copy per record.
 *
 * Every store can be written out (brook_store_snapshot) and rebuilt (brook_store_restore),
 * and can report each change to a listener; the changelog (Kafka) hooks in there.
 *
 * Threading: a store belongs to one operator instance and is used on its loop thread only.
 * None of these functions is thread-safe. */
#ifndef BROOK_STATE_H
#define BROOK_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/operator.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_store brook_store_t;

typedef struct brook_store_opts {
  uint32_t struct_size; /* set by brook_store_opts_init() */
  /* 0 (default): values of any size. > 0: every value has exactly this many bytes (put with
   * another size fails with BROOK_ERR_INVALID_ARG), and brook_store_update() is available.
   * Values are aligned to 16 bytes, so a struct can be updated in place. */
  size_t value_size;
  size_t expected_entries; /* sizing hint; 0 = start small and grow (default) */
} brook_store_opts_t;

void brook_store_opts_init_size(brook_store_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_store_opts_init(brook_store_opts_t *opts) {
  brook_store_opts_init_size(opts, sizeof(*opts));
}

/* Opens the store `name` (copied; unique within the operator) for this operator instance.
 * Call it from the operator's open() callback; the store lives until after close() and is
 * freed by the runtime. Returns BROOK_OK, BROOK_ERR_DUPLICATE (name taken),
 * BROOK_ERR_STATE (not inside open()), BROOK_ERR_INVALID_ARG (a struct_size that is no
 * version of brook_store_opts_t, value_size too big) or BROOK_ERR_NOMEM; the reason goes to
 * the operator's error message (brook_ctx_set_error). */
brook_err_t brook_store_open(brook_ctx_t *ctx, const char *name, const brook_store_opts_t *opts,
                             brook_store_t **out);

/* A standalone store, not attached to any operator (for tools and tests). `allocator` may be
 * NULL (malloc). Free it with brook_store_free. BROOK_ERR_INVALID_ARG (NULL out, a
 * struct_size that is no version of brook_store_opts_t, value_size too big; there is no
 * object to keep a message: brook_store_open says which) or BROOK_ERR_NOMEM. */
brook_err_t brook_store_new(brook_store_t **out, const brook_store_opts_t *opts,
                            const brook_allocator_t *allocator);
/* Frees a store from brook_store_new. NULL is a no-op. Never call it on an opened store. */
void brook_store_free(brook_store_t *s);

/* The value stored under `key`: *value points into the store and stays valid until this
 * key is put, updated (if its size changes) or deleted, or the store is restored or freed.
 * Returns BROOK_OK or BROOK_ERR_NOT_FOUND (*value = NULL, *value_len = 0). A zero-length key
 * is a valid key. */
brook_err_t brook_store_get(const brook_store_t *s, const void *key, size_t key_len,
                            const void **value, size_t *value_len);

/* Stores a copy of `value` under a copy of `key`, replacing any previous value. Reports the
 * change to the listener. BROOK_OK, BROOK_ERR_NOMEM (the store is unchanged) or
 * BROOK_ERR_INVALID_ARG. */
brook_err_t brook_store_put(brook_store_t *s, const void *key, size_t key_len, const void *value,
                            size_t value_len);

/* Removes `key`. Reports the deletion to the listener. BROOK_OK or BROOK_ERR_NOT_FOUND. */
brook_err_t brook_store_delete(brook_store_t *s, const void *key, size_t key_len);

/* In-place update for stores with a fixed value_size: *value points at the key's value_size
 * bytes, which the caller may modify until its next call on this store. A new key gets
 * zeroed bytes and *created = 1 (created may be NULL). The change is reported to the
 * listener at the next brook_store_flush_changes() (the runtime calls it at every commit),
 * once per key however many updates it had. BROOK_ERR_STATE if the store has no fixed
 * value_size, BROOK_ERR_NOMEM. */
brook_err_t brook_store_update(brook_store_t *s, const void *key, size_t key_len, void **value,
                               int *created);

/* Number of entries, and bytes of memory the store holds (table, keys, values, slack). */
size_t brook_store_count(const brook_store_t *s);
size_t brook_store_memory(const brook_store_t *s);

/* Iteration. Start with *cursor = 0; each call returns 1 and the next entry, or 0 at the end.
 * Order is unspecified. Deleting the entry just returned is allowed and every other entry is
 * still visited exactly once; other changes during an iteration may make it skip or repeat
 * entries (but never crash). Pointers are valid as for brook_store_get. */
int brook_store_next(const brook_store_t *s, size_t *cursor, const void **key, size_t *key_len,
                     const void **value, size_t *value_len);

/* Removes every entry (reported to the listener as deletions). */
void brook_store_clear(brook_store_t *s);

/* ---- change listener (the changelog hooks in here) ---- */

/* Called for each change: `value` is the new value, or NULL for a deletion. Borrowed for the
 * call. Returning an error makes the store operation that triggered it return it (the
 * change itself has been applied). */
typedef brook_err_t (*brook_store_listener_fn)(const void *key, size_t key_len, const void *value,
                                               size_t value_len, void *opaque);

/* Sets (or with fn NULL removes) the listener. */
void brook_store_set_listener(brook_store_t *s, brook_store_listener_fn fn, void *opaque);

/* Reports the changes made through brook_store_update since the last call (one per key,
 * with its current value). Returns the first listener error, or BROOK_OK. */
brook_err_t brook_store_flush_changes(brook_store_t *s);

/* ---- snapshot and restore ---- */

/* Receives the snapshot's bytes in order, in pieces. Return BROOK_OK or an error (which
 * aborts the snapshot and is returned by it). */
typedef brook_err_t (*brook_write_fn)(const void *data, size_t len, void *opaque);

/* Writes every entry as a self-describing byte stream (a versioned header, the entries, a
 * CRC32C of all of it: a named, stable checksum, not the in-memory hash). Pending in-place
 * changes are flushed to the listener first. */
brook_err_t brook_store_snapshot(brook_store_t *s, brook_write_fn write, void *opaque);

/* Replaces the store's content by a snapshot's. The listener is NOT called (the changelog is
 * where a restore comes from). Returns BROOK_OK, BROOK_ERR_CORRUPT (bad header, truncated,
 * wrong checksum, or a value size that does not match value_size: the store is then left
 * empty) or BROOK_ERR_NOMEM (store left empty). */
brook_err_t brook_store_restore(brook_store_t *s, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
