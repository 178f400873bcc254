/* Fused chains: a linear chain of built-in callback operators (filter, map, map_values, peek,
 * key_by and a callback sink at its end; core/fn_cfg.h) runs record by record inside each batch,
 * every record through the whole chain before the next one, instead of one operator over the whole
 * batch and then the next. The loop calls the users' callbacks directly, keeps the records
 * where they lie and delivers the chain's survivors once, from its last operator.
 *
 * Which nodes form chains is the plan's decision (plan/fusion.c: where a chain ends and why),
 * taken by bk_fuse_plan for the runtime's worker count; every worker's and task's instances
 * follow their ports' wiring, so a chain runs on the instances of its worker and task.
 *
 * Semantics are those of the operators run one by one (ops/filter.c, map.c, peek.c,
 * key_by.c, sink_callback.c), with one difference, in the order failures are met: the first
 * record of a batch (in batch order) that fails in any operator of the chain is met first. So
 * under BROOK_ON_ERROR_FAIL the failure reported is that record's, in the operator it failed
 * in, and the records before it have gone through the whole chain (operator by operator it was
 * the failure of the chain's first operator that failed on any record). Runs on the worker's
 * thread.
 *
 * A generator whose records go straight to a chain's head runs in front of the chain
 * (bk_fuse_generate, runtime/fuse.h): each record is made in the slot where the chain's next
 * survivor goes and runs through the chain before the next is made. The generator is then the
 * chain's first operator for the rule above, and nothing is made after a failure under FAIL. */
#include <string.h>

#include <brook/sink.h>
#include <brook/stateless.h>

#include "core/alloc.h"
#include "core/fn_cfg.h"
#include "core/hints.h"
#include "runtime/fuse.h"
#include "runtime/runtime_impl.h"

#define FUSE_MAX BK_FUSE_MAX

brook_err_t bk_fuse_plan(brook_runtime_t *rt) {
  const bk_plan_t *plan = &rt->plan;
  rt->fuse_len = NULL;
  if (!plan->any_fusable) /* nothing to fuse: bk_ctx_process and sources never look */
    return BROOK_OK;
  unsigned char *len = bk_calloc(&rt->alloc, plan->n, 1);
  if (!len)
    return BROOK_ERR_NOMEM;
  /* With one worker every key_by's exchange stays on it: a line goes on past key_by. */
  for (size_t i = 0; i < plan->n; i++)
    len[i] = rt->n_workers > 1 ? plan->nodes[i].fuse_len : plan->nodes[i].fuse_len_local;
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
      [BK_FUSE_FILTER] = "filter predicate failed",
      [BK_FUSE_MAP] = "map callback failed",
      [BK_FUSE_PEEK] = "peek callback failed",
      [BK_FUSE_KEY_BY] = "key_by callback failed",
      [BK_FUSE_MAP_VALUES] = "map_values callback failed",
      [BK_FUSE_SINK] = "sink callback failed",
      [MAP_KEEPING_INPUT] = "map callback failed",
      [SINK_TAPPED] = "sink callback failed",
  };
  if (s->ctx->emit_misused) { /* map and map_values refuse it (chain_begin) */
    s->ctx->emit_misused = 0;
    return brook_ctx_fail_record(s->ctx, rec, BROOK_ERR_STATE, "%s",
                                 s->kind == BK_FUSE_MAP_VALUES
                                     ? "map_values callback must not emit (use flat_map_values)"
                                     : "map callback must not emit (use flat_map)");
  }
  return brook_ctx_fail_record(s->ctx, rec, err, "%s", what[s->kind]);
}

/* key_by and map_values: the callback sets one bytes field of *r, `*field` / `*len` (their
 * callbacks have one shape: brook_key_fn, brook_value_fn). Bytes NULL with a length fail, and
 * so does a map_values callback that emitted (refused: the record could carry another key). */
static brook_err_t step_field(const stage_t *s, brook_record_t *r, const void **field,
                              size_t *len) {
  const void *bytes = *field;
  size_t n = *len;
  brook_err_t err = ((brook_key_fn)s->fn)(r, &bytes, &n, s->ctx, s->opaque);
  if (err >= 0 && (bytes || !n) && !s->ctx->emit_misused) {
    *field = bytes;
    *len = n;
    return 1;
  }
  return stage_failed(s, r, err < 0 ? err : BROOK_ERR_INVALID_ARG);
}

