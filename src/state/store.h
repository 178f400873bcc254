/* The state store behind brook/state.h: one struct for every store. Its first part is the
 * built-in backend, the in-memory hash store (hash_store.c), used directly with no indirect
 * call; a store with another backend (ordered_store.c, or a user's table from
 * store_backend.h) leaves that part empty and goes through `be` (store_api.c dispatches,
 * store_iter.c iterates, store_snapshot.c snapshots any backend).
 *
 * The hash store: an open-addressing hash table with
 * linear probing whose slots hold {hash, entry pointer}. Entries are slab blocks laid out as
 * [bk_entry_t header][key bytes][pad to 16][value bytes], so an entry never moves when the
 * table is resized (value pointers stay valid) and values are 16-byte aligned.
 *
 * Deletion leaves a tombstone unless the next slot is empty (then the slot and any
 * tombstones just before it become empty), and nothing ever moves on a deletion: that is
 * what lets brook_store_next survive the deletion of the entry it just returned. All table
 * reorganisation (grow, tombstone clean-up, shrink) happens when a new key is inserted; the
 * one exception is that deleting the last entry releases a big table, which cannot disturb
 * an iteration because nothing is left to visit.
 *
 * This header is the internal API the runtime uses (one hash computation per record: hash
 * once, then find/upsert/remove with it) plus the pieces store_snapshot.c shares. The
 * listener must not modify the store it listens to. Single-threaded, like the store. */
#ifndef BROOK_STATE_STORE_H
#define BROOK_STATE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/state.h>

#include "core/hash.h"
#include "core/opts.h"
#include "state/dirty_set.h"
#include "state/slab.h"

/* Longest key or value; put returns BROOK_ERR_INVALID_ARG beyond it (lengths are stored as
 * 32-bit integers). */
#define BK_STORE_MAX_LEN ((size_t)UINT32_MAX - 64)

/* An entry's header; the key follows it, then padding to 16, then the value. 16 bytes, so
 * the key starts 16-byte aligned too. */
typedef struct bk_entry {
  uint32_t klen, vlen;
  uint32_t dirty; /* 1 + index in the store's dirty array, or 0 when not dirty */
  uint32_t ref;   /* the slab block's ref, for bk_slab_free */
} bk_entry_t;

/* A table slot. Empty: e == NULL and hash == 0. Tombstone: e == NULL and hash != 0. */
typedef struct bk_slot {
  uint64_t hash;
  bk_entry_t *e;
} bk_slot_t;

typedef struct brook_store_iter bk_store_iter_t;

/* Fields are private to src/state/. */
struct brook_store {
  /* ---- the hash store (all zero for another backend) ---- */
  bk_slot_t *slots; /* `cap` slots; NULL when cap is 0 */
  size_t cap;       /* 0 or a power of two >= min_cap */
  size_t count;     /* live entries */
  size_t tombs;     /* tombstones; count + tombs <= 3/4 cap */
  size_t min_cap;   /* the table never shrinks below this (sized from expected_entries) */
  size_t value_size;
  bk_slab_t slab; /* every entry's memory */
  brook_store_listener_fn listener;
  void *listener_opaque;
  bk_dirty_t dirty; /* entries changed in place since the last flush (listener set only) */
  /* ---- every store ---- */
  const brook_store_backend_t *be; /* NULL: the hash store above; else the backend's table */
  void *be_state;                  /* what be->open returned */
  uint64_t gen;                    /* bumped by every change through `be`: iterators re-seek */
  bk_store_iter_t *iters;          /* every iterator made for this store (open or pooled) */
  size_t n_iters_open;
  bk_store_iter_t *cursor_it; /* brook_store_next on a backend: its iterator and position */
  size_t cursor_pos;
  unsigned char *scratch; /* copies of key and value reported to a backend store's listener */
  size_t scratch_cap;
  char *errmsg;     /* the last error's message (lazily allocated), or NULL */
  uint32_t err_seq; /* counts messages set: tells whether a backend call set one */
  char *name;       /* never NULL */
  size_t name_bytes;
  brook_allocator_t alloc;  /* a copy of the allocator the store was created with */
  int changelog_disabled;   /* opts.changelog_disabled (store_changelog.h) */
  char **changelog_configs; /* a copy of opts.changelog_configs, or NULL */
};

