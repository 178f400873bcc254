/* Fused chains: a linear chain of built-in callback operators (filter, map, peek, key_by and a
 * callback sink at its end; core/fn_cfg.h) runs record by record inside each batch, every
 * record through the whole chain before the next one, instead of one operator over the whole
 * batch and then the next. The loop calls the users' callbacks directly, keeps the records
 * where they lie and delivers the chain's survivors once, from its last operator.
 *
 * Which nodes form chains is decided once, when the runtime is built, from plan positions
 * (bk_fuse_plan); every worker's and task's instances follow their ports' wiring, so a chain
 * runs on the instances of its worker and task. A chain ends at fan-out (a stream with two
 * consumers), at an operator that is not fusable (flat_map: it emits any number of records per
 * input, so its output is a batch of its own), at a node with more than one input, at a sink,
 * and, with more than one worker, at key_by (its output crosses an exchange).
 *
 * Semantics are those of the operators run one by one (ops/filter.c, map.c, peek.c,
 * key_by.c, sink_callback.c), with one difference, in the order failures are met: the first
 * record of a batch (in batch order) that fails in any operator of the chain is met first. So
 * under BROOK_ON_ERROR_FAIL the failure reported is that record's, in the operator it failed
 * in, and the records before it have gone through the whole chain (operator by operator it was
 * the failure of the chain's first operator that failed on any record). Runs on the worker's
 * thread. */
#include <string.h>

#include <brook/sink.h>
#include <brook/stateless.h>

#include "core/alloc.h"
#include "core/fn_cfg.h"
#include "core/hints.h"
#include "runtime/runtime_impl.h"

#define FUSE_MAX 16 /* operators in one chain; a longer line is cut into several chains */

static int fusable(const bk_node_t *n) {
  return n->kind == BK_NODE_OPERATOR && n->fuse_kind != BK_FUSE_NONE;
}

/* The node that position i hands its records to within a chain, or NULL if the chain ends at
 * i (see the top of the file). */
static const bk_node_t *fused_next(const brook_runtime_t *rt, const bk_node_t *n) {
  if (!fusable(n) || n->fuse_kind == BK_FUSE_SINK || n->n_outputs != 1 ||
      n->outputs[0].n_consumers != 1)
    return NULL;
  if (n->rekeys && rt->n_workers > 1)
    return NULL;
  const bk_node_t *next = n->outputs[0].consumers[0].node;
  return fusable(next) && next->n_inputs == 1 ? next : NULL;
}

brook_err_t bk_fuse_plan(brook_runtime_t *rt) {
  const bk_plan_t *plan = &rt->plan;
  unsigned char *len = bk_calloc(&rt->alloc, plan->n ? plan->n : 1, 1);
  unsigned char *member = bk_calloc(&rt->alloc, plan->n ? plan->n : 1, 1);
  if (!len || !member) {
    bk_free(&rt->alloc, len);
    bk_free(&rt->alloc, member);
    return BROOK_ERR_NOMEM;
  }
  int any = 0;
  for (size_t i = 0; i < plan->n; i++) { /* topological: a chain's head comes first */
    if (member[i] || !fusable(plan->order[i]))
      continue;
    size_t k = 1;
    for (const bk_node_t *n = plan->order[i], *next; k < FUSE_MAX && (next = fused_next(rt, n));
         n = next, k++)
      member[plan->pos[next->id]] = 1;
    len[i] = (unsigned char)k;
    any |= k > 1;
  }
  bk_free(&rt->alloc, member);
  if (!any) { /* nothing to fuse: bk_ctx_process never looks */
    bk_free(&rt->alloc, len);
    len = NULL;
  }
  rt->fuse_len = len;
  return BROOK_OK;
}

typedef struct stage {
  int kind;
  bk_any_fn fn;
  void *opaque;
  brook_ctx_t *ctx;
} stage_t;

/* Stage kinds while a batch runs: bk_fuse_kind_t, and two variants chosen per batch so that
 * the record loop tests nothing else. */
