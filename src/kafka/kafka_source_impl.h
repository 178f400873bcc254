/* The Kafka source's state and the functions its files share (kafka_source.c lists the
 * files and what each holds). Internal to the source: only those files include it. Loop
 * thread. */
#ifndef BROOK_KAFKA_SOURCE_IMPL_H
#define BROOK_KAFKA_SOURCE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <brook/kafka.h>

#include "kafka/kafka_poll.h"
#include "kafka/kafka_producer.h"
#include "kafka/kafka_startup.h"
#include "kafka/kafka_topics.h"
#include "kafka/kafka_trace.h"
#include "runtime/services.h"
#include "serde/serde.h"

/* The builder's copy of the options (kafka_source_opts.c), read-only while it runs. */
typedef struct bk_ksrc_cfg {
  brook_kafka_source_opts_t o; /* pointers replaced by the copies below */
  char *bootstrap, *group, *dlq;
  char **topics; /* NULL-terminated */
  brook_kafka_partition_t *parts;
  char **props;
  bk_serde_chain_t key_serde, value_serde; /* the deserialisers (kafka_serde.h) */
  /* The repartition topic this source reads (its watermark records are consumed by
   * kafka/repartition_source.c; owned by the topic's sink), or NULL: an ordinary source. */
  struct bk_krp_topic *rp;
} bk_ksrc_cfg_t;

typedef struct bk_kpart {
  char *topic;
  int32_t partition;
  int assigned;
  int task_held;       /* holds its task (bk_task_acquire) */
  int open_pending;    /* assigned: its task opens on the next turn (none of it runs before) */
  int revoking;        /* in the revocation in progress: none of its messages is processed */
  int64_t committable; /* every offset below it is finished; -1 = none yet */
  int64_t committed;   /* last offset committed (or -1) */
  /* State on disk (kafka_positions.c): the offset after the last record processed into its
   * task's state, or -1; and, once it resumed at a stored position, the offset after the last
   * message taken since (messages below it are in the state already: skipped), or -1. */
  int64_t processed;
  int64_t skip_below;
  /* Changelogs (kafka_positions.c): its task is RESTORING; messages read meanwhile are dropped
   * (the first one's offset in dropped_from, else -1) and read again once it runs. */
  int restoring;
  int64_t dropped_from;
} bk_kpart_t;

typedef struct bk_kpending {
  uint64_t epoch;
  size_t part;
  int64_t next; /* last offset of the batch + 1 */
} bk_kpending_t;

/* The revocation in progress (kafka_rebalance.c): librdkafka waits for its unassign call
 * until the revoked partitions' outputs are acknowledged and their offsets committed. */
typedef struct bk_krevoke {
  rd_kafka_topic_partition_list_t *parts; /* NULL: none in progress */
  int cooperative;                        /* incremental unassign, or assign(NULL) (eager) */
  int begun;                              /* tasks suspended, point taken */
  uint64_t point;                         /* their outputs count against epochs <= point */
  int64_t from_ms, due_ms;                /* when it began, when it times out */
  const char *reason;
} bk_krevoke_t;

typedef enum bk_ksrc_phase {
  BK_KSRC_RUNNING,
  BK_KSRC_STOP_DRAIN,  /* stop: processing what was fetched */
  BK_KSRC_STOP_FLUSH,  /* the runtime's final commit asked for (runtime/commit.c) */
  BK_KSRC_STOP_COMMIT, /* final offset commit sent, waiting for its result */
  BK_KSRC_JOIN_WAIT,   /* leaving: first finishing a join in progress (kafka_group.h) */
  BK_KSRC_CLOSING,     /* consumer closing (leaving the group) */
  BK_KSRC_CLOSED,
  BK_KSRC_ABANDONED /* the close did not finish in time: destroyed without it (kafka_leave.c) */
} bk_ksrc_phase_t;

