/* Keyed state: a store of byte keys to byte values that an operator keeps across records.
 *
 * A custom operator opens its stores in open() with brook_store_open(); the runtime owns
 * them and frees them after close(). Each runtime (and later each task) has its own
 * instances. Every store has a BACKEND (store_backend.h) that keeps its bytes:
 * - the in-memory hash store (default): an open-addressing hash table whose keys and values
 *   live in the store's own slab memory (no malloc per entry on the hot path); point
 *   operations only, iteration in no particular order;
 * - the in-memory ordered store (opts.ordered = 1): keys in byte order in a skip list in slab
 *   memory, O(log n) seek, range scans by key prefix, by [lo, hi) and by key || time;
 * - a backend of your own (opts.backend), e.g. on disk.
 * Memory used is accounted per store (brook_store_memory).
 *
 * Values are bytes with COPY semantics: put copies key and value in. Reads return VIEWS into
 * the store: a pointer from get (or an iterator's entry) is valid until the next call on the
 * same store or on any of its iterators, and no longer (a disk store cannot promise more);
 * copy what you keep, or use brook_store_get_copy. A store opened with a fixed value_size
 * also offers brook_store_update(), an in-place path for fixed-size aggregates (counters,
 * sums) that avoids a copy per record, where the backend supports it (both in-memory ones do).
 *
 * Keys with a time component: window and timer stores put an event time into their keys,
 * encoded with brook_store_time_encode (8 bytes, big-endian with the sign bit flipped), so
 * that byte order is time order: key || time lists a key's entries by time
 * (brook_store_iter_time), time || key lists all entries by time (a timer store:
 * brook_store_iter_range from the encoded time).
 *
 * Every store can be written out (brook_store_snapshot) and rebuilt (brook_store_restore) -
 * across backends - and can report each change to a listener; the changelog hooks in there.
 *
 * Errors: every call that can fail returns a brook_err_t, and the store keeps a message
 * naming it (brook_store_last_error), e.g. what was wrong with a snapshot.
 *
 * Threading: a store belongs to one operator instance and is used on its thread only. None
 * of these functions is thread-safe (brook_store_time_* and brook_store_opts_init are: they
 * touch no store). */
#ifndef BROOK_STATE_H
#define BROOK_STATE_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/operator.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_store brook_store_t;
typedef struct brook_store_backend brook_store_backend_t; /* store_backend.h */

typedef struct brook_store_opts {
  uint32_t struct_size; /* set by brook_store_opts_init() */
  /* 0 (default): values of any size. > 0: every value has exactly this many bytes (put with
   * another size fails with BROOK_ERR_INVALID_ARG), and brook_store_update() is available.
   * Values are aligned to 16 bytes, so a struct can be updated in place. */
  size_t value_size;
  size_t expected_entries; /* sizing hint; 0 = start small and grow (default) */
  /* ---- appended in 0.2 ---- */
  /* 0 (default): the in-memory hash store. 1: the in-memory ordered store (range scans).
   * Ignored when `backend` is set. */
  int ordered;
  /* NULL (default): a built-in backend (see `ordered`). Otherwise the backend to keep this
   * store's bytes (store_backend.h); borrowed, must outlive the store. */
  const brook_store_backend_t *backend;
  void *backend_opaque; /* handed to backend->open; borrowed */
  /* brook_store_new only: the store's name for messages (copied; NULL = "store").
   * brook_store_open names the store itself and ignores this. */
  const char *name;
  /* ---- appended in 0.3 (changelogs) ---- */
  /* In a Kafka pipeline a task's stores are logged to changelog topics
   * (`<group>-<node>-<store>-changelog`, README "Changelogs") and restored from them.
   * 0 (default): logged. 1: not logged: the store starts empty after a restart or a move to
   * another instance (for a cache that can be rebuilt). */
  int changelog_disabled;
  /* Topic configs for the changelog when brook creates it: name, value pairs, NULL-terminated,
   * on top of brook's own (cleanup.policy=compact, min.compaction.lag.ms=300000), a name given
   * here replacing brook's value; e.g. a window store's {"cleanup.policy", "compact,delete",
   * "retention.ms", "<window size + grace + margin>", NULL}. Copied when the store is
   * created (an odd count is BROOK_ERR_INVALID_ARG). NULL (default): brook's only. */
  const char *const *changelog_configs;
} brook_store_opts_t;

