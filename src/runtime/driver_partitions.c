/* The test driver's partitions and rebalances. A partitioned source's split is a partition:
 * its records go to the partition's task (task id = partition number; co-partitioned sources
 * share it), which opens when the partition is assigned (explicitly, or by its first record)
 * and flushes and closes when the last source holding it revokes it. The closing task's state
 * (stores, timers, watermarks) is kept here as a snapshot, as its changelog would keep it,
 * and restored into the task created when the partition is assigned again.
 *
 * The snapshot is taken at the revocation's commit point (after the operators' flush), so
 * nothing needs to be read again and the partition keeps its watermark: Kafka Streams keeps a
 * partition's stream time across rebalances too. The driver's thread only. */
#include <string.h>

#include "core/alloc.h"
#include "runtime/checkpoint.h"
#include "runtime/driver_impl.h"
#include "runtime/source_keyed.h"

typedef struct growbuf {
  const brook_allocator_t *a;
  unsigned char *data;
  size_t len, cap;
} growbuf_t;

static brook_err_t growbuf_write(const void *data, size_t len, void *opaque) {
  growbuf_t *b = opaque;
  if (bk_grow(b->a, (void **)&b->data, &b->cap, b->len + len, 1))
    return BROOK_ERR_NOMEM;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return BROOK_OK;
}

static bk_saved_task_t *saved_find(brook_driver_t *d, int32_t task) {
  for (size_t i = 0; i < d->n_saved; i++)
    if (d->saved[i].task == task)
      return &d->saved[i];
  return NULL;
}

static void saved_drop(brook_driver_t *d, bk_saved_task_t *s) {
  bk_free(&d->alloc, s->data);
  *s = d->saved[--d->n_saved];
}

/* runtime's task_closing hook: the task flushed; keep its state before it closes. */
static void keep_closing_task(brook_runtime_t *rt, bk_task_t *t, void *opaque) {
  brook_driver_t *d = opaque;
  growbuf_t b = {&d->alloc, NULL, 0, 0};
  brook_err_t err = bk_task_snapshot(rt, t, growbuf_write, &b);
  bk_saved_task_t *s = saved_find(d, t->id);
  if (err >= 0 && !s) {
    if (bk_grow(&d->alloc, (void **)&d->saved, &d->cap_saved, d->n_saved + 1, sizeof(*d->saved)))
      err = BROOK_ERR_NOMEM;
    else
      s = &d->saved[d->n_saved++];
  } else if (s) {
    bk_free(&d->alloc, s->data);
  }
  if (err < 0) {
    bk_free(&d->alloc, b.data);
    if (s)
      saved_drop(d, s);
    bk_runtime_fail(rt, err, "driver: keeping the state of task %d failed: %s", (int)t->id,
                    brook_strerror(err));
    return;
  }
  *s = (bk_saved_task_t){t->id, b.data, b.len};
}

/* The task life cycle's RESTORING step (task.c): a partition's task created again gets the
 * stores and timers it had when it was last revoked. */
static brook_err_t restore_saved(brook_runtime_t *rt, bk_task_t *t, void *opaque) {
  brook_driver_t *d = opaque;
  bk_saved_task_t *s = saved_find(d, t->id);
  if (!s)
    return BROOK_OK;
  bk_errmsg_t why;
  brook_err_t err = bk_task_restore(rt, t, s->data, s->len, &why);
  saved_drop(d, s);
  if (err < 0)
    bk_runtime_fail(rt, err, "driver: restoring partition %d: %s", (int)t->id, why.text);
  return err;
}

void bk_driver_partitions_init(brook_driver_t *d) {
  d->rt->task_closing = keep_closing_task;
  d->rt->task_closing_opaque = d;
  bk_tasks_set_restorer(d->rt, restore_saved, d);
}

void bk_driver_partitions_free(brook_driver_t *d) {
  for (size_t i = 0; i < d->n_saved; i++)
    bk_free(&d->alloc, d->saved[i].data);
  bk_free(&d->alloc, d->saved);
  bk_free(&d->alloc, d->revoked);
  d->saved = NULL;
  d->revoked = NULL;
  d->n_saved = d->cap_saved = d->n_revoked = d->cap_revoked = 0;
}

static size_t source_index(const brook_driver_t *d, const bk_src_t *src) {
  return (size_t)(src - d->rt->w0->sources);
}

int bk_driver_is_revoked(const brook_driver_t *d, size_t si, size_t split) {
  for (size_t i = 0; i < d->n_revoked; i++)
    if (d->revoked[i].source == si && d->revoked[i].split == split)
      return 1;
  return 0;
}

static int is_assigned(const bk_src_t *src, size_t split) {
  return split < src->n_split_task && src->split_task[split] >= 0;
}