/* The stages other than filter and map, out of the record loop. Returns what step() does. */
static __attribute__((noinline)) brook_err_t step_other(const stage_t *s, brook_record_t *r) {
  brook_err_t err;
  switch (s->kind) {
  case MAP_KEEPING_INPUT: {
    brook_record_t orig = *r;
    err = ((brook_map_fn)s->fn)(r, s->ctx, s->opaque);
    if (err >= 0 && !s->ctx->emit_misused)
      return 1;
    return stage_failed(s, &orig, err);
  }
  case BK_FUSE_PEEK:
    err = ((brook_peek_fn)s->fn)(r, s->opaque);
    return err >= 0 ? 1 : stage_failed(s, r, err);
  case BK_FUSE_MAP_VALUES:
    return step_field(s, r, &r->value, &r->value_len);
  default: /* BK_FUSE_KEY_BY */
    return step_field(s, r, &r->key, &r->key_len);
  }
}

/* Runs *r through stage s (not a sink). Returns 1 if it goes on, 0 if it was dropped or
 * failed under a policy that goes on, or < 0 (the run fails). Filter and map are tested
 * first and inline: the branches go the same way for every record of a batch. */
static inline __attribute__((always_inline)) brook_err_t step(const stage_t *s, brook_record_t *r) {
  if (s->kind == BK_FUSE_FILTER) {
    int keep = ((brook_predicate_fn)s->fn)(r, s->opaque);
    if (BK_LIKELY(keep > 0))
      return 1;
    return keep == 0 ? 0 : stage_failed(s, r, keep);
  }
  if (s->kind == BK_FUSE_MAP) {
    brook_err_t err = ((brook_map_fn)s->fn)(r, s->ctx, s->opaque);
    if (BK_LIKELY(err >= 0 && !s->ctx->emit_misused))
      return 1;
    return stage_failed(s, r, err);
  }
  return step_other(s, r);
}

/* The test driver's tap sees the record before the sink; what the sink stage returns. */
static __attribute__((noinline)) brook_err_t sink_tapped(const stage_t *s, brook_record_t *r) {
  brook_runtime_t *rt = s->ctx->rt;
  brook_err_t err = rt->sink_tap(s->ctx, r, 1, rt->sink_tap_opaque);
  if (err < 0) {
    bk_runtime_fail(rt, err, "test driver: capturing output of '%s' failed: %s", s->ctx->node->name,
                    brook_strerror(err));
    return err;
  }
  err = ((brook_sink_fn)s->fn)(r, s->opaque);
  return err >= 0 ? 0 : stage_failed(s, r, err);
}

/* Runs *r through the `nb` stages st[] and then the sink `snk` if not NULL. Returns 1
 * if the record comes out of the chain (no sink), 0 if it was dropped, consumed by the sink
 * or failed under a policy that goes on, or < 0 (the run fails). *reached counts records
 * handed to the sink. The first three stages are unrolled: each has its own dispatch and call
 * sites, which go the same way for every record of a batch (predicted). */
static inline __attribute__((always_inline)) brook_err_t
run_record(const stage_t *st, size_t nb, const stage_t *snk, size_t *reached, brook_record_t *r) {
  brook_err_t rc = nb ? step(&st[0], r) : 1; /* nb == 0: a generator right before the sink */
  if (rc == 1 && nb > 1)
    rc = step(&st[1], r);
  if (rc == 1 && nb > 2)
    rc = step(&st[2], r);
  for (size_t k = 3; rc == 1 && k < nb; k++)
    rc = step(&st[k], r);
  if (rc != 1 || !snk)
    return rc;
  ++*reached;
  if (BK_UNLIKELY(snk->kind == SINK_TAPPED))
    return sink_tapped(snk, r);
  rc = ((brook_sink_fn)snk->fn)(r, snk->opaque);
  return BK_LIKELY(rc >= 0) ? 0 : stage_failed(snk, r, rc);
}

/* ---- a chain while it runs over one batch ---- */

typedef struct chain {
  stage_t st[FUSE_MAX];
  int no_emit[FUSE_MAX]; /* the contexts' no_emit before the batch, restored after it */
  size_t len, nb;        /* stages; those before the sink */
  const stage_t *snk;    /* the callback sink that ends the chain, or NULL */
  brook_ctx_t *head, *tail;
  bk_port_t *out; /* the tail's output (NULL: the chain ends at a sink) */
} chain_t;

