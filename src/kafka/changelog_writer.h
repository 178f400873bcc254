/* Writing a task's store changes to their changelog partitions (changelog_format.h has the
 * bytes): each change with its commit epoch, and at each commit one MARKER per store carrying
 * the epoch and the positions blob the runtime gives (the input offsets the state covers).
 *
 * A TASK (bk_changelog_task_t) owns the epochs: all stores of a task share the epoch sequence
 * and each commit's epoch, and a commit's markers are produced only once EVERY record of that
 * epoch, in every store of the task, is acknowledged (and never if one failed), and only after
 * the markers of every earlier epoch are acknowledged. So a marker of epoch E in any store
 * proves that E's records are in every store's log, and that every store holds the marker
 * before E: the restore of a task takes the highest marker over its stores and rolls every
 * store forward to it (bk_changelog_restore_finish, changelog_restore.h), in one pass. A
 * writer made without a task gets one of its own (a task of one store).
 *
 * Life of a task (the runtime's task life cycle):
 *   1. RESTORING: a bk_changelog_restore_* per store; then each one's finish with the task's
 *      highest marker (changelog_restore.h) gives the dropped tail's keys; the task's
 *      first_epoch is the maximum of the stores' next_epoch, committed the task marker's epoch.
 *   2. STARTING: bk_changelog_task_new(first_epoch, committed), a bk_changelog_writer_new per
 *      store with .task (every store joins before the first commit), bk_changelog_compensate
 *      per store over its tail's keys with the restored store as lookup, then AT ONCE
 *      bk_changelog_task_commit(restored positions): the compensation's marker, so a new
 *      owner killed before its first ordinary commit (a crash loop) leaves nothing pending
 *      behind it. Puts are refused (BROOK_ERR_STATE) until that commit is acknowledged
 *      (bk_changelog_task_acked >= its epoch): the task processes input only then.
 *   3. RUNNING, each commit: bk_changelog_put for each key changed since the last commit (the
 *      store's write cache / listener collapses updates: one record per key), then
 *      bk_changelog_task_commit(positions) -> the epoch E it closed; the commit may declare
 *      its input offsets done once bk_changelog_task_acked(t) >= E (or on_acked(E) ran).
 *   4. Close: wait until bk_changelog_task_in_flight(t) == 0 (or the producer was flushed),
 *      then bk_changelog_task_free (it frees its writers).
 *
 * Deliveries: the writer produces on the caller's rd_kafka_t with msg_opaque = its own
 * per-epoch bookkeeping, through a topic handle tagged as a changelog's. The producer's
 * delivery-report callback must hand every report to bk_changelog_delivery() first, which
 * takes the changelog's and returns 1 (and leaves others: 0); a producer that carries only
 * changelogs can use bk_changelog_dr_msg_cb as its callback. Brook's shared worker producer
 * (kafka_producer.c) plugs in with one call at the top of its on_delivery. Markers are
 * produced from those reports; one that finds the producer's queue full waits, and is
 * produced by the task's next report, put or commit, or bk_changelog_task_pump (call it when
 * the producer's queue drains, for a task whose own messages are all reported).
 *
 * A failed delivery (after librdkafka's retries) fails the task for good: its epoch and all
 * after it never get a marker and never become acknowledged, every later call returns
 * BROOK_ERR_KAFKA, on_error runs once, and the task must be closed without committing and
 * restored again (the next restore drops the unfinished epochs). Records keep their order
 * per partition through the idempotent producer (brook's default: enable.idempotence), which
 * does NOT stop later records after a failed one: that is why the marker waits for the acks.
 *
 * Loop thread: the thread that serves the producer's delivery reports (rd_kafka_poll). */
#ifndef BROOK_KAFKA_CHANGELOG_WRITER_H
#define BROOK_KAFKA_CHANGELOG_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <brook/alloc.h>
#include <brook/error.h>

#include "core/errmsg.h"

typedef struct bk_changelog_writer bk_changelog_writer_t;
typedef struct bk_changelog_task bk_changelog_task_t;

