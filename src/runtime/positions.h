/* The input positions a task's state covers (stored with the state, atomically, by each commit
 * of its task database: state/task_db.h), and the interface between the runtime and the
 * sources about them:
 *   - at a commit's begin the runtime asks every source registered on the worker for the
 *     positions of each task (bk_positions_register): for the Kafka source, per partition of
 *     the task, the offset after the last record processed into the state;
 *   - when a task opens with state on disk, its source asks for the stored positions
 *     (bk_task_stored_position) and resumes the task's input there, not at the group's
 *     committed offsets (which lag behind after a crash between the two writes);
 *   - a revocation commits the task's state itself (bk_task_commit_state) once its outputs
 *     are acknowledged, before its offsets.
 *
 * Encoding (version 1, big-endian): 1 byte version, 4 bytes count, then per position 2 bytes
 * topic length, the topic, 4 bytes partition, 8 bytes offset. Worker thread. */
#ifndef BROOK_RUNTIME_POSITIONS_H
#define BROOK_RUNTIME_POSITIONS_H

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>

#include "core/alloc.h"
#include "core/errmsg.h"

#define BK_POSITIONS_VERSION 1

/* A list of positions being encoded. */
typedef struct bk_positions {
  unsigned char *buf;
  size_t len, cap;
  const brook_allocator_t *alloc;
} bk_positions_t;

/* An empty list (no allocation until the first add). */
void bk_positions_init(bk_positions_t *p, const brook_allocator_t *alloc);
/* Empties it, keeping its buffer. */
void bk_positions_reset(bk_positions_t *p);
/* Appends (topic, partition, offset). BROOK_OK, BROOK_ERR_NOMEM, or BROOK_ERR_INVALID_ARG for
 * a topic longer than 65535 bytes. */
brook_err_t bk_positions_add(bk_positions_t *p, const char *topic, int32_t partition,
                             int64_t offset);
/* The encoding (at least the header, even when empty). */
const void *bk_positions_data(bk_positions_t *p, size_t *len);
void bk_positions_free(bk_positions_t *p);

/* Checks an encoding read back (`where`: the task directory, for the message). BROOK_OK, or
 * BROOK_ERR_CORRUPT with *why naming `where` and what is wrong. */
brook_err_t bk_positions_check(const void *data, size_t len, const char *where, bk_errmsg_t *why);
/* The offset of (topic, partition) in a checked encoding: 1 found (*offset set), else 0. */
int bk_positions_find(const void *data, size_t len, const char *topic, int32_t partition,
                      int64_t *offset);
/* The number of positions in a checked encoding. */
uint32_t bk_positions_count(const void *data, size_t len);

/* ---- the runtime's side (runtime/task_state.c) ---- */

typedef struct bk_worker bk_worker_t;

/* A source's positions of task `task` appended to `out` (its partitions of that task with
 * something processed, or resumed from stored positions). BROOK_OK or an error. */
typedef brook_err_t (*bk_positions_fn)(void *opaque, int32_t task, bk_positions_t *out);
/* Registers a source's positions with the worker running its instance. BROOK_OK or NOMEM. */
brook_err_t bk_positions_register(bk_worker_t *w, bk_positions_fn fn, void *opaque);

/* The stored offset of (topic, partition) for task `task` on this worker (its state on disk,
 * read when it opened): 1 found, 0 none (no state on disk, never committed, or no position of
 * that partition). */
int bk_task_stored_position(bk_worker_t *w, int32_t task, const char *topic, int32_t partition,
                            int64_t *offset);

/* Writes task `task`'s state with its positions now (a revocation, once the outputs up to its
 * point are acknowledged; the task is suspended: nothing changes it any more). BROOK_OK
 * (nothing to do without state on disk); on failure the run fails and the error is returned. */
brook_err_t bk_task_commit_state(bk_worker_t *w, int32_t task);

#endif
