/* Continuous keyed reduce (Kafka Streams' reduce): the key's value so far, combined with each
 * new record by a user function; every record emits the key's new value. */
#include <string.h>

#include <brook/aggregate.h>
#include <brook/state.h>

#include "core/context.h"
#include "core/topology.h"
#include "ops/keyed_add.h"
#include "state/store.h"

typedef struct reduce_cfg {
  brook_reduce_fn fn;
  void *opaque;
} reduce_cfg_t;

static brook_err_t reduce_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)opaque;
  brook_store_t *s;
  brook_err_t err = brook_store_open(ctx, "reduce", NULL, &s);
  *state = s;
  return err;
}

static brook_err_t reduce_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  brook_store_t *s = state;
  const reduce_cfg_t *cfg = ctx->node->opaque;
  uint64_t h = bk_hash_bytes(rec->key, rec->key_len);
  size_t acc_len = 0;
  const void *acc = bk_store_find(s, rec->key, rec->key_len, h, &acc_len);
  const void *val = rec->value;
  size_t len = rec->value_len;
  if (acc) {
    brook_err_t err = cfg->fn(ctx, acc, acc_len, rec, &val, &len, cfg->opaque);
    if (err < 0)
      return err;
    if (!val && len)
      return BROOK_ERR_INVALID_ARG;
  }
  /* Emit a batch-lifetime copy: the stored value changes with the next record of the key,
   * while this record may still sit in the output buffer. */
  void *copy = brook_ctx_alloc(ctx, len ? len : 1);
  if (!copy)
    return BROOK_ERR_NOMEM;
  if (len)
    memcpy(copy, val, len);
  brook_err_t err = brook_store_put(s, rec->key, rec->key_len, copy, len);
  if (err < 0)
    return err;
  brook_record_t o = *rec;
  o.value = copy;
  o.value_len = len;
  return bk_emit_fast(ctx, 0, &o);
}

static const brook_operator_t reduce_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "reduce",
    .open = reduce_open,
    .process = reduce_process,
};

brook_stream_t *brook_reduce(brook_stream_t *in, brook_reduce_fn fn, void *opaque,
                             const brook_aggregate_opts_t *opts) {
  reduce_cfg_t cfg = {fn, opaque};
  return bk_keyed_add(in, &reduce_op, &cfg, sizeof(cfg), opts,
                      fn ? NULL : "the reduce function is NULL");
}
