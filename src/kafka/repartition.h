/* Repartition topics: how a key change in a Kafka pipeline crosses instances, like Kafka
 * Streams' repartition topics, with watermarks carried through.
 *
 * The rewrite (repartition.c, the Kafka source type's `repartition` hook, called by
 * runtime/repartition_plan.c): the re-keying node R (key_by, or an automatic repartition)
 * feeds a repartition sink; R's consumers read a new Kafka source of the topic
 * "<group>-<identity of R>-repartition" (kafka/internal_topic_names.h) in the same consumer
 * group, so they form a sub-topology of their own whose stateful nodes run per task of the
 * topic's partitions (runtime/task_ids.h). The topic's partition count is R's
 * brook_stream_set_partitions, else the largest of the upstream source's topics'; the topic
 * is created or checked (bk_kafka_ensure_topics) when the runtime is created, before anything
 * is produced.
 *
 * The sink (repartition_sink.c) runs per upstream task: record r goes to partition
 * murmur2(key) % partitions (Kafka's partitioner, and bk_plan_exchange_task's), with its key,
 * value, headers and event time (the message timestamp), counted as a delivery against the
 * batch's epoch (runtime/delivery.h), so a commit of the input waits for it: at least once
 * through the topic. Its value is framed (below) with its position: the upstream input
 * message it derives from, so that the reader can drop what a replay writes again (an
 * upstream task that crashed after producing and before committing its input, or a task
 * that moved to another instance, reads its input again from the last commit): exactly once
 * into the downstream state. Every upstream task also writes its watermark into every partition of
 * the topic: a watermark record (below) after the records it covers, at most every
 * BK_KRP_WM_GAP_MS when it advances, when its idleness changes, and every
 * BK_KRP_WM_HEARTBEAT_MS anyway (an idle task, and a reader that starts from a committed
 * offset, still hear from it).
 *
 * The reader (repartition_source.c, inside the Kafka source): watermark records never become
 * records; per partition it keeps the last watermark of each upstream task, and the
 * partition's (split's) watermark is the minimum over the upstream tasks that are not idle,
 * holding at the minimum until every upstream task was heard from, so windows after a
 * repartition close exactly when they would without one. Records do not move it (its
 * strategy keeps the current watermark). Per partition it also keeps the last position
 * applied of each upstream stream, stored with the task's state (runtime/positions.h) and
 * restored when the task opens; a record at or below it was applied before: dropped. */
#ifndef BROOK_KAFKA_REPARTITION_H
#define BROOK_KAFKA_REPARTITION_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include <brook/time.h>

#include "core/errmsg.h"
#include "core/topology.h"
#include "runtime/positions.h"

typedef struct bk_ksrc bk_ksrc_t;
typedef struct bk_ksrc_cfg bk_ksrc_cfg_t;

/* One repartition topic, shared by its sink's and its reader's configurations (owned by the
 * sink's). Its partition count and upstream task count come from the cluster when a runtime
 * starts (bk_krp_resolve), once for every runtime built from the topology. */
typedef struct bk_krp_topic {
  char *name;
  const bk_ksrc_cfg_t *upstream; /* the upstream Kafka source's (connection, topics) */
  uint32_t explicit_n;           /* brook_stream_set_partitions on the re-keying node, or 0 */
  uv_mutex_t mu;                 /* guards what follows (runtimes may start on two threads) */
  int resolved;
  int32_t partitions;  /* the topic's */
  uint32_t n_upstream; /* upstream tasks: the largest partition count of the upstream topics */
} bk_krp_topic_t;

#define BK_KRP_WM_GAP_MS 50         /* least time between two watermark records of a task */
#define BK_KRP_WM_HEARTBEAT_MS 1000 /* a task's watermark is written at least this often */
#define BK_KRP_FETCH_WAIT_MS "10"   /* the reader's fetch.wait.max.ms unless the source sets it */

/* ---- the frame: every value in a repartition topic starts with it ----
 * Bytes: BK_KRP_MAGIC, version 1, kind (BK_KRP_DATA / BK_KRP_WATERMARK), flags; then for a
 * data record with BK_KRP_F_POSITION its position (below), then the record's value (none with
 * BK_KRP_F_NULL: the record's value is NULL; BK_KRP_F_HEADERS: the message has the record's
 * headers, else the reader need not parse any); for a watermark record the watermark (below).
 * In the value rather than in headers: no header list is built per record on either side,
 * and the reader hands user code the bytes after the frame (no copy), the record's own
 * headers untouched. */
