/* peek: show each record to a user callback, then pass the batch on unchanged (no copy). */
#include <brook/stateless.h>

#include "core/context.h"
#include "ops/fn_op.h"

/* Forwards recs[0, n): without a copy, and owned by the next operator if the batch is ours
 * (it may rewrite them in place: peek reads only records after them). */
static brook_err_t forward(brook_ctx_t *ctx, int owned, const brook_record_t *recs, size_t n) {
  return owned ? bk_emit_batch_owned(ctx, 0, (brook_record_t *)recs, n)
               : brook_emit_batch(ctx, 0, recs, n);
}

static brook_err_t peek_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_peek_fn fn = (brook_peek_fn)cfg->fn;
  int owned = ctx->input_owned;
  size_t from = 0; /* records [from, i) passed and are not yet forwarded */
  for (size_t i = 0; i < n; i++) {
    brook_err_t failed = fn(&recs[i], cfg->opaque);
    if (failed >= 0)
      continue;
    /* A failed record leaves the stream: forward what passed before it, then apply the
     * policy to it. */
    brook_err_t err = forward(ctx, owned, recs + from, i - from);
    if (err < 0 || (err = brook_ctx_fail_record(ctx, &recs[i], failed, "peek callback failed")) < 0)
      return err;
    from = i + 1;
  }
  return forward(ctx, owned, recs + from, n - from);
}

static const brook_operator_t peek_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "peek",
    .open = bk_fn_open,
    .process_batch = peek_batch,
};

brook_stream_t *brook_peek(brook_stream_t *in, brook_peek_fn fn, void *opaque) {
  return bk_fn_op_fusable(bk_fn_op_add1(in, &peek_op, (bk_any_fn)fn, opaque), BK_FUSE_PEEK);
}
