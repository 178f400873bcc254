/* merge: several streams into one; each input batch is forwarded without copying. */
#include <brook/stateless.h>

#include "core/topology.h"

static brook_err_t merge_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                               size_t n) {
  (void)state;
  return brook_emit_batch(ctx, 0, recs, n);
}

static const brook_operator_t merge_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "merge",
    .process_batch = merge_batch,
};

brook_stream_t *brook_merge(brook_stream_t *const *ins, size_t n) {
  if (!ins || n == 0)
    return NULL;
  brook_stream_t *out = NULL;
  if (bk_topology_add_operator(ins, n, &merge_op, NULL, NULL, NULL, NULL, 1, &out))
    return NULL;
  out->node->is_merge = 1;
  return out;
}

brook_err_t brook_merge_add(brook_stream_t *merged, brook_stream_t *in) {
  if (!merged || !in)
    return BROOK_ERR_INVALID_ARG;
  bk_node_t *node = merged->node;
  brook_err_t err = bk_topology_check_open(node->topo, "merge_add");
  if (err)
    return err;
  if (!node->is_merge)
    return bk_topology_fail(node->topo, BROOK_ERR_INVALID_ARG,
                            "merge_add: '%s' is not a stream made by brook_merge", node->name);
  return bk_node_add_input(node, in);
}
