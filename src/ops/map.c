/* map: rewrite each record in place with a user callback. */
#include <brook/stateless.h>

#include "core/context.h"
#include "ops/fn_op.h"

static brook_err_t map_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_map_fn fn = (brook_map_fn)cfg->fn;
  void *opaque = cfg->opaque;
  for (size_t i = 0; i < n; i++) {
    /* The callback rewrites the output slot itself: one copy per record. */
    brook_record_t *slot = bk_emit_slot(ctx, 0);
    *slot = recs[i];
    ctx->no_emit = 1;
    brook_err_t err = fn(slot, ctx, opaque);
    ctx->no_emit = 0;
    if (ctx->emit_misused) {
      ctx->emit_misused = 0;
      err = brook_ctx_fail_record(ctx, &recs[i], BROOK_ERR_STATE,
                                  "map callback must not emit (use flat_map)");
    } else if (err < 0)
      err = brook_ctx_fail_record(ctx, &recs[i], err, "map callback failed");
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
  return bk_fn_op_add1(in, &map_op, (bk_any_fn)fn, opaque);
}
