/* The interface between the runtime's tasks and a layer that LOGS their stores and restores
 * them (the Kafka layer's changelogs, kafka/changelog_tasks.c; runtime option changelogs), so
 * the runtime never includes the Kafka layer: a source layer registers a table of hooks with
 * the worker running its instance (bk_task_log_set), and the runtime calls them through a
 * task's life (task.c, task_restore.c, commit.c):
 *
 *   open     a new task's operators are open (RESTORING): the layer gets the task's logged
 *            stores (bk_task_log_store_t) and starts restoring them;
 *   step     one slice of the restore, on the worker's loop, bounded in records and time, so
 *            other tasks of the worker keep processing meanwhile; `done` once every store is
 *            restored and the restored commit is acknowledged (the task may take input);
 *   positions  the input positions the restored state covers (runtime/positions.h encoding;
 *            none: the group's offsets stand), read once the restore is done;
 *   commit   a commit's begin (or a revocation's point): every change since the last commit
 *            and the commit's marker with the input positions; the layer counts the commit as
 *            one delivery of the worker's current delivery epoch (bk_rt_delivery_add) and
 *            completes it once the changelog acknowledged all of it, so the commit coordinator
 *            waits for it exactly as for sinks' outputs (commit.c) before the task databases
 *            and the input offsets are written;
 *   close    the task closes (its restore, if any, is abandoned).
 * Worker thread. */
#ifndef BROOK_RUNTIME_TASK_LOG_H
#define BROOK_RUNTIME_TASK_LOG_H

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>
#include <brook/state.h>

#include "core/errmsg.h"
#include "runtime/services.h"

/* A logged store of a task. */
typedef struct bk_task_log_store {
  brook_store_t *store; /* the task's store (restored into, then listened to) */
  const char *node;     /* the node's identity (plan/identity.c), for the topic name */
  const char *name;     /* the store's name in its node ("timers": the node's timers) */
} bk_task_log_store_t;

/* A task as the layer sees it. */
typedef struct bk_task_log_task {
  int32_t id;        /* on_task_state's id */
  int32_t partition; /* its input partition: the changelogs' partition */
  const char *name;  /* "<sub>_<partition>" */
  const bk_task_log_store_t *stores;
  size_t n_stores;
  /* With state on disk: the positions blob of the task database's last commit (NULL: none),
   * where the layer keeps its changelog offsets (bk_task_log_vt_t.positions_add). */
  const void *local_positions;
  size_t local_len;
} bk_task_log_task_t;

typedef struct bk_positions bk_positions_t;

typedef struct bk_task_log_vt {
  /* Starts the task's log and restore; *state is the layer's per-task state. BROOK_OK, or an
   * error with *why set (the run fails). */
  brook_err_t (*open)(void *layer, const bk_task_log_task_t *t, void **state, bk_errmsg_t *why);
  /* One slice of the restore. BROOK_OK with *done (1: restored and its commit acknowledged),
   * or an error with *why naming topic, partition and offset (the run fails). */
  brook_err_t (*step)(void *layer, void *state, int *done, bk_errmsg_t *why);
  /* After done: the positions the restored state covers (NULL: none were logged). */
  const void *(*positions)(void *state, size_t *len);
  /* A commit: the changes since the last one and the marker. BROOK_OK or an error with *why. */
  brook_err_t (*commit)(void *layer, void *state, const void *positions, size_t len,
                        bk_errmsg_t *why);
  /* With state on disk: appends what the task database must store with a commit so that a
   * restart replays only the changelogs' tail (their offsets). BROOK_OK or NOMEM. */
  brook_err_t (*positions_add)(void *state, bk_positions_t *out);
  void (*close)(void *layer, void *state);
} bk_task_log_vt_t;

/* Registers the layer with worker `w` (the first registration wins: one per worker; vt NULL
 * unregisters). Returns 1 if this one was registered, 0 if one was already. */
int bk_task_log_set(bk_worker_t *w, const bk_task_log_vt_t *vt, void *layer);
/* Whether the runtime logs its stores (runtime option changelogs) and runs tasks. */
int bk_task_log_wanted(const bk_worker_t *w);
/* The restore listener of the runtime options (NULL: none). */
const struct brook_restore_listener *bk_task_log_listener(const bk_worker_t *w);

/* Counters the layer adds to (brook_runtime_stats_t). */
typedef enum bk_log_stat {
  BK_LOG_STAT_RECORDS,
  BK_LOG_STAT_MARKERS,
  BK_LOG_STAT_RESTORED
} bk_log_stat_t;
void bk_task_log_count(bk_worker_t *w, bk_log_stat_t which, uint64_t n);

#endif
