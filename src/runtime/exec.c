/* Moving records through the fused pipeline: emit into a port, deliver a port's buffer to
 * its targets with direct calls, run an operator over a batch, and apply the error policy.
 * Everything here runs on the runtime's loop thread. */
#include <stdio.h>
#include <string.h>

#include "runtime/exchange.h"

void bk_runtime_fail(brook_runtime_t *rt, brook_err_t err, const char *fmt, ...) {
  if (bk_runtime_status(rt) != BROOK_OK)
    return;      /* the first failure is the one the user needs to see */
  bk_errmsg_t m; /* the arguments may point into rt->msg itself */
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    bk_errmsg_vset(&m, fmt, ap);
    va_end(ap);
  } else {
    bk_errmsg_set(&m, "pipeline failed: %s", brook_strerror(err));
  }
  while (atomic_flag_test_and_set_explicit(&rt->fail_lock, memory_order_acquire))
    ; /* another worker is recording its failure: a few instructions */
  int first = bk_runtime_status(rt) == BROOK_OK;
  if (first) {
    rt->msg = m;
    atomic_store_explicit(&rt->status, err, memory_order_release);
  }
  atomic_flag_clear_explicit(&rt->fail_lock, memory_order_release);
  /* The other workers stop too (each notices the status on its next wake-up). */
  for (size_t i = 0; first && i < rt->n_workers; i++)
    if (rt->n_workers > 1)
      bk_worker_wake(&rt->workers[i]);
}

/* Delivery of the error stream's records is tracked by depth (delivery is synchronous and
 * nested), so every operator knows whether the records it is handling are failed records:
 * those are not counted as output, and failing on them fails the pipeline (no error loops).
 * `owned`: nothing reads `recs` after this delivery, so a single target may rewrite them in
 * place and pass them on (brook_ctx.input_owned). */
static brook_err_t deliver(brook_ctx_t *from, bk_port_t *p, const brook_record_t *recs, size_t n,
                           int owned) {
  bk_worker_t *w = from->w;
  if (w->xchg && bk_xchg_routed(w, from, p)) /* N workers: a key change, or a once node's input */
    return bk_xchg_route(from, p, recs, n);
  int from_errors = from == w->errors_inst;
  w->error_depth += from_errors;
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < p->n_to && err >= 0; i++) {
    p->to[i].ctx->input_owned = owned && p->n_to == 1;
    err = bk_ctx_process(p->to[i].ctx, p->to[i].input, recs, n);
  }
  w->error_depth -= from_errors;
  return err;
}

brook_err_t bk_port_deliver(brook_ctx_t *from, bk_port_t *p) {
  size_t n = p->n;
  p->n = 0; /* targets are done with buf before we append again: delivery is synchronous */
  brook_err_t serr = from->src ? bk_src_stamp(from->src, p->buf, &n) : BROOK_OK;
  brook_err_t err = deliver(from, p, p->buf, n, 1);
  return serr < 0 ? serr : err;
}

brook_err_t bk_rt_emit_batch_owned(brook_ctx_t *ctx, size_t port, brook_record_t *recs, size_t n) {
  bk_port_t *p = &ctx->ports[port];
  if (p->n) { /* keep order: what was emitted one by one goes first */
    brook_err_t err = bk_port_deliver(ctx, p);
    if (err < 0)
      return err;
  }
  return n ? deliver(ctx, p, recs, n, 1) : BROOK_OK;
}

int bk_rt_routes_failures(const brook_ctx_t *ctx) {
  return ctx->rt->topo->error_policy == BROOK_ON_ERROR_ROUTE && ctx->w->error_depth == 0;
}

brook_err_t bk_ctx_flush_ports(brook_ctx_t *ctx) {
  for (size_t i = 0; i < ctx->n_ports; i++) {
    if (ctx->ports[i].n) {
      brook_err_t err = bk_port_deliver(ctx, &ctx->ports[i]);
      if (err < 0)
        return err;
    }
  }
  return BROOK_OK;
}

brook_err_t bk_ctx_process(brook_ctx_t *ctx, size_t input, const brook_record_t *recs, size_t n) {
  brook_runtime_t *rt = ctx->rt;
  bk_worker_t *w = ctx->w;
  const brook_operator_t *op = &ctx->node->op;
  brook_err_t err = BROOK_OK;
  ctx->input = input;
  ctx->has_error_msg = 0; /* a message set in an earlier callback explains nothing here */
  if (ctx->n_ports == 0) {
    if (w->error_depth == 0)
      w->stats.records_out += n;
    if (rt->sink_tap && (err = rt->sink_tap(ctx, recs, n, rt->sink_tap_opaque)) < 0) {
      bk_runtime_fail(rt, err, "test driver: capturing output of '%s' failed: %s", ctx->node->name,
                      brook_strerror(err));
      return err;
    }
  }
  size_t fused = rt->fuse_len ? rt->fuse_len[rt->plan.pos[ctx->node->id]] : 0;
  if (fused > 1) {
    err = bk_fuse_run(ctx, fused, recs, n);
  } else if (op->process_batch) {
    err = op->process_batch(ctx, ctx->state, recs, n);
  } else {
    for (size_t i = 0; i < n; i++) {
      err = op->process(ctx, ctx->state, &recs[i]);
      if (err >= 0)
        continue;
      if (rt->status != BROOK_OK) /* a downstream failure came back up: not this record's */
        break;
      if ((err = brook_ctx_fail_record(ctx, &recs[i], err, NULL)) < 0)
        break;
    }
  }
  return bk_ctx_process_end(ctx, err);
}

