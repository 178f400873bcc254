/* map: rewrite each record in place with a user callback. */
#include <brook/stateless.h>

#include "core/context.h"
#include "core/hints.h"
#include "core/topology.h"
#include "ops/fn_op.h"

/* A failure of record `rec` (`orig`: the record as it came, for the error stream); misuse of
 * emit included. Returns what brook_ctx_fail_record does. */
static brook_err_t map_failed(brook_ctx_t *ctx, const brook_record_t *orig, brook_err_t err) {
  if (ctx->emit_misused) {
    ctx->emit_misused = 0;
    return brook_ctx_fail_record(ctx, orig, BROOK_ERR_STATE,
                                 "map callback must not emit (use flat_map)");
  }
  return brook_ctx_fail_record(ctx, orig, err, "map callback failed");
}

/* The batch is ours (input_owned): the callback rewrites each record where it lies and the
 * batch goes on without a copy; a failed record leaves it. A record routed to the error
 * stream must arrive as it came, so only then is each one copied first. */
static brook_err_t map_in_place(brook_ctx_t *ctx, brook_map_fn fn, void *opaque,
                                brook_record_t *recs, size_t n) {
  int keep_orig = bk_ctx_routes_failures(ctx);
  int no_emit = ctx->no_emit; /* restored, not cleared: this may run nested in an emit */
  ctx->no_emit = 1;
  brook_record_t *r = recs, *end = recs + n;
  brook_err_t err = BROOK_OK;
  if (!keep_orig) { /* until a record fails, every record stays where it is */
    while (r != end && BK_LIKELY((err = fn(r, ctx, opaque)) >= 0 && !ctx->emit_misused))
      r++;
  }
  brook_record_t *out = r; /* records that went through are [recs, out) */
  if (r != end && !keep_orig) {
    err = map_failed(ctx, r, err); /* r failed */
    r++;
  }
  for (; r != end && err >= 0; r++) { /* after a failure, or copying each record first */
    brook_record_t orig;
    if (keep_orig)
      orig = *r;
    err = fn(r, ctx, opaque);
    if (err >= 0 && !ctx->emit_misused) {
      if (out != r)
        *out = *r;
      out++;
      continue;
    }
    err = map_failed(ctx, keep_orig ? &orig : r, err);
  }
  /* On a failure of the run, what went through before it still goes on. */
  ctx->no_emit = no_emit;
  brook_err_t eerr = bk_emit_batch_owned(ctx, 0, recs, (size_t)(out - recs));
  return err < 0 ? err : eerr;
}

static brook_err_t map_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_map_fn fn = (brook_map_fn)cfg->fn;
  void *opaque = cfg->opaque;
  if (ctx->input_owned)
    return map_in_place(ctx, fn, opaque, (brook_record_t *)recs, n);
  for (size_t i = 0; i < n; i++) {
    /* The callback rewrites the output slot itself: one copy per record. */
    brook_record_t *slot = bk_emit_slot(ctx, 0);
    *slot = recs[i];
    ctx->no_emit = 1;
    brook_err_t err = fn(slot, ctx, opaque);
    ctx->no_emit = 0;
    if (ctx->emit_misused || err < 0)
      err = map_failed(ctx, &recs[i], err);
    else
      err = bk_emit_commit(ctx, 0);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static const brook_operator_t map_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "map",
    .open = bk_fn_open,
    .process_batch = map_batch,
};

brook_stream_t *brook_map(brook_stream_t *in, brook_map_fn fn, void *opaque) {
  brook_stream_t *out =
      bk_fn_op_fusable(bk_fn_op_add1(in, &map_op, (bk_any_fn)fn, opaque), BK_FUSE_MAP);
  if (out)
    out->node->key_changing = 1; /* the callback may set any key (stateless.h, "Key changes") */
  return out;
}
