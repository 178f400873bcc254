/* Compiles a topology into an execution order (see plan.h). */
#include "plan/plan.h"

#include <string.h>

#include "core/alloc.h"

brook_err_t bk_plan_build(bk_plan_t *p, brook_topology_t *t) {
  memset(p, 0, sizeof(*p));
  brook_err_t err = brook_topology_validate(t);
  if (err)
    return err;
  const brook_allocator_t *a = &t->alloc;
  p->n = t->n_nodes;
  p->order = bk_calloc(a, p->n, sizeof(*p->order));
  p->pos = bk_calloc(a, p->n, sizeof(*p->pos));
  if (!p->order || !p->pos) {
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
  return BROOK_OK;
}

void bk_plan_free(bk_plan_t *p, const brook_allocator_t *a) {
  bk_free(a, p->order);
  bk_free(a, p->pos);
  memset(p, 0, sizeof(*p));
}
