/* map: rewrite each record in place with a user callback. */
#include <brook/stateless.h>

#include "ops/fn_op.h"

static brook_err_t map_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_map_fn fn = (brook_map_fn)cfg->fn;
  void *opaque = cfg->opaque;
  for (size_t i = 0; i < n; i++) {
    brook_record_t r = recs[i];
    brook_err_t err = fn(&r, ctx, opaque);
    if (err < 0)
      err = brook_ctx_fail_record(ctx, &recs[i], err, "map callback failed");
    else
      err = brook_emit(ctx, &r);
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
