/* key_by: give each record a new key computed by a user callback. */
#include <brook/stateless.h>

#include "core/context.h"
#include "core/hints.h"
#include "ops/fn_op.h"

/* Calls the callback for `rec` into *key / *key_len; < 0 if it failed or gave bytes NULL
 * with a length. */
static inline brook_err_t new_key(const bk_fn_cfg_t *cfg, brook_ctx_t *ctx,
                                  const brook_record_t *rec, const void **key, size_t *key_len) {
  *key = rec->key;
  *key_len = rec->key_len;
  brook_err_t err = ((brook_key_fn)cfg->fn)(rec, key, key_len, ctx, cfg->opaque);
  if (err >= 0 && !*key && *key_len)
    err = BROOK_ERR_INVALID_ARG;
  return err;
}

static brook_err_t key_by_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                size_t n) {
  const bk_fn_cfg_t *cfg = state;
  /* The batch is ours (input_owned): the key is set where the record lies (the callback has
   * seen the record unchanged, and a failed one goes to the error stream as it came) and the
   * batch goes on without a copy. Otherwise each record is copied into the output. */
  brook_record_t *own = ctx->input_owned ? (brook_record_t *)recs : NULL;
  size_t w = 0; /* in place: records rekeyed are own[0, w) */
  for (size_t i = 0; i < n; i++) {
    const void *key;
    size_t key_len;
    brook_err_t err = new_key(cfg, ctx, &recs[i], &key, &key_len);
    if (BK_UNLIKELY(err < 0)) {
      if ((err = brook_ctx_fail_record(ctx, &recs[i], err, "key_by callback failed")) < 0) {
        if (own) /* what went through before it still goes on */
          bk_emit_batch_owned(ctx, 0, own, w);
        return err;
      }
      continue;
    }
    if (own) {
      if (w != i)
        own[w] = own[i];
      own[w].key = key;
      own[w].key_len = key_len;
      w++;
      continue;
    }
    brook_record_t *slot = bk_emit_slot(ctx, 0);
    *slot = recs[i];
    slot->key = key;
    slot->key_len = key_len;
    if ((err = bk_emit_commit(ctx, 0)) < 0)
      return err;
  }
  return own ? bk_emit_batch_owned(ctx, 0, own, w) : BROOK_OK;
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
