/* The in-memory hash store as a backend table (brook_store_backend_hash()), for a user's
 * backend that wraps or delegates to it, and for the test suite to drive the table path.
 * A store opened with this very table is made a plain hash store (store_api.c) and never
 * comes through here; a copy of the table does.
 *
 * The state is a standalone hash store. Its in-place changes are tracked only while it has
 * a listener, so it gets a forwarding one for good: during flush it passes each change on to
 * the caller's function; at any other time (puts and deletes, which the store layer reports
 * itself) it does nothing. */
#include <string.h>

#include <brook/store_backend.h>

#include "core/alloc.h"
#include "state/store.h"

typedef struct hash_be {
  brook_store_t *s;
  brook_store_listener_fn fn; /* set only during flush */
  void *fn_opaque;
} hash_be_t;

typedef struct hash_iter {
  hash_be_t *h;
  size_t cursor;
} hash_iter_t;

static brook_err_t forward(const void *key, size_t klen, const void *value, size_t vlen,
                           void *opaque) {
  hash_be_t *h = opaque;
  return h->fn ? h->fn(key, klen, value, vlen, h->fn_opaque) : BROOK_OK;
}

static brook_err_t hb_open(void **state, brook_store_t *store, const char *name,
                           const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                           void *opaque) {
  (void)opaque;
  hash_be_t *h = bk_malloc(alloc, sizeof(*h));
  if (!h) {
    brook_store_set_error(store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  memset(h, 0, sizeof(*h));
  brook_store_opts_t o = *opts;
  o.backend = NULL;
  o.ordered = 0;
  bk_errmsg_t why;
  brook_err_t err = bk_store_create(alloc, &o, name, &h->s, &why);
  if (err) {
    brook_store_set_error(store, "%s", why.text);
    bk_free(alloc, h);
    return err;
  }
  brook_store_set_listener(h->s, forward, h);
  *state = h;
  return BROOK_OK;
}

static void hb_close(void *state) {
  hash_be_t *h = state;
  brook_allocator_t a = h->s->alloc;
  bk_store_destroy(h->s);
  bk_free(&a, h);
}

static brook_err_t hb_get(void *state, const void *key, size_t klen, const void **value,
                          size_t *vlen) {
  return brook_store_get(((hash_be_t *)state)->s, key, klen, value, vlen);
}

static brook_err_t hb_put(void *state, const void *key, size_t klen, const void *value,
                          size_t vlen) {
  return brook_store_put(((hash_be_t *)state)->s, key, klen, value, vlen);
}

static brook_err_t hb_del(void *state, const void *key, size_t klen) {
  return brook_store_delete(((hash_be_t *)state)->s, key, klen);
}

static brook_err_t hb_iter_open(void *state, void **iter) {
  hash_be_t *h = state;
  hash_iter_t *it = bk_malloc(&h->s->alloc, sizeof(*it));
  if (!it)
    return BROOK_ERR_NOMEM;
  it->h = h;
  it->cursor = 0;
  *iter = it;
  return BROOK_OK;
}

static brook_err_t hb_iter_next(void *iter, brook_store_entry_t *e) {
  hash_iter_t *it = iter;
  return bk_hash_next(it->h->s, &it->cursor, &e->key, &e->key_len, &e->value, &e->value_len)
             ? BROOK_OK
             : BROOK_ERR_NOT_FOUND;
}

static brook_err_t hb_iter_seek(void *iter, const void *key, size_t klen, brook_store_entry_t *e) {
  (void)key; /* unordered: the store layer only seeks to the start */
  (void)klen;
  ((hash_iter_t *)iter)->cursor = 0;
  return hb_iter_next(iter, e);
}

static void hb_iter_close(void *iter) {
  hash_iter_t *it = iter;
  bk_free(&it->h->s->alloc, it);
}

static brook_err_t hb_clear(void *state) {
  bk_hash_reset(((hash_be_t *)state)->s, 0);
  return BROOK_OK;
}

static size_t hb_count(void *state) { return brook_store_count(((hash_be_t *)state)->s); }

static size_t hb_memory(void *state) {
  return sizeof(hash_be_t) + brook_store_memory(((hash_be_t *)state)->s);
}

static brook_err_t hb_update(void *state, const void *key, size_t klen, void **value,
                             int *created) {
  return brook_store_update(((hash_be_t *)state)->s, key, klen, value, created);
}

static brook_err_t hb_flush(void *state, brook_store_listener_fn fn, void *fn_opaque) {
  hash_be_t *h = state;
  h->fn = fn;
  h->fn_opaque = fn_opaque;
  brook_err_t err = brook_store_flush_changes(h->s);
  h->fn = NULL;
  h->fn_opaque = NULL;
  return err;
}

static int hb_has_pending(void *state) {
  return bk_store_has_pending_changes(((hash_be_t *)state)->s);
}

static const brook_store_backend_t hash_backend = {
    .version = BROOK_STORE_BACKEND_VERSION,
    .caps = BROOK_STORE_CAP_UPDATE | BROOK_STORE_CAP_STABLE_ITER,
    .name = "hash",
    .open = hb_open,
    .close = hb_close,
    .get = hb_get,
    .put = hb_put,
    .del = hb_del,
    .iter_open = hb_iter_open,
    .iter_seek = hb_iter_seek,
    .iter_next = hb_iter_next,
    .iter_close = hb_iter_close,
    .clear = hb_clear,
    .count = hb_count,
    .memory = hb_memory,
    .update = hb_update,
    .flush = hb_flush,
    .has_pending = hb_has_pending,
};

const brook_store_backend_t *brook_store_backend_hash(void) { return &hash_backend; }