brook_err_t bk_ctx_process_end(brook_ctx_t *ctx, brook_err_t err) {
  brook_runtime_t *rt = ctx->rt;
  bk_worker_t *w = ctx->w;
  if (err >= 0)
    err = bk_ctx_flush_ports(ctx);
  if (err < 0) {
    if (rt->status == BROOK_OK) {
      bk_runtime_fail(rt, err, "operator '%s' failed: %s", ctx->node->name,
                      ctx->has_error_msg ? ctx->error_msg.text : brook_strerror(err));
      w->failed_ctx = ctx;
    }
    /* This operator failed (not something downstream): what it emitted before the failing
     * record still goes on, as it would have with a batch of one record. */
    if (w->failed_ctx == ctx) {
      w->failed_ctx = NULL;
      bk_ctx_flush_ports(ctx);
    }
    return err;
  }
  return BROOK_OK;
}

/* Emitting is refused while a map or key_by callback runs (they rewrite records in place). */
static brook_err_t emit_forbidden(brook_ctx_t *ctx) {
  ctx->emit_misused = 1; /* the operator turns this into a failure of the record */
  return BROOK_ERR_STATE;
}

/* A NULL record or a port the operator does not have: a bug of the operator, which fails
 * the run under every error policy (operator.h). `batch`: said by brook_emit_batch. */
static brook_err_t emit_refused(brook_ctx_t *ctx, size_t port, int null_records, int batch) {
  if (!ctx)
    return BROOK_ERR_INVALID_ARG;
  if (null_records)
    bk_runtime_fail(ctx->rt, BROOK_ERR_INVALID_ARG, "operator '%s' emitted a NULL record%s",
                    ctx->node->name, batch ? " array" : "");
  else
    bk_runtime_fail(ctx->rt, BROOK_ERR_INVALID_ARG,
                    "operator '%s' emitted %sto output %zu but has %zu output(s)", ctx->node->name,
                    batch ? "a batch " : "", port, ctx->n_ports);
  return BROOK_ERR_INVALID_ARG;
}

brook_err_t brook_emit_to(brook_ctx_t *ctx, size_t port, const brook_record_t *rec) {
  if (ctx && ctx->no_emit)
    return emit_forbidden(ctx);
  if (!ctx || !rec || port >= ctx->n_ports)
    return emit_refused(ctx, port, ctx && !rec, 0);
  bk_port_t *p = &ctx->ports[port];
  p->buf[p->n++] = *rec;
  if (p->n == p->cap)
    return bk_port_deliver(ctx, p);
  return BROOK_OK;
}

brook_err_t brook_emit(brook_ctx_t *ctx, const brook_record_t *rec) {
  return brook_emit_to(ctx, 0, rec);
}

brook_err_t brook_emit_batch(brook_ctx_t *ctx, size_t port, const brook_record_t *recs, size_t n) {
  if (ctx && ctx->no_emit)
    return emit_forbidden(ctx);
  if (!ctx || (!recs && n) || port >= ctx->n_ports)
    return emit_refused(ctx, port, ctx && !recs && n, 1);
  bk_port_t *p = &ctx->ports[port];
  if (p->n) { /* keep order: what was emitted one by one goes first */
    brook_err_t err = bk_port_deliver(ctx, p);
    if (err < 0)
      return err;
  }
  if (n == 0)
    return BROOK_OK;
  return deliver(ctx, p, recs, n, 0);
}

brook_err_t bk_src_emit_array(bk_src_t *src, brook_record_t *recs, size_t n) {
  src->w->stats.records_in += n;
  bk_port_t *p = bk_src_port(src);
  brook_err_t err = p->n ? bk_port_deliver(src->ctx, p) : BROOK_OK;
  if (err < 0)
    return err;
  brook_err_t serr = bk_src_stamp(src, recs, &n);
  err = n ? deliver(src->ctx, p, recs, n, 0) : BROOK_OK;
  return serr < 0 ? serr : err;
}

#define ERROR_HEADERS 4  /* brook.error, .code, .operator, .message */
#define ORIGIN_HEADERS 3 /* brook.source.topic, .partition, .offset */
#define RENAMED "original."

/* The failed record's own headers for its error record, into h (arena): names starting with
 * "brook." (a producer's, or an earlier failure's) are renamed original.brook.*, so that every
 * brook.* header of an error record is brook's own. */
