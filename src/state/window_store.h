/* The window store: the store backend that holds ALL the state of a tumbling, hopping or
 * sliding window operator, in the layouts those operators need for speed, behind the same
 * logical key/value view every store has (get, put, delete, iteration, listeners,
 * snapshot/restore through the store interface). Three layouts share one store, so one
 * snapshot captures an operator instance whole and a restore is all or nothing:
 *
 *   segments  per window start (tumbling) or slice start (hopping), a segment of
 *             user key -> accumulator (state/segment.h), in an array sorted by start
 *   rings     per user key, its slices in time order with two-stack running aggregates
 *             (state/window_ring.h): hopping windows of many slices, sliding windows
 *   meta      a few fixed bytes of operator scalars (hopping: the last fired window, ...)
 *
 * The logical view (what listeners, iteration, snapshots and puts see; window_store_view.c):
 *
 *   'S' || user key || be64(start ^ 2^63)  -> the slice's accumulator (acc_size bytes)
 *   'R' || user key                         -> the key's ring record (below)
 *   'M'                                     -> the meta bytes (absent while all zero)
 *
 * A ring record: u32 n, fe, pe, 0; int64 upto; the back accumulator (aw bytes); then the n
 * ring elements as they are laid out in memory (int64 start, uint64 seq, acc, sfx: stride
 * bytes each), all in native byte order like the accumulators themselves. The running aggregates
 * are part of the state, not recomputed: a restored window produces the very same bytes an
 * uninterrupted one would, even with an aggregator whose merge is associative only up to rounding
 * (floating-point sums).
 *
 * Iteration order: meta, then segments by start and, within a segment, in insertion order
 * (the order a tumbling window emits its keys in), then rings. A restore puts the entries back
 * in that order, so emission orders survive it.
 *
 * Operators use the layouts directly (the in-place fast path): a record costs what it cost
 * when segments were a side structure, plus one predictable branch for change tracking.
 *
 * Changes and listeners: the store layer reports puts and deletes made through the store
 * interface itself; changes made by the operator through the layouts are tracked here and
 * reported at bk_wstore_flush (the backend's flush, after every batch): deletions first, then
 * every changed entry once with its current value, like brook_store_update's. Tracking costs
 * something only while a listener listens: a flush without one turns it off, and the first
 * flush with one reports every entry as it is (a listener that arrives late learns the whole
 * state; deletions of entries it never saw are not reported) and turns it on.
 *
 * Changes made through the logical view (put, delete, clear, restore) bump `gen`: the
 * operator compares it with the generation it last saw and rebuilds what it derives from the
 * store (its list of keys with slices, its timers). Single-threaded (the operator's loop). */
#ifndef BROOK_STATE_WINDOW_STORE_H
#define BROOK_STATE_WINDOW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <brook/aggregate.h>
#include <brook/alloc.h>
#include <brook/error.h>
#include <brook/state.h>

#include "core/hash.h"
#include "state/segment.h"
#include "state/slab.h"
#include "state/store.h"
#include "state/window_ring.h"

#define BK_WSTORE_META_MAX 64 /* bytes of meta an operator may keep */

/* Logical key tags. */
#define BK_WSTORE_TAG_SLICE 'S'
#define BK_WSTORE_TAG_RING 'R'
#define BK_WSTORE_TAG_META 'M'

/* ---- segments ---- */

typedef struct bk_wbucket {
  brook_time_t start;
  bk_seg_t seg;
  /* Entries updated in place since the last flush (listener set only): a bit per entry and
   * their numbers, in the order they were first changed. */
  uint64_t *dbits;
  size_t dbits_words;
  uint32_t *dlist;
  size_t n_dirty, dlist_cap;
} bk_wbucket_t;

/* ---- rings ---- */

/* A key's value in the ring index; its back accumulator follows at BK_WKEY_BACK_OFF. */
typedef struct bk_wkey {
  bk_ring_t ring;
  uint32_t klen;
  uint32_t flag;     /* hopping: in its active list (derived, not persisted) */
  brook_time_t upto; /* sliding: the ring's [0, pe) holds its slices before this */
  uint32_t dirty;    /* 1 + position in the store's dirty key list, or 0 */
} bk_wkey_t;

#define BK_WKEY_BACK_OFF ((sizeof(bk_wkey_t) + 15) & ~(size_t)15)

static inline void *bk_wkey_back(bk_wkey_t *k) { return (unsigned char *)k + BK_WKEY_BACK_OFF; }

/* The key's bytes (they live in the index entry: stable until the key is removed). */
static inline const unsigned char *bk_wkey_bytes(bk_wkey_t *k) {
  return bk_entry_key(bk_entry_of_value(k, k->klen));
}

