/* Fused lines (see plan.h): which nodes run record by record as one line inside a batch
 * (runtime/fuse.c runs them). A line is a chain of built-in callback operators (filter, map,
 * map_values, peek, key_by, and a callback sink at its end: core/fn_cfg.h). It ends at fan-out (a
 * stream with two consumers), at an operator that is not fusable (flat_map emits any number of
 * records per input, so its output is a batch of its own), at a node with more than one
 * input, at a sink, after BK_FUSE_MAX operators, and at a re-keying node (key_by, or a key
 * change before state: rekey.c) when its exchange crosses to other workers. Decided from the
 * topology alone, twice: for exchanges that cross workers, and for exchanges that stay on one (a
 * runtime of one worker). */
#include "plan/plan.h"

#include <string.h>

#include "core/alloc.h"
#include "core/fn_cfg.h"

static int fusable(const bk_node_t *n) {
  return n->kind == BK_NODE_OPERATOR && n->fuse_kind != BK_FUSE_NONE;
}

/* The node `n` hands its records to within a line, or NULL if a line ends at `n`. */
static const bk_node_t *fused_next(const bk_plan_t *p, const bk_node_t *n, int local_exchanges) {
  if (!fusable(n) || n->fuse_kind == BK_FUSE_SINK || n->n_outputs != 1 ||
      n->outputs[0].n_consumers != 1)
    return NULL;
  if (!local_exchanges && bk_plan_rekeys_node(p, n))
    return NULL;
  const bk_node_t *next = n->outputs[0].consumers[0].node;
  return fusable(next) && next->n_inputs == 1 ? next : NULL;
}

/* Sets nodes[].fuse_len (or fuse_len_local): `member` is scratch of p->n bytes, zeroed. */
static void plan_lines(bk_plan_t *p, int local_exchanges, unsigned char *member) {
  for (size_t i = 0; i < p->n; i++) { /* topological: a line's head comes first */
    unsigned char *len = local_exchanges ? &p->nodes[i].fuse_len_local : &p->nodes[i].fuse_len;
    *len = 0;
    if (member[i] || !fusable(p->order[i]))
      continue;
    size_t k = 1;
    for (const bk_node_t *n = p->order[i], *next;
         k < BK_FUSE_MAX && (next = fused_next(p, n, local_exchanges)); n = next, k++)
      member[p->pos[next->id]] = 1;
    *len = (unsigned char)k;
    p->any_fusable = 1;
  }
}

brook_err_t bk_plan_fuse(bk_plan_t *p, const brook_allocator_t *a) {
  unsigned char *member = bk_calloc(a, p->n ? p->n : 1, 1);
  if (!member)
    return BROOK_ERR_NOMEM;
  plan_lines(p, 0, member);
  memset(member, 0, p->n);
  plan_lines(p, 1, member);
  bk_free(a, member);
  return BROOK_OK;
}

const bk_node_t *bk_plan_fused_next(const bk_plan_t *p, const bk_node_t *n, int local_exchanges) {
  return fused_next(p, n, local_exchanges);
}