typedef struct bk_ksrc {
  bk_src_t *src;
  const bk_ksrc_cfg_t *cfg;
  bk_worker_t *w;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  bk_kafka_poller_t *poller;
  bk_kafka_startup_t *startup;   /* until the cluster answers (kafka_startup.h) */
  bk_topic_watch_t *topic_watch; /* subscribed topics that do not exist (kafka_topics.h) */
  bk_kprod_t *dlq;
  struct bk_cl_layer *cl; /* the worker's changelogs, if this source attached them */
  size_t n_restoring;     /* partitions with `restoring` set */
  uv_timer_t timer;       /* backpressure and stop checks while waiting */
  int timer_open;
  bk_kpart_t *parts;
  size_t n_parts, cap_parts;
  bk_kpending_t *pend; /* FIFO ring */
  size_t pend_head, n_pend, cap_pend;
  rd_kafka_message_t **msgs; /* the current batch's messages */
  size_t n_msgs, cap_msgs;
  rd_kafka_message_t *stash; /* the first message of the next batch (another partition) */
  bk_ktrace_t trace;         /* the batch's records' messages, for failures (kafka_trace.h) */
  size_t batch_part;
  int64_t batch_next; /* -1: the batch consumed nothing */
  int paused;
  int opens_pending;   /* some partition's task opens on the next turn */
  uint64_t stop_epoch; /* BK_KSRC_STOP_FLUSH: the final commit must reach this epoch */
  bk_ksrc_phase_t phase;
  int commit_in_flight;
  /* The group is rebalancing (a commit was refused as REBALANCE_IN_PROGRESS, or a cooperative
   * revocation just made the member rejoin): the interval's commits wait for the rebalance's
   * callback, at most max.poll.interval.ms (kafka_commit.c). 0: not; else since when. */
  int64_t rebalancing_since;
  int rejoin_after_assign; /* a cooperative revocation: the rejoin follows its assignment */
  bk_krevoke_t revoke;
  int synced;           /* a group assignment came (the assignor's state exists) */
  int cooperative;      /* the rebalance protocol is COOPERATIVE (kafka_rebalance.c) */
  int after_failure;    /* the run failed: ks_close leaves the group on its own */
  int64_t leave_due_ms; /* from the final offset commit on: when to stop waiting (kafka_leave.c) */
  int64_t join_checked_ms; /* BK_KSRC_JOIN_WAIT: when may_be_joining last asked librdkafka */
  int joining;             /* its answer */
  int join_answered;       /* the member has a member id: a JoinGroup was answered */
  int destroy_immediately; /* abandoned mid-join: destroyed IMMEDIATE (kafka_group.h) */
  int64_t leave_from_ms;   /* when the leave began */
  char why[512];
  char who[160];           /* "Kafka source '<name>'", the prefix of its messages */
  struct bk_krp_state *rp; /* a repartition topic's reader: upstream watermarks (or NULL) */
} bk_ksrc_t;

/* ---- kafka_source.c ---- */

/* The source's runtime side, registered by the builder (kafka_source_opts.c). */
extern const bk_source_vt_t bk_ksrc_vt;

