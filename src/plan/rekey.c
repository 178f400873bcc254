/* Re-keying nodes (see plan.h): which nodes keep state, and which nodes' outputs cross an
 * exchange - key_by always, and a node that may change the key (bk_node_t.key_changing)
 * when a stateful node reads its output with no key_by, other key change or stateful node in
 * between (Kafka Streams repartitions before such a stateful operator the same way).
 *
 * A node is stateful when a built-in stateful builder marked it (aggregate, reduce, count,
 * dedupe, the windows), or when it is a custom operator with open() (the only place stores
 * are opened) or on_timer (timers are state): custom operators do not declare their stores,
 * so the plan assumes the worst of any that could open one.
 *
 * Only stateful nodes with outputs re-key what feeds them. A sink (no outputs: a custom
 * operator with n_outputs = 0) runs once per worker, never per task (placement.c), so a
 * repartition before it would bring it nothing; it is stateful all the same for its identity
 * (identity.c: a sink with a store needs a name once state is on disk). */
#include "plan/plan.h"

#include "core/alloc.h"

static int node_stateful(const bk_node_t *node) {
  if (node->kind != BK_NODE_OPERATOR)
    return 0;
  if (node->stateful == BK_STATE_UNDECLARED)
    return node->op.open != NULL || node->op.on_timer != NULL;
  return node->stateful == BK_STATEFUL;
}

/* Walks up from stateful node `to` (plan position) through key-preserving stateless nodes and
 * makes every key change it meets re-key. `seen[i] == to + 1`: visited in this walk; `stack`
 * has room for every node (each is pushed at most once per walk). */
static void walk_up(bk_plan_t *p, size_t to, size_t *seen, size_t *stack) {
  size_t top = 0;
  const bk_node_t *state = p->order[to];
  for (size_t k = 0; k < state->n_inputs; k++) {
    size_t i = p->pos[state->inputs[k]->node->id];
    if (seen[i] != to + 1) {
      seen[i] = to + 1;
      stack[top++] = i;
    }
  }
  while (top) {
    size_t i = stack[--top];
    bk_plan_node_t *pn = &p->nodes[i];
    const bk_node_t *n = pn->node;
    if (pn->rekeys == BK_REKEY_EXPLICIT)
      continue; /* key_by: partitioned by the key it set */
    if (n->kind == BK_NODE_OPERATOR && n->key_changing) {
      if (pn->rekeys == BK_REKEY_NONE) {
        pn->rekeys = BK_REKEY_AUTO;
        pn->rekey_for = state;
      }
      continue;
    }
    if (n->kind != BK_NODE_OPERATOR || pn->stateful)
      continue; /* a source, the error stream, or state keyed by its own input */
    for (size_t k = 0; k < n->n_inputs; k++) {
      size_t from = p->pos[n->inputs[k]->node->id];
      if (seen[from] != to + 1) {
        seen[from] = to + 1;
        stack[top++] = from;
      }
    }
  }
}

/* A count set (brook_stream_set_partitions) on a key change that is not repartitioned would
 * be ignored: refused instead, naming it. */
static brook_err_t check_counts(const bk_plan_t *p, bk_errmsg_t *msg) {
  for (size_t i = 0; i < p->n; i++) {
    const bk_node_t *n = p->order[i];
    if (n->partitions && !p->nodes[i].rekeys) {
      bk_errmsg_set(msg,
                    "stream_set_partitions: '%s' changes the key but no stateful operator "
                    "reads it (no key_by, other key change or state in between), so it is not "
                    "repartitioned and its partition count would be ignored; use key_by to "
                    "repartition anyway",
                    n->name);
      return BROOK_ERR_INVALID_ARG;
    }
  }
  return BROOK_OK;
}

brook_err_t bk_plan_rekeys(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg) {
  int any_change = 0;
  for (size_t i = 0; i < p->n; i++) {
    bk_plan_node_t *pn = &p->nodes[i];
    pn->stateful = node_stateful(pn->node);
    pn->rekeys = pn->node->rekeys ? BK_REKEY_EXPLICIT : BK_REKEY_NONE;
    pn->rekey_for = NULL;
    any_change |= pn->node->kind == BK_NODE_OPERATOR && pn->node->key_changing;
  }
  if (!any_change)
    return BROOK_OK; /* the common case: no walk, no memory */
  size_t *seen = bk_calloc(a, p->n, sizeof(*seen));
  size_t *stack = bk_calloc(a, p->n, sizeof(*stack));
  if (!seen || !stack) {
    bk_free(a, seen);
    bk_free(a, stack);
    bk_errmsg_set(msg, "runtime: out of memory compiling the topology");
    return BROOK_ERR_NOMEM;
  }
  for (size_t i = 0; i < p->n; i++)
    if (p->nodes[i].stateful && p->order[i]->n_outputs > 0) /* sinks: see the top */
      walk_up(p, i, seen, stack);
  bk_free(a, seen);
  bk_free(a, stack);
  return check_counts(p, msg);
}