BROOK_API void brook_store_opts_init_size(brook_store_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_store_opts_init(brook_store_opts_t *opts) {
  brook_store_opts_init_size(opts, sizeof(*opts));
}

/* Opens the store `name` (copied; unique within the operator) for this operator instance.
 * Call it from the operator's open() callback; the store lives until after close() and is
 * freed by the runtime. Returns BROOK_OK, BROOK_ERR_DUPLICATE (name taken),
 * BROOK_ERR_STATE (not inside open()), BROOK_ERR_INVALID_ARG (a struct_size that is no
 * version of brook_store_opts_t, value_size too big, a backend table of an unknown version
 * or missing a required function), BROOK_ERR_NOMEM, or the backend's open error; the reason
 * goes to the operator's error message (brook_ctx_set_error). */
BROOK_API brook_err_t brook_store_open(brook_ctx_t *ctx, const char *name,
                                       const brook_store_opts_t *opts, brook_store_t **out);

/* A standalone store, not attached to any operator (for tools and tests). `allocator` may be
 * NULL (malloc). Free it with brook_store_free. BROOK_ERR_INVALID_ARG (NULL out, a
 * struct_size that is no version of brook_store_opts_t, value_size too big, a bad backend
 * table; there is no object to keep a message: brook_store_open says which),
 * BROOK_ERR_NOMEM or the backend's open error. */
BROOK_API brook_err_t brook_store_new(brook_store_t **out, const brook_store_opts_t *opts,
                                      const brook_allocator_t *allocator);
/* Frees a store from brook_store_new. NULL is a no-op. Never call it on an opened store. */
BROOK_API void brook_store_free(brook_store_t *s);

/* The value stored under `key`: *value is a VIEW into the store, valid until the next call
 * on this store or its iterators. Returns BROOK_OK, BROOK_ERR_NOT_FOUND (*value = NULL,
 * *value_len = 0), BROOK_ERR_INVALID_ARG, or a backend's read error (message in
 * brook_store_last_error). A zero-length key is a valid key. */
BROOK_API brook_err_t brook_store_get(const brook_store_t *s, const void *key, size_t key_len,
                                      const void **value, size_t *value_len);

/* Like brook_store_get, but copies the value into `buf` (`cap` bytes; buf may be NULL when
 * cap is 0): *value_len gets the value's length. BROOK_OK, BROOK_ERR_NOT_FOUND,
 * BROOK_ERR_TOO_LARGE (cap < *value_len: nothing copied; call again with a bigger buffer)
 * or an error as for get. */
BROOK_API brook_err_t brook_store_get_copy(brook_store_t *s, const void *key, size_t key_len,
                                           void *buf, size_t cap, size_t *value_len);

/* Stores a copy of `value` under a copy of `key`, replacing any previous value. Reports the
 * change to the listener. BROOK_OK, BROOK_ERR_NOMEM (the store is unchanged),
 * BROOK_ERR_INVALID_ARG or a backend's write error. Key and value may be views from this
 * store. */
BROOK_API brook_err_t brook_store_put(brook_store_t *s, const void *key, size_t key_len,
                                      const void *value, size_t value_len);

/* Removes `key`. Reports the deletion to the listener. BROOK_OK, BROOK_ERR_NOT_FOUND or a
 * backend's error. `key` may be a view from this store (e.g. the entry an iterator is on:
 * deleting it during the iteration is allowed, see brook_store_iter_next). */
BROOK_API brook_err_t brook_store_delete(brook_store_t *s, const void *key, size_t key_len);

/* In-place update for stores with a fixed value_size: *value points at the key's value_size
 * bytes, which the caller may modify until its next call on this store. A new key gets
 * zeroed bytes and *created = 1 (created may be NULL). The change is reported to the
 * listener at the next brook_store_flush_changes() (the runtime calls it at every commit),
 * once per key however many updates it had. BROOK_ERR_STATE if the store has no fixed
 * value_size or its backend has no in-place update (BROOK_STORE_CAP_UPDATE; both in-memory
 * backends have it), BROOK_ERR_NOMEM or a backend's error. */
BROOK_API brook_err_t brook_store_update(brook_store_t *s, const void *key, size_t key_len,
                                         void **value, int *created);

/* Number of entries (a disk backend may estimate), and bytes of memory the store holds
 * (table, keys, values, slack, iterators). */
BROOK_API size_t brook_store_count(const brook_store_t *s);
BROOK_API size_t brook_store_memory(const brook_store_t *s);

/* Cursor iteration (the iterators below are the general form; this stays for the hash
 * store's callers). Start with *cursor = 0; each call returns 1 and the next entry, or 0 at
 * the end. Order is unspecified (the backend's order). Deleting the entry just returned is
 * allowed and every other entry is still visited exactly once; other changes during an
 * iteration may make it skip or repeat entries (but never crash). Pointers are views as for
 * brook_store_get. On a backend other than the hash store, a read error ends the iteration
 * (0) with the message in brook_store_last_error, and the cursor walk costs a re-seek when
 * the store changed in between. */
BROOK_API int brook_store_next(const brook_store_t *s, size_t *cursor, const void **key,
                               size_t *key_len, const void **value, size_t *value_len);

/* Removes every entry (reported to the listener as deletions). A backend's error ends it
 * early (message in brook_store_last_error); the hash store never fails. */
BROOK_API void brook_store_clear(brook_store_t *s);

/* The store's name (brook_store_open's, opts.name, or "store"). Never NULL for a store. */
BROOK_API const char *brook_store_name(const brook_store_t *s);

/* The message of the last failed call on this store, naming the store, e.g.
 * "store 'slices': snapshot truncated: 12 bytes, the header needs 32". "" if none yet.
 * Valid until the next call on the store. */
BROOK_API const char *brook_store_last_error(const brook_store_t *s);

/* ---- iterators (ordered scans; full iteration on every backend) ---- */

/* An entry seen through an iterator: views valid until the next call on the store or any of
 * its iterators. */
typedef struct brook_store_entry {
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
} brook_store_entry_t;

typedef struct brook_store_iter brook_store_iter_t;

/* Opens an iterator over every entry, in key order on an ordered backend, in the backend's
 * order otherwise. Iterators come from a per-store pool: after the first few, opening one
 * allocates nothing. Close every iterator before the store is freed or restored.
 * BROOK_OK, BROOK_ERR_INVALID_ARG, BROOK_ERR_NOMEM, or a backend error (*out = NULL). */
BROOK_API brook_err_t brook_store_iter_all(brook_store_t *s, brook_store_iter_t **out);

/* Entries with lo <= key < hi in key order. lo NULL: from the first key; hi NULL: to the
 * last (a NULL bound ignores its length; a non-NULL empty lo is the first key too). Bounds
 * are copied. BROOK_ERR_STATE (with a message) on a backend that is not ordered (the hash
 * store), else as brook_store_iter_all. */
BROOK_API brook_err_t brook_store_iter_range(brook_store_t *s, const void *lo, size_t lo_len,
                                             const void *hi, size_t hi_len,
                                             brook_store_iter_t **out);

/* Entries whose key starts with `prefix` (copied), in key order. Errors as iter_range. */
BROOK_API brook_err_t brook_store_iter_prefix(brook_store_t *s, const void *prefix,
                                              size_t prefix_len, brook_store_iter_t **out);

/* The entries of `key` laid out as key || brook_store_time_encode(t) (exactly key_len + 8
 * bytes; longer or shorter keys sharing the prefix are skipped) with from <= t < to, in time
 * order. to == INT64_MAX means no upper bound (t = INT64_MAX included). Errors as
 * iter_range. */
BROOK_API brook_err_t brook_store_iter_time(brook_store_t *s, const void *key, size_t key_len,
                                            int64_t from, int64_t to, brook_store_iter_t **out);

/* The entries whose key starts with a time (time || rest: a timer store) with
 * from <= time < to, in time order (then by the rest of the key); keys shorter than 8 bytes
 * are skipped. to == INT64_MAX means no upper bound. "The first timer at or after t" is
 * brook_store_iter_time_prefixed(s, t, INT64_MAX, &it) then one iter_next. Errors as
 * iter_range. */
BROOK_API brook_err_t brook_store_iter_time_prefixed(brook_store_t *s, int64_t from, int64_t to,
                                                     brook_store_iter_t **out);

/* The next entry: returns 1 with *entry filled, or 0 at the end or on a backend error (then
 * brook_store_iter_close returns it). The store may change during an iteration: deleting the
 * entry just returned, or any other, and putting keys are allowed; on an ordered backend the
 * iterator then continues with the first key after the one it returned last (so a key put
 * behind it is not seen, one put ahead of it is). On the hash store, deleting is allowed
 * (every other entry is still seen once), while putting new keys may make it skip or repeat
 * entries. Never crashes either way. */
BROOK_API int brook_store_iter_next(brook_store_iter_t *it, brook_store_entry_t *entry);

/* Moves the iterator so that the next brook_store_iter_next returns the first entry of its
 * range with key >= `key` (copied): forward or backward. BROOK_OK, BROOK_ERR_STATE (not an
 * ordered backend), BROOK_ERR_NOMEM or BROOK_ERR_INVALID_ARG. */
BROOK_API brook_err_t brook_store_iter_seek(brook_store_iter_t *it, const void *key,
                                            size_t key_len);

/* Like iter_seek for an iterator from brook_store_iter_time or _time_prefixed: the next
 * entry is the first with time >= t (within the iterator's range). BROOK_ERR_STATE for
 * other iterators. */
BROOK_API brook_err_t brook_store_iter_seek_time(brook_store_iter_t *it, int64_t t);

/* Closes the iterator (back to the store's pool) and returns the first error the iteration
 * hit (a backend read error), or BROOK_OK. NULL is a no-op returning BROOK_OK. */
BROOK_API brook_err_t brook_store_iter_close(brook_store_iter_t *it);

/* ---- keys with a time component ---- */

#define BROOK_STORE_TIME_LEN 8

/* Writes t as 8 bytes whose unsigned byte order is t's signed order (big-endian, sign bit
 * flipped). Any thread. */
static inline void brook_store_time_encode(int64_t t, unsigned char out[BROOK_STORE_TIME_LEN]) {
  uint64_t u = (uint64_t)t ^ ((uint64_t)1 << 63);
  for (int i = 7; i >= 0; i--) {
    out[i] = (unsigned char)u;
    u >>= 8;
  }
}

/* The time brook_store_time_encode wrote into `in`. Any thread. */
static inline int64_t brook_store_time_decode(const unsigned char in[BROOK_STORE_TIME_LEN]) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u = (u << 8) | in[i];
  u ^= (uint64_t)1 << 63;
  return (int64_t)u; /* the value is in range, so the conversion is exact (C11 6.3.1.3) */
}

