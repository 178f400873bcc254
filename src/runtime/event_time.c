/* Event time in the runtime: stamping source batches with their event time, propagating
 * watermarks through the DAG (an operator's watermark is the minimum over its non-idle
 * inputs), firing event-time and processing-time timers, and the timer API of the operator
 * context. Everything here runs on the loop thread (or the test driver's thread). */
#include <stdio.h>
#include <string.h>

#include "runtime/runtime_impl.h"
#include "runtime/timers.h"
#include "time/timer_queue.h"

/* Timer callbacks may emit many records (a window firing for every key); the batch arena is
 * released whenever it holds this much, after what was emitted has been delivered. */
#define BK_TIMER_ARENA_LIMIT (4u << 20)

/* Stamps `rec` with its event time (the extractor's, if any) and checks it against the
 * source's timestamp bounds. Returns 0 (keep it), 1 (it failed and was skipped or routed by
 * the error policy) or < 0 (it failed the pipeline). */
static brook_err_t stamp_one(bk_src_t *src, brook_record_t *rec) {
  const bk_wm_gen_t *g = &src->wm;
  const brook_watermark_opts_t *o = g->opts;
  brook_err_t e;
  if (o->timestamp) {
    brook_time_t ts;
    if ((e = o->timestamp(rec, &ts, o->timestamp_opaque)) < 0) {
      e = brook_ctx_fail_record(src->ctx, rec, e, "timestamp extractor failed: %s",
                                brook_strerror(e));
      return e < 0 ? e : 1;
    }
    rec->timestamp = ts;
  }
  char why[160];
  if ((e = bk_wm_check_ts(g, rec->timestamp, src->rt->now_ms, why, sizeof(why))) < 0) {
    src->rt->stats.records_out_of_bounds++;
    e = brook_ctx_fail_record(src->ctx, rec, e, "%s", why);
    return e < 0 ? e : 1;
  }
  return 0;
}

/* Counts the records of the batch at or behind their split's watermark (late for every window
 * fed only by that split) and warns about a mass of them. */
static void count_behind(bk_src_t *src, bk_wm_split_t *s, const brook_record_t *recs, size_t n) {
  if (s->wm == BROOK_TIME_MIN)
    return;
  size_t behind = 0;
  for (size_t i = 0; i < n; i++)
    behind += recs[i].timestamp <= s->wm;
  if (!behind)
    return;
  brook_runtime_t *rt = src->rt;
  rt->stats.records_behind_watermark += behind;
  uint64_t count;
  if (!bk_wm_note_behind(&src->wm, s, behind, rt->now_ms, &count))
    return;
  size_t split = src->cur_split;
  char where[48];
  if (split < src->n_split_task && src->split_task[split] >= 0)
    snprintf(where, sizeof(where), "partition %d", (int)src->split_task[split]);
  else
    snprintf(where, sizeof(where), "split %zu", split);
  brook_ctx_log(src->ctx, BROOK_LOG_WARN,
                "%s: %llu records within %lld s arrived at or behind its watermark %lld (newest "
                "event time seen %lld): they are late for every window fed only by it "
                "(stats.records_behind_watermark)",
                where, (unsigned long long)count, (long long)(BROOK_LATE_WARN_PERIOD / BROOK_S),
                (long long)s->wm, (long long)s->max_ts);
}

brook_err_t bk_src_stamp(bk_src_t *src, brook_record_t *recs, size_t *n) {
  brook_runtime_t *rt = src->rt;
  brook_err_t err = BROOK_OK;
  size_t m = *n;
  if (src->wm.opts->timestamp || bk_wm_bounds_on(&src->wm)) {
    size_t w = 0;
    for (size_t i = 0; i < m; i++) {
      brook_err_t e = stamp_one(src, &recs[i]);
      if (e < 0) {
        err = e; /* the records before this one still go on */
        break;
      }
      if (e > 0)
        continue;
      if (w != i)
        recs[w] = recs[i];
      w++;
    }
    m = w;
    *n = w;
  }
  bk_wm_split_t *s = bk_wm_split(&src->wm, src->cur_split, rt->now_ms);
  if (!s)
    return BROOK_ERR_NOMEM;
  count_behind(src, s, recs, m);
  bk_wm_observe(&src->wm, s, src->cur_split, recs, m, rt->now_ms);
  return err;
}

