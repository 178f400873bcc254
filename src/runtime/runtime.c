/* The runtime object: creation from a topology (instances, ports, sources), the public
 * accessors, run (own loop) and free. The loop side lives in scheduler.c. */
#include <stdio.h>
#include <string.h>

#include <brook/state.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "runtime/runtime_impl.h"

void brook_runtime_opts_init_size(brook_runtime_opts_t *opts, size_t size) {
  brook_runtime_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.batch_size = 1024;
  d.slice_us = 1000;
  d.commit_interval_ms = BK_COMMIT_INTERVAL_DEFAULT_MS;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t runtime_versions[] = {
    BK_OPTS_VERSION(brook_runtime_opts_t, log_opaque),
    BK_OPTS_VERSION(brook_runtime_opts_t, on_task_state_opaque), /* issue 12: commits, tasks */
};
static const bk_opts_type_t runtime_opts_type =
    BK_OPTS_TYPE(brook_runtime_opts_t, runtime_versions);

void bk_runtime_destroy(brook_runtime_t *rt) {
  const brook_allocator_t *a = &rt->alloc;
  for (size_t i = 0; i < rt->n_sources; i++) {
    if (rt->sources[i].vt && rt->sources[i].impl)
      rt->sources[i].vt->destroy(&rt->sources[i]);
    bk_wm_gen_free(&rt->sources[i].wm);
    bk_free(a, rt->sources[i].split_task);
  }
  bk_tasks_free(rt);
  if (rt->insts) {
    for (size_t i = 0; i < rt->plan.n; i++) {
      brook_ctx_t *c = &rt->insts[i];
      bk_time_free_ctx(rt, c);
      bk_state_free_ctx(rt, c);
      for (size_t p = 0; p < c->n_ports; p++) {
        bk_free(a, c->ports[p].buf);
        bk_free(a, c->ports[p].to);
      }
      bk_free(a, c->ports);
    }
  }
  bk_free(a, rt->insts);
  bk_free(a, rt->sources);
  bk_arena_free(&rt->arena);
  bk_delivery_free(&rt->delivery);
  bk_commit_free(rt);
  bk_plan_free(&rt->plan, a);
  if (rt->topo)
    bk_topology_unref(rt->topo);
  bk_free(a, rt);
}

static brook_err_t build_instances(brook_runtime_t *rt) {
  const brook_allocator_t *a = &rt->alloc;
  bk_plan_t *plan = &rt->plan;
  if (bk_tasks_plan(rt))
    return BROOK_ERR_NOMEM;
  rt->insts = bk_calloc(a, plan->n, sizeof(*rt->insts));
  rt->sources = bk_calloc(a, plan->n_sources ? plan->n_sources : 1, sizeof(*rt->sources));
  if (!rt->insts || !rt->sources)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < plan->n; i++) {
    bk_node_t *node = plan->order[i];
    brook_ctx_t *c = &rt->insts[i];
    c->rt = rt;
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
        port->to[k].ctx = &rt->insts[plan->pos[s->consumers[k].node->id]];
        port->to[k].input = s->consumers[k].input;
      }
    }
    if (node->kind == BK_NODE_ERRORS)
      rt->errors_inst = c;
    if (node->kind == BK_NODE_SOURCE) {
      bk_src_t *src = &rt->sources[rt->n_sources++];
      src->rt = rt;
      src->ctx = src->home = c;
      src->cfg = node->source_cfg;
      c->src = src;
      bk_wm_gen_init(&src->wm, &rt->alloc, node->wm_opts);
      const bk_source_vt_t *vt = node->source_type->runtime_vt;
      brook_err_t err = vt->create(src);
      if (err)
        return err;
      src->vt = vt; /* set only once created, so destroy runs only for created sources */
    }
  }
  return BROOK_OK;
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
  rt->clock_due = BROOK_TIME_MAX;
  atomic_init(&rt->stop_flag, 0);
  atomic_init(&rt->async_live, 0);
  atomic_init(&rt->senders, 0);
  bk_arena_init(&rt->arena, &rt->alloc, 64 * 1024);
  bk_delivery_init(&rt->delivery, &rt->alloc);
  brook_err_t err = bk_plan_build(&rt->plan, t);
  if (err) {
    bk_free(&rt->alloc, rt);
    return err;
  }
  rt->topo = t;
  bk_topology_ref(t);
  if ((err = build_instances(rt))) {
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
  int rc = uv_loop_init(&rt->own_loop);
  if (rc) {
    bk_errmsg_set(&rt->msg, "runtime_run: uv_loop_init: %s", uv_strerror(rc));
    return BROOK_ERR_LOOP;
  }
  rt->in_run = 1;
  brook_err_t err = bk_sched_start(rt, &rt->own_loop);
  if (err == BROOK_OK) {
    uv_run(&rt->own_loop, UV_RUN_DEFAULT);
    err = rt->status;
  }
  rc = uv_loop_close(&rt->own_loop);
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
  return bk_sched_start(rt, loop);
}

void brook_runtime_stop(brook_runtime_t *rt) {
  if (!rt)
    return;
  atomic_store(&rt->stop_flag, 1);
  bk_runtime_wake(rt);
}

int brook_runtime_done(const brook_runtime_t *rt) { return rt && rt->state == BK_RT_DONE; }

brook_err_t brook_runtime_status(const brook_runtime_t *rt) {
  return rt ? rt->status : BROOK_ERR_INVALID_ARG;
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
    if (rt->status == BROOK_OK)
      bk_errmsg_set(&((brook_runtime_t *)rt)->msg, "runtime_stats: %s", why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  brook_runtime_stats_t s = rt->stats;
  s.struct_size = stats->struct_size;
  s.state_bytes = 0;
  for (size_t i = 0; rt->insts && i < rt->plan.n; i++) {
    for (size_t t = 0; t < bk_inst_count(rt, i); t++) {
      const brook_ctx_t *c = bk_inst_at(rt, i, t);
      for (size_t k = 0; k < c->n_stores; k++)
        s.state_bytes += brook_store_memory(c->stores[k]);
      if (c->state_memory && c->state)
        s.state_bytes += c->state_memory(c->state);
    }
  }
  memcpy(stats, &s, v->used);
  return BROOK_OK;
}
