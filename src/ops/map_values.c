/* map_values: a new value per record from a user callback; the key cannot change, so what
 * follows keeps the input's partitioning (no repartition before a stateful operator). */
#include <brook/stateless.h>

#include "core/context.h"
#include "core/hints.h"
#include "ops/fn_op.h"

/* Calls the callback for `rec` into *value / *value_len; < 0 if it failed or gave bytes NULL
 * with a length. */
static inline brook_err_t new_value(const bk_fn_cfg_t *cfg, brook_ctx_t *ctx,
                                    const brook_record_t *rec, const void **value,
                                    size_t *value_len) {
  *value = rec->value;
  *value_len = rec->value_len;
  brook_err_t err = ((brook_value_fn)cfg->fn)(rec, value, value_len, ctx, cfg->opaque);
  if (err >= 0 && !*value && *value_len)
    err = BROOK_ERR_INVALID_ARG;
  return err;
}

static brook_err_t map_values_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                    size_t n) {
  const bk_fn_cfg_t *cfg = state;
  /* The batch is ours (input_owned): the value is set where the record lies (the callback
   * has seen the record unchanged, and a failed one goes to the error stream as it came) and
   * the batch goes on without a copy. Otherwise each record is copied into the output. */
  brook_record_t *own = ctx->input_owned ? (brook_record_t *)recs : NULL;
  size_t w = 0; /* in place: records done are own[0, w) */
  for (size_t i = 0; i < n; i++) {
    const void *value;
    size_t value_len;
    brook_err_t err = new_value(cfg, ctx, &recs[i], &value, &value_len);
    if (BK_UNLIKELY(err < 0)) {
      if ((err = brook_ctx_fail_record(ctx, &recs[i], err, "map_values callback failed")) < 0) {
        if (own) /* what went through before it still goes on */
          bk_emit_batch_owned(ctx, 0, own, w);
        return err;
      }
      continue;
    }
    if (own) {
      if (w != i)
        own[w] = own[i];
      own[w].value = value;
      own[w].value_len = value_len;
      w++;
      continue;
    }
    brook_record_t *slot = bk_emit_slot(ctx, 0);
    *slot = recs[i];
    slot->value = value;
    slot->value_len = value_len;
    if ((err = bk_emit_commit(ctx, 0)) < 0)
      return err;
  }
  return own ? bk_emit_batch_owned(ctx, 0, own, w) : BROOK_OK;
}

static const brook_operator_t map_values_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "map_values",
    .open = bk_fn_open,
    .process_batch = map_values_batch,
};

brook_stream_t *brook_map_values(brook_stream_t *in, brook_value_fn fn, void *opaque) {
  return bk_fn_op_fusable(bk_fn_op_add1(in, &map_values_op, (bk_any_fn)fn, opaque),
                          BK_FUSE_MAP_VALUES);
}
