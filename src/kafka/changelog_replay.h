/* The exactly-once rules of a changelog restore, apart from Kafka: fed the records of one
 * changelog partition in log order, it hands the store changes of COMMITTED epochs to an
 * apply callback, in log order, and nothing else (changelog_format.h has the layout).
 *
 * A record is held PENDING until its epoch is settled:
 * - a marker M(E, prev) settles epoch E and every epoch <= prev as committed (their own
 *   markers were compacted away: compaction keeps only the latest marker), and every epoch
 *   strictly between prev and E as DEAD: a killed writer's records, dropped;
 * - a record whose header says "marker c was written before me" settles every epoch <= c as
 *   committed. This is what keeps memory bounded on a compacted changelog, where all but the
 *   latest marker are gone: without it, everything up to the last marker would wait.
 * Why that is exact: a writer's restore sees the dead epochs of its predecessors, writes
 * COMPENSATION records for their keys (their restored value, or a tombstone) before its first
 * marker, and that marker's (prev, E) gap names them dead. Compaction can only remove that
 * marker once a later one exists, and by then it has removed the dead records too (each has a
 * later record of its key: the compensation). So a dead record is either followed by the
 * marker that drops it, or gone.
 *
 * Memory: pending records are copied into one growing buffer (no allocation per record),
 * which holds at most the records since the last settled epoch: one commit's writes, plus the
 * records of writers killed since (at most one commit each, and their compensation). A
 * buffer past max_pending_bytes fails the restore (BROOK_ERR_TOO_LARGE) instead of growing
 * without bound: no spill to disk.
 *
 * At the end, the TAIL (records still pending: epochs after the last marker) is dropped, and
 * its distinct keys are listed for the new writer's compensation (bk_changelog_compensate).
 *
 * UPTO (a restore told to stop at an epoch): markers above it are counted and not applied,
 * records' committed fields are capped at it, so every record above it ends in the tail.
 * Exact only while nothing above it was compacted (a later record of a key removes the
 * earlier one): for the last commit of a task killed between its stores' markers, within
 * min.compaction.lag.ms. Rolling forward (bk_cl_replay_settle_task) has no such limit.
 *
 * Assumes one writer per partition at a time (the runtime's task ownership; fencing for
 * zombies is the exactly-once producer's): a marker whose epoch is not above the previous
 * marker's is an error, a record of an already settled epoch is dropped and counted.
 * Single-threaded. */
#ifndef BROOK_KAFKA_CHANGELOG_REPLAY_H
#define BROOK_KAFKA_CHANGELOG_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>

#include "core/errmsg.h"

/* Applies one committed change: value NULL = delete. Borrowed for the call. An error stops
 * the restore and is returned by it. */
typedef brook_err_t (*bk_cl_apply_fn)(const void *key, size_t klen, const void *value, size_t vlen,
                                      void *opaque);

typedef struct bk_cl_replay {
  const brook_allocator_t *alloc;
  bk_cl_apply_fn apply;
  void *apply_opaque;
  const char *topic; /* for messages (borrowed) */
  int32_t partition;
  size_t max_pending_bytes;

  unsigned char *buf; /* pending entries, in log order (see changelog_replay.c) */
  size_t used, cap;
  size_t n_pending;
  uint64_t settled; /* every epoch <= settled is settled (committed or dead) */
  uint64_t upto;    /* 0, or: markers above it are not applied, committed fields are capped */

  uint64_t max_epoch;        /* the highest epoch seen (records and markers) */
  uint64_t marker_epoch;     /* the last marker's epoch (0: none yet) */
  uint64_t marker_prev;      /* its prev */
  int64_t marker_offset;     /* its offset (-1: none) */
  unsigned char *blob;       /* its positions blob (a copy) */
  size_t blob_len, blob_cap; /* blob_cap: bytes allocated */

  uint64_t records, markers, applied, dropped;
  uint64_t markers_beyond; /* markers above upto, not applied */

  uint32_t *tail_index; /* after finish: offsets of the tail's distinct keys in buf */
  size_t n_tail;
  int finished;
} bk_cl_replay_t;

/* `topic` is borrowed for messages; alloc NULL = malloc. known_epoch: the epoch of the marker
 * the local state already covers (a restore from a stored position), or 0. */
void bk_cl_replay_init(bk_cl_replay_t *r, const brook_allocator_t *alloc, const char *topic,
                       int32_t partition, size_t max_pending_bytes, uint64_t known_epoch,
                       bk_cl_apply_fn apply, void *apply_opaque);
void bk_cl_replay_free(bk_cl_replay_t *r);

/* One data record at `offset`: its epoch and committed epoch (from the header) and its store
 * key (already unescaped). value NULL: a tombstone. BROOK_OK, the apply callback's error,
 * BROOK_ERR_NOMEM, BROOK_ERR_TOO_LARGE, or BROOK_ERR_CORRUPT (an epoch out of range:
 * changelog_format.h) (*why names topic, partition and offset). */
brook_err_t bk_cl_replay_record(bk_cl_replay_t *r, int64_t offset, uint64_t epoch,
                                uint64_t committed, const void *key, size_t klen, const void *value,
                                size_t vlen, bk_errmsg_t *why);

/* A marker at `offset` (decoded). BROOK_OK, the apply callback's error, BROOK_ERR_NOMEM, or
 * BROOK_ERR_CORRUPT (an epoch not above the previous marker's, or out of range). */
brook_err_t bk_cl_replay_marker(bk_cl_replay_t *r, int64_t offset, uint64_t epoch, uint64_t prev,
                                const void *blob, size_t blob_len, bk_errmsg_t *why);

/* Before the end: settles what is pending as a marker M(epoch, prev) of ANOTHER changelog of
 * the same task would (changelog_writer.h: a task's markers are written only once every record
 * of the epoch, in every store, is acknowledged, and after every earlier epoch's markers; so
 * a marker of E in one store commits E in all of them, and every store holds the marker of
 * prev): pending epochs <= prev and == epoch are applied, those between are dead. A no-op
 * when epoch <= the epochs settled here. BROOK_OK, the apply callback's error, or
 * BROOK_ERR_CORRUPT: this changelog has not settled prev (it lacks a commit of its task). */
brook_err_t bk_cl_replay_settle_task(bk_cl_replay_t *r, uint64_t epoch, uint64_t prev,
                                     bk_errmsg_t *why);

/* The end: drops the tail and indexes its distinct keys. BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_cl_replay_finish(bk_cl_replay_t *r, bk_errmsg_t *why);

/* After finish: the i-th distinct key of the dropped tail (i < r->n_tail). */
void bk_cl_replay_tail_key(const bk_cl_replay_t *r, size_t i, const void **key, size_t *klen);

#endif
