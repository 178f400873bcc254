/* Repartition topics in the plan: in a Kafka pipeline every exchange (plan.exchanges: the
 * output of a re-keying node, an explicit key_by or an automatic repartition) whose
 * sub-topology is fed by a source that can repartition (the Kafka source type's
 * `repartition`, core/topology.h) becomes an internal topic: the re-keying node feeds a
 * repartition sink and the exchange's consumers read a source of that topic, in the same
 * consumer group, with tasks of their own (task_ids.h). Exchanges of pipelines without Kafka
 * stay in-process (exchange.c). */
#ifndef BROOK_RUNTIME_REPARTITION_PLAN_H
#define BROOK_RUNTIME_REPARTITION_PLAN_H

#include <brook/error.h>

#include "core/topology.h"
#include "plan/plan.h"

/* Rewrites `t` until no exchange of `*plan` is fed by a repartitioning source (a chain of key
 * changes is rewritten one after the other: a sub-topology fed by a repartition topic is a
 * Kafka pipeline too), rebuilding `*plan` after each rewrite. BROOK_OK; or an error with the
 * reason in t->msg (the plan is then freed). Before the topology is frozen (runtime_new). */
brook_err_t bk_repartition_plan(bk_plan_t *plan, brook_topology_t *t, size_t n_workers);

#endif
