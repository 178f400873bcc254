/* The test driver (test_driver.h): a runtime without a loop. Records are pushed into named
 * sources and run through the pipeline synchronously; processing time is a manual clock;
 * every sink's input is copied for the test to read. */
#include <string.h>

#include <brook/test_driver.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "runtime/driver_impl.h"
#include "runtime/source_keyed.h"
#include "time/time_arith.h"

typedef bk_captured_t captured_t;

void brook_driver_opts_init_size(brook_driver_opts_t *opts, size_t size) {
  brook_driver_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

/* A sink by its own name, or else the first sink fed by the node named `sink` (the older way
 * to find a callback sink without a name of its own: by the stream it consumes). */
static captured_t *find_capture(const brook_driver_t *d, const char *sink) {
  if (!sink)
    return NULL;
  for (size_t i = 0; i < d->n_caps; i++)
    if (strcmp(d->caps[i].sink->name, sink) == 0)
      return &d->caps[i];
  for (size_t i = 0; i < d->n_caps; i++) {
    const bk_node_t *n = d->caps[i].sink;
    for (size_t k = 0; k < n->n_inputs; k++)
      if (strcmp(n->inputs[k]->node->name, sink) == 0)
        return &d->caps[i];
  }
  return NULL;
}

/* 1 if sink node `n` consumes output `port` of the node named `node`. */
static int sink_fed_by(const bk_node_t *n, const char *node, size_t port) {
  for (size_t k = 0; k < n->n_inputs; k++)
    if (n->inputs[k]->port == port && strcmp(n->inputs[k]->node->name, node) == 0)
      return 1;
  return 0;
}

const char *brook_driver_sink_name(const brook_driver_t *d, const char *node, size_t port,
                                   size_t i) {
  if (!d || !node)
    return NULL;
  /* The i-th in order of creation (node ids grow as nodes are added), whatever the plan's
   * order: rank each candidate by the candidates created before it. */
  for (size_t c = 0; c < d->n_caps; c++) {
    const bk_node_t *n = d->caps[c].sink;
    if (!sink_fed_by(n, node, port))
      continue;
    size_t before = 0;
    for (size_t o = 0; o < d->n_caps; o++)
      before += d->caps[o].sink->id < n->id && sink_fed_by(d->caps[o].sink, node, port);
    if (before == i)
      return n->name;
  }
  return NULL;
}

/* Copies a record into one block: the struct's bytes, headers, and names. */
static brook_err_t copy_record(const brook_allocator_t *a, const brook_record_t *r,
                               brook_record_t *out) {
  size_t size = r->key_len + r->value_len + r->header_count * sizeof(brook_header_t);
  for (size_t h = 0; h < r->header_count; h++)
    size += strlen(r->headers[h].name) + 1 + r->headers[h].value_len;
  unsigned char *b = bk_malloc(a, size ? size : 1);
  if (!b)
    return BROOK_ERR_NOMEM;
  *out = *r;
  brook_header_t *hs = (brook_header_t *)b; /* headers first: keeps them aligned */
  unsigned char *p = b + r->header_count * sizeof(brook_header_t);
  out->headers = r->header_count ? hs : NULL;
  for (size_t h = 0; h < r->header_count; h++) {
    size_t nl = strlen(r->headers[h].name) + 1;
    memcpy(p, r->headers[h].name, nl);
    hs[h].name = (const char *)p;
    p += nl;
    hs[h].value_len = r->headers[h].value_len;
    hs[h].value = hs[h].value_len ? p : NULL;
    if (hs[h].value_len)
      memcpy(p, r->headers[h].value, hs[h].value_len);
    p += hs[h].value_len;
  }
  out->key = r->key ? p : NULL;
  if (r->key_len)
    memcpy(p, r->key, r->key_len);
  p += r->key_len;
  out->value = r->value ? p : NULL;
  if (r->value_len)
    memcpy(p, r->value, r->value_len);
  if (!r->header_count && !r->key_len && !r->value_len) {
    bk_free(a, b); /* nothing to own */
    out->key = r->key ? "" : NULL;
    out->value = r->value ? "" : NULL;
    out->headers = NULL;
    return BROOK_OK;
  }
  /* The block starts with the headers if any, else with the key or value. */
  return BROOK_OK;
}

static void *record_block(const brook_record_t *r) {
  if (r->header_count)
    return (void *)r->headers;
  if (r->key_len)
    return (void *)r->key;
  if (r->value_len)
    return (void *)r->value;
  return NULL;
}

static brook_err_t tap(brook_ctx_t *sink, const brook_record_t *recs, size_t n, void *opaque) {
  brook_driver_t *d = opaque;
  captured_t *c = NULL;
  for (size_t i = 0; i < d->n_caps && !c; i++)
    if (d->caps[i].sink == sink->node)
      c = &d->caps[i];
  if (!c)
    return BROOK_OK;
  if (bk_grow(&d->alloc, (void **)&c->recs, &c->cap, c->n + n, sizeof(*c->recs)))
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = copy_record(&d->alloc, &recs[i], &c->recs[c->n]);
    if (err < 0)
      return err;
    c->n++;
  }
  return BROOK_OK;
}

