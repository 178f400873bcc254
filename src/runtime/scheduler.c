/* The loop side of the runtime: attaching to a uv loop, running sources' batches in bounded
 * slices from an idle handle (so the loop's other handles keep firing), waking up from other
 * threads and signal handlers, draining on stop, and closing everything in order.
 * Everything here runs on the loop thread except bk_runtime_wake. */
#include <string.h>

#include "runtime/runtime_impl.h"

static void finish(brook_runtime_t *rt);

static void runtime_done(brook_runtime_t *rt) {
  rt->state = BK_RT_DONE;
  if (rt->free_on_done) {
    if (!rt->in_run) /* run() owns the loop inside rt and frees it when it returns */
      bk_runtime_destroy_if_requested(rt);
    return;
  }
  brook_done_cb cb = rt->opts.on_done;
  if (cb)
    cb(rt, rt->status, rt->opts.on_done_opaque); /* may free rt: touch nothing after */
}

void bk_runtime_hold(brook_runtime_t *rt) { rt->holds++; }

void bk_runtime_release(brook_runtime_t *rt) {
  if (--rt->holds == 0 && rt->state == BK_RT_CLOSING)
    runtime_done(rt);
}

static void on_handle_closed(uv_handle_t *h) { bk_runtime_release(h->data); }

void bk_runtime_close_handle(brook_runtime_t *rt, uv_handle_t *h) {
  bk_runtime_hold(rt);
  h->data = rt;
  uv_close(h, on_handle_closed);
}

void bk_runtime_wake(brook_runtime_t *rt) {
  /* Async-signal-safe: atomics and uv_async_send only. `senders` lets the loop thread wait
   * for in-flight sends before it closes the async handle. */
  atomic_fetch_add(&rt->senders, 1);
  if (atomic_load(&rt->async_live))
    uv_async_send(&rt->async);
  atomic_fetch_sub(&rt->senders, 1);
}

static int all_sources_ended(const brook_runtime_t *rt) {
  for (size_t i = 0; i < rt->n_sources; i++)
    if (!rt->sources[i].ended)
      return 0;
  return 1;
}

static int any_source_ready(const brook_runtime_t *rt) {
  for (size_t i = 0; i < rt->n_sources; i++)
    if (rt->sources[i].ready && !rt->sources[i].ended)
      return 1;
  return 0;
}

static void idle_set(brook_runtime_t *rt, int on);
static void clock_arm(brook_runtime_t *rt);

void bk_sched_ready(bk_src_t *src) {
  src->ready = 1;
  brook_runtime_t *rt = src->rt;
  if (rt->state == BK_RT_RUNNING || rt->state == BK_RT_DRAINING)
    idle_set(rt, 1);
}

static void begin_drain(brook_runtime_t *rt) {
  rt->state = BK_RT_DRAINING;
  for (size_t i = 0; i < rt->n_sources; i++)
    if (!rt->sources[i].ended)
      rt->sources[i].vt->stop(&rt->sources[i]);
}

/* Calls `fn` on every operator instance in topological order, delivering what each emits
 * (and any routed errors) before moving on. Stops at the first failure. */
void bk_call_operator(brook_runtime_t *rt, brook_ctx_t *c,
                      brook_err_t (*fn)(brook_ctx_t *, void *state)) {
  if (!rt->manual_clock)
    rt->now_ms = bk_wallclock_ms();
  c->has_error_msg = 0;
  brook_err_t err = fn(c, c->state);
  if (err >= 0)
    err = bk_ctx_flush_ports(c);
  if (err >= 0 && rt->errors_inst)
    err = bk_ctx_flush_ports(rt->errors_inst);
  if (err < 0)
    bk_runtime_fail(rt, err, "operator '%s'%s failed at end of input or flush: %s", c->node->name,
                    c->task >= 0 ? " (of a partition's task)" : "",
                    c->has_error_msg ? c->error_msg.text : brook_strerror(err));
}

void bk_for_each_operator(brook_runtime_t *rt, brook_err_t (*fn)(brook_ctx_t *, void *state)) {
  for (size_t i = 0; i < rt->plan.n && rt->status == BROOK_OK; i++) {
    if (rt->insts[i].node->kind != BK_NODE_OPERATOR)
      continue;
    for (size_t t = 0; t < bk_inst_count(rt, i) && rt->status == BROOK_OK; t++) {
      brook_ctx_t *c = bk_inst_at(rt, i, t);
      if (!c->opened)
        continue;
      bk_call_operator(rt, c, fn);
      bk_arena_reset(&rt->arena); /* what it emitted has been delivered */
    }
  }
}

