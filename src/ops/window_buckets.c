/* Buckets of tumbling and hopping windows: per window start (tumbling) or slice start
 * (hopping), one segment holding every key's accumulator, kept in an array sorted by start.
 * Starts close in order, so buckets are created near the end and dropped from the front;
 * a dropped bucket's segment is emptied at once and kept as a spare past the live ones, so
 * a steady stream of windows allocates nothing. Loop thread. */
#include <string.h>

#include "core/alloc.h"
#include "ops/window_common.h"

size_t bk_win_bucket_lower(const bk_win_t *w, brook_time_t start) {
  size_t lo = 0, hi = w->n_buckets;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (w->buckets[mid].start < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

bk_win_bucket_t *bk_win_bucket_find_or_add(bk_win_t *w, brook_time_t start, int *created) {
  *created = 0;
  size_t lo = bk_win_bucket_lower(w, start);
  if (lo < w->n_buckets && w->buckets[lo].start == start) {
    w->last_bucket = lo;
    return &w->buckets[lo];
  }
  if (w->n_buckets == w->cap_buckets) {
    size_t cap = w->cap_buckets;
    if (bk_grow(w->alloc, (void **)&w->buckets, &cap, w->n_buckets + 1, sizeof(*w->buckets)))
      return NULL;
    for (size_t i = w->cap_buckets; i < cap; i++)
      bk_seg_init(&w->buckets[i].seg, w->alloc, w->acc_size);
    w->cap_buckets = cap;
  }
  /* The first spare (past the live buckets) rotates into place, keeping its memory. */
  bk_win_bucket_t b = w->buckets[w->n_buckets];
  memmove(w->buckets + lo + 1, w->buckets + lo, (w->n_buckets - lo) * sizeof(*w->buckets));
  b.start = start;
  w->buckets[lo] = b;
  w->n_buckets++;
  w->last_bucket = lo;
  *created = 1;
  return &w->buckets[lo];
}

static void reverse(bk_win_bucket_t *b, size_t from, size_t to) {
  while (from + 1 < to) {
    bk_win_bucket_t t = b[from];
    b[from++] = b[--to];
    b[to] = t;
  }
}

void bk_win_buckets_drop_before(bk_win_t *w, brook_time_t start) {
  size_t k = 0;
  while (k < w->n_buckets && w->buckets[k].start < start)
    k++;
  if (!k)
    return;
  /* Rotate the k dropped buckets, emptied, to just past the live ones (three reversals). */
  for (size_t i = 0; i < k; i++)
    bk_seg_reset(&w->buckets[i].seg);
  reverse(w->buckets, 0, k);
  reverse(w->buckets, k, w->n_buckets);
  reverse(w->buckets, 0, w->n_buckets);
  w->n_buckets -= k;
  w->last_bucket = w->last_bucket >= k ? w->last_bucket - k : 0;
}

size_t bk_win_buckets_memory(const bk_win_t *w) {
  size_t m = w->cap_buckets * sizeof(*w->buckets) + w->vslots * w->vstride;
  for (size_t i = 0; i < w->cap_buckets; i++)
    m += bk_seg_memory(&w->buckets[i].seg);
  return m;
}

void bk_win_buckets_free(bk_win_t *w) {
  for (size_t i = 0; i < w->cap_buckets; i++)
    bk_seg_free(&w->buckets[i].seg);
  bk_free(w->alloc, w->buckets);
  w->buckets = NULL;
  w->n_buckets = w->cap_buckets = w->last_bucket = 0;
}