static void chain_begin(chain_t *c, brook_ctx_t *head, size_t len) {
  int keep_input = bk_ctx_routes_failures(head);
  brook_ctx_t *x = head;
  for (size_t k = 0; k < len; k++) {
    const bk_fn_cfg_t *cfg = x->node->opaque;
    int kind = x->node->fuse_kind;
    if (kind == BK_FUSE_MAP && keep_input)
      kind = MAP_KEEPING_INPUT;
    else if (kind == BK_FUSE_SINK && x->rt->sink_tap)
      kind = SINK_TAPPED;
    c->st[k] = (stage_t){kind, cfg->fn, cfg->opaque, x};
    c->no_emit[k] = x->no_emit; /* restored, not cleared: this may run nested in an emit */
    if (x->node->fuse_kind == BK_FUSE_MAP || x->node->fuse_kind == BK_FUSE_MAP_VALUES)
      x->no_emit = 1; /* their callbacks must not emit (stateless.h) */
    if (x != head) {
      x->has_error_msg = 0;
      x->input = 0;
    }
    if (k + 1 < len)
      x = x->ports[0].to[0].ctx;
  }
  c->len = len;
  c->head = head;
  c->tail = x;
  int has_sink = c->st[len - 1].kind == BK_FUSE_SINK || c->st[len - 1].kind == SINK_TAPPED;
  c->nb = len - (size_t)has_sink;
  c->snk = has_sink ? &c->st[c->nb] : NULL;
  c->out = x->n_ports ? &x->ports[0] : NULL;
}

/* Ends the batch: `err` is what stopped the records (BROOK_OK: none did), `reached` the
 * records handed to the sink, own[0, kept) the survivors of an owned batch (own NULL: the
 * records were borrowed, the survivors are in the tail's port). `own_failure`: err is the
 * failure of the generator in front of the chain. */
static brook_err_t chain_end(chain_t *c, brook_err_t err, size_t reached, brook_record_t *own,
                             size_t kept, int own_failure) {
  bk_worker_t *w = c->head->w;
  for (size_t k = 0; k < c->len; k++)
    c->st[k].ctx->no_emit = c->no_emit[k];
  if (!w->error_depth)
    w->stats.records_out += reached;
  /* This chain's own failure (not one from downstream): what went through it before the
   * failing record still goes on, as operator by operator. */
  for (size_t k = 0; k < c->len && err < 0; k++)
    if (w->failed_ctx == c->st[k].ctx) {
      w->failed_ctx = NULL;
      own_failure = 1;
    }
  if (err < 0 && !own_failure)
    return err;
  brook_err_t derr = BROOK_OK;
  if (c->out && own)
    derr = bk_emit_batch_owned(c->tail, 0, own, kept);
  for (size_t k = 0; k < c->len && derr >= 0; k++) /* what callbacks emitted, and the rest */
    if (c->st[k].ctx != c->head)
      derr = bk_ctx_flush_ports(c->st[k].ctx);
  return err < 0 ? err : derr;
}

/* ---- a generator in front of a chain ---- */

enum { GEN_MADE = BROOK_OK, GEN_DONE = BROOK_DONE, GEN_AGAIN = BROOK_DONE + 1 };

/* What the generator's callback returned other than BROOK_OK, for the record at r: GEN_MADE
 * (a positive code other than BROOK_DONE: a record too), GEN_DONE, GEN_AGAIN (it failed and
 * was skipped or routed: the next record is made in its place) or < 0 (the run fails). */
static __attribute__((noinline)) brook_err_t gen_unusual(const bk_fuse_gen_t *g, brook_record_t *r,
                                                         brook_err_t err) {
  if (err > 0)
    return err == BROOK_DONE ? GEN_DONE : GEN_MADE;
  err = brook_ctx_fail_record(g->ctx, r, err, "generator callback failed");
  return err < 0 ? err : GEN_AGAIN;
}

static inline __attribute__((always_inline)) brook_err_t generate(const bk_fuse_gen_t *g,
                                                                  brook_record_t *r) {
  memset(r, 0, sizeof(*r)); /* the callback's contract: *out starts zeroed */
  brook_err_t err = g->fn(r, g->ctx, g->opaque);
  return BK_LIKELY(err == BROOK_OK) ? GEN_MADE : gen_unusual(g, r, err);
}

/* ---- owned batches: the loop compiled per shape ----
 * A chain of at most two stages before an optional (untapped) callback sink, each stage a
 * filter, a map or another kind (OTHER: step_other, out of line), runs in a loop compiled for
 * that shape: no dispatch at all per record, as if written by hand. Other chains (ANY) call
 * run_record. With a generator in front (`generated`), each record is made where the chain's
 * next survivor goes and runs through the chain before the next is made, so a record is
 * written and read while it is in the L1 cache, and the batch is walked once. */