/* The time at the end of an entry's key (key || time layout), or at its start (time || key,
 * a timer store). The key must be at least 8 bytes (iterators from brook_store_iter_time
 * always are). Any thread. */
static inline int64_t brook_store_entry_time_suffix(const brook_store_entry_t *e) {
  return brook_store_time_decode((const unsigned char *)e->key + e->key_len - BROOK_STORE_TIME_LEN);
}
static inline int64_t brook_store_entry_time_prefix(const brook_store_entry_t *e) {
  return brook_store_time_decode((const unsigned char *)e->key);
}

/* ---- change listener (the changelog hooks in here) ---- */

/* Called for each change: `value` is the new value, or NULL for a deletion. Borrowed for the
 * call. Returning an error makes the store operation that triggered it return it (the
 * change itself has been applied). */
typedef brook_err_t (*brook_store_listener_fn)(const void *key, size_t key_len, const void *value,
                                               size_t value_len, void *opaque);

/* Sets (or with fn NULL removes) the listener. The listener must not call into the store it
 * listens to. */
BROOK_API void brook_store_set_listener(brook_store_t *s, brook_store_listener_fn fn, void *opaque);

/* Reports the changes made through brook_store_update since the last call (one per key,
 * with its current value) and makes pending changes durable (a disk backend). Returns the
 * first listener error, a backend's error, or BROOK_OK. */
