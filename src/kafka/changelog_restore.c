/* Restoring one changelog partition in slices (changelog_restore.h): the Kafka side (assign,
 * read the partition's own queue without waiting, the end and the log start, record
 * checks); the epoch rules are changelog_replay.c's. Loop thread. */
#include "kafka/changelog_restore.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "kafka/changelog_format.h"
#include "kafka/internal_topic_names.h"
#include "kafka/kafka_conf.h"

#define BATCH 512 /* messages taken from the queue at once */

struct bk_changelog_restore {
  const brook_allocator_t *alloc;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q; /* the partition's queue, not forwarded to the consumer's */
  char topic[BK_TOPIC_NAME_MAX + 1];
  int32_t partition;
  int64_t start; /* opts.start_offset */
  int64_t end;   /* -1 until the first fetch answered */
  int64_t next;  /* the offset after the last record read */
  uint64_t known_epoch;
  int assigned, finished, failed, settled; /* settled: bk_changelog_restore_finish ran */
  uint64_t started_ms, timeout_ms;         /* the first fetch must answer within timeout_ms */
  bk_cl_replay_t replay;
  bk_changelog_restore_result_t res;
  unsigned char *scratch; /* an escaped key's store key */
  size_t scratch_cap;
  rd_kafka_message_t *msgs[BATCH];
};

/* The settings a restore relies on; they override the caller's properties. */
static const char *const restore_required[] = {
    "group.id",
    "brook-changelog-restore", /* assign() needs one; the client never joins */
    "enable.auto.commit",
    "false",
    "enable.auto.offset.store",
    "false",
    "enable.partition.eof",
    "true", /* the end of a partition whose tail has no record to read */
    "auto.offset.reset",
    "error", /* a log that starts late must fail, not silently skip */
    "isolation.level",
    "read_committed",
    "fetch.wait.max.ms",
    "10", /* an empty or fully read partition answers at once: a task's restore (and the
             task) does not wait 500 ms (librdkafka's default) per fetch of its end */
    NULL};

brook_err_t bk_changelog_restore_consumer(const char *bootstrap, const char *const *props,
                                          rd_kafka_t **out, bk_errmsg_t *why) {
  char err[512];
  rd_kafka_conf_t *conf = NULL;
  *out = NULL;
  if (bk_kafka_conf_build(NULL, bootstrap, (char *const *)(uintptr_t)props, &conf, err,
                          sizeof(err)) != BROOK_OK) {
    bk_errmsg_set(why, "changelog restore consumer: %s", err);
    return BROOK_ERR_KAFKA;
  }
  for (size_t i = 0; restore_required[i]; i += 2)
    if (rd_kafka_conf_set(conf, restore_required[i], restore_required[i + 1], err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      bk_errmsg_set(why, "changelog restore consumer: %s: %s", restore_required[i], err);
      return BROOK_ERR_KAFKA;
    }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    bk_errmsg_set(why, "changelog restore consumer: %s", err);
    return BROOK_ERR_KAFKA;
  }
  *out = rk;
  return BROOK_OK;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static brook_err_t set_assigned(bk_changelog_restore_t *r, int on, bk_errmsg_t *why) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  if (!l) {
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": out of memory", r->topic,
                  r->partition);
    return BROOK_ERR_NOMEM;
  }
  rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, r->topic, r->partition);
  tp->offset = r->start >= 0 ? r->start : RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_error_t *e =
      on ? rd_kafka_incremental_assign(r->rk, l) : rd_kafka_incremental_unassign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) {
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": %s: %s", r->topic, r->partition,
                  on ? "assign" : "unassign", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return BROOK_ERR_KAFKA;
  }
  r->assigned = on;
  return BROOK_OK;
}