enum { K_NONE, K_FILTER, K_MAP, K_OTHER, K_ANY };

/* step() for a stage whose kind `k` is a compile-time constant. */
static inline __attribute__((always_inline)) brook_err_t step_as(int k, const stage_t *s,
                                                                 brook_record_t *r) {
  if (k == K_FILTER) {
    int keep = ((brook_predicate_fn)s->fn)(r, s->opaque);
    if (BK_LIKELY(keep > 0))
      return 1;
    return keep == 0 ? 0 : stage_failed(s, r, keep);
  }
  if (k == K_MAP) {
    brook_err_t err = ((brook_map_fn)s->fn)(r, s->ctx, s->opaque);
    if (BK_LIKELY(err >= 0 && !s->ctx->emit_misused))
      return 1;
    return stage_failed(s, r, err);
  }
  return step_other(s, r);
}

/* Runs own[0, n) through the chain, or (`generated`) makes up to n records with `gen` into own
 * and runs each through the chain; survivors end in own[0, *kept). Stages k0, k1 (K_NONE:
 * absent) and the sink if `sink`, or run_record for K_ANY. *made: records made (generated).
 * Returns BROOK_OK, GEN_DONE (the generator ended) or the error that stopped it. */
static inline __attribute__((always_inline)) brook_err_t
owned_loop(const chain_t *c, int k0, int k1, int sink, int generated, const bk_fuse_gen_t *gen,
           brook_record_t *own, size_t n, size_t *kept, size_t *reached, size_t *made) {
  const stage_t *s0 = &c->st[0], *s1 = &c->st[1];
  const stage_t *snk = &c->st[(k0 != K_NONE) + (k1 != K_NONE)];
  size_t out = 0, at_sink = 0, i = 0;
  brook_err_t rc = BROOK_OK;
  int done = 0;
  while (i < n) {
    brook_record_t *r = generated ? &own[out] : &own[i];
    if (generated && BK_UNLIKELY((rc = generate(gen, r)) != GEN_MADE)) {
      if (rc == GEN_AGAIN)
        continue;
      done = rc == GEN_DONE;
      break;
    }
    i++;
    if (k0 == K_ANY) {
      rc = run_record(c->st, c->nb, c->snk, &at_sink, r);
    } else {
      rc = k0 == K_NONE ? 1 : step_as(k0, s0, r);
      if (k1 != K_NONE && rc == 1)
        rc = step_as(k1, s1, r);
      if (rc == 1 && sink) {
        at_sink++;
        rc = ((brook_sink_fn)snk->fn)(r, snk->opaque);
        rc = BK_LIKELY(rc >= 0) ? 0 : stage_failed(snk, r, rc);
      }
    }
    if (rc == 1 && !sink) { /* with a sink, nothing comes out: `out` stays 0 */
      if (!generated && out != i - 1)
        own[out] = *r;
      out++;
    } else if (BK_UNLIKELY(rc < 0)) {
      break;
    }
  }
  *kept = out;
  *reached += at_sink;
  if (generated)
    *made = i;
  return rc < 0 ? rc : done ? GEN_DONE : BROOK_OK;
}

static int shape_kind(int kind) {
  return kind == BK_FUSE_FILTER ? K_FILTER : kind == BK_FUSE_MAP ? K_MAP : K_OTHER;
}

#define SHAPE(k0, k1, sink) (((k0)*4 + (k1)) * 2 + (sink))

static int chain_shape(const chain_t *c) {
  if (c->nb > 2 || (c->snk && c->snk->kind != BK_FUSE_SINK))
    return SHAPE(K_ANY, K_NONE, 0);
  int k0 = c->nb > 0 ? shape_kind(c->st[0].kind) : K_NONE;
  int k1 = c->nb > 1 ? shape_kind(c->st[1].kind) : K_NONE;
  return SHAPE(k0, k1, c->snk != NULL);
}

#define SHAPED(k0, k1, sink)                                                                       \
  case SHAPE(k0, k1, sink):                                                                        \
    return owned_loop(c, k0, k1, sink, generated, gen, own, n, kept, reached, made)
#define SHAPED_BOTH(k0, k1)                                                                        \
  SHAPED(k0, k1, 0);                                                                               \
  SHAPED(k0, k1, 1)
#define SHAPED_AFTER(k0)                                                                           \
  SHAPED_BOTH(k0, K_FILTER);                                                                       \
  SHAPED_BOTH(k0, K_MAP);                                                                          \
  SHAPED_BOTH(k0, K_OTHER)

