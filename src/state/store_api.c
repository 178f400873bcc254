/* The public brook_store_* calls: argument checks, then the hash store directly (no indirect
 * call on the default backend's hot path) or the store's backend table; the change
 * listener for backend stores; creation with the backend the options choose; error
 * messages naming the store. Iterators are in store_iter.c, snapshots in store_snapshot.c.
 * Runs on the store's thread. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <brook/store_backend.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "state/store.h"
#include "state/store_changelog.h"
#include "state/store_iter.h"

#define ERRMSG_SIZE 512

/* ---- options ---- */

void brook_store_opts_init_size(brook_store_opts_t *opts, size_t size) {
  brook_store_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t store_versions[] = {
    BK_OPTS_VERSION(brook_store_opts_t, expected_entries),
    BK_OPTS_VERSION(brook_store_opts_t, name), /* 0.2: ordered, backend, backend_opaque, name */
    BK_OPTS_VERSION(brook_store_opts_t, changelog_configs), /* 0.3: changelog_disabled, _configs */
};
const bk_opts_type_t bk_store_opts_type = BK_OPTS_TYPE(brook_store_opts_t, store_versions);

/* ---- errors ---- */

static void store_vfail(const brook_store_t *cs, const char *fmt, va_list ap) {
  brook_store_t *s = (brook_store_t *)(uintptr_t)cs; /* the message is not the content */
  s->err_seq++;
  if (!s->errmsg && !(s->errmsg = bk_malloc(&s->alloc, ERRMSG_SIZE)))
    return; /* brook_store_last_error says a message was lost */
  int n = snprintf(s->errmsg, ERRMSG_SIZE, "store '%s': ", s->name);
  if (n < 0 || n >= ERRMSG_SIZE)
    n = 0;
  vsnprintf(s->errmsg + n, ERRMSG_SIZE - (size_t)n, fmt, ap);
}

brook_err_t bk_store_fail(const brook_store_t *s, brook_err_t err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  store_vfail(s, fmt, ap);
  va_end(ap);
  return err;
}

void brook_store_set_error(brook_store_t *s, const char *fmt, ...) {
  if (!s || !fmt)
    return;
  va_list ap;
  va_start(ap, fmt);
  store_vfail(s, fmt, ap);
  va_end(ap);
}

const char *brook_store_last_error(const brook_store_t *s) {
  if (!s)
    return "no store";
  return s->errmsg ? s->errmsg : "";
}

const char *brook_store_name(const brook_store_t *s) { return s ? s->name : NULL; }
const char *bk_store_name(const brook_store_t *s) { return s ? s->name : NULL; }

/* A backend error without a message of its own (none set since `seq`) gets one naming the
 * backend and the call. */
static brook_err_t be_failed(const brook_store_t *s, brook_err_t err, const char *call,
                             uint32_t seq) {
  if (seq == s->err_seq)
    bk_store_fail(s, err, "backend '%s': %s failed: %s", s->be->name ? s->be->name : "?", call,
                  brook_strerror(err));
  return err;
}

/* ---- create / destroy ---- */

/* Whether a user's table can be used: a version this library knows, every required call. */
static int backend_ok(const brook_store_backend_t *be, bk_errmsg_t *why) {
  if (be->version < 1 || be->version > BROOK_STORE_BACKEND_VERSION) {
    bk_errmsg_set(why, "backend table version %u is not one this library knows (1..%u)",
                  be->version, (unsigned)BROOK_STORE_BACKEND_VERSION);
    return 0;
  }
  const char *missing = !be->open                                            ? "open"
                        : !be->close                                         ? "close"
                        : !be->get                                           ? "get"
                        : !be->put                                           ? "put"
                        : !be->del                                           ? "del"
                        : !be->iter_open                                     ? "iter_open"
                        : !be->iter_seek                                     ? "iter_seek"
                        : !be->iter_next                                     ? "iter_next"
                        : !be->iter_close                                    ? "iter_close"
                        : !be->clear                                         ? "clear"
                        : !be->count                                         ? "count"
                        : !be->memory                                        ? "memory"
                        : (be->caps & BROOK_STORE_CAP_UPDATE) && !be->update ? "update"
                                                                             : NULL;
  if (missing) {
    bk_errmsg_set(why, "backend '%s' has no %s function", be->name ? be->name : "?", missing);
    return 0;
  }
  return 1;
}

brook_err_t bk_store_create(const brook_allocator_t *a, const brook_store_opts_t *opts,
                            const char *name, brook_store_t **out, bk_errmsg_t *why) {
  bk_errmsg_t ignored;
  if (!why)
    why = &ignored;
  if (!out)
    return BROOK_ERR_INVALID_ARG;
  *out = NULL;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  if (bk_opts_copy(&o, sizeof(o), opts, &bk_store_opts_type, why))
    return BROOK_ERR_INVALID_ARG;
  if (o.value_size > BK_STORE_MAX_LEN) {
    bk_errmsg_set(why, "value_size %zu is more than %zu bytes", o.value_size,
                  (size_t)BK_STORE_MAX_LEN);
    return BROOK_ERR_INVALID_ARG;
  }
  const brook_store_backend_t *be = o.backend;
  if (be == brook_store_backend_hash())
    be = NULL; /* the built-in hash store, called directly */
  else if (!be && o.ordered)
    be = brook_store_backend_ordered();
  if (be && !backend_ok(be, why))
    return BROOK_ERR_INVALID_ARG;
  if (!name)
    name = o.name ? o.name : "store";
  if (!a)
    a = bk_default_allocator();
  /* One block: the store, then its name (a store per task: one allocation fewer). */
  size_t name_bytes = strlen(name) + 1;
  brook_store_t *s =
      name_bytes <= SIZE_MAX - sizeof(*s) ? bk_malloc(a, sizeof(*s) + name_bytes) : NULL;
  if (!s) {
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  memset(s, 0, sizeof(*s));
  s->alloc = *a;
  s->value_size = o.value_size;
  s->name_bytes = name_bytes;
  s->name = (char *)(s + 1);
  memcpy(s->name, name, name_bytes);
  brook_err_t err = bk_store_changelog_init(s, &o, why);
  if (err) {
    bk_store_destroy(s);
    return err;
  }
  if (!be) {
    err = bk_hash_init(s, o.expected_entries);
    if (err)
      bk_errmsg_set(why, "out of memory");
  } else {
    s->be = be;
    err = be->open(&s->be_state, s, s->name, &o, &s->alloc, o.backend_opaque);
    if (err < 0) {
      s->be = NULL; /* nothing to close */
      if (s->err_seq)
        bk_errmsg_set(why, "%s", s->errmsg);
      else
        bk_errmsg_set(why, "backend '%s' could not open it: %s", be->name ? be->name : "?",
                      brook_strerror(err));
    } else {
      err = BROOK_OK;
    }
  }
  if (err) {
    bk_store_destroy(s);
    return err;
  }
  *out = s;
  return BROOK_OK;
}

void bk_store_destroy(brook_store_t *s) {
  if (!s)
    return;
  bk_store_iters_free(s);
  if (s->be)
    s->be->close(s->be_state);
  else
    bk_hash_fini(s);
  bk_store_changelog_fini(s);
  brook_allocator_t a = s->alloc;
  bk_free(&a, s->scratch);
  bk_free(&a, s->errmsg);
  bk_free(&a, s); /* and the name after it */
}

brook_err_t brook_store_new(brook_store_t **out, const brook_store_opts_t *opts,
                            const brook_allocator_t *allocator) {
  return bk_store_create(allocator, opts, NULL, out, NULL);
}

void brook_store_free(brook_store_t *s) { bk_store_destroy(s); }

/* ---- the listener of a backend store ---- */

/* Copies key (and value) into the store's scratch buffer, so the listener can be given them
 * after the backend has changed (they may be views into what it freed). */
static brook_err_t scratch_copy(brook_store_t *s, const void **key, size_t klen, const void **value,
                                size_t vlen) {
  size_t need = klen + vlen;
  if (need > s->scratch_cap) {
    void *p = s->scratch;
    size_t cap = s->scratch_cap;
    if (bk_grow(&s->alloc, &p, &cap, need, 1))
      return bk_store_fail(s, BROOK_ERR_NOMEM, "out of memory");
    s->scratch = p;
    s->scratch_cap = cap;
  }
  if (klen)
    memcpy(s->scratch, *key, klen);
  if (vlen)
    memcpy(s->scratch + klen, *value, vlen);
  *key = s->scratch;
  if (value)
    *value = s->scratch + klen;
  return BROOK_OK;
}

/* ---- point operations ---- */

void *bk_store_find_be(const brook_store_t *s, const void *key, size_t klen, size_t *vlen) {
  const void *v = NULL;
  size_t n = 0;
  uint32_t seq = s->err_seq;
  brook_err_t err = s->be->get(s->be_state, key, klen, &v, &n);
  if (err < 0 && err != BROOK_ERR_NOT_FOUND)
    be_failed(s, err, "get", seq);
  if (err != BROOK_OK)
    v = NULL, n = 0;
  if (vlen)
    *vlen = n;
  return (void *)(uintptr_t)v;
}

brook_err_t brook_store_get(const brook_store_t *s, const void *key, size_t key_len,
                            const void **value, size_t *value_len) {
  if (value)
    *value = NULL;
  if (value_len)
    *value_len = 0;
  if (!s || (!key && key_len))
    return BROOK_ERR_INVALID_ARG;
  if (!s->be) {
    const void *v = bk_hash_find(s, key, key_len, bk_hash_bytes(key, key_len), value_len);
    if (!v)
      return BROOK_ERR_NOT_FOUND;
    if (value)
      *value = v;
    return BROOK_OK;
  }
  const void *v = NULL;
  size_t n = 0;
  uint32_t seq = s->err_seq;
  brook_err_t err = s->be->get(s->be_state, key, key_len, &v, &n);
  if (err == BROOK_OK) {
    if (value)
      *value = v;
    if (value_len)
      *value_len = n;
  } else if (err != BROOK_ERR_NOT_FOUND) {
    be_failed(s, err, "get", seq);
  }
  return err;
}

brook_err_t brook_store_get_copy(brook_store_t *s, const void *key, size_t key_len, void *buf,
                                 size_t cap, size_t *value_len) {
  if (value_len)
    *value_len = 0;
  if (!value_len || (!buf && cap))
    return BROOK_ERR_INVALID_ARG;
  const void *v;
  brook_err_t err = brook_store_get(s, key, key_len, &v, value_len);
  if (err)
    return err;
  if (*value_len > cap)
    return bk_store_fail(s, BROOK_ERR_TOO_LARGE,
                         "get_copy: the value has %zu bytes, the buffer %zu", *value_len, cap);
  if (*value_len)
    memcpy(buf, v, *value_len);
  return BROOK_OK;
}

/* Why a put was refused; cold, so the accepted path stays a few instructions and a jump. */
__attribute__((noinline, cold)) static brook_err_t put_refused(brook_store_t *s, const void *key,
                                                               size_t key_len, const void *value,
                                                               size_t value_len) {
  if (!s || (!key && key_len) || (!value && value_len))
    return BROOK_ERR_INVALID_ARG;
  if (!bk_store_lens_ok(key_len, value_len))
    return bk_store_fail(s, BROOK_ERR_INVALID_ARG,
                         "put: key of %zu or value of %zu bytes is too long", key_len, value_len);
  return bk_store_fail(s, BROOK_ERR_INVALID_ARG,
                       "put: a value of %zu bytes in a store of %zu-byte values", value_len,
                       s->value_size);
}

/* brook_store_put on a backend table. */
__attribute__((noinline)) static brook_err_t
be_put(brook_store_t *s, const void *key, size_t key_len, const void *value, size_t value_len) {
  brook_err_t err;
  if (s->listener && (err = scratch_copy(s, &key, key_len, &value, value_len)))
    return err;
  s->gen++;
  uint32_t seq = s->err_seq;
  if ((err = s->be->put(s->be_state, key, key_len, value, value_len)) < 0)
    return be_failed(s, err, "put", seq);
  return s->listener ? s->listener(key, key_len, value, value_len, s->listener_opaque) : BROOK_OK;
}

brook_err_t brook_store_put(brook_store_t *s, const void *key, size_t key_len, const void *value,
                            size_t value_len) {
  if (__builtin_expect(!s || (!key && key_len) || (!value && value_len) ||
                           !bk_store_lens_ok(key_len, value_len) ||
                           (s->value_size && value_len != s->value_size),
                       0))
    return put_refused(s, key, key_len, value, value_len);
  if (!s->be)
    return bk_hash_put(s, key, key_len, value, value_len); /* the default: a direct call */
  return be_put(s, key, key_len, value, value_len);
}

/* bk_store_remove on a backend table. */
__attribute__((noinline)) static brook_err_t be_remove(brook_store_t *s, const void *key,
                                                       size_t klen) {
  brook_err_t err;
  if (s->listener && (err = scratch_copy(s, &key, klen, NULL, 0)))
    return err;
  s->gen++;
  uint32_t seq = s->err_seq;
  if ((err = s->be->del(s->be_state, key, klen)) < 0)
    return err == BROOK_ERR_NOT_FOUND ? err : be_failed(s, err, "del", seq);
  return s->listener ? s->listener(key, klen, NULL, 0, s->listener_opaque) : BROOK_OK;
}

brook_err_t bk_store_remove(brook_store_t *s, const void *key, size_t klen, uint64_t hash) {
  if (!s || (!key && klen))
    return BROOK_ERR_INVALID_ARG;
  if (!s->be)
    return bk_hash_remove(s, key, klen, hash); /* the default: a direct call */
  return be_remove(s, key, klen);
}

brook_err_t brook_store_delete(brook_store_t *s, const void *key, size_t key_len) {
  if (!s || (!key && key_len))
    return BROOK_ERR_INVALID_ARG;
  if (s->be)
    return be_remove(s, key, key_len);
  return bk_hash_remove(s, key, key_len, bk_hash_bytes(key, key_len));
}

brook_err_t bk_store_upsert_slow(brook_store_t *s, const void *key, size_t klen, uint64_t hash,
                                 void **value, int *created) {
  if (value)
    *value = NULL;
  if (created)
    *created = 0;
  if (!s || (!key && klen) || !value)
    return BROOK_ERR_INVALID_ARG;
  if (!s->value_size)
    return bk_store_fail(s, BROOK_ERR_STATE, "update needs a store with a fixed value_size");
  if (!bk_store_lens_ok(klen, s->value_size))
    return bk_store_fail(s, BROOK_ERR_INVALID_ARG, "update: a key of %zu bytes is too long", klen);
  if (!s->be)
    return bk_hash_upsert_slow(s, key, klen, hash, value, created);
  if (!(s->be->caps & BROOK_STORE_CAP_UPDATE))
    return bk_store_fail(s, BROOK_ERR_STATE, "backend '%s' has no in-place update",
                         s->be->name ? s->be->name : "?");
  int made = 0;
  s->gen++;
  uint32_t seq = s->err_seq;
  brook_err_t err = s->be->update(s->be_state, key, klen, value, &made);
  if (err < 0) {
    *value = NULL;
    return be_failed(s, err, "update", seq);
  }
  if (created)
    *created = made;
  return BROOK_OK;
}

brook_err_t brook_store_update(brook_store_t *s, const void *key, size_t key_len, void **value,
                               int *created) {
  if (!s || (!key && key_len) || !value) {
    if (value)
      *value = NULL;
    return BROOK_ERR_INVALID_ARG;
  }
  if (s->be)
    return bk_store_upsert_slow(s, key, key_len, 0, value, created);
  return bk_store_upsert(s, key, key_len, bk_hash_bytes(key, key_len), value, created);
}

/* ---- whole store ---- */

size_t brook_store_count(const brook_store_t *s) {
  if (!s)
    return 0;
  return s->be ? s->be->count(s->be_state) : s->count;
}

size_t brook_store_memory(const brook_store_t *s) {
  if (!s)
    return 0;
  size_t own = sizeof(*s) + s->name_bytes + s->scratch_cap + (s->errmsg ? ERRMSG_SIZE : 0) +
               bk_store_iters_memory(s);
  return own + (s->be ? s->be->memory(s->be_state) : bk_hash_memory(s));
}

void brook_store_clear(brook_store_t *s) {
  if (!s)
    return;
  if (!s->be) {
    bk_hash_reset(s, 1);
    return;
  }
  s->gen++;
  if (!s->listener) {
    uint32_t seq = s->err_seq;
    brook_err_t err = s->be->clear(s->be_state);
    if (err < 0)
      be_failed(s, err, "clear", seq);
    return;
  }
  /* Deletions one by one, each reported after it is applied, as for brook_store_delete. */
  brook_store_iter_t *it;
  if (brook_store_iter_all(s, &it))
    return;
  brook_store_entry_t e;
  while (brook_store_iter_next(it, &e))
    (void)brook_store_delete(s, e.key, e.key_len); /* clear() has no way to return it */
  (void)brook_store_iter_close(it);
}

void brook_store_set_listener(brook_store_t *s, brook_store_listener_fn fn, void *opaque) {
  if (!s)
    return;
  s->listener = fn;
  s->listener_opaque = fn ? opaque : NULL;
  if (!s->be)
    bk_hash_listener_changed(s);
}

int bk_store_has_pending_changes(const brook_store_t *s) {
  if (!s)
    return 0;
  if (!s->be)
    return s->dirty.n > 0;
  if (!s->be->flush)
    return 0;
  return s->be->has_pending ? s->be->has_pending(s->be_state) : 1;
}

brook_err_t brook_store_flush_changes(brook_store_t *s) {
  if (!s)
    return BROOK_ERR_INVALID_ARG;
  if (!s->be)
    return bk_hash_flush(s);
  if (!s->be->flush)
    return BROOK_OK;
  s->gen++; /* a flush may move a backend's entries (a write cache settling): iterators re-seek */
  return s->be->flush(s->be_state, s->listener, s->listener_opaque);
}

int brook_store_next(const brook_store_t *s, size_t *cursor, const void **key, size_t *key_len,
                     const void **value, size_t *value_len) {
  if (!s || !cursor)
    return 0;
  if (!s->be)
    return bk_hash_next(s, cursor, key, key_len, value, value_len);
  return bk_store_cursor_next((brook_store_t *)(uintptr_t)s, cursor, key, key_len, value,
                              value_len);
}