brook_err_t bk_call_end_of_input(brook_ctx_t *c, void *state) {
  return c->node->op.end_of_input ? c->node->op.end_of_input(c, state) : BROOK_OK;
}

brook_err_t bk_call_flush(brook_ctx_t *c, void *state) {
  return c->node->op.flush ? c->node->op.flush(c, state) : BROOK_OK;
}

void bk_sched_poke(brook_runtime_t *rt) {
  if (rt->state == BK_RT_FLUSHING) {
    bk_commit_poll(rt); /* the final commit completes once its outputs are acknowledged */
    if (rt->status != BROOK_OK || (rt->delivery.total == 0 && !bk_commit_waiting(&rt->commit)))
      finish(rt);
    return;
  }
  if (rt->state != BK_RT_RUNNING && rt->state != BK_RT_DRAINING)
    return;
  if (rt->state == BK_RT_RUNNING && atomic_load(&rt->stop_flag))
    begin_drain(rt);
  if (rt->status == BROOK_OK)
    bk_commit_poll(rt); /* outside any batch: flush() may run (commit.c) */
  if (rt->status != BROOK_OK || all_sources_ended(rt)) {
    finish(rt);
    return;
  }
  /* Going idle does not flush: flush() runs at commits (commit.c), every
   * commit_interval_ms, which bounds how long buffered output waits. */
  int ready = any_source_ready(rt) && !rt->delivery.held;
  idle_set(rt, ready);
  clock_arm(rt);
}

/* The clock: processing-time timers and watermark ticks (idleness, quiet advance). */
static void on_clock(uv_timer_t *h) {
  brook_runtime_t *rt = h->data;
  rt->clock_due = BROOK_TIME_MAX;
  if (rt->state != BK_RT_RUNNING && rt->state != BK_RT_DRAINING)
    return;
  rt->now_ms = bk_wallclock_ms();
  bk_time_tick(rt);
  bk_sched_poke(rt);
}

static void clock_arm(brook_runtime_t *rt) {
  if (!rt->clock_open)
    return;
  brook_time_t due = bk_time_next_due(rt);
  if (due == rt->clock_due)
    return;
  rt->clock_due = due;
  if (due == BROOK_TIME_MAX) {
    uv_timer_stop(&rt->clock);
    return;
  }
  brook_time_t now = bk_wallclock_ms();
  uv_timer_start(&rt->clock, on_clock, due > now ? (uint64_t)(due - now) : 0, 0);
}

/* Runs one batch of `src` through the pipeline and releases its memory. */
static void run_batch(brook_runtime_t *rt, bk_src_t *src) {
  rt->now_ms = bk_wallclock_ms();
  bk_delivery_next_epoch(&rt->delivery);
  rt->batch_src = src;
  brook_err_t err = src->vt->produce(src);
  bk_port_t *port = bk_src_port(src); /* a partitioned source's batch is in its task's port */
  if (src->ctx == src->home && port->n && rt->per_task &&
      rt->per_task[rt->plan.pos[src->home->node->id]]) {
    /* Records of no task: the process-wide instances after a partitioned source are never
     * opened. The source failed or lost the partition before routing them; not delivered. */
    port->n = 0;
  }
  if (err == BROOK_DONE) {
    src->ended = 1;
    /* A natural end releases the event-time hold: its watermark becomes the maximum. A
     * stop does not: windows still open stay unfired. */
    src->wm.ended = rt->state == BK_RT_RUNNING;
    err = BROOK_OK;
  }
  if (port->n) { /* even if producing failed: records before the failing one go on */
    rt->stats.records_in += port->n;
    brook_err_t derr = bk_port_deliver(src->ctx, port);
    if (err >= 0)
      err = derr;
  }
  if (err >= 0 && rt->errors_inst)
    err = bk_ctx_flush_ports(rt->errors_inst);
  port->n = 0;
  if (src->ctx != src->home)
    bk_src_leave_task(src);
  rt->batch_src = NULL;
  src->vt->batch_done(src);
  bk_arena_reset(&rt->arena);
  rt->stats.batches++;
  if (err < 0)
    bk_runtime_fail(rt, err, "source '%s' failed: %s", src->ctx->node->name, brook_strerror(err));
  if (rt->status == BROOK_OK)
    bk_time_pass(rt);
}