brook_err_t bk_changelog_restore_new(const bk_changelog_restore_opts_t *o,
                                     bk_changelog_restore_t **out, bk_errmsg_t *why) {
  if (!out || !o || !o->consumer || !o->topic || !o->apply || o->partition < 0 ||
      (o->start_offset < 0 && o->start_offset != BK_CL_FROM_LOG_START) ||
      strlen(o->topic) > BK_TOPIC_NAME_MAX) {
    bk_errmsg_set(why, "changelog restore: missing consumer, topic or apply callback, or a "
                       "negative partition or start offset");
    return BROOK_ERR_INVALID_ARG;
  }
  const brook_allocator_t *a = o->alloc ? o->alloc : bk_default_allocator();
  bk_changelog_restore_t *r = bk_calloc(a, 1, sizeof(*r));
  if (!r) {
    bk_errmsg_set(why, "changelog '%s': out of memory", o->topic);
    return BROOK_ERR_NOMEM;
  }
  r->alloc = a;
  r->rk = o->consumer;
  snprintf(r->topic, sizeof(r->topic), "%s", o->topic);
  r->partition = o->partition;
  r->start = o->start_offset;
  r->known_epoch = o->known_epoch;
  r->end = -1;
  r->started_ms = now_ms();
  r->timeout_ms = o->timeout_ms > 0 ? (uint64_t)o->timeout_ms : BK_CL_DEFAULT_TIMEOUT_MS;
  r->next = o->start_offset >= 0 ? o->start_offset : 0;
  size_t max_pending = o->max_pending_bytes ? o->max_pending_bytes : BK_CL_DEFAULT_MAX_PENDING;
  if (max_pending > UINT32_MAX / 2)
    max_pending = UINT32_MAX / 2; /* the tail index keeps 32-bit offsets into the buffer */
  bk_cl_replay_init(&r->replay, a, r->topic, r->partition, max_pending, o->known_epoch, o->apply,
                    o->apply_opaque);
  r->replay.upto = o->upto_epoch;
  r->q = rd_kafka_queue_get_partition(r->rk, r->topic, r->partition);
  if (!r->q) {
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": no partition queue", r->topic,
                  r->partition);
    bk_changelog_restore_free(r);
    return BROOK_ERR_KAFKA;
  }
  rd_kafka_queue_forward(r->q, NULL); /* its messages stay on this queue */
  brook_err_t err = set_assigned(r, 1, why);
  if (err) {
    bk_changelog_restore_free(r);
    return err;
  }
  *out = r;
  return BROOK_OK;
}

static brook_err_t corrupt(bk_changelog_restore_t *r, int64_t offset, const char *what,
                           bk_errmsg_t *why) {
  bk_errmsg_set(why, "changelog '%s' partition %" PRId32 " offset %" PRId64 ": %s", r->topic,
                r->partition, offset, what);
  return BROOK_ERR_CORRUPT;
}

/* The end and the log start, from the first fetch's answer (cached by librdkafka before it
 * hands out that fetch's messages or its end-of-partition event). */
static brook_err_t late_start(bk_changelog_restore_t *r, bk_errmsg_t *why);

static brook_err_t learn_bounds(bk_changelog_restore_t *r, bk_errmsg_t *why) {
  int64_t lo = -1, hi = -1;
  rd_kafka_get_watermark_offsets(r->rk, r->topic, r->partition, &lo, &hi);
  if (hi < 0) {
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": no high watermark after a fetch",
                  r->topic, r->partition);
    return BROOK_ERR_KAFKA;
  }
  if (r->start >= 0 && lo > r->start)
    return late_start(r, why);
  r->end = hi;
  r->res.end_offset = hi;
  return BROOK_OK;
}

static brook_err_t late_start(bk_changelog_restore_t *r, bk_errmsg_t *why) {
  int64_t lo = -1, hi = -1;
  rd_kafka_get_watermark_offsets(r->rk, r->topic, r->partition, &lo, &hi);
  char what[256];
  snprintf(what, sizeof(what),
           "the log starts at offset %" PRId64 ", after the offset the restore needs: records "
           "were deleted (retention, or the embedded broker's ~5 MiB per partition)",
           lo);
  return corrupt(r, r->start, what, why);
}

