/* The store backend interface: how a state store keeps its bytes, as a versioned function
 * table users can implement to bring their own backend (a disk store, a remote cache, an
 * instrumented wrapper). brook's own backends, the in-memory hash store and the in-memory
 * ordered store, sit behind the same calls (brook_store_* in state.h), and so does RocksDB
 * in a later release.
 *
 * A backend is chosen per store with brook_store_opts_t.backend (plus backend_opaque, handed
 * to open()). The store layer (state.h) does everything that is the same for every backend:
 * argument and length checks, the value_size rule, the change listener for put/delete, range
 * bounds (prefix, [lo, hi), key || time), iterators that survive changes to the store,
 * snapshot and restore (over iter/clear/put, so a snapshot of any backend restores into any
 * other), error messages naming the store. A backend only stores bytes.
 *
 * Rules for every function of the table:
 * - `state` is what open() stored in *state; the table and backend_opaque are borrowed and
 *   must outlive every store opened with them.
 * - Keys and values passed in are borrowed for the call (copy what you keep). They may be
 *   views this backend gave out (a value read from the store and put back under another key,
 *   or an entry's key deleted during a scan): read or copy them before freeing or moving
 *   the entry they point into.
 * - Views given out (get's *value, an iterator's entry) stay valid until the next call on
 *   the same store or on any of its iterators. A backend may keep them valid longer.
 * - Errors: return a negative brook_err_t; call brook_store_set_error(store, ...) first to
 *   say what went wrong (the store layer prefixes the store's name). BROOK_ERR_NOT_FOUND is
 *   not an error where the function says so.
 * - Threading: a store is used by one thread at a time (its operator's worker), so a backend
 *   needs no locking for one store; stores of one backend may be used by different threads
 *   at once (share nothing mutable between states, or lock it).
 * - The table only grows by appending members; `version` says which members the table has
 *   (a version-1 table is read without the fields of later versions). A version this library
 *   does not know (0 or above BROOK_STORE_BACKEND_VERSION) is refused when the store opens. */
#ifndef BROOK_STORE_BACKEND_H
#define BROOK_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/export.h>
#include <brook/state.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BROOK_STORE_BACKEND_VERSION 1

/* Capability flags (brook_store_backend_t.caps). */
/* Iterators give keys in unsigned byte order (memcmp, then shorter first) and iter_seek
 * positions at the first key >= the one given. Without it, only full iteration in the
 * backend's own order is available, and range/prefix/time iterators fail with
 * BROOK_ERR_STATE. */
#define BROOK_STORE_CAP_ORDERED 1u
/* update() is provided: in-place changes to fixed-size values (brook_store_update). Without
 * it brook_store_update fails with BROOK_ERR_STATE (get + put still work). */
#define BROOK_STORE_CAP_UPDATE 2u
/* Iterators stay correct across put/delete on their store by themselves (the store layer
 * then does not re-seek them after a change, see iter_seek). Unordered backends need it to
 * allow deleting entries during a full iteration. */
#define BROOK_STORE_CAP_STABLE_ITER 4u

