/* flat_map_values: a user callback emits zero or more values per input record; each output
 * record carries the input's key, timestamp and headers, so the key cannot change and what
 * follows keeps the input's partitioning (no repartition before a stateful operator). */
#include <brook/stateless.h>

#include "core/context.h"
#include "ops/fn_op.h"

/* The emitter a callback gets: the input record being expanded. */
struct brook_values {
  brook_ctx_t *ctx;
  const brook_record_t *rec;
};

brook_err_t brook_emit_value(brook_values_t *out, const void *value, size_t value_len) {
  if (!out || !out->ctx || (!value && value_len))
    return BROOK_ERR_INVALID_ARG;
  brook_record_t r = *out->rec;
  r.value = value;
  r.value_len = value_len;
  out->ctx->no_emit = 0; /* brook_emit on ctx stays refused during the callback */
  brook_err_t err = brook_emit(out->ctx, &r);
  out->ctx->no_emit = 1;
  return err;
}

static brook_err_t flat_map_values_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                         size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_flat_map_values_fn fn = (brook_flat_map_values_fn)cfg->fn;
  int no_emit = ctx->no_emit; /* restored, not cleared: this may run nested in an emit */
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < n && err >= 0; i++) {
    brook_values_t out = {ctx, &recs[i]};
    ctx->no_emit = 1;
    err = fn(&recs[i], &out, ctx, cfg->opaque);
    ctx->no_emit = no_emit;
    if (ctx->emit_misused) {
      ctx->emit_misused = 0;
      err = brook_ctx_fail_record(ctx, &recs[i], BROOK_ERR_STATE,
                                  "flat_map_values callback must emit with brook_emit_value "
                                  "(it cannot change the key)");
    } else if (err < 0) {
      err = brook_ctx_fail_record(ctx, &recs[i], err, "flat_map_values callback failed");
    }
  }
  return err < 0 ? err : BROOK_OK;
}

static const brook_operator_t flat_map_values_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "flat_map_values",
    .open = bk_fn_open,
    .process_batch = flat_map_values_batch,
};

brook_stream_t *brook_flat_map_values(brook_stream_t *in, brook_flat_map_values_fn fn,
                                      void *opaque) {
  return bk_fn_op_add1(in, &flat_map_values_op, (bk_any_fn)fn, opaque);
}
