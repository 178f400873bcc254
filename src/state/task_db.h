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
 * listener (for changelogs), writing waits for bk_task_db_commit. Everything here runs on the
 * task's worker thread. */
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

/* Writes every store's changes since the last commit and `positions` (len bytes, copied)
 * atomically. BROOK_OK, or BROOK_ERR_IO / BROOK_ERR_NOMEM with *why set and nothing written
 * (the stores keep their changes for the next commit). */
brook_err_t bk_task_db_commit(bk_task_db_t *db, const void *positions, size_t len,
                              bk_errmsg_t *why);

/* The positions of the last commit (this process's, or found at open): BROOK_OK with a view
 * valid until the next commit or close, or BROOK_ERR_NOT_FOUND (never committed). */
brook_err_t bk_task_db_positions(const bk_task_db_t *db, const void **positions, size_t *len);

/* Bytes in memory: RocksDB's memtables and block cache (the stores count their caches). */
size_t bk_task_db_memory(bk_task_db_t *db);

#endif
