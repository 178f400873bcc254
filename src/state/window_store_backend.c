/* The window store as a store backend (store_backend.h): what lets a window operator open
 * its state with brook_store_open like any other store, so that the generic mechanisms
 * (snapshot and restore of an instance's stores, change listeners, memory accounting) cover
 * windows with no window-specific code. The operator itself reaches its layouts directly
 * (window_store.h). Loop thread. */
#include "state/window_store_backend.h"

#include <string.h>

#include <brook/store_backend.h>

#include "core/alloc.h"

static brook_err_t wsb_open(void **state, brook_store_t *store, const char *name,
                            const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                            void *opaque) {
  (void)opts;
  bk_wstore_open_args_t *args = opaque;
  *state = NULL;
  if (!args || !args->agg || !args->out) {
    brook_store_set_error(store, "window store '%s' opened without its operator's arguments", name);
    return BROOK_ERR_INVALID_ARG;
  }
  bk_wstore_t *ws = bk_calloc(alloc, 1, sizeof(*ws));
  if (!ws)
    return BROOK_ERR_NOMEM;
  brook_err_t err = bk_wstore_init(ws, alloc, args->agg, args->meta_size);
  if (err < 0) {
    bk_wstore_destroy(ws);
    bk_free(alloc, ws);
    return err;
  }
  *state = ws;
  *args->out = ws;
  return BROOK_OK;
}

static void wsb_close(void *state) {
  bk_wstore_t *ws = state;
  const brook_allocator_t *a = ws->alloc;
  bk_wstore_destroy(ws);
  bk_free(a, ws);
}

static brook_err_t wsb_get(void *state, const void *key, size_t key_len, const void **value,
                           size_t *value_len) {
  return bk_wstore_get(state, key, key_len, value, value_len);
}

static brook_err_t wsb_put(void *state, const void *key, size_t key_len, const void *value,
                           size_t value_len) {
  return bk_wstore_put(state, key, key_len, value, value_len);
}

static brook_err_t wsb_del(void *state, const void *key, size_t key_len) {
  return bk_wstore_delete(state, key, key_len);
}

typedef struct wsb_iter {
  bk_wstore_t *ws;
  bk_wstore_cursor_t c;
} wsb_iter_t;

static brook_err_t wsb_iter_open(void *state, void **iter) {
  bk_wstore_t *ws = state;
  wsb_iter_t *it = bk_calloc(ws->alloc, 1, sizeof(*it));
  if (!it)
    return BROOK_ERR_NOMEM;
  it->ws = ws;
  *iter = it;
  return BROOK_OK;
}

static brook_err_t wsb_iter_next(void *iter, brook_store_entry_t *e) {
  wsb_iter_t *it = iter;
  if (bk_wstore_next(it->ws, &it->c, &e->key, &e->key_len, &e->value, &e->value_len))
    return BROOK_OK;
  return it->c.phase == 3 ? BROOK_ERR_NOT_FOUND : BROOK_ERR_NOMEM;
}

/* Unordered: only ever asked to go to the first entry. */
static brook_err_t wsb_iter_seek(void *iter, const void *key, size_t key_len,
                                 brook_store_entry_t *e) {
  (void)key;
  (void)key_len;
  wsb_iter_t *it = iter;
  memset(&it->c, 0, sizeof(it->c));
  return wsb_iter_next(iter, e);
}

static void wsb_iter_close(void *iter) {
  wsb_iter_t *it = iter;
  bk_free(it->ws->alloc, it);
}

static brook_err_t wsb_clear(void *state) {
  bk_wstore_clear(state);
  return BROOK_OK;
}

static size_t wsb_count(void *state) { return bk_wstore_count(state); }

static size_t wsb_memory(void *state) { return sizeof(bk_wstore_t) + bk_wstore_memory(state); }

static brook_err_t wsb_flush(void *state, brook_store_listener_fn fn, void *fn_opaque) {
  return bk_wstore_flush(state, fn, fn_opaque);
}

static int wsb_has_pending(void *state) { return bk_wstore_has_pending(state); }

static const brook_store_backend_t window_backend = {
    .version = BROOK_STORE_BACKEND_VERSION,
    .caps = 0, /* unordered; no update(): operators use the layouts directly */
    .name = "window",
    .open = wsb_open,
    .close = wsb_close,
    .get = wsb_get,
    .put = wsb_put,
    .del = wsb_del,
    .iter_open = wsb_iter_open,
    .iter_seek = wsb_iter_seek,
    .iter_next = wsb_iter_next,
    .iter_close = wsb_iter_close,
    .clear = wsb_clear,
    .count = wsb_count,
    .memory = wsb_memory,
    .flush = wsb_flush,
    .has_pending = wsb_has_pending,
};

const brook_store_backend_t *bk_wstore_backend(void) { return &window_backend; }
