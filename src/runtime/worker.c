/* The worker object: its set-up and tear-down, and the services operators reach through
 * their context (core/context.h), so that operators never include the runtime's internals. */
#include <assert.h>
#include <string.h>

#include <brook/state.h>

#include "core/alloc.h"
#include "runtime/exchange.h"

static void count_late(brook_ctx_t *ctx, size_t n) { ctx->w->stats.records_late += n; }

static int run_failed(const brook_ctx_t *ctx) { return bk_runtime_status(ctx->rt) != BROOK_OK; }

const bk_ctx_services_t bk_worker_services = {
    .deliver = bk_port_deliver,
    .flush_ports = bk_ctx_flush_ports,
    .count_late = count_late,
    .run_failed = run_failed,
    .emit_batch_owned = bk_rt_emit_batch_owned,
    .routes_failures = bk_rt_routes_failures,
};

void bk_worker_init(bk_worker_t *w, brook_runtime_t *rt, size_t index) {
  memset(w, 0, sizeof(*w));
  w->rt = rt;
  w->index = index;
  w->state = BK_RT_NEW;
  w->clock_due = BROOK_TIME_MAX;
  atomic_init(&w->async_live, 0);
  atomic_init(&w->senders, 0);
  atomic_flag_clear(&w->published_lock);
  bk_arena_init(&w->arena, &rt->alloc, 64 * 1024);
  bk_delivery_init(&w->delivery, &rt->alloc);
}

void bk_worker_free(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  if (!rt)
    return; /* never initialised (building the workers failed before this one) */
  const brook_allocator_t *a = &rt->alloc;
  for (size_t i = 0; i < w->n_sources; i++) {
    if (w->sources[i].vt && w->sources[i].impl)
      w->sources[i].vt->destroy(&w->sources[i]);
    bk_wm_gen_free(&w->sources[i].wm);
    bk_free(a, w->sources[i].split_task);
  }
  bk_tasks_free(w);
  if (w->insts) {
    for (size_t i = 0; i < rt->plan.n; i++) {
      brook_ctx_t *c = &w->insts[i];
      bk_time_free_ctx(rt, c);
      bk_state_free_ctx(rt, c);
      for (size_t p = 0; p < c->n_ports; p++) {
        bk_free(a, c->ports[p].buf);
        bk_free(a, c->ports[p].to);
      }
      bk_free(a, c->ports);
    }
  }
  bk_xchg_worker_free(w);
  bk_free(a, w->insts);
  bk_free(a, w->sources);
  bk_arena_free(&w->arena);
  bk_delivery_free(&w->delivery);
  bk_commit_free(w);
  w->rt = NULL;
}

/* ---- running N workers ---- */

/* Everything finished (every worker DONE, threads joined): the run is over. On worker 0's
 * loop. May free rt. */
static void run_over(brook_runtime_t *rt) {
  rt->state = BK_RT_DONE;
  if (rt->free_on_done) {
    if (!rt->in_run) /* run() owns the loop inside rt and frees it when it returns */
      bk_runtime_destroy_if_requested(rt);
    return;
  }
  brook_done_cb cb = rt->opts.on_done;
  if (cb)
    cb(rt, bk_runtime_status(rt), rt->opts.on_done_opaque); /* may free rt: touch nothing after */
}

static void join_threads(brook_runtime_t *rt) {
  for (size_t i = 1; i < rt->n_workers; i++) {
    bk_worker_t *w = &rt->workers[i];
    if (w->thread_started) {
      uv_thread_join(&w->thread);
      w->thread_started = 0;
    }
    if (w->own_loop_open) {
      uv_loop_close(&w->own_loop);
      w->own_loop_open = 0;
    }
  }
}

static void on_done_closed(uv_handle_t *h) {
  brook_runtime_t *rt = h->data;
  rt->done_async_open = 0;
  join_threads(rt); /* each has finished its last callback: it is leaving uv_run */
  run_over(rt);
}

static void on_all_done(uv_async_t *h) { uv_close((uv_handle_t *)h, on_done_closed); }

void bk_worker_finished(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  if (atomic_fetch_sub(&rt->workers_left, 1) != 1)
    return;
  if (rt->n_workers == 1)
    run_over(rt);
  else if (rt->done_async_open)
    uv_async_send(&rt->done_async); /* on_done runs on worker 0's loop */
}

/* A worker thread: runs the worker's own loop until the worker is done, then closes it. */
static void worker_thread(void *arg) {
  bk_worker_t *w = arg;
  bk_worker_go(w);
  uv_run(w->loop, UV_RUN_DEFAULT);
}

static void close_own_loops(brook_runtime_t *rt) {
  for (size_t i = 0; i < rt->n_workers; i++) {
    bk_worker_t *w = &rt->workers[i];
    if (w->own_loop_open) {
      uv_run(&w->own_loop, UV_RUN_DEFAULT); /* handles closed by the caller finish closing */
      uv_loop_close(&w->own_loop);
      w->own_loop_open = 0;
    }
  }
}

static void close_attached(bk_worker_t *w) {
  uv_close((uv_handle_t *)&w->idle, NULL);
  uv_close((uv_handle_t *)&w->clock, NULL);
  if (w->commit.timer_open) {
    w->commit.timer_open = 0;
    uv_close((uv_handle_t *)&w->commit.timer, NULL);
  }
  atomic_store(&w->async_live, 0);
  uv_close((uv_handle_t *)&w->async, NULL);
  w->clock_open = 0;
}

