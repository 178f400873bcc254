/* filter: keep the records a user predicate accepts. */
#include <brook/stateless.h>

#include "core/context.h"
#include "ops/fn_op.h"

static brook_err_t filter_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_predicate_fn fn = (brook_predicate_fn)cfg->fn;
  void *opaque = cfg->opaque;
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
  return bk_fn_op_add1(in, &filter_op, (bk_any_fn)fn, opaque);
}
