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

#define RDB_ID_LEN 4

/* Flags of a cache entry (its value's last byte). */
enum {
  C_LIVE = 1,   /* the key has this value; without: a tombstone (deleted since the flush) */
  C_DIRTY = 2,  /* differs from the disk: written at the next flush */
  C_ONDISK = 4, /* the disk has the key (as of the last flush) */
  C_UPDATED = 8 /* changed through update() and not reported to a flush listener yet */
};

typedef struct rdb_db {
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_block_based_table_options_t *table;
  rocksdb_cache_t *block_cache;
  rocksdb_readoptions_t *read;
  rocksdb_writeoptions_t *write;
  char *path;    /* the database's directory */
  char *tmp_dir; /* the temporary parent to remove at close, or NULL */
  const brook_allocator_t *alloc;
} rdb_db_t;

typedef struct rdb_store {
  brook_store_t *store; /* for brook_store_set_error */
  rdb_db_t db;
  uint32_t id;
  unsigned char id_be[RDB_ID_LEN]; /* id, big-endian: the prefix of every key */
  unsigned char end_be[RDB_ID_LEN];
  size_t value_size;               /* the store's fixed value size, or 0 */
  size_t cache_bytes;              /* clean bytes kept after a flush */
  const brook_store_backend_t *cb; /* the cache's table (the ordered store) */
  void *cache;
  size_t count; /* live entries: the disk's, corrected by the cache */
  int cleared;  /* clear() since the last flush: the disk counts as empty */
  int pending;  /* something to write at the next flush */
  uint64_t gen; /* bumped at each write to disk: iterators renew their disk view */
  rocksdb_pinnableslice_t *pinned; /* the view get() gave out from disk */
  rocksdb_writebatch_t *batch;
  unsigned char *kbuf; /* id || key */
  size_t kcap;
  unsigned char *vbuf; /* value || flag */
  size_t vcap;
  const brook_allocator_t *alloc;
} rdb_store_t;

/* ---- rocksdb_db.c ---- */
/* Opens (creating it if needed) the database of store `name` under o->dir, or under a new
 * temporary directory. BROOK_OK or BROOK_ERR_IO / BROOK_ERR_NOMEM with the store's message
 * set; nothing to close on error. */
brook_err_t rdb_db_open(rdb_db_t *d, brook_store_t *store, const char *name,
                        const brook_rocksdb_opts_t *o, const brook_allocator_t *alloc);
/* Closes the database; a temporary one is destroyed and its directory removed. */
void rdb_db_close(rdb_db_t *d);
/* Bytes RocksDB holds in memory for it (memtables, block cache). */
size_t rdb_db_memory(rdb_db_t *d);
/* Writes `batch` atomically. BROOK_OK or BROOK_ERR_IO with the store's message set. */
brook_err_t rdb_db_write(rdb_db_t *d, brook_store_t *store, rocksdb_writebatch_t *batch);

/* ---- rocksdb_store.c ---- */
/* Makes s->kbuf hold id || key; returns its length, or 0 on NOMEM (message set). */
size_t rdb_key(rdb_store_t *s, const void *key, size_t klen);

/* ---- rocksdb_iter.c ---- */
brook_err_t rdb_iter_open(void *state, void **iter);
brook_err_t rdb_iter_seek(void *iter, const void *key, size_t klen, brook_store_entry_t *entry);
brook_err_t rdb_iter_next(void *iter, brook_store_entry_t *entry);
void rdb_iter_close(void *iter);

#endif
