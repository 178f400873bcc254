/* Public builders for custom operators: brook_operator_add and brook_apply. */
#include <brook/operator.h>

#include <string.h>

#include "core/opts.h"
#include "core/topology.h"

void brook_operator_opts_init_size(brook_operator_opts_t *opts, size_t size) {
  brook_operator_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.n_outputs = 1;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t operator_opts_versions[] = {
    BK_OPTS_VERSION(brook_operator_opts_t, n_outputs),
    BK_OPTS_VERSION(brook_operator_opts_t, key_preserving),
};
static const bk_opts_type_t operator_opts_type =
    BK_OPTS_TYPE(brook_operator_opts_t, operator_opts_versions);

brook_err_t brook_operator_add(brook_stream_t *const *inputs, size_t n_inputs,
                               const brook_operator_t *op, void *opaque,
                               const brook_operator_opts_t *opts, brook_stream_t **outputs) {
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &operator_opts_type, &why)) {
    if (inputs && n_inputs && inputs[0])
      return bk_topology_fail(inputs[0]->node->topo, BROOK_ERR_INVALID_ARG, "operator_add: %s",
                              why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  if (!inputs || n_inputs == 0)
    return BROOK_ERR_INVALID_ARG; /* no topology to record it in; documented */
  brook_topology_t *t = inputs[0] ? inputs[0]->node->topo : NULL;
  size_t before = t ? t->n_nodes : 0;
  brook_err_t err = bk_topology_add_operator(inputs, n_inputs, op, opaque, NULL, o.name, o.config,
                                             o.n_outputs, outputs);
  if (err == BROOK_OK && t->n_nodes > before) {
    t->nodes[before]->stateful = BK_STATE_UNDECLARED; /* the plan looks at its callbacks */
    t->nodes[before]->key_changing = !o.key_preserving;
  }
  return err;
}

brook_stream_t *brook_apply(brook_stream_t *in, const brook_operator_t *op, void *opaque) {
  brook_stream_t *out = NULL;
  if (bk_topology_add_operator(&in, 1, op, opaque, NULL, NULL, NULL, 1, &out))
    return NULL;
  out->node->stateful = BK_STATE_UNDECLARED;
  out->node->key_changing = 1;
  return out;
}
