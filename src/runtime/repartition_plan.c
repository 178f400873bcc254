/* Turning a Kafka pipeline's exchanges into repartition topics (repartition_plan.h). */
#include "runtime/repartition_plan.h"

#include "core/alloc.h"

/* A source of sub-topology `sub` that can repartition, or NULL. */
static bk_node_t *repartitioning_source(const bk_plan_t *plan, size_t sub) {
  for (size_t i = 0; i < plan->n; i++) {
    bk_node_t *n = plan->order[i];
    if (n->kind == BK_NODE_SOURCE && plan->nodes[i].sub == sub && n->source_type->repartition)
      return n;
  }
  return NULL;
}

brook_err_t bk_repartition_plan(bk_plan_t *plan, brook_topology_t *t, size_t n_workers) {
  /* Each pass rewrites one exchange: the next one may only then be fed by a Kafka source. */
  for (size_t pass = 0; pass <= t->n_nodes; pass++) {
    bk_node_t *src = NULL, *from = NULL;
    for (size_t e = 0; e < plan->n_exchanges && !src; e++) {
      src = repartitioning_source(plan, plan->exchanges[e].from_sub);
      from = (bk_node_t *)plan->exchanges[e].from;
    }
    if (!src)
      return BROOK_OK;
    bk_errmsg_t why;
    brook_err_t err = src->source_type->repartition(src, from, n_workers, &why);
    bk_plan_free(plan, &t->alloc);
    if (err < 0) {
      bk_errmsg_set(&t->msg, "runtime_new: repartitioning after '%s': %s", from->name, why.text);
      return err;
    }
    if ((err = bk_plan_build(plan, t)))
      return err;
  }
  bk_plan_free(plan, &t->alloc);
  bk_errmsg_set(&t->msg, "runtime_new: repartition topics do not converge");
  return BROOK_ERR_STATE;
}
