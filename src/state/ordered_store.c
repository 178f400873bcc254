/* The in-memory ordered store: a skip list of entries in slab memory, keys in unsigned byte
 * order, behind the public backend table (brook_store_backend_ordered()).
 *
 * A node is one slab block: [header][height next-pointers][key, padded to 16][value], so a
 * put allocates one block from the store's slab (no malloc per entry once the slab is warm)
 * and values are 16-byte aligned like the hash store's. Heights are drawn with p = 1/4 from
 * a per-store xorshift generator (deterministic: the same operations build the same list),
 * giving O(log n) expected seek, insert and delete.
 *
 * Iterators hold a node pointer and are only advanced while the list has not changed (the
 * store layer re-seeks them after a change, store_iter.c); they come from a per-store free
 * list, so scans allocate nothing once warm. In-place updates (fixed value_size) are tracked
 * in a dirty array, one mark per node, and reported at flush. Single-threaded, like every
 * store. */
#include <assert.h>
#include <string.h>

#include <brook/store_backend.h>

#include "core/alloc.h"
#include "state/slab.h"
#include "state/store.h"

#define MAX_HEIGHT 32
#define DIRTY_KEEP 64
#define TRIM_BYTES ((size_t)256 * 1024) /* an emptied store holding more gives it back */

typedef struct node {
  uint32_t klen, vlen;
  uint32_t ref;        /* the slab block's ref */
  uint32_t dirty;      /* 1 + index in the dirty array, or 0 */
  uint32_t height;     /* number of next pointers, 1..MAX_HEIGHT */
  uint32_t pad_;       /* keeps next[] 8-byte aligned on every ABI */
  struct node *next[]; /* height pointers, then the key at a 16-byte boundary */
} node_t;

typedef struct ord_iter ord_iter_t;

typedef struct ordered {
  node_t *head[MAX_HEIGHT]; /* the first node of each level */
  uint32_t height;          /* levels in use */
  size_t count;
  size_t value_size;
  uint64_t rng;
  bk_slab_t slab;
  node_t **dirty;
  size_t n_dirty, dirty_cap;
  ord_iter_t *free_iters; /* closed iterators, kept for reuse */
  size_t n_iters;         /* iterators allocated (open or free) */
  brook_allocator_t alloc;
} ordered_t;

struct ord_iter {
  ordered_t *o;
  node_t *at;
  ord_iter_t *next_free;
};

static size_t key_offset(uint32_t height) {
  return (sizeof(node_t) + height * sizeof(node_t *) + 15) & ~(size_t)15;
}

static unsigned char *node_key(const node_t *n) {
  return (unsigned char *)(uintptr_t)n + key_offset(n->height);
}

static unsigned char *node_value(const node_t *n) {
  return node_key(n) + (((size_t)n->klen + 15) & ~(size_t)15);
}

static size_t node_size(uint32_t height, size_t klen, size_t vlen) {
  return key_offset(height) + ((klen + 15) & ~(size_t)15) + vlen;
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (alen > blen) - (alen < blen);
}

static uint32_t random_height(ordered_t *o) {
  uint64_t x = o->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  o->rng = x;
  uint32_t h = 1;
  while (h < MAX_HEIGHT && (x & 3) == 0) { /* p = 1/4 per level */
    h++;
    x >>= 2;
  }
  return h;
}

/* The next pointer of level i after `n`, where n NULL is the head. */
static node_t **link_of(ordered_t *o, node_t *n, uint32_t i) {
  return n ? &n->next[i] : &o->head[i];
}

/* The first node with key >= `key`; prev[i] (if given) gets the last node of level i before
 * it (NULL: the head). */
static node_t *find_ge(ordered_t *o, const void *key, size_t klen, node_t **prev) {
  node_t *x = NULL; /* the head */
  for (uint32_t i = o->height; i-- > 0;) {
    node_t *n;
    while ((n = *link_of(o, x, i)) && key_cmp(node_key(n), n->klen, key, klen) < 0)
      x = n;
    if (prev)
      prev[i] = x;
  }
  return o->height ? *link_of(o, x, 0) : NULL;
}

