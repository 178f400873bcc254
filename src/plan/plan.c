/* Compiles a topology into a physical plan (see plan.h): the execution order, then one step
 * per concern (re-keying nodes, sub-topologies, placement, task counts, identities, fused lines),
 * each in its own file. */
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
  p->nodes = bk_calloc(a, p->n, sizeof(*p->nodes));
  p->splits = bk_calloc(a, p->n, sizeof(*p->splits));
  if (!p->order || !p->pos || !p->nodes || !p->splits) {
    err = BROOK_ERR_NOMEM;
    goto nomem;
  }
  if ((err = bk_topology_sort(t, p->order)))
    goto fail;
  for (size_t i = 0; i < p->n; i++) {
    p->pos[p->order[i]->id] = i;
    p->nodes[i].node = p->order[i];
    if (p->order[i]->kind == BK_NODE_SOURCE)
      p->n_sources++;
  }
  if ((err = bk_plan_rekeys(p, a, &t->msg)) || (err = bk_plan_subtopologies(p, a, &t->msg)))
    goto fail;
  bk_plan_place(p);
  if ((err = bk_plan_gathers(p, a, &t->msg)) || (err = bk_plan_tasks(p, a, &t->msg)) ||
      (err = bk_plan_identities(p, a, &t->msg)))
    goto fail;
  if ((err = bk_plan_fuse(p, a)))
    goto nomem;
  return BROOK_OK;
nomem:
  bk_errmsg_set(&t->msg, "runtime: out of memory compiling the topology");
fail:
  bk_plan_free(p, a);
  return err;
}

void bk_plan_free(bk_plan_t *p, const brook_allocator_t *a) {
  for (size_t i = 0; p->nodes && i < p->n; i++)
    bk_free(a, p->nodes[i].identity);
  for (size_t s = 0; p->subs && s < p->n_subs; s++)
    bk_free(a, p->subs[s].inherit);
  bk_free(a, p->nodes);
  bk_free(a, p->splits);
  bk_free(a, p->subs);
  bk_free(a, p->exchanges);
  bk_free(a, p->gathers);
  bk_free(a, p->order);
  bk_free(a, p->pos);
  memset(p, 0, sizeof(*p));
}
