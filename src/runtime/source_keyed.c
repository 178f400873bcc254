/* In-process sources partitioned by key: a split's task, and the check that every record of
 * a split belongs to it (see source_keyed.h). */
#include "runtime/source_keyed.h"

#include <brook/source.h>

#include "core/murmur2.h"

uint32_t brook_key_split(const void *key, size_t key_len, uint32_t n) {
  if (n == 0)
    return 0;
  return bk_murmur2_partition(key, key ? key_len : 0, n);
}

int bk_keyed_source(const bk_src_t *src) {
  const bk_node_t *node = src->home->node;
  return node->source_type->partitioned && node->splits != 0;
}

brook_err_t bk_keyed_check_split(const bk_src_t *src, size_t split, bk_errmsg_t *msg,
                                 const char *what) {
  if (!bk_keyed_source(src) || split < src->home->node->splits)
    return BROOK_OK;
  bk_errmsg_set(msg,
                "%s: source '%s' is partitioned by key into %u splits (partitions 0..%u): it has "
                "no split %zu",
                what, src->home->node->name, (unsigned)src->home->node->splits,
                (unsigned)src->home->node->splits - 1, split);
  return BROOK_ERR_INVALID_ARG;
}

brook_err_t bk_keyed_split_start(bk_src_t *src, size_t local, size_t split) {
  bk_worker_t *w = src->w;
  /* The split holds the source's (and its task's) watermark back from now on. */
  if (!bk_wm_split(&src->wm, local, w->now_ms) || bk_src_split_task(src, local, (int32_t)split)) {
    bk_runtime_fail(src->rt, BROOK_ERR_NOMEM, "source '%s': out of memory starting split %zu",
                    src->home->node->name, split);
    return BROOK_ERR_NOMEM;
  }
  return bk_task_acquire(w, (int32_t)split, "split started");
}

void bk_keyed_split_end(bk_src_t *src, size_t local, size_t split) {
  bk_worker_t *w = src->w;
  brook_runtime_t *rt = src->rt;
  bk_task_t *t = bk_task_find(w, (int32_t)split);
  if (!t || w->state != BK_RT_RUNNING || atomic_load(&rt->stop_flag) ||
      bk_runtime_status(rt) != BROOK_OK)
    return;
  bk_wm_split_t *sp = bk_wm_split(&src->wm, local, w->now_ms);
  if (!sp) {
    bk_runtime_fail(rt, BROOK_ERR_NOMEM, "source '%s': out of memory ending split %zu",
                    src->home->node->name, split);
    return;
  }
  /* Every record of the split has been stamped: nothing can be behind this. */
  sp->present = 1;
  sp->max_ts = sp->wm = sp->wm_at_last = BROOK_TIME_MAX;
  bk_time_pass(w); /* the task's windows and timers fire (and whatever else is due) */
  for (size_t i = 0; i < rt->plan.n && bk_runtime_status(rt) == BROOK_OK; i++) {
    brook_ctx_t *c = &t->insts[i];
    if (rt->per_task[i] && c->opened && c->node->kind == BK_NODE_OPERATOR)
      bk_call_operator(w, c, bk_call_end_of_input);
  }
  if (bk_runtime_status(rt) != BROOK_OK)
    return;                    /* the tasks close with the run, without flush */
  src->split_task[local] = -1; /* no task of the source's holds it any more */
  /* Flushed, its state covers all of its input: with state on disk, written (positions.h). */
  bk_task_suspend(w, (int32_t)split, "split ended");
  (void)bk_task_commit_state(w, (int32_t)split);
  bk_task_release(w, (int32_t)split, "split ended");
}

/* The first record of recs[0..n) whose key is not split `split`'s, or n. */
static size_t first_stranger(const brook_record_t *recs, size_t n, uint32_t split,
                             uint32_t n_splits) {
  for (size_t i = 0; i < n; i++) {
    const brook_record_t *r = &recs[i];
    if (bk_murmur2_partition(r->key, r->key ? r->key_len : 0, n_splits) != split)
      return i;
  }
  return n;
}

brook_err_t bk_keyed_verify(bk_src_t *src, size_t split, brook_record_t *recs, size_t *n) {
  uint32_t n_splits = src->home->node->splits;
  size_t m = *n;
  if (n_splits <= 1)
    return BROOK_OK; /* one split owns every key */
  size_t i = first_stranger(recs, m, (uint32_t)split, n_splits);
  if (i == m)
    return BROOK_OK; /* the usual case: one pass, nothing moves */
  size_t kept = i;
  brook_err_t err = BROOK_OK;
  for (; i < m; i++) {
    const brook_record_t *r = &recs[i];
    size_t len = r->key ? r->key_len : 0;
    uint32_t owner = bk_murmur2_partition(r->key, len, n_splits);
    if (owner == (uint32_t)split) {
      recs[kept++] = *r;
      continue;
    }
    err = brook_ctx_fail_record(src->home, r, BROOK_ERR_INVALID_ARG,
                                "source '%s' is partitioned by key, but split %zu of %u produced "
                                "a record whose key (%zu bytes) belongs to split %u "
                                "(murmur2(key) %% %u)",
                                src->home->node->name, split, (unsigned)n_splits, len,
                                (unsigned)owner, (unsigned)n_splits);
    if (err < 0)
      break; /* failed: the records before it still go on */
  }
  *n = kept;
  return err;
}

brook_err_t bk_keyed_batch(bk_src_t *src, size_t split, brook_record_t *recs, size_t *n) {
  bk_port_t *port = bk_src_port(src);
  size_t count = recs ? *n : port->n;
  brook_err_t err = bk_keyed_verify(src, split, recs ? recs : port->buf, &count);
  if (recs)
    *n = count;
  else
    port->n = count;
  if (bk_src_enter_task(src, (int32_t)split) < 0) { /* its start failed: the run has too */
    port->n = 0;
    if (recs)
      *n = 0;
  }
  return err;
}
