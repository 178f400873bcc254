/* flat_map: a user callback emits zero or more records per input record. */
#include <brook/stateless.h>

#include "core/topology.h"
#include "ops/fn_op.h"

static brook_err_t flat_map_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                  size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_flat_map_fn fn = (brook_flat_map_fn)cfg->fn;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = fn(&recs[i], ctx, cfg->opaque);
    if (err < 0 &&
        (err = brook_ctx_fail_record(ctx, &recs[i], err, "flat_map callback failed")) < 0)
      return err;
  }
  return BROOK_OK;
}

static const brook_operator_t flat_map_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "flat_map",
    .open = bk_fn_open,
    .process_batch = flat_map_batch,
};

brook_stream_t *brook_flat_map(brook_stream_t *in, brook_flat_map_fn fn, void *opaque) {
  brook_stream_t *out = bk_fn_op_add1(in, &flat_map_op, (bk_any_fn)fn, opaque);
  if (out)
    out->node->key_changing = 1; /* it may emit any key (stateless.h, "Key changes") */
  return out;
}
