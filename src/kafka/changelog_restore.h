/* Restoring a store from one changelog partition, in SLICES: bk_changelog_restore_step reads at
 * most a given number of records or for a given time and returns, so the worker's loop can
 * run other tasks between slices (Kafka Streams blocked them until 3.x).
 *
 * It reads the partition from a start offset up to its END: the high watermark of the first
 * fetch (nothing is written to a changelog while its task restores: the task is not running
 * anywhere). Only the changes of committed epochs reach the apply callback, in log order
 * (changelog_replay.h has the rules and why they stay exact on a compacted topic); at the
 * end, bk_changelog_restore_finish settles what waits with the task's commit, and the tail
 * after it is dropped and its keys listed for compensation
 * (bk_changelog_compensate in changelog_writer.h). The result gives the last marker's
 * positions blob (the input offsets the restored state covers: the input resumes there),
 * its offset, and the highest epoch seen, from which the next writer takes its first epoch.
 *
 * The consumer: the caller's, made with bk_changelog_restore_consumer (an assign-only client
 * of no group: enable.partition.eof, auto.offset.reset=error, read_committed, no commits);
 * one per worker serves all of its restores, each on its own partition queue. The caller
 * serves the client's main queue (rd_kafka_poll) for its logs and errors. Memory: what
 * librdkafka prefetches per assigned partition (queued.min.messages, 100,000 messages by
 * default: restores advanced in turns keep their partitions' prefetch; a lower value costs
 * throughput on the embedded broker, which answers a fetch with one batch) plus each
 * restore's pending records (changelog_replay.h).
 *
 * Errors end the restore and name topic, partition and offset, with nothing applied past the
 * problem: BROOK_ERR_CORRUPT for a record whose "brook.e" header is missing, short or longer
 * than 16 bytes, a record whose epoch is 0 or below its committed epoch, a key starting with
 * brook's reserved prefix that brook never writes, a marker that is a tombstone or whose value
 * is truncated or fails its checksum, a marker out of order, and a partition whose log starts
 * AFTER start_offset (retention, or the embedded broker's ~5 MiB per partition, evicted what
 * the restore needs); BROOK_ERR_KAFKA if the cluster says the topic or partition does not
 * exist, BROOK_ERR_TIMEOUT if the partition's first fetch got no answer within timeout_ms;
 * BROOK_ERR_TOO_LARGE past max_pending_bytes; the apply callback's own error.
 *
 * A TASK with several stores (changelog_writer.h: one epoch sequence, and a commit's markers
 * written only once all of its records, in every store, are acknowledged) restores in ONE
 * pass: step every store's restore to its end, take the store whose result has the highest
 * committed_epoch (its marker_epoch, marker_prev and positions are the task's commit), and
 * call bk_changelog_restore_finish on each store with that epoch and prev: a store killed
 * before its marker of that commit rolls forward (its records of the commit are in its log),
 * and every store ends at the same commit. Why rolling forward and not back: a marker of E in
 * one store proves that E's records are in every store; rolling back to the lowest marker
 * would need E's records to be absent, but the cleaner may already have compacted older
 * values of their keys away. (upto_epoch restores a store to an older commit anyway, exact
 * while nothing above it is compacted: changelog_replay.h.)
 *
 * Loop thread (the thread that owns the restore); the consumer may be shared by restores of
 * that thread only. */
#ifndef BROOK_KAFKA_CHANGELOG_RESTORE_H
#define BROOK_KAFKA_CHANGELOG_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <brook/alloc.h>
#include <brook/error.h>

#include "core/errmsg.h"
#include "kafka/changelog_replay.h"

/* start_offset: restore whatever the log holds from its first offset, never an error for a
 * log that starts late (a window store's changelog with time retention). */
#define BK_CL_FROM_LOG_START (-2)
#define BK_CL_DEFAULT_MAX_PENDING ((size_t)256 << 20)
#define BK_CL_DEFAULT_TIMEOUT_MS 30000

typedef struct bk_changelog_restore_opts {
  rd_kafka_t *consumer; /* borrowed: from bk_changelog_restore_consumer; outlives the restore */
  const char *topic;    /* copied */
  int32_t partition;
  /* >= 0: the first offset the state needs (0 for an empty store; the last applied marker's
   * offset + 1 for local state that covers it): a log that starts after it is
   * BROOK_ERR_CORRUPT. Or BK_CL_FROM_LOG_START. */
  int64_t start_offset;
  /* The epoch of the marker the local state covers (its commit's), or 0 for an empty store. */
  uint64_t known_epoch;
  size_t max_pending_bytes; /* 0: BK_CL_DEFAULT_MAX_PENDING */
  /* The partition's first fetch must answer within this (0: BK_CL_DEFAULT_TIMEOUT_MS): a
   * partition that does not exist gets no answer at all from librdkafka. */
  int timeout_ms;
  bk_cl_apply_fn apply; /* required */
  void *apply_opaque;
  const brook_allocator_t *alloc; /* NULL: malloc */
  /* 0, or stop at this epoch: markers above it are not applied and every record of an epoch
   * above it is tail (dropped, its keys listed for compensation). */
  uint64_t upto_epoch;
} bk_changelog_restore_opts_t;