enum {
  MAP_KEEPING_INPUT = BK_FUSE_SINK + 1, /* failed records are routed: a copy comes first */
  SINK_TAPPED                           /* the test driver sees each record first */
};

/* A failure of `rec` (as it came into stage s) in stage s, under the error policy. */
static brook_err_t stage_failed(const stage_t *s, const brook_record_t *rec, brook_err_t err) {
  static const char *const what[] = {
      [BK_FUSE_FILTER] = "filter predicate failed", [BK_FUSE_MAP] = "map callback failed",
      [BK_FUSE_PEEK] = "peek callback failed",      [BK_FUSE_KEY_BY] = "key_by callback failed",
      [BK_FUSE_SINK] = "sink callback failed",      [MAP_KEEPING_INPUT] = "map callback failed",
      [SINK_TAPPED] = "sink callback failed",
  };
  if (s->ctx->emit_misused) {
    s->ctx->emit_misused = 0;
    return brook_ctx_fail_record(s->ctx, rec, BROOK_ERR_STATE,
                                 "map callback must not emit (use flat_map)");
  }
  return brook_ctx_fail_record(s->ctx, rec, err, "%s", what[s->kind]);
}

/* Runs *r through stage s. Returns 1 if it goes on to the next stage (or out of the chain),
 * 0 if it was dropped, consumed by the sink or failed under a policy that goes on, or < 0
 * (the run fails). *reached counts records handed to the sink. */
static inline __attribute__((always_inline)) brook_err_t step(const stage_t *s, size_t *reached,
                                                              brook_record_t *r) {
  brook_err_t err;
  brook_record_t orig;
  {
    switch (s->kind) {
    case BK_FUSE_FILTER: {
      int keep = ((brook_predicate_fn)s->fn)(r, s->opaque);
      if (BK_LIKELY(keep > 0))
        return 1;
      if (keep == 0)
        return 0;
      return stage_failed(s, r, keep);
    }
    case BK_FUSE_MAP:
      err = ((brook_map_fn)s->fn)(r, s->ctx, s->opaque);
      if (BK_LIKELY(err >= 0 && !s->ctx->emit_misused))
        return 1;
      return stage_failed(s, r, err);
    case MAP_KEEPING_INPUT:
      orig = *r;
      err = ((brook_map_fn)s->fn)(r, s->ctx, s->opaque);
      if (err >= 0 && !s->ctx->emit_misused)
        return 1;
      return stage_failed(s, &orig, err);
    case BK_FUSE_PEEK:
      err = ((brook_peek_fn)s->fn)(r, s->opaque);
      if (BK_LIKELY(err >= 0))
        return 1;
      return stage_failed(s, r, err);
    case BK_FUSE_KEY_BY: {
      const void *key = r->key;
      size_t key_len = r->key_len;
      err = ((brook_key_fn)s->fn)(r, &key, &key_len, s->ctx, s->opaque);
      if (BK_LIKELY(err >= 0 && (key || !key_len))) {
        r->key = key;
        r->key_len = key_len;
        return 1;
      }
      return stage_failed(s, r, err < 0 ? err : BROOK_ERR_INVALID_ARG);
    }
    case SINK_TAPPED: {
      brook_runtime_t *rt = s->ctx->rt;
      if ((err = rt->sink_tap(s->ctx, r, 1, rt->sink_tap_opaque)) < 0) {
        bk_runtime_fail(rt, err, "test driver: capturing output of '%s' failed: %s",
                        s->ctx->node->name, brook_strerror(err));
        return err;
      }
    }        /* fall through */
    default: /* BK_FUSE_SINK, always the last */
      ++*reached;
      err = ((brook_sink_fn)s->fn)(r, s->opaque);
      if (BK_LIKELY(err >= 0))
        return 0;
      return stage_failed(s, r, err);
    }
  }
}

/* Runs *r through the chain's `len` (>= 2) stages: step()'s result for the last one it
 * reached. The first three are unrolled, so each has a dispatch of its own, which goes the
 * same way for every record of a batch (predicted), and its callback's call site. */
