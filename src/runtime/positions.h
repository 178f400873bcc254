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
 * topic length, the topic, 4 bytes partition, 8 bytes offset. Worker thread.
 *
 * Entries are named by topic, but a name may be any bytes: one starting with a byte below
 * 0x20 (no Kafka topic name does) is another layer's record in the same atomic blob, found by
 * bk_positions_next. Repartition topics' readers keep the last position applied of each
 * upstream stream that way (kafka/repartition.h, BK_KRP_UPSTREAM_TAG). */
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
 * a topic that is empty or longer than 65535 bytes, or a negative offset (which
 * bk_positions_check would refuse on reading back). */
brook_err_t bk_positions_add(bk_positions_t *p, const char *topic, int32_t partition,
                             int64_t offset);
/* Appends an entry named by `len` bytes (any bytes; see the top), else as bk_positions_add. */
brook_err_t bk_positions_add_named(bk_positions_t *p, const void *name, size_t len,
                                   int32_t partition, int64_t offset);
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

/* One entry of a checked encoding, as bk_positions_next reads it (pointing into the data). */
typedef struct bk_position {
  const unsigned char *name; /* the topic (not NUL-terminated), or another layer's key */
  size_t name_len;
  int32_t partition;
  int64_t offset;
} bk_position_t;
/* Iterates a checked encoding: *at starts at 0; each call fills *out and returns 1, then 0
 * at the end. */
int bk_positions_next(const void *data, size_t len, size_t *at, bk_position_t *out);

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

/* The whole stored encoding of task `task` (checked; valid until the task's next commit):
 * 1 found, 0 none (as bk_task_stored_position). */
int bk_task_stored_positions(bk_worker_t *w, int32_t task, const void **data, size_t *len);

/* Writes task `task`'s state with its positions now (a revocation, once the outputs up to its
 * point are acknowledged; the task is suspended: nothing changes it any more). BROOK_OK
 * (nothing to do without state on disk); on failure the run fails and the error is returned. */
brook_err_t bk_task_commit_state(bk_worker_t *w, int32_t task);

#endif