#define BK_KRP_MAGIC 0xB7
#define BK_KRP_FRAME 4
enum { BK_KRP_DATA = 1, BK_KRP_WATERMARK = 2 };
enum { BK_KRP_F_NULL = 1, BK_KRP_F_POSITION = 2, BK_KRP_F_HEADERS = 4 };

/* A data record's position: which upstream stream (one input partition of the upstream
 * sub-topology: its topic's murmur2 hash and partition) it comes from, the offset of the
 * input message it derives from and its index among the records derived from that message
 * (flat_map makes several). The same on a replay of the same input, whichever instance or
 * batch cut replays it: the reader drops every record at or below the last position it
 * applied of the stream (exactly-once state downstream). Bytes: stream (u32 BE), partition
 * (u32 BE), offset (i64 BE), index (u32 BE). */
#define BK_KRP_POS_SIZE 20
typedef struct bk_krp_pos {
  uint32_t stream;
  int32_t partition;
  int64_t offset;
  uint32_t index;
} bk_krp_pos_t;

/* The tag byte of a reader's upstream positions in a task's positions (runtime/positions.h):
 * entry name = tag, stream (u32 BE), stream partition (u32 BE), index (u32 BE), then the
 * repartition topic; entry partition = the repartition topic's partition; offset = the
 * position's offset. */
#define BK_KRP_UPSTREAM_TAG 0x01
#define BK_KRP_UPSTREAM_NAME 13 /* the name's bytes before the topic */

static inline void bk_krp_put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static inline uint32_t bk_krp_get32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Orders two positions of one stream: <0, 0, >0. */
static inline int bk_krp_pos_cmp(int64_t off_a, uint32_t idx_a, int64_t off_b, uint32_t idx_b) {
  if (off_a != off_b)
    return off_a < off_b ? -1 : 1;
  return idx_a == idx_b ? 0 : idx_a < idx_b ? -1 : 1;
}

static inline void bk_krp_pos_encode(const bk_krp_pos_t *pos, unsigned char out[BK_KRP_POS_SIZE]) {
  bk_krp_put32(out, pos->stream);
  bk_krp_put32(out + 4, (uint32_t)pos->partition);
  bk_krp_put32(out + 8, (uint32_t)((uint64_t)pos->offset >> 32));
  bk_krp_put32(out + 12, (uint32_t)pos->offset);
  bk_krp_put32(out + 16, pos->index);
}

static inline void bk_krp_pos_decode(const unsigned char in[BK_KRP_POS_SIZE], bk_krp_pos_t *pos) {
  pos->stream = bk_krp_get32(in);
  pos->partition = (int32_t)bk_krp_get32(in + 4);
  pos->offset = (int64_t)((uint64_t)bk_krp_get32(in + 8) << 32 | bk_krp_get32(in + 12));
  pos->index = bk_krp_get32(in + 16);
}

/* ---- the watermark record (kind BK_KRP_WATERMARK), after the frame: ---- */
#define BK_KRP_WM_SIZE 20
typedef struct bk_krp_wm {
  uint32_t upstream;   /* the writing task: its partition of the upstream sub-topology */
  uint32_t n_upstream; /* how many upstream tasks write into the topic */
  brook_time_t wm;     /* its watermark */
  uint8_t state;       /* BK_WM_* (time/watermark.h) */
} bk_krp_wm_t;

/* Bytes: 'W', version 1, state, 0, upstream (u32 BE), n_upstream (u32 BE), wm (i64 BE). */
static inline void bk_krp_wm_encode(const bk_krp_wm_t *w, unsigned char out[BK_KRP_WM_SIZE]) {
  out[0] = 'W', out[1] = 1, out[2] = w->state, out[3] = 0;
  uint64_t v = (uint64_t)w->wm;
  bk_krp_put32(out + 4, w->upstream);
  bk_krp_put32(out + 8, w->n_upstream);
  bk_krp_put32(out + 12, (uint32_t)(v >> 32));
  bk_krp_put32(out + 16, (uint32_t)v);
}