/* owned_loop for the chain's shape. */
static inline __attribute__((always_inline)) brook_err_t
owned_by_shape(const chain_t *c, int generated, const bk_fuse_gen_t *gen, brook_record_t *own,
               size_t n, size_t *kept, size_t *reached, size_t *made) {
  switch (chain_shape(c)) {
    SHAPED(K_NONE, K_NONE, 1); /* a generator right before a sink */
    SHAPED_BOTH(K_FILTER, K_NONE);
    SHAPED_BOTH(K_MAP, K_NONE);
    SHAPED_BOTH(K_OTHER, K_NONE);
    SHAPED_AFTER(K_FILTER);
    SHAPED_AFTER(K_MAP);
    SHAPED_AFTER(K_OTHER);
  default:
    return owned_loop(c, K_ANY, K_NONE, 0, generated, gen, own, n, kept, reached, made);
  }
}

static brook_err_t owned_run(const chain_t *c, brook_record_t *own, size_t n, size_t *kept,
                             size_t *reached) {
  return owned_by_shape(c, 0, NULL, own, n, kept, reached, NULL);
}

static brook_err_t generated_run(const chain_t *c, const bk_fuse_gen_t *gen, brook_record_t *own,
                                 size_t n, size_t *kept, size_t *reached, size_t *made) {
  return owned_by_shape(c, 1, gen, own, n, kept, reached, made);
}

/* ---- entry points ---- */

brook_err_t bk_fuse_run(brook_ctx_t *head, size_t len, const brook_record_t *recs, size_t n) {
  chain_t c;
  chain_begin(&c, head, len);
  size_t reached = 0, kept = 0;
  brook_err_t err = BROOK_OK;
  if (head->input_owned) {
    /* The batch is ours: records are rewritten where they lie and the chain's survivors
     * move down over the others, [recs, recs + kept). */
    err = owned_run(&c, (brook_record_t *)recs, n, &kept, &reached);
    return chain_end(&c, err, reached, (brook_record_t *)recs, kept, 0);
  }
  /* Borrowed records: each is copied first, into the last operator's output buffer (or a
   * local for a sink), and goes on from there. */
  brook_record_t local;
  for (size_t i = 0; i < n; i++) {
    brook_record_t *r = c.out ? &c.out->buf[c.out->n] : &local;
    *r = recs[i];
    if ((err = run_record(c.st, c.nb, c.snk, &reached, r)) <= 0) {
      if (err < 0)
        break;
      continue;
    }
    if (++c.out->n == c.out->cap && (err = bk_port_deliver(c.tail, c.out)) < 0)
      break;
  }
  return chain_end(&c, err < 0 ? err : BROOK_OK, reached, NULL, 0, 0);
}

size_t bk_fuse_source_chain(bk_src_t *src) {
  const brook_runtime_t *rt = src->rt;
  const bk_port_t *p = bk_src_port(src);
  if (!rt->fuse_len || p->n_to != 1 || p->n || src->w->error_depth)
    return 0;
  /* A partitioned source's records outside any task are dropped (scheduler.c, run_batch): the
   * instances after it are never opened. */
  if (src->ctx == src->home && rt->per_task && rt->per_task[rt->plan.pos[src->home->node->id]])
    return 0;
  if (bk_src_tracks_time(src)) /* each batch is stamped and observed before it goes on */
    return 0;
  return rt->fuse_len[rt->plan.pos[p->to[0].ctx->node->id]];
}

brook_err_t bk_fuse_generate(bk_src_t *src, size_t len, const bk_fuse_gen_t *gen, size_t max,
                             size_t *made) {
  bk_port_t *p = bk_src_port(src);
  brook_ctx_t *head = p->to[0].ctx;
  head->input = p->to[0].input;
  head->input_owned = 1; /* the source's buffer: nothing reads it after the chain */
  head->has_error_msg = 0;
  chain_t c;
  chain_begin(&c, head, len);
  size_t reached = 0, kept = 0;
  *made = 0;
  brook_err_t err = generated_run(&c, gen, p->buf, max, &kept, &reached, made);
  int done = err == GEN_DONE;
  /* The generator's failure: the records made before it still go on, as in a batch it had
   * filled before failing. */
  int gen_failed = err < 0 && src->w->failed_ctx == gen->ctx;
  if (gen_failed)
    src->w->failed_ctx = NULL;
  err = chain_end(&c, done ? BROOK_OK : err, reached, p->buf, kept, gen_failed);
  err = bk_ctx_process_end(head, err);
  return err < 0 ? err : done ? BROOK_DONE : BROOK_OK;
}