static inline unsigned char *bk_entry_key(const bk_entry_t *e) {
  return (unsigned char *)(uintptr_t)(e + 1);
}

static inline unsigned char *bk_entry_value(const bk_entry_t *e) {
  return bk_entry_key(e) + (((size_t)e->klen + 15) & ~(size_t)15);
}

/* Bytes of an entry with these lengths. */
static inline size_t bk_entry_size(size_t klen, size_t vlen) {
  return sizeof(bk_entry_t) + ((klen + 15) & ~(size_t)15) + vlen;
}

/* A new entry from `slab` holding a copy of key, with room for vlen value bytes (left to the
 * caller), not dirty; NULL if the slab's allocator failed. The lengths are checked. */
static inline bk_entry_t *bk_entry_alloc(bk_slab_t *slab, const void *key, size_t klen,
                                         size_t vlen) {
  uint32_t ref;
  bk_entry_t *e = (bk_entry_t *)bk_slab_alloc(slab, bk_entry_size(klen, vlen), &ref);
  if (!e)
    return NULL;
  e->klen = (uint32_t)klen;
  e->vlen = (uint32_t)vlen;
  e->dirty = 0;
  e->ref = ref;
  if (klen)
    memcpy(bk_entry_key(e), key, klen);
  return e;
}

/* The entry a value pointer (from find/upsert) belongs to, given its key length. */
static inline bk_entry_t *bk_entry_of_value(void *value, size_t klen) {
  return (bk_entry_t *)(void *)((unsigned char *)value - ((klen + 15) & ~(size_t)15)) - 1;
}

/* The order of ordered stores and range bounds: unsigned bytes (memcmp), a proper prefix
 * first. <0, 0 or >0. */
static inline int bk_key_cmp(const void *a, size_t alen, const void *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (alen > blen) - (alen < blen);
}

/* Whether a key and value of these lengths can be stored. */
static inline int bk_store_lens_ok(size_t klen, size_t vlen) {
  return klen <= BK_STORE_MAX_LEN && vlen <= BK_STORE_MAX_LEN && vlen <= SIZE_MAX - 64 - klen;
}

/* Creates an empty store with the backend opts choose. `a` is copied (NULL: malloc); `opts`
 * may be NULL (defaults); `name` is copied and may be NULL (then opts->name, or "store").
 * BROOK_OK, BROOK_ERR_INVALID_ARG (NULL out, bad struct_size, value_size too big, a bad
 * backend table), BROOK_ERR_NOMEM or the backend's open error; *out is NULL on error, and
 * `why` (may be NULL) says what went wrong. */
brook_err_t bk_store_create(const brook_allocator_t *a, const brook_store_opts_t *opts,
                            const char *name, brook_store_t **out, bk_errmsg_t *why);

/* Records a message for brook_store_last_error: "store 'NAME': " then the text. Returns err,
 * so callers can `return bk_store_fail(s, err, ...)`. */
