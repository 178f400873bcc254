/* The RocksDB backend (brook/store_rocksdb.h): the write cache in front of the database,
 * point operations, and the flush that writes a commit's changes as one atomic batch.
 *
 * Every entry of the cache says (C_* flags, rocksdb_store.h) whether the key is live or a
 * tombstone, whether it must be written, and whether the disk has it; the last is what keeps
 * the entry count exact without reading the disk at flush: a key enters the cache once per
 * flush interval, and only then is the disk asked whether it has it (a bloom filter answers
 * most "no"s from memory). */
#include <string.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "state/rocksdb_store.h"

#define DEFAULT_CACHE_BYTES ((size_t)16 << 20)
#define DEFAULT_BLOCK_CACHE_BYTES ((size_t)8 << 20)
#define COUNT_KEY "\0\0\0\0count"
#define COUNT_KEY_LEN 9

static const brook_rocksdb_opts_t rdb_defaults = {
    .struct_size = sizeof(brook_rocksdb_opts_t),
    .cache_bytes = DEFAULT_CACHE_BYTES,
    .block_cache_bytes = DEFAULT_BLOCK_CACHE_BYTES,
};
static const bk_opts_version_t rdb_versions[] = {BK_OPTS_VERSION(brook_rocksdb_opts_t, sync)};
static const bk_opts_type_t rdb_opts_type = BK_OPTS_TYPE(brook_rocksdb_opts_t, rdb_versions);

void brook_rocksdb_opts_init_size(brook_rocksdb_opts_t *opts, size_t size) {
  bk_opts_init_sized(opts, size, &rdb_defaults, sizeof(rdb_defaults));
}

static brook_err_t nomem(rdb_store_t *s) {
  brook_store_set_error(s->store, "out of memory");
  return BROOK_ERR_NOMEM;
}

static int grow(const brook_allocator_t *a, unsigned char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap : 64;
  while (n < need)
    n *= 2;
  unsigned char *p = bk_malloc(a, n);
  if (!p)
    return -1;
  bk_free(a, *buf);
  *buf = p;
  *cap = n;
  return 0;
}

size_t rdb_key(rdb_store_t *s, const void *key, size_t klen) {
  if (grow(s->alloc, &s->kbuf, &s->kcap, RDB_ID_LEN + klen) != 0) {
    nomem(s);
    return 0;
  }
  memcpy(s->kbuf, s->id_be, RDB_ID_LEN);
  if (klen)
    memcpy(s->kbuf + RDB_ID_LEN, key, klen); /* kbuf is never given out: no overlap */
  return RDB_ID_LEN + klen;
}

/* s->vbuf = value || flags, `len` value bytes (a tombstone: len = the fixed size or 0,
 * value NULL: zeros). Returns the length, or 0 on NOMEM. */
static size_t cache_value(rdb_store_t *s, const void *value, size_t len, unsigned flags) {
  if (grow(s->alloc, &s->vbuf, &s->vcap, len + 1) != 0) {
    nomem(s);
    return 0;
  }
  if (len && value)
    memcpy(s->vbuf, value, len);
  else if (len)
    memset(s->vbuf, 0, len);
  s->vbuf[len] = (unsigned char)flags;
  return len + 1;
}

static void unpin(rdb_store_t *s) {
  if (s->pinned) {
    rocksdb_pinnableslice_destroy(s->pinned);
    s->pinned = NULL;
  }
}

/* Reads id || key (in kbuf, klen bytes) from disk into s->pinned: 1 found, 0 absent, or a
 * negative error (message set). */
static int disk_get(rdb_store_t *s, size_t klen) {
  unpin(s);
  if (s->cleared)
    return 0;
  char *why = NULL;
  s->pinned = rocksdb_get_pinned(s->db.db, s->db.read, (const char *)s->kbuf, klen, &why);
  if (why) {
    brook_store_set_error(s->store, "RocksDB read from %s failed: %s", s->db.path, why);
    rocksdb_free(why);
    return BROOK_ERR_IO;
  }
  return s->pinned != NULL;
}

/* The cache's entry for key: its flags (*flags), value view and length without the flag
 * byte; 0 absent, 1 present, or a negative error. */
