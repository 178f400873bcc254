/* Compiles a topology into an execution order (see plan.h). */
#include "plan/plan.h"

#include <string.h>

#include "core/alloc.h"

static void mark_after_errors(bk_plan_t *p) {
  /* order is topological, so one forward pass propagates the mark. */
  for (size_t i = 0; i < p->n; i++) {
    bk_node_t *node = p->order[i];
    if (node->kind == BK_NODE_ERRORS)
      p->after_errors[node->id] = 1;
    if (!p->after_errors[node->id])
      continue;
    for (size_t o = 0; o < node->n_outputs; o++)
      for (size_t c = 0; c < node->outputs[o].n_consumers; c++)
        p->after_errors[node->outputs[o].consumers[c].node->id] = 1;
  }
}

brook_err_t bk_plan_build(bk_plan_t *p, brook_topology_t *t) {
  memset(p, 0, sizeof(*p));
  brook_err_t err = brook_topology_validate(t);
  if (err)
    return err;
  const brook_allocator_t *a = &t->alloc;
  p->n = t->n_nodes;
  p->order = bk_calloc(a, p->n, sizeof(*p->order));
  p->pos = bk_calloc(a, p->n, sizeof(*p->pos));
  p->after_errors = bk_calloc(a, p->n, 1);
  if (!p->order || !p->pos || !p->after_errors) {
    bk_plan_free(p, a);
    bk_errmsg_set(&t->msg, "runtime: out of memory compiling the topology");
    return BROOK_ERR_NOMEM;
  }
  if ((err = bk_topology_sort(t, p->order))) {
    bk_plan_free(p, a);
    return err;
  }
  for (size_t i = 0; i < p->n; i++) {
    p->pos[p->order[i]->id] = i;
    if (p->order[i]->kind == BK_NODE_SOURCE)
      p->n_sources++;
  }
  mark_after_errors(p);
  return BROOK_OK;
}

void bk_plan_free(bk_plan_t *p, const brook_allocator_t *a) {
  bk_free(a, p->order);
  bk_free(a, p->pos);
  bk_free(a, p->after_errors);
  memset(p, 0, sizeof(*p));
}
