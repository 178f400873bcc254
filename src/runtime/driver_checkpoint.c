/* The test driver's checkpoint and restore (test_driver.h): the whole state of a driver
 * (checkpoint.h sections: processing time, every source's watermark generator and partition
 * assignment, every operator instance's stores, timers and watermark, process-wide and per
 * task, and revoked tasks' kept state) written out, and loaded into a new driver built from
 * the same topology.
 *
 * Restore first checks everything that can be checked without changing the driver (every
 * checksum and bound, that nodes, node types and stores match this topology), then applies;
 * what can still fail while applying (memory, an operator's open() for a task, a store
 * snapshot that does not fit its store) rolls the driver back to what it was: new, empty.
 * The driver's thread only. */
#include <string.h>

#include "core/alloc.h"
#include "runtime/checkpoint.h"
#include "runtime/driver_impl.h"

/* ---- checkpoint ---- */

static void write_source(bk_ckpt_writer_t *w, const brook_driver_t *d, size_t si) {
  const bk_src_t *src = &d->rt->w0->sources[si];
  const bk_wm_gen_t *g = &src->wm;
  bk_ckpt_section(w, BK_SEC_SOURCE, -1, src->home->node->name, NULL);
  bk_ckpt_put_u8(w, (uint8_t)src->ended);
  bk_ckpt_put_i64(w, g->wm);
  bk_ckpt_put_u32(w, (uint32_t)g->idle);
  bk_ckpt_put_i64(w, g->started);
  bk_ckpt_put_u8(w, (uint8_t)g->ended);
  bk_ckpt_put_i64(w, g->warned_at);
  bk_ckpt_put_u8(w, (uint8_t)g->warned);
  bk_ckpt_put_u32(w, (uint32_t)g->n_splits);
  for (size_t i = 0; i < g->n_splits; i++) {
    const bk_wm_split_t *s = &g->splits[i];
    bk_ckpt_put_i64(w, s->max_ts);
    bk_ckpt_put_i64(w, s->wm);
    bk_ckpt_put_i64(w, s->wm_at_last);
    bk_ckpt_put_i64(w, s->last_arrival);
    bk_ckpt_put_u8(w, (uint8_t)s->idle);
    bk_ckpt_put_u8(w, (uint8_t)s->present);
    bk_ckpt_put_i64(w, (int64_t)s->behind_n);
    bk_ckpt_put_i64(w, s->behind_since);
  }
  bk_ckpt_put_u32(w, (uint32_t)src->n_split_task);
  for (size_t i = 0; i < src->n_split_task; i++)
    bk_ckpt_put_u32(w, (uint32_t)src->split_task[i]);
  size_t n_rev = 0;
  for (size_t i = 0; i < d->n_revoked; i++)
    n_rev += d->revoked[i].source == si;
  bk_ckpt_put_u32(w, (uint32_t)n_rev);
  for (size_t i = 0; i < d->n_revoked; i++)
    if (d->revoked[i].source == si)
      bk_ckpt_put_u32(w, (uint32_t)d->revoked[i].split);
  bk_ckpt_section_end(w);
}

brook_err_t brook_driver_checkpoint(brook_driver_t *d, brook_write_fn write, void *opaque) {
  if (!d || !write)
    return BROOK_ERR_INVALID_ARG;
  brook_runtime_t *rt = d->rt;
  if (bk_driver_state_commit(d, 0) != BROOK_OK) /* state on disk: operators write it first */
    return rt->status;
  bk_ckpt_writer_t w;
  bk_ckpt_writer_init(&w, &d->alloc, write, opaque, BK_CKPT_DRIVER);
  bk_ckpt_section(&w, BK_SEC_CLOCK, -1, NULL, NULL);
  bk_ckpt_put_i64(&w, rt->w0->now_ms);
  bk_ckpt_put_u8(&w, (uint8_t)d->ended);
  bk_ckpt_section_end(&w);
  for (size_t i = 0; i < rt->w0->n_sources; i++)
    write_source(&w, d, i);
  for (size_t i = 0; i < rt->plan.n; i++)
    bk_ckpt_write_inst(&w, &rt->w0->insts[i]);
  for (size_t k = 0; k < rt->w0->n_tasks; k++)
    for (size_t i = 0; i < rt->plan.n; i++)
      if (rt->per_task[i])
        bk_ckpt_write_inst(&w, &rt->w0->tasks[k]->insts[i]);
  for (size_t i = 0; i < d->n_saved; i++) {
    bk_ckpt_section(&w, BK_SEC_SAVED, d->saved[i].task, NULL, NULL);
    bk_ckpt_put(&w, d->saved[i].data, d->saved[i].len);
    bk_ckpt_section_end(&w);
  }
  brook_err_t err = bk_ckpt_finish(&w);
  if (err < 0)
    bk_errmsg_set(&rt->msg, "driver_checkpoint: %s", brook_strerror(err));
  return err;
}

