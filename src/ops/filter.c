/* filter: keep the records a user predicate accepts. */
#include <brook/stateless.h>

#include "core/context.h"
#include "core/hints.h"
#include "ops/fn_op.h"

/* The batch is ours (input_owned): survivors move down over the dropped ones and go on
 * without a copy into an output buffer. */
static brook_err_t filter_in_place(brook_ctx_t *ctx, brook_predicate_fn fn, void *opaque,
                                   brook_record_t *recs, size_t n) {
  brook_record_t *out = recs; /* survivors are [recs, out) */
  for (brook_record_t *r = recs, *end = recs + n; r != end; r++) {
    int keep = fn(r, opaque);
    if (BK_LIKELY(keep > 0)) {
      if (out != r)
        *out = *r;
      out++;
    } else if (keep < 0) {
      brook_err_t err = brook_ctx_fail_record(ctx, r, keep, "filter predicate failed");
      if (err < 0) { /* the survivors before the failing record still go on */
        bk_emit_batch_owned(ctx, 0, recs, (size_t)(out - recs));
        return err;
      }
    }
  }
  return bk_emit_batch_owned(ctx, 0, recs, (size_t)(out - recs));
}

static brook_err_t filter_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_predicate_fn fn = (brook_predicate_fn)cfg->fn;
  void *opaque = cfg->opaque;
  if (ctx->input_owned)
    return filter_in_place(ctx, fn, opaque, (brook_record_t *)recs, n);
  for (size_t i = 0; i < n; i++) {
    int keep = fn(&recs[i], opaque);
    brook_err_t err = BROOK_OK;
    if (keep > 0)
      err = bk_emit_fast(ctx, 0, &recs[i]);
    else if (keep < 0)
      err = brook_ctx_fail_record(ctx, &recs[i], keep, "filter predicate failed");
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static const brook_operator_t filter_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "filter",
    .open = bk_fn_open,
    .process_batch = filter_batch,
};

brook_stream_t *brook_filter(brook_stream_t *in, brook_predicate_fn fn, void *opaque) {
  return bk_fn_op_fusable(bk_fn_op_add1(in, &filter_op, (bk_any_fn)fn, opaque), BK_FUSE_FILTER);
}
