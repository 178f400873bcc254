/* The shared builder of keyed stateful operators: options, validation message, config copy,
 * node. */
#include "ops/keyed_add.h"

#include <string.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "core/topology.h"

void brook_aggregate_opts_init_size(brook_aggregate_opts_t *opts, size_t size) {
  brook_aggregate_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t aggregate_versions[] = {
    BK_OPTS_VERSION(brook_aggregate_opts_t, name),
};
static const bk_opts_type_t aggregate_opts_type =
    BK_OPTS_TYPE(brook_aggregate_opts_t, aggregate_versions);

static void cfg_free(void *cfg, const brook_allocator_t *a) { bk_free(a, cfg); }

brook_stream_t *bk_keyed_add(brook_stream_t *in, const brook_operator_t *op, const void *cfg,
                             size_t cfg_size, const brook_aggregate_opts_t *opts,
                             const char *problem) {
  if (!in)
    return NULL;
  brook_topology_t *t = in->node->topo;
  brook_aggregate_opts_t o;
  brook_aggregate_opts_init(&o);
  bk_errmsg_t why;
  if (!problem && bk_opts_copy(&o, sizeof(o), opts, &aggregate_opts_type, &why))
    problem = why.text;
  if (problem) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "%s: %s", op->type_name, problem);
    return NULL;
  }
  void *copy = bk_malloc(&t->alloc, cfg_size);
  if (!copy) {
    bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", op->type_name);
    return NULL;
  }
  memcpy(copy, cfg, cfg_size);
  brook_stream_t *out = NULL;
  if (bk_topology_add_operator(&in, 1, op, copy, cfg_free, o.name, NULL, 1, &out) < 0)
    return NULL;
  out->node->stateful = BK_STATEFUL; /* its stores need a stable identity (plan/identity.c) */
  return out;
}