typedef struct bk_wstore {
  const brook_allocator_t *alloc;
  size_t acc_size;
  /* segments: sorted by start, n_buckets live; those past them are spares that keep their
   * memory for reuse */
  bk_wbucket_t *buckets;
  size_t n_buckets, cap_buckets;
  size_t last_bucket; /* where the previous record went */
  /* rings */
  bk_slab_t slab;
  bk_ring_cfg_t rc;
  brook_store_t *keys; /* user key -> bk_wkey_t + back (an internal hash table) */
  bk_wkey_t **kdirty;  /* keys whose ring changed since the last flush (listener set only) */
  size_t n_kdirty, kdirty_cap;
  /* meta */
  _Alignas(16) unsigned char meta[BK_WSTORE_META_MAX]; /* aligned: operators overlay a struct */
  unsigned char meta_seen[BK_WSTORE_META_MAX];         /* as last reported to the listener */
  size_t meta_size;
  /* change tracking (see above) and the logical view */
  int tracking;
  unsigned char *gone; /* logical keys deleted since the last flush: u32 length, bytes */
  size_t gone_used, gone_cap;
  uint64_t gen;        /* bumped by every change through the logical view */
  unsigned char *view; /* scratch for logical keys and ring records */
  size_t view_cap;
} bk_wstore_t;

/* Sets up an empty store for accumulators of `agg` (which must outlive the store), with
 * `meta_size` (<= BK_WSTORE_META_MAX) bytes of zeroed meta. `a` must outlive the store.
 * BROOK_OK, BROOK_ERR_INVALID_ARG or BROOK_ERR_NOMEM (then bk_wstore_destroy still applies). */
brook_err_t bk_wstore_init(bk_wstore_t *ws, const brook_allocator_t *a,
                           const brook_aggregator_t *agg, size_t meta_size);

/* Frees everything; the struct is zeroed. */
void bk_wstore_destroy(bk_wstore_t *ws);

/* Empties all three layouts (zeroed meta) without reporting. Never fails. */
void bk_wstore_reset(bk_wstore_t *ws);

/* Bytes held (every layout, spares and scratch included). */
size_t bk_wstore_memory(const bk_wstore_t *ws);

/* Whether the meta bytes are an entry (they are not while all zero). */
int bk_wstore_meta_present(const bk_wstore_t *ws);

/* Number of logical entries. */
size_t bk_wstore_count(const bk_wstore_t *ws);

/* ---- segments: the fast path ---- */

/* The bucket of `start`, created (empty) if needed: *created tells. NULL if out of memory.
 * Pointers to buckets are valid until the next bucket is created or dropped. */
bk_wbucket_t *bk_wstore_bucket_find_or_add(bk_wstore_t *ws, brook_time_t start, int *created);

static inline bk_wbucket_t *bk_wstore_bucket_for(bk_wstore_t *ws, brook_time_t start,
                                                 int *created) {
  if (ws->last_bucket < ws->n_buckets && ws->buckets[ws->last_bucket].start == start) {
    *created = 0; /* most records hit the previous record's bucket */
    return &ws->buckets[ws->last_bucket];
  }
  return bk_wstore_bucket_find_or_add(ws, start, created);
}

/* First bucket position whose start is >= `start`. */
size_t bk_wstore_bucket_lower(const bk_wstore_t *ws, brook_time_t start);

/* Marks entry `i` of bucket `b` changed (while tracking). BROOK_ERR_NOMEM if the dirty list
 * cannot grow (the change itself stays). */
brook_err_t bk_wstore_bucket_mark(bk_wstore_t *ws, bk_wbucket_t *b, size_t i);

/* The entry number of an accumulator of bucket `b`. */
static inline size_t bk_wstore_bucket_index(const bk_wbucket_t *b, const void *acc) {
  return (size_t)((const unsigned char *)acc - 16 - b->seg.entries) / b->seg.stride;
}

/* Adds `rec` to its key's accumulator in bucket `b` (created and init'ed if new); *acc gets
 * it. The aggregator's error or BROOK_ERR_NOMEM leave no new key behind. */
static inline brook_err_t bk_wstore_bucket_add(bk_wstore_t *ws, bk_wbucket_t *b,
                                               const brook_aggregator_t *agg,
                                               const brook_record_t *rec, void **acc) {
  int created;
  *acc = bk_seg_upsert(&b->seg, rec->key, rec->key_len, bk_hash_bytes(rec->key, rec->key_len),
                       &created);
  if (!*acc)
    return BROOK_ERR_NOMEM;
  if (created && agg->init)
    agg->init(*acc, agg);
  brook_err_t err = agg->add(*acc, rec, agg);
  if (err < 0) {
    if (created) /* no window for a refused record */
      bk_seg_pop(&b->seg);
    return err;
  }
  if (ws->tracking)
    return bk_wstore_bucket_mark(ws, b, bk_wstore_bucket_index(b, *acc));
  return BROOK_OK;
}