brook_err_t bk_workers_start(brook_runtime_t *rt, uv_loop_t *loop) {
  size_t n = rt->n_workers;
  brook_err_t err = BROOK_OK;
  size_t opened = 0, attached = 1, threads = 1;
  for (size_t i = 1; i < n; i++) { /* worker 0 runs on `loop` */
    bk_worker_t *w = &rt->workers[i];
    int rc = uv_loop_init(&w->own_loop);
    if (rc) {
      bk_runtime_fail(rt, BROOK_ERR_LOOP, "runtime: worker %zu: uv_loop_init: %s", i,
                      uv_strerror(rc));
      err = BROOK_ERR_LOOP;
      goto undo;
    }
    w->own_loop_open = 1;
  }
  for (size_t i = 0; i < n; i++) /* sources and operators may look at it when they open */
    rt->workers[i].loop = i ? &rt->workers[i].own_loop : loop;
  for (; opened < n; opened++)
    if ((err = bk_worker_open(&rt->workers[opened])) < 0)
      goto undo; /* the worker undid its own part */
  for (; attached < n; attached++)
    if ((err = bk_worker_attach(&rt->workers[attached], &rt->workers[attached].own_loop)) < 0)
      goto undo;
  if ((err = bk_worker_attach(rt->w0, loop)) < 0)
    goto undo;
  if (n > 1) {
    /* Cannot fail: the loop's async machinery exists since worker 0's async succeeded. */
    int rc = uv_async_init(loop, &rt->done_async, on_all_done);
    assert(rc == 0);
    (void)rc;
    rt->done_async.data = rt;
    rt->done_async_open = 1;
  }
  atomic_store(&rt->workers_left, (int)n);
  rt->state = BK_RT_RUNNING;
  for (; threads < n; threads++) {
    bk_worker_t *w = &rt->workers[threads];
    int rc = uv_thread_create(&w->thread, worker_thread, w);
    if (rc) {
      /* The workers already running see the failure and finish; the others finish here. */
      bk_runtime_fail(rt, BROOK_ERR_LOOP, "runtime: worker %zu: uv_thread_create: %s", threads,
                      uv_strerror(rc));
      for (size_t k = threads; k < n; k++)
        worker_thread(&rt->workers[k]);
      break;
    }
    w->thread_started = 1;
  }
  bk_worker_go(rt->w0);
  return BROOK_OK;
undo:
  for (size_t i = 1; i < attached; i++)
    close_attached(&rt->workers[i]);
  for (size_t i = 0; i < opened; i++)
    bk_worker_unopen(&rt->workers[i]);
  for (size_t i = 0; i < n; i++)
    rt->workers[i].state = BK_RT_DONE;
  close_own_loops(rt);
  rt->state = BK_RT_DONE;
  return err;
}

/* ---- stats: per worker, summed when read ---- */

static uint64_t state_bytes(const bk_worker_t *w) {
  uint64_t n = 0;
  for (size_t i = 0; w->insts && i < w->rt->plan.n; i++) {
    for (size_t t = 0; t < bk_inst_count(w, i); t++) {
      const brook_ctx_t *c = bk_inst_at(w, i, t);
      for (size_t k = 0; k < c->n_stores; k++)
        n += brook_store_memory(c->stores[k]);
      if (c->state_memory && c->state)
        n += c->state_memory(c->state);
    }
  }
  return n;
}

/* The counters after struct_size, as an array (all uint64_t). */
#define STATS_FIRST(s) (&(s)->records_in)
#define STATS_COUNT                                                                                \
  ((sizeof(brook_runtime_stats_t) - offsetof(brook_runtime_stats_t, records_in)) / sizeof(uint64_t))

static void stats_add(brook_runtime_stats_t *to, const brook_runtime_stats_t *from) {
  uint64_t *t = STATS_FIRST(to);
  const uint64_t *f = STATS_FIRST(from);
  for (size_t i = 0; i < STATS_COUNT; i++)
    t[i] += f[i];
}

void bk_worker_publish_stats(bk_worker_t *w) {
  if (w->rt->n_workers == 1)
    return; /* read live: the reader is on the worker's thread or the run is over */
  brook_runtime_stats_t s = w->stats;
  s.state_bytes = state_bytes(w);
  while (atomic_flag_test_and_set_explicit(&w->published_lock, memory_order_acquire))
    ;
  w->published = s;
  atomic_flag_clear_explicit(&w->published_lock, memory_order_release);
}

void bk_runtime_stats_sum(const brook_runtime_t *rt, brook_runtime_stats_t *out) {
  memset(out, 0, sizeof(*out));
  /* With one worker, or once every worker is done (threads joined), the counters are read
   * where they are; while N workers run, from the copies each publishes after its slices. */
  int live = rt->n_workers == 1 || atomic_load(&((brook_runtime_t *)rt)->workers_left) == 0;
  for (size_t i = 0; i < rt->n_workers; i++) {
    bk_worker_t *w = &rt->workers[i];
    brook_runtime_stats_t s;
    if (live) {
      s = w->stats;
      s.state_bytes = state_bytes(w);
    } else {
      while (atomic_flag_test_and_set_explicit(&w->published_lock, memory_order_acquire))
        ;
      s = w->published;
      atomic_flag_clear_explicit(&w->published_lock, memory_order_release);
    }
    stats_add(out, &s);
  }
}
