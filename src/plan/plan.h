/* The plan: a validated topology compiled for execution. Nodes are placed in topological
 * order and every stream becomes a port with direct-call targets, so a linear chain of
 * operators runs as nested direct calls over one batch (fusion) with no queue between them.
 * Queues appear only where threads meet (push sources today, worker threads later). */
#ifndef BROOK_PLAN_PLAN_H
#define BROOK_PLAN_PLAN_H

#include <stddef.h>

#include "core/topology.h"

typedef struct bk_plan {
  bk_node_t **order; /* all nodes, sources first, every node after its inputs */
  size_t n;
  size_t *pos; /* node id -> index in order */
  size_t n_sources;
} bk_plan_t;

/* Validates `t` and compiles it. On error the topology's message says why. */
brook_err_t bk_plan_build(bk_plan_t *plan, brook_topology_t *t);
void bk_plan_free(bk_plan_t *plan, const brook_allocator_t *a);

#endif