static const bk_opts_version_t driver_versions[] = {
    BK_OPTS_VERSION(brook_driver_opts_t, log_opaque),
    BK_OPTS_VERSION(brook_driver_opts_t, state_cache_bytes),
};
static const bk_opts_type_t driver_opts_type = BK_OPTS_TYPE(brook_driver_opts_t, driver_versions);

brook_err_t brook_driver_new(brook_driver_t **out, brook_topology_t *t,
                             const brook_driver_opts_t *opts) {
  if (!out)
    return BROOK_ERR_INVALID_ARG;
  *out = NULL;
  if (!t)
    return BROOK_ERR_INVALID_ARG;
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &driver_opts_type, &why)) {
    bk_errmsg_set(&t->msg, "driver_new: %s", why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.log = o.log;
  ro.log_opaque = o.log_opaque;
  ro.batch_size = 64; /* records are pushed one at a time; timers may emit more */
  brook_runtime_t *rt;
  t->in_process_exchanges = 1;
  brook_err_t err = brook_runtime_new(&rt, t, &ro);
  t->in_process_exchanges = 0;
  if (err < 0)
    return err;
  brook_driver_t *d = bk_calloc(&rt->alloc, 1, sizeof(*d));
  size_t n_sinks = 0;
  for (size_t i = 0; i < rt->plan.n; i++)
    n_sinks += rt->w0->insts[i].node->kind == BK_NODE_OPERATOR && rt->w0->insts[i].n_ports == 0;
  if (d)
    d->caps = bk_calloc(&rt->alloc, n_sinks ? n_sinks : 1, sizeof(*d->caps));
  if (!d || !d->caps) {
    if (d)
      bk_free(&rt->alloc, d);
    bk_runtime_destroy(rt);
    bk_errmsg_set(&t->msg, "driver_new: out of memory");
    return BROOK_ERR_NOMEM;
  }
  d->rt = rt;
  d->alloc = rt->alloc;
  for (size_t i = 0; i < rt->plan.n; i++)
    if (rt->w0->insts[i].node->kind == BK_NODE_OPERATOR && rt->w0->insts[i].n_ports == 0)
      d->caps[d->n_caps++].sink = rt->w0->insts[i].node;
  rt->manual_clock = 1;
  rt->w0->now_ms = o.start_time;
  for (size_t i = 0; i < rt->w0->n_sources; i++)
    bk_wm_gen_start(&rt->w0->sources[i].wm, rt->w0->now_ms);
  rt->sink_tap = tap;
  rt->sink_tap_opaque = d;
  bk_driver_partitions_init(d);
  rt->state = rt->w0->state = BK_RT_RUNNING;
  if ((err = bk_driver_state_open(d, &o)) < 0 || (err = bk_open_operators(rt->w0)) < 0) {
    bk_errmsg_set(&t->msg, "driver_new: %s", rt->msg.text);
    brook_driver_free(d);
    return err;
  }
  *out = d;
  return BROOK_OK;
}

void brook_driver_clear_output(brook_driver_t *d, const char *sink) {
  if (!d)
    return;
  captured_t *only = sink ? find_capture(d, sink) : NULL;
  for (size_t i = 0; i < d->n_caps; i++) {
    captured_t *c = &d->caps[i];
    if (sink && c != only)
      continue;
    for (size_t k = 0; k < c->n; k++)
      bk_free(&d->alloc, record_block(&c->recs[k]));
    c->n = 0;
  }
}

void brook_driver_free(brook_driver_t *d) {
  if (!d)
    return;
  bk_close_operators(d->rt->w0);
  brook_driver_clear_output(d, NULL);
  brook_allocator_t a = d->alloc;
  for (size_t i = 0; i < d->n_caps; i++)
    bk_free(&a, d->caps[i].recs);
  bk_free(&a, d->caps);
  bk_driver_partitions_free(d);
  d->rt->state = BK_RT_DONE;
  bk_runtime_destroy(d->rt);
  bk_driver_state_close(d);
  bk_free(&a, d);
}

brook_err_t bk_driver_settle(brook_driver_t *d) {
  brook_runtime_t *rt = d->rt;
  if (rt->status == BROOK_OK)
    bk_state_flush_changes(rt->w0);
  return rt->status;
}

brook_err_t brook_driver_push_split(brook_driver_t *d, const char *source, size_t split,
                                    const brook_record_t *rec) {
  if (!d || !source || !rec)
    return BROOK_ERR_INVALID_ARG;
  brook_runtime_t *rt = d->rt;
  if (rt->status != BROOK_OK)
    return rt->status;
  if (d->ended)
    return BROOK_ERR_STOPPED;
  brook_err_t err;
  bk_src_t *src = bk_driver_source(d, source, "driver_push", &err);
  if (!src)
    return err;
  int partitioned = src->home->node->source_type->partitioned;
  if ((err = bk_keyed_check_split(src, split, &rt->msg, "driver_push")) < 0)
    return err;
  if (partitioned && (err = bk_driver_partition_for_push(d, src, split)) < 0)
    return err;
  d->touched = 1;
  brook_record_t r = *rec; /* stamping writes the event time into it */
  size_t n = 1;
  src->cur_split = split;
  if (partitioned) /* the records go to the partition's task */
    (void)bk_src_enter_task(src, (int32_t)split);
  /* A source partitioned by key gets only its own keys, here as in a runtime. */
  err = bk_keyed_source(src) ? bk_keyed_verify(src, split, &r, &n) : BROOK_OK;
  if (err >= 0 && n)
    err = bk_src_emit_array(src, &r, 1);
  if (partitioned)
    bk_src_leave_task(src);
  src->cur_split = 0;
  if (err >= 0 && rt->w0->errors_inst)
    err = bk_ctx_flush_ports(rt->w0->errors_inst);
  bk_arena_reset(&rt->w0->arena);
  rt->w0->stats.batches++;
  if (err < 0)
    bk_runtime_fail(rt, err, "source '%s' failed: %s", source, brook_strerror(err));
  if (rt->status == BROOK_OK)
    bk_time_pass(rt->w0);
  if (bk_driver_settle(d) < 0)
    return rt->status;
  return bk_driver_state_commit(d, 1);
}

bk_src_t *bk_driver_source(brook_driver_t *d, const char *name, const char *what,
                           brook_err_t *err) {
  brook_runtime_t *rt = d->rt;
  for (size_t i = 0; i < rt->w0->n_sources; i++)
    if (strcmp(rt->w0->sources[i].home->node->name, name) == 0)
      return &rt->w0->sources[i];
  bk_errmsg_set(&rt->msg, "%s: no source named '%s'", what, name);
  *err = BROOK_ERR_NOT_FOUND;
  return NULL;
}

brook_err_t brook_driver_push(brook_driver_t *d, const char *source, const brook_record_t *rec) {
  return brook_driver_push_split(d, source, 0, rec);
}

brook_err_t brook_driver_advance_time(brook_driver_t *d, brook_time_t ms) {
  if (!d || ms < 0)
    return BROOK_ERR_INVALID_ARG;
  brook_runtime_t *rt = d->rt;
  if (rt->status != BROOK_OK)
    return rt->status;
  d->touched = 1;
  rt->w0->now_ms = bk_time_add_sat(rt->w0->now_ms, ms); /* the clock stops at BROOK_TIME_MAX */
  if (!d->ended)
    bk_time_tick(rt->w0);
  if (bk_driver_settle(d) < 0)
    return rt->status;
  return bk_driver_state_commit(d, 0);
}

brook_time_t brook_driver_time(const brook_driver_t *d) { return d ? d->rt->w0->now_ms : 0; }

brook_time_t brook_driver_watermark(const brook_driver_t *d, const char *name) {
  if (!d || !name)
    return BROOK_TIME_MIN;
  for (size_t i = 0; i < d->rt->plan.n; i++)
    if (strcmp(d->rt->w0->insts[i].node->name, name) == 0)
      return d->rt->w0->insts[i].wm;
  return BROOK_TIME_MIN;
}

brook_err_t brook_driver_end(brook_driver_t *d) {
  if (!d)
    return BROOK_ERR_INVALID_ARG;
  brook_runtime_t *rt = d->rt;
  if (rt->status != BROOK_OK || d->ended)
    return rt->status;
  d->ended = 1;
  d->touched = 1;
  for (size_t i = 0; i < rt->w0->n_sources; i++) {
    rt->w0->sources[i].ended = 1;
    rt->w0->sources[i].wm.ended = 1;
  }
  bk_time_pass(rt->w0);
  if (bk_driver_settle(d) == BROOK_OK)
    bk_for_each_operator(rt->w0, bk_call_end_of_input);
  if (bk_driver_settle(d) == BROOK_OK)
    bk_for_each_operator(rt->w0, bk_call_flush);
  if (bk_driver_settle(d) < 0)
    return rt->status;
  return bk_driver_state_commit(d, 0);
}

size_t brook_driver_output_count(const brook_driver_t *d, const char *sink) {
  const captured_t *c = d ? find_capture(d, sink) : NULL;
  return c ? c->n : 0;
}

const brook_record_t *brook_driver_output(const brook_driver_t *d, const char *sink, size_t i) {
  const captured_t *c = d ? find_capture(d, sink) : NULL;
  return c && i < c->n ? &c->recs[i] : NULL;
}

brook_err_t brook_driver_status(const brook_driver_t *d) {
  return d ? d->rt->status : BROOK_ERR_INVALID_ARG;
}

const char *brook_driver_last_error(const brook_driver_t *d) { return d ? d->rt->msg.text : ""; }

brook_err_t brook_driver_stats(const brook_driver_t *d, brook_runtime_stats_t *stats) {
  return d ? brook_runtime_stats(d->rt, stats) : BROOK_ERR_INVALID_ARG;
}
