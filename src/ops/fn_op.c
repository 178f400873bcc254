/* Shared plumbing for single-callback operators (see fn_op.h). */
#include "ops/fn_op.h"

#include "core/alloc.h"
#include "core/topology.h"

brook_err_t bk_fn_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static void fn_cfg_free(void *cfg, const brook_allocator_t *a) { bk_free(a, cfg); }

brook_err_t bk_fn_op_add(brook_stream_t *in, const brook_operator_t *op, bk_any_fn fn,
                         bk_any_fn fn2, void *opaque, size_t n_outputs, brook_stream_t **outs) {
  return bk_fn_op_add_named(in, op, fn, fn2, opaque, NULL, n_outputs, outs);
}

brook_err_t bk_fn_op_add_named(brook_stream_t *in, const brook_operator_t *op, bk_any_fn fn,
                               bk_any_fn fn2, void *opaque, const char *name, size_t n_outputs,
                               brook_stream_t **outs) {
  if (!in)
    return BROOK_ERR_INVALID_ARG; /* an upstream builder failed and recorded why */
  brook_topology_t *t = in->node->topo;
  if (!fn)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "%s: callback is NULL", op->type_name);
  bk_fn_cfg_t *cfg = bk_malloc(&t->alloc, sizeof(*cfg));
  if (!cfg)
    return bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", op->type_name);
  cfg->fn = fn;
  cfg->fn2 = fn2;
  cfg->opaque = opaque;
  brook_err_t err =
      bk_topology_add_operator(&in, 1, op, cfg, fn_cfg_free, name, NULL, n_outputs, outs);
  if (err == BROOK_OK) /* the node just added; a callback reads the watermark only by asking */
    t->nodes[t->n_nodes - 1]->time_blind = 1;
  return err;
}

brook_stream_t *bk_fn_op_add1(brook_stream_t *in, const brook_operator_t *op, bk_any_fn fn,
                              void *opaque) {
  brook_stream_t *out = NULL;
  return bk_fn_op_add(in, op, fn, NULL, opaque, 1, &out) ? NULL : out;
}

brook_stream_t *bk_fn_op_fusable(brook_stream_t *s, bk_fuse_kind_t kind) {
  if (s)
    s->node->fuse_kind = (int)kind;
  return s;
}