/* Empties the buckets whose start is < `start` (each entry's deletion tracked) and keeps
 * them as spares. */
void bk_wstore_buckets_drop_before(bk_wstore_t *ws, brook_time_t start);

/* ---- rings: the fast path ---- */

/* The key's ring, created empty if new (*created); NULL with *err on failure. The key is
 * marked changed. */
bk_wkey_t *bk_wstore_key_get(bk_wstore_t *ws, const void *key, size_t klen, uint64_t hash,
                             int *created, brook_err_t *err);

static inline bk_wkey_t *bk_wstore_key_find(bk_wstore_t *ws, const void *key, size_t klen,
                                            uint64_t hash) {
  return bk_hash_find(ws->keys, key, klen, hash, NULL); /* an internal hash store */
}

/* Marks the key's ring changed (while tracking). BROOK_ERR_NOMEM if the list cannot grow. */
brook_err_t bk_wstore_key_mark_slow(bk_wstore_t *ws, bk_wkey_t *k);

static inline brook_err_t bk_wstore_key_mark(bk_wstore_t *ws, bk_wkey_t *k) {
  return ws->tracking && !k->dirty ? bk_wstore_key_mark_slow(ws, k) : BROOK_OK;
}

/* Takes a marked key out of the changed ones. */
void bk_wstore_key_unmark(bk_wstore_t *ws, bk_wkey_t *k);

/* Frees the key's ring and removes the key (its deletion tracked). */
void bk_wstore_key_remove(bk_wstore_t *ws, bk_wkey_t *k);

/* ---- change reports ---- */

/* Whether bk_wstore_flush has something to do: tracked changes, or tracking is off (so that
 * a listener set since is noticed). */
int bk_wstore_has_pending(const bk_wstore_t *ws);

/* With fn: reports the tracked changes (deletions, then each changed entry once with its
 * current value), or every entry if tracking was off, and tracks from now on. Without fn:
 * forgets them and stops tracking. Returns fn's first error (the rest are still reported),
 * BROOK_ERR_NOMEM, or BROOK_OK. fn must not call into the store. */
brook_err_t bk_wstore_flush(bk_wstore_t *ws, brook_store_listener_fn fn, void *opaque);

/* Forgets tracked deletions of this logical key (it is being put through the interface,
 * which the store layer reports itself). */
void bk_wstore_forget_gone(bk_wstore_t *ws, const void *key, size_t klen);

/* ---- the logical view (window_store_view.c) ---- */

/* The value of a logical key: a view valid until the next call on the store. BROOK_OK or
 * BROOK_ERR_NOT_FOUND (*value NULL). */
brook_err_t bk_wstore_get(bk_wstore_t *ws, const void *key, size_t klen, const void **value,
                          size_t *vlen);

/* Stores a logical entry (the store layer reports it). BROOK_ERR_INVALID_ARG for a key or value
 * that is no entry of this store (unknown tag, wrong accumulator size, malformed ring
 * record), BROOK_ERR_NOMEM; the store is unchanged on error. */
brook_err_t bk_wstore_put(bk_wstore_t *ws, const void *key, size_t klen, const void *value,
                          size_t vlen);

/* Removes a logical entry (the store layer reports it). BROOK_OK, BROOK_ERR_NOT_FOUND or
 * BROOK_ERR_NOMEM. */
brook_err_t bk_wstore_delete(bk_wstore_t *ws, const void *key, size_t klen);

/* Removes everything (the store layer reports the deletions). */
void bk_wstore_clear(bk_wstore_t *ws);

/* Iteration in the order described above. Start with a zeroed cursor; returns 1 and the next
 * entry (views valid until the next call on the store), or 0 at the end. The store must not
 * change during an iteration. */
typedef struct bk_wstore_cursor {
  uint32_t phase;    /* 0 meta, 1 segments, 2 rings, 3 done */
  size_t bucket, at; /* segments: bucket and entry; rings: the index's cursor */
} bk_wstore_cursor_t;

int bk_wstore_next(bk_wstore_t *ws, bk_wstore_cursor_t *c, const void **key, size_t *klen,
                   const void **value, size_t *vlen);

/* Checks the layouts' invariants. 1 if they hold. O(n): for tests and assert(). */
int bk_wstore_check(const bk_wstore_t *ws);

#endif