/* ---- restore: what is read and checked before anything changes ---- */

typedef struct src_load {
  const bk_ckpt_sec_t *sec;
  int ended;
  bk_wm_gen_t gen; /* scalar fields and a new splits array */
  int32_t *split_task;
  size_t n_split_task;
} src_load_t;

typedef struct load {
  bk_ckpt_sec_t *secs;
  size_t n;
  const bk_ckpt_sec_t *clock;
  src_load_t *srcs; /* indexed like rt->w0->sources */
  bk_saved_task_t *saved;
  size_t n_saved;
  bk_revoked_t *revoked;
  size_t n_revoked, cap_revoked;
} load_t;

static void load_free(const brook_allocator_t *a, load_t *l, size_t n_sources) {
  for (size_t i = 0; l->srcs && i < n_sources; i++) {
    bk_free(a, l->srcs[i].gen.splits);
    bk_free(a, l->srcs[i].split_task);
  }
  for (size_t i = 0; i < l->n_saved; i++)
    bk_free(a, l->saved[i].data);
  bk_free(a, l->saved);
  bk_free(a, l->revoked);
  bk_free(a, l->srcs);
  bk_free(a, l->secs);
}

static brook_err_t bad(bk_errmsg_t *why, const bk_ckpt_sec_t *s, const char *what) {
  char where[400];
  bk_errmsg_set(why, "checkpoint %s: %s", bk_ckpt_where(s, where, sizeof(where)), what);
  return BROOK_ERR_CORRUPT;
}

static brook_err_t read_source(brook_driver_t *d, load_t *l, const bk_ckpt_sec_t *s, size_t si,
                               bk_errmsg_t *why) {
  const brook_allocator_t *a = &d->alloc;
  src_load_t *sl = &l->srcs[si];
  if (sl->sec)
    return bad(why, s, "a second section for this source");
  sl->sec = s;
  bk_ckpt_in_t in = bk_ckpt_in(s);
  bk_wm_gen_t *g = &sl->gen;
  sl->ended = bk_ckpt_get_u8(&in);
  g->wm = bk_ckpt_get_i64(&in);
  g->idle = (int)bk_ckpt_get_u32(&in);
  g->started = bk_ckpt_get_i64(&in);
  g->ended = bk_ckpt_get_u8(&in);
  g->warned_at = bk_ckpt_get_i64(&in);
  g->warned = bk_ckpt_get_u8(&in);
  uint32_t n = bk_ckpt_get_u32(&in);
  if (in.bad || n > (in.len - in.pos) / 50) /* 50 bytes per split */
    return bad(why, s, "malformed watermark state");
  if (n && !(g->splits = bk_calloc(a, n, sizeof(*g->splits))))
    return BROOK_ERR_NOMEM;
  g->n_splits = g->cap_splits = n;
  for (uint32_t i = 0; i < n; i++) {
    bk_wm_split_t *sp = &g->splits[i];
    sp->max_ts = bk_ckpt_get_i64(&in);
    sp->wm = bk_ckpt_get_i64(&in);
    sp->wm_at_last = bk_ckpt_get_i64(&in);
    sp->last_arrival = bk_ckpt_get_i64(&in);
    sp->idle = bk_ckpt_get_u8(&in);
    sp->present = bk_ckpt_get_u8(&in);
    sp->behind_n = (uint64_t)bk_ckpt_get_i64(&in);
    sp->behind_since = bk_ckpt_get_i64(&in);
  }
  uint32_t nt = bk_ckpt_get_u32(&in);
  if (in.bad || nt > (in.len - in.pos) / 4)
    return bad(why, s, "malformed partition assignment");
  if (nt && !(sl->split_task = bk_malloc(a, nt * sizeof(*sl->split_task))))
    return BROOK_ERR_NOMEM;
  sl->n_split_task = nt;
  const bk_src_t *src = &d->rt->w0->sources[si];
  for (uint32_t i = 0; i < nt; i++) {
    sl->split_task[i] = (int32_t)bk_ckpt_get_u32(&in);
    if (sl->split_task[i] != -1 &&
        (sl->split_task[i] != (int32_t)i || !src->home->node->source_type->partitioned))
      return bad(why, s, "a partition assigned to a task other than its own");
  }
  uint32_t nr = bk_ckpt_get_u32(&in);
  if (in.bad || nr > (in.len - in.pos) / 4)
    return bad(why, s, "malformed list of revoked partitions");
  if (bk_grow(a, (void **)&l->revoked, &l->cap_revoked, l->n_revoked + nr + 1, sizeof(*l->revoked)))
    return BROOK_ERR_NOMEM;
  for (uint32_t i = 0; i < nr; i++)
    l->revoked[l->n_revoked++] = (bk_revoked_t){si, bk_ckpt_get_u32(&in)};
  if (in.pos != in.len)
    return bad(why, s, "malformed: bytes left over");
  return BROOK_OK;
}