/* A data record or a marker. */
static brook_err_t take(bk_changelog_restore_t *r, const rd_kafka_message_t *m, bk_errmsg_t *why) {
  rd_kafka_headers_t *hdrs = NULL;
  const void *hv = NULL;
  size_t hlen = 0;
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(hdrs, BK_CL_EPOCH_HEADER, &hv, &hlen) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return corrupt(r, m->offset, "record without its 'brook.e' epoch header", why);
  if (!hv || hlen != BK_CL_EPOCH_HEADER_LEN)
    return corrupt(r, m->offset, "'brook.e' epoch header of the wrong length (not 16 bytes)", why);
  uint64_t epoch = bk_cl_get_u64(hv), committed = bk_cl_get_u64((const unsigned char *)hv + 8);
  if (epoch == 0 || committed >= epoch)
    return corrupt(r, m->offset,
                   "'brook.e' epoch header garbled (epoch 0, or not after its "
                   "committed epoch)",
                   why);
  const void *key = m->key;
  size_t klen = m->key_len;
  if (!key)
    return corrupt(r, m->offset, "record without a key", why);
  switch (bk_cl_key_kind(key, klen)) {
  case BK_CL_KEY_PLAIN:
    break;
  case BK_CL_KEY_MARKER: {
    bk_cl_marker_t mk;
    const char *what = NULL;
    if (!m->payload)
      return corrupt(r, m->offset, "commit marker is a tombstone", why);
    if (bk_cl_marker_decode(m->payload, m->len, &mk, &what) != BROOK_OK)
      return corrupt(r, m->offset, what, why);
    if (mk.epoch != epoch)
      return corrupt(r, m->offset, "commit marker's epoch differs from its header's", why);
    return bk_cl_replay_marker(&r->replay, m->offset, mk.epoch, mk.prev, mk.blob, mk.blob_len, why);
  }
  case BK_CL_KEY_ESCAPED:
    if (bk_grow(r->alloc, (void **)&r->scratch, &r->scratch_cap, klen, 1)) {
      bk_errmsg_set(why, "changelog '%s': out of memory", r->topic);
      return BROOK_ERR_NOMEM;
    }
    bk_cl_key_unescape(r->scratch, key, klen);
    key = r->scratch;
    klen--;
    break;
  case BK_CL_KEY_BAD:
    return corrupt(r, m->offset, "key with brook's reserved prefix that brook never writes", why);
  }
  return bk_cl_replay_record(&r->replay, m->offset, epoch, committed, key, klen, m->payload,
                             m->payload ? m->len : 0, why);
}

/* An event on the partition's queue. *at_end when it is the end of the partition. */
static brook_err_t take_error(bk_changelog_restore_t *r, const rd_kafka_message_t *m, int *at_end,
                              bk_errmsg_t *why) {
  switch (m->err) {
  case RD_KAFKA_RESP_ERR__PARTITION_EOF:
    if (r->end < 0) {
      brook_err_t err = learn_bounds(r, why);
      if (err)
        return err;
    }
    *at_end = m->offset >= r->end;
    return BROOK_OK;
  case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
  case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    return late_start(r, why);
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": %s", r->topic, r->partition,
                  rd_kafka_err2str(m->err));
    return BROOK_ERR_KAFKA;
  default:
    return BROOK_OK; /* transient (brokers down, ...): librdkafka retries */
  }
}

static void finish(bk_changelog_restore_t *r) {
  if (r->assigned) {
    bk_errmsg_t ignored;
    (void)set_assigned(r, 0, &ignored);
  }
  r->finished = 1;
}

static void sync_result(bk_changelog_restore_t *r) {
  const bk_cl_replay_t *p = &r->replay;
  r->res.records_read = p->records + p->markers;
  r->res.records_applied = p->applied;
  r->res.records_dropped = p->dropped;
  r->res.markers = p->markers;
  r->res.max_epoch = p->max_epoch;
  r->res.next_epoch = bk_cl_first_epoch(p->max_epoch);
  r->res.has_marker = p->marker_offset >= 0;
  r->res.marker_epoch = p->marker_epoch;
  if (!r->settled)
    r->res.committed_epoch = p->marker_offset >= 0 ? p->marker_epoch : r->known_epoch;
  r->res.marker_prev = p->marker_prev;
  r->res.markers_beyond = p->markers_beyond;
  r->res.finished = r->settled;
  r->res.marker_offset = p->marker_offset;
  r->res.positions = p->marker_offset >= 0 ? (const void *)p->blob : NULL;
  r->res.positions_len = p->blob_len;
  r->res.tail_keys = p->n_tail;
}

