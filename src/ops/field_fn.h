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

/* A failure of `rec` (as it came) under the error policy: the callback's, or its misuse of
 * emit (map_values: an emitted record could carry another key past the partitioning). */
static inline brook_err_t bk_field_failed(brook_ctx_t *ctx, const brook_record_t *rec, bk_field_t f,
                                          brook_err_t err, const char *failed) {
  if (ctx->emit_misused) {
    ctx->emit_misused = 0;
    return brook_ctx_fail_record(ctx, rec, BROOK_ERR_STATE, "%s",
                                 f == BK_FIELD_VALUE
                                     ? "map_values callback must not emit (use flat_map_values)"
                                     : "key_by callback must not emit");
  }
  return brook_ctx_fail_record(ctx, rec, err, "%s", failed);
}

/* process_batch: sets field `f` of every record; a failed one follows the error policy
 * (message `failed`). map_values' callback must not emit (brook_value_fn): ctx refuses it
 * while the batch runs (no_emit) and the record fails, as map's does; key_by's emits would
 * cross its exchange by their own key, and are left as they were. The batch is ours
 * (input_owned): the field is set where the record lies (the callback has seen the record
 * unchanged, and a failed one goes to the error stream as it came) and the batch goes on
 * without a copy. Otherwise each record is copied into the output. */
static inline brook_err_t bk_field_batch(brook_ctx_t *ctx, const bk_fn_cfg_t *cfg,
                                         const brook_record_t *recs, size_t n, bk_field_t f,
                                         const char *failed) {
  brook_record_t *own = ctx->input_owned ? (brook_record_t *)recs : NULL;
  int no_emit = ctx->no_emit; /* restored, not cleared: this may run nested in an emit */
  if (f == BK_FIELD_VALUE)
    ctx->no_emit = 1;
  size_t w = 0; /* in place: records done are own[0, w) */
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < n; i++) {
    const void *bytes;
    size_t len;
    err = bk_field_call(cfg, ctx, &recs[i], f, &bytes, &len);
    if (BK_UNLIKELY(err < 0 || ctx->emit_misused)) {
      if ((err = bk_field_failed(ctx, &recs[i], f, err, failed)) < 0)
        break; /* what went through before it still goes on */
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
      break;
  }
  ctx->no_emit = no_emit;
  if (!own)
    return err < 0 ? err : BROOK_OK;
  brook_err_t eerr = bk_emit_batch_owned(ctx, 0, own, w);
  return err < 0 ? err : eerr;
}

#endif