static void on_idle(uv_idle_t *h) {
  brook_runtime_t *rt = h->data;
  if (rt->state == BK_RT_RUNNING && atomic_load(&rt->stop_flag))
    begin_drain(rt);
  /* Saturating: a huge slice_us means "never yield early", not a deadline that wrapped into
   * the past and yields after every batch. */
  uint64_t now_ns = uv_hrtime();
  uint64_t slice_ns = rt->opts.slice_us > (UINT64_MAX - now_ns) / 1000 ? UINT64_MAX - now_ns
                                                                       : rt->opts.slice_us * 1000;
  uint64_t deadline = now_ns + slice_ns;
  int progressed = 1;
  while (progressed && rt->status == BROOK_OK) {
    progressed = 0;
    for (size_t k = 0; k < rt->n_sources && rt->status == BROOK_OK; k++) {
      bk_src_t *src = &rt->sources[(rt->next_source + k) % rt->n_sources];
      if (!src->ready || src->ended)
        continue;
      if (bk_delivery_hold(&rt->delivery)) { /* sinks wait for acks: resumes on their drain */
        progressed = 0;
        break;
      }
      run_batch(rt, src);
      progressed = 1;
      if (uv_hrtime() >= deadline) {
        rt->next_source = (rt->next_source + k + 1) % rt->n_sources;
        progressed = 0;
        break;
      }
    }
  }
  rt->stats.slices++;
  bk_sched_poke(rt);
}

static void idle_set(brook_runtime_t *rt, int on) {
  if (on && !rt->idle_active)
    uv_idle_start(&rt->idle, on_idle);
  else if (!on && rt->idle_active)
    uv_idle_stop(&rt->idle);
  rt->idle_active = on;
}

static void on_async(uv_async_t *h) {
  brook_runtime_t *rt = h->data;
  for (size_t i = 0; i < rt->n_sources; i++)
    if (rt->sources[i].vt->on_wake && !rt->sources[i].ended)
      rt->sources[i].vt->on_wake(&rt->sources[i]);
  bk_sched_poke(rt);
}

void bk_close_operators(brook_runtime_t *rt) {
  bk_tasks_close_all(rt, rt->status != BROOK_OK ? "the run failed (closed without flush or commit)"
                         : atomic_load(&rt->stop_flag) ? "stopped"
                                                       : "end of input");
  for (size_t i = 0; i < rt->plan.n; i++) {
    brook_ctx_t *c = &rt->insts[i];
    if (c->opened && c->node->op.close)
      c->node->op.close(c->state, c->node->opaque);
    c->opened = 0;
    c->state = NULL; /* freed by close: stats must not look at it */
    c->state_memory = NULL;
  }
}

static void finish(brook_runtime_t *rt) {
  if (rt->status == BROOK_OK && rt->state == BK_RT_RUNNING) {
    bk_time_pass(rt); /* every source ended: the watermark is at its maximum, timers fire */
    if (rt->status == BROOK_OK)
      bk_for_each_operator(rt, bk_call_end_of_input); /* natural end: emit final results */
  }
  bk_commit_final(rt); /* flush(), stores, then the outputs' acknowledgements (commit.c) */
  if (rt->status == BROOK_OK && (rt->delivery.total || bk_commit_waiting(&rt->commit))) {
    /* Sinks still wait for acknowledgements: close once they are in (or one fails). */
    rt->state = BK_RT_FLUSHING;
    idle_set(rt, 0);
    return;
  }
  bk_close_operators(rt);
  rt->state = BK_RT_CLOSING;
  bk_runtime_hold(rt); /* released below, so done happens once everything is closed */
  idle_set(rt, 0);
  bk_runtime_close_handle(rt, (uv_handle_t *)&rt->idle);
  if (rt->clock_open) {
    rt->clock_open = 0;
    bk_runtime_close_handle(rt, (uv_handle_t *)&rt->clock);
  }
  bk_commit_close(rt);
  atomic_store(&rt->async_live, 0);
  while (atomic_load(&rt->senders)) /* a sender is inside uv_async_send: a few instructions */
    ;
  bk_runtime_close_handle(rt, (uv_handle_t *)&rt->async);
  for (size_t i = 0; i < rt->n_sources; i++)
    if (rt->sources[i].started)
      rt->sources[i].vt->close(&rt->sources[i]);
  bk_runtime_release(rt);
}