static int cache_get(rdb_store_t *s, const void *key, size_t klen, const unsigned char **v,
                     size_t *vlen, unsigned *flags) {
  const void *cv;
  size_t cl;
  brook_err_t err = s->cb->get(s->cache, key, klen, &cv, &cl);
  if (err == BROOK_ERR_NOT_FOUND)
    return 0;
  if (err)
    return err;
  *v = cv;
  *vlen = cl - 1;
  *flags = ((const unsigned char *)cv)[cl - 1];
  return 1;
}

/* ---- life cycle ---- */

static void rdb_close(void *state);

static brook_err_t read_count(rdb_store_t *s) {
  unsigned char k[COUNT_KEY_LEN + RDB_ID_LEN];
  memcpy(k, COUNT_KEY, COUNT_KEY_LEN);
  memcpy(k + COUNT_KEY_LEN, s->id_be, RDB_ID_LEN);
  char *why = NULL;
  size_t vl = 0;
  char *v = rocksdb_get(s->db.db, s->db.read, (const char *)k, sizeof(k), &vl, &why);
  if (why) {
    brook_store_set_error(s->store, "RocksDB read from %s failed: %s", s->db.path, why);
    rocksdb_free(why);
    return BROOK_ERR_IO;
  }
  s->count = 0;
  if (!v)
    return BROOK_OK;
  brook_err_t err = BROOK_OK;
  if (vl != 8) {
    brook_store_set_error(s->store, "RocksDB database %s: its entry count has %zu bytes, not 8",
                          s->db.path, vl);
    err = BROOK_ERR_CORRUPT;
  } else {
    uint64_t c = 0;
    for (int i = 7; i >= 0; i--)
      c = c << 8 | (unsigned char)v[i];
    s->count = (size_t)c;
  }
  rocksdb_free(v);
  return err;
}

