/* Sub-topologies: the topology cut at key changes. Two nodes are in one sub-topology when a
 * stream connects them that does not leave a re-keying node (explicit or automatic: rekey.c); the
 * consumers of one re-keying node's outputs are one exchange target and so one sub-topology too
 * (Kafka Streams does the same with the consumers of one repartition topic). A sub-topology may
 * feed itself through an exchange (a key_by merged back with its own input). Sub-topologies are
 * numbered in the order their first node appears in the plan, so the numbering is stable for a
 * topology built the same way.
 *
 * Gathers (bk_plan_gathers) do not cut: a node placed once stays in its inputs'
 * sub-topology; only its inputs from other placements become gathers to its one instance. */
#include "plan/plan.h"

#include "core/alloc.h"

static size_t find(size_t *parent, size_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

static void join(size_t *parent, size_t x, size_t y) {
  x = find(parent, x);
  y = find(parent, y);
  if (x != y) /* the earlier node becomes the root: roots are first nodes in plan order */
    parent[x > y ? x : y] = x < y ? x : y;
}

/* Joins the nodes that run together (see the top). parent[] is indexed by plan position. */
static void join_connected(const bk_plan_t *p, size_t *parent) {
  for (size_t i = 0; i < p->n; i++) {
    const bk_node_t *node = p->order[i];
    for (size_t k = 0; k < node->n_inputs; k++) {
      const bk_node_t *from = node->inputs[k]->node;
      if (!bk_plan_rekeys_node(p, from))
        join(parent, p->pos[from->id], i);
    }
    if (!p->nodes[i].rekeys)
      continue;
    size_t first = SIZE_MAX;
    for (size_t o = 0; o < node->n_outputs; o++) {
      const brook_stream_t *s = &node->outputs[o];
      for (size_t c = 0; c < s->n_consumers; c++) {
        size_t to = p->pos[s->consumers[c].node->id];
        if (first == SIZE_MAX)
          first = to;
        join(parent, first, to);
      }
    }
  }
}

brook_err_t bk_plan_subtopologies(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg) {
  size_t *parent = bk_calloc(a, p->n, sizeof(*parent));
  size_t n_ports = 0; /* outputs of re-keying nodes: each one with consumers is an exchange */
  for (size_t i = 0; i < p->n; i++)
    n_ports += p->nodes[i].rekeys ? p->order[i]->n_outputs : 0;
  p->exchanges = bk_calloc(a, n_ports ? n_ports : 1, sizeof(*p->exchanges));
  if (!parent || !p->exchanges) {
    bk_free(a, parent);
    bk_errmsg_set(msg, "runtime: out of memory compiling the topology");
    return BROOK_ERR_NOMEM;
  }
  for (size_t i = 0; i < p->n; i++)
    parent[i] = i;
  join_connected(p, parent);
  /* Number the roots in plan order: a root is the first node of its sub-topology. */
  for (size_t i = 0; i < p->n; i++) {
    size_t root = find(parent, i);
    p->nodes[i].sub = root == i ? p->n_subs++ : p->nodes[root].sub;
  }
  p->subs = bk_calloc(a, p->n_subs ? p->n_subs : 1, sizeof(*p->subs));
  if (!p->subs) {
    bk_free(a, parent);
    bk_errmsg_set(msg, "runtime: out of memory compiling the topology");
    return BROOK_ERR_NOMEM;
  }
  for (size_t i = 0; i < p->n; i++) {
    p->subs[p->nodes[i].sub].n_nodes++;
    const bk_node_t *node = p->order[i];
    for (size_t o = 0; p->nodes[i].rekeys && o < node->n_outputs; o++) {
      if (!node->outputs[o].n_consumers)
        continue; /* an output nobody reads (allowed for all but one of a node's outputs) */
      bk_exchange_t *e = &p->exchanges[p->n_exchanges++];
      e->from = node;
      e->port = o;
      e->from_sub = p->nodes[i].sub;
      e->to_sub = p->nodes[p->pos[node->outputs[o].consumers[0].node->id]].sub;
      e->kind = p->nodes[i].rekeys;
    }
  }
  bk_free(a, parent);
  return BROOK_OK;
}

/* 1 if the input edge from `from` into node `to` (placed once) needs a gather: records of
 * `from` come from more than one instance (per task, per worker, or a key change, whose
 * output follows keys to every worker). From a once node they are already on worker 0. */
static int needs_gather(const bk_plan_t *p, const bk_node_t *from, const bk_node_t *to) {
  return p->nodes[p->pos[to->id]].place == BK_PLACE_ONCE &&
         (bk_plan_rekeys_node(p, from) || p->nodes[p->pos[from->id]].place != BK_PLACE_ONCE);
}

brook_err_t bk_plan_gathers(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg) {
  size_t n = 0;
  for (int fill = 0; fill < 2; fill++) { /* count, then fill in plan order */
    for (size_t i = 0; i < p->n; i++) {
      const bk_node_t *to = p->order[i];
      for (size_t k = 0; k < to->n_inputs; k++) {
        const brook_stream_t *in = to->inputs[k];
        if (!needs_gather(p, in->node, to))
          continue;
        if (fill)
          p->gathers[p->n_gathers++] = (bk_gather_t){in->node, in->port, to, k};
        else
          n++;
      }
    }
    if (!fill && !(p->gathers = bk_calloc(a, n ? n : 1, sizeof(*p->gathers)))) {
      bk_errmsg_set(msg, "runtime: out of memory compiling the topology");
      return BROOK_ERR_NOMEM;
    }
  }
  return BROOK_OK;
}