typedef struct bk_changelog_task_opts {
  uint64_t first_epoch; /* the maximum of its stores' restore next_epoch */
  uint64_t committed;   /* the task's committed epoch (the restore finish's committed_epoch) */
  /* Optional: every record and marker of `epoch` (and of all before), in every store, are
   * acknowledged. */
  void (*on_acked)(uint64_t epoch, void *opaque);
  /* Optional: a delivery failed; the task is failed (message in bk_changelog_task_error). */
  void (*on_error)(brook_err_t err, void *opaque);
  void *opaque;                   /* for both callbacks */
  const brook_allocator_t *alloc; /* NULL: malloc */
} bk_changelog_task_opts_t;

/* A task's epochs. BROOK_OK; BROOK_ERR_INVALID_ARG (first_epoch 0, out of range or not after
 * committed); BROOK_ERR_NOMEM. */
brook_err_t bk_changelog_task_new(const bk_changelog_task_opts_t *opts, bk_changelog_task_t **out,
                                  bk_errmsg_t *why);

/* Ends the open epoch of the task, for all of its stores: its markers (with `positions`,
 * copied; may be NULL if len is 0) are produced once all of its records are acknowledged.
 * *epoch (may be NULL) gets the epoch closed: the commit is durable once
 * bk_changelog_task_acked(t) >= it. BROOK_OK (also when the markers wait: they are produced
 * later, see above); BROOK_ERR_KAFKA (the task failed); BROOK_ERR_INVALID_ARG;
 * BROOK_ERR_NOMEM; BROOK_ERR_TOO_LARGE (no epoch left below 2^63: never in practice). */
brook_err_t bk_changelog_task_commit(bk_changelog_task_t *t, const void *positions, size_t len,
                                     uint64_t *epoch);

/* Produces markers that found the producer's queue full. BROOK_OK (none waits), BROOK_ERR_FULL
 * (some still wait), BROOK_ERR_KAFKA (the task failed). */
brook_err_t bk_changelog_task_pump(bk_changelog_task_t *t);

/* The highest epoch whose records and markers (and all before), in every store, are
 * acknowledged: `committed` from the options until the first commit is. */
uint64_t bk_changelog_task_acked(const bk_changelog_task_t *t);

/* The epoch the next put belongs to. */
uint64_t bk_changelog_task_epoch(const bk_changelog_task_t *t);

/* Messages produced and not yet reported, plus markers not yet produced (0 once failed and
 * everything produced is reported). */
uint64_t bk_changelog_task_in_flight(const bk_changelog_task_t *t);

/* The failure's message ("" if none), naming topic, partition and the broker's error. */
const char *bk_changelog_task_error(const bk_changelog_task_t *t);

/* Frees the task and its writers. With messages still in flight, their bookkeeping stays until
 * their reports arrive (so serve the producer, or flush it, before destroying it). NULL: no-op. */
void bk_changelog_task_free(bk_changelog_task_t *t);

typedef struct bk_changelog_writer_opts {
  rd_kafka_t *producer; /* borrowed; outlives the writer */
  const char *topic;    /* copied */
  int32_t partition;
  /* Without a task: the writer's own task's options (bk_changelog_task_opts_t). */
  uint64_t first_epoch;
  uint64_t committed;
  void (*on_acked)(uint64_t epoch, void *opaque);
  void (*on_error)(brook_err_t err, void *opaque);
  void *opaque;
  const brook_allocator_t *alloc;
  /* Optional (borrowed): the task this store belongs to; the fields above are then ignored.
   * Every store joins before the task's first commit. */
  bk_changelog_task_t *task;
} bk_changelog_writer_opts_t;

/* What a writer wrote (stats: changelog records per input record). */
typedef struct bk_changelog_writer_stats {
  uint64_t records;       /* data records: puts and deletes */
  uint64_t compensations; /* records written by bk_changelog_compensate */
  uint64_t markers;
  uint64_t bytes; /* keys, values and marker values */
} bk_changelog_writer_stats_t;

/* A store's writer. BROOK_OK; BROOK_ERR_INVALID_ARG (missing producer/topic, first_epoch 0 or
 * not after committed, a topic handle for that topic made elsewhere without the changelog
 * tag); BROOK_ERR_STATE (the task committed already); BROOK_ERR_NOMEM. *why says which. */