brook_err_t bk_store_fail(const brook_store_t *s, brook_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Closes every iterator of the store and frees the pool (store_iter.c). */
void bk_store_iters_free(brook_store_t *s);

/* The versions of brook_store_opts_t (core/opts.h): callers that can report a message check
 * the caller's struct_size against it. */
extern const bk_opts_type_t bk_store_opts_type;

/* Frees the store and everything in it, without reporting anything. NULL is a no-op. */
void bk_store_destroy(brook_store_t *s);

/* Empties the store without reporting anything to its listener (a restore's first step, and
 * how a failed checkpoint restore puts a store back to empty). BROOK_OK or the backend's
 * error (message set). */
brook_err_t bk_store_empty(brook_store_t *s);

/* The store's name (never NULL for a store). */
const char *bk_store_name(const brook_store_t *s);

/* ---- the hot path: `hash` must be bk_hash_bytes(key, klen) (only the hash store uses it) ----
 * find and the hit case of upsert are inline: a lookup is two dependent cache misses (slot,
 * entry), and a call with its argument checks keeps the CPU from overlapping the misses of
 * consecutive records as well as a tight inline loop does. */

/* Key equality with inline compares for short keys (a libc memcmp call would cost more than
 * the rest of the lookup); overlapping loads cover every length from 4 to 16. */
static inline int bk_store_key_eq(const bk_entry_t *e, const void *key, size_t klen) {
  const unsigned char *a = bk_entry_key(e), *b = key;
  if (e->klen != klen)
    return 0;
  if (klen > 16 || klen < 4)
    return klen == 0 || memcmp(a, b, klen) == 0;
  if (klen >= 8) {
    uint64_t x, y, u, v;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    memcpy(&u, a + klen - 8, 8);
    memcpy(&v, b + klen - 8, 8);
    return ((x ^ y) | (u ^ v)) == 0;
  }
  uint32_t x, y, u, v;
  memcpy(&x, a, 4);
  memcpy(&y, b, 4);
  memcpy(&u, a + klen - 4, 4);
  memcpy(&v, b + klen - 4, 4);
  return ((x ^ y) | (u ^ v)) == 0;
}

/* The slot holding `key`, or NULL. The stored hash is compared before the key. */
static inline bk_slot_t *bk_store_lookup(const brook_store_t *s, const void *key, size_t klen,
                                         uint64_t hash) {
  if (!s->count)
    return NULL;
  size_t mask = s->cap - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    bk_slot_t *sl = &s->slots[i];
    if (sl->e) {
      if (sl->hash == hash && bk_store_key_eq(sl->e, key, klen))
        return sl;
    } else if (!sl->hash) {
      return NULL; /* an empty slot ends the probe; tombstones do not */
    }
  }
}

/* bk_store_find on a hash store. */
static inline void *bk_hash_find(const brook_store_t *s, const void *key, size_t klen,
                                 uint64_t hash, size_t *vlen) {
  bk_slot_t *sl = bk_store_lookup(s, key, klen, hash);
  if (vlen)
    *vlen = sl ? sl->e->vlen : 0;
  return sl ? bk_entry_value(sl->e) : NULL;
}

/* bk_store_find on a store with a backend table (store_api.c): a read error is kept as the
 * store's message and looks like an absent key. */
void *bk_store_find_be(const brook_store_t *s, const void *key, size_t klen, size_t *vlen);

/* The value of `key` and its length in *vlen (vlen may be NULL), or NULL if the key is
 * absent. On the hash store the pointer stays valid until this key is put (with another
 * size), deleted, or the store is restored or freed (operators rely on it); on other
 * backends it is a view valid until the next call on the store. A present key with an empty
 * value gives a non-NULL pointer. `key` may be NULL only when klen is 0. */
static inline void *bk_store_find(const brook_store_t *s, const void *key, size_t klen,
                                  uint64_t hash, size_t *vlen) {
  if (!s || (!key && klen)) {
    if (vlen)
      *vlen = 0;
    return NULL;
  }
  if (__builtin_expect(s->be != NULL, 0))
    return bk_store_find_be(s, key, klen, vlen);
  return bk_hash_find(s, key, klen, hash, vlen);
}

/* Batch prefetch hints. A lookup is two dependent cache misses (slot, then entry); a batch
 * can overlap them across records: hash every key and bk_store_prefetch() it, then
 * bk_store_prefetch_entry() each (its slot has arrived by then), then look them up. Measured
 * at 100k random keys: about 1.7x faster upserts than one record at a time. */
static inline void bk_store_prefetch(const brook_store_t *s, uint64_t hash) {
  if (s->cap)
    __builtin_prefetch(&s->slots[hash & (s->cap - 1)]);
}

static inline void bk_store_prefetch_entry(const brook_store_t *s, uint64_t hash) {
  if (s->cap) {
    const bk_entry_t *e = s->slots[hash & (s->cap - 1)].e;
    if (e)
      __builtin_prefetch(e);
  }
}

/* bk_store_upsert without the inline shortcut: every case, checks included, every backend. */
brook_err_t bk_store_upsert_slow(brook_store_t *s, const void *key, size_t klen, uint64_t hash,
                                 void **value, int *created);