/* Delivers what `c` emitted (and any routed failures) and releases the arena if it grew. */
static brook_err_t settle(brook_runtime_t *rt, brook_ctx_t *c, int force_reset) {
  if (!force_reset && rt->arena.allocated < BK_TIMER_ARENA_LIMIT)
    return BROOK_OK;
  brook_err_t err = bk_ctx_flush_ports(c);
  if (err >= 0 && rt->errors_inst)
    err = bk_ctx_flush_ports(rt->errors_inst);
  bk_arena_reset(&rt->arena);
  return err;
}

static void op_failed(brook_runtime_t *rt, brook_ctx_t *c, brook_err_t err, const char *what) {
  bk_runtime_fail(rt, err, "operator '%s' failed in %s: %s", c->node->name, what,
                  c->has_error_msg ? c->error_msg.text : brook_strerror(err));
}

static brook_err_t fire_timers(brook_runtime_t *rt, brook_ctx_t *c, brook_time_domain_t domain,
                               brook_time_t upto) {
  brook_timer_t t;
  while (rt->status == BROOK_OK && bk_timer_pop(c, domain, upto, &t)) {
    rt->stats.timers_fired++;
    c->has_error_msg = 0; /* a message belongs to the callback that set it */
    brook_err_t err = c->node->op.on_timer(c, c->state, &t);
    if (err >= 0)
      err = settle(rt, c, 0);
    if (err < 0) {
      op_failed(rt, c, err, "on_timer");
      return err;
    }
  }
  return rt->status;
}

/* The watermark over the node's inputs (instances in `insts`: the process-wide ones or a
 * task's): the minimum over the active ones, or if every input is idle over those still moving
 * with the clock; *state = its BK_WM_* state (BK_WM_IDLE: the result means nothing). */
static brook_time_t inputs_watermark(const brook_runtime_t *rt, const brook_ctx_t *insts,
                                     const bk_node_t *node, int *state) {
  bk_wm_fold_t f = bk_wm_fold_new();
  for (size_t k = 0; k < node->n_inputs; k++) {
    const brook_ctx_t *p = &insts[rt->plan.pos[node->inputs[k]->node->id]];
    bk_wm_fold_add(&f, p->wm, p->wm_idle);
  }
  *state = bk_wm_fold_state(&f);
  return f.rank ? f.wm : BROOK_TIME_MIN;
}

/* Moves operator instance `c` to its inputs' watermark and, with `fire`, runs the event-time
 * timers and on_watermark that are due. Without `fire` (the process-wide instance of a
 * per-task node, which is not opened) it only tracks the minimum over every task, which
 * process-wide consumers read. Returns < 0 on failure (recorded in rt->status). */
static brook_err_t pass_operator(brook_runtime_t *rt, const brook_ctx_t *insts, brook_ctx_t *c,
                                 int fire) {
  int state;
  brook_time_t m = inputs_watermark(rt, insts, c->node, &state);
  c->wm_idle = state;
  int advanced = state != BK_WM_IDLE && m > c->wm;
  if (advanced)
    c->wm = m;
  if (!fire)
    return BROOK_OK;
  int due = c->timers[BROOK_EVENT_TIME] && bk_timerq_next(c->timers[BROOK_EVENT_TIME]) <= c->wm;
  if (!advanced && !due)
    return BROOK_OK;
  rt->now_ms = rt->manual_clock ? rt->now_ms : bk_wallclock_ms();
  if (due && fire_timers(rt, c, BROOK_EVENT_TIME, c->wm) < 0)
    return rt->status;
  if (advanced && c->node->op.on_watermark) {
    c->has_error_msg = 0;
    brook_err_t err = c->node->op.on_watermark(c, c->state, c->wm);
    if (err < 0) {
      op_failed(rt, c, err, "on_watermark");
      return err;
    }
    /* Timers on_watermark set at or before the watermark fire now, not a batch later. */
    if (c->timers[BROOK_EVENT_TIME] && bk_timerq_next(c->timers[BROOK_EVENT_TIME]) <= c->wm &&
        fire_timers(rt, c, BROOK_EVENT_TIME, c->wm) < 0)
      return rt->status;
  }
  if (settle(rt, c, 1) < 0 && rt->status == BROOK_OK)
    bk_runtime_fail(rt, BROOK_ERR_USER, "operator '%s': delivering timer output failed",
                    c->node->name);
  return rt->status;
}

/* A partitioned source's instance in each task: the watermark of the splits (partitions) of
 * that task only, folded in one pass over the splits (t->fold_wm and t->fold_active hold a
 * bk_wm_fold_t's wm and rank). A task without a split of this source is idle for it
 * (co-partitioned sources may not all have every partition). */
