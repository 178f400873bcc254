/* Deleting a range of keys at once, for stores kept in RocksDB (rocksdb_store.c): the window
 * operators drop a closed window's entries, however many keys it had, with one RocksDB
 * DeleteRange in the next commit's write instead of one tombstone per key held in the write
 * cache until then. Loop thread of the store's task. */
#ifndef BROOK_STATE_STORE_RANGE_H
#define BROOK_STATE_STORE_RANGE_H

#include <stddef.h>

#include <brook/state.h>

/* Deletes every key k with lo <= k < hi (the store's key order). Like every change it is
 * written by the next commit (never before); until then reads and iterators no longer see the
 * keys, and a key put again afterwards is a new entry. The entry count stays exact (the range's
 * entries are counted by one sequential walk). BROOK_OK; BROOK_ERR_STATE if the store cannot
 * (not a RocksDB store, or a listener is set: it must see each deletion, so the caller deletes
 * key by key); BROOK_ERR_NOMEM or BROOK_ERR_IO (message set) with the store unchanged. */
brook_err_t bk_store_delete_range(brook_store_t *s, const void *lo, size_t lo_len, const void *hi,
                                  size_t hi_len);

#endif
