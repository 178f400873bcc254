/* Tasks and their life cycle. Downstream of a partitioned source (Kafka), up to the first
 * key_by, the pipeline runs as one task per input partition (operator.h): the task holds its
 * operators' state, stores, timers and watermark, and moves with its partition. Like a Kafka
 * Streams task it goes through these states:
 *
 *   CREATED    its partition was assigned; its operator instances exist but are not open.
 *              The assignment is only recorded inside the consumer's rebalance callback: the
 *              task is created, restored and opened on the next turn of the loop, before any
 *              record of its partition is processed (none is lost or reordered).
 *   RESTORING  its state is being restored (from a local persistent store, or a snapshot in
 *              the test driver) before it processes anything. With nothing to restore it
 *              passes through at once; the change is reported all the same.
 *   RUNNING    its operators are open and its partition's records are processed.
 *   SUSPENDED  its partition was revoked (or the run is ending): its operators were flushed
 *              and its input committed (README, "Commits"); it processes nothing more.
 *   CLOSED     its operators are closed and its state is freed. Final.
 *
 * A failed run goes RUNNING -> SUSPENDED -> CLOSED too, without flush or commit (the reason
 * says so). Register a brook_task_state_cb in the runtime options to see every change. */
#ifndef BROOK_TASK_H
#define BROOK_TASK_H

#include <brook/export.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum brook_task_state {
  BROOK_TASK_CREATED = 0,
  BROOK_TASK_RESTORING = 1,
  BROOK_TASK_RUNNING = 2,
  BROOK_TASK_SUSPENDED = 3,
  BROOK_TASK_CLOSED = 4
} brook_task_state_t;

/* "CREATED", "RESTORING", ...; "UNKNOWN" for any other value. Static string; any thread. */
BROOK_API const char *brook_task_state_name(int state);

/* A task changed state: `task` is its id (the input partition number; in a pipeline with
 * repartition topics, where the input's sub-topology and each one reading a repartition topic
 * run tasks of their own, it is partition * n + k for the k-th of those n sub-topologies in
 * plan order, e.g. with one repartition input partition 3 is task 6 and repartition
 * partition 3 task 7, Kafka Streams' "0_3" and "1_3"), `old_state` and
 * `new_state` are brook_task_state_t values (a new task reports CREATED with old_state
 * BROOK_TASK_CREATED), `reason` a short text saying why ("partition assigned", "partition
 * revoked", "end of input", "stopped", "the run failed", ...), borrowed for the call. Called on
 * the runtime's loop thread, in the order the changes happen; it must not call back into the
 * runtime except brook_runtime_stop. */
typedef void (*brook_task_state_cb)(int32_t task, int old_state, int new_state, const char *reason,
                                    void *opaque);

#ifdef __cplusplus
}
#endif
#endif