/* Whether task `id` is assigned in the checkpoint (some source maps a partition to it). */
static int task_loaded(const brook_runtime_t *rt, const load_t *l, int32_t id) {
  for (size_t i = 0; i < rt->w0->n_sources; i++)
    if ((size_t)id < l->srcs[i].n_split_task && l->srcs[i].split_task[id] == id)
      return 1;
  return 0;
}

static brook_err_t read_saved(brook_driver_t *d, load_t *l, const bk_ckpt_sec_t *s,
                              bk_errmsg_t *why) {
  if (s->task < 0 || s->node_len || s->store_len)
    return bad(why, s, "malformed");
  for (size_t i = 0; i < l->n_saved; i++)
    if (l->saved[i].task == s->task)
      return bad(why, s, "a second saved state for this task");
  bk_ckpt_sec_t *inner;
  size_t n_inner;
  bk_errmsg_t sub;
  brook_err_t err =
      bk_ckpt_parse(&d->alloc, s->payload, s->len, BK_CKPT_TASK, &inner, &n_inner, &sub);
  bk_free(&d->alloc, inner);
  if (err == BROOK_ERR_CORRUPT)
    return bad(why, s, sub.text);
  if (err < 0)
    return err;
  size_t cap = l->n_saved;
  if (bk_grow(&d->alloc, (void **)&l->saved, &cap, l->n_saved + 1, sizeof(*l->saved)))
    return BROOK_ERR_NOMEM;
  bk_saved_task_t *t = &l->saved[l->n_saved];
  if (!(t->data = bk_malloc(&d->alloc, s->len ? s->len : 1)))
    return BROOK_ERR_NOMEM;
  memcpy(t->data, s->payload, s->len);
  t->len = s->len;
  t->task = s->task;
  l->n_saved++;
  return BROOK_OK;
}

/* Reads and checks every section against this driver's topology; changes nothing. */
static brook_err_t read_all(brook_driver_t *d, load_t *l, bk_errmsg_t *why) {
  brook_runtime_t *rt = d->rt;
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < l->n && err >= 0; i++) {
    const bk_ckpt_sec_t *s = &l->secs[i];
    size_t pos = s->kind == BK_SEC_CLOCK || s->kind == BK_SEC_SAVED ? 0 : bk_ckpt_node_pos(rt, s);
    if (pos == SIZE_MAX) {
      err = bad(why, s,
                "this topology has no node of that name (a node removed or renamed "
                "since the checkpoint?)");
    } else if (s->kind == BK_SEC_CLOCK) {
      bk_ckpt_in_t in = bk_ckpt_in(s);
      (void)bk_ckpt_get_i64(&in);
      (void)bk_ckpt_get_u8(&in);
      if (l->clock || in.bad || in.pos != in.len || s->task != -1 || s->node_len)
        err = bad(why, s, "malformed");
      l->clock = s;
    } else if (s->kind == BK_SEC_SOURCE) {
      const bk_node_t *node = rt->w0->insts[pos].node;
      size_t si = 0;
      while (si < rt->w0->n_sources && rt->w0->sources[si].home->node != node)
        si++;
      err = si < rt->w0->n_sources ? read_source(d, l, s, si, why)
                                   : bad(why, s, "this topology's node of that name is no source");
    } else if (s->kind == BK_SEC_SAVED) {
      err = read_saved(d, l, s, why);
    } else if (s->task >= 0 && !(rt->per_task && rt->per_task[pos])) {
      err = bad(why, s, "a task's instance of a node that does not run per task here");
    }
  }
  if (err >= 0 && !l->clock) {
    bk_errmsg_set(why, "checkpoint has no clock section");
    err = BROOK_ERR_CORRUPT;
  }
  for (size_t i = 0; i < rt->w0->n_sources && err >= 0; i++) {
    if (!l->srcs[i].sec) {
      bk_errmsg_set(why, "source '%s' of this topology is not in the checkpoint",
                    rt->w0->sources[i].home->node->name);
      err = BROOK_ERR_CORRUPT;
    }
  }
  for (size_t i = 0; i < l->n && err >= 0; i++)
    if (l->secs[i].kind >= BK_SEC_NODE && l->secs[i].kind <= BK_SEC_TIMERS &&
        l->secs[i].task >= 0 && !task_loaded(rt, l, l->secs[i].task))
      err = bad(why, &l->secs[i], "the task of a partition that is not assigned");
  for (size_t i = 0; i < rt->plan.n && err >= 0; i++)
    err = bk_ckpt_check_inst(&rt->w0->insts[i], l->secs, l->n, why);
  return err;
}