brook_err_t bk_changelog_writer_new(const bk_changelog_writer_opts_t *opts,
                                    bk_changelog_writer_t **out, bk_errmsg_t *why);

/* Writes one change of the current epoch: value NULL = a deletion (tombstone). Bytes are
 * copied. BROOK_OK; BROOK_ERR_STATE (the task's first commit, the compensation's, is not
 * acknowledged yet); BROOK_ERR_FULL (the producer's queue is full: nothing was written; serve
 * the producer and retry); BROOK_ERR_KAFKA (the task failed, or librdkafka refused);
 * BROOK_ERR_TOO_LARGE (over the producer's message.max.bytes). */
brook_err_t bk_changelog_put(bk_changelog_writer_t *w, const void *key, size_t klen,
                             const void *value, size_t vlen);

/* Looks up a key's current value for compensation: BROOK_OK with a view of it, or
 * BROOK_ERR_NOT_FOUND (written as a tombstone); another error stops the compensation. */
typedef brook_err_t (*bk_changelog_lookup_fn)(const void *key, size_t klen, const void **value,
                                              size_t *vlen, void *opaque);
/* The i-th key to compensate (a view valid during the call). */
typedef void (*bk_changelog_key_fn)(size_t i, const void **key, size_t *klen, void *opaque);

/* Writes, for each of the n keys, its current value (or a tombstone), in the current epoch:
 * after compaction, no record of a dropped tail can be what survives for its key. Call it
 * right after _new, before the task's first commit. Errors as bk_changelog_put
 * (BROOK_ERR_FULL: nothing more was written; call again, it resumes at the first key not
 * written), or the lookup's. */
brook_err_t bk_changelog_compensate(bk_changelog_writer_t *w, size_t n, bk_changelog_key_fn key_at,
                                    void *key_opaque, bk_changelog_lookup_fn lookup,
                                    void *lookup_opaque);

/* bk_changelog_task_commit of the writer's task. */
brook_err_t bk_changelog_commit(bk_changelog_writer_t *w, const void *positions, size_t len,
                                uint64_t *epoch);

/* The writer's task (its own, if made without one). */
bk_changelog_task_t *bk_changelog_writer_task(const bk_changelog_writer_t *w);

/* bk_changelog_task_acked, _epoch, _in_flight and _error of the writer's task. */
uint64_t bk_changelog_acked(const bk_changelog_writer_t *w);
uint64_t bk_changelog_epoch(const bk_changelog_writer_t *w);
uint64_t bk_changelog_in_flight(const bk_changelog_writer_t *w);
const char *bk_changelog_writer_error(const bk_changelog_writer_t *w);

const bk_changelog_writer_stats_t *bk_changelog_writer_stats(const bk_changelog_writer_t *w);

/* The last marker of this writer that was acknowledged: its epoch and offset (1), or 0 if
 * none yet. Local state that covers that commit restores with start_offset = offset + 1 and
 * known_epoch = epoch (changelog_restore.h): only the tail after it is replayed. */
int bk_changelog_writer_marker(const bk_changelog_writer_t *w, uint64_t *epoch, int64_t *offset);

/* Takes a delivery report if it is a changelog writer's: returns 1 (handled), else 0. Call it
 * from the producer's delivery-report callback. */
int bk_changelog_delivery(const rd_kafka_message_t *m);

/* A delivery-report callback for a producer that carries only changelogs. */
void bk_changelog_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* Frees a writer made without a task (and its own task: as bk_changelog_task_free). A
 * writer of a shared task is freed with the task: this is a no-op for it. NULL: no-op. */
void bk_changelog_writer_free(bk_changelog_writer_t *w);

/* Test only (NULL otherwise): every record of the task's oldest committed epoch is
 * acknowledged and its markers are about to be produced; `records`: the data records its
 * writers wrote so far. A test kills the process here: between a changelog write and its
 * marker. */
extern void (*bk_test_before_markers)(int32_t partition, uint64_t epoch, uint64_t records);

#endif
