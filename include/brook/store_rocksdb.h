/* The RocksDB store backend: a store whose entries live on disk, in RocksDB (the store Kafka
 * Streams and Flink use), behind the store interface (store_backend.h), so every operator
 * and the store calls (state.h) work on it unchanged.
 *
 * Select it per store: opts.backend = brook_store_backend_rocksdb(), opts.backend_opaque =
 * a brook_rocksdb_opts_t (or NULL for the defaults: a temporary directory).
 *
 * Writes are cached, never written early. Puts, deletes and in-place updates go to an
 * in-memory write cache (ordered, so range scans see them merged with what is on disk) that
 * keeps only the latest value of each key; brook_store_flush (the runtime calls it at every
 * commit) writes every changed key in ONE atomic RocksDB write batch, with the store's entry
 * count. A crash between two flushes leaves the store as it was at the last flush: never half
 * a commit, never a value that was not committed. Reads see the cache first, then the disk.
 *
 * Each store is one RocksDB database in `dir`/<store name> (characters other than letters,
 * digits, '.', '-' and '_' become '_'). Reopening a store with the same directory and name
 * finds what its last flush wrote. brook_store_count is exact (the count is kept in the
 * database, written with each flush). brook_store_memory counts the write cache and
 * RocksDB's memtables and block cache.
 *
 * Memory: between two flushes the cache holds every changed key (a commit bounds it); after a
 * flush, clean entries stay cached for reads until the cache exceeds cache_bytes, then they
 * are dropped. */
#ifndef BROOK_STORE_ROCKSDB_H
#define BROOK_STORE_ROCKSDB_H

#include <stddef.h>
#include <stdint.h>

#include <brook/export.h>
#include <brook/store_backend.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_rocksdb_opts {
  uint32_t struct_size; /* set by brook_rocksdb_opts_init() */
  /* The directory holding one database per store (created if missing; its parent must
   * exist). NULL (default): a new temporary directory under $TMPDIR (or /tmp) per store,
   * removed with everything in it when the store closes. Copied at open. */
  const char *dir;
  /* Bytes of clean entries the write cache keeps for reads after a flush (default 16 MiB).
   * Changed entries are kept until the next flush whatever this says. */
  size_t cache_bytes;
  /* Bytes of RocksDB's block cache per store (default 8 MiB). */
  size_t block_cache_bytes;
  /* 1: every flush waits until the write is on stable storage (fsync); 0 (default): it
   * survives a crash of the process, not of the machine (RocksDB's write-ahead log). */
  int sync;
} brook_rocksdb_opts_t;

BROOK_API void brook_rocksdb_opts_init_size(brook_rocksdb_opts_t *opts, size_t size);
static inline void brook_rocksdb_opts_init(brook_rocksdb_opts_t *opts) {
  brook_rocksdb_opts_init_size(opts, sizeof(*opts));
}

/* The backend table (static; any thread). Capabilities: ordered, in-place update. A store's
 * open fails with BROOK_ERR_IO (the message has RocksDB's reason: a directory that cannot be
 * created, a database locked by another store or process), BROOK_ERR_INVALID_ARG (an opaque
 * whose struct_size is no version of brook_rocksdb_opts_t) or BROOK_ERR_CORRUPT (a database
 * whose bookkeeping is unreadable). */
BROOK_API const brook_store_backend_t *brook_store_backend_rocksdb(void);

#ifdef __cplusplus
}
#endif
#endif
