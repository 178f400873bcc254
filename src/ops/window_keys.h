/* Per-key slice rings of a window operator (hopping with many slices per window, sliding):
 * the operator's access to the rings layout of its window store (user key -> bk_wkey_t: the
 * key's ring of slices, state/window_ring.h, then its back accumulator), and a scratch
 * "sweep" that slides windows over a list of slices with the same two stacks, for early
 * results. Loop thread. */
#ifndef BROOK_OPS_WINDOW_KEYS_H
#define BROOK_OPS_WINDOW_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <brook/state.h>

#include "state/window_ring.h"
#include "state/window_store.h"

typedef struct bk_wkeys {
  const brook_allocator_t *alloc;
  bk_wstore_t *ws;    /* where the rings live */
  bk_ring_cfg_t rc;   /* ws->rc */
  unsigned char *tmp; /* 3 accumulators: a query's, a sweep's back and its merge */
  /* the sweep's slices (filled by the caller) and their suffixes */
  brook_time_t *s_start;
  const void **s_acc;
  unsigned char *s_sfx;
  size_t s_cap;
} bk_wkeys_t;

/* Sets up the rings of `ws` (borrowed) and the sweep's scratch. BROOK_OK or BROOK_ERR_NOMEM
 * (bk_wkeys_free still applies). */
brook_err_t bk_wkeys_open(bk_wkeys_t *ks, bk_wstore_t *ws, const brook_allocator_t *a);
void bk_wkeys_free(bk_wkeys_t *ks);
size_t bk_wkeys_memory(const bk_wkeys_t *ks);

/* The key's state, created empty if new (*created) and marked changed; NULL with *err on
 * failure. */
static inline bk_wkey_t *bk_wkeys_get(bk_wkeys_t *ks, const void *key, size_t klen, uint64_t hash,
                                      int *created, brook_err_t *err) {
  return bk_wstore_key_get(ks->ws, key, klen, hash, created, err);
}

static inline bk_wkey_t *bk_wkeys_find(bk_wkeys_t *ks, const void *key, size_t klen,
                                       uint64_t hash) {
  return bk_wstore_key_find(ks->ws, key, klen, hash);
}

/* Marks the key's ring changed (for the store's listener). */
static inline brook_err_t bk_wkeys_touch(bk_wkeys_t *ks, bk_wkey_t *k) {
  return bk_wstore_key_mark(ks->ws, k);
}

/* Frees the key's ring and removes it from the store. */
static inline void bk_wkeys_remove(bk_wkeys_t *ks, bk_wkey_t *k) {
  bk_wstore_key_remove(ks->ws, k);
}

/* The merge of the key's [0, pe) (see bk_ring_query), or NULL. */
static inline const void *bk_wkeys_query(bk_wkeys_t *ks, bk_wkey_t *k) {
  return bk_ring_query(&ks->rc, &k->ring, bk_wkey_back(k), ks->tmp);
}

/* ---- sweep: windows sliding over s_start/s_acc[0..m) (sorted by start) ---- */

typedef struct bk_sweep {
  size_t m, lo, fe, pe;
} bk_sweep_t;

/* Room for m slices in s_start/s_acc. BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_wkeys_sweep_reserve(bk_wkeys_t *ks, size_t m);

/* Starts a sweep over the first m slices. */
static inline void bk_sweep_init(bk_sweep_t *sw, size_t m) { *sw = (bk_sweep_t){m, 0, 0, 0}; }

/* Slides to the window [ws, we) (both never smaller than the previous call's) and returns
 * the merge of its slices, or NULL if it has none. Valid until the next call. */
const void *bk_wkeys_sweep(bk_wkeys_t *ks, bk_sweep_t *sw, brook_time_t ws, brook_time_t we);

#endif