/* A message to the runtime's logger (if any), prefixed with k->who, secrets redacted. */
void bk_ksrc_log(bk_ksrc_t *k, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fails the run with `err` and the message (prefixed and redacted as bk_ksrc_log's). */
void bk_ksrc_fail(bk_ksrc_t *k, brook_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The partition's index in k->parts, or SIZE_MAX if it has none. */
size_t bk_ksrc_part_find(bk_ksrc_t *k, const char *topic, int32_t partition);

/* The partition's index, added if new; SIZE_MAX if out of memory. Its index is its split. */
size_t bk_ksrc_part_get(bk_ksrc_t *k, const char *topic, int32_t partition);

/* The id of the task of partition k->parts[part] (runtime/task_ids.h). */
static inline int32_t bk_ksrc_task(const bk_ksrc_t *k, size_t part) {
  return bk_src_task_id(k->src, k->parts[part].partition);
}

/* Pauses (or resumes) the partitions in `l`, or every assigned partition if `l` is NULL. */
void bk_ksrc_set_paused(bk_ksrc_t *k, int pause, rd_kafka_topic_partition_list_t *l);

/* ---- kafka_backpressure.c ---- */

/* (Re)starts the source's timer for its phase: backpressure checks, the stop's waits. */
void bk_ksrc_timer_arm(bk_ksrc_t *k);

/* Runs the source's timer on the next loop turn (a revocation's outputs are acknowledged). */
void bk_ksrc_timer_soon(bk_ksrc_t *k);

/* Whether too many outputs await acknowledgement to take a batch now: then every partition
 * is paused until half of them are in (the timer resumes). */
int bk_ksrc_backpressure(bk_ksrc_t *k);

/* ---- kafka_consumer.c ---- */

/* Creates the consumer (k->rk, k->q) and subscribes it or gives it its explicit assignment.
 * On failure it leaves nothing behind and the context holds the message. */
brook_err_t bk_ksrc_consumer_new(bk_ksrc_t *k);

/* Releases the consumer: its poller, timer and queue, and the client itself (destroyed off the
 * loop). One not closed by then goes without the close handshake (the group notices after
 * session.timeout.ms). */
void bk_ksrc_consumer_release(bk_ksrc_t *k);

/* ---- kafka_rebalance.c ---- */

/* The consumer's rebalance callback (rd_kafka_conf_set_rebalance_cb; opaque: the bk_ksrc_t). */
void bk_ksrc_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t *parts, void *opaque);

/* An assigned partition holds the source's watermark back from now on. */
void bk_ksrc_hold_watermark(bk_ksrc_t *k, size_t part);

/* The partition is ours from now on: its task opens (runtime/task.c). Outside the rebalance
 * callback. */
void bk_ksrc_open_task(bk_ksrc_t *k, size_t part);

/* Opens the tasks of the partitions assigned since the last turn (the rebalance callback only
 * records them). Outside the rebalance callback, before the next batch is read. */
void bk_ksrc_open_pending_tasks(bk_ksrc_t *k);

/* The revocation in progress, one step per call of the source's timer (outside any batch):
 * suspends the tasks and takes the revocation point, then, once the outputs are acknowledged
 * or the timeout passed, commits, hands the partitions over and closes their tasks. */
void bk_ksrc_revoke_step(bk_ksrc_t *k);

/* Milliseconds until the revocation in progress has its next step: 0 if it is due now (to
 * begin, acknowledged, or timed out), INT64_MAX if there is none. */
int64_t bk_ksrc_revoke_due_in(const bk_ksrc_t *k);

/* The run failed or the consumer closes with a revocation in progress: the partitions are
 * handed over at once, nothing committed (the tasks are closed by the runtime). */
void bk_ksrc_revoke_abandon(bk_ksrc_t *k);

/* ---- kafka_batch.c ---- */

/* Reads the next batch into the source's port: the messages waiting, of one partition (the
 * batch's split, k->batch_part; SIZE_MAX if none came), turned into records. Clears
 * src->ready when the queue is empty. Returns BROOK_OK or an error that fails the source
 * (the records taken before it still go on). */
brook_err_t bk_ksrc_read_batch(bk_ksrc_t *k);

/* ---- kafka_commit.c ---- */

/* The consumer's offset commit callback (rd_kafka_conf_set_offset_commit_cb). */
void bk_ksrc_on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t *offsets, void *opaque);

/* The runtime's commit (bk_commit_fn, runtime/commit.c): the batches of epochs <= `epoch`
 * are finished; their offsets are committed. A final one moves the stop sequence on. */
void bk_ksrc_commit_point(void *opaque, uint64_t epoch, int final);

/* Commits (asynchronously) every assigned partition whose committable offset moved; with
 * `only` set, just the partitions in it. Returns 1 if a commit was sent. */
int bk_ksrc_commit_finished(bk_ksrc_t *k, const rd_kafka_topic_partition_list_t *only);

/* A revoked partition's task is flushed and every output up to the revocation point is
 * acknowledged: all its queued batch ends are finished (committable) and leave the queue. */
void bk_ksrc_settle_part(bk_ksrc_t *k, size_t part);

/* Drops the queued batch ends of partition `part`. */
void bk_ksrc_forget_pending(bk_ksrc_t *k, size_t part);

/* The batch that just passed through the pipeline ends at k->batch_next of k->batch_part
 * (if it consumed anything): queues it, to be committed once its deliveries are done. Resets
 * k->batch_next. */
void bk_ksrc_queue_batch_end(bk_ksrc_t *k);

/* ---- kafka_positions.c ---- */

/* Registers the source's positions of tasks with its worker (runtime/positions.h). */
brook_err_t bk_ksrc_positions_register(bk_ksrc_t *k);

/* The partition's task just opened: if its state on disk stored a position of the partition,
 * the partition resumes there (a seek; messages below it are skipped). */
void bk_ksrc_resume(bk_ksrc_t *k, size_t part);

/* Changelogs: a partition whose task was RESTORING when it opened drops its messages until
 * the task runs, then seeks to where the restored state ends. bk_ksrc_restoring: message `m`
 * of such a partition: 1 if it must be dropped (still restoring, or read again after the
 * seek), 0 to take it. bk_ksrc_restored_check (before each batch): the partitions whose task
 * runs now seek (no message of theirs may come before). */
int bk_ksrc_restoring(bk_ksrc_t *k, size_t part, const rd_kafka_message_t *m);
void bk_ksrc_restored_check(bk_ksrc_t *k);

/* ---- kafka_leave.c ---- */

/* The stop's final offset commit was sent: its result and the leave that follows are given
 * BK_KSRC_LEAVE_WAIT_MS from now (kafka_leave.c). */
void bk_ksrc_leave_deadline_start(bk_ksrc_t *k);

/* Whether the stop's wait for its final offset commit is over (the deadline passed). */
int bk_ksrc_leave_overdue(const bk_ksrc_t *k);

/* Starts leaving: closing the consumer at once, or first finishing a join that may be in
 * progress (kafka_group.h). */
void bk_ksrc_leave_begin(bk_ksrc_t *k);

/* The leave, one step per call. Returns 1 once the consumer is closed. */
int bk_ksrc_leave_step(bk_ksrc_t *k);

/* The run failed (ks_close, the consumer still open): leaves the group on the loop, holding
 * the runtime until the consumer is closed or the wait is over. */
void bk_ksrc_leave_failed_run(bk_ksrc_t *k);

/* A failed run's leave, one step per queue wake-up or timer tick. */
void bk_ksrc_failed_leave_step(bk_ksrc_t *k);

#endif
