/* Task ids when several sub-topologies run tasks (a Kafka pipeline with repartition topics:
 * the input's sub-topology and each one reading a repartition topic), like Kafka Streams'
 * task ids "<sub>_<partition>" ("0_3": partition 3 of sub-topology 0).
 *
 * A task is identified by one int32_t (bk_task_t.id, the w->task_by_id index, on_task_state's
 * id, brook_ctx_task): id = partition * n_task_subs + rank, where rank numbers the
 * sub-topologies that run tasks (those with partition_local nodes, plan/placement.c) in plan
 * order. With one such sub-topology (every pipeline without a repartition topic) the id is the
 * partition, as before; with two, input partition 3 is task 6 and repartition partition 3 is
 * task 7. Ids stay dense (the task map is an array). A task holds instances of its own
 * sub-topology's nodes only (task.c). */
#ifndef BROOK_RUNTIME_TASK_IDS_H
#define BROOK_RUNTIME_TASK_IDS_H

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>

typedef struct brook_runtime brook_runtime_t;
typedef struct bk_src bk_src_t;

/* Numbers the sub-topologies that run tasks (rt->task_sub_rank, n_task_subs), after
 * bk_tasks_plan. BROOK_ERR_NOMEM. */
brook_err_t bk_task_ids_plan(brook_runtime_t *rt);

/* bk_src_task_id: services.h. */

/* The sub-topology (plan numbering) and partition of task `id`. */
size_t bk_task_sub(const brook_runtime_t *rt, int32_t id);
int32_t bk_task_partition(const brook_runtime_t *rt, int32_t id);

/* 1 if plan node `i` belongs to task `id`'s sub-topology. */
int bk_task_has_node(const brook_runtime_t *rt, int32_t id, size_t i);

/* The task's name as Kafka Streams writes task ids, "<sub>_<partition>" ("0_3"; sub is the
 * plan's sub-topology number), for state directories and messages: writes at most `size`
 * bytes with a NUL, returns the full length (snprintf). A task's state directory must be
 * named by this, not by its id: with repartition topics the id is not the partition. */
int bk_task_id_name(const brook_runtime_t *rt, int32_t id, char *buf, size_t size);

#endif
