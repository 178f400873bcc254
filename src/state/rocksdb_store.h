/* The RocksDB backend's internals (brook/store_rocksdb.h), shared by its files:
 * rocksdb_db.c (the database: directory, options, atomic writes), rocksdb_store.c (the
 * write cache and the point operations, flush) and rocksdb_iter.c (iterators merging the
 * cache with the disk).
 *
 * Keys on disk are the store's 4-byte id (big-endian) followed by the store's key, so one
 * database could hold several stores; id 0 is bookkeeping (the entry count of store id,
 * under "\0\0\0\0" "count" id). RocksDB's bytewise order is the store layer's key order
 * (unsigned bytes, then shorter first), so ranges map directly.
 *
 * The write cache is an in-memory ordered store (brook_store_backend_ordered()) whose values
 * are the store's value followed by one flag byte (C_*): at the end, so a fixed-size value
 * keeps the 16-byte alignment of the ordered store's values for in-place updates. */
#ifndef BROOK_STATE_ROCKSDB_STORE_H
#define BROOK_STATE_ROCKSDB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <rocksdb/c.h>

#include <brook/store_backend.h>
#include <brook/store_rocksdb.h>

#include "core/errmsg.h"

#define RDB_ID_LEN 4

/* Flags of a cache entry (its value's last byte). */
enum {
  C_LIVE = 1,      /* the key has this value; without: a tombstone (deleted since the flush) */
  C_DIRTY = 2,     /* differs from the disk: written at the next flush */
  C_ONDISK = 4,    /* the disk has the key (as of the last flush) */
  C_UPDATED = 8,   /* changed through update() and not reported to a flush listener yet */
  C_COLLECTED = 16 /* in the write in flight (rdb_store_collect): what it wrote is this entry's
                      value then, unless C_DIRTY says it changed again since */
};
/* A write in flight (task databases: prepared at a commit's begin, written once the commit's
 * outputs are acknowledged) holds a copy of each entry it collected; the store goes on
 * changing meanwhile. collect clears C_DIRTY and sets C_COLLECTED; a later change sets C_DIRTY
 * again and keeps C_COLLECTED; settle (after the write) drops C_COLLECTED and keeps the
 * entries changed since dirty; abort (the write never happens) makes every collected entry
 * dirty again. A collected live entry counts as on disk (C_ONDISK) from the collect on: a
 * delete after it must write a tombstone, since the write in flight puts the key. */

typedef struct rdb_store rdb_store_t;

/* A database: a standalone store's own, or a task's, shared by the task's stores
 * (task_db.c), whose commit writes all of them in one batch. */
typedef struct rdb_db {
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_block_based_table_options_t *table;
  rocksdb_cache_t *block_cache;
  rocksdb_readoptions_t *read;
  rocksdb_writeoptions_t *write;
  rocksdb_writebatch_t *batch; /* the next write, filled by rdb_store_collect */
  uint64_t gen;                /* bumped at each write: iterators renew their disk view */
  char *path;                  /* the database's directory */
  char *tmp_dir;               /* the temporary parent to remove at close, or NULL */
  const brook_allocator_t *alloc;
  /* Task databases only (shared = 1): the open stores, which the commit writes. */
  int shared;
  void (*on_full)(void *opaque); /* a store's cache passed its size: a commit is wanted */
  void *on_full_opaque;
  rdb_store_t **stores;
  size_t n_stores, cap_stores;
} rdb_db_t;

struct rdb_store {
  brook_store_t *store; /* for brook_store_set_error */
  rdb_db_t *db;         /* &own, or a task's */
  rdb_db_t own;
  uint32_t id;
  unsigned char id_be[RDB_ID_LEN]; /* id, big-endian: the prefix of every key */
  unsigned char end_be[RDB_ID_LEN];
  size_t value_size;               /* the store's fixed value size, or 0 */
  size_t cache_bytes;              /* clean bytes kept after a write */
  const brook_store_backend_t *cb; /* the cache's table (the ordered store) */
  void *cache;
  size_t count;        /* live entries: the disk's, corrected by the cache */
  int cleared;         /* clear() since the last collect: the disk counts as empty */
  int clear_collected; /* ... and one collected for the write in flight (it deletes the range) */
  int pending;         /* something to write at the next collect */
  int collected;       /* a write in flight holds this store's changes (collect..settle/abort) */
  int full_reported;   /* the cache passed cache_bytes; told once per write (task database) */
  int abort_owed;      /* an abort could not mark the collected entries dirty (out of memory) */
  int updated;         /* some in-place update is not reported to a listener yet */
  /* Ranges deleted (bk_store_delete_range) whose deletion is not on disk yet: the disk's keys
   * in them count as absent. Records of u32 lo_len, u32 hi_len, lo, hi (keys without the id);
   * the first ranges_collected bytes are in the write in flight, the rest in the next one. */
  unsigned char *ranges;
  size_t ranges_used, ranges_cap, ranges_collected;
  rocksdb_pinnableslice_t *pinned;  /* the view get() gave out from disk */
  rocksdb_readoptions_t *iter_read; /* its iterators': bounded to the store's id */
  unsigned char *kbuf;              /* id || key */
  size_t kcap;
  unsigned char *vbuf; /* value || flag */
  size_t vcap;
  char *name; /* in a task database: the name its id is registered under */
  const brook_allocator_t *alloc;
};

