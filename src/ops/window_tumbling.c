/* Tumbling windows: one slice per window, [start, start + size) with start aligned to the
 * epoch. All keys' windows with the same start end together, so each start has a BUCKET: a
 * segment store of its own (user key -> accumulator) and ONE event-time timer at
 * end - 1 + grace. When it fires, the segment's entries are sorted by key (the order
 * per-key timers would fire in), every window is emitted from its entry, and the segment is
 * emptied at once and reused for a later start (like Kafka Streams' segmented window
 * stores): no per-window timer, no composite key, no per-window delete. */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/key_order.h"
#include "ops/window_common.h"
#include "state/store.h"

typedef struct bk_win_bucket {
  brook_time_t start;
  brook_store_t *seg; /* the windows of this start: user key -> accumulator; kept for reuse */
} bk_win_bucket_t;

void bk_win_buckets_free(bk_win_t *w) {
  for (size_t i = 0; i < w->cap_buckets; i++)
    bk_store_destroy(w->buckets[i].seg);
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
  /* The spare bucket past the end keeps its (empty) segment: rotate it into place. */
  bk_win_bucket_t *spare = &w->buckets[w->n_buckets];
  if (!spare->seg) {
    brook_store_opts_t so;
    brook_store_opts_init(&so);
    so.value_size = w->acc_size;
    if (bk_store_create(w->alloc, &so, NULL, &spare->seg) < 0)
      return NULL;
  }
  if (brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + w->cfg->w.size), NULL, 0,
                      (uint64_t)start) < 0)
    return NULL;
  bk_win_bucket_t b = *spare;
  memmove(w->buckets + lo + 1, w->buckets + lo, (w->n_buckets - lo) * sizeof(*w->buckets));
  b.start = start;
  w->buckets[lo] = b;
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
  bk_win_bucket_t *b = bucket_for(ctx, w, start);
  if (!b)
    return BROOK_ERR_NOMEM;
  const brook_aggregator_t *agg = &w->cfg->agg;
  uint64_t h = bk_hash_bytes(rec->key, rec->key_len);
  int created;
  void *acc;
  brook_err_t err = bk_store_upsert(b->seg, rec->key, rec->key_len, h, &acc, &created);
  if (err < 0)
    return err;
  if (created && agg->init)
    agg->init(acc, agg);
  if ((err = agg->add(acc, rec, agg)) < 0) {
    if (created) /* no window for a refused record */
      (void)bk_store_remove(b->seg, rec->key, rec->key_len, h);
    return err;
  }
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return bk_win_emit(ctx, w, rec->key, rec->key_len, start, start + size, acc, 0);
  return BROOK_OK;
}

/* A sort item: the key's first 8 bytes big-endian (zero padded) decide most comparisons. */
typedef struct sort_item {
  uint64_t prefix;
  bk_entry_t *e;
} sort_item_t;

static int item_less(const sort_item_t *a, const sort_item_t *b) {
  if (a->prefix != b->prefix)
    return a->prefix < b->prefix;
  return bk_key_compare(bk_entry_key(a->e), a->e->klen, bk_entry_key(b->e), b->e->klen) < 0;
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
  w->buckets[w->n_buckets] = b; /* back to the spare slot: its segment is reused */
  w->last_bucket = 0;
  size_t n = brook_store_count(b.seg);
  sort_item_t *items = brook_ctx_alloc(ctx, n * sizeof(*items) + 1);
  if (!items)
    return BROOK_ERR_NOMEM;
  size_t cursor = 0, k = 0;
  const void *key, *val;
  size_t klen, vlen;
  while (k < n && brook_store_next(b.seg, &cursor, &key, &klen, &val, &vlen)) {
    bk_entry_t *e = bk_entry_of_value((void *)(uintptr_t)val, klen);
    items[k++] = (sort_item_t){bk_key_prefix(bk_entry_key(e), e->klen), e};
  }
  sort_items(items, k);
  brook_err_t err = BROOK_OK;
  for (size_t j = 0; j < k && err >= 0; j++) {
    bk_entry_t *e = items[j].e;
    err = bk_win_emit(ctx, w, bk_entry_key(e), e->klen, start, start + w->cfg->w.size,
                      bk_entry_value(e), 1);
  }
  bk_store_keep_capacity(b.seg); /* the next start will hold about as many keys */
  bk_store_reset(b.seg, 1);      /* the whole segment at once; a listener sees the deletions */
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
