/* The batch loop of the built-in operators whose callback sets one bytes field of each
 * record: key_by (the key, brook_key_fn) and map_values (the value, brook_value_fn), whose
 * callbacks have one shape. Inline, so each operator gets its own loop with the field fixed. */
#ifndef BROOK_OPS_FIELD_FN_H
#define BROOK_OPS_FIELD_FN_H

#include <brook/stateless.h>

#include "core/context.h"
#include "core/fn_cfg.h"
#include "core/hints.h"

/* Which field the callback sets. */
typedef enum bk_field { BK_FIELD_KEY, BK_FIELD_VALUE } bk_field_t;

static inline void bk_field_set(brook_record_t *r, bk_field_t f, const void *bytes, size_t n) {
  if (f == BK_FIELD_KEY) {
    r->key = bytes;
    r->key_len = n;
  } else {
    r->value = bytes;
    r->value_len = n;
  }
}

/* Calls the callback for `rec` into *bytes / *n (they start as the field's own); < 0 if it
 * failed or gave bytes NULL with a length. */
static inline brook_err_t bk_field_call(const bk_fn_cfg_t *cfg, brook_ctx_t *ctx,
                                        const brook_record_t *rec, bk_field_t f, const void **bytes,
                                        size_t *n) {
  *bytes = f == BK_FIELD_KEY ? rec->key : rec->value;
  *n = f == BK_FIELD_KEY ? rec->key_len : rec->value_len;
  brook_err_t err = ((brook_key_fn)cfg->fn)(rec, bytes, n, ctx, cfg->opaque);
  if (err >= 0 && !*bytes && *n)
    err = BROOK_ERR_INVALID_ARG;
  return err;
}

/* process_batch: sets field `f` of every record; a failed one follows the error policy
 * (message `failed`). The batch is ours (input_owned): the field is set where the record lies
 * (the callback has seen the record unchanged, and a failed one goes to the error stream as
 * it came) and the batch goes on without a copy. Otherwise each record is copied into the
 * output. */
static inline brook_err_t bk_field_batch(brook_ctx_t *ctx, const bk_fn_cfg_t *cfg,
                                         const brook_record_t *recs, size_t n, bk_field_t f,
                                         const char *failed) {
  brook_record_t *own = ctx->input_owned ? (brook_record_t *)recs : NULL;
  size_t w = 0; /* in place: records done are own[0, w) */
  for (size_t i = 0; i < n; i++) {
    const void *bytes;
    size_t len;
    brook_err_t err = bk_field_call(cfg, ctx, &recs[i], f, &bytes, &len);
    if (BK_UNLIKELY(err < 0)) {
      if ((err = brook_ctx_fail_record(ctx, &recs[i], err, "%s", failed)) < 0) {
        if (own) /* what went through before it still goes on */
          bk_emit_batch_owned(ctx, 0, own, w);
        return err;
      }
      continue;
    }
    if (own) {
      if (w != i)
        own[w] = own[i];
      bk_field_set(&own[w++], f, bytes, len);
      continue;
    }
    brook_record_t *slot = bk_emit_slot(ctx, 0);
    *slot = recs[i];
    bk_field_set(slot, f, bytes, len);
    if ((err = bk_emit_commit(ctx, 0)) < 0)
      return err;
  }
  return own ? bk_emit_batch_owned(ctx, 0, own, w) : BROOK_OK;
}

#endif
