/* Continuous keyed aggregation (brook_aggregate, brook_count): one accumulator per key in a
 * fixed-size store, updated in place; every record emits the key's new result. */
#include <string.h>

#include <brook/aggregate.h>
#include <brook/state.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/topology.h"
#include "ops/aggregator.h"
#include "ops/keyed_add.h"
#include "state/store.h"

typedef struct agg_state {
  brook_store_t *store;
  size_t result_size;
} agg_state_t;

static brook_err_t agg_open(brook_ctx_t *ctx, void *opaque, void **state) {
  const brook_aggregator_t *agg = opaque;
  const brook_allocator_t *a = &ctx->node->topo->alloc;
  agg_state_t *s = bk_calloc(a, 1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->result_size = agg->result ? agg->result_size : agg->acc_size;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = agg->acc_size;
  brook_err_t err = brook_store_open(ctx, "aggregate", &so, &s->store);
  if (err < 0) {
    bk_free(a, s);
    return err;
  }
  *state = s;
  return BROOK_OK;
}

static void agg_close(void *state, void *opaque) {
  (void)opaque;
  agg_state_t *s = state;
  bk_free(&s->store->alloc, s); /* the store itself belongs to the runtime */
}

static brook_err_t agg_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  agg_state_t *s = state;
  const brook_aggregator_t *agg = ctx->node->opaque;
  uint64_t h = bk_hash_bytes(rec->key, rec->key_len);
  void *acc;
  int created;
  brook_err_t err = bk_store_upsert(s->store, rec->key, rec->key_len, h, &acc, &created);
  if (err < 0)
    return err;
  if (created && agg->init)
    agg->init(acc, agg);
  if ((err = agg->add(acc, rec, agg)) < 0) {
    if (created)
      (void)bk_store_remove(s->store, rec->key, rec->key_len, h);
    return err;
  }
  void *out = brook_ctx_alloc(ctx, s->result_size ? s->result_size : 1);
  if (!out)
    return BROOK_ERR_NOMEM;
  if (agg->result)
    agg->result(acc, out, agg);
  else
    memcpy(out, acc, s->result_size);
  brook_record_t o = *rec;
  o.value = out;
  o.value_len = s->result_size;
  return bk_emit_fast(ctx, 0, &o);
}

static const brook_operator_t aggregate_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "aggregate",
    .open = agg_open,
    .process = agg_process,
    .close = agg_close,
};

brook_stream_t *brook_aggregate(brook_stream_t *in, const brook_aggregator_t *agg,
                                const brook_aggregate_opts_t *opts) {
  brook_operator_t op = aggregate_op;
  brook_aggregator_t copy; /* by its version: an older caller's table is smaller */
  bk_errmsg_t why;
  const char *problem = bk_aggregator_copy(&copy, agg, &why);
  if (!problem && copy.name)
    op.type_name = copy.name;
  return bk_keyed_add(in, &op, &copy, sizeof(copy), opts, problem);
}

brook_stream_t *brook_count(brook_stream_t *in, const brook_aggregate_opts_t *opts) {
  brook_aggregator_t c = brook_agg_count();
  return brook_aggregate(in, &c, opts);
}