/* brook_store_update with a precomputed hash: *value points at the key's value_size bytes
 * (zeroed, *created = 1, for a new key; created may be NULL). With a listener set, the key is
 * marked dirty for the next flush. BROOK_OK, BROOK_ERR_STATE (no fixed value_size),
 * BROOK_ERR_INVALID_ARG or BROOK_ERR_NOMEM (store unchanged, *value = NULL). */
static inline brook_err_t bk_store_upsert(brook_store_t *s, const void *key, size_t klen,
                                          uint64_t hash, void **value, int *created) {
  /* Inline: a key already present and needing no dirty mark (the per-record case). */
  if (s && value && s->value_size && (key || !klen) && !s->be) {
    bk_slot_t *sl = bk_store_lookup(s, key, klen, hash);
    if (sl && (sl->e->dirty || !s->listener)) {
      *value = bk_entry_value(sl->e);
      if (created)
        *created = 0;
      return BROOK_OK;
    }
  }
  return bk_store_upsert_slow(s, key, klen, hash, value, created);
}

/* brook_store_delete with a precomputed hash: removes the key and reports the deletion.
 * BROOK_OK, BROOK_ERR_NOT_FOUND, BROOK_ERR_INVALID_ARG or the listener's error. */
brook_err_t bk_store_remove(brook_store_t *s, const void *key, size_t klen, uint64_t hash);

/* Whether in-place updates are waiting for brook_store_flush_changes. O(1). */
int bk_store_has_pending_changes(const brook_store_t *s);

/* ---- the hash store's own functions (hash_store.c), called by store_api.c for a store
 * with no `be` ---- */

/* Sets up the hash part of a zeroed store whose alloc is set: with expected_entries, the
 * table is allocated now and never shrinks below that size. BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_hash_init(brook_store_t *s, size_t expected_entries);
/* Frees the hash part (entries, table, dirty set). */
void bk_hash_fini(brook_store_t *s);
brook_err_t bk_hash_put(brook_store_t *s, const void *key, size_t klen, const void *value,
                        size_t vlen);
brook_err_t bk_hash_remove(brook_store_t *s, const void *key, size_t klen, uint64_t hash);
brook_err_t bk_hash_upsert_slow(brook_store_t *s, const void *key, size_t klen, uint64_t hash,
                                void **value, int *created);
/* Bytes held by the hash part (table, dirty array, slab). */
size_t bk_hash_memory(const brook_store_t *s);
/* brook_store_next on the hash store: the cursor is the next slot to look at. */
int bk_hash_next(const brook_store_t *s, size_t *cursor, const void **key, size_t *key_len,
                 const void **value, size_t *value_len);
/* The listener changed (fn NULL: pending in-place changes are forgotten). */
void bk_hash_listener_changed(brook_store_t *s);
/* Reports in-place changes to the listener. */
brook_err_t bk_hash_flush(brook_store_t *s);

/* Removes every entry, calling the listener for each when `report` is set; forgets pending
 * in-place changes. Releases a big table. Never fails. */
void bk_hash_reset(brook_store_t *s, int report);

/* From now on the table never shrinks below its current size (for a store that is emptied
 * and refilled with about as many keys, like a window segment). */
static inline void bk_store_keep_capacity(brook_store_t *s) {
  if (s->cap > s->min_cap)
    s->min_cap = s->cap;
}

/* Sizes the table so that `n` entries fit without a resize. BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_hash_reserve(brook_store_t *s, size_t n);

/* Inserts a key that must be new, with a copy of `value`, without reporting it. BROOK_OK,
 * BROOK_ERR_NOMEM or BROOK_ERR_DUPLICATE (the key is already present; nothing changed). The
 * caller has checked the lengths (bk_store_lens_ok, value_size). */
brook_err_t bk_hash_insert_new(brook_store_t *s, const void *key, size_t klen, uint64_t hash,
                               const void *value, size_t vlen);

/* Checks the ordered backend's invariants (ordered_store.c) given its state; 1 if they hold.
 * O(n): for tests and assert(). */
int bk_ordered_check(const void *state);

/* Checks every invariant of the table, the entries, the dirty set and the slab; returns 1 if
 * they hold. O(n) with a hash per entry: for tests and assert() after rare operations. */
int bk_store_check(const brook_store_t *s);

#endif
