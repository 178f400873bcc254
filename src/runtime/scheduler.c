/* The loop side of the runtime: attaching to a uv loop, running sources' batches in bounded
 * slices from an idle handle (so the loop's other handles keep firing), waking up from other
 * threads and signal handlers, draining on stop, and closing everything in order.
 * Everything here runs on the loop thread except bk_worker_wake. */
#include <string.h>

#include "runtime/exchange.h"
#include "runtime/task_event_time.h"

static void finish(bk_worker_t *w);

static void worker_done(bk_worker_t *w) {
  w->state = BK_RT_DONE;
  bk_worker_finished(w); /* may free rt: touch nothing after */
}

void bk_worker_hold(bk_worker_t *w) { w->holds++; }

void bk_worker_release(bk_worker_t *w) {
  if (--w->holds == 0 && w->state == BK_RT_CLOSING)
    worker_done(w);
}

static void on_handle_closed(uv_handle_t *h) { bk_worker_release(h->data); }

void bk_worker_close_handle(bk_worker_t *w, uv_handle_t *h) {
  bk_worker_hold(w);
  h->data = w;
  uv_close(h, on_handle_closed);
}

void bk_worker_wake(bk_worker_t *w) {
  /* Async-signal-safe: atomics and uv_async_send only. `senders` lets the loop thread wait
   * for in-flight sends before it closes the async handle. */
  atomic_fetch_add(&w->senders, 1);
  if (atomic_load(&w->async_live))
    uv_async_send(&w->async);
  atomic_fetch_sub(&w->senders, 1);
}

static int all_sources_ended(const bk_worker_t *w) {
  for (size_t i = 0; i < w->n_sources; i++)
    if (!w->sources[i].ended)
      return 0;
  return 1;
}

static int any_source_ready(const bk_worker_t *w) {
  for (size_t i = 0; i < w->n_sources; i++)
    if (w->sources[i].ready && !w->sources[i].ended)
      return 1;
  return 0;
}

static void idle_set(bk_worker_t *w, int on);
static void clock_arm(bk_worker_t *w);

void bk_sched_ready(bk_src_t *src) {
  src->ready = 1;
  bk_worker_t *w = src->w;
  if (w->state == BK_RT_RUNNING || w->state == BK_RT_DRAINING)
    idle_set(w, 1);
}

static void begin_drain(bk_worker_t *w) {
  w->state = BK_RT_DRAINING;
  for (size_t i = 0; i < w->n_sources; i++)
    if (!w->sources[i].ended)
      w->sources[i].vt->stop(&w->sources[i]);
}

/* Calls `fn` on every operator instance in topological order, delivering what each emits
 * (and any routed errors) before moving on. Stops at the first failure. */
void bk_call_operator(bk_worker_t *w, brook_ctx_t *c,
                      brook_err_t (*fn)(brook_ctx_t *, void *state)) {
  if (!w->rt->manual_clock)
    w->now_ms = bk_wallclock_ms();
  c->has_error_msg = 0;
  brook_err_t err = fn(c, c->state);
  if (err >= 0)
    err = bk_ctx_flush_ports(c);
  if (err >= 0 && w->errors_inst)
    err = bk_ctx_flush_ports(w->errors_inst);
  if (err < 0)
    bk_runtime_fail(w->rt, err, "operator '%s'%s failed at end of input or flush: %s",
                    c->node->name, c->task >= 0 ? " (of a partition's task)" : "",
                    c->has_error_msg ? c->error_msg.text : brook_strerror(err));
}

void bk_for_each_operator(bk_worker_t *w, brook_err_t (*fn)(brook_ctx_t *, void *state)) {
  for (size_t i = 0; i < w->rt->plan.n && w->rt->status == BROOK_OK; i++) {
    if (w->insts[i].node->kind != BK_NODE_OPERATOR)
      continue;
    for (size_t t = 0; t < bk_inst_count(w, i) && w->rt->status == BROOK_OK; t++) {
      brook_ctx_t *c = bk_inst_at(w, i, t);
      if (!c->opened)
        continue;
      bk_call_operator(w, c, fn);
      bk_arena_reset(&w->arena); /* what it emitted has been delivered */
    }
  }
}

brook_err_t bk_call_end_of_input(brook_ctx_t *c, void *state) {
  return c->node->op.end_of_input ? c->node->op.end_of_input(c, state) : BROOK_OK;
}

brook_err_t bk_call_flush(brook_ctx_t *c, void *state) {
  return c->node->op.flush ? c->node->op.flush(c, state) : BROOK_OK;
}