/* ---- restore: applying, and rolling back ---- */

/* Opens the tasks of the assigned partitions and checks and applies every instance. */
static brook_err_t apply(brook_driver_t *d, load_t *l, bk_errmsg_t *why) {
  brook_runtime_t *rt = d->rt;
  brook_err_t err = BROOK_OK;
  /* Tasks open in the order the checkpoint lists them (the checkpointed driver's order), so
   * that what they emit together (at a watermark, at the end) comes out in the same order. */
  for (size_t i = 0; i < l->n && err >= 0; i++) {
    int32_t id = l->secs[i].task;
    if (l->secs[i].kind != BK_SEC_NODE || id < 0 || bk_task_find(rt->w0, id))
      continue;
    for (size_t si = 0; si < rt->w0->n_sources && err >= 0; si++) {
      src_load_t *sl = &l->srcs[si];
      if ((size_t)id >= sl->n_split_task || sl->split_task[id] != id)
        continue;
      if ((err = bk_src_split_task(&rt->w0->sources[si], (size_t)id, id)) >= 0)
        err = bk_task_acquire(rt->w0, id, "restored from a checkpoint");
      if (err < 0)
        bk_errmsg_set(why, "opening the task of partition %d of source '%s' failed: %s", (int)id,
                      rt->w0->sources[si].home->node->name,
                      rt->status < 0 ? rt->msg.text : brook_strerror(err));
    }
  }
  for (size_t si = 0; si < rt->w0->n_sources && err >= 0; si++) /* every assigned task is open */
    for (size_t p = 0; p < l->srcs[si].n_split_task && err >= 0; p++)
      if (l->srcs[si].split_task[p] >= 0 && !bk_task_find(rt->w0, (int32_t)p)) {
        bk_errmsg_set(why,
                      "partition %zu of source '%s' is assigned but its task is not in the "
                      "checkpoint",
                      p, rt->w0->sources[si].home->node->name);
        err = BROOK_ERR_CORRUPT;
      }
  for (size_t k = 0; k < rt->w0->n_tasks && err >= 0; k++)
    for (size_t i = 0; i < rt->plan.n && err >= 0; i++)
      if (rt->per_task[i])
        err = bk_ckpt_check_inst(&rt->w0->tasks[k]->insts[i], l->secs, l->n, why);
  for (size_t i = 0; i < rt->plan.n && err >= 0; i++)
    err = bk_ckpt_apply_inst(&rt->w0->insts[i], l->secs, l->n, why);
  for (size_t k = 0; k < rt->w0->n_tasks && err >= 0; k++)
    for (size_t i = 0; i < rt->plan.n && err >= 0; i++)
      if (rt->per_task[i])
        err = bk_ckpt_apply_inst(&rt->w0->tasks[k]->insts[i], l->secs, l->n, why);
  return err;
}

