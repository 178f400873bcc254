/* map_values: a new value per record from a user callback; the key cannot change, so what
 * follows keeps the input's partitioning (no repartition before a stateful operator). */
#include <brook/stateless.h>

#include "ops/field_fn.h"
#include "ops/fn_op.h"

static brook_err_t map_values_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                    size_t n) {
  return bk_field_batch(ctx, state, recs, n, BK_FIELD_VALUE, "map_values callback failed");
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
