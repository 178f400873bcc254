/* Per-key slice rings of a window operator (hopping with many slices per window, sliding):
 * a store of user key -> bk_wkey_t (the key's ring of slices, window_ring.h, then its back
 * accumulator), the slab the rings live in, and a scratch "sweep" that slides windows over a
 * list of slices with the same two stacks, for early results. Loop thread. */
#ifndef BROOK_OPS_WINDOW_KEYS_H
#define BROOK_OPS_WINDOW_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <brook/state.h>

#include "ops/window_ring.h"
#include "state/slab.h"
#include "state/store.h"

/* A key's value in the store; its back accumulator follows at BK_WKEY_BACK_OFF. */
typedef struct bk_wkey {
  bk_ring_t ring;
  uint32_t klen;
  uint32_t flag;     /* hopping: in its active list */
  brook_time_t upto; /* sliding: the ring's [0, pe) holds its slices before this */
} bk_wkey_t;

#define BK_WKEY_BACK_OFF ((sizeof(bk_wkey_t) + 15) & ~(size_t)15)

static inline void *bk_wkey_back(bk_wkey_t *k) { return (unsigned char *)k + BK_WKEY_BACK_OFF; }

/* The key's bytes (they live in the store entry: stable until the key is removed). */
static inline const unsigned char *bk_wkey_bytes(bk_wkey_t *k) {
  return bk_entry_key(bk_entry_of_value(k, k->klen));
}

typedef struct bk_wkeys {
  const brook_allocator_t *alloc;
  bk_slab_t slab;
  bk_ring_cfg_t rc;
  brook_store_t *store;
  unsigned char *tmp;  /* 3 accumulators: a query's, a sweep's back and its merge */
  unsigned char *kbuf; /* a removed key's bytes */
  size_t kcap;
  /* the sweep's slices (filled by the caller) and their suffixes */
  brook_time_t *s_start;
  const void **s_acc;
  unsigned char *s_sfx;
  size_t s_cap;
} bk_wkeys_t;

/* Sets up for accumulators of `agg` and, with `store`, opens the store "keys" of `ctx`
 * (without, only the sweep is usable). BROOK_OK or an error (bk_wkeys_free still applies). */
brook_err_t bk_wkeys_open(bk_wkeys_t *ks, brook_ctx_t *ctx, const brook_aggregator_t *agg,
                          const brook_allocator_t *a, int store);
void bk_wkeys_free(bk_wkeys_t *ks);
size_t bk_wkeys_memory(const bk_wkeys_t *ks);

/* The key's state, created empty if new (*created); NULL with *err on failure. */
bk_wkey_t *bk_wkeys_get(bk_wkeys_t *ks, const void *key, size_t klen, uint64_t hash, int *created,
                        brook_err_t *err);

static inline bk_wkey_t *bk_wkeys_find(bk_wkeys_t *ks, const void *key, size_t klen,
                                       uint64_t hash) {
  return bk_store_find(ks->store, key, klen, hash, NULL);
}

/* Frees the key's ring and removes it from the store. */
void bk_wkeys_remove(bk_wkeys_t *ks, bk_wkey_t *k);

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
