/* The runtime object: creation from a topology (instances, ports, sources), the public
 * accessors, run (own loop) and free. The loop side lives in scheduler.c. */
#include <stdio.h>
#include <string.h>

#include <brook/state.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "runtime/exchange.h"
#include "runtime/repartition_plan.h"
#include "runtime/task_ids.h"

void brook_runtime_opts_init_size(brook_runtime_opts_t *opts, size_t size) {
  brook_runtime_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.batch_size = 1024;
  d.slice_us = 1000;
  d.num_workers = 1;
  d.commit_interval_ms = BK_COMMIT_INTERVAL_DEFAULT_MS;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t runtime_versions[] = {
    BK_OPTS_VERSION(brook_runtime_opts_t, log_opaque),
    BK_OPTS_VERSION(brook_runtime_opts_t, num_workers),          /* issue 12 */
    BK_OPTS_VERSION(brook_runtime_opts_t, on_task_state_opaque), /* issue 12: commits, tasks */
    BK_OPTS_VERSION(brook_runtime_opts_t, state_cache_bytes),    /* issue 13: state on disk */
    BK_OPTS_VERSION(brook_runtime_opts_t, restore_listener),     /* issue 13: changelogs */
};
static const bk_opts_type_t runtime_opts_type =
    BK_OPTS_TYPE(brook_runtime_opts_t, runtime_versions);

void bk_runtime_destroy(brook_runtime_t *rt) {
  const brook_allocator_t *a = &rt->alloc;
  for (size_t i = 0; rt->workers && i < rt->n_workers; i++)
    bk_worker_free(&rt->workers[i]);
  bk_free(a, rt->workers);
  bk_free(a, rt->per_task);
  bk_free(a, rt->task_sub_rank);
  bk_free(a, rt->task_rank_sub);
  bk_free(a, rt->fuse_len);
  bk_plan_free(&rt->plan, a);
  bk_free(a, rt->state_dir);
  if (rt->topo)
    bk_topology_unref(rt->topo);
  bk_free(a, rt);
}

/* A source node's instance on a worker that runs none of its splits: ended from the start,
 * its watermark at the maximum (it holds nothing back). */
static brook_err_t none_produce(bk_src_t *src) {
  (void)src;
  return BROOK_DONE;
}
static void none_src(bk_src_t *src) { (void)src; }
static brook_err_t none_start(bk_src_t *src) {
  src->ended = 1;
  src->wm.ended = 1;
  return BROOK_OK;
}
static const bk_source_vt_t none_vt = {
    .start = none_start,
    .produce = none_produce,
    .batch_done = none_src,
    .stop = none_src,
    .close = none_src,
    .destroy = none_src,
};

/* Worker w's instance of source node `node`: splits w->index, w->index + n_workers, ... of
 * a splittable source; one per worker of a source that finds its own input per worker
 * (Kafka); all of an unsplittable one on worker 0. */
static brook_err_t build_source(bk_worker_t *w, brook_ctx_t *c) {
  brook_runtime_t *rt = w->rt;
  bk_node_t *node = c->node;
  bk_src_t *src = &w->sources[w->n_sources++];
  src->rt = rt;
  src->w = w;
  src->ctx = src->home = c;
  src->cfg = node->source_cfg;
  c->src = src;
  bk_wm_gen_init(&src->wm, &rt->alloc, node->wm_opts);
  const bk_source_vt_t *vt = node->source_type->runtime_vt;
  size_t splits = vt->split_count ? vt->split_count(src->cfg) : vt->per_worker ? rt->n_workers : 1;
  src->split0 = w->index;
  src->split_stride = rt->n_workers;
  src->n_splits = splits;
  if (w->index >= splits) {
    src->vt = &none_vt;
    return BROOK_OK;
  }
  brook_err_t err = vt->create(src);
  if (err)
    return err;
  src->vt = vt; /* set only once created, so destroy runs only for created sources */
  return BROOK_OK;
}

static brook_err_t build_instances(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  const brook_allocator_t *a = &rt->alloc;
  bk_plan_t *plan = &rt->plan;
  w->insts = bk_calloc(a, plan->n, sizeof(*w->insts));
  w->sources = bk_calloc(a, plan->n_sources ? plan->n_sources : 1, sizeof(*w->sources));
  if (!w->insts || !w->sources)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < plan->n; i++) {
    bk_node_t *node = plan->order[i];
    brook_ctx_t *c = &w->insts[i];
    c->rt = rt;
    c->w = w;
    c->svc = &bk_worker_services;
    c->node = node;
    c->task = -1;
    c->wm = BROOK_TIME_MIN;
    if (node->n_outputs) {
      c->ports = bk_calloc(a, node->n_outputs, sizeof(*c->ports));
      if (!c->ports)
        return BROOK_ERR_NOMEM;
      c->n_ports = node->n_outputs;
    }
    for (size_t p = 0; p < c->n_ports; p++) {
      brook_stream_t *s = &node->outputs[p];
      bk_port_t *port = &c->ports[p];
      port->cap = rt->opts.batch_size;
      port->buf = bk_calloc(a, port->cap, sizeof(*port->buf));
      port->to = bk_calloc(a, s->n_consumers, sizeof(*port->to));
      if (!port->buf || !port->to)
        return BROOK_ERR_NOMEM;
      port->n_to = s->n_consumers;
      for (size_t k = 0; k < s->n_consumers; k++) {
        port->to[k].ctx = &w->insts[plan->pos[s->consumers[k].node->id]];
        port->to[k].input = s->consumers[k].input;
      }
    }
    if (node->kind == BK_NODE_ERRORS)
      w->errors_inst = c;
    brook_err_t err;
    if (node->kind == BK_NODE_SOURCE && (err = build_source(w, c)))
      return err;
  }
  return BROOK_OK;
}