static void pass_source_tasks(brook_runtime_t *rt, const bk_src_t *src, size_t i) {
  const bk_wm_gen_t *g = &src->wm;
  for (size_t k = 0; k < rt->n_tasks; k++) {
    bk_task_t *t = rt->tasks[k];
    t->fold_wm = BROOK_TIME_MAX;
    t->fold_active = t->fold_present = 0;
  }
  for (size_t s = 0; s < g->n_splits && !g->ended; s++) {
    const bk_wm_split_t *sp = &g->splits[s];
    bk_task_t *t =
        sp->present && s < src->n_split_task ? bk_task_find(rt, src->split_task[s]) : NULL;
    if (!t)
      continue;
    t->fold_present = 1;
    bk_wm_fold_t f = {t->fold_wm, t->fold_active};
    bk_wm_fold_add(&f, sp->wm, bk_wm_split_state(g, sp));
    t->fold_wm = f.wm;
    t->fold_active = f.rank;
  }
  for (size_t k = 0; k < rt->n_tasks; k++) {
    bk_task_t *t = rt->tasks[k];
    brook_ctx_t *c = &t->insts[i];
    if (g->ended) {
      c->wm = BROOK_TIME_MAX;
      c->wm_idle = BK_WM_ACTIVE;
      continue;
    }
    bk_wm_fold_t f = {t->fold_wm, t->fold_active};
    c->wm_idle = bk_wm_fold_state(&f);
    if (f.rank && f.wm > c->wm)
      c->wm = f.wm;
  }
}

void bk_time_pass(brook_runtime_t *rt) {
  for (size_t i = 0; i < rt->plan.n && rt->status == BROOK_OK; i++) {
    brook_ctx_t *c = &rt->insts[i];
    int per_task = rt->per_task && rt->per_task[i];
    switch (c->node->kind) {
    case BK_NODE_SOURCE:
      bk_wm_combine(&c->src->wm);
      c->wm = c->src->wm.wm;
      c->wm_idle = c->src->wm.idle;
      if (per_task)
        pass_source_tasks(rt, c->src, i);
      continue;
    case BK_NODE_ERRORS: /* failed records carry no event-time progress of their own */
      c->wm_idle = BK_WM_IDLE;
      continue;
    case BK_NODE_OPERATOR:
      break;
    }
    if (pass_operator(rt, rt->insts, c, !per_task) < 0)
      return;
    for (size_t k = 0; per_task && k < rt->n_tasks; k++) {
      bk_task_t *t = rt->tasks[k];
      if (pass_operator(rt, t->insts, &t->insts[i], 1) < 0)
        return;
    }
  }
}

void bk_time_tick(brook_runtime_t *rt) {
  for (size_t i = 0; i < rt->n_sources; i++)
    if (!rt->sources[i].ended)
      bk_wm_tick(&rt->sources[i].wm, rt->now_ms);
  for (size_t i = 0; i < rt->plan.n && rt->status == BROOK_OK; i++) {
    for (size_t k = 0; k < bk_inst_count(rt, i) && rt->status == BROOK_OK; k++) {
      brook_ctx_t *c = bk_inst_at(rt, i, k);
      bk_timerq_t *q = c->timers[BROOK_PROCESSING_TIME];
      if (!q || bk_timerq_next(q) > rt->now_ms)
        continue;
      if (fire_timers(rt, c, BROOK_PROCESSING_TIME, rt->now_ms) < 0)
        return;
      if (settle(rt, c, 1) < 0 && rt->status == BROOK_OK)
        bk_runtime_fail(rt, BROOK_ERR_USER, "operator '%s': delivering timer output failed",
                        c->node->name);
    }
  }
  bk_time_pass(rt);
}

brook_time_t bk_time_next_due(const brook_runtime_t *rt) {
  brook_time_t due = BROOK_TIME_MAX;
  for (size_t i = 0; i < rt->n_sources; i++) {
    if (rt->sources[i].ended)
      continue;
    brook_time_t t = bk_wm_next_tick(&rt->sources[i].wm, rt->now_ms);
    due = t < due ? t : due;
  }
  for (size_t i = 0; i < rt->plan.n; i++) {
    for (size_t k = 0; k < bk_inst_count(rt, i); k++) {
      const bk_timerq_t *q = bk_inst_at(rt, i, k)->timers[BROOK_PROCESSING_TIME];
      if (q && bk_timerq_next(q) < due)
        due = bk_timerq_next(q);
    }
  }
  return due;
}

brook_time_t brook_ctx_watermark(const brook_ctx_t *ctx) { return ctx ? ctx->wm : BROOK_TIME_MIN; }