void bk_worker_poke(bk_worker_t *w) {
  if (w->state == BK_RT_FLUSHING) {
    bk_commit_poll(w); /* the final commit completes once its outputs are acknowledged */
    if (w->rt->status != BROOK_OK || (w->delivery.total == 0 && !bk_commit_waiting(&w->commit)))
      finish(w);
    return;
  }
  if (w->state != BK_RT_RUNNING && w->state != BK_RT_DRAINING)
    return;
  if (w->state == BK_RT_RUNNING && atomic_load(&w->rt->stop_flag))
    begin_drain(w);
  if (w->rt->status == BROOK_OK)
    bk_commit_poll(w); /* outside any batch: flush() may run (commit.c) */
  if (w->rt->status != BROOK_OK || all_sources_ended(w)) {
    finish(w);
    return;
  }
  /* Going idle does not flush operators: flush() runs at commits (commit.c), every
   * commit_interval_ms, which bounds how long buffered output waits. What waits for other
   * workers goes now. */
  int ready = any_source_ready(w) && !w->delivery.held && !bk_xchg_blocked(w);
  if (!ready && w->idle_active)
    bk_xchg_flush(w);
  idle_set(w, ready);
  clock_arm(w);
}

/* The clock: processing-time timers and watermark ticks (idleness, quiet advance). */
static void on_clock(uv_timer_t *h) {
  bk_worker_t *w = h->data;
  w->clock_due = BROOK_TIME_MAX;
  if (w->state != BK_RT_RUNNING && w->state != BK_RT_DRAINING)
    return;
  w->now_ms = bk_wallclock_ms();
  bk_time_tick(w);
  bk_xchg_flush(w);
  bk_worker_poke(w);
}

static void clock_arm(bk_worker_t *w) {
  if (!w->clock_open)
    return;
  brook_time_t due = bk_time_next_due(w);
  if (due == w->clock_due)
    return;
  w->clock_due = due;
  if (due == BROOK_TIME_MAX) {
    uv_timer_stop(&w->clock);
    return;
  }
  brook_time_t now = bk_wallclock_ms();
  uv_timer_start(&w->clock, on_clock, due > now ? (uint64_t)(due - now) : 0, 0);
}

/* Runs one batch of `src` through the pipeline and releases its memory. */
static void run_batch(bk_worker_t *w, bk_src_t *src) {
  w->now_ms = bk_wallclock_ms();
  bk_delivery_next_epoch(&w->delivery);
  w->batch_src = src;
  brook_err_t err = src->vt->produce(src);
  bk_port_t *port = bk_src_port(src); /* a partitioned source's batch is in its task's port */
  if (src->ctx == src->home && port->n && w->rt->per_task &&
      w->rt->per_task[w->rt->plan.pos[src->home->node->id]]) {
    /* Records of no task: the process-wide instances after a partitioned source are never
     * opened. The source failed or lost the partition before routing them; not delivered. */
    port->n = 0;
  }
  if (err == BROOK_DONE) {
    src->ended = 1;
    /* A natural end releases the event-time hold: its watermark becomes the maximum. A
     * stop does not: windows still open stay unfired. */
    src->wm.ended = w->state == BK_RT_RUNNING;
    err = BROOK_OK;
  }
  if (port->n) { /* even if producing failed: records before the failing one go on */
    w->stats.records_in += port->n;
    brook_err_t derr = bk_port_deliver(src->ctx, port);
    if (err >= 0)
      err = derr;
  }
  if (err >= 0 && w->errors_inst)
    err = bk_ctx_flush_ports(w->errors_inst);
  port->n = 0;
  if (src->ctx != src->home)
    bk_src_leave_task(src);
  w->batch_src = NULL;
  src->vt->batch_done(src);
  bk_arena_reset(&w->arena);
  w->stats.batches++;
  if (err < 0)
    bk_runtime_fail(w->rt, err, "source '%s' failed: %s", src->ctx->node->name,
                    brook_strerror(err));
  if (w->rt->status == BROOK_OK)
    bk_time_pass(w);
  bk_xchg_flush(w); /* what went to other workers, and the watermark after it */
}

/* Takes what other workers sent through the exchanges, then moves time on. */
static void receive(bk_worker_t *w) {
  if (!bk_xchg_receive(w) || w->rt->status != BROOK_OK)
    return;
  bk_time_pass(w);
  bk_xchg_flush(w);
}

