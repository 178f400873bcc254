/* The commit coordinator's state and the scheduler's hooks into it (commit.c), one per worker.
 * Worker thread. */
#ifndef BROOK_RUNTIME_COMMIT_H
#define BROOK_RUNTIME_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "runtime/positions.h"
#include "runtime/services.h"

/* The default commit_interval_ms: the Kafka source's commit interval until now, so a crash
 * replays about as much input as before. Kafka Streams uses 30000 ms (at least once) and
 * 100 ms (exactly once: a transaction per commit); brook's flush() runs at commits only, so
 * the interval also bounds how long a buffering sink holds its output. */
#define BK_COMMIT_INTERVAL_DEFAULT_MS 1000

typedef struct bk_committer {
  bk_commit_fn fn;
  void *opaque;
} bk_committer_t;

/* A source's positions of a task (positions.h). */
typedef struct bk_positions_src {
  bk_positions_fn fn;
  void *opaque;
} bk_positions_src_t;

/* Someone waiting for every delivery up to `point` to be acknowledged (a revocation). */
typedef struct bk_commit_watcher {
  uint64_t point;
  void (*fn)(void *opaque);
  void *opaque;
} bk_commit_watcher_t;

typedef struct bk_commit {
  uv_timer_t timer; /* every commit_interval_ms */
  int timer_open;
  bk_committer_t *fns; /* the sources' commits, in registration order */
  size_t n_fns, cap_fns;
  uint64_t point;     /* a commit in progress waits for every delivery of an epoch <= point */
  int point_final;    /* ... and it is a final one (stop, end) */
  int due;            /* the interval has passed: a commit begins at the next chance */
  int due_final;      /* a stop asked for a final commit */
  int final_begun;    /* the end of the run began its final commit */
  uint64_t work_seen; /* batches + timers fired when the last commit began */
  bk_commit_watcher_t *watchers; /* revocations waiting for acknowledgements (unordered) */
  size_t n_watchers, cap_watchers;
  bk_positions_src_t *positions; /* the sources' positions of tasks (task_state.c) */
  size_t n_positions, cap_positions;
  bk_positions_t pos_buf; /* a task's positions being encoded */
} bk_commit_t;

typedef struct bk_worker bk_worker_t;

/* Starts the interval timer on the worker's loop. */
void bk_commit_start(bk_worker_t *w);
/* Closes the timer (bk_worker_close_handle). */
void bk_commit_close(bk_worker_t *w);
void bk_commit_free(bk_worker_t *w);
/* The scheduler's turn (outside any batch: the batch arena is free): completes the commit in
 * progress once its outputs are acknowledged, and begins one that is due. */
void bk_commit_poll(bk_worker_t *w);
/* The end of the run: begins the final commit unless one is in progress. Its outputs are
 * then awaited by the scheduler (FLUSHING), and bk_commit_poll completes it. */
void bk_commit_final(bk_worker_t *w);
/* Whether a commit waits for acknowledgements. */
static inline int bk_commit_waiting(const bk_commit_t *c) { return c->point != 0; }

#endif