brook_err_t bk_open_operators(brook_runtime_t *rt) {
  for (size_t i = 0; i < rt->plan.n; i++) {
    brook_ctx_t *c = &rt->insts[i];
    if (c->node->kind != BK_NODE_OPERATOR || (rt->per_task && rt->per_task[i]))
      continue; /* per-task nodes open with their task (task.c) */
    brook_err_t err = bk_open_operator(rt, c);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

brook_err_t bk_open_operator(brook_runtime_t *rt, brook_ctx_t *c) {
  brook_err_t err = BROOK_OK;
  c->in_open = 1;
  if (c->node->op.open)
    err = c->node->op.open(c, c->node->opaque, &c->state);
  c->in_open = 0;
  if (err < 0) {
    if (c->task >= 0)
      bk_runtime_fail(rt, err, "operator '%s' failed to open for partition %d: %s", c->node->name,
                      (int)c->task, c->has_error_msg ? c->error_msg.text : brook_strerror(err));
    else
      bk_runtime_fail(rt, err, "operator '%s' failed to open: %s", c->node->name,
                      c->has_error_msg ? c->error_msg.text : brook_strerror(err));
    return err;
  }
  c->opened = 1;
  return BROOK_OK;
}

/* Start-up failed before anything was attached to the loop: undo and report. */
static brook_err_t start_failed(brook_runtime_t *rt, brook_err_t err) {
  bk_close_operators(rt);
  for (size_t i = 0; i < rt->n_sources; i++)
    if (rt->sources[i].started) {
      rt->sources[i].vt->close(&rt->sources[i]);
      rt->sources[i].started = 0;
    }
  rt->state = BK_RT_DONE;
  return err;
}

/* Deliveries all acknowledged, or a backpressure hold ended. This runs inside a sink's
 * delivery callback (inside librdkafka's poll): never finish or run batches from here, only
 * let the idle handle do it on the next loop turn. */
static void on_deliveries_drained(void *opaque) {
  brook_runtime_t *rt = opaque;
  if (rt->state == BK_RT_FLUSHING || (rt->state != BK_RT_CLOSING && rt->state != BK_RT_DONE &&
                                      rt->state != BK_RT_NEW && any_source_ready(rt)))
    idle_set(rt, 1);
}

brook_err_t bk_sched_start(brook_runtime_t *rt, uv_loop_t *loop) {
  rt->loop = loop;
  rt->delivery.on_drained = on_deliveries_drained;
  rt->delivery.on_drained_opaque = rt;
  rt->now_ms = bk_wallclock_ms();
  for (size_t i = 0; i < rt->n_sources; i++)
    bk_wm_gen_start(&rt->sources[i].wm, rt->now_ms);
  brook_err_t err;
  for (size_t i = 0; i < rt->n_sources; i++) {
    bk_src_t *src = &rt->sources[i];
    if ((err = src->vt->start(src))) {
      bk_runtime_fail(rt, err, "source '%s' failed to start: %s", src->ctx->node->name,
                      src->ctx->has_error_msg ? src->ctx->error_msg.text : brook_strerror(err));
      return start_failed(rt, err);
    }
    src->started = 1;
  }
  if ((err = bk_open_operators(rt)))
    return start_failed(rt, err);
  int rc = uv_async_init(loop, &rt->async, on_async);
  if (rc) {
    bk_runtime_fail(rt, BROOK_ERR_LOOP, "runtime: uv_async_init: %s", uv_strerror(rc));
    return start_failed(rt, BROOK_ERR_LOOP);
  }
  rt->async.data = rt;
  uv_idle_init(loop, &rt->idle);
  rt->idle.data = rt;
  uv_timer_init(loop, &rt->clock);
  rt->clock.data = rt;
  rt->clock_open = 1;
  bk_commit_start(rt);
  rt->state = BK_RT_RUNNING;
  atomic_store(&rt->async_live, 1);
  for (size_t i = 0; i < rt->n_sources && rt->status == BROOK_OK; i++) {
    bk_src_t *src = &rt->sources[i];
    if (src->vt->attach && (err = src->vt->attach(src)))
      bk_runtime_fail(rt, err, "source '%s' failed to attach: %s", src->ctx->node->name,
                      src->ctx->has_error_msg ? src->ctx->error_msg.text : brook_strerror(err));
  }
  /* Pushes may have arrived before start; treat start like a wake-up. */
  for (size_t i = 0; i < rt->n_sources; i++)
    if (rt->sources[i].vt->on_wake)
      rt->sources[i].vt->on_wake(&rt->sources[i]);
  bk_sched_poke(rt);
  return BROOK_OK;
}
