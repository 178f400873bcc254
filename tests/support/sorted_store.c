/* A user-written ordered store backend over a sorted array (see sorted_store.h). Each entry
 * is one allocation (key and value together) from the store's allocator, so the allocation
 * failure sweep covers it too; the array shrinks when it empties out. */
#include "sorted_store.h"

#include <stdlib.h>
#include <string.h>

typedef struct ent {
  size_t klen, vlen;
  unsigned char *bytes; /* key then value */
} ent_t;

typedef struct sorted {
  ent_t *e;
  size_t n, cap;
  brook_allocator_t alloc;
  brook_store_t *store; /* for brook_store_set_error */
  const sorted_store_opts_t *opts;
} sorted_t;

typedef struct sorted_iter {
  sorted_t *st;
  size_t at;
} sorted_iter_t;

static int failing_reads(const sorted_t *st) {
  if (st->opts && st->opts->fail_reads) {
    brook_store_set_error(st->store, "sorted: injected read error");
    return 1;
  }
  return 0;
}

static int cmp(const void *a, size_t al, const void *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (al > bl) - (al < bl);
}

static size_t lower_bound(const sorted_t *st, const void *key, size_t klen) {
  size_t lo = 0, hi = st->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cmp(st->e[mid].bytes, st->e[mid].klen, key, klen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int found(const sorted_t *st, size_t i, const void *key, size_t klen) {
  return i < st->n && cmp(st->e[i].bytes, st->e[i].klen, key, klen) == 0;
}

static brook_err_t s_open(void **state, brook_store_t *store, const char *name,
                          const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                          void *opaque) {
  (void)name;
  (void)opts;
  const sorted_store_opts_t *so = opaque;
  if (so && so->fail_open) {
    brook_store_set_error(store, "sorted: injected open error");
    return BROOK_ERR_IO;
  }
  sorted_t *st = alloc->alloc(sizeof(*st), alloc->opaque);
  if (!st)
    return BROOK_ERR_NOMEM;
  memset(st, 0, sizeof(*st));
  st->alloc = *alloc;
  st->store = store;
  st->opts = so;
  *state = st;
  return BROOK_OK;
}

static void s_clear_all(sorted_t *st) {
  for (size_t i = 0; i < st->n; i++)
    st->alloc.free(st->e[i].bytes, st->alloc.opaque);
  st->alloc.free(st->e, st->alloc.opaque);
  st->e = NULL;
  st->n = st->cap = 0;
}

static void s_close(void *state) {
  sorted_t *st = state;
  s_clear_all(st);
  st->alloc.free(st, st->alloc.opaque);
}

static brook_err_t s_get(void *state, const void *key, size_t klen, const void **value,
                         size_t *vlen) {
  sorted_t *st = state;
  if (failing_reads(st))
    return BROOK_ERR_IO;
  size_t i = lower_bound(st, key, klen);
  if (!found(st, i, key, klen))
    return BROOK_ERR_NOT_FOUND;
  *value = st->e[i].bytes + st->e[i].klen;
  *vlen = st->e[i].vlen;
  return BROOK_OK;
}

static brook_err_t s_put(void *state, const void *key, size_t klen, const void *value,
                         size_t vlen) {
  sorted_t *st = state;
  size_t i = lower_bound(st, key, klen);
  int replace = found(st, i, key, klen);
  if (!replace && st->n == st->cap) {
    size_t ncap = st->cap ? 2 * st->cap : 16;
    ent_t *ne = st->alloc.realloc(st->e, ncap * sizeof(*ne), st->alloc.opaque);
    if (!ne)
      return BROOK_ERR_NOMEM;
    st->e = ne;
    st->cap = ncap;
  }
  /* Copy first: key and value may be views of the entry being replaced. */
  unsigned char *b = st->alloc.alloc(klen + vlen ? klen + vlen : 1, st->alloc.opaque);
  if (!b)
    return BROOK_ERR_NOMEM;
  if (klen)
    memcpy(b, key, klen);
  if (vlen)
    memcpy(b + klen, value, vlen);
  if (replace) {
    st->alloc.free(st->e[i].bytes, st->alloc.opaque);
  } else {
    memmove(&st->e[i + 1], &st->e[i], (st->n - i) * sizeof(*st->e));
    st->n++;
  }
  st->e[i] = (ent_t){klen, vlen, b};
  return BROOK_OK;
}

static brook_err_t s_del(void *state, const void *key, size_t klen) {
  sorted_t *st = state;
  size_t i = lower_bound(st, key, klen);
  if (!found(st, i, key, klen))
    return BROOK_ERR_NOT_FOUND;
  st->alloc.free(st->e[i].bytes, st->alloc.opaque);
  memmove(&st->e[i], &st->e[i + 1], (st->n - i - 1) * sizeof(*st->e));
  if (--st->n == 0)
    s_clear_all(st); /* give the array back */
  return BROOK_OK;
}

static brook_err_t s_iter_open(void *state, void **iter) {
  sorted_t *st = state;
  sorted_iter_t *it = st->alloc.alloc(sizeof(*it), st->alloc.opaque);
  if (!it)
    return BROOK_ERR_NOMEM;
  it->st = st;
  it->at = 0;
  *iter = it;
  return BROOK_OK;
}

static brook_err_t fill(sorted_iter_t *it, brook_store_entry_t *e) {
  if (failing_reads(it->st))
    return BROOK_ERR_IO;
  if (it->at >= it->st->n)
    return BROOK_ERR_NOT_FOUND;
  const ent_t *x = &it->st->e[it->at];
  *e = (brook_store_entry_t){x->bytes, x->klen, x->bytes + x->klen, x->vlen};
  return BROOK_OK;
}

static brook_err_t s_iter_seek(void *iter, const void *key, size_t klen, brook_store_entry_t *e) {
  sorted_iter_t *it = iter;
  it->at = key ? lower_bound(it->st, key, klen) : 0;
  return fill(it, e);
}

static brook_err_t s_iter_next(void *iter, brook_store_entry_t *e) {
  sorted_iter_t *it = iter;
  it->at++;
  return fill(it, e);
}

static void s_iter_close(void *iter) {
  sorted_iter_t *it = iter;
  it->st->alloc.free(it, it->st->alloc.opaque);
}

static brook_err_t s_clear(void *state) {
  s_clear_all(state);
  return BROOK_OK;
}

static size_t s_count(void *state) { return ((sorted_t *)state)->n; }

static size_t s_memory(void *state) {
  const sorted_t *st = state;
  size_t m = sizeof(*st) + st->cap * sizeof(ent_t);
  for (size_t i = 0; i < st->n; i++)
    m += st->e[i].klen + st->e[i].vlen;
  return m;
}

static const brook_store_backend_t sorted_backend = {
    .version = BROOK_STORE_BACKEND_VERSION,
    .caps = BROOK_STORE_CAP_ORDERED,
    .name = "sorted",
    .open = s_open,
    .close = s_close,
    .get = s_get,
    .put = s_put,
    .del = s_del,
    .iter_open = s_iter_open,
    .iter_seek = s_iter_seek,
    .iter_next = s_iter_next,
    .iter_close = s_iter_close,
    .clear = s_clear,
    .count = s_count,
    .memory = s_memory,
};

const brook_store_backend_t *sorted_store_backend(void) { return &sorted_backend; }
