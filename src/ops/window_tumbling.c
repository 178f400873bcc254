/* Tumbling windows: one slice per window, [start, start + size) with start aligned to the
 * epoch. All keys' windows with the same start end together, so instead of a timer per key
 * and window, each start has a BUCKET: the store entries of the windows it holds, and ONE
 * event-time timer at end - 1 + grace. When it fires, the bucket is sorted by key (the
 * order timers would have fired in), every window is emitted and its state freed, straight
 * from the entry: no per-window heap operation and no second hash lookup. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "ops/window_common.h"
#include "state/store.h"

typedef struct bk_win_bucket {
  brook_time_t start;
  bk_entry_t **entries; /* slice entries (key || start) of windows with this start */
  size_t n, cap;
} bk_win_bucket_t;

void bk_win_buckets_free(bk_win_t *w) {
  for (size_t i = 0; i < w->cap_buckets; i++)
    bk_free(w->alloc, w->buckets[i].entries);
  bk_free(w->alloc, w->buckets);
  w->buckets = NULL;
  w->n_buckets = w->cap_buckets = 0;
}

/* The bucket for `start`, created in order (with its timer) if needed. NULL if out of
 * memory. Most records hit the bucket of the previous one. */
static bk_win_bucket_t *bucket_for(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start) {
  if (w->last_bucket < w->n_buckets && w->buckets[w->last_bucket].start == start)
    return &w->buckets[w->last_bucket];
  size_t lo = 0, hi = w->n_buckets;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (w->buckets[mid].start < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < w->n_buckets && w->buckets[lo].start == start) {
    w->last_bucket = lo;
    return &w->buckets[lo];
  }
  if (w->n_buckets == w->cap_buckets) {
    size_t cap = w->cap_buckets;
    if (bk_grow(w->alloc, (void **)&w->buckets, &cap, w->n_buckets + 1, sizeof(*w->buckets)))
      return NULL;
    memset(w->buckets + w->cap_buckets, 0, (cap - w->cap_buckets) * sizeof(*w->buckets));
    w->cap_buckets = cap;
  }
  if (brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + w->cfg->w.size), NULL, 0,
                      (uint64_t)start) < 0)
    return NULL;
  /* The spare bucket past the end keeps its entry array: rotate it into place. */
  bk_win_bucket_t spare = w->buckets[w->n_buckets];
  memmove(w->buckets + lo + 1, w->buckets + lo, (w->n_buckets - lo) * sizeof(*w->buckets));
  spare.start = start;
  spare.n = 0;
  w->buckets[lo] = spare;
  w->n_buckets++;
  w->last_bucket = lo;
  return &w->buckets[lo];
}

static brook_err_t tumbling_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_t *w = state;
  brook_time_t size = w->cfg->w.size;
  brook_time_t start = bk_win_floor(rec->timestamp, size);
  if (bk_win_closed(w, start + size, ctx->wm))
    return bk_win_late(ctx, w, rec);
  int created;
  void *acc;
  brook_err_t err = bk_win_slice_add(w, rec, start, &created, &acc);
  if (err < 0)
    return err;
  if (created) {
    bk_win_bucket_t *b = bucket_for(ctx, w, start);
    if (!b || bk_grow(w->alloc, (void **)&b->entries, &b->cap, b->n + 1, sizeof(*b->entries))) {
      bk_win_slice_remove(w, rec->key, rec->key_len, start);
      return BROOK_ERR_NOMEM;
    }
    b->entries[b->n++] = bk_entry_of_value(acc, rec->key_len + sizeof(brook_time_t));
  }
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return bk_win_emit(ctx, w, rec->key, rec->key_len, start, start + size, acc, 0);
  return BROOK_OK;
}

/* Bytewise key order (the user key, without the start suffix), shorter first. */
static int entry_key_cmp(const bk_entry_t *a, const bk_entry_t *b) {
  size_t la = a->klen - sizeof(brook_time_t), lb = b->klen - sizeof(brook_time_t);
  size_t n = la < lb ? la : lb;
  int c = n ? memcmp(bk_entry_key(a), bk_entry_key(b), n) : 0;
  if (c)
    return c;
  return la < lb ? -1 : la > lb;
}

