/* Placement: where each node's instances live.
 *
 * - A source runs per task: each task reads its own splits (a Kafka partition, a generator
 *   split); a source that cannot be split has one split and so one task. A partitioned
 *   source - Kafka, or a generator or push source whose splits are partitioned by key
 *   (partitioned_by_key, brook/source.h: split k holds the keys with murmur2(key) % splits
 *   == k, as partition k of a keyed topic does) - keeps its keys apart per split, so what
 *   follows it up to the first key change sees one task's keys only: partition_local, one
 *   instance per task on the split's worker, and no exchange is needed before a keyed
 *   operator.
 * - The error stream runs per worker: each worker routes the records that fail on it.
 * - A sink runs per worker: each worker owns its sink instances (and, for Kafka, its
 *   producer), whatever feeds them; a sink that must be one (a line sink) runs once.
 * - Any other operator runs where its inputs put it: per task when every input is per task
 *   or crosses an exchange (after a key change records arrive per target task); else per
 *   worker if stateless (a map after the error stream) or once if it keeps state (its keys
 *   arrive on every worker with no exchange to bring them together); once if any input runs
 *   once.
 *
 * "Key change" here is any re-keying node, explicit (key_by) or automatic (rekey.c); which
 * nodes are stateful is rekey.c's decision too. */
#include "plan/plan.h"

/* Where the records of input `k` of `node` come from. */
static bk_placement_t input_place(const bk_plan_t *p, const bk_node_t *node, size_t k) {
  const bk_node_t *from = node->inputs[k]->node;
  return bk_plan_rekeys_node(p, from) ? BK_PLACE_TASK : p->nodes[p->pos[from->id]].place;
}

static bk_placement_t operator_place(const bk_plan_t *p, const bk_node_t *node, int stateful) {
  if (node->n_outputs == 0 && !node->per_task_sink)
    return node->single_instance ? BK_PLACE_ONCE : BK_PLACE_WORKER;
  bk_placement_t worst = BK_PLACE_TASK;
  for (size_t k = 0; k < node->n_inputs; k++) {
    bk_placement_t in = input_place(p, node, k);
    if (in > worst)
      worst = in;
  }
  if (worst == BK_PLACE_WORKER && stateful)
    return BK_PLACE_ONCE;
  return worst;
}

/* Per task, and every path into it starts at a partitioned source and crosses no exchange:
 * the node sees the records of one input partition. */
static int partition_local(const bk_plan_t *p, const bk_node_t *node, bk_placement_t place) {
  if (place != BK_PLACE_TASK)
    return 0;
  if (node->kind == BK_NODE_SOURCE)
    return node->source_type->partitioned;
  for (size_t k = 0; k < node->n_inputs; k++) {
    const bk_node_t *from = node->inputs[k]->node;
    if (bk_plan_rekeys_node(p, from) || !p->nodes[p->pos[from->id]].partition_local)
      return 0;
  }
  return node->n_inputs > 0;
}

void bk_plan_place(bk_plan_t *p) {
  for (size_t i = 0; i < p->n; i++) { /* inputs come before their consumers */
    bk_plan_node_t *pn = &p->nodes[i];
    const bk_node_t *node = pn->node;
    switch (node->kind) {
    case BK_NODE_SOURCE:
      pn->place = BK_PLACE_TASK;
      break;
    case BK_NODE_ERRORS:
      pn->place = BK_PLACE_WORKER;
      break;
    case BK_NODE_OPERATOR:
      pn->place = operator_place(p, node, pn->stateful);
      break;
    }
    pn->partition_local = partition_local(p, node, pn->place);
    p->any_partition_local |= pn->partition_local;
  }
}
