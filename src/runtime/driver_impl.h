/* The test driver's object, shared by its files: driver.c (pushing, the clock, captured
 * output), driver_partitions.c (assigning and revoking partitions) and driver_checkpoint.c
 * (checkpoint and restore of the whole driver). The driver's thread only. */
#ifndef BROOK_RUNTIME_DRIVER_IMPL_H
#define BROOK_RUNTIME_DRIVER_IMPL_H

#include <brook/test_driver.h>

#include "runtime/runtime_impl.h"

/* What one sink received: records whose bytes live in one allocation each. */
typedef struct bk_captured {
  const bk_node_t *sink;
  brook_record_t *recs;
  size_t n, cap;
} bk_captured_t;

/* A revoked task's state, as its changelog would hold it (a bk_task_snapshot). */
typedef struct bk_saved_task {
  int32_t task;
  unsigned char *data;
  size_t len;
} bk_saved_task_t;

/* A partition explicitly revoked: records pushed to it fail until it is assigned again. */
typedef struct bk_revoked {
  size_t source; /* index in rt->sources */
  size_t split;
} bk_revoked_t;

struct brook_driver {
  brook_runtime_t *rt;
  brook_allocator_t alloc;
  bk_captured_t *caps; /* one per sink node */
  size_t n_caps;
  int ended;
  int touched; /* anything pushed, advanced, assigned, revoked or restored */
  bk_saved_task_t *saved;
  size_t n_saved, cap_saved;
  bk_revoked_t *revoked;
  size_t n_revoked, cap_revoked;
  struct bk_task_db *db; /* state_on_disk: the unpartitioned pipeline's task database */
  size_t uncommitted;    /* records pushed since its last commit */
};

/* ---- driver.c ---- */
/* After input or a clock move: in-place state changes are reported, as after a batch. */
brook_err_t bk_driver_settle(brook_driver_t *d);
/* The source named `name`, or NULL with a message and BROOK_ERR_NOT_FOUND in *err. */
bk_src_t *bk_driver_source(brook_driver_t *d, const char *name, const char *what, brook_err_t *err);

/* ---- driver_state.c ---- */
/* With o->state_on_disk: opens the task database the worker's instances keep their state in
 * (before they open). BROOK_OK or the error, with the message in rt->msg. */
brook_err_t bk_driver_state_open(brook_driver_t *d, const brook_driver_opts_t *o);
/* After `pushed` records (0: a clock move or the end, which always commit): commits the task
 * database when due. The runtime's status (a failed commit fails the runtime). */
brook_err_t bk_driver_state_commit(brook_driver_t *d, size_t pushed);
/* Closes it (after the runtime's stores); uncommitted state is lost. */
void bk_driver_state_close(brook_driver_t *d);

/* ---- driver_partitions.c ---- */
/* Installs the task_closing hook that keeps a revoked task's snapshot. */
void bk_driver_partitions_init(brook_driver_t *d);
/* Frees the saved snapshots and the revoked list. */
void bk_driver_partitions_free(brook_driver_t *d);
/* Before records are pushed to split `split` of partitioned source `src`: assigns a split
 * never seen (a partition's first record), refuses a revoked one (BROOK_ERR_STATE). */
brook_err_t bk_driver_partition_for_push(brook_driver_t *d, bk_src_t *src, size_t split);
/* Whether split `split` of source index `si` was revoked (and not assigned since). */
int bk_driver_is_revoked(const brook_driver_t *d, size_t si, size_t split);
/* Assigns split `split` of `src` to its task (task id = the split: the partition number),
 * creating and opening the task if no other source holds it. Does not restore. */
brook_err_t bk_driver_hold_task(brook_driver_t *d, bk_src_t *src, size_t split, int *created);

#endif
