/* A key's slices in time order, with running aggregates so that a window sliding over them
 * costs O(1) amortised per slice, whatever the number of slices it covers (the "two stacks"
 * of sliding-window aggregation, for aggregators with merge but no inverse).
 *
 * The ring holds elements [head, head + n) of one slab block, sorted by slice start, in
 * three runs (positions relative to the first element):
 *   [0, fe)   FRONT: each element's suffix aggregate sfx = acc[i] merged with acc[i+1..fe)
 *   [fe, pe)  BACK: their merge, in order, is the key's `back` accumulator (valid if pe > fe)
 *   [pe, n)   PENDING: not in any aggregate yet (slices past the current window)
 * A window covering [0, pe) is sfx[0] merged with back: O(1). Sliding on evicts from the
 * front (when it runs empty, the back is turned into suffixes once: each element is turned
 * at most once) and pushes pending elements into back (one merge each). Merges always
 * combine elements in time order, so merge only needs to be associative.
 *
 * An element changed or inserted inside [0, pe) (a record behind the windows already fired
 * that still belongs to an open one) is handled by bk_ring_refresh, which recomputes the
 * aggregates that include it: O(elements of the key in one window), a cost only such late
 * records pay. Element layout: int64 start, uint64 seq, acc, sfx (each 16-byte rounded).
 * Single-threaded (the operator's loop). */
#ifndef BROOK_OPS_WINDOW_RING_H
#define BROOK_OPS_WINDOW_RING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <brook/aggregate.h>
#include <brook/timestamp.h>

#include "state/slab.h"

typedef struct bk_ring {
  unsigned char *buf; /* cap elements (a slab block), NULL when cap == 0 */
  uint32_t ref;       /* the block's slab ref */
  uint32_t cap, head, n;
  uint32_t fe, pe; /* see above: 0 <= fe <= pe <= n */
} bk_ring_t;

/* What every ring of one operator shares. */
typedef struct bk_ring_cfg {
  const brook_aggregator_t *agg;
  size_t acc_size; /* the aggregator's accumulator bytes */
  size_t aw;       /* acc_size rounded up to 16 */
  size_t stride;   /* 16 + 2 * aw */
  bk_slab_t *slab;
} bk_ring_cfg_t;

void bk_ring_cfg_init(bk_ring_cfg_t *c, const brook_aggregator_t *agg, bk_slab_t *slab);

static inline unsigned char *bk_ring_el(const bk_ring_cfg_t *c, const bk_ring_t *r, size_t i) {
  return r->buf + ((size_t)r->head + i) * c->stride;
}
static inline brook_time_t bk_ring_start(const bk_ring_cfg_t *c, const bk_ring_t *r, size_t i) {
  brook_time_t s;
  memcpy(&s, bk_ring_el(c, r, i), sizeof(s));
  return s;
}
static inline uint64_t bk_ring_seq(const bk_ring_cfg_t *c, const bk_ring_t *r, size_t i) {
  uint64_t s;
  memcpy(&s, bk_ring_el(c, r, i) + 8, sizeof(s));
  return s;
}
static inline void *bk_ring_acc(const bk_ring_cfg_t *c, const bk_ring_t *r, size_t i) {
  return bk_ring_el(c, r, i) + 16;
}
static inline void *bk_ring_sfx(const bk_ring_cfg_t *c, const bk_ring_t *r, size_t i) {
  return bk_ring_el(c, r, i) + 16 + c->aw;
}

/* First position whose start is >= `start` (n if none). O(log n). */
size_t bk_ring_lower(const bk_ring_cfg_t *c, const bk_ring_t *r, brook_time_t start);

/* Inserts an element (start, seq) at `pos` with a zeroed, init'ed accumulator, which it
 * returns (NULL: out of memory, nothing changed). The caller keeps the order. With `pushed`
 * the element joins [0, pe) (pos <= pe; call bk_ring_refresh once its accumulator is filled),
 * else the pending run (pos >= pe). Pointers into the ring are valid until it changes. */
void *bk_ring_insert(const bk_ring_cfg_t *c, bk_ring_t *r, size_t pos, brook_time_t start,
                     uint64_t seq, int pushed);

/* Removes the element at `pos` just inserted by bk_ring_insert (before any refresh). */
void bk_ring_erase(const bk_ring_cfg_t *c, bk_ring_t *r, size_t pos);

/* Recomputes the aggregates that include element `pos` (< pe) after it changed. */
void bk_ring_refresh(const bk_ring_cfg_t *c, bk_ring_t *r, size_t pos, void *back);

/* Moves pending elements whose start is < `upto` into back. */
void bk_ring_push(const bk_ring_cfg_t *c, bk_ring_t *r, brook_time_t upto, void *back);

/* Drops the elements whose start is < `from`, and shrinks the block when it has become far
 * bigger than needed. */
void bk_ring_evict(const bk_ring_cfg_t *c, bk_ring_t *r, brook_time_t from, void *back);

/* The merge of [0, pe), or NULL if that run is empty: sfx[0], back, or both merged into
 * `tmp` (acc_size bytes). */
const void *bk_ring_query(const bk_ring_cfg_t *c, const bk_ring_t *r, const void *back, void *tmp);

/* Replaces the ring's content by n elements laid out as in memory (stride bytes each, sorted
 * by start) with runs fe <= pe <= n. 0, or -1 if out of memory (the ring is unchanged). */
int bk_ring_assign(const bk_ring_cfg_t *c, bk_ring_t *r, const void *elements, uint32_t n,
                   uint32_t fe, uint32_t pe);

/* Releases the ring's block; the ring is empty afterwards. */
void bk_ring_free(const bk_ring_cfg_t *c, bk_ring_t *r);

/* Checks the ring's invariants (runs within bounds, starts strictly increasing). Returns 1
 * if they hold. O(n): for assert(). */
int bk_ring_check(const bk_ring_cfg_t *c, const bk_ring_t *r);

#endif