static brook_err_t copy_own_headers(bk_worker_t *w, const brook_record_t *rec, brook_header_t *h) {
  for (size_t i = 0; i < rec->header_count; i++) {
    h[i] = rec->headers[i];
    if (strncmp(h[i].name, "brook.", 6) != 0)
      continue;
    size_t len = strlen(h[i].name);
    char *name = bk_arena_alloc(&w->arena, sizeof(RENAMED) + len);
    if (!name)
      return BROOK_ERR_NOMEM;
    memcpy(name, RENAMED, sizeof(RENAMED) - 1);
    memcpy(name + sizeof(RENAMED) - 1, h[i].name, len + 1);
    h[i].name = name;
  }
  return BROOK_OK;
}

/* brook.source.* headers naming the input message behind `rec`, if the source of the batch
 * being processed can tell (runtime_impl.h, bk_source_vt_t.origin). Returns how many (0 or
 * ORIGIN_HEADERS), or a negative error. */
static int origin_headers(bk_worker_t *w, const brook_record_t *rec, brook_header_t *h) {
  bk_src_t *src = w->batch_src;
  bk_origin_t o;
  if (!src || !src->vt->origin || !src->vt->origin(src, rec, &o))
    return 0;
  char *part = bk_arena_alloc(&w->arena, 16), *off = bk_arena_alloc(&w->arena, 24);
  if (!part || !off)
    return BROOK_ERR_NOMEM;
  int part_len = snprintf(part, 16, "%d", (int)o.partition);
  int off_len = snprintf(off, 24, "%lld", (long long)o.offset);
  h[0] = (brook_header_t){"brook.source.topic", o.topic, strlen(o.topic)};
  h[1] = (brook_header_t){"brook.source.partition", part, (size_t)part_len};
  h[2] = (brook_header_t){"brook.source.offset", off, (size_t)off_len};
  return ORIGIN_HEADERS;
}

/* Builds the error-stream record: the failed record, its own headers (brook.* ones renamed),
 * four error headers and, when known, the input message's coordinates; all in the batch
 * arena. Runs only for records that fail. */
static brook_err_t route_to_errors(brook_ctx_t *ctx, const brook_record_t *rec, int err,
                                   const char *message) {
  bk_worker_t *w = ctx->w;
  size_t own = rec->header_count;
  brook_header_t *h =
      bk_arena_alloc(&w->arena, (own + ERROR_HEADERS + ORIGIN_HEADERS) * sizeof(*h));
  size_t mlen = strlen(message);
  char *mcopy = bk_arena_alloc(&w->arena, mlen + 1);
  char *code = bk_arena_alloc(&w->arena, 16);
  if (!h || !mcopy || !code || copy_own_headers(w, rec, h) < 0)
    return BROOK_ERR_NOMEM;
  int code_len = snprintf(code, 16, "%d", err);
  memcpy(mcopy, message, mlen + 1);
  const char *ename = brook_errname(err);
  brook_header_t *e = h + own;
  e[0] = (brook_header_t){"brook.error", ename, strlen(ename)};
  e[1] = (brook_header_t){"brook.error.code", code, (size_t)code_len};
  e[2] = (brook_header_t){"brook.error.operator", ctx->node->name, strlen(ctx->node->name)};
  e[3] = (brook_header_t){"brook.error.message", mcopy, mlen};
  int n_origin = origin_headers(w, rec, e + ERROR_HEADERS);
  if (n_origin < 0)
    return n_origin;
  brook_record_t erec = *rec;
  erec.headers = h;
  erec.header_count = own + ERROR_HEADERS + (size_t)n_origin;
  w->stats.records_routed++;
  return brook_emit_to(w->errors_inst, 0, &erec);
}

brook_err_t brook_ctx_fail_record(brook_ctx_t *ctx, const brook_record_t *rec, int err,
                                  const char *fmt, ...) {
  if (!ctx)
    return BROOK_ERR_INVALID_ARG;
  if (err >= 0)
    err = BROOK_ERR_USER;
  brook_runtime_t *rt = ctx->rt;
  char message[sizeof(ctx->error_msg.text)];
  if (ctx->has_error_msg) { /* the callback explained itself: that beats our generic text */
    memcpy(message, ctx->error_msg.text, sizeof(message));
    ctx->has_error_msg = 0;
  } else if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
  } else {
    snprintf(message, sizeof(message), "%s", brook_strerror(err));
  }
  bk_worker_t *w = ctx->w;
  brook_error_policy_t policy = rt->topo->error_policy;
  if (w->error_depth || !rec)
    policy = BROOK_ON_ERROR_FAIL;
  switch (policy) {
  case BROOK_ON_ERROR_SKIP:
    w->stats.records_skipped++;
    return BROOK_OK;
  case BROOK_ON_ERROR_ROUTE: {
    brook_err_t rerr = route_to_errors(ctx, rec, err, message);
    if (rerr < 0)
      bk_runtime_fail(rt, rerr, "operator '%s': could not route a failed record: %s",
                      ctx->node->name, brook_strerror(rerr));
    return rerr;
  }
  case BROOK_ON_ERROR_FAIL:
  default:
    if (rt->status == BROOK_OK)
      w->failed_ctx = ctx;
    bk_runtime_fail(rt, err, "operator '%s' failed%s: %s (%s)", ctx->node->name,
                    rec ? " on a record" : "", message, brook_errname(err));
    return err;
  }
}
