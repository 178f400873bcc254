/* The in-memory ordered store: a B+tree over entries in slab memory, keys in unsigned byte
 * order, behind the public backend table (brook_store_backend_ordered()).
 *
 * Entries are the hash store's (store.h: [bk_entry_t][key, padded to 16][value]), one slab
 * block each, so values are 16-byte aligned and a put asks the allocator for nothing once the
 * slab is warm. Nodes are slab blocks too (one per up to CAP entries). Each node keeps, next
 * to every entry or separator pointer, the key's first 8 bytes as a big-endian integer: a
 * search compares integers inside the node and touches an entry only on a tie, so a lookup
 * costs about one cache miss per level (3 to 4 levels for a million keys) instead of a skip
 * list's dozens.
 *
 * Invariants (btree_check): an inner node with n children has separators sep[1..n-1]: sep[i]
 * is the entry with the smallest key of child i's subtree (a pointer, kept exact: deleting a
 * subtree's smallest key updates the one ancestor separator that points at it). Keys strictly
 * increase along the leaves, which are linked left to right for iteration. Every node but the
 * root has at least one entry or child; a leaf whose count falls below CAP/4 merges with a
 * sibling that has room, so a store under churn keeps its node count near count / (CAP/4).
 *
 * Iterators hold a leaf and an index, valid while the tree does not change (the store layer
 * re-seeks them after a change, store_iter.c); they come from a per-store free list. In-place
 * updates (fixed value_size) are tracked in a dirty array, reported at flush. Single-threaded,
 * like every store. */
#include <assert.h>
#include <string.h>

#include <brook/store_backend.h>

#include "core/alloc.h"
#include "state/slab.h"
#include "state/store.h"

#define CAP 40 /* entries per leaf, children per inner node: a node is one 1 KiB block */
#define MIN_FILL (CAP / 4)
#define MAX_DEPTH 32                    /* far beyond any reachable height */
#define TRIM_BYTES ((size_t)256 * 1024) /* an emptied store holding more gives it back */

typedef struct bnode {
  uint16_t n;               /* entries (leaf) or children (inner) */
  uint16_t leaf;            /* 1 for a leaf */
  uint32_t ref;             /* the slab block's ref */
  struct bnode *next;       /* leaves: the leaf to the right, or NULL */
  uint64_t pfx[CAP];        /* big-endian first 8 key bytes of ent[i] (inner: of sep[i]) */
  bk_entry_t *ent[CAP];     /* leaf: the entries; inner: separators, ent[0] unused */
  struct bnode *child[CAP]; /* inner only */
} bnode_t;

typedef struct ord_iter ord_iter_t;

typedef struct ordered {
  bnode_t *root;  /* NULL when empty */
  uint32_t depth; /* levels: 1 when the root is a leaf */
  size_t count;
  size_t nodes;
  size_t value_size;
  bk_slab_t slab;
  bk_dirty_t dirty;       /* entries updated in place since the last flush */
  ord_iter_t *free_iters; /* closed iterators, kept for reuse */
  size_t n_iters;
  brook_allocator_t alloc;
} ordered_t;

struct ord_iter {
  ordered_t *o;
  bnode_t *leaf;
  size_t i;
  ord_iter_t *next_free;
};

/* A root-to-leaf path: node[d] at depth d, at[d] the child index taken from node[d]. */
typedef struct path {
  bnode_t *node[MAX_DEPTH];
  uint32_t at[MAX_DEPTH];
} path_t;

/* ---- keys ---- */

static uint64_t key_prefix(const void *key, size_t klen) {
  unsigned char b[8] = {0};
  if (klen)
    memcpy(b, key, klen < 8 ? klen : 8);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | b[i];
  return v;
}

/* The order of `key` (with prefix kp) against entry i of node x: <0, 0, >0. */
static inline int cmp_at(const void *key, size_t klen, uint64_t kp, const bnode_t *x, size_t i) {
  if (kp != x->pfx[i])
    return kp < x->pfx[i] ? -1 : 1;
  const bk_entry_t *e = x->ent[i];
  return bk_key_cmp(key, klen, bk_entry_key(e), e->klen);
}