static brook_err_t build_workers(brook_runtime_t *rt) {
  if (bk_tasks_plan(rt) || bk_task_ids_plan(rt))
    return BROOK_ERR_NOMEM;
  rt->n_workers = rt->opts.num_workers;
  if (bk_fuse_plan(rt))
    return BROOK_ERR_NOMEM;
  if (!(rt->workers = bk_calloc(&rt->alloc, rt->n_workers, sizeof(*rt->workers))))
    return BROOK_ERR_NOMEM;
  rt->w0 = &rt->workers[0];
  for (size_t i = 0; i < rt->n_workers; i++) {
    bk_worker_init(&rt->workers[i], rt, i);
    brook_err_t err = build_instances(&rt->workers[i]);
    if (err || (err = bk_xchg_worker_init(&rt->workers[i])))
      return err;
  }
  return BROOK_OK;
}

/* The once node that records of `from` reach through a gather, or NULL. */
static const bk_node_t *gather_target(const bk_plan_t *plan, const bk_node_t *from) {
  for (size_t g = 0; g < plan->n_gathers; g++)
    if (plan->gathers[g].from == from)
      return plan->gathers[g].to;
  return NULL;
}

/* 1 and *why set if records of a partitioned (Kafka) source cross workers with N workers: a
 * node placed once (a line sink, plan/) it feeds through a gather. A worker's commit covers
 * only its own operators and acknowledgements, so it could commit offsets whose output
 * another worker has not flushed or delivered yet. (A key change after a Kafka source crosses
 * through a repartition topic instead, repartition_plan.h: its writes count against the
 * commits of the worker that produced them.) The walk marks nodes fed by the source in plan
 * order (inputs come first). In-process sources partitioned by key (their splits known from
 * options) commit no input. BROOK_ERR_NOMEM: -1. */
