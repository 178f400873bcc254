/* A task's state on disk (task_db.h): the task database, its store registry and its commit.
 *
 * Bookkeeping lives under store id 0 (rocksdb_store.h): "store/<name>" -> the store's 4-byte
 * id, "next-id" -> the next id to give, "positions" -> the runtime's positions of the last
 * commit. Every commit rewrites the registry entries of the open stores, so a store opened
 * since the last commit is registered by the same write that first holds its data. */
#include <string.h>

#include "core/alloc.h"
#include "state/rocksdb_store.h"
#include "state/task_db.h"

#define META "\0\0\0\0"
#define META_LEN 4
#define NEXT_ID_KEY META "next-id"
#define POSITIONS_KEY META "positions"
#define STORE_KEY META "store/"

struct bk_task_db {
  rdb_db_t db;
  brook_rocksdb_opts_t o;
  uint32_t next_id;
  unsigned char *positions; /* of the last commit (NULL: none) */
  size_t positions_len;
  int prepared;                  /* a write is collected in db.batch (bk_task_db_prepare) */
  unsigned char *next_positions; /* ... with these positions */
  size_t next_len;
  unsigned char *kbuf; /* registry keys */
  size_t kcap;
};

static void be32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * (3 - i)));
}

static uint32_t get_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* kbuf = "store/<name>" under id 0; returns its length (0: NOMEM). */
static size_t store_key(bk_task_db_t *t, const char *name) {
  size_t nl = strlen(name), need = sizeof(STORE_KEY) - 1 + nl;
  if (need > t->kcap) {
    unsigned char *p = bk_malloc(t->db.alloc, need);
    if (!p)
      return 0;
    bk_free(t->db.alloc, t->kbuf);
    t->kbuf = p;
    t->kcap = need;
  }
  memcpy(t->kbuf, STORE_KEY, sizeof(STORE_KEY) - 1);
  memcpy(t->kbuf + sizeof(STORE_KEY) - 1, name, nl);
  return need;
}

static brook_err_t read_meta(bk_task_db_t *t, bk_errmsg_t *why) {
  char *v = NULL;
  size_t vl = 0;
  brook_err_t err = rdb_db_get(&t->db, NEXT_ID_KEY, sizeof(NEXT_ID_KEY) - 1, &v, &vl, why);
  if (err)
    return err;
  t->next_id = 1;
  if (v && vl != 4) {
    rocksdb_free(v);
    bk_errmsg_set(why, "task database %s: its next store id has %zu bytes, not 4", t->db.path, vl);
    return BROOK_ERR_CORRUPT;
  }
  if (v)
    t->next_id = get_be32((const unsigned char *)v);
  rocksdb_free(v);
  if ((err = rdb_db_get(&t->db, POSITIONS_KEY, sizeof(POSITIONS_KEY) - 1, &v, &vl, why)))
    return err;
  if (v) {
    if (!(t->positions = bk_malloc(t->db.alloc, vl ? vl : 1))) {
      rocksdb_free(v);
      bk_errmsg_set(why, "out of memory");
      return BROOK_ERR_NOMEM;
    }
    memcpy(t->positions, v, vl);
    t->positions_len = vl;
    rocksdb_free(v);
  }
  return BROOK_OK;
}