/* A sort item: the key's first 8 bytes big-endian (zero padded) decide most comparisons. */
typedef struct sort_item {
  uint64_t prefix;
  bk_entry_t *e;
} sort_item_t;

static int item_less(const sort_item_t *a, const sort_item_t *b) {
  if (a->prefix != b->prefix)
    return a->prefix < b->prefix;
  return entry_key_cmp(a->e, b->e) < 0;
}

/* Quicksort (median of three, insertion sort below 16), inlined comparisons: the firing
 * path sorts every bucket, and qsort's indirect calls and memcmp dominated it. */
static void sort_items(sort_item_t *a, size_t n) {
  while (n > 16) {
    size_t m = n / 2;
    if (item_less(&a[m], &a[0])) {
      sort_item_t t = a[m];
      a[m] = a[0];
      a[0] = t;
    }
    if (item_less(&a[n - 1], &a[m])) {
      sort_item_t t = a[m];
      a[m] = a[n - 1];
      a[n - 1] = t;
      if (item_less(&a[m], &a[0])) {
        t = a[m];
        a[m] = a[0];
        a[0] = t;
      }
    }
    sort_item_t pivot = a[m];
    size_t i = 0, j = n - 1;
    for (;;) {
      while (item_less(&a[i], &pivot))
        i++;
      while (item_less(&pivot, &a[j]))
        j--;
      if (i >= j)
        break;
      sort_item_t t = a[i];
      a[i] = a[j];
      a[j] = t;
      i++;
      j--;
    }
    /* Recurse into the smaller part, loop on the larger: O(log n) stack. */
    size_t left = j + 1;
    if (left < n - left) {
      sort_items(a, left);
      a += left;
      n -= left;
    } else {
      sort_items(a + left, n - left);
      n = left;
    }
  }
  for (size_t i = 1; i < n; i++) {
    sort_item_t x = a[i];
    size_t j = i;
    while (j > 0 && item_less(&x, &a[j - 1])) {
      a[j] = a[j - 1];
      j--;
    }
    a[j] = x;
  }
}

static uint64_t key_prefix(const bk_entry_t *e) {
  const unsigned char *k = bk_entry_key(e);
  size_t len = e->klen - sizeof(brook_time_t);
  uint64_t p = 0;
  for (size_t i = 0; i < 8; i++)
    p = (p << 8) | (i < len ? k[i] : 0);
  return p;
}

static brook_err_t tumbling_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  bk_win_t *w = state;
  brook_time_t start = (brook_time_t)t->tag;
  size_t i = 0;
  while (i < w->n_buckets && w->buckets[i].start != start)
    i++; /* the oldest buckets fire first: this is nearly always i == 0 */
  if (i == w->n_buckets)
    return BROOK_OK;
  bk_win_bucket_t b = w->buckets[i];
  memmove(w->buckets + i, w->buckets + i + 1, (w->n_buckets - i - 1) * sizeof(*w->buckets));
  w->n_buckets--;
  w->buckets[w->n_buckets] = b; /* back to the spare slot: its array is reused */
  w->last_bucket = 0;
  sort_item_t *items = brook_ctx_alloc(ctx, b.n * sizeof(*items) + 1);
  if (!items)
    return BROOK_ERR_NOMEM;
  for (size_t k = 0; k < b.n; k++)
    items[k] = (sort_item_t){key_prefix(b.entries[k]), b.entries[k]};
  sort_items(items, b.n);
  brook_err_t err = BROOK_OK;
  for (size_t k = 0; k < b.n; k++) {
    bk_entry_t *e = items[k].e;
    const unsigned char *key = bk_entry_key(e);
    size_t klen = e->klen - sizeof(brook_time_t);
    if (err >= 0)
      err = bk_win_emit(ctx, w, key, klen, start, start + w->cfg->w.size, bk_entry_value(e), 1);
    (void)bk_store_remove(w->slices, key, e->klen, bk_hash_bytes(key, e->klen));
  }
  w->buckets[w->n_buckets].n = 0;
  return err;
}

const brook_operator_t bk_window_tumbling_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_tumbling",
    .open = bk_win_open,
    .process = tumbling_process,
    .close = bk_win_close,
    .on_timer = tumbling_on_timer,
};