static int node_is(const node_t *n, const void *key, size_t klen) {
  return n && n->klen == klen && (klen == 0 || memcmp(node_key(n), key, klen) == 0);
}

/* ---- the dirty set ---- */

static void dirty_remove(ordered_t *o, node_t *n) {
  size_t i = n->dirty - 1;
  assert(i < o->n_dirty && o->dirty[i] == n);
  node_t *last = o->dirty[--o->n_dirty];
  o->dirty[i] = last;
  last->dirty = (uint32_t)(i + 1);
  n->dirty = 0;
}

static void dirty_reset(ordered_t *o) {
  for (size_t i = 0; i < o->n_dirty; i++)
    o->dirty[i]->dirty = 0;
  o->n_dirty = 0;
  if (o->dirty_cap > DIRTY_KEEP && o->dirty_cap > 2 * o->count) {
    bk_free(&o->alloc, o->dirty);
    o->dirty = NULL;
    o->dirty_cap = 0;
  }
}

static void node_free(ordered_t *o, node_t *n) {
  if (n->dirty)
    dirty_remove(o, n);
  bk_slab_free(&o->slab, n, n->ref);
}

/* ---- the table's functions ---- */

static brook_err_t ord_open(void **state, brook_store_t *store, const char *name,
                            const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                            void *opaque) {
  (void)name;
  (void)opaque;
  ordered_t *o = bk_malloc(alloc, sizeof(*o));
  if (!o) {
    brook_store_set_error(store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  memset(o, 0, sizeof(*o));
  o->alloc = *alloc;
  o->value_size = opts->value_size;
  o->rng = 0x9e3779b97f4a7c15ULL;
  bk_slab_init(&o->slab, &o->alloc);
  *state = o;
  return BROOK_OK;
}

static void ord_close(void *state) {
  ordered_t *o = state;
  while (o->free_iters) {
    ord_iter_t *it = o->free_iters;
    o->free_iters = it->next_free;
    bk_free(&o->alloc, it);
  }
  bk_slab_destroy(&o->slab);
  bk_free(&o->alloc, o->dirty);
  brook_allocator_t a = o->alloc;
  bk_free(&a, o);
}

static brook_err_t ord_get(void *state, const void *key, size_t klen, const void **value,
                           size_t *vlen) {
  node_t *n = find_ge(state, key, klen, NULL);
  if (!node_is(n, key, klen))
    return BROOK_ERR_NOT_FOUND;
  *value = node_value(n);
  *vlen = n->vlen;
  return BROOK_OK;
}

/* A new node of `height` with copies of key and value (value may be NULL: zeroed). */
static node_t *node_new(ordered_t *o, uint32_t height, const void *key, size_t klen,
                        const void *value, size_t vlen) {
  uint32_t ref;
  node_t *n = bk_slab_alloc(&o->slab, node_size(height, klen, vlen), &ref);
  if (!n)
    return NULL;
  n->klen = (uint32_t)klen;
  n->vlen = (uint32_t)vlen;
  n->ref = ref;
  n->dirty = 0;
  n->height = height;
  n->pad_ = 0;
  if (klen)
    memcpy(node_key(n), key, klen);
  if (value && vlen)
    memcpy(node_value(n), value, vlen);
  else if (vlen)
    memset(node_value(n), 0, vlen);
  return n;
}

/* Links new node n after prev[] (levels above the list's height start at the head). */
static void node_link(ordered_t *o, node_t *n, node_t **prev) {
  for (uint32_t i = o->height; i < n->height; i++)
    prev[i] = NULL;
  if (n->height > o->height)
    o->height = n->height;
  for (uint32_t i = 0; i < n->height; i++) {
    node_t **l = link_of(o, prev[i], i);
    n->next[i] = *l;
    *l = n;
  }
  o->count++;
}

static brook_err_t insert(ordered_t *o, const void *key, size_t klen, const void *value,
                          size_t vlen, node_t **out) {
  node_t *prev[MAX_HEIGHT];
  node_t *at = find_ge(o, key, klen, prev);
  if (node_is(at, key, klen)) {
    size_t old = node_size(at->height, at->klen, at->vlen);
    size_t need = node_size(at->height, klen, vlen);
    if (bk_slab_block_size(old) == bk_slab_block_size(need)) {
      if (vlen)
        memmove(node_value(at), value, vlen); /* value may be a view of this very value */
      at->vlen = (uint32_t)vlen;
      if (at->dirty)
        dirty_remove(o, at);
      *out = at;
      return BROOK_OK;
    }
    /* Build the replacement before touching the old node: NOMEM leaves it, and key and
     * value may point into it. Same height, so prev[] links it in place. */
    node_t *n = node_new(o, at->height, key, klen, value, vlen);
    if (!n)
      return BROOK_ERR_NOMEM;
    for (uint32_t i = 0; i < at->height; i++) {
      n->next[i] = at->next[i];
      *link_of(o, prev[i], i) = n;
    }
    node_free(o, at);
    *out = n;
    return BROOK_OK;
  }
  node_t *n = node_new(o, random_height(o), key, klen, value, vlen);
  if (!n)
    return BROOK_ERR_NOMEM;
  node_link(o, n, prev);
  *out = n;
  return BROOK_OK;
}

static brook_err_t ord_put(void *state, const void *key, size_t klen, const void *value,
                           size_t vlen) {
  node_t *n;
  return insert(state, key, klen, value, vlen, &n);
}

static brook_err_t ord_del(void *state, const void *key, size_t klen) {
  ordered_t *o = state;
  node_t *prev[MAX_HEIGHT];
  node_t *n = find_ge(o, key, klen, prev);
  if (!node_is(n, key, klen))
    return BROOK_ERR_NOT_FOUND;
  for (uint32_t i = 0; i < n->height; i++)
    *link_of(o, prev[i], i) = n->next[i];
  while (o->height && !o->head[o->height - 1])
    o->height--;
  o->count--;
  node_free(o, n);
  if (!o->count && bk_slab_bytes(&o->slab) > TRIM_BYTES)
    bk_slab_trim(&o->slab); /* the end of a burst: give the chunks back */
  return BROOK_OK;
}

static brook_err_t ord_iter_open(void *state, void **iter) {
  ordered_t *o = state;
  ord_iter_t *it = o->free_iters;
  if (it) {
    o->free_iters = it->next_free;
  } else {
    if (!(it = bk_malloc(&o->alloc, sizeof(*it))))
      return BROOK_ERR_NOMEM;
    o->n_iters++;
  }
  it->o = o;
  it->at = NULL;
  it->next_free = NULL;
  *iter = it;
  return BROOK_OK;
}

static brook_err_t iter_fill(ord_iter_t *it, brook_store_entry_t *e) {
  node_t *n = it->at;
  if (!n)
    return BROOK_ERR_NOT_FOUND;
  e->key = node_key(n);
  e->key_len = n->klen;
  e->value = node_value(n);
  e->value_len = n->vlen;
  return BROOK_OK;
}

static brook_err_t ord_iter_seek(void *iter, const void *key, size_t klen, brook_store_entry_t *e) {
  ord_iter_t *it = iter;
  it->at = key ? find_ge(it->o, key, klen, NULL) : it->o->head[0];
  return iter_fill(it, e);
}

static brook_err_t ord_iter_next(void *iter, brook_store_entry_t *e) {
  ord_iter_t *it = iter;
  if (it->at)
    it->at = it->at->next[0];
  return iter_fill(it, e);
}

static void ord_iter_close(void *iter) {
  ord_iter_t *it = iter;
  it->next_free = it->o->free_iters;
  it->o->free_iters = it;
}

static brook_err_t ord_clear(void *state) {
  ordered_t *o = state;
  node_t *n = o->head[0];
  while (n) {
    node_t *next = n->next[0];
    n->dirty = 0; /* the dirty set goes as a whole below */
    bk_slab_free(&o->slab, n, n->ref);
    n = next;
  }
  memset(o->head, 0, sizeof(o->head));
  o->height = 0;
  o->count = 0;
  o->n_dirty = 0;
  dirty_reset(o);
  bk_slab_trim(&o->slab);
  return BROOK_OK;
}

static size_t ord_count(void *state) { return ((ordered_t *)state)->count; }

static size_t ord_memory(void *state) {
  ordered_t *o = state;
  return sizeof(*o) + bk_slab_bytes(&o->slab) + o->dirty_cap * sizeof(node_t *) +
         o->n_iters * sizeof(ord_iter_t);
}

static brook_err_t ord_update(void *state, const void *key, size_t klen, void **value,
                              int *created) {
  ordered_t *o = state;
  node_t *prev[MAX_HEIGHT];
  node_t *n = find_ge(o, key, klen, prev);
  *created = 0;
  if (!node_is(n, key, klen)) {
    if (!(n = node_new(o, random_height(o), key, klen, NULL, o->value_size)))
      return BROOK_ERR_NOMEM;
    node_link(o, n, prev);
    *created = 1;
  }
  if (!n->dirty) {
    if (o->n_dirty == o->dirty_cap) {
      void *arr = o->dirty;
      if (o->n_dirty >= UINT32_MAX - 1 ||
          bk_grow(&o->alloc, &arr, &o->dirty_cap, o->n_dirty + 1, sizeof(node_t *))) {
        if (*created) /* undo: NOMEM leaves the store unchanged */
          (void)ord_del(o, key, klen);
        *created = 0;
        return BROOK_ERR_NOMEM;
      }
      o->dirty = arr;
    }
    o->dirty[o->n_dirty++] = n;
    n->dirty = (uint32_t)o->n_dirty;
  }
  *value = node_value(n);
  return BROOK_OK;
}

/* Reports in the order keys were first updated; each node is unmarked before its report, so
 * the set stays consistent whatever the listener does. */
static brook_err_t ord_flush(void *state, brook_store_listener_fn fn, void *fn_opaque) {
  ordered_t *o = state;
  brook_err_t first = BROOK_OK;
  for (size_t i = 0; i < o->n_dirty; i++) {
    node_t *n = o->dirty[i];
    n->dirty = 0;
    if (!fn)
      continue;
    brook_err_t err = fn(node_key(n), n->klen, node_value(n), n->vlen, fn_opaque);
    if (err && first == BROOK_OK)
      first = err;
  }
  o->n_dirty = 0;
  dirty_reset(o);
  return first;
}

static int ord_has_pending(void *state) { return ((ordered_t *)state)->n_dirty > 0; }

static const brook_store_backend_t ordered_backend = {
    .version = BROOK_STORE_BACKEND_VERSION,
    .caps = BROOK_STORE_CAP_ORDERED | BROOK_STORE_CAP_UPDATE,
    .name = "ordered",
    .open = ord_open,
    .close = ord_close,
    .get = ord_get,
    .put = ord_put,
    .del = ord_del,
    .iter_open = ord_iter_open,
    .iter_seek = ord_iter_seek,
    .iter_next = ord_iter_next,
    .iter_close = ord_iter_close,
    .clear = ord_clear,
    .count = ord_count,
    .memory = ord_memory,
    .update = ord_update,
    .flush = ord_flush,
    .has_pending = ord_has_pending,
};

const brook_store_backend_t *brook_store_backend_ordered(void) { return &ordered_backend; }
