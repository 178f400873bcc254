/* key_by: give each record a new key computed by a user callback. */
#include <brook/stateless.h>

#include "ops/field_fn.h"
#include "ops/fn_op.h"

static brook_err_t key_by_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                size_t n) {
  return bk_field_batch(ctx, state, recs, n, BK_FIELD_KEY, "key_by callback failed");
}

static const brook_operator_t key_by_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "key_by",
    .open = bk_fn_open,
    .process_batch = key_by_batch,
};

brook_stream_t *brook_key_by(brook_stream_t *in, brook_key_fn fn, void *opaque) {
  brook_stream_t *out =
      bk_fn_op_fusable(bk_fn_op_add1(in, &key_by_op, (bk_any_fn)fn, opaque), BK_FUSE_KEY_BY);
  if (out)
    out->node->rekeys = 1; /* stateful operators after it are not per input partition */
  return out;
}
