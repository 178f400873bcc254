/* Task ids across sub-topologies (task_ids.h). */
#include "runtime/task_ids.h"

#include <stdio.h>

#include "core/alloc.h"
#include "runtime/runtime_impl.h"

brook_err_t bk_task_ids_plan(brook_runtime_t *rt) {
  const bk_plan_t *plan = &rt->plan;
  rt->n_task_subs = 1;
  if (!rt->per_task)
    return BROOK_OK;
  size_t n = plan->n_subs ? plan->n_subs : 1;
  if (!(rt->task_sub_rank = bk_calloc(&rt->alloc, n, sizeof(*rt->task_sub_rank))) ||
      !(rt->task_rank_sub = bk_calloc(&rt->alloc, n, sizeof(*rt->task_rank_sub))))
    return BROOK_ERR_NOMEM;
  unsigned char *runs = bk_calloc(&rt->alloc, n, 1);
  if (!runs)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < plan->n; i++)
    runs[plan->nodes[i].sub] |= rt->per_task[i];
  uint32_t rank = 0;
  for (size_t s = 0; s < n; s++) {
    rt->task_sub_rank[s] = runs[s] ? rank : UINT32_MAX;
    if (runs[s])
      rt->task_rank_sub[rank++] = (uint32_t)s;
  }
  bk_free(&rt->alloc, runs);
  rt->n_task_subs = rank ? rank : 1;
  return BROOK_OK;
}

int32_t bk_src_task_id(const bk_src_t *src, int32_t partition) {
  const brook_runtime_t *rt = src->rt;
  if (rt->n_task_subs <= 1 || partition < 0)
    return partition;
  size_t sub = rt->plan.nodes[rt->plan.pos[src->home->node->id]].sub;
  return partition * (int32_t)rt->n_task_subs + (int32_t)rt->task_sub_rank[sub];
}

size_t bk_task_sub(const brook_runtime_t *rt, int32_t id) {
  if (!rt->task_rank_sub)
    return 0;
  return rt->task_rank_sub[(uint32_t)id % rt->n_task_subs];
}

int32_t bk_task_partition(const brook_runtime_t *rt, int32_t id) {
  return id < 0 ? id : id / (int32_t)rt->n_task_subs;
}

int bk_task_has_node(const brook_runtime_t *rt, int32_t id, size_t i) {
  return rt->n_task_subs <= 1 || rt->plan.nodes[i].sub == bk_task_sub(rt, id);
}

int bk_task_id_name(const brook_runtime_t *rt, int32_t id, char *buf, size_t size) {
  return snprintf(buf, size, "%zu_%d", bk_task_sub(rt, id), (int)bk_task_partition(rt, id));
}

int32_t bk_ctx_task_partition(const brook_ctx_t *ctx) {
  return bk_task_partition(ctx->rt, ctx->task);
}