static int kafka_feeds_gather(const bk_plan_t *plan, const brook_allocator_t *a, bk_errmsg_t *why) {
  unsigned char *fed = bk_calloc(a, plan->n ? plan->n : 1, 1); /* by plan position */
  if (!fed)
    return -1;
  const bk_node_t *src = NULL, *once = NULL;
  for (size_t i = 0; i < plan->n && !once; i++) {
    const bk_node_t *n = plan->order[i];
    if (n->kind == BK_NODE_SOURCE && n->source_type->partitioned && !n->splits) {
      fed[i] = 1;
      src = n;
    }
    for (size_t k = 0; k < n->n_inputs && !fed[i]; k++)
      fed[i] = fed[plan->pos[n->inputs[k]->node->id]];
    if (fed[i])
      once = gather_target(plan, n);
  }
  bk_free(a, fed);
  if (once)
    bk_errmsg_set(why,
                  "runtime_new: node '%s' runs once (on worker 0) and records from Kafka "
                  "source '%s' reach it from every worker: commits do not span workers in "
                  "this version; use num_workers = 1",
                  once->name, src ? src->name : "?");
  return once != NULL;
}

/* With state on disk: the directory option copied (rt->opts points to the copy) and every
 * stateful node named by the user (bk_plan_check_identities). */
