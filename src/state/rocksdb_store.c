/* The RocksDB backend (brook/store_rocksdb.h): the write cache in front of the database,
 * point operations, and the flush that writes a commit's changes as one atomic batch.
 *
 * Every entry of the cache says (C_* flags, rocksdb_store.h) whether the key is live or a
 * tombstone, whether it must be written, and whether the disk has it; the last is what keeps
 * the entry count exact without reading the disk at flush: a key enters the cache once per
 * flush interval, and only then is the disk asked whether it has it (a bloom filter answers
 * most "no"s from memory). */
#include <assert.h>
#include <string.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "state/rocksdb_store.h"
#include "state/store.h"
#include "state/store_range.h"

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
  if (s->cleared || s->clear_collected ||
      rdb_in_deleted_range(s, s->kbuf + RDB_ID_LEN, klen - RDB_ID_LEN))
    return 0;
  char *why = NULL;
  s->pinned = rocksdb_get_pinned(s->db->db, s->db->read, (const char *)s->kbuf, klen, &why);
  if (why) {
    brook_store_set_error(s->store, "RocksDB read from %s failed: %s", s->db->path, why);
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

static brook_err_t read_count(rdb_store_t *s) {
  unsigned char k[COUNT_KEY_LEN + RDB_ID_LEN];
  memcpy(k, COUNT_KEY, COUNT_KEY_LEN);
  memcpy(k + COUNT_KEY_LEN, s->id_be, RDB_ID_LEN);
  bk_errmsg_t why;
  char *v = NULL;
  size_t vl = 0;
  s->count = 0;
  if (rdb_db_get(s->db, k, sizeof(k), &v, &vl, &why) != BROOK_OK) {
    brook_store_set_error(s->store, "%s", why.text);
    return BROOK_ERR_IO;
  }
  if (!v)
    return BROOK_OK;
  brook_err_t err = BROOK_OK;
  if (vl != 8) {
    brook_store_set_error(s->store, "RocksDB database %s: its entry count has %zu bytes, not 8",
                          s->db->path, vl);
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

brook_err_t rdb_store_open(rdb_store_t **out, brook_store_t *store, const char *name,
                           const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                           rdb_db_t *db, uint32_t id, const brook_rocksdb_opts_t *o) {
  rdb_store_t *s = bk_calloc(alloc, 1, sizeof(*s));
  if (!s) {
    brook_store_set_error(store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  s->store = store;
  s->alloc = alloc;
  s->value_size = opts->value_size;
  s->cache_bytes = o->cache_bytes;
  s->id = id;
  for (int i = 0; i < RDB_ID_LEN; i++) {
    s->id_be[i] = (unsigned char)(id >> (8 * (RDB_ID_LEN - 1 - i)));
    s->end_be[i] = (unsigned char)((id + 1) >> (8 * (RDB_ID_LEN - 1 - i)));
  }
  if (!(s->iter_read = rocksdb_readoptions_create())) {
    bk_free(alloc, s);
    brook_store_set_error(store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  rocksdb_readoptions_set_iterate_upper_bound(s->iter_read, (const char *)s->end_be, RDB_ID_LEN);
  s->cb = brook_store_backend_ordered();
  brook_store_opts_t co = *opts;
  co.value_size = opts->value_size ? opts->value_size + 1 : 0; /* value || flags */
  co.backend = NULL;
  co.backend_opaque = NULL;
  brook_err_t err = s->cb->open(&s->cache, store, name, &co, alloc, NULL);
  if (err) {
    rocksdb_readoptions_destroy(s->iter_read);
    bk_free(alloc, s);
    return err;
  }
  if (db) {
    s->db = db;
  } else {
    bk_errmsg_t why;
    if ((err = rdb_db_open(&s->own, o->dir, name, o, alloc, &why)) != BROOK_OK) {
      brook_store_set_error(store, "%s", why.text);
      rdb_store_close(s);
      return err;
    }
    s->db = &s->own;
  }
  if ((err = read_count(s)) != BROOK_OK) {
    rdb_store_close(s);
    return err;
  }
  *out = s;
  return BROOK_OK;
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
  return rdb_store_open((rdb_store_t **)state, store, name, opts, alloc, NULL,
                        1 /* one store per database */, &o);
}

void rdb_store_close(void *state) {
  rdb_store_t *s = state;
  unpin(s);
  if (s->db == &s->own)
    rdb_db_close(&s->own);
  else if (s->db)
    rdb_task_db_forget(s->db, s);
  if (s->cache)
    s->cb->close(s->cache);
  if (s->iter_read)
    rocksdb_readoptions_destroy(s->iter_read);
  bk_free(s->alloc, s->kbuf);
  bk_free(s->alloc, s->vbuf);
  bk_free(s->alloc, s->ranges);
  bk_free(s->alloc, s->name);
  bk_free(s->alloc, s);
}

/* ---- point operations ---- */

/* A task database's store whose cache passed its size asks for a commit (once until the
 * next write): the cache only ever holds changes until a commit writes them, so it grows
 * past its size rather than writing state no commit covers. */
static void check_full(rdb_store_t *s) {
  if (s->db->on_full && !s->full_reported && s->cb->memory(s->cache) > s->cache_bytes) {
    s->full_reported = 1;
    s->db->on_full(s->db->on_full_opaque);
  }
}

static brook_err_t rdb_get(void *state, const void *key, size_t klen, const void **value,
                           size_t *value_len) {
  rdb_store_t *s = state;
  const unsigned char *v = NULL;
  size_t vl = 0;
  unsigned f = 0;
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

/* Where key stands (kbuf holds id || key afterwards): 1 live, 0 absent, or an error. *f: its
 * cache flags (a cache miss: C_ONDISK if the disk has it); *in: whether the cache has it. */
static int key_state(rdb_store_t *s, const void *key, size_t klen, unsigned *f, int *in) {
  size_t kl = rdb_key(s, key, klen);
  if (!kl)
    return BROOK_ERR_NOMEM;
  const unsigned char *v = NULL;
  size_t vl = 0;
  *f = 0;
  *in = cache_get(s, s->kbuf + RDB_ID_LEN, klen, &v, &vl, f);
  if (*in < 0)
    return *in;
  if (*in)
    return (*f & C_LIVE) != 0;
  int on = disk_get(s, kl);
  unpin(s);
  *f = on > 0 ? C_ONDISK : 0;
  return on;
}

static brook_err_t rdb_put(void *state, const void *key, size_t klen, const void *value,
                           size_t value_len) {
  rdb_store_t *s = state;
  /* key and value may be views of this store (a cache entry, a pinned disk value): copy
   * the value first, and the key into kbuf, before anything moves. */
  size_t cl = cache_value(s, value, value_len, 0);
  if (!cl)
    return BROOK_ERR_NOMEM;
  unsigned f;
  int in, live = key_state(s, key, klen, &f, &in);
  if (live < 0)
    return live;
  s->vbuf[value_len] = (unsigned char)(C_LIVE | C_DIRTY | (f & (C_ONDISK | C_COLLECTED)));
  brook_err_t err = s->cb->put(s->cache, s->kbuf + RDB_ID_LEN, klen, s->vbuf, cl);
  if (err)
    return err;
  s->count += !live;
  s->pending = 1;
  check_full(s);
  return BROOK_OK;
}

/* Marks key deleted in the cache: a tombstone if the disk has it (or will, once the write in
 * flight is done), else no entry. */
static brook_err_t forget(rdb_store_t *s, const void *k, size_t klen, unsigned f, int in_cache) {
  if (!(f & C_ONDISK))
    return in_cache ? s->cb->del(s->cache, k, klen) : BROOK_OK;
  size_t cl = cache_value(s, NULL, s->value_size, C_DIRTY | (f & (C_ONDISK | C_COLLECTED)));
  if (!cl)
    return BROOK_ERR_NOMEM;
  return s->cb->put(s->cache, k, klen, s->vbuf, cl);
}

static brook_err_t rdb_del(void *state, const void *key, size_t klen) {
  rdb_store_t *s = state;
  unsigned f;
  int in, live = key_state(s, key, klen, &f, &in);
  if (live <= 0)
    return live < 0 ? live : BROOK_ERR_NOT_FOUND;
  brook_err_t err = forget(s, s->kbuf + RDB_ID_LEN, klen, f, in);
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
                              s->db->path, dl, vs);
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
  e[vs] = (unsigned char)(C_LIVE | C_DIRTY | C_UPDATED | (f & (C_ONDISK | C_COLLECTED)));
  s->pending = 1;
  s->updated = 1;
  *value = e;
  if (made)
    check_full(s);
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
  return sizeof(*s) + s->kcap + s->vcap + s->ranges_cap + s->cb->memory(s->cache) +
         (s->db == &s->own ? rdb_db_memory(&s->own) : 0); /* a task's: counted once, there */
}

/* Reports the keys changed in place since the last report to fn (until its first error:
 * the rest are reported next time). */
static brook_err_t report_updates(rdb_store_t *s, brook_store_listener_fn fn, void *fn_opaque) {
  if (!s->updated)
    return BROOK_OK;
  void *it;
  brook_err_t err = s->cb->iter_open(s->cache, &it), fn_err = BROOK_OK;
  if (err)
    return err;
  brook_store_entry_t e;
  int left = 0;
  for (err = s->cb->iter_seek(it, NULL, 0, &e); err == BROOK_OK; err = s->cb->iter_next(it, &e)) {
    unsigned char *fp = (unsigned char *)e.value + e.value_len - 1;
    if (!(*fp & C_UPDATED))
      continue;
    if (fn && !fn_err)
      fn_err = fn(e.key, e.key_len, e.value, e.value_len - 1, fn_opaque);
    if (fn_err)
      left = 1;
    else
      *fp &= (unsigned char)~C_UPDATED;
  }
  s->cb->iter_close(it);
  s->updated = left;
  return err == BROOK_ERR_NOT_FOUND ? fn_err : err;
}

static brook_err_t recollect(rdb_store_t *s);

/* A range record's parts. */
static size_t range_at(const rdb_store_t *s, size_t at, const unsigned char **lo, uint32_t *lo_len,
                       const unsigned char **hi, uint32_t *hi_len) {
  memcpy(lo_len, s->ranges + at, 4);
  memcpy(hi_len, s->ranges + at + 4, 4);
  *lo = s->ranges + at + 8;
  *hi = *lo + *lo_len;
  return at + 8 + *lo_len + *hi_len;
}

static int bytes_cmp(const void *a, size_t al, const void *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (al > bl) - (al < bl);
}

int rdb_in_deleted_range(const rdb_store_t *s, const void *key, size_t klen) {
  for (size_t at = 0; at < s->ranges_used;) {
    const unsigned char *lo, *hi;
    uint32_t ll, hl;
    at = range_at(s, at, &lo, &ll, &hi, &hl);
    if (bytes_cmp(key, klen, lo, ll) >= 0 && bytes_cmp(key, klen, hi, hl) < 0)
      return 1;
  }
  return 0;
}

/* The ranges deleted since the last collect go into the write (before its puts: a key put
 * again after the range's deletion is written after it). */
static brook_err_t collect_ranges(rdb_store_t *s) {
  for (size_t at = s->ranges_collected; at < s->ranges_used;) {
    const unsigned char *lo, *hi;
    uint32_t ll, hl;
    at = range_at(s, at, &lo, &ll, &hi, &hl);
    size_t lk = rdb_key(s, lo, ll);
    unsigned char *lcopy = lk ? bk_malloc(s->alloc, lk) : NULL;
    if (!lcopy) {
      brook_store_set_error(s->store, "out of memory");
      return BROOK_ERR_NOMEM;
    }
    memcpy(lcopy, s->kbuf, lk);
    size_t hk = rdb_key(s, hi, hl);
    if (hk)
      rocksdb_writebatch_delete_range(s->db->batch, (const char *)lcopy, lk, (const char *)s->kbuf,
                                      hk);
    bk_free(s->alloc, lcopy);
    if (!hk)
      return BROOK_ERR_NOMEM;
  }
  s->ranges_collected = s->ranges_used;
  return BROOK_OK;
}

brook_err_t rdb_store_collect(rdb_store_t *s) {
  rocksdb_writebatch_t *batch = s->db->batch;
  assert(!s->collected); /* one write in flight at a time */
  if (!s->pending)
    return BROOK_OK;
  brook_err_t err;
  if (s->abort_owed && (err = recollect(s)) != BROOK_OK)
    return err;
  s->collected = 1;
  s->pending = 0;
  if (s->cleared) {
    rocksdb_writebatch_delete_range(batch, (const char *)s->id_be, RDB_ID_LEN,
                                    (const char *)s->end_be, RDB_ID_LEN);
    s->clear_collected = 1;
    s->cleared = 0;
  }
  if ((err = collect_ranges(s)) != BROOK_OK)
    return err;
  void *it;
  if ((err = s->cb->iter_open(s->cache, &it)) != BROOK_OK)
    return err;
  brook_store_entry_t e;
  for (err = s->cb->iter_seek(it, NULL, 0, &e); err == BROOK_OK; err = s->cb->iter_next(it, &e)) {
    unsigned char *fp = (unsigned char *)e.value + e.value_len - 1;
    if (!(*fp & C_DIRTY))
      continue;
    size_t kl = rdb_key(s, e.key, e.key_len);
    if (!kl) {
      err = BROOK_ERR_NOMEM;
      break;
    }
    if (*fp & C_LIVE)
      rocksdb_writebatch_put(batch, (const char *)s->kbuf, kl, e.value, e.value_len - 1);
    else
      rocksdb_writebatch_delete(batch, (const char *)s->kbuf, kl);
    *fp = (unsigned char)((*fp & ~C_DIRTY) | C_COLLECTED | (*fp & C_LIVE ? C_ONDISK : 0));
  }
  s->cb->iter_close(it);
  if (err != BROOK_ERR_NOT_FOUND)
    return err;
  unsigned char ck[COUNT_KEY_LEN + RDB_ID_LEN], cv[8];
  memcpy(ck, COUNT_KEY, COUNT_KEY_LEN);
  memcpy(ck + COUNT_KEY_LEN, s->id_be, RDB_ID_LEN);
  for (int i = 0; i < 8; i++)
    cv[i] = (unsigned char)((uint64_t)s->count >> (8 * i));
  rocksdb_writebatch_put(batch, (const char *)ck, sizeof(ck), (const char *)cv, sizeof(cv));
  return BROOK_OK;
}

/* The first cache entry at or after key (NULL: the first) whose flags are 0: a tombstone
 * once settle cleared the flags. BROOK_OK, BROOK_ERR_NOT_FOUND or an error. */
static brook_err_t next_tombstone(rdb_store_t *s, void *it, const void *key, size_t klen,
                                  brook_store_entry_t *e) {
  brook_err_t err;
  for (err = s->cb->iter_seek(it, key, klen, e); err == BROOK_OK; err = s->cb->iter_next(it, e))
    if (((const unsigned char *)e->value)[e->value_len - 1] == 0)
      break;
  return err;
}

brook_err_t rdb_store_settle(rdb_store_t *s) {
  s->full_reported = 0;
  if (!s->collected)
    return BROOK_OK;
  s->collected = 0;
  s->clear_collected = 0;
  /* The ranges written are on disk now: their keys are gone there. */
  if (s->ranges_collected) {
    memmove(s->ranges, s->ranges + s->ranges_collected, s->ranges_used - s->ranges_collected);
    s->ranges_used -= s->ranges_collected;
  }
  s->ranges_collected = 0;
  void *it;
  brook_err_t err = s->cb->iter_open(s->cache, &it);
  if (err)
    return err;
  brook_store_entry_t e;
  size_t tombstones = 0; /* written deletes not changed since: they leave the cache */
  for (err = s->cb->iter_seek(it, NULL, 0, &e); err == BROOK_OK; err = s->cb->iter_next(it, &e)) {
    unsigned char *fp = (unsigned char *)e.value + e.value_len - 1;
    if (!(*fp & C_COLLECTED))
      continue;
    *fp &= (unsigned char)~C_COLLECTED;
    if (*fp & C_DIRTY)
      continue; /* changed since the collect: written next time */
    if (*fp & C_LIVE) {
      *fp = (unsigned char)(C_LIVE | C_ONDISK | (*fp & C_UPDATED));
    } else {
      *fp = 0;
      tombstones++;
    }
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
  if (err && err != BROOK_ERR_NOT_FOUND)
    return err;
  s->cb->flush(s->cache, NULL, NULL); /* forget the cache's own in-place marks */
  if (!s->updated && !s->pending && !s->cleared && s->cb->memory(s->cache) > s->cache_bytes)
    s->cb->clear(s->cache); /* all clean: the disk has everything */
  return BROOK_OK;
}

/* Every collected entry is dirty again. BROOK_OK or NOMEM (the cache cannot be walked). */
static brook_err_t recollect(rdb_store_t *s) {
  void *it;
  brook_err_t err = s->cb->iter_open(s->cache, &it);
  if (err)
    return err;
  brook_store_entry_t e;
  for (err = s->cb->iter_seek(it, NULL, 0, &e); err == BROOK_OK; err = s->cb->iter_next(it, &e)) {
    unsigned char *fp = (unsigned char *)e.value + e.value_len - 1;
    if (*fp & C_COLLECTED)
      *fp = (unsigned char)((*fp & ~C_COLLECTED) | C_DIRTY);
  }
  s->cb->iter_close(it);
  s->abort_owed = 0;
  return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
}

void rdb_store_abort(rdb_store_t *s) {
  s->full_reported = 0;
  if (!s->collected)
    return;
  s->collected = 0;
  s->pending = 1;
  s->cleared |= s->clear_collected;
  s->clear_collected = 0;
  s->ranges_collected = 0; /* written by the next collect */
  if (recollect(s) != BROOK_OK)
    s->abort_owed = 1; /* the next collect does it first (reads never look at C_COLLECTED) */
}

/* A standalone store writes its changes now; a task's store only reports them (its task
 * database writes every store's at the task's commit). */
static brook_err_t rdb_flush(void *state, brook_store_listener_fn fn, void *fn_opaque) {
  rdb_store_t *s = state;
  unpin(s);
  brook_err_t fn_err = report_updates(s, fn, fn_opaque);
  if (fn_err == BROOK_ERR_NOMEM || s->db != &s->own || !s->pending)
    return fn_err;
  brook_err_t err = rdb_store_collect(s);
  bk_errmsg_t why;
  if (!err && (err = rdb_db_write(s->db, &why)) != BROOK_OK)
    brook_store_set_error(s->store, "%s", why.text);
  rocksdb_writebatch_clear(s->db->batch);
  if (err) {
    rdb_store_abort(s);
    return err; /* the disk is as before; the cache still holds every change */
  }
  err = rdb_store_settle(s);
  return err ? err : fn_err;
}

static int rdb_has_pending(void *state) {
  rdb_store_t *s = state;
  return s->updated || (s->pending && s->db == &s->own);
}

/* Both tables (a standalone store's, a task database's) differ only in open. */
#define RDB_TABLE(open_fn)                                                                         \
  {                                                                                                \
    .version = BROOK_STORE_BACKEND_VERSION,                                                        \
    .caps = BROOK_STORE_CAP_ORDERED | BROOK_STORE_CAP_UPDATE, .name = "rocksdb", .open = open_fn,  \
    .close = rdb_store_close, .get = rdb_get, .put = rdb_put, .del = rdb_del,                      \
    .iter_open = rdb_iter_open, .iter_seek = rdb_iter_seek, .iter_next = rdb_iter_next,            \
    .iter_close = rdb_iter_close, .clear = rdb_clear, .count = rdb_count, .memory = rdb_memory,    \
    .update = rdb_update, .flush = rdb_flush, .has_pending = rdb_has_pending                       \
  }

static const brook_store_backend_t rocksdb_backend = RDB_TABLE(rdb_open);
static const brook_store_backend_t task_backend = RDB_TABLE(rdb_task_store_open);

const brook_store_backend_t *brook_store_backend_rocksdb(void) { return &rocksdb_backend; }

const brook_store_backend_t *rdb_task_backend(void) { return &task_backend; }

/* ---- range deletion (store_range.h) ---- */

/* Removes the cache's entries in [lo, hi). */
static brook_err_t cache_drop_range(rdb_store_t *s, const void *lo, size_t ll, const void *hi,
                                    size_t hl) {
  void *it;
  brook_err_t err = s->cb->iter_open(s->cache, &it);
  if (err)
    return err;
  brook_store_entry_t e;
  /* Each delete may move entries: seek again from lo each time. */
  while ((err = s->cb->iter_seek(it, lo, ll, &e)) == BROOK_OK &&
         bytes_cmp(e.key, e.key_len, hi, hl) < 0) {
    size_t kl = rdb_key(s, e.key, e.key_len); /* e's key is the cache's: copy it first */
    if (!kl) {
      err = BROOK_ERR_NOMEM;
      break;
    }
    if ((err = s->cb->del(s->cache, s->kbuf + RDB_ID_LEN, kl - RDB_ID_LEN)) != BROOK_OK)
      break;
  }
  s->cb->iter_close(it);
  return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
}

brook_err_t bk_store_delete_range(brook_store_t *st, const void *lo, size_t lo_len, const void *hi,
                                  size_t hi_len) {
  if (!st || (st->be != &rocksdb_backend && st->be != &task_backend) || st->listener)
    return BROOK_ERR_STATE;
  rdb_store_t *s = st->be_state;
  if (bytes_cmp(lo, lo_len, hi, hi_len) >= 0)
    return BROOK_OK;
  unpin(s);
  size_t need = s->ranges_used + 8 + lo_len + hi_len;
  if (need > s->ranges_cap) { /* (grow() does not keep the contents) */
    unsigned char *p = bk_realloc(s->alloc, s->ranges, need * 2);
    if (!p)
      return nomem(s);
    s->ranges = p;
    s->ranges_cap = need * 2;
  }
  /* How many live entries the range holds: one walk of cache and disk side by side. */
  void *it;
  brook_err_t err = rdb_iter_open(s, &it);
  if (err)
    return err;
  brook_store_entry_t e;
  size_t n = 0;
  for (err = rdb_iter_seek(it, lo, lo_len, &e);
       err == BROOK_OK && bytes_cmp(e.key, e.key_len, hi, hi_len) < 0; err = rdb_iter_next(it, &e))
    n++;
  rdb_iter_close(it);
  if (err && err != BROOK_ERR_NOT_FOUND)
    return err;
  uint32_t ll = (uint32_t)lo_len, hl = (uint32_t)hi_len;
  unsigned char *p = s->ranges + s->ranges_used;
  memcpy(p, &ll, 4);
  memcpy(p + 4, &hl, 4);
  if (lo_len)
    memcpy(p + 8, lo, lo_len);
  if (hi_len)
    memcpy(p + 8 + lo_len, hi, hi_len);
  s->ranges_used = need;
  s->count -= n < s->count ? n : s->count;
  s->pending = 1;
  st->gen++; /* iterators re-seek */
  /* The disk's keys are hidden now; then the cache's go (a failure leaves some of them, newer
   * values that still read as they did). */
  return cache_drop_range(s, s->ranges + need - hi_len - lo_len, lo_len, s->ranges + need - hi_len,
                          hi_len);
}
