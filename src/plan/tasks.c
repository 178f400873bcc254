/* Task counts of sub-topologies (see plan.h). A source's split count comes from its options
 * or, for a partitioned source (Kafka), from the run (bk_plan_resolve_source). A sub-topology
 * without a count set on an exchange into it takes the largest count among its inputs: its
 * sources' splits and the task counts of the sub-topologies that feed it through exchanges
 * (Kafka Streams sizes a repartition topic the same way, from its upstream topics). Counts
 * known only at run time are carried as the list of sources they inherit from. */
#include "plan/plan.h"

#include "core/alloc.h"
#include "core/murmur2.h"

static uint32_t source_splits(const bk_node_t *node) {
  if (node->splits)
    return node->splits;
  return node->source_type->partitioned ? 0 : 1;
}

static int has(const bk_subtopology_t *s, size_t src) {
  for (size_t k = 0; k < s->n_inherit; k++)
    if (s->inherit[k] == src)
      return 1;
  return 0;
}

/* Adds source `src` to what `s` inherits; returns 1 if added, 0 if there, -1 on NOMEM. Each
 * list has room for every source (allocated once: n_sources entries). */
static int add_inherit(bk_subtopology_t *s, size_t src) {
  if (has(s, src))
    return 0;
  s->inherit[s->n_inherit++] = src;
  return 1;
}

static brook_err_t set_explicit(bk_plan_t *p, const bk_exchange_t *e, bk_errmsg_t *msg) {
  bk_subtopology_t *s = &p->subs[e->to_sub];
  uint32_t n = e->from->partitions;
  if (s->explicit_by && s->explicit_by->partitions != n) {
    bk_errmsg_set(msg,
                  "sub-topology %zu is fed by key changes '%s' (%u partitions) and '%s' (%u "
                  "partitions): streams merged after key changes need the same partition count",
                  e->to_sub, s->explicit_by->name, (unsigned)s->explicit_by->partitions,
                  e->from->name, (unsigned)n);
    return BROOK_ERR_INVALID_ARG;
  }
  s->explicit_by = e->from;
  return BROOK_OK;
}

/* A source in a sub-topology whose count was set must fit in it: partition i is task i. */
static brook_err_t check_fits(const bk_plan_t *p, size_t i, bk_errmsg_t *msg) {
  const bk_subtopology_t *s = &p->subs[p->nodes[i].sub];
  if (!s->explicit_by || p->splits[i] <= s->explicit_by->partitions)
    return BROOK_OK;
  bk_errmsg_set(msg,
                "source '%s' has %u splits but its sub-topology %zu has %u tasks (set on '%s'): "
                "each split is a task, so set at least %u partitions",
                p->order[i]->name, (unsigned)p->splits[i], p->nodes[i].sub,
                (unsigned)s->explicit_by->partitions, s->explicit_by->name, (unsigned)p->splits[i]);
  return BROOK_ERR_INVALID_ARG;
}

static void resolve_counts(bk_plan_t *p) {
  for (size_t k = 0; k < p->n_subs; k++) {
    bk_subtopology_t *s = &p->subs[k];
    if (s->explicit_by) {
      s->tasks = s->explicit_by->partitions;
      continue;
    }
    uint32_t n = s->fixed ? s->fixed : 1;
    for (size_t j = 0; j < s->n_inherit && n; j++) {
      uint32_t m = p->splits[s->inherit[j]];
      n = m == 0 ? 0 : m > n ? m : n; /* 0: a source not counted yet */
    }
    s->tasks = n;
  }
}

/* Pushes counts along exchanges until nothing changes (monotone: max and set union). */
static void propagate(bk_plan_t *p) {
  for (int changed = 1; changed;) {
    changed = 0;
    for (size_t k = 0; k < p->n_exchanges; k++) {
      const bk_exchange_t *e = &p->exchanges[k];
      bk_subtopology_t *from = &p->subs[e->from_sub], *to = &p->subs[e->to_sub];
      if (to->explicit_by || from == to)
        continue;
      uint32_t fixed = from->explicit_by ? from->explicit_by->partitions : from->fixed;
      if (fixed > to->fixed) {
        to->fixed = fixed;
        changed = 1;
      }
      for (size_t j = 0; !from->explicit_by && j < from->n_inherit; j++)
        changed |= add_inherit(to, from->inherit[j]) > 0;
    }
  }
}

brook_err_t bk_plan_tasks(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg) {
  brook_err_t err;
  for (size_t k = 0; k < p->n_subs; k++) {
    p->subs[k].inherit = bk_calloc(a, p->n_sources ? p->n_sources : 1, sizeof(size_t));
    if (!p->subs[k].inherit) {
      bk_errmsg_set(msg, "runtime: out of memory compiling the topology");
      return BROOK_ERR_NOMEM;
    }
  }
  for (size_t k = 0; k < p->n_exchanges; k++)
    if (p->exchanges[k].from->partitions && (err = set_explicit(p, &p->exchanges[k], msg)))
      return err;
  for (size_t i = 0; i < p->n; i++) {
    const bk_node_t *node = p->order[i];
    bk_subtopology_t *s = &p->subs[p->nodes[i].sub];
    if (node->kind == BK_NODE_ERRORS && s->fixed < 1)
      s->fixed = 1; /* fed by every worker, partitioned by nothing */
    if (node->kind != BK_NODE_SOURCE)
      continue;
    p->splits[i] = source_splits(node);
    if ((err = check_fits(p, i, msg)))
      return err;
    if (p->splits[i] == 0 && !s->explicit_by)
      add_inherit(s, i);
    else if (p->splits[i] > s->fixed)
      s->fixed = p->splits[i];
  }
  propagate(p);
  resolve_counts(p);
  return BROOK_OK;
}

brook_err_t bk_plan_resolve_source(bk_plan_t *p, size_t i, uint32_t n, bk_errmsg_t *msg) {
  if (i >= p->n || p->order[i]->kind != BK_NODE_SOURCE || n == 0) {
    bk_errmsg_set(msg, "plan: no source at %zu or no splits (%u)", i, (unsigned)n);
    return BROOK_ERR_INVALID_ARG;
  }
  if (p->splits[i] && p->splits[i] != n) {
    bk_errmsg_set(msg, "source '%s' had %u splits, now %u: counts cannot change while running",
                  p->order[i]->name, (unsigned)p->splits[i], (unsigned)n);
    return BROOK_ERR_INVALID_ARG;
  }
  uint32_t before = p->splits[i];
  p->splits[i] = n;
  brook_err_t err = check_fits(p, i, msg);
  if (err) {
    p->splits[i] = before;
    return err;
  }
  resolve_counts(p);
  return BROOK_OK;
}

uint32_t bk_plan_exchange_task(const bk_plan_t *p, size_t sub, const void *key, size_t key_len) {
  return bk_murmur2_partition(key, key_len, p->subs[sub].tasks);
}