BROOK_API brook_err_t brook_store_flush_changes(brook_store_t *s);

/* ---- snapshot and restore ---- */

/* Receives the snapshot's bytes in order, in pieces. Return BROOK_OK or an error (which
 * aborts the snapshot and is returned by it). */
typedef brook_err_t (*brook_write_fn)(const void *data, size_t len, void *opaque);

/* Writes every entry as a self-describing byte stream (a versioned header, the entries, a
 * CRC32C of all of it: a named, stable checksum, not the in-memory hash). Pending in-place
 * changes are flushed to the listener first. The format is the same for every backend: a
 * snapshot restores into a store of any backend. Returns BROOK_OK, the writer's error, a
 * listener or backend error, or BROOK_ERR_NOMEM. */
BROOK_API brook_err_t brook_store_snapshot(brook_store_t *s, brook_write_fn write, void *opaque);

/* Replaces the store's content by a snapshot's. The listener is NOT called (the changelog is
 * where a restore comes from). The whole input is checked before anything is replaced.
 * Returns BROOK_OK, BROOK_ERR_CORRUPT (bad magic or version, truncated, wrong checksum,
 * a value size that does not match value_size, a duplicate key: brook_store_last_error
 * names the store and what was wrong), BROOK_ERR_NOMEM or a backend error; on any error the
 * store is left EMPTY (never half restored). No iterator may be open. */
BROOK_API brook_err_t brook_store_restore(brook_store_t *s, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
