/* The RocksDB backend's iterators (rocksdb_store.h): the write cache and the disk walked
 * side by side in key order. Where both have a key the cache's entry wins (a newer value, or
 * a tombstone hiding the disk's); tombstones are never returned.
 *
 * The disk side is a RocksDB iterator bounded to the store's id (its read options are the
 * store's, made once at open), which reads the database as
 * it was when the iterator was created: after a flush wrote to disk (its database's gen moved), the
 * next seek creates a fresh one. After clear() and before the next flush, the disk counts as empty;
 * its keys in a range deleted since (bk_store_delete_range) are skipped.
 * The store layer re-seeks after every change and flush (no CAP_STABLE_ITER). */
#include <string.h>

#include "core/alloc.h"
#include "state/rocksdb_store.h"

typedef struct rdb_iter {
  rdb_store_t *s;
  void *ci;               /* the cache's iterator */
  rocksdb_iterator_t *di; /* the disk's, or NULL */
  uint64_t gen;           /* s->db->gen when di was created */
  brook_store_entry_t ce;
  int c_ok, d_ok;     /* the side has a current entry */
  int adv_c, adv_d;   /* move the side before the next answer */
  unsigned char *key; /* id || seek key */
  size_t kcap;
} rdb_iter_t;

static brook_err_t disk_error(rdb_iter_t *it) {
  char *why = NULL;
  rocksdb_iter_get_error(it->di, &why);
  if (!why)
    return BROOK_OK;
  brook_store_set_error(it->s->store, "RocksDB read from %s failed: %s", it->s->db->path, why);
  rocksdb_free(why);
  return BROOK_ERR_IO;
}

brook_err_t rdb_iter_open(void *state, void **iter) {
  rdb_store_t *s = state;
  rdb_iter_t *it = bk_calloc(s->alloc, 1, sizeof(*it));
  if (!it) {
    brook_store_set_error(s->store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  it->s = s;
  brook_err_t err = s->cb->iter_open(s->cache, &it->ci);
  if (err) {
    rdb_iter_close(it);
    return err;
  }
  *iter = it;
  return BROOK_OK;
}

void rdb_iter_close(void *iter) {
  rdb_iter_t *it = iter;
  if (it->di)
    rocksdb_iter_destroy(it->di);
  if (it->ci)
    it->s->cb->iter_close(it->ci);
  bk_free(it->s->alloc, it->key);
  bk_free(it->s->alloc, it);
}

static int key_cmp(const void *a, size_t al, const void *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (al > bl) - (al < bl);
}

/* The next live entry of either side in key order (after moving the sides marked). */
static brook_err_t answer(rdb_iter_t *it, brook_store_entry_t *entry) {
  rdb_store_t *s = it->s;
  for (;;) {
    if (it->adv_c) {
      brook_err_t err = s->cb->iter_next(it->ci, &it->ce);
      if (err && err != BROOK_ERR_NOT_FOUND)
        return err;
      it->c_ok = err == BROOK_OK;
      it->adv_c = 0;
    }
    if (it->adv_d) {
      rocksdb_iter_next(it->di);
      it->d_ok = rocksdb_iter_valid(it->di);
      it->adv_d = 0;
      brook_err_t err = it->d_ok ? BROOK_OK : disk_error(it);
      if (err)
        return err;
    }
    if (!it->c_ok && !it->d_ok)
      return BROOK_ERR_NOT_FOUND;
    size_t dkl = 0;
    const char *dk = it->d_ok ? rocksdb_iter_key(it->di, &dkl) : NULL;
    int cmp = !it->c_ok   ? 1
              : !it->d_ok ? -1
                          : key_cmp(it->ce.key, it->ce.key_len, dk + RDB_ID_LEN, dkl - RDB_ID_LEN);
    if (cmp > 0 && rdb_in_deleted_range(s, dk + RDB_ID_LEN, dkl - RDB_ID_LEN)) {
      it->adv_d = 1; /* deleted by a range the disk does not know of yet */
      continue;
    }
    if (cmp > 0) { /* the disk's entry, not in the cache */
      size_t dvl = 0;
      const char *dv = rocksdb_iter_value(it->di, &dvl);
      entry->key = dk + RDB_ID_LEN;
      entry->key_len = dkl - RDB_ID_LEN;
      entry->value = dv ? (const void *)dv : (const void *)"";
      entry->value_len = dvl;
      it->adv_d = 1;
      return BROOK_OK;
    }
    it->adv_c = 1;
    it->adv_d = cmp == 0; /* the cache's entry shadows the disk's */
    unsigned flags = ((const unsigned char *)it->ce.value)[it->ce.value_len - 1];
    if (!(flags & C_LIVE))
      continue; /* a tombstone */
    *entry = it->ce;
    entry->value_len--; /* without the flag byte */
    return BROOK_OK;
  }
}

brook_err_t rdb_iter_seek(void *iter, const void *key, size_t klen, brook_store_entry_t *entry) {
  rdb_iter_t *it = iter;
  rdb_store_t *s = it->s;
  it->adv_c = it->adv_d = 0;
  brook_err_t err = s->cb->iter_seek(it->ci, key, klen, &it->ce);
  if (err && err != BROOK_ERR_NOT_FOUND)
    return err;
  it->c_ok = err == BROOK_OK;
  it->d_ok = 0;
  if (!s->cleared && !s->clear_collected) {
    if (it->di && it->gen != s->db->gen) {
      rocksdb_iter_destroy(it->di);
      it->di = NULL;
    }
    if (!it->di) {
      if (!(it->di = rocksdb_create_iterator(s->db->db, s->iter_read))) {
        brook_store_set_error(s->store, "out of memory");
        return BROOK_ERR_NOMEM;
      }
      it->gen = s->db->gen;
    }
    size_t need = RDB_ID_LEN + (key ? klen : 0);
    if (need > it->kcap) {
      unsigned char *p = bk_malloc(s->alloc, need * 2);
      if (!p) {
        brook_store_set_error(s->store, "out of memory");
        return BROOK_ERR_NOMEM;
      }
      bk_free(s->alloc, it->key);
      it->key = p;
      it->kcap = need * 2;
    }
    memcpy(it->key, s->id_be, RDB_ID_LEN);
    if (key && klen)
      memcpy(it->key + RDB_ID_LEN, key, klen);
    rocksdb_iter_seek(it->di, (const char *)it->key, need);
    it->d_ok = rocksdb_iter_valid(it->di);
    if (!it->d_ok && (err = disk_error(it)) != BROOK_OK)
      return err;
  }
  return answer(it, entry);
}

brook_err_t rdb_iter_next(void *iter, brook_store_entry_t *entry) {
  return answer((rdb_iter_t *)iter, entry);
}