static void on_idle(uv_idle_t *h) {
  bk_worker_t *w = h->data;
  if (w->state == BK_RT_RUNNING && atomic_load(&w->rt->stop_flag))
    begin_drain(w);
  /* Saturating: a huge slice_us means "never yield early", not a deadline that wrapped into
   * the past and yields after every batch. */
  uint64_t now_ns = uv_hrtime();
  uint64_t slice_ns = w->rt->opts.slice_us > (UINT64_MAX - now_ns) / 1000
                          ? UINT64_MAX - now_ns
                          : w->rt->opts.slice_us * 1000;
  uint64_t deadline = now_ns + slice_ns;
  receive(w);
  int progressed = 1;
  while (progressed && w->rt->status == BROOK_OK) {
    progressed = 0;
    for (size_t k = 0; k < w->n_sources && w->rt->status == BROOK_OK; k++) {
      bk_src_t *src = &w->sources[(w->next_source + k) % w->n_sources];
      if (!src->ready || src->ended)
        continue;
      if (bk_delivery_hold(&w->delivery)) { /* sinks wait for acks: resumes on their drain */
        progressed = 0;
        break;
      }
      if (bk_xchg_blocked(w)) { /* a ring is full: resumes when its consumer wakes us */
        progressed = 0;
        break;
      }
      run_batch(w, src);
      receive(w); /* between batches: keeps the other workers' rings moving */
      progressed = 1;
      if (uv_hrtime() >= deadline) {
        w->next_source = (w->next_source + k + 1) % w->n_sources;
        progressed = 0;
        break;
      }
    }
  }
  w->stats.slices++;
  bk_worker_publish_stats(w);
  bk_worker_poke(w);
}

static void idle_set(bk_worker_t *w, int on) {
  if (on && !w->idle_active)
    uv_idle_start(&w->idle, on_idle);
  else if (!on && w->idle_active)
    uv_idle_stop(&w->idle);
  w->idle_active = on;
}

static void on_async(uv_async_t *h) {
  bk_worker_t *w = h->data;
  for (size_t i = 0; i < w->n_sources; i++)
    if (w->sources[i].vt->on_wake && !w->sources[i].ended)
      w->sources[i].vt->on_wake(&w->sources[i]);
  if (w->xchg && w->state != BK_RT_CLOSING && w->state != BK_RT_DONE) {
    receive(w);
    bk_xchg_flush(w); /* a consumer made room: what waited goes on */
  }
  bk_worker_poke(w);
}

void bk_close_operators(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  bk_tasks_close_all(w, rt->status != BROOK_OK ? "the run failed (closed without flush or commit)"
                        : atomic_load(&rt->stop_flag) ? "stopped"
                                                      : "end of input");
  for (size_t i = 0; i < rt->plan.n; i++) {
    brook_ctx_t *c = &w->insts[i];
    if (c->opened && c->node->op.close)
      c->node->op.close(c->state, c->node->opaque);
    c->opened = 0;
    c->state = NULL; /* freed by close: stats must not look at it */
    c->state_memory = NULL;
  }
}

static void finish(bk_worker_t *w) {
  if (w->xchg && w->rt->status == BROOK_OK) {
    /* Node by node, as the other workers end the exchanges this worker consumes. */
    if (!bk_xchg_finish(w, w->state == BK_RT_RUNNING)) {
      idle_set(w, 0);
      clock_arm(w); /* processing-time timers keep firing while the others finish */
      return;       /* called again when something arrives */
    }
  } else if (w->rt->status == BROOK_OK && w->state == BK_RT_RUNNING) {
    bk_time_pass(w); /* every source ended: the watermark is at its maximum, timers fire */
    if (w->rt->status == BROOK_OK)
      bk_for_each_operator(w, bk_call_end_of_input); /* natural end: emit final results */
  }
  bk_commit_final(w); /* flush(), stores, then the outputs' acknowledgements (commit.c) */
  if (w->rt->status == BROOK_OK && (w->delivery.total || bk_commit_waiting(&w->commit))) {
    /* Sinks still wait for acknowledgements: close once they are in (or one fails). */
    w->state = BK_RT_FLUSHING;
    idle_set(w, 0);
    return;
  }
  bk_close_operators(w);
  bk_worker_publish_stats(w);
  w->state = BK_RT_CLOSING;
  bk_worker_hold(w); /* released below, so done happens once everything is closed */
  idle_set(w, 0);
  bk_worker_close_handle(w, (uv_handle_t *)&w->idle);
  if (w->clock_open) {
    w->clock_open = 0;
    bk_worker_close_handle(w, (uv_handle_t *)&w->clock);
  }
  bk_commit_close(w);
  atomic_store(&w->async_live, 0);
  while (atomic_load(&w->senders)) /* a sender is inside uv_async_send: a few instructions */
    ;
  bk_worker_close_handle(w, (uv_handle_t *)&w->async);
  for (size_t i = 0; i < w->n_sources; i++)
    if (w->sources[i].started)
      w->sources[i].vt->close(&w->sources[i]);
  for (size_t i = 0; i < BK_SLOT_COUNT; i++)
    if (w->slot_closers[i])
      w->slot_closers[i](w); /* what outlived its users (services.h) */
  bk_worker_release(w);
}

