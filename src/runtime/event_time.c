/* Event time in the runtime: stamping source batches with their event time, propagating
 * watermarks through the DAG (an operator's watermark is the minimum over its non-idle
 * inputs), firing event-time and processing-time timers, and the timer API of the operator
 * context. Everything here runs on the loop thread (or the test driver's thread). */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "runtime/exchange.h"
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
  if ((e = bk_wm_check_ts(g, rec->timestamp, src->w->now_ms, why, sizeof(why))) < 0) {
    src->w->stats.records_out_of_bounds++;
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
  bk_worker_t *w = src->w;
  w->stats.records_behind_watermark += behind;
  uint64_t count;
  if (!bk_wm_note_behind(&src->wm, s, behind, w->now_ms, &count))
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

/* 1 if the event time of `src`'s records matters: to the test driver (it reports
 * watermarks), to a strategy or timestamp extractor set on the source, to timestamp bounds, or
 * to a node downstream that may look at it (anything but the built-in callback operators:
 * windows, timers, user-written operators). Otherwise the source skips the pass over every
 * batch that stamps and observes it, until brook_ctx_watermark asks. */
static int source_tracks_time(const brook_runtime_t *rt, const bk_src_t *src) {
  const bk_node_t *node = src->home->node;
  if (rt->manual_clock || node->wm_opts || src->wm.opts->timestamp || bk_wm_bounds_on(&src->wm))
    return 1;
  const bk_plan_t *plan = &rt->plan;
  unsigned char *reach = bk_calloc(&rt->alloc, plan->n, 1); /* fed by the source */
  if (!reach)
    return 1; /* tracking is always right, only slower */
  size_t from = plan->pos[node->id];
  reach[from] = 1;
  int tracks = 0;
  for (size_t i = from + 1; i < plan->n && !tracks; i++) { /* inputs come first */
    const bk_node_t *c = plan->order[i];
    for (size_t k = 0; k < c->n_inputs && !reach[i]; k++)
      reach[i] = reach[plan->pos[c->inputs[k]->node->id]];
    tracks = reach[i] && (!c->time_blind || c->op.on_watermark || c->op.on_timer);
  }
  bk_free(&rt->alloc, reach);
  return tracks;
}

int bk_src_tracks_time(bk_src_t *src) {
  if (src->wm.track < 0) /* decided once, at the source's first batch */
    src->wm.track = source_tracks_time(src->rt, src);
  return src->wm.track;
}

brook_err_t bk_src_stamp(bk_src_t *src, brook_record_t *recs, size_t *n) {
  bk_worker_t *w = src->w;
  if (!bk_src_tracks_time(src))
    return BROOK_OK;
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
  bk_wm_split_t *s = bk_wm_split(&src->wm, src->cur_split, w->now_ms);
  if (!s)
    return BROOK_ERR_NOMEM;
  count_behind(src, s, recs, m);
  bk_wm_observe(&src->wm, s, src->cur_split, recs, m, w->now_ms);
  return err;
}

/* Delivers what `c` emitted (and any routed failures) and releases the arena if it grew. */
static brook_err_t settle(bk_worker_t *w, brook_ctx_t *c, int force_reset) {
  if (!force_reset && w->arena.allocated < BK_TIMER_ARENA_LIMIT)
    return BROOK_OK;
  brook_err_t err = bk_ctx_flush_ports(c);
  if (err >= 0 && w->errors_inst)
    err = bk_ctx_flush_ports(w->errors_inst);
  bk_arena_reset(&w->arena);
  return err;
}

static void op_failed(bk_worker_t *w, brook_ctx_t *c, brook_err_t err, const char *what) {
  bk_runtime_fail(w->rt, err, "operator '%s' failed in %s: %s", c->node->name, what,
                  c->has_error_msg ? c->error_msg.text : brook_strerror(err));
}

static brook_err_t fire_timers(bk_worker_t *w, brook_ctx_t *c, brook_time_domain_t domain,
                               brook_time_t upto) {
  brook_timer_t t;
  while (bk_runtime_status(w->rt) == BROOK_OK && bk_timer_pop(c, domain, upto, &t)) {
    w->stats.timers_fired++;
    c->has_error_msg = 0; /* a message belongs to the callback that set it */
    brook_err_t err = c->node->op.on_timer(c, c->state, &t);
    if (err >= 0)
      err = settle(w, c, 0);
    if (err < 0) {
      op_failed(w, c, err, "on_timer");
      return err;
    }
  }
  return w->rt->status;
}

/* The watermark over the node's inputs (instances in `insts`: the process-wide ones or a
 * task's): the minimum over the active ones, or if every input is idle over those still moving
 * with the clock; *state = its BK_WM_* state (BK_WM_IDLE: the result means nothing). */
static brook_time_t inputs_watermark(const bk_worker_t *w, const brook_ctx_t *insts,
                                     const bk_node_t *node, int *state) {
  bk_wm_fold_t f = bk_wm_fold_new();
  for (size_t k = 0; k < node->n_inputs; k++) {
    size_t pos = w->rt->plan.pos[node->inputs[k]->node->id];
    const brook_ctx_t *p = &insts[pos];
    if (!w->xchg || !bk_xchg_fold_input(w, node, k, &f)) /* else from every worker: so is time */
      bk_wm_fold_add(&f, p->wm, p->wm_idle);
  }
  *state = bk_wm_fold_state(&f);
  return f.rank ? f.wm : BROOK_TIME_MIN;
}

/* Moves operator instance `c` to its inputs' watermark and, with `fire`, runs the event-time
 * timers and on_watermark that are due. Without `fire` (the process-wide instance of a
 * per-task node, which is not opened) it only tracks the minimum over every task, which
 * process-wide consumers read. Returns < 0 on failure (recorded in w->rt->status). */
static brook_err_t pass_operator(bk_worker_t *w, const brook_ctx_t *insts, brook_ctx_t *c,
                                 int fire) {
  int state;
  brook_time_t m = inputs_watermark(w, insts, c->node, &state);
  c->wm_idle = state;
  int advanced = state != BK_WM_IDLE && m > c->wm;
  if (advanced)
    c->wm = m;
  if (!fire)
    return BROOK_OK;
  int due = c->timers[BROOK_EVENT_TIME] && bk_timerq_next(c->timers[BROOK_EVENT_TIME]) <= c->wm;
  if (!advanced && !due)
    return BROOK_OK;
  w->now_ms = w->rt->manual_clock ? w->now_ms : bk_wallclock_ms();
  if (due && fire_timers(w, c, BROOK_EVENT_TIME, c->wm) < 0)
    return w->rt->status;
  if (advanced && c->node->op.on_watermark) {
    c->has_error_msg = 0;
    brook_err_t err = c->node->op.on_watermark(c, c->state, c->wm);
    if (err < 0) {
      op_failed(w, c, err, "on_watermark");
      return err;
    }
    /* Timers on_watermark set at or before the watermark fire now, not a batch later. */
    if (c->timers[BROOK_EVENT_TIME] && bk_timerq_next(c->timers[BROOK_EVENT_TIME]) <= c->wm &&
        fire_timers(w, c, BROOK_EVENT_TIME, c->wm) < 0)
      return w->rt->status;
  }
  if (settle(w, c, 1) < 0 && w->rt->status == BROOK_OK)
    bk_runtime_fail(w->rt, BROOK_ERR_USER, "operator '%s': delivering timer output failed",
                    c->node->name);
  return w->rt->status;
}

/* A partitioned source's instance in each task: the watermark of the splits (partitions) of
 * that task only, folded in one pass over the splits (t->fold_wm and t->fold_active hold a
 * bk_wm_fold_t's wm and rank). A task without a split of this source is idle for it
 * (co-partitioned sources may not all have every partition). */
static void pass_source_tasks(bk_worker_t *w, const bk_src_t *src, size_t i) {
  const bk_wm_gen_t *g = &src->wm;
  for (size_t k = 0; k < w->n_tasks; k++) {
    bk_task_t *t = w->tasks[k];
    t->fold_wm = BROOK_TIME_MAX;
    t->fold_active = t->fold_present = 0;
  }
  for (size_t s = 0; s < g->n_splits && !g->ended; s++) {
    const bk_wm_split_t *sp = &g->splits[s];
    bk_task_t *t =
        sp->present && s < src->n_split_task ? bk_task_find(w, src->split_task[s]) : NULL;
    if (!t)
      continue;
    t->fold_present = 1;
    bk_wm_fold_t f = {t->fold_wm, t->fold_active};
    bk_wm_fold_add(&f, sp->wm, bk_wm_split_state(g, sp));
    t->fold_wm = f.wm;
    t->fold_active = f.rank;
  }
  for (size_t k = 0; k < w->n_tasks; k++) {
    bk_task_t *t = w->tasks[k];
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

void bk_time_pass(bk_worker_t *w) {
  for (size_t i = 0; i < w->rt->plan.n && w->rt->status == BROOK_OK; i++) {
    brook_ctx_t *c = &w->insts[i];
    int per_task = w->rt->per_task && w->rt->per_task[i];
    switch (c->node->kind) {
    case BK_NODE_SOURCE:
      bk_wm_combine(&c->src->wm);
      c->wm = c->src->wm.wm;
      c->wm_idle = c->src->wm.idle;
      if (per_task)
        pass_source_tasks(w, c->src, i);
      continue;
    case BK_NODE_ERRORS: /* failed records carry no event-time progress of their own */
      c->wm_idle = BK_WM_IDLE;
      continue;
    case BK_NODE_OPERATOR:
      break;
    }
    if (pass_operator(w, w->insts, c, !per_task) < 0)
      return;
    for (size_t k = 0; per_task && k < w->n_tasks; k++) {
      bk_task_t *t = w->tasks[k];
      if (bk_inst_live(w, i, k) && pass_operator(w, t->insts, &t->insts[i], 1) < 0)
        return;
    }
  }
}

void bk_time_tick(bk_worker_t *w) {
  for (size_t i = 0; i < w->n_sources; i++)
    if (!w->sources[i].ended)
      bk_wm_tick(&w->sources[i].wm, w->now_ms);
  for (size_t i = 0; i < w->rt->plan.n && w->rt->status == BROOK_OK; i++) {
    for (size_t k = 0; k < bk_inst_count(w, i) && w->rt->status == BROOK_OK; k++) {
      brook_ctx_t *c = bk_inst_at(w, i, k);
      bk_timerq_t *q = c->timers[BROOK_PROCESSING_TIME];
      if (!q || bk_timerq_next(q) > w->now_ms || !bk_inst_live(w, i, k))
        continue;
      if (fire_timers(w, c, BROOK_PROCESSING_TIME, w->now_ms) < 0)
        return;
      if (settle(w, c, 1) < 0 && w->rt->status == BROOK_OK)
        bk_runtime_fail(w->rt, BROOK_ERR_USER, "operator '%s': delivering timer output failed",
                        c->node->name);
    }
  }
  bk_time_pass(w);
}

brook_time_t bk_time_next_due(const bk_worker_t *w) {
  brook_time_t due = BROOK_TIME_MAX;
  for (size_t i = 0; i < w->n_sources; i++) {
    if (w->sources[i].ended)
      continue;
    brook_time_t t = bk_wm_next_tick(&w->sources[i].wm, w->now_ms);
    due = t < due ? t : due;
  }
  for (size_t i = 0; i < w->rt->plan.n; i++) {
    for (size_t k = 0; k < bk_inst_count(w, i); k++) {
      const bk_timerq_t *q = bk_inst_at(w, i, k)->timers[BROOK_PROCESSING_TIME];
      if (q && bk_timerq_next(q) < due && bk_inst_live(w, i, k))
        due = bk_timerq_next(q);
    }
  }
  return due;
}

brook_time_t brook_ctx_watermark(const brook_ctx_t *ctx) {
  if (!ctx)
    return BROOK_TIME_MIN;
  bk_worker_t *w = ctx->w;
  /* Someone looks: every source of this worker tracks from now (another worker's turn on when
   * a callback there asks: each worker touches only its own sources). */
  for (size_t i = 0; i < w->n_sources; i++)
    w->sources[i].wm.track = 1;
  return ctx->wm;
}