/* 0 and *w filled, or -1 if the bytes are no watermark record of this version. */
static inline int bk_krp_wm_decode(const void *in, size_t len, bk_krp_wm_t *w) {
  const unsigned char *b = in;
  if (!b || len != BK_KRP_WM_SIZE || b[0] != 'W' || b[1] != 1 || b[2] > 2)
    return -1;
  w->state = b[2];
  w->upstream = bk_krp_get32(b + 4);
  w->n_upstream = bk_krp_get32(b + 8);
  w->wm = (brook_time_t)((uint64_t)bk_krp_get32(b + 12) << 32 | bk_krp_get32(b + 16));
  return 0;
}

/* ---- repartition.c ---- */

/* The Kafka source type's `repartition` hook (core/topology.h): rewires the topology around
 * `rekeying`, fed by Kafka source `source` (see the top). No call to the cluster (that waits
 * for start-up, bk_krp_resolve). BROOK_ERR_INVALID_ARG (a regex subscription without
 * brook_stream_set_partitions, an identity that makes no topic name) or BROOK_ERR_NOMEM; the
 * reason in *why. */
brook_err_t bk_krp_rewrite(bk_node_t *source, bk_node_t *rekeying, size_t n_workers,
                           bk_errmsg_t *why);

/* Asks the cluster once (the first call; later ones return what it found): the upstream
 * topics' partition counts, then makes sure of the topic (bk_kafka_ensure_topics: created if
 * missing, its partition count checked). Blocking, bounded by the upstream source's
 * startup_timeout_ms (10 s if it has none): called where a runtime starts its sources
 * (repartition_source.c), before any loop runs. BROOK_OK, or BROOK_ERR_KAFKA (a topic that
 * cannot be created or has the wrong partition count, named), BROOK_ERR_TIMEOUT,
 * BROOK_ERR_NOMEM with the reason in *why. */
brook_err_t bk_krp_resolve(bk_krp_topic_t *rt, bk_errmsg_t *why);

/* ---- repartition_sink.c ---- */

/* Adds the repartition sink of `in` (a sink placed per task, core/topology.h per_task_sink)
 * named `name`, writing to `topic` (owned by the sink from now on, also on failure) through a
 * producer configured as the upstream source's connection. BROOK_OK or an error recorded in
 * the topology. */
brook_err_t bk_krp_sink_add(brook_stream_t *in, const char *name, bk_krp_topic_t *topic);

/* Frees a topic made by bk_krp_topic_new (NULL: no-op). */
void bk_krp_topic_free(bk_krp_topic_t *topic, const brook_allocator_t *a);

/* ---- repartition_source.c ---- */

/* Message `m` of partition k->parts[part] of a repartition topic's reader. Returns 1 if it
 * is no record: a watermark record (taken: the partition's watermark moves), a replayed
 * record (at or below the last position applied of its upstream stream: dropped, counted in
 * stats.repartition_replays_dropped), or one that is not a repartition record of this
 * version (the run fails: BROOK_ERR_CORRUPT naming topic, partition and offset). Else 0: a
 * record whose value is *value, *value_len (the bytes after the frame, or NULL), *headers 0 if
 * the record has none (its message's headers need not be parsed), its position now the last
 * applied of its stream. Loop thread. */
int bk_krp_source_control(bk_ksrc_t *k, const rd_kafka_message_t *m, size_t part,
                          const void **value, size_t *value_len, int *headers);

/* The reader's upstream positions of task `task` appended to `out` (runtime/positions.h, with
 * the task's input positions): per partition of the task, the last position applied of each
 * upstream stream. BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_krp_source_positions(bk_ksrc_t *k, int32_t task, bk_positions_t *out);

/* Partition k->parts[part]'s task just opened: its upstream positions are the ones stored
 * with the task's state (none without state on disk: the state starts empty, so must the
 * positions). BROOK_OK or BROOK_ERR_NOMEM (the run fails). */
brook_err_t bk_krp_source_resume(bk_ksrc_t *k, size_t part);

/* A reader starts (ks_start): its topic is resolved first (bk_krp_resolve); on failure the
 * source's context holds the message. BROOK_OK for an ordinary source. */
brook_err_t bk_krp_source_start(bk_ksrc_t *k);

/* The reader's watermark state (k->rp); NULL is a no-op. */
void bk_krp_source_free(bk_ksrc_t *k);

/* The watermark strategy of a repartition topic's reader: its records never move it. */
brook_time_t bk_krp_keep_watermark(const brook_record_t *rec, size_t split, brook_time_t current,
                                   void *opaque);

#endif
