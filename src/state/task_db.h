/* A task's state on disk: one RocksDB database per task holding every store of the task
 * (each under its own id, registered by store name) and the positions the state covers
 * (input offsets, changelog offsets: bytes the runtime encodes). A commit writes every
 * store's changes, the registry and the positions in ONE atomic write batch, so after a crash
 * the stores and the positions always come from the same commit: the task resumes its input
 * exactly where its state ends, and never needs its state wiped (Kafka Streams needed that
 * after an unclean exactly-once stop until KIP-892).
 *
 * Stores are opened with brook_store_opts_t.backend = bk_task_db_backend() and
 * backend_opaque = the task database; their own flush only reports in-place changes to the
 * listener (for changelogs), writing waits for the task's commit (prepare/write below). Everything
 * here runs on the task's worker thread. */
#ifndef BROOK_STATE_TASK_DB_H
#define BROOK_STATE_TASK_DB_H

#include <stddef.h>

#include <brook/store_backend.h>
#include <brook/store_rocksdb.h>

#include "core/errmsg.h"

typedef struct bk_task_db bk_task_db_t;

/* Opens (creating it if needed) the database `name` in directory `dir` (NULL: a temporary
 * directory removed at close); o's cache sizes and sync apply to it and its stores (o NULL:
 * defaults; alloc NULL: malloc). Reads the positions of the last commit. BROOK_OK, BROOK_ERR_IO,
 * BROOK_ERR_NOMEM or BROOK_ERR_CORRUPT (unreadable bookkeeping), with *why set. */
brook_err_t bk_task_db_open(bk_task_db_t **out, const char *dir, const char *name,
                            const brook_rocksdb_opts_t *o, const brook_allocator_t *alloc,
                            bk_errmsg_t *why);
/* Closes it (every store opened in it is closed before). Uncommitted changes are lost. */
void bk_task_db_close(bk_task_db_t *db);

/* The backend table of stores kept in a task database (opaque: the bk_task_db_t). Opening
 * a second store of the same name in one task database fails with BROOK_ERR_DUPLICATE. */
const brook_store_backend_t *bk_task_db_backend(void);

/* A commit in two steps, so that the state and positions are taken at one point and written
 * later (once the outputs derived from that input are acknowledged) while the stores go on
 * changing: prepare collects every store's changes since the last prepare, the registry and
 * `positions` (len bytes, copied) into the write; write writes it atomically; abort drops it
 * (the collected changes are written by the next prepare). One write is prepared at a time:
 * preparing again first aborts the one prepared. Closing a store of it in between keeps its
 * changes in the write. */
brook_err_t bk_task_db_prepare(bk_task_db_t *db, const void *positions, size_t len,
                               bk_errmsg_t *why); /* BROOK_OK or NOMEM (nothing prepared) */
/* Whether a write is prepared. */
int bk_task_db_prepared(const bk_task_db_t *db);

typedef struct bk_task_db_written {
  size_t bytes;   /* the write batch's size */
  size_t entries; /* its puts and deletes (store entries, counts, registry, positions) */
} bk_task_db_written_t;

/* Writes the prepared write (its size in *written, may be NULL). BROOK_OK; BROOK_ERR_IO with
 * *why set and nothing written (aborted: the stores keep their changes); BROOK_ERR_STATE if
 * none is prepared; BROOK_ERR_NOMEM if written but a store's cache could not be settled (it
 * stays correct, only bigger). */
brook_err_t bk_task_db_write(bk_task_db_t *db, bk_task_db_written_t *written, bk_errmsg_t *why);
/* Drops the prepared write, if any. */
void bk_task_db_abort(bk_task_db_t *db);

/* prepare then write at once. */
brook_err_t bk_task_db_commit(bk_task_db_t *db, const void *positions, size_t len,
                              bk_errmsg_t *why);

/* Whether the database has a store `name` registered by a commit (opened or not). */
int bk_task_db_has_store(bk_task_db_t *db, const char *name);

/* fn(opaque) runs when a store's write cache passes its size (once per write): its changes
 * stay in memory until a commit writes them, so the caller should commit soon. */
void bk_task_db_on_full(bk_task_db_t *db, void (*fn)(void *opaque), void *opaque);

/* An operator that keeps its own uncommitted changes in front of its stores (the windows on
 * disk, ops/window_disk.h) asks for a commit once they pass cache_bytes, as a full write cache
 * does (the on_full fn, if set): its memory stays bounded by the cache size, and nothing
 * uncommitted is ever written. */
size_t bk_task_db_cache_bytes(const bk_task_db_t *db);
void bk_task_db_want_commit(bk_task_db_t *db);

/* The database's directory (for messages). */
const char *bk_task_db_path(const bk_task_db_t *db);

/* The positions of the last commit (this process's, or found at open): BROOK_OK with a view
 * valid until the next commit or close, or BROOK_ERR_NOT_FOUND (never committed). */
brook_err_t bk_task_db_positions(const bk_task_db_t *db, const void **positions, size_t *len);

/* Bytes in memory: RocksDB's memtables and block cache (the stores count their caches). */
size_t bk_task_db_memory(bk_task_db_t *db);

#endif