brook_err_t bk_changelog_restore_step(bk_changelog_restore_t *r, size_t max_records, int max_ms,
                                      int wait_ms, int *done, bk_errmsg_t *why) {
  *done = r->finished;
  if (r->finished) {
    if (r->failed)
      bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": the restore failed already",
                    r->topic, r->partition);
    return r->failed ? BROOK_ERR_STATE : BROOK_OK;
  }
  uint64_t deadline = now_ms() + (uint64_t)(max_ms > 0 ? max_ms : 0);
  size_t taken = 0;
  brook_err_t err = BROOK_OK;
  int at_end = r->end >= 0 && r->next >= r->end;
  while (!err && !at_end && taken < max_records) {
    size_t want = max_records - taken < BATCH ? max_records - taken : BATCH;
    ssize_t n = rd_kafka_consume_batch_queue(r->q, wait_ms, r->msgs, want);
    wait_ms = 0; /* only for the first batch */
    if (n <= 0)
      break; /* nothing has arrived yet */
    ssize_t i = 0;
    for (; i < n && !err && !at_end; i++) {
      const rd_kafka_message_t *m = r->msgs[i];
      if (m->err) {
        err = take_error(r, m, &at_end, why);
        continue;
      }
      if (r->end < 0 && (err = learn_bounds(r, why)))
        break;
      if (m->offset < r->next)
        continue; /* already read (a re-fetch) */
      if (m->offset >= r->end) {
        at_end = 1; /* written after the restore began: not ours to read */
        break;
      }
      err = take(r, m, why);
      r->next = m->offset + 1;
      taken++;
      at_end = r->next >= r->end;
    }
    for (ssize_t j = 0; j < n; j++)
      rd_kafka_message_destroy(r->msgs[j]);
    if (max_ms >= 0 && now_ms() >= deadline)
      break;
  }
  if (!err && !at_end && r->end < 0 && now_ms() - r->started_ms >= r->timeout_ms) {
    bk_errmsg_set(why,
                  "changelog '%s' partition %" PRId32 ": no answer from the cluster within %" PRIu64
                  " ms (does the partition exist? internal topics are checked with "
                  "bk_kafka_ensure_topics before a restore)",
                  r->topic, r->partition, r->timeout_ms);
    err = BROOK_ERR_TIMEOUT;
  }
  sync_result(r);
  if (err) {
    r->failed = 1;
    finish(r);
    *done = 1;
    return err;
  }
  if (at_end) {
    finish(r);
    *done = 1;
  }
  return BROOK_OK;
}

brook_err_t bk_changelog_restore_finish(bk_changelog_restore_t *r, uint64_t task_epoch,
                                        uint64_t task_prev, bk_errmsg_t *why) {
  if (!r->finished || r->failed || r->settled) {
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": finish %s", r->topic, r->partition,
                  r->settled  ? "ran already"
                  : r->failed ? "after a failed restore"
                              : "before the end");
    return BROOK_ERR_STATE;
  }
  uint64_t own = r->res.committed_epoch;
  if (task_epoch && task_epoch < own) {
    bk_errmsg_set(why,
                  "changelog '%s' partition %" PRId32 ": the task's commit %" PRIu64
                  " is below this store's %" PRIu64 " (restore it again with upto_epoch)",
                  r->topic, r->partition, task_epoch, own);
    return BROOK_ERR_INVALID_ARG;
  }
  brook_err_t err = BROOK_OK;
  if (task_epoch > own)
    err = bk_cl_replay_settle_task(&r->replay, task_epoch, task_prev, why);
  if (!err)
    err = bk_cl_replay_finish(&r->replay, why);
  if (err) {
    r->failed = 1;
    sync_result(r);
    return err;
  }
  r->settled = 1;
  if (task_epoch > own)
    r->res.committed_epoch = task_epoch;
  sync_result(r);
  return BROOK_OK;
}

rd_kafka_queue_t *bk_changelog_restore_queue(bk_changelog_restore_t *r) { return r->q; }

const bk_changelog_restore_result_t *bk_changelog_restore_result(bk_changelog_restore_t *r) {
  return &r->res;
}

void bk_changelog_restore_tail_key(const bk_changelog_restore_t *r, size_t i, const void **key,
                                   size_t *klen) {
  bk_cl_replay_tail_key(&r->replay, i, key, klen);
}

void bk_changelog_restore_free(bk_changelog_restore_t *r) {
  if (!r)
    return;
  if (r->assigned) {
    bk_errmsg_t ignored;
    (void)set_assigned(r, 0, &ignored);
  }
  if (r->q)
    rd_kafka_queue_destroy(r->q);
  bk_cl_replay_free(&r->replay);
  bk_free(r->alloc, r->scratch);
  bk_free(r->alloc, r);
}
