/* Topology validation: build errors, dangling streams and operators, cycles, a ROUTE policy
 * without an error stream; the warning about an error stream no policy feeds. Also the
 * topological sort the planner uses. */
#include "core/topology.h"

#include "core/alloc.h"

/* Kahn's algorithm over node ids; on a cycle, names one node on it. */
brook_err_t bk_topology_sort(brook_topology_t *t, bk_node_t **order) {
  size_t n = t->n_nodes, head = 0, tail = 0;
  size_t *indeg = bk_calloc(&t->alloc, n ? n : 1, sizeof(*indeg));
  if (!indeg) {
    bk_errmsg_set(&t->msg, "validate: out of memory");
    return BROOK_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++)
    indeg[i] = t->nodes[i]->n_inputs;
  for (size_t i = 0; i < n; i++)
    if (indeg[i] == 0)
      order[tail++] = t->nodes[i];
  while (head < tail) {
    bk_node_t *node = order[head++];
    for (size_t p = 0; p < node->n_outputs; p++) {
      brook_stream_t *s = &node->outputs[p];
      for (size_t c = 0; c < s->n_consumers; c++)
        if (--indeg[s->consumers[c].node->id] == 0)
          order[tail++] = s->consumers[c].node;
    }
  }
  brook_err_t err = BROOK_OK;
  if (tail < n) {
    const char *culprit = "?";
    for (size_t i = 0; i < n; i++)
      if (indeg[i]) {
        culprit = t->nodes[i]->name;
        break;
      }
    bk_errmsg_set(&t->msg, "topology has a cycle through '%s'", culprit);
    err = BROOK_ERR_CYCLE;
  }
  bk_free(&t->alloc, indeg);
  return err;
}

brook_err_t brook_topology_validate(brook_topology_t *t) {
  if (!t)
    return BROOK_ERR_INVALID_ARG;
  if (t->build_err) {
    bk_errmsg_set(&t->msg, "topology has build errors; first: %s", t->build_msg.text);
    return BROOK_ERR_BUILD;
  }
  size_t sources = 0;
  for (size_t i = 0; i < t->n_nodes; i++) {
    bk_node_t *node = t->nodes[i];
    if (node->kind == BK_NODE_SOURCE)
      sources++;
    if (node->kind == BK_NODE_OPERATOR && node->n_inputs == 0) {
      bk_errmsg_set(&t->msg, "operator '%s' has no input", node->name);
      return BROOK_ERR_DANGLING;
    }
    for (size_t p = 0; p < node->n_outputs; p++) {
      if (node->outputs[p].n_consumers == 0) {
        if (node->n_outputs == 1)
          bk_errmsg_set(&t->msg, "stream of '%s' is not consumed (add an operator or a sink)",
                        node->name);
        else
          bk_errmsg_set(&t->msg, "output %zu of '%s' is not consumed (add an operator or a sink)",
                        p, node->name);
        return BROOK_ERR_DANGLING;
      }
    }
  }
  if (sources == 0) {
    bk_errmsg_set(&t->msg, "topology has no source");
    return BROOK_ERR_DANGLING;
  }
  if (t->error_policy == BROOK_ON_ERROR_ROUTE && !t->errors_node) {
    bk_errmsg_set(&t->msg, "error policy ROUTE needs a consumer of brook_error_stream()");
    return BROOK_ERR_DANGLING;
  }
  bk_node_t **order = bk_calloc(&t->alloc, t->n_nodes, sizeof(*order));
  if (!order) {
    bk_errmsg_set(&t->msg, "validate: out of memory");
    return BROOK_ERR_NOMEM;
  }
  brook_err_t err = bk_topology_sort(t, order);
  bk_free(&t->alloc, order);
  return err;
}

/* Not an error: the same topology code is commonly run under a policy chosen per
 * deployment (FAIL in tests, ROUTE in production; brook's own tests do it), so refusing it
 * would force the error branch to be built conditionally. */
const char *bk_topology_warning(const brook_topology_t *t, bk_errmsg_t *buf) {
  if (!t->errors_node || t->error_policy == BROOK_ON_ERROR_ROUTE)
    return NULL;
  bk_errmsg_set(buf,
                "brook_error_stream() is used but the error policy is %s: no record will reach "
                "it (set BROOK_ON_ERROR_ROUTE to route failed records there)",
                t->error_policy == BROOK_ON_ERROR_SKIP ? "SKIP (failed records are dropped)"
                                                       : "FAIL (a failed record stops the run)");
  return buf->text;
}