/* The restore failed while applying: back to the new driver it was. */
static void roll_back(brook_driver_t *d, const brook_time_t *wm, const int *idle) {
  brook_runtime_t *rt = d->rt;
  bk_tasks_close_all(rt->w0,
                     "the restore failed"); /* all opened by this restore: the driver had none */
  for (size_t i = 0; i < rt->plan.n; i++) {
    bk_ckpt_reset_inst(&rt->w0->insts[i]);
    rt->w0->insts[i].wm = wm[i];
    rt->w0->insts[i].wm_idle = idle[i];
  }
  for (size_t si = 0; si < rt->w0->n_sources; si++)
    for (size_t p = 0; p < rt->w0->sources[si].n_split_task; p++)
      rt->w0->sources[si].split_task[p] = -1;
}

/* Everything is in place: the parts that cannot fail. */
static void commit(brook_driver_t *d, load_t *l) {
  brook_runtime_t *rt = d->rt;
  bk_ckpt_in_t in = bk_ckpt_in(l->clock);
  rt->w0->now_ms = bk_ckpt_get_i64(&in);
  d->ended = bk_ckpt_get_u8(&in);
  for (size_t si = 0; si < rt->w0->n_sources; si++) {
    bk_src_t *src = &rt->w0->sources[si];
    bk_wm_gen_t *g = &src->wm, *n = &l->srcs[si].gen;
    bk_free(g->alloc, g->splits);
    g->splits = n->splits;
    g->n_splits = n->n_splits;
    g->cap_splits = n->cap_splits;
    n->splits = NULL;
    g->wm = n->wm;
    g->idle = n->idle;
    g->started = n->started;
    g->ended = n->ended;
    g->warned_at = n->warned_at;
    g->warned = n->warned;
    src->ended = l->srcs[si].ended;
  }
  bk_driver_partitions_free(d); /* a new driver has neither saved tasks nor revocations */
  d->saved = l->saved;
  d->n_saved = d->cap_saved = l->n_saved;
  d->revoked = l->revoked;
  d->n_revoked = d->cap_revoked = l->n_revoked;
  l->saved = NULL;
  l->revoked = NULL;
  l->n_saved = l->n_revoked = 0;
}

brook_err_t brook_driver_restore(brook_driver_t *d, const void *data, size_t len) {
  if (!d || (!data && len))
    return BROOK_ERR_INVALID_ARG;
  brook_runtime_t *rt = d->rt;
  if (rt->status != BROOK_OK)
    return rt->status;
  if (d->touched) {
    bk_errmsg_set(&rt->msg, "driver_restore: the driver has run already; restore into a new "
                            "driver built from the same topology");
    return BROOK_ERR_STATE;
  }
  load_t l;
  memset(&l, 0, sizeof(l));
  bk_errmsg_t why;
  why.text[0] = '\0';
  brook_err_t err = bk_ckpt_parse(&d->alloc, data, len, BK_CKPT_DRIVER, &l.secs, &l.n, &why);
  if (err >= 0 &&
      !(l.srcs = bk_calloc(&d->alloc, rt->w0->n_sources ? rt->w0->n_sources : 1, sizeof(*l.srcs))))
    err = BROOK_ERR_NOMEM;
  if (err >= 0)
    err = read_all(d, &l, &why);
  brook_time_t *wm = NULL;
  int *idle = NULL;
  if (err >= 0 && (!(wm = bk_malloc(&d->alloc, rt->plan.n * sizeof(*wm))) ||
                   !(idle = bk_malloc(&d->alloc, rt->plan.n * sizeof(*idle)))))
    err = BROOK_ERR_NOMEM;
  if (err >= 0) {
    for (size_t i = 0; i < rt->plan.n; i++) {
      wm[i] = rt->w0->insts[i].wm;
      idle[i] = rt->w0->insts[i].wm_idle;
    }
    brook_runtime_stats_t stats = rt->w0->stats;
    if ((err = apply(d, &l, &why)) < 0) {
      roll_back(d, wm, idle);
      rt->w0->stats = stats;
      rt->status = BROOK_OK; /* a task's open() failing here fails the restore, not the run */
    } else {
      commit(d, &l);
      d->touched = 1;
    }
  }
  if (err == BROOK_ERR_NOMEM && !why.text[0])
    bk_errmsg_set(&why, "out of memory");
  if (err < 0)
    bk_errmsg_set(&rt->msg, "driver_restore: %s", why.text);
  bk_free(&d->alloc, wm);
  bk_free(&d->alloc, idle);
  load_free(&d->alloc, &l, rt->w0->n_sources);
  return err;
}
