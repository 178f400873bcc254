/* Writing a task's store changes to its changelog partition (changelog_format.h has the
 * bytes): each change with its commit epoch, and at each commit a MARKER carrying the epoch
 * and the positions blob the runtime gives (the input offsets the state covers).
 *
 * Life of a writer (the runtime's task life cycle):
 *   1. RESTORING: bk_changelog_restore_* reads the partition; its result gives next_epoch and
 *      marker_epoch, and the dropped tail's keys.
 *   2. RUNNING: bk_changelog_writer_new(first_epoch = next_epoch,
 *      committed = committed_epoch),
 *      then bk_changelog_compensate over the tail's keys with the restored store as lookup
 *      (before anything else: the compensation belongs to the first epoch, before its marker).
 *   3. Each commit: bk_changelog_put for each key changed since the last commit (the store's
 *      write cache / listener collapses updates: one record per key), then
 *      bk_changelog_commit(positions) -> the epoch E it closed; the commit may declare its
 *      input offsets done once bk_changelog_acked(w) >= E (or on_acked(E) ran).
 *   4. Close: wait until bk_changelog_in_flight(w) == 0 (or the producer was flushed), free.
 *
 * Deliveries: the writer produces on the caller's rd_kafka_t with msg_opaque = its own
 * per-epoch bookkeeping, through a topic handle tagged as a changelog's. The producer's
 * delivery-report callback must hand every report to bk_changelog_delivery() first, which
 * takes the changelog's and returns 1 (and leaves others: 0); a producer that carries only
 * changelogs can use bk_changelog_dr_msg_cb as its callback. Brook's shared worker producer
 * (kafka_producer.c) plugs in with one call at the top of its on_delivery.
 *
 * A failed delivery (after librdkafka's retries) fails the writer for good: the epochs after
 * it never become acknowledged, every later call returns BROOK_ERR_KAFKA, on_error runs once,
 * and the task must be closed without committing and restored again (its changelog may have
 * a hole: the next restore drops the unfinished epoch). Per-epoch acknowledgement relies on
 * the idempotent producer (brook's default: enable.idempotence) keeping the partition's order.
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

typedef struct bk_changelog_writer_opts {
  rd_kafka_t *producer; /* borrowed; outlives the writer */
  const char *topic;    /* copied */
  int32_t partition;
  uint64_t first_epoch; /* the restore's next_epoch (> every epoch the changelog holds) */
  uint64_t committed;   /* the restore's committed_epoch (its last marker's, or known) */
  /* Optional: every record and the marker of `epoch` (and of all before) are acknowledged. */
  void (*on_acked)(uint64_t epoch, void *opaque);
  /* Optional: a delivery failed; the writer is failed (message in bk_changelog_writer_error). */
  void (*on_error)(brook_err_t err, void *opaque);
  void *opaque;                   /* for both callbacks */
  const brook_allocator_t *alloc; /* NULL: malloc */
} bk_changelog_writer_opts_t;

/* What a writer wrote (stats: changelog records per input record). */
typedef struct bk_changelog_writer_stats {
  uint64_t records;       /* data records: puts and deletes */
  uint64_t compensations; /* records written by bk_changelog_compensate */
  uint64_t markers;
  uint64_t bytes; /* keys, values and marker values */
} bk_changelog_writer_stats_t;

/* A writer. BROOK_OK; BROOK_ERR_INVALID_ARG (missing producer/topic, first_epoch 0 or not
 * after committed, a topic handle for that topic made elsewhere without the changelog tag);
 * BROOK_ERR_NOMEM. *why says which. */
brook_err_t bk_changelog_writer_new(const bk_changelog_writer_opts_t *opts,
                                    bk_changelog_writer_t **out, bk_errmsg_t *why);

/* Writes one change of the current epoch: value NULL = a deletion (tombstone). Bytes are
 * copied. BROOK_OK; BROOK_ERR_FULL (the producer's queue is full: nothing was written; serve
 * the producer and retry); BROOK_ERR_KAFKA (the writer failed, or librdkafka refused);
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
 * right after _new, before any put. Errors as bk_changelog_put (BROOK_ERR_FULL: nothing more
 * was written; call again, it resumes at the first key not written), or the lookup's. */
brook_err_t bk_changelog_compensate(bk_changelog_writer_t *w, size_t n, bk_changelog_key_fn key_at,
                                    void *key_opaque, bk_changelog_lookup_fn lookup,
                                    void *lookup_opaque);

/* Ends the current epoch: writes its marker with `positions` (copied; may be NULL if len is 0)
 * and moves to the next epoch. *epoch (may be NULL) gets the epoch closed: the commit is
 * durable once bk_changelog_acked(w) >= it. Errors as bk_changelog_put (BROOK_ERR_FULL: the
 * epoch stays open; retry). */
brook_err_t bk_changelog_commit(bk_changelog_writer_t *w, const void *positions, size_t len,
                                uint64_t *epoch);

/* The highest epoch whose records and marker (and all before) are acknowledged: `committed`
 * from the options until the first commit is. */
uint64_t bk_changelog_acked(const bk_changelog_writer_t *w);

/* The epoch the next put belongs to. */
uint64_t bk_changelog_epoch(const bk_changelog_writer_t *w);

/* Messages produced and not yet reported. */
uint64_t bk_changelog_in_flight(const bk_changelog_writer_t *w);

const bk_changelog_writer_stats_t *bk_changelog_writer_stats(const bk_changelog_writer_t *w);

/* The failure's message ("" if none), naming topic, partition and the broker's error. */
const char *bk_changelog_writer_error(const bk_changelog_writer_t *w);

/* Takes a delivery report if it is a changelog writer's: returns 1 (handled), else 0. Call it
 * from the producer's delivery-report callback. */
int bk_changelog_delivery(const rd_kafka_message_t *m);

/* A delivery-report callback for a producer that carries only changelogs. */
void bk_changelog_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* Frees the writer. With messages still in flight, their bookkeeping stays until their
 * reports arrive (so serve the producer, or flush it, before destroying it). NULL: no-op. */
void bk_changelog_writer_free(bk_changelog_writer_t *w);

#endif
