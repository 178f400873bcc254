/* key_by: give each record a new key computed by a user callback. */
#include <brook/stateless.h>

#include "core/context.h"
#include "ops/fn_op.h"

static brook_err_t key_by_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_key_fn fn = (brook_key_fn)cfg->fn;
  for (size_t i = 0; i < n; i++) {
    brook_record_t r = recs[i];
    brook_err_t err = fn(&recs[i], &r.key, &r.key_len, ctx, cfg->opaque);
    if (err >= 0 && !r.key && r.key_len)
      err = BROOK_ERR_INVALID_ARG;
    if (err < 0)
      err = brook_ctx_fail_record(ctx, &recs[i], err, "key_by callback failed");
    else
      err = bk_emit_fast(ctx, 0, &r);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static const brook_operator_t key_by_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "key_by",
    .open = bk_fn_open,
    .process_batch = key_by_batch,
};

brook_stream_t *brook_key_by(brook_stream_t *in, brook_key_fn fn, void *opaque) {
  brook_stream_t *out = bk_fn_op_add1(in, &key_by_op, (bk_any_fn)fn, opaque);
  if (out)
    out->node->rekeys = 1; /* stateful operators after it are not per input partition */
  return out;
}