typedef struct brook_store_backend {
  uint32_t version; /* BROOK_STORE_BACKEND_VERSION this table was written against */
  uint32_t caps;    /* BROOK_STORE_CAP_* */
  const char *name; /* short backend name for messages ("hash", "ordered", "rocksdb"); borrowed */

  /* ---- life cycle ---- */

  /* Creates the backend state of one store. `store` is the handle to pass to
   * brook_store_set_error, now and from later calls (keep it in the state; use it for
   * nothing else). `name` is the
   * store's name (brook_store_open's, or opts->name for a standalone store; never NULL),
   * borrowed for the call. `opts` is the store's options after version handling (value_size,
   * expected_entries are hints a backend may use; value_size is enforced by the store
   * layer). `alloc` is the store's allocator: in-memory backends should use it (tests inject
   * allocation failures through it). `opaque` is opts->backend_opaque. Returns BROOK_OK with
   * *state set, or an error (BROOK_ERR_NOMEM, BROOK_ERR_IO, ...) with nothing to close. */
  brook_err_t (*open)(void **state, brook_store_t *store, const char *name,
                      const brook_store_opts_t *opts, const brook_allocator_t *alloc, void *opaque);
  /* Frees the state and everything it holds. Every iterator has been closed before. Pending
   * in-place changes are dropped (the store layer flushes before a close where it matters). */
  void (*close)(void *state);

  /* ---- point operations ---- */

  /* The value of `key`: BROOK_OK with a view in *value / *value_len, BROOK_ERR_NOT_FOUND if
   * the key is absent, or an error (a disk read failed). A present empty value has a
   * non-NULL *value. */
  brook_err_t (*get)(void *state, const void *key, size_t key_len, const void **value,
                     size_t *value_len);
  /* Stores a copy of key and value, replacing any old value. BROOK_OK or an error; on error
   * the store is unchanged (or, for a backend that cannot promise it, says so in its message). */
  brook_err_t (*put)(void *state, const void *key, size_t key_len, const void *value,
                     size_t value_len);
  /* Removes key: BROOK_OK, BROOK_ERR_NOT_FOUND (absent) or an error. */
  brook_err_t (*del)(void *state, const void *key, size_t key_len);

  /* ---- iteration ---- */

  /* Creates an iterator, positioned nowhere (call iter_seek first). BROOK_OK with *iter set,
   * or an error. Several iterators of one store may be open at once. */
  brook_err_t (*iter_open)(void *state, void **iter);
  /* Positions the iterator at the first entry whose key is >= `key` (key NULL: the first
   * entry; unordered backends only ever get NULL) and fills *entry with views of it.
   * BROOK_OK, BROOK_ERR_NOT_FOUND (no such entry: the iterator is exhausted) or an error. */
  brook_err_t (*iter_seek)(void *iter, const void *key, size_t key_len, brook_store_entry_t *entry);
  /* Moves to the entry after the current one: BROOK_OK (*entry filled), BROOK_ERR_NOT_FOUND
   * (end) or an error. Only called after a BROOK_OK seek or next, and (unless the backend
   * has BROOK_STORE_CAP_STABLE_ITER) never after a change to the store since then: the
   * store layer re-seeks instead. */
  brook_err_t (*iter_next)(void *iter, brook_store_entry_t *entry);
  /* Frees the iterator. */
  void (*iter_close)(void *iter);

  /* ---- whole store ---- */

  /* Removes every entry (restore and brook_store_clear use it; the store layer reports
   * deletions to the listener itself, by iterating first). BROOK_OK or an error. */
  brook_err_t (*clear)(void *state);
  /* Number of entries. A disk backend may return an estimate (say so in its docs). */
  size_t (*count)(void *state);
  /* Bytes of memory the backend holds for this store (caches and buffers for a disk
   * store). */
  size_t (*memory)(void *state);

  /* ---- optional (NULL when absent) ---- */

  /* In-place update of a fixed-size value (BROOK_STORE_CAP_UPDATE; the store's value_size is
   * > 0): *value points at the key's value_size bytes, writable until the next call on the
   * store; a new key gets zeroed bytes and *created = 1 (else 0). What the caller writes
   * there is the key's value: the backend must keep it (in memory that is the entry itself;
   * a disk backend writes it back at flush) and report the key at the next flush.
   * BROOK_OK or an error (store unchanged, *value = NULL). */
  brook_err_t (*update)(void *state, const void *key, size_t key_len, void **value, int *created);
  /* Makes pending changes durable and reports every key changed through update() since the
   * last flush to `fn` (once per key, with its current value; fn may be NULL when the store
   * has no listener, and is never the store's own modifier: fn must not modify the store).
   * Returns BROOK_OK, fn's first error (the rest are still reported at the next flush), or
   * the backend's own error. A flush counts as a change for iterators (the store layer
   * re-seeks them after it), so it may reorganise entries. NULL: nothing is ever pending. */
  brook_err_t (*flush)(void *state, brook_store_listener_fn fn, void *fn_opaque);
  /* Whether flush has something to do (cheap; checked after every batch). NULL: the store
   * layer calls flush after every batch if flush is not NULL. */
  int (*has_pending)(void *state);
} brook_store_backend_t;

/* Records what went wrong in the store's message (brook_store_last_error), prefixed by the
 * store's name and backend. For backends, inside their own functions; printf-style. */
BROOK_API void brook_store_set_error(brook_store_t *store, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* brook's own backends, as tables (a wrapper backend may delegate to them; the store layer
 * recognises these and calls them directly). Never NULL; static; any thread. */
BROOK_API const brook_store_backend_t *brook_store_backend_hash(void);
BROOK_API const brook_store_backend_t *brook_store_backend_ordered(void);

#ifdef __cplusplus
}
#endif
#endif