brook_err_t bk_driver_hold_task(brook_driver_t *d, bk_src_t *src, size_t split, int *created) {
  brook_runtime_t *rt = d->rt;
  int32_t id = (int32_t)split;
  if (!bk_wm_split(&src->wm, split, rt->w0->now_ms) || bk_src_split_task(src, split, id) < 0) {
    bk_runtime_fail(rt, BROOK_ERR_NOMEM, "driver: out of memory assigning partition %zu", split);
    return BROOK_ERR_NOMEM;
  }
  *created = bk_task_find(rt->w0, id) == NULL;
  brook_err_t err =
      bk_task_acquire(rt->w0, id, "assigned"); /* a failure is recorded in rt->status */
  if (err < 0)
    src->split_task[split] = -1;
  return err;
}

/* Assigns the partition (a task created now restores the state it had when it was last
 * revoked, in RESTORING: restore_saved). Then fires what is due (timers whose time passed
 * meanwhile). */
static brook_err_t assign(brook_driver_t *d, bk_src_t *src, size_t split) {
  brook_runtime_t *rt = d->rt;
  int created;
  brook_err_t err = bk_driver_hold_task(d, src, split, &created);
  if (err < 0)
    return err;
  size_t si = source_index(d, src);
  for (size_t i = 0; i < d->n_revoked; i++) {
    if (d->revoked[i].source == si && d->revoked[i].split == split) {
      d->revoked[i] = d->revoked[--d->n_revoked];
      break;
    }
  }
  (void)created; /* a task created now was restored in RESTORING (restore_saved) */
  bk_time_tick(rt->w0);
  return bk_driver_settle(d);
}

brook_err_t bk_driver_partition_for_push(brook_driver_t *d, bk_src_t *src, size_t split) {
  if (split > INT32_MAX) {
    bk_errmsg_set(&d->rt->msg, "driver_push: partition %zu is out of range", split);
    return BROOK_ERR_INVALID_ARG;
  }
  if (is_assigned(src, split))
    return BROOK_OK;
  if (bk_driver_is_revoked(d, source_index(d, src), split)) {
    bk_errmsg_set(&d->rt->msg,
                  "driver_push: partition %zu of source '%s' is revoked: brook_driver_assign it "
                  "before pushing to it",
                  split, src->home->node->name);
    return BROOK_ERR_STATE;
  }
  return assign(d, src, split); /* a partition's first record assigns it */
}

/* The source for assign/revoke, checked: partitioned, a valid partition number. */
static bk_src_t *partition_source(brook_driver_t *d, const char *source, size_t partition,
                                  const char *what, brook_err_t *err) {
  brook_runtime_t *rt = d->rt;
  if ((*err = rt->status) != BROOK_OK)
    return NULL;
  if (d->ended) {
    *err = BROOK_ERR_STOPPED;
    return NULL;
  }
  bk_src_t *src = bk_driver_source(d, source, what, err);
  if (!src)
    return NULL;
  if (!src->home->node->source_type->partitioned) {
    bk_errmsg_set(&rt->msg,
                  "%s: source '%s' is not partitioned: its operators keep one state for all "
                  "of its splits (partitions and their tasks come with Kafka sources)",
                  what, source);
    *err = BROOK_ERR_STATE;
    return NULL;
  }
  if (partition > INT32_MAX) {
    bk_errmsg_set(&rt->msg, "%s: partition %zu is out of range", what, partition);
    *err = BROOK_ERR_INVALID_ARG;
    return NULL;
  }
  if ((*err = bk_keyed_check_split(src, partition, &rt->msg, what)) < 0)
    return NULL;
  return src;
}

brook_err_t brook_driver_assign(brook_driver_t *d, const char *source, size_t partition) {
  if (!d || !source)
    return BROOK_ERR_INVALID_ARG;
  brook_err_t err;
  bk_src_t *src = partition_source(d, source, partition, "driver_assign", &err);
  if (!src)
    return err;
  if (is_assigned(src, partition)) {
    bk_errmsg_set(&d->rt->msg, "driver_assign: partition %zu of source '%s' is assigned already",
                  partition, source);
    return BROOK_ERR_STATE;
  }
  d->touched = 1;
  return assign(d, src, partition);
}

brook_err_t brook_driver_revoke(brook_driver_t *d, const char *source, size_t partition) {
  if (!d || !source)
    return BROOK_ERR_INVALID_ARG;
  brook_err_t err;
  bk_src_t *src = partition_source(d, source, partition, "driver_revoke", &err);
  if (!src)
    return err;
  brook_runtime_t *rt = d->rt;
  if (!is_assigned(src, partition)) {
    bk_errmsg_set(&rt->msg, "driver_revoke: partition %zu of source '%s' is not assigned",
                  partition, source);
    return BROOK_ERR_STATE;
  }
  if (bk_grow(&d->alloc, (void **)&d->revoked, &d->cap_revoked, d->n_revoked + 1,
              sizeof(*d->revoked)))
    return BROOK_ERR_NOMEM;
  d->touched = 1;
  d->revoked[d->n_revoked++] = (bk_revoked_t){source_index(d, src), partition};
  src->split_task[partition] = -1;
  bk_wm_split_retire(&src->wm, partition);
  bk_task_release(rt->w0, (int32_t)partition,
                  "revoked"); /* the last holder: flush, keep state, close */
  if (rt->status == BROOK_OK)
    bk_time_pass(rt->w0); /* the partition holds the watermark back no more */
  return bk_driver_settle(d);
}
