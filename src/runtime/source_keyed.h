/* In-process sources partitioned by key (the generator's and the push source's
 * partitioned_by_key, brook/source.h): like the partitions of a keyed Kafka topic, split k
 * holds only the keys with murmur2(key) % splits == k, so each split is a task (task id =
 * split number) and the plan runs the nodes after the source per task, with no exchange
 * (plan/placement.c: such a source has a partitioned source type). The source keeps the
 * promise honest: every record is verified before it reaches its task. Loop thread of the
 * worker running the split. */
#ifndef BROOK_RUNTIME_SOURCE_KEYED_H
#define BROOK_RUNTIME_SOURCE_KEYED_H

#include <stddef.h>

#include "runtime/runtime_impl.h"

/* Whether `src` is an in-process source partitioned by key: a partitioned source type whose
 * split count is known from its options (a Kafka source's is not, and Kafka is not verified:
 * its producers' partitioner is theirs). */
int bk_keyed_source(const bk_src_t *src);

/* BROOK_OK, or BROOK_ERR_INVALID_ARG with *msg set ("<what>: source 'x' has n splits ...")
 * if `src` is partitioned by key and has no split `split` (the test driver's pushes,
 * assignments and revocations: its splits are its partitions). */
brook_err_t bk_keyed_check_split(const bk_src_t *src, size_t split, bk_errmsg_t *msg,
                                 const char *what);

/* This worker's split `local` (global split number `split`) starts: it becomes a watermark
 * split feeding task `split`, which is created, opened and restored now (bk_task_acquire,
 * on_task_state reports it). The task closes with the others at the end of the run. Returns
 * BROOK_OK or the failure (recorded in the run's status). */
brook_err_t bk_keyed_split_start(bk_src_t *src, size_t local, size_t split);

/* This worker's split `local` (global `split`) ended naturally and its last batch has passed
 * through the pipeline (call it from batch_done, outside any batch): its watermark goes to
 * the maximum, so its task's windows and event-time timers fire now, not when the whole
 * source ends; then its task's operators get end_of_input and the task is released
 * (flushed, SUSPENDED, CLOSED with reason "split ended"). Nothing happens once the run is
 * stopping or failed: a stop leaves windows unfired, and the tasks close with the run. */
void bk_keyed_split_end(bk_src_t *src, size_t local, size_t split);

/* Checks that each of recs[0..*n) belongs to split `split` of the source's `n_splits`. A
 * record that does not follows the error policy (BROOK_ERR_INVALID_ARG, the message names the
 * source, the split, the key's length and its owner) and is removed: *n shrinks, the others
 * keep their order. Returns BROOK_OK, or the error that fails the run (the records before the
 * failing one stay). */
brook_err_t bk_keyed_verify(bk_src_t *src, size_t split, brook_record_t *recs, size_t *n);

/* The records now in the source's port, or `recs` about to be emitted, are split `split`'s:
 * verified, then the batch runs in task `split` (bk_src_enter_task; the runtime leaves it at
 * the end of the batch). With a port (`recs` NULL) the port's count shrinks to the verified
 * records; with `recs` they are compacted in place and *n shrinks. If the task is not running
 * (its start failed) nothing is delivered: *n / the port's count become 0. */
brook_err_t bk_keyed_batch(bk_src_t *src, size_t split, brook_record_t *recs, size_t *n);

#endif