static brook_err_t rdb_open(void **state, brook_store_t *store, const char *name,
                            const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                            void *opaque) {
  brook_rocksdb_opts_t o;
  bk_errmsg_t why;
  memcpy(&o, &rdb_defaults, sizeof(o));
  if (opaque && bk_opts_copy(&o, sizeof(o), opaque, &rdb_opts_type, &why) != BROOK_OK) {
    brook_store_set_error(store, "%s", why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  rdb_store_t *s = bk_calloc(alloc, 1, sizeof(*s));
  if (!s) {
    brook_store_set_error(store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  s->store = store;
  s->alloc = alloc;
  s->value_size = opts->value_size;
  s->cache_bytes = o.cache_bytes;
  s->id = 1; /* one store per database */
  for (int i = 0; i < RDB_ID_LEN; i++) {
    s->id_be[i] = (unsigned char)(s->id >> (8 * (RDB_ID_LEN - 1 - i)));
    s->end_be[i] = (unsigned char)((s->id + 1) >> (8 * (RDB_ID_LEN - 1 - i)));
  }
  s->cb = brook_store_backend_ordered();
  brook_store_opts_t co = *opts;
  co.value_size = opts->value_size ? opts->value_size + 1 : 0; /* value || flags */
  co.backend = NULL;
  co.backend_opaque = NULL;
  brook_err_t err = s->cb->open(&s->cache, store, name, &co, alloc, NULL);
  if (err) {
    bk_free(alloc, s);
    return err;
  }
  if (!(s->batch = rocksdb_writebatch_create())) {
    rdb_close(s);
    brook_store_set_error(store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  if ((err = rdb_db_open(&s->db, store, name, &o, alloc)) != BROOK_OK ||
      (err = read_count(s)) != BROOK_OK) {
    rdb_close(s);
    return err;
  }
  *state = s;
  return BROOK_OK;
}

static void rdb_close(void *state) {
  rdb_store_t *s = state;
  unpin(s);
  if (s->db.db)
    rdb_db_close(&s->db);
  if (s->batch)
    rocksdb_writebatch_destroy(s->batch);
  if (s->cache)
    s->cb->close(s->cache);
  bk_free(s->alloc, s->kbuf);
  bk_free(s->alloc, s->vbuf);
  bk_free(s->alloc, s);
}

/* ---- point operations ---- */

static brook_err_t rdb_get(void *state, const void *key, size_t klen, const void **value,
                           size_t *value_len) {
  rdb_store_t *s = state;
  const unsigned char *v;
  size_t vl;
  unsigned f;
  unpin(s);
  int in = cache_get(s, key, klen, &v, &vl, &f);
  if (in < 0)
    return in;
  if (in) {
    if (!(f & C_LIVE))
      return BROOK_ERR_NOT_FOUND;
    *value = v;
    *value_len = vl;
    return BROOK_OK;
  }
  size_t kl = rdb_key(s, key, klen);
  if (!kl)
    return BROOK_ERR_NOMEM;
  int on = disk_get(s, kl);
  if (on <= 0)
    return on < 0 ? on : BROOK_ERR_NOT_FOUND;
  size_t dl;
  const char *d = rocksdb_pinnableslice_value(s->pinned, &dl);
  *value = d ? (const void *)d : (const void *)"";
  *value_len = dl;
  return BROOK_OK;
}

static brook_err_t rdb_put(void *state, const void *key, size_t klen, const void *value,
                           size_t value_len) {
  rdb_store_t *s = state;
  /* key and value may be views of this store (a cache entry, a pinned disk value): copy
   * the value first, and the key into kbuf, before anything moves. */
  size_t cl = cache_value(s, value, value_len, 0);
  if (!cl)
    return BROOK_ERR_NOMEM;
  size_t kl = rdb_key(s, key, klen);
  if (!kl)
    return BROOK_ERR_NOMEM;
  const unsigned char *k = s->kbuf + RDB_ID_LEN;
  const unsigned char *v;
  size_t vl;
  unsigned f;
  int in = cache_get(s, k, klen, &v, &vl, &f);
  if (in < 0)
    return in;
  int was_live;
  if (in) {
    was_live = (f & C_LIVE) != 0;
  } else {
    int on = disk_get(s, kl);
    if (on < 0)
      return on;
    f = on ? C_ONDISK : 0;
    was_live = on;
    unpin(s);
  }
  s->vbuf[value_len] = (unsigned char)(C_LIVE | C_DIRTY | (f & C_ONDISK));
  brook_err_t err = s->cb->put(s->cache, k, klen, s->vbuf, cl);
  if (err)
    return err;
  s->count += !was_live;
  s->pending = 1;
  return BROOK_OK;
}

/* Marks key deleted in the cache: a tombstone if the disk has it, else no entry. */
static brook_err_t forget(rdb_store_t *s, const void *k, size_t klen, unsigned f, int in_cache) {
  if (!(f & C_ONDISK) || s->cleared)
    return in_cache ? s->cb->del(s->cache, k, klen) : BROOK_OK;
  size_t cl = cache_value(s, NULL, s->value_size, C_DIRTY | C_ONDISK);
  if (!cl)
    return BROOK_ERR_NOMEM;
  return s->cb->put(s->cache, k, klen, s->vbuf, cl);
}

static brook_err_t rdb_del(void *state, const void *key, size_t klen) {
  rdb_store_t *s = state;
  size_t kl = rdb_key(s, key, klen);
  if (!kl)
    return BROOK_ERR_NOMEM;
  const unsigned char *k = s->kbuf + RDB_ID_LEN;
  const unsigned char *v;
  size_t vl;
  unsigned f;
  int in = cache_get(s, k, klen, &v, &vl, &f);
  if (in < 0)
    return in;
  if (in && !(f & C_LIVE))
    return BROOK_ERR_NOT_FOUND;
  if (!in) {
    int on = disk_get(s, kl);
    unpin(s);
    if (on <= 0)
      return on < 0 ? on : BROOK_ERR_NOT_FOUND;
    f = C_ONDISK;
  }
  brook_err_t err = forget(s, k, klen, f, in);
  if (err)
    return err;
  s->count--;
  s->pending = 1;
  return BROOK_OK;
}

static brook_err_t rdb_update(void *state, const void *key, size_t klen, void **value,
                              int *created) {
  rdb_store_t *s = state;
  size_t vs = s->value_size;
  *value = NULL;
  *created = 0;
  size_t kl = rdb_key(s, key, klen);
  if (!kl)
    return BROOK_ERR_NOMEM;
  const unsigned char *k = s->kbuf + RDB_ID_LEN;
  void *p;
  int made;
  brook_err_t err = s->cb->update(s->cache, k, klen, &p, &made);
  if (err)
    return err;
  unsigned char *e = p;
  unsigned f = made ? 0 : e[vs];
  int live = (f & C_LIVE) != 0;
  if (made) {
    int on = disk_get(s, kl);
    if (on < 0) {
      s->cb->del(s->cache, k, klen); /* the store stays unchanged */
      return on;
    }
    if (on) {
      size_t dl;
      const char *d = rocksdb_pinnableslice_value(s->pinned, &dl);
      if (dl != vs) {
        s->cb->del(s->cache, k, klen);
        unpin(s);
        brook_store_set_error(s->store, "RocksDB database %s: a value of %zu bytes, not %zu",
                              s->db.path, dl, vs);
        return BROOK_ERR_CORRUPT;
      }
      memcpy(e, d, vs);
      f = C_ONDISK;
      live = 1;
    }
    unpin(s);
  }
  if (!live) {
    memset(e, 0, vs);
    s->count++;
    *created = 1;
  }
  e[vs] = (unsigned char)(C_LIVE | C_DIRTY | C_UPDATED | (f & C_ONDISK));
  s->pending = 1;
  *value = e;
  return BROOK_OK;
}

/* ---- whole store ---- */

static brook_err_t rdb_clear(void *state) {
  rdb_store_t *s = state;
  unpin(s);
  brook_err_t err = s->cb->clear(s->cache);
  if (err)
    return err;
  s->cleared = 1;
  s->count = 0;
  s->pending = 1;
  return BROOK_OK;
}

static size_t rdb_count(void *state) { return ((rdb_store_t *)state)->count; }

static size_t rdb_memory(void *state) {
  rdb_store_t *s = state;
  return sizeof(*s) + s->kcap + s->vcap + s->cb->memory(s->cache) + rdb_db_memory(&s->db);
}

static int rdb_has_pending(void *state) { return ((rdb_store_t *)state)->pending; }

/* Adds every changed cache entry to the batch, and reports in-place updates to fn (until
 * its first error, kept in *fn_err: the rest are reported at the next flush). */
static brook_err_t batch_changes(rdb_store_t *s, brook_store_listener_fn fn, void *fn_opaque,
                                 size_t *tombstones, brook_err_t *fn_err) {
  void *it;
  brook_err_t err = s->cb->iter_open(s->cache, &it);
  if (err)
    return err;
  brook_store_entry_t e;
  for (err = s->cb->iter_seek(it, NULL, 0, &e); err == BROOK_OK; err = s->cb->iter_next(it, &e)) {
    unsigned char *fp = (unsigned char *)e.value + e.value_len - 1;
    size_t vl = e.value_len - 1;
    if (*fp & C_DIRTY) {
      size_t kl = rdb_key(s, e.key, e.key_len);
      if (!kl) {
        err = BROOK_ERR_NOMEM;
        break;
      }
      if (*fp & C_LIVE) {
        rocksdb_writebatch_put(s->batch, (const char *)s->kbuf, kl, e.value, vl);
      } else {
        rocksdb_writebatch_delete(s->batch, (const char *)s->kbuf, kl);
        ++*tombstones;
      }
    }
    if (!(*fp & C_UPDATED) || *fn_err)
      continue;
    if (fn)
      *fn_err = fn(e.key, e.key_len, e.value, vl, fn_opaque);
    if (!*fn_err)
      *fp &= (unsigned char)~C_UPDATED;
  }
  s->cb->iter_close(it);
  return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
}

/* The first cache entry at or after key (NULL: the first) whose flags are 0: a tombstone
 * once settle() cleared the flags. BROOK_OK, BROOK_ERR_NOT_FOUND or an error. */
static brook_err_t next_tombstone(rdb_store_t *s, void *it, const void *key, size_t klen,
                                  brook_store_entry_t *e) {
  brook_err_t err;
  for (err = s->cb->iter_seek(it, key, klen, e); err == BROOK_OK; err = s->cb->iter_next(it, e))
    if (((const unsigned char *)e->value)[e->value_len - 1] == 0)
      break;
  return err;
}

/* After a successful write: live entries are clean and on disk, tombstones leave the cache.
 * *updated_left: some in-place change is still to be reported. */
static brook_err_t settle(rdb_store_t *s, size_t tombstones, int *updated_left) {
  void *it;
  brook_err_t err = s->cb->iter_open(s->cache, &it);
  if (err)
    return err;
  brook_store_entry_t e;
  for (err = s->cb->iter_seek(it, NULL, 0, &e); err == BROOK_OK; err = s->cb->iter_next(it, &e)) {
    unsigned char *fp = (unsigned char *)e.value + e.value_len - 1;
    *updated_left |= (*fp & C_UPDATED) != 0;
    *fp = (*fp & C_LIVE) ? (unsigned char)(C_LIVE | C_ONDISK | (*fp & C_UPDATED)) : 0;
  }
  /* Each delete may move entries: seek again from the deleted key (in kbuf) each time. */
  size_t from = 0; /* kbuf's length, or 0 before the first delete */
  while (tombstones) {
    err =
        next_tombstone(s, it, from ? s->kbuf + RDB_ID_LEN : NULL, from ? from - RDB_ID_LEN : 0, &e);
    if (err)
      break;
    if (!(from = rdb_key(s, e.key, e.key_len))) {
      err = BROOK_ERR_NOMEM;
      break;
    }
    if ((err = s->cb->del(s->cache, s->kbuf + RDB_ID_LEN, from - RDB_ID_LEN)) != BROOK_OK)
      break;
    tombstones--;
  }
  s->cb->iter_close(it);
  return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
}

/* Writes the count of store s into the batch (little-endian, 8 bytes). */
static void batch_count(rdb_store_t *s) {
  unsigned char ck[COUNT_KEY_LEN + RDB_ID_LEN], cv[8];
  memcpy(ck, COUNT_KEY, COUNT_KEY_LEN);
  memcpy(ck + COUNT_KEY_LEN, s->id_be, RDB_ID_LEN);
  for (int i = 0; i < 8; i++)
    cv[i] = (unsigned char)((uint64_t)s->count >> (8 * i));
  rocksdb_writebatch_put(s->batch, (const char *)ck, sizeof(ck), (const char *)cv, sizeof(cv));
}

static brook_err_t rdb_flush(void *state, brook_store_listener_fn fn, void *fn_opaque) {
  rdb_store_t *s = state;
  unpin(s);
  if (!s->pending)
    return BROOK_OK;
  rocksdb_writebatch_clear(s->batch);
  if (s->cleared)
    rocksdb_writebatch_delete_range(s->batch, (const char *)s->id_be, RDB_ID_LEN,
                                    (const char *)s->end_be, RDB_ID_LEN);
  size_t tombstones = 0;
  brook_err_t fn_err = BROOK_OK;
  brook_err_t err = batch_changes(s, fn, fn_opaque, &tombstones, &fn_err);
  if (!err) {
    batch_count(s);
    err = rdb_db_write(&s->db, s->store, s->batch);
  }
  rocksdb_writebatch_clear(s->batch);
  if (err)
    return err; /* the disk is as before; the cache still holds every change */
  s->gen++;
  s->cleared = 0;
  int updated_left = 0;
  if ((err = settle(s, tombstones, &updated_left)) != BROOK_OK)
    return err;
  s->pending = updated_left;          /* reported at the next flush */
  s->cb->flush(s->cache, NULL, NULL); /* forget the cache's own in-place marks */
  if (!updated_left && s->cb->memory(s->cache) > s->cache_bytes)
    s->cb->clear(s->cache); /* all clean: the disk has everything */
  return fn_err;
}

static const brook_store_backend_t rocksdb_backend = {
    .version = BROOK_STORE_BACKEND_VERSION,
    .caps = BROOK_STORE_CAP_ORDERED | BROOK_STORE_CAP_UPDATE,
    .name = "rocksdb",
    .open = rdb_open,
    .close = rdb_close,
    .get = rdb_get,
    .put = rdb_put,
    .del = rdb_del,
    .iter_open = rdb_iter_open,
    .iter_seek = rdb_iter_seek,
    .iter_next = rdb_iter_next,
    .iter_close = rdb_iter_close,
    .clear = rdb_clear,
    .count = rdb_count,
    .memory = rdb_memory,
    .update = rdb_update,
    .flush = rdb_flush,
    .has_pending = rdb_has_pending,
};

const brook_store_backend_t *brook_store_backend_rocksdb(void) { return &rocksdb_backend; }
