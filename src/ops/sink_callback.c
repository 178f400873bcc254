/* The callback sink: hand every record to a user function. */
#include <brook/sink.h>

#include "ops/fn_op.h"

static brook_err_t sink_cb_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                 size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_sink_fn fn = (brook_sink_fn)cfg->fn;
  void *opaque = cfg->opaque;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = fn(&recs[i], opaque);
    if (err < 0 && (err = brook_ctx_fail_record(ctx, &recs[i], err, "sink callback failed")) < 0)
      return err;
  }
  return BROOK_OK;
}

static brook_err_t sink_cb_flush(brook_ctx_t *ctx, void *state) {
  (void)ctx;
  const bk_fn_cfg_t *cfg = state;
  return cfg->fn2 ? ((brook_sink_flush_fn)cfg->fn2)(cfg->opaque) : BROOK_OK;
}

static const brook_operator_t sink_cb_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "sink",
    .open = bk_fn_open,
    .process_batch = sink_cb_batch,
    .flush = sink_cb_flush,
};

brook_err_t brook_sink_callback(brook_stream_t *in, brook_sink_fn fn, brook_sink_flush_fn flush,
                                void *opaque) {
  return bk_fn_op_add(in, &sink_cb_op, (bk_any_fn)fn, (bk_any_fn)flush, opaque, 0, NULL);
}