/* ---- rocksdb_db.c ---- */
/* Opens (creating it if needed) the database `name` under `parent`, or under a new temporary
 * directory (parent NULL). BROOK_OK or BROOK_ERR_IO / BROOK_ERR_NOMEM with *why set;
 * nothing to close on error. */
brook_err_t rdb_db_open(rdb_db_t *d, const char *parent, const char *name,
                        const brook_rocksdb_opts_t *o, const brook_allocator_t *alloc,
                        bk_errmsg_t *why);
/* Closes the database; a temporary one is destroyed and its directory removed. */
void rdb_db_close(rdb_db_t *d);
/* Bytes RocksDB holds in memory for it (memtables, block cache). */
size_t rdb_db_memory(rdb_db_t *d);
/* Writes d->batch atomically and empties it. BROOK_OK or BROOK_ERR_IO with *why set. */
brook_err_t rdb_db_write(rdb_db_t *d, bk_errmsg_t *why);
/* Reads `key` into a malloc'ed (RocksDB's) *value (NULL: absent). BROOK_OK or BROOK_ERR_IO. */
brook_err_t rdb_db_get(rdb_db_t *d, const void *key, size_t klen, char **value, size_t *vlen,
                       bk_errmsg_t *why);

/* ---- rocksdb_store.c ---- */
/* Makes s->kbuf hold id || key; returns its length, or 0 on NOMEM (message set). */
size_t rdb_key(rdb_store_t *s, const void *key, size_t klen);
/* Adds the store's changes since the last collect and its entry count to s->db->batch, and
 * marks them collected. BROOK_OK or NOMEM (then call rdb_store_abort). */
brook_err_t rdb_store_collect(rdb_store_t *s);
/* After the batch with what collect added was written: collected entries not changed since
 * are clean, deleted ones leave the cache. BROOK_OK or NOMEM (the cache then still holds
 * entries that are clean: correct, only bigger). */
brook_err_t rdb_store_settle(rdb_store_t *s);
/* The batch with what collect added is dropped unwritten: everything collected is dirty
 * again, for the next collect. Cannot fail. */
void rdb_store_abort(rdb_store_t *s);
/* Opens a store in database `db` (standalone: db NULL, o says where) with store id `id`. */
brook_err_t rdb_store_open(rdb_store_t **out, brook_store_t *store, const char *name,
                           const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                           rdb_db_t *db, uint32_t id, const brook_rocksdb_opts_t *o);
void rdb_store_close(void *state);
/* The table of stores in a task database (opaque: the bk_task_db_t; task_db.h). */
const brook_store_backend_t *rdb_task_backend(void);

/* ---- task_db.c ---- */
/* The task backend's open: registers the store (its id by name) in the task database. */
brook_err_t rdb_task_store_open(void **state, brook_store_t *store, const char *name,
                                const brook_store_opts_t *opts, const brook_allocator_t *alloc,
                                void *opaque);
/* Leaves db's store list (a store of a task database closing). */
void rdb_task_db_forget(rdb_db_t *db, rdb_store_t *s);

/* Whether the disk's key (without the id) lies in a range deleted since the last write. */
int rdb_in_deleted_range(const rdb_store_t *s, const void *key, size_t klen);

/* ---- rocksdb_iter.c ---- */
brook_err_t rdb_iter_open(void *state, void **iter);
brook_err_t rdb_iter_seek(void *iter, const void *key, size_t klen, brook_store_entry_t *entry);
brook_err_t rdb_iter_next(void *iter, brook_store_entry_t *entry);
void rdb_iter_close(void *iter);

#endif