static brook_err_t persisted_state_check(brook_runtime_t *rt, bk_errmsg_t *msg) {
  if (!rt->opts.state_dir[0]) {
    bk_errmsg_set(msg, "runtime_new: state_dir is empty (NULL keeps state in memory)");
    return BROOK_ERR_INVALID_ARG;
  }
  bk_errmsg_t why;
  if (bk_plan_check_identities(&rt->plan, &why) != BROOK_OK) {
    bk_errmsg_set(msg, "runtime_new: with state_dir, %s", why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  if (!(rt->state_dir = bk_strdup(&rt->alloc, rt->opts.state_dir))) {
    bk_errmsg_set(msg, "runtime_new: out of memory");
    return BROOK_ERR_NOMEM;
  }
  rt->opts.state_dir = rt->state_dir;
  return BROOK_OK;
}

/* With state on disk, the operators whose state has no disk layout (sliding windows, hopping
 * windows of many slices: README "Windows on disk") keep it in memory: say so, a restart loses
 * it. */
static void warn_state_in_memory(const brook_runtime_t *rt) {
  for (size_t i = 0; i < rt->plan.n; i++) {
    const bk_node_t *n = rt->plan.order[i];
    if (n->kind != BK_NODE_OPERATOR || !n->state_in_memory)
      continue;
    bk_errmsg_t m;
    bk_errmsg_set(&m,
                  "runtime_new: '%s' (%s) keeps its state in memory even with state_dir (no "
                  "disk layout): a restart loses its open windows",
                  n->name, n->op.type_name);
    rt->opts.log(BROOK_LOG_WARN, m.text, rt->opts.log_opaque);
  }
}

brook_err_t brook_runtime_new(brook_runtime_t **out, brook_topology_t *t,
                              const brook_runtime_opts_t *opts) {
  if (!out)
    return BROOK_ERR_INVALID_ARG;
  *out = NULL;
  if (!t)
    return BROOK_ERR_INVALID_ARG;
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &runtime_opts_type, &why)) {
    bk_errmsg_set(&t->msg, "runtime_new: %s", why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  if (o.batch_size == 0 || o.batch_size > (1u << 20)) {
    bk_errmsg_set(&t->msg, "runtime_new: batch_size must be 1..1048576, got %zu", o.batch_size);
    return BROOK_ERR_INVALID_ARG;
  }
  if (o.slice_us == 0)
    o.slice_us = 1000;
  if (o.num_workers == 0 || o.num_workers > 256) {
    bk_errmsg_set(&t->msg, "runtime_new: num_workers must be 1..256, got %zu", o.num_workers);
    return BROOK_ERR_INVALID_ARG;
  }
  if (o.commit_interval_ms < 0) {
    bk_errmsg_set(&t->msg,
                  "runtime_new: commit_interval_ms must be >= 0 (0: the default), got %lld",
                  (long long)o.commit_interval_ms);
    return BROOK_ERR_INVALID_ARG;
  }
  if (o.commit_interval_ms == 0)
    o.commit_interval_ms = BK_COMMIT_INTERVAL_DEFAULT_MS;
  brook_runtime_t *rt = bk_calloc(&t->alloc, 1, sizeof(*rt));
  if (!rt) {
    bk_errmsg_set(&t->msg, "runtime_new: out of memory");
    return BROOK_ERR_NOMEM;
  }
  rt->alloc = t->alloc;
  rt->opts = o;
  rt->state = BK_RT_NEW;
  atomic_init(&rt->stop_flag, 0);
  atomic_init(&rt->status, BROOK_OK);
  atomic_init(&rt->workers_left, 0);
  atomic_flag_clear(&rt->fail_lock);
  brook_err_t err = bk_plan_build(&rt->plan, t);
  if (!err && !t->frozen && !t->in_process_exchanges)
    err = bk_repartition_plan(&rt->plan, t, o.num_workers);
  if (err) {
    bk_free(&rt->alloc, rt);
    return err;
  }
  if (o.state_dir && (err = persisted_state_check(rt, &t->msg)) != BROOK_OK) {
    bk_plan_free(&rt->plan, &rt->alloc);
    bk_free(&rt->alloc, rt->state_dir);
    bk_free(&rt->alloc, rt);
    return err;
  }
  int crosses = o.num_workers > 1 ? kafka_feeds_gather(&rt->plan, &rt->alloc, &t->msg) : 0;
  if (crosses) {
    if (crosses < 0)
      bk_errmsg_set(&t->msg, "runtime_new: out of memory");
    bk_plan_free(&rt->plan, &rt->alloc);
    bk_free(&rt->alloc, rt);
    return crosses < 0 ? BROOK_ERR_NOMEM : BROOK_ERR_INVALID_ARG;
  }
  rt->topo = t;
  bk_topology_ref(t);
  if ((err = build_workers(rt))) {
    if (err == BROOK_ERR_NOMEM)
      bk_errmsg_set(&t->msg, "runtime_new: out of memory");
    else
      bk_errmsg_set(&t->msg, "runtime_new: %s",
                    rt->msg.text[0] ? rt->msg.text : brook_strerror(err));
    bk_runtime_destroy(rt);
    return err;
  }
  t->frozen = 1; /* only a runtime that exists freezes the topology */
  bk_errmsg_t warning;
  if (o.log && bk_topology_warning(t, &warning))
    o.log(BROOK_LOG_WARN, warning.text, o.log_opaque);
  if (o.log && rt->state_dir)
    warn_state_in_memory(rt);
  *out = rt;
  return BROOK_OK;
}

void brook_runtime_free(brook_runtime_t *rt) {
  if (!rt)
    return;
  if (rt->in_run) { /* called from a callback inside brook_runtime_run: free when it returns */
    rt->free_on_done = 1;
    rt->opts.on_done = NULL;
    brook_runtime_stop(rt);
    return;
  }
  if (rt->state == BK_RT_NEW || rt->state == BK_RT_DONE) {
    bk_runtime_destroy(rt);
    return;
  }
  /* Still attached: stop, and free once every handle is closed. */
  rt->free_on_done = 1;
  rt->opts.on_done = NULL;
  brook_runtime_stop(rt);
}

/* Called by the scheduler once the runtime is DONE. */
void bk_runtime_destroy_if_requested(brook_runtime_t *rt) {
  if (rt->free_on_done)
    bk_runtime_destroy(rt);
}

brook_err_t brook_runtime_run(brook_runtime_t *rt) {
  if (!rt)
    return BROOK_ERR_INVALID_ARG;
  if (rt->state != BK_RT_NEW) {
    bk_errmsg_set(&rt->msg, "runtime_run: the runtime was already started");
    return BROOK_ERR_STATE;
  }
  bk_worker_t *w0 = rt->w0;
  int rc = uv_loop_init(&w0->own_loop);
  if (rc) {
    bk_errmsg_set(&rt->msg, "runtime_run: uv_loop_init: %s", uv_strerror(rc));
    return BROOK_ERR_LOOP;
  }
  rt->in_run = 1;
  /* Worker 0 runs on this thread, the others on threads of their own; uv_run returns once
   * every worker has finished and the threads are joined (on_done has run). */
  brook_err_t err = bk_workers_start(rt, &w0->own_loop);
  if (err == BROOK_OK) {
    uv_run(&w0->own_loop, UV_RUN_DEFAULT);
    err = bk_runtime_status(rt);
  } else {
    /* A source that failed to start after another had: the other's close may have left
     * requests on the loop (a client destroyed off the loop). They finish before it closes. */
    uv_run(&w0->own_loop, UV_RUN_DEFAULT);
  }
  rc = uv_loop_close(&w0->own_loop);
  if (rc && err == BROOK_OK) {
    bk_errmsg_set(&rt->msg, "runtime_run: loop still busy at close: %s", uv_strerror(rc));
    err = BROOK_ERR_LOOP;
  }
  rt->in_run = 0;
  if (rt->free_on_done)
    bk_runtime_destroy(rt);
  return err;
}

brook_err_t brook_runtime_start(brook_runtime_t *rt, uv_loop_t *loop) {
  if (!rt || !loop)
    return BROOK_ERR_INVALID_ARG;
  if (rt->state != BK_RT_NEW) {
    bk_errmsg_set(&rt->msg, "runtime_start: the runtime was already started");
    return BROOK_ERR_STATE;
  }
  return bk_workers_start(rt, loop);
}

void brook_runtime_stop(brook_runtime_t *rt) {
  if (!rt)
    return;
  /* Async-signal-safe: an atomic store and uv_async_send per worker. */
  atomic_store(&rt->stop_flag, 1);
  for (size_t i = 0; i < rt->n_workers; i++)
    bk_worker_wake(&rt->workers[i]);
}

int brook_runtime_done(const brook_runtime_t *rt) { return rt && rt->state == BK_RT_DONE; }

brook_err_t brook_runtime_status(const brook_runtime_t *rt) {
  return rt ? bk_runtime_status(rt) : BROOK_ERR_INVALID_ARG;
}

const char *brook_runtime_last_error(const brook_runtime_t *rt) {
  return rt ? rt->msg.text : "no runtime";
}

/* brook_runtime_stats_t grew by appending counters while 0.1.0 was developed; each size
 * that existed on main is a version (core/opts.h). */
static const bk_opts_version_t stats_versions[] = {
    BK_OPTS_VERSION(brook_runtime_stats_t, slices),
    BK_OPTS_VERSION(brook_runtime_stats_t, records_late),
    BK_OPTS_VERSION(brook_runtime_stats_t, state_bytes),
    BK_OPTS_VERSION(brook_runtime_stats_t, records_dead_lettered),
    BK_OPTS_VERSION(brook_runtime_stats_t, tasks_closed),
    BK_OPTS_VERSION(brook_runtime_stats_t, records_behind_watermark), /* issue 11 */
    BK_OPTS_VERSION(brook_runtime_stats_t, commits),                  /* issue 12 */
    BK_OPTS_VERSION(brook_runtime_stats_t, revocations_timed_out),    /* issue 12: revocations */
    BK_OPTS_VERSION(brook_runtime_stats_t, state_entries_written),    /* issue 13: state on disk */
    BK_OPTS_VERSION(brook_runtime_stats_t, restore_ms),               /* issue 13: changelogs */
    BK_OPTS_VERSION(brook_runtime_stats_t, repartition_records_unpositioned), /* 13: replays */
};
static const bk_opts_type_t stats_type = BK_OPTS_TYPE(brook_runtime_stats_t, stats_versions);

brook_err_t brook_runtime_stats(const brook_runtime_t *rt, brook_runtime_stats_t *stats) {
  if (!rt || !stats)
    return BROOK_ERR_INVALID_ARG;
  bk_errmsg_t why;
  const bk_opts_version_t *v = bk_opts_find(&stats_type, stats->struct_size, &why);
  if (!v) {
    /* The message is the only thing written to a const runtime (this call runs on its
     * thread), and never over the message of a failed run, which matters more. */
    if (bk_runtime_status(rt) == BROOK_OK)
      bk_errmsg_set(&((brook_runtime_t *)rt)->msg, "runtime_stats: %s", why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  brook_runtime_stats_t s;
  bk_runtime_stats_sum(rt, &s);
  s.struct_size = stats->struct_size;
  memcpy(stats, &s, v->used);
  return BROOK_OK;
}