brook_err_t bk_task_db_open(bk_task_db_t **out, const char *dir, const char *name,
                            const brook_rocksdb_opts_t *o, const brook_allocator_t *alloc,
                            bk_errmsg_t *why) {
  if (!alloc)
    alloc = bk_default_allocator();
  bk_task_db_t *t = bk_calloc(alloc, 1, sizeof(*t));
  if (!t) {
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  if (o) {
    t->o = *o;
  } else {
    brook_rocksdb_opts_init(&t->o);
  }
  t->o.dir = dir;
  brook_err_t err = rdb_db_open(&t->db, dir, name, &t->o, alloc, why);
  if (err) {
    bk_free(alloc, t);
    return err;
  }
  t->db.shared = 1;
  if ((err = read_meta(t, why)) != BROOK_OK) {
    bk_task_db_close(t);
    return err;
  }
  *out = t;
  return BROOK_OK;
}

void bk_task_db_close(bk_task_db_t *t) {
  if (!t)
    return;
  const brook_allocator_t *a = t->db.alloc;
  bk_free(a, t->next_positions);
  rdb_db_close(&t->db);
  bk_free(a, t->db.stores);
  bk_free(a, t->positions);
  bk_free(a, t->kbuf);
  bk_free(a, t);
}

brook_err_t rdb_task_store_open(void **state, brook_store_t *store, const char *name,
                                const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                                void *opaque) {
  bk_task_db_t *t = opaque;
  if (!t) {
    brook_store_set_error(store, "a task database store needs its task database (opaque)");
    return BROOK_ERR_INVALID_ARG;
  }
  rdb_db_t *d = &t->db;
  for (size_t i = 0; i < d->n_stores; i++)
    if (strcmp(d->stores[i]->name, name) == 0) {
      brook_store_set_error(store, "task database %s: a store '%s' is open already", d->path, name);
      return BROOK_ERR_DUPLICATE;
    }
  void *grown = d->stores;
  size_t cap = d->cap_stores;
  size_t nl = strlen(name) + 1;
  char *copy = bk_malloc(alloc, nl);
  size_t kl = store_key(t, name);
  if (!copy || !kl || bk_grow(d->alloc, &grown, &cap, d->n_stores + 1, sizeof(*d->stores))) {
    bk_free(alloc, copy);
    brook_store_set_error(store, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  d->stores = grown;
  d->cap_stores = cap;
  memcpy(copy, name, nl);
  bk_errmsg_t why;
  char *v = NULL;
  size_t vl = 0;
  uint32_t id = 0;
  if (rdb_db_get(d, t->kbuf, kl, &v, &vl, &why) != BROOK_OK) {
    bk_free(alloc, copy);
    brook_store_set_error(store, "%s", why.text);
    return BROOK_ERR_IO;
  }
  if (v && vl != 4) {
    rocksdb_free(v);
    bk_free(alloc, copy);
    brook_store_set_error(store, "task database %s: the id of store '%s' has %zu bytes, not 4",
                          d->path, name, vl);
    return BROOK_ERR_CORRUPT;
  }
  id = v ? get_be32((const unsigned char *)v) : t->next_id;
  rocksdb_free(v);
  rdb_store_t *s;
  brook_err_t err = rdb_store_open(&s, store, name, opts, alloc, d, id, &t->o);
  if (err) {
    bk_free(alloc, copy);
    return err;
  }
  s->name = copy;
  if (id == t->next_id)
    t->next_id++;
  d->stores[d->n_stores++] = s;
  *state = s;
  return BROOK_OK;
}

void rdb_task_db_forget(rdb_db_t *d, rdb_store_t *s) {
  for (size_t i = 0; i < d->n_stores; i++)
    if (d->stores[i] == s) {
      d->stores[i] = d->stores[--d->n_stores];
      return;
    }
}

const brook_store_backend_t *bk_task_db_backend(void) { return rdb_task_backend(); }

void bk_task_db_abort(bk_task_db_t *t) {
  rdb_db_t *d = &t->db;
  for (size_t i = 0; i < d->n_stores; i++)
    rdb_store_abort(d->stores[i]);
  rocksdb_writebatch_clear(d->batch);
  bk_free(d->alloc, t->next_positions);
  t->next_positions = NULL;
  t->next_len = 0;
  t->prepared = 0;
}

brook_err_t bk_task_db_prepare(bk_task_db_t *t, const void *positions, size_t len,
                               bk_errmsg_t *why) {
  rdb_db_t *d = &t->db;
  if (t->prepared)
    bk_task_db_abort(t); /* this one collects all of it again */
  rocksdb_writebatch_clear(d->batch);
  if (!(t->next_positions = bk_malloc(d->alloc, len ? len : 1)))
    goto nomem;
  if (len)
    memcpy(t->next_positions, positions, len);
  t->next_len = len;
  t->prepared = 1;
  for (size_t i = 0; i < d->n_stores; i++) {
    rdb_store_t *s = d->stores[i];
    size_t kl = store_key(t, s->name);
    unsigned char id[4];
    be32(id, s->id);
    if (!kl || rdb_store_collect(s) != BROOK_OK)
      goto nomem;
    rocksdb_writebatch_put(d->batch, (const char *)t->kbuf, kl, (const char *)id, 4);
  }
  unsigned char next[4];
  be32(next, t->next_id);
  rocksdb_writebatch_put(d->batch, NEXT_ID_KEY, sizeof(NEXT_ID_KEY) - 1, (const char *)next, 4);
  rocksdb_writebatch_put(d->batch, POSITIONS_KEY, sizeof(POSITIONS_KEY) - 1,
                         (const char *)t->next_positions, len);
  return BROOK_OK;
nomem:
  bk_task_db_abort(t);
  bk_errmsg_set(why, "task database %s: out of memory collecting a commit", d->path);
  return BROOK_ERR_NOMEM;
}

int bk_task_db_prepared(const bk_task_db_t *t) { return t->prepared; }

brook_err_t bk_task_db_write(bk_task_db_t *t, bk_task_db_written_t *written, bk_errmsg_t *why) {
  rdb_db_t *d = &t->db;
  if (!t->prepared) {
    bk_errmsg_set(why, "task database %s: nothing prepared to write", d->path);
    return BROOK_ERR_STATE;
  }
  size_t bytes = 0, entries = (size_t)rocksdb_writebatch_count(d->batch);
  (void)rocksdb_writebatch_data(d->batch, &bytes);
  brook_err_t err = rdb_db_write(d, why);
  if (err) {
    bk_task_db_abort(t); /* the stores keep their changes for the next commit */
    return err;
  }
  if (written) {
    written->bytes = bytes;
    written->entries = entries;
  }
  bk_free(d->alloc, t->positions);
  t->positions = t->next_positions;
  t->positions_len = t->next_len;
  t->next_positions = NULL;
  t->next_len = 0;
  t->prepared = 0;
  for (size_t i = 0; i < d->n_stores; i++) {
    brook_err_t e = rdb_store_settle(d->stores[i]);
    if (e && !err) {
      err = e; /* written; the cache keeps entries that are clean (correct, only bigger) */
      bk_errmsg_set(why, "out of memory settling the write cache of store '%s'",
                    d->stores[i]->name);
    }
  }
  return err;
}

brook_err_t bk_task_db_commit(bk_task_db_t *t, const void *positions, size_t len,
                              bk_errmsg_t *why) {
  brook_err_t err = bk_task_db_prepare(t, positions, len, why);
  return err ? err : bk_task_db_write(t, NULL, why);
}

int bk_task_db_has_store(bk_task_db_t *t, const char *name) {
  size_t kl = store_key(t, name);
  char *v = NULL;
  size_t vl = 0;
  bk_errmsg_t why;
  if (!kl || rdb_db_get(&t->db, t->kbuf, kl, &v, &vl, &why) != BROOK_OK)
    return 0; /* an error shows again when the store opens */
  rocksdb_free(v);
  return v != NULL;
}

void bk_task_db_on_full(bk_task_db_t *t, void (*fn)(void *opaque), void *opaque) {
  t->db.on_full = fn;
  t->db.on_full_opaque = opaque;
}

size_t bk_task_db_cache_bytes(const bk_task_db_t *t) { return t->o.cache_bytes; }

void bk_task_db_want_commit(bk_task_db_t *t) {
  if (t->db.on_full)
    t->db.on_full(t->db.on_full_opaque);
}

const char *bk_task_db_path(const bk_task_db_t *t) { return t->db.path; }

brook_err_t bk_task_db_positions(const bk_task_db_t *t, const void **positions, size_t *len) {
  if (!t->positions)
    return BROOK_ERR_NOT_FOUND;
  *positions = t->positions;
  *len = t->positions_len;
  return BROOK_OK;
}

size_t bk_task_db_memory(bk_task_db_t *t) {
  return sizeof(*t) + t->kcap + t->positions_len + rdb_db_memory(&t->db);
}
