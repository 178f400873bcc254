/* The callback sink: hand every record to a user function. */
#include <string.h>

#include <brook/sink.h>

#include "core/opts.h"
#include "core/topology.h"
#include "ops/fn_op.h"

static brook_err_t sink_cb_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                 size_t n) {
  const bk_fn_cfg_t *cfg = state;
  brook_sink_fn fn = (brook_sink_fn)cfg->fn;
  void *opaque = cfg->opaque;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = fn(&recs[i], opaque);
    if (err < 0 && (err = brook_ctx_fail_record(ctx, &recs[i], err, "sink callback failed")) < 0)
      return err;
  }
  return BROOK_OK;
}

static brook_err_t sink_cb_flush(brook_ctx_t *ctx, void *state) {
  (void)ctx;
  const bk_fn_cfg_t *cfg = state;
  return cfg->fn2 ? ((brook_sink_flush_fn)cfg->fn2)(cfg->opaque) : BROOK_OK;
}

static const brook_operator_t sink_cb_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "sink",
    .open = bk_fn_open,
    .process_batch = sink_cb_batch,
    .flush = sink_cb_flush,
};

void brook_callback_sink_opts_init_size(brook_callback_sink_opts_t *opts, size_t size) {
  brook_callback_sink_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t callback_sink_versions[] = {
    BK_OPTS_VERSION(brook_callback_sink_opts_t, name),
};
static const bk_opts_type_t callback_sink_opts_type =
    BK_OPTS_TYPE(brook_callback_sink_opts_t, callback_sink_versions);

brook_err_t brook_sink_callback(brook_stream_t *in, brook_sink_fn fn, brook_sink_flush_fn flush,
                                void *opaque) {
  return brook_sink_callback_v2(in, fn, flush, opaque, NULL);
}

brook_err_t brook_sink_callback_v2(brook_stream_t *in, brook_sink_fn fn, brook_sink_flush_fn flush,
                                   void *opaque, const brook_callback_sink_opts_t *opts) {
  if (!in)
    return BROOK_ERR_INVALID_ARG; /* an upstream builder failed and recorded why */
  brook_callback_sink_opts_t o;
  brook_callback_sink_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &callback_sink_opts_type, &why))
    return bk_topology_fail(in->node->topo, BROOK_ERR_INVALID_ARG, "sink_callback: %s", why.text);
  if (o.name && !*o.name)
    return bk_topology_fail(in->node->topo, BROOK_ERR_INVALID_ARG, "sink_callback: empty name");
  brook_err_t err =
      bk_fn_op_add_named(in, &sink_cb_op, (bk_any_fn)fn, (bk_any_fn)flush, opaque, o.name, 0, NULL);
  if (err == BROOK_OK) /* the node just added */
    in->node->topo->nodes[in->node->topo->n_nodes - 1]->fuse_kind = BK_FUSE_SINK;
  return err;
}