static inline __attribute__((always_inline)) brook_err_t
run_record(const stage_t *st, size_t len, size_t *reached, brook_record_t *r) {
  brook_err_t rc = step(&st[0], reached, r);
  if (rc == 1)
    rc = step(&st[1], reached, r);
  if (rc == 1 && len > 2)
    rc = step(&st[2], reached, r);
  for (size_t k = 3; rc == 1 && k < len; k++)
    rc = step(&st[k], reached, r);
  return rc;
}

brook_err_t bk_fuse_run(brook_ctx_t *head, size_t len, const brook_record_t *recs, size_t n) {
  bk_worker_t *w = head->w;
  stage_t st[FUSE_MAX];
  int keep_input = bk_ctx_routes_failures(head);
  size_t reached = 0;
  int no_emit[FUSE_MAX];
  brook_ctx_t *x = head;
  for (size_t k = 0; k < len; k++) {
    const bk_fn_cfg_t *cfg = x->node->opaque;
    int kind = x->node->fuse_kind;
    if (kind == BK_FUSE_MAP && keep_input)
      kind = MAP_KEEPING_INPUT;
    else if (kind == BK_FUSE_SINK && x->rt->sink_tap)
      kind = SINK_TAPPED;
    st[k] = (stage_t){kind, cfg->fn, cfg->opaque, x};
    no_emit[k] = x->no_emit; /* restored, not cleared: this may run nested in an emit */
    if (x->node->fuse_kind == BK_FUSE_MAP)
      x->no_emit = 1;
    if (x != head) {
      x->has_error_msg = 0;
      x->input = 0;
    }
    if (k + 1 < len)
      x = x->ports[0].to[0].ctx;
  }
  brook_ctx_t *tail = x;
  bk_port_t *out = tail->n_ports ? &tail->ports[0] : NULL;
  int error_records = w->error_depth != 0;
  brook_err_t err = BROOK_OK;
  size_t kept = 0;
  if (head->input_owned) {
    /* The batch is ours: records are rewritten where they lie and the chain's survivors
     * move down over the others, [recs, recs + kept). */
    brook_record_t *own = (brook_record_t *)recs;
    for (size_t i = 0; i < n; i++) {
      if ((err = run_record(st, len, &reached, &own[i])) <= 0) {
        if (err < 0)
          break;
        continue;
      }
      if (kept != i)
        own[kept] = own[i];
      kept++;
    }
  } else {
    /* Borrowed records: each is copied first, into the last operator's output buffer (or a
     * local for a sink), and goes on from there. */
    brook_record_t local;
    for (size_t i = 0; i < n; i++) {
      brook_record_t *r = out ? &out->buf[out->n] : &local;
      *r = recs[i];
      if ((err = run_record(st, len, &reached, r)) <= 0) {
        if (err < 0)
          break;
        continue;
      }
      if (++out->n == out->cap && (err = bk_port_deliver(tail, out)) < 0)
        break;
    }
  }
  for (size_t k = 0; k < len; k++)
    st[k].ctx->no_emit = no_emit[k];
  if (!error_records)
    w->stats.records_out += reached;
  /* This chain's own failure (not one from downstream): what went through it before the
   * failing record still goes on, as operator by operator. */
  int own_failure = 0;
  for (size_t k = 0; k < len && err < 0; k++)
    if (w->failed_ctx == st[k].ctx) {
      w->failed_ctx = NULL;
      own_failure = 1;
    }
  if (err < 0 && !own_failure)
    return err;
  brook_err_t derr = BROOK_OK;
  if (out && head->input_owned)
    derr = bk_emit_batch_owned(tail, 0, (brook_record_t *)recs, kept);
  for (size_t k = 0; k < len && derr >= 0; k++) /* what callbacks emitted, and the rest */
    if (st[k].ctx != head)
      derr = bk_ctx_flush_ports(st[k].ctx);
  return err < 0 ? err : derr;
}