brook_err_t bk_open_operators(bk_worker_t *w) {
  for (size_t i = 0; i < w->rt->plan.n; i++) {
    brook_ctx_t *c = &w->insts[i];
    if (c->node->kind != BK_NODE_OPERATOR || (w->rt->per_task && w->rt->per_task[i]))
      continue; /* per-task nodes open with their task (task.c) */
    if (w->index != 0 && w->rt->plan.nodes[i].place == BK_PLACE_ONCE)
      continue; /* its one instance is worker 0's (exchange.h: gathers) */
    brook_err_t err = bk_open_operator(c);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

brook_err_t bk_open_operator(brook_ctx_t *c) {
  brook_err_t err = BROOK_OK;
  c->in_open = 1;
  if (c->node->op.open)
    err = c->node->op.open(c, c->node->opaque, &c->state);
  c->in_open = 0;
  if (err < 0) {
    if (c->task >= 0)
      bk_runtime_fail(c->rt, err, "operator '%s' failed to open for partition %d: %s",
                      c->node->name, (int)c->task,
                      c->has_error_msg ? c->error_msg.text : brook_strerror(err));
    else
      bk_runtime_fail(c->rt, err, "operator '%s' failed to open: %s", c->node->name,
                      c->has_error_msg ? c->error_msg.text : brook_strerror(err));
    return err;
  }
  c->opened = 1;
  return BROOK_OK;
}

/* Start-up failed before anything was attached to the loop: undo (bk_worker_open's work). */
void bk_worker_unopen(bk_worker_t *w) {
  bk_close_operators(w);
  for (size_t i = 0; i < w->n_sources; i++)
    if (w->sources[i].started) {
      w->sources[i].vt->close(&w->sources[i]);
      w->sources[i].started = 0;
    }
  w->state = BK_RT_DONE;
}

/* Deliveries all acknowledged, or a backpressure hold ended. This runs inside a sink's
 * delivery callback (inside librdkafka's poll): never finish or run batches from here, only
 * let the idle handle do it on the next loop turn. */
static void on_deliveries_drained(void *opaque) {
  bk_worker_t *w = opaque;
  if (w->state == BK_RT_FLUSHING || (w->state != BK_RT_CLOSING && w->state != BK_RT_DONE &&
                                     w->state != BK_RT_NEW && any_source_ready(w)))
    idle_set(w, 1);
}

brook_err_t bk_worker_open(bk_worker_t *w) {
  w->delivery.on_drained = on_deliveries_drained;
  w->delivery.on_drained_opaque = w;
  w->now_ms = bk_wallclock_ms();
  for (size_t i = 0; i < w->n_sources; i++)
    bk_wm_gen_start(&w->sources[i].wm, w->now_ms);
  brook_err_t err;
  for (size_t i = 0; i < w->n_sources; i++) {
    bk_src_t *src = &w->sources[i];
    if ((err = src->vt->start(src))) {
      bk_runtime_fail(w->rt, err, "source '%s' failed to start: %s", src->ctx->node->name,
                      src->ctx->has_error_msg ? src->ctx->error_msg.text : brook_strerror(err));
      bk_worker_unopen(w);
      return err;
    }
    src->started = 1;
  }
  if ((err = bk_open_operators(w))) {
    bk_worker_unopen(w);
    return err;
  }
  return BROOK_OK;
}

brook_err_t bk_worker_attach(bk_worker_t *w, uv_loop_t *loop) {
  w->loop = loop;
  int rc = uv_async_init(loop, &w->async, on_async);
  if (rc) {
    bk_runtime_fail(w->rt, BROOK_ERR_LOOP, "runtime: uv_async_init: %s", uv_strerror(rc));
    return BROOK_ERR_LOOP;
  }
  w->async.data = w;
  uv_idle_init(loop, &w->idle);
  w->idle.data = w;
  uv_timer_init(loop, &w->clock);
  w->clock.data = w;
  w->clock_open = 1;
  bk_commit_start(w);
  if (bk_task_event_time_start(w) < 0) {
    bk_runtime_fail(w->rt, BROOK_ERR_NOMEM, "runtime: out of memory starting a worker");
    return BROOK_ERR_NOMEM;
  }
  w->state = BK_RT_RUNNING;
  atomic_store(&w->async_live, 1);
  return BROOK_OK;
}

void bk_worker_go(bk_worker_t *w) {
  brook_err_t err;
  for (size_t i = 0; i < w->n_sources && w->rt->status == BROOK_OK; i++) {
    bk_src_t *src = &w->sources[i];
    if (src->vt->attach && (err = src->vt->attach(src)))
      bk_runtime_fail(w->rt, err, "source '%s' failed to attach: %s", src->ctx->node->name,
                      src->ctx->has_error_msg ? src->ctx->error_msg.text : brook_strerror(err));
  }
  /* Pushes may have arrived before start; treat start like a wake-up. */
  for (size_t i = 0; i < w->n_sources; i++)
    if (w->sources[i].vt->on_wake)
      w->sources[i].vt->on_wake(&w->sources[i]);
  bk_worker_poke(w);
}