/* What a finished restore found. Pointers are valid until bk_changelog_restore_free. */
typedef struct bk_changelog_restore_result {
  int has_marker;           /* a marker was read (else the local positions stand) */
  uint64_t marker_epoch;    /* the last marker's epoch */
  int64_t marker_offset;    /* its offset: store marker_offset + 1 as the next start */
  const void *positions;    /* its positions blob (positions_len bytes; NULL if none) */
  size_t positions_len;     /* */
  uint64_t max_epoch;       /* the highest epoch seen, known_epoch included */
  uint64_t next_epoch;      /* the writer's first_epoch: above every epoch seen */
  uint64_t committed_epoch; /* marker_epoch, else known_epoch; after finish, the task's */
  uint64_t records_read;    /* records read (markers included) */
  uint64_t records_applied; /* changes handed to apply */
  uint64_t records_dropped; /* records of dead epochs and of the tail */
  uint64_t markers;         /* markers read */
  size_t tail_keys;         /* distinct keys of the dropped tail: bk_changelog_restore_tail_key */
  int64_t end_offset;       /* the end the restore read up to (exclusive) */
  uint64_t marker_prev;     /* the last marker's prev (the task's commit before it) */
  uint64_t markers_beyond;  /* markers above upto_epoch, not applied */
  int finished;             /* bk_changelog_restore_finish ran: tail_keys is final */
} bk_changelog_restore_result_t;

typedef struct bk_changelog_restore bk_changelog_restore_t;

/* A consumer for restores: bootstrap (may be NULL if props have it) and props (name, value
 * pairs, NULL-terminated, may be NULL; they may not change the settings the restore needs).
 * The caller destroys it (rd_kafka_destroy) after its restores are freed. BROOK_OK, or
 * BROOK_ERR_KAFKA with why. */
brook_err_t bk_changelog_restore_consumer(const char *bootstrap, const char *const *props,
                                          rd_kafka_t **out, bk_errmsg_t *why);

/* Starts a restore: assigns the partition on the consumer at the start offset. Nothing is read
 * yet. BROOK_OK, BROOK_ERR_INVALID_ARG, BROOK_ERR_NOMEM or BROOK_ERR_KAFKA (*why set). */
brook_err_t bk_changelog_restore_new(const bk_changelog_restore_opts_t *opts,
                                     bk_changelog_restore_t **out, bk_errmsg_t *why);

/* Runs one slice: reads at most max_records records, for at most about max_ms milliseconds
 * (checked between batches of up to 512 records; <= 0: one batch), applying what is settled.
 * wait_ms: how long to wait when nothing has arrived yet (0 on a loop thread: never block;
 * the caller is woken by the partition's queue, bk_changelog_restore_queue). Returns BROOK_OK
 * with *done = 1 once the end was reached (the partition unassigned; the records after the
 * last marker wait for bk_changelog_restore_finish), *done = 0 to be called again; or an
 * error (see above, message in *why), after which the restore is done and failed (the
 * partition unassigned; only _free remains). */
brook_err_t bk_changelog_restore_step(bk_changelog_restore_t *r, size_t max_records, int max_ms,
                                      int wait_ms, int *done, bk_errmsg_t *why);

/* After the end (step returned *done = 1): settles the records still pending with the task's
 * commit, then drops the tail and lists its keys. task_epoch 0: this changelog's own last
 * marker (a task of one store). Else task_epoch and task_prev are the committed_epoch and
 * marker_prev of the task's store with the highest committed_epoch (see above): records of
 * that commit after this store's last marker are applied (rolled forward). BROOK_OK;
 * BROOK_ERR_STATE (not at the end, failed, or finished already); BROOK_ERR_INVALID_ARG
 * (task_epoch below this store's committed epoch: restore it again with upto_epoch);
 * BROOK_ERR_CORRUPT (this changelog lacks the task's commit task_prev); the apply callback's
 * error; BROOK_ERR_NOMEM. */
brook_err_t bk_changelog_restore_finish(bk_changelog_restore_t *r, uint64_t task_epoch,
                                        uint64_t task_prev, bk_errmsg_t *why);

/* The partition's queue, for a loop to be woken when records arrive (kafka_poll.h:
 * bk_kafka_poller_start). Valid until _free. */
rd_kafka_queue_t *bk_changelog_restore_queue(bk_changelog_restore_t *r);

/* Progress so far (counts are live during the restore; the rest is final once done). */
const bk_changelog_restore_result_t *bk_changelog_restore_result(bk_changelog_restore_t *r);

/* After a successful finish: the i-th distinct key of the dropped tail (i < tail_keys). The key
 * is a view, valid until _free. */
void bk_changelog_restore_tail_key(const bk_changelog_restore_t *r, size_t i, const void **key,
                                   size_t *klen);

/* Stops reading (unassigns the partition if still assigned) and frees. NULL is a no-op. */
void bk_changelog_restore_free(bk_changelog_restore_t *r);

#endif