/* Leaf: the first index whose entry is >= key. */
static size_t leaf_lb(const bnode_t *x, const void *key, size_t klen, uint64_t kp) {
  size_t lo = 0, hi = x->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cmp_at(key, klen, kp, x, mid) > 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Inner: the child whose subtree holds key (the last i with sep[i] <= key, or 0). */
static size_t inner_pick(const bnode_t *x, const void *key, size_t klen, uint64_t kp) {
  size_t lo = 1, hi = x->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cmp_at(key, klen, kp, x, mid) >= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo - 1;
}

/* Descends to the leaf for key, recording the path; returns the leaf (NULL when empty). */
static bnode_t *descend(const ordered_t *o, const void *key, size_t klen, uint64_t kp, path_t *p) {
  bnode_t *x = o->root;
  for (uint32_t d = 0; x && d + 1 < o->depth; d++) {
    size_t c = inner_pick(x, key, klen, kp);
    if (p) {
      p->node[d] = x;
      p->at[d] = (uint32_t)c;
    }
    x = x->child[c];
  }
  if (p && x)
    p->node[o->depth - 1] = x;
  return x;
}

/* ---- nodes and entries ---- */

static bnode_t *node_new(ordered_t *o, int leaf) {
  uint32_t ref;
  bnode_t *x = bk_slab_alloc(&o->slab, sizeof(bnode_t), &ref);
  if (!x)
    return NULL;
  x->n = 0;
  x->leaf = (uint16_t)leaf;
  x->ref = ref;
  x->next = NULL;
  o->nodes++;
  return x;
}

static void node_free(ordered_t *o, bnode_t *x) {
  o->nodes--;
  bk_slab_free(&o->slab, x, x->ref);
}

/* A new entry with copies of key and value (value NULL: zeroed). */
static bk_entry_t *entry_new(ordered_t *o, const void *key, size_t klen, const void *value,
                             size_t vlen) {
  bk_entry_t *e = bk_entry_alloc(&o->slab, key, klen, vlen);
  if (!e)
    return NULL;
  if (value && vlen)
    memcpy(bk_entry_value(e), value, vlen);
  else if (vlen)
    memset(bk_entry_value(e), 0, vlen);
  return e;
}

static void entry_free(ordered_t *o, bk_entry_t *e) {
  if (e->dirty)
    bk_dirty_remove(&o->dirty, e);
  bk_slab_free(&o->slab, e, e->ref);
}

/* Slot i of x gets entry e (its prefix too). */
static void set_ent(bnode_t *x, size_t i, bk_entry_t *e) {
  x->ent[i] = e;
  x->pfx[i] = key_prefix(bk_entry_key(e), e->klen);
}

/* The smallest entry of the subtree at node[d] changed to e: fix the one separator above
 * that names it (the nearest ancestor reached through a child index > 0). */
static void fix_min(path_t *p, uint32_t d, bk_entry_t *e) {
  while (d-- > 0) {
    if (p->at[d] > 0) {
      set_ent(p->node[d], p->at[d], e);
      return;
    }
  }
}

/* ---- insertion ---- */

/* Inserts (sep, child) at index i of inner node x, which has room. */
static void inner_insert(bnode_t *x, size_t i, bk_entry_t *sep, bnode_t *child) {
  memmove(&x->pfx[i + 1], &x->pfx[i], (x->n - i) * sizeof(x->pfx[0]));
  memmove(&x->ent[i + 1], &x->ent[i], (x->n - i) * sizeof(x->ent[0]));
  memmove(&x->child[i + 1], &x->child[i], (x->n - i) * sizeof(x->child[0]));
  set_ent(x, i, sep);
  x->child[i] = child;
  x->n++;
}

/* Inserts new entry e at index i of the leaf at the end of path p, splitting upwards as
 * needed. BROOK_OK or BROOK_ERR_NOMEM (the tree unchanged: every node a split could need is
 * allocated before anything moves). */
static brook_err_t leaf_insert(ordered_t *o, path_t *p, size_t i, bk_entry_t *e) {
  uint32_t d = o->depth - 1;
  /* Levels that are full along the path split; count them and reserve the nodes first. */
  uint32_t full = 0;
  while (full <= d && p->node[d - full]->n == CAP)
    full++;
  bnode_t *spare[MAX_DEPTH + 1];
  uint32_t need = full + (full == d + 1); /* a full root needs a new root too */
  for (uint32_t k = 0; k < need; k++) {
    if (!(spare[k] = node_new(o, 0))) {
      while (k-- > 0)
        node_free(o, spare[k]);
      return BROOK_ERR_NOMEM;
    }
  }
  uint32_t used = 0;
  /* Insert into the leaf, splitting it first if full. */
  bnode_t *x = p->node[d];
  bk_entry_t *sep = NULL;
  bnode_t *right = NULL;
  if (x->n == CAP) {
    right = spare[used++];
    right->leaf = 1;
    size_t half = CAP / 2;
    memcpy(right->pfx, &x->pfx[half], (CAP - half) * sizeof(x->pfx[0]));
    memcpy(right->ent, &x->ent[half], (CAP - half) * sizeof(x->ent[0]));
    right->n = CAP - half;
    x->n = (uint16_t)half;
    right->next = x->next;
    x->next = right;
    if (i > half) {
      x = right;
      i -= half;
    }
  }
  memmove(&x->pfx[i + 1], &x->pfx[i], (x->n - i) * sizeof(x->pfx[0]));
  memmove(&x->ent[i + 1], &x->ent[i], (x->n - i) * sizeof(x->ent[0]));
  set_ent(x, i, e);
  x->n++;
  o->count++;
  /* Push the split up. */
  while (right) {
    sep = right->ent[0];
    if (d == 0) { /* a new root */
      bnode_t *root = spare[used++];
      root->leaf = 0;
      root->n = 2;
      root->child[0] = p->node[0];
      root->child[1] = right;
      set_ent(root, 1, sep);
      root->ent[0] = NULL;
      root->pfx[0] = 0;
      o->root = root;
      o->depth++;
      break;
    }
    d--;
    bnode_t *parent = p->node[d];
    size_t at = p->at[d] + 1;
    if (parent->n < CAP) {
      inner_insert(parent, at, sep, right);
      right = NULL;
      break;
    }
    bnode_t *r = spare[used++];
    r->leaf = 0;
    size_t half = CAP / 2;
    memcpy(r->pfx, &parent->pfx[half], (CAP - half) * sizeof(parent->pfx[0]));
    memcpy(r->ent, &parent->ent[half], (CAP - half) * sizeof(parent->ent[0]));
    memcpy(r->child, &parent->child[half], (CAP - half) * sizeof(parent->child[0]));
    r->n = CAP - half;
    parent->n = (uint16_t)half;
    if (at > half)
      inner_insert(r, at - half, sep, right);
    else
      inner_insert(parent, at, sep, right);
    right = r; /* r->ent[0] is the smallest key of its subtree: the separator to push */
  }
  while (used < need)
    node_free(o, spare[used++]);
  return BROOK_OK;
}

/* ---- deletion ---- */

/* Removes slot i (entry or child) from node x. */
static void node_remove(bnode_t *x, size_t i) {
  memmove(&x->pfx[i], &x->pfx[i + 1], (x->n - i - 1) * sizeof(x->pfx[0]));
  memmove(&x->ent[i], &x->ent[i + 1], (x->n - i - 1) * sizeof(x->ent[0]));
  if (!x->leaf)
    memmove(&x->child[i], &x->child[i + 1], (x->n - i - 1) * sizeof(x->child[0]));
  x->n--;
}

/* The leaf before `leaf` in the leaf chain (for unlinking): the rightmost leaf of the
 * subtree left of it, found through the path. NULL if it is the first leaf. */
static bnode_t *prev_leaf(const ordered_t *o, const path_t *p) {
  uint32_t d = o->depth - 1;
  while (d-- > 0) {
    if (p->at[d] > 0) {
      bnode_t *x = p->node[d]->child[p->at[d] - 1];
      while (!x->leaf)
        x = x->child[x->n - 1];
      return x;
    }
  }
  return NULL;
}

/* Node node[d] of the path became empty: unlink and free it, removing it from its parent
 * (recursively), and fix the separators of a subtree that lost its smallest key. */
static void remove_empty(ordered_t *o, path_t *p, uint32_t d) {
  bnode_t *x = p->node[d];
  if (x->leaf) {
    bnode_t *prev = prev_leaf(o, p);
    if (prev)
      prev->next = x->next;
  }
  node_free(o, x);
  if (d == 0) {
    o->root = NULL;
    o->depth = 0;
    return;
  }
  bnode_t *parent = p->node[d - 1];
  uint32_t at = p->at[d - 1];
  node_remove(parent, at);
  if (parent->n == 0) {
    remove_empty(o, p, d - 1);
    return;
  }
  if (at == 0) { /* the parent's first child is another one now: its smallest key changed */
    bk_entry_t *m = parent->ent[0];
    parent->ent[0] = NULL;
    parent->pfx[0] = 0;
    fix_min(p, d - 1, m);
  }
}

/* The root is an inner node with one child: that child becomes the root. */
static void collapse_root(ordered_t *o) {
  while (o->root && !o->root->leaf && o->root->n == 1) {
    bnode_t *old = o->root;
    o->root = old->child[0];
    o->depth--;
    node_free(o, old);
  }
}

/* Leaf node[d] fell below MIN_FILL: merge it into a sibling under the same parent when the
 * two fit in one leaf (the right one empties into the left and is removed). */
static void leaf_merge(ordered_t *o, path_t *p, uint32_t d) {
  if (d == 0)
    return;
  bnode_t *parent = p->node[d - 1];
  uint32_t at = p->at[d - 1];
  bnode_t *x = p->node[d], *left, *right;
  uint32_t right_at;
  if (at + 1 < parent->n && x->n + parent->child[at + 1]->n <= CAP) {
    left = x;
    right = parent->child[at + 1];
    right_at = at + 1;
  } else if (at > 0 && x->n + parent->child[at - 1]->n <= CAP) {
    left = parent->child[at - 1];
    right = x;
    right_at = at;
  } else {
    return;
  }
  memcpy(&left->pfx[left->n], right->pfx, right->n * sizeof(right->pfx[0]));
  memcpy(&left->ent[left->n], right->ent, right->n * sizeof(right->ent[0]));
  left->n = (uint16_t)(left->n + right->n);
  right->n = 0;
  /* Remove the now empty right leaf through a path that reaches it. */
  p->at[d - 1] = right_at;
  p->node[d] = right;
  remove_empty(o, p, d);
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
  bk_slab_destroy(&o->slab); /* every node and entry */
  bk_dirty_fini(&o->dirty, &o->alloc);
  brook_allocator_t a = o->alloc;
  bk_free(&a, o);
}

/* The entry of key in its leaf, or NULL; *leaf and *i say where it is or would go. */
static bk_entry_t *find(const ordered_t *o, const void *key, size_t klen, path_t *p, bnode_t **leaf,
                        size_t *i) {
  uint64_t kp = key_prefix(key, klen);
  bnode_t *x = descend(o, key, klen, kp, p);
  *leaf = x;
  *i = 0;
  if (!x)
    return NULL;
  size_t at = leaf_lb(x, key, klen, kp);
  *i = at;
  return at < x->n && cmp_at(key, klen, kp, x, at) == 0 ? x->ent[at] : NULL;
}

static brook_err_t ord_get(void *state, const void *key, size_t klen, const void **value,
                           size_t *vlen) {
  bnode_t *leaf;
  size_t i;
  bk_entry_t *e = find(state, key, klen, NULL, &leaf, &i);
  if (!e)
    return BROOK_ERR_NOT_FOUND;
  *value = bk_entry_value(e);
  *vlen = e->vlen;
  return BROOK_OK;
}

/* Inserts a new key (value NULL: zeroed) into an empty tree or at leaf position i. */
static brook_err_t insert_new(ordered_t *o, path_t *p, size_t i, const void *key, size_t klen,
                              const void *value, size_t vlen, bk_entry_t **out) {
  bk_entry_t *e = entry_new(o, key, klen, value, vlen);
  if (!e)
    return BROOK_ERR_NOMEM;
  if (!o->root) {
    bnode_t *x = node_new(o, 1);
    if (!x) {
      bk_slab_free(&o->slab, e, e->ref);
      return BROOK_ERR_NOMEM;
    }
    set_ent(x, 0, e);
    x->n = 1;
    o->root = x;
    o->depth = 1;
    o->count = 1;
  } else if (leaf_insert(o, p, i, e)) {
    bk_slab_free(&o->slab, e, e->ref);
    return BROOK_ERR_NOMEM;
  }
  *out = e;
  return BROOK_OK;
}

static brook_err_t ord_put(void *state, const void *key, size_t klen, const void *value,
                           size_t vlen) {
  ordered_t *o = state;
  path_t p;
  bnode_t *leaf;
  size_t i;
  bk_entry_t *e = find(o, key, klen, &p, &leaf, &i), *n;
  if (!e)
    return insert_new(o, &p, i, key, klen, value, vlen, &n);
  if (bk_slab_block_size(bk_entry_size(e->klen, e->vlen)) ==
      bk_slab_block_size(bk_entry_size(klen, vlen))) {
    if (vlen)
      memmove(bk_entry_value(e), value, vlen); /* value may be a view of this very value */
    e->vlen = (uint32_t)vlen;
    if (e->dirty)
      bk_dirty_remove(&o->dirty, e);
    return BROOK_OK;
  }
  /* Another block size: build the replacement before freeing (NOMEM keeps the old value, and
   * key and value may point into it). */
  if (!(n = entry_new(o, key, klen, value, vlen)))
    return BROOK_ERR_NOMEM;
  set_ent(leaf, i, n);
  if (i == 0)
    fix_min(&p, o->depth - 1, n); /* a separator may name the old entry */
  entry_free(o, e);
  return BROOK_OK;
}

static brook_err_t ord_del(void *state, const void *key, size_t klen) {
  ordered_t *o = state;
  path_t p;
  bnode_t *leaf;
  size_t i;
  bk_entry_t *e = find(o, key, klen, &p, &leaf, &i);
  if (!e)
    return BROOK_ERR_NOT_FOUND;
  uint32_t d = o->depth - 1;
  node_remove(leaf, i);
  o->count--;
  if (leaf->n == 0) {
    remove_empty(o, &p, d);
  } else {
    if (i == 0)
      fix_min(&p, d, leaf->ent[0]);
    if (leaf->n < MIN_FILL)
      leaf_merge(o, &p, d);
  }
  collapse_root(o);
  entry_free(o, e); /* after the separators stopped naming it */
  if (!o->count && bk_slab_bytes(&o->slab) > TRIM_BYTES)
    bk_slab_trim(&o->slab); /* emptied after a burst: give the chunks back */
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
  it->leaf = NULL;
  it->i = 0;
  it->next_free = NULL;
  *iter = it;
  return BROOK_OK;
}

static brook_err_t iter_fill(ord_iter_t *it, brook_store_entry_t *out) {
  while (it->leaf && it->i >= it->leaf->n) {
    it->leaf = it->leaf->next;
    it->i = 0;
  }
  if (!it->leaf)
    return BROOK_ERR_NOT_FOUND;
  const bk_entry_t *e = it->leaf->ent[it->i];
  out->key = bk_entry_key(e);
  out->key_len = e->klen;
  out->value = bk_entry_value(e);
  out->value_len = e->vlen;
  return BROOK_OK;
}

static brook_err_t ord_iter_seek(void *iter, const void *key, size_t klen,
                                 brook_store_entry_t *out) {
  ord_iter_t *it = iter;
  ordered_t *o = it->o;
  if (!key) {
    bnode_t *x = o->root;
    while (x && !x->leaf)
      x = x->child[0];
    it->leaf = x;
    it->i = 0;
  } else {
    (void)find(o, key, klen, NULL, &it->leaf, &it->i);
  }
  return iter_fill(it, out);
}

static brook_err_t ord_iter_next(void *iter, brook_store_entry_t *out) {
  ord_iter_t *it = iter;
  if (it->leaf)
    it->i++;
  return iter_fill(it, out);
}

static void ord_iter_close(void *iter) {
  ord_iter_t *it = iter;
  it->next_free = it->o->free_iters;
  it->o->free_iters = it;
}

static void free_subtree(ordered_t *o, bnode_t *x) {
  if (x->leaf) {
    for (size_t i = 0; i < x->n; i++)
      bk_slab_free(&o->slab, x->ent[i], x->ent[i]->ref);
  } else {
    for (size_t i = 0; i < x->n; i++)
      free_subtree(o, x->child[i]);
  }
  node_free(o, x);
}

static brook_err_t ord_clear(void *state) {
  ordered_t *o = state;
  o->dirty.n = 0; /* every entry goes: no need to unmark them */
  if (o->root)
    free_subtree(o, o->root);
  o->root = NULL;
  o->depth = 0;
  o->count = 0;
  bk_dirty_reset(&o->dirty, &o->alloc, 0);
  bk_slab_trim(&o->slab);
  return BROOK_OK;
}

static size_t ord_count(void *state) { return ((ordered_t *)state)->count; }

static size_t ord_memory(void *state) {
  ordered_t *o = state;
  return sizeof(*o) + bk_slab_bytes(&o->slab) + bk_dirty_bytes(&o->dirty) +
         o->n_iters * sizeof(ord_iter_t);
}

static brook_err_t ord_update(void *state, const void *key, size_t klen, void **value,
                              int *created) {
  ordered_t *o = state;
  path_t p;
  bnode_t *leaf;
  size_t i;
  *created = 0;
  if (bk_dirty_reserve(&o->dirty, &o->alloc)) /* room for a mark first: NOMEM changes nothing */
    return BROOK_ERR_NOMEM;
  bk_entry_t *e = find(o, key, klen, &p, &leaf, &i);
  if (!e) {
    brook_err_t err = insert_new(o, &p, i, key, klen, NULL, o->value_size, &e);
    if (err)
      return err;
    *created = 1;
  }
  if (!e->dirty)
    bk_dirty_add(&o->dirty, e);
  *value = bk_entry_value(e);
  return BROOK_OK;
}

static brook_err_t ord_flush(void *state, brook_store_listener_fn fn, void *fn_opaque) {
  ordered_t *o = state;
  return bk_dirty_flush(&o->dirty, &o->alloc, o->count, fn, fn_opaque);
}

static int ord_has_pending(void *state) { return ((ordered_t *)state)->dirty.n > 0; }

/* ---- invariants ---- */

/* Checks the subtree at x (depth d): sorted, separators exact, prefixes right, leaves at the
 * same depth and chained in order. *prev is the last entry seen, *leaf the next expected leaf
 * in the chain; returns the entries counted, or SIZE_MAX on a violation. */
static size_t check_subtree(const ordered_t *o, const bnode_t *x, uint32_t d,
                            const bk_entry_t **prev, const bnode_t **leaf, size_t *nodes) {
  (*nodes)++;
  if (x->n == 0 || x->n > CAP || (x->leaf != 0) != (d + 1 == o->depth))
    return SIZE_MAX;
  if (x->leaf) {
    if (*leaf && *leaf != x)
      return SIZE_MAX;
    for (size_t i = 0; i < x->n; i++) {
      const bk_entry_t *e = x->ent[i];
      if (x->pfx[i] != key_prefix(bk_entry_key(e), e->klen) ||
          (o->value_size && e->vlen != o->value_size) ||
          (*prev && bk_key_cmp(bk_entry_key(*prev), (*prev)->klen, bk_entry_key(e), e->klen) >= 0))
        return SIZE_MAX;
      *prev = e;
    }
    *leaf = x->next;
    return x->n;
  }
  size_t total = 0;
  for (size_t i = 0; i < x->n; i++) {
    size_t n = check_subtree(o, x->child[i], d + 1, prev, leaf, nodes);
    if (n == SIZE_MAX)
      return SIZE_MAX;
    if (i > 0) { /* sep[i] is the smallest entry of child i's subtree */
      const bnode_t *y = x->child[i];
      while (!y->leaf)
        y = y->child[0];
      if (x->ent[i] != y->ent[0] ||
          x->pfx[i] != key_prefix(bk_entry_key(y->ent[0]), y->ent[0]->klen))
        return SIZE_MAX;
    }
    total += n;
  }
  return total;
}

int bk_ordered_check(const void *state) {
  const ordered_t *o = state;
  if (!o->root)
    return o->count == 0 && o->depth == 0 && o->nodes == 0;
  const bk_entry_t *prev = NULL;
  const bnode_t *leaf = NULL;
  size_t nodes = 0;
  size_t n = check_subtree(o, o->root, 0, &prev, &leaf, &nodes);
  if (n != o->count || leaf != NULL || nodes != o->nodes)
    return 0;
  size_t dirty = 0;
  for (size_t i = 0; i < o->dirty.n; i++)
    dirty += o->dirty.v[i]->dirty == i + 1;
  return dirty == o->dirty.n && bk_slab_check(&o->slab);
}

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
