/* The repartition sink (kafka/repartition.h): one instance per upstream task, writing the
 * task's records to partition murmur2(key) % partitions of the repartition topic and its
 * watermark to every partition. Each write counts as a delivery against the batch's epoch, so
 * the input's commit waits for it.
 *
 * A record's position is the input message it derives from: the Kafka source whose batch is
 * passing through (the worker's BK_SLOT_KAFKA_BATCH) traced each of its records to its
 * message (kafka_trace.h: the headers pointer records keep through map, filter, key_by and
 * the records a flat_map copies from its input), and the sink counts the records of each
 * message. A record it cannot trace (emitted outside a batch, by a timer; or built from
 * scratch by a callback, without the input's headers), or one that would not come after the
 * last position sent of its stream (an operator that reorders), goes without a position:
 * the reader always applies it (at least once), counted in
 * stats.repartition_records_unpositioned. Loop thread. */
#include <stdio.h>
#include <string.h>

#include <brook/kafka.h>

#include "core/alloc.h"
#include "core/murmur2.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_producer.h"
#include "kafka/kafka_source_impl.h" /* the upstream source's configuration */
#include "kafka/repartition.h"
#include "time/watermark.h"

typedef struct rp_cfg {
  bk_krp_topic_t *topic; /* owned */
  char **props;          /* the upstream source's, copied */
} rp_cfg_t;

/* The records sent so far of one message of the batch (by its trace index): the index of
 * its next record. A message is known by its position, not by its address (reused). */
typedef struct rp_count {
  int64_t offset;
  int32_t partition;
  uint32_t stream;
  uint32_t n;
} rp_count_t;

typedef struct rp_sink {
  const bk_krp_topic_t *tp; /* resolved: the reader's start asked the cluster */
  bk_worker_t *w;
  bk_kprod_t *prod;
  brook_ctx_t *ctx;
  uint32_t upstream;    /* this task's partition upstream */
  brook_time_t sent_wm; /* the last watermark written, its state, and when */
  int sent_state;
  brook_time_t sent_at;
  rp_count_t *counts; /* [cap_counts], by trace index */
  size_t cap_counts;
  size_t hint;        /* the trace index of the last record found */
  bk_krp_pos_t *last; /* [n_last]: the last position sent of each stream */
  size_t n_last, cap_last;
  const void *hashed_rkt; /* the topic handle whose name's hash is `hashed` */
  uint32_t hashed;
  unsigned char *buf; /* frame + value of the record being sent */
  size_t cap_buf;
} rp_sink_t;

static void delivery_failed(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch,
                            unsigned flags, void *opaque) {
  (void)flags;
  rp_sink_t *s = opaque;
  bk_kprod_fail(p, "writing to repartition topic %s [%d] failed: %s", rd_kafka_topic_name(m->rkt),
                (int)m->partition, rd_kafka_err2str(m->err));
  bk_rt_delivery_done(s->w, epoch);
}

/* Writes the task's watermark into every partition, after the records it covers. */
static brook_err_t write_watermark(rp_sink_t *s, brook_time_t now) {
  const bk_krp_topic_t *tp = s->tp;
  bk_krp_wm_t wm = {s->upstream, tp->n_upstream, s->ctx->wm, (uint8_t)s->ctx->wm_idle};
  unsigned char value[BK_KRP_FRAME + BK_KRP_WM_SIZE] = {BK_KRP_MAGIC, 1, BK_KRP_WATERMARK, 0};
  bk_krp_wm_encode(&wm, value + BK_KRP_FRAME);
  for (int32_t q = 0; q < tp->partitions; q++) {
    uint64_t epoch = bk_rt_delivery_add(s->w);
    if (!epoch)
      return BROOK_ERR_NOMEM;
    rd_kafka_resp_err_t kerr = bk_kprod_send_to(s->prod, tp->name, q, NULL, 0, value, sizeof(value),
                                                now, NULL, epoch, BK_KMSG_OUTPUT);
    if (kerr) {
      bk_rt_delivery_done(s->w, epoch);
      brook_ctx_set_error(s->ctx, "writing a watermark to repartition topic '%s' [%d]: %s",
                          tp->name, (int)q, rd_kafka_err2str(kerr));
      return BROOK_ERR_KAFKA;
    }
  }
  s->sent_wm = wm.wm;
  s->sent_state = wm.state;
  s->sent_at = now;
  return BROOK_OK;
}

/* Writes the watermark if it changed (at most every BK_KRP_WM_GAP_MS unless `gap_passed`) or
 * the heartbeat is due. */
static brook_err_t maybe_write(rp_sink_t *s) {
  brook_time_t now = brook_ctx_now(s->ctx);
  int changed = s->ctx->wm != s->sent_wm || s->ctx->wm_idle != s->sent_state;
  brook_time_t since = now - s->sent_at;
  if ((changed && since >= BK_KRP_WM_GAP_MS) || since >= BK_KRP_WM_HEARTBEAT_MS)
    return write_watermark(s, now);
  return BROOK_OK;
}

static brook_err_t rp_open(brook_ctx_t *ctx, void *opaque, void **state) {
  const rp_cfg_t *cfg = opaque;
  bk_worker_t *w = bk_ctx_worker(ctx);
  if (!bk_rt_loop(w)) {
    brook_ctx_set_error(ctx, "a repartition topic needs a runtime on a loop (not the test driver)");
    return BROOK_ERR_STATE;
  }
  bk_errmsg_t why;
  brook_err_t err = bk_krp_resolve(cfg->topic, &why); /* done already: the reader started */
  if (err < 0) {
    brook_ctx_set_error(ctx, "%s", why.text);
    return err;
  }
  rp_sink_t *s = bk_calloc(bk_rt_alloc(w), 1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->tp = cfg->topic;
  s->w = w;
  s->ctx = ctx;
  s->upstream = (uint32_t)bk_ctx_task_partition(ctx);
  s->sent_wm = BROOK_TIME_MIN;
  s->sent_state = -1; /* nothing written yet: the first check writes */
  s->sent_at = BROOK_TIME_MIN / 2;
  char who[160];
  snprintf(who, sizeof(who), "repartition sink '%s'", ctx->node->name);
  char pwhy[512];
  err = bk_kprod_new(w, who, cfg->topic->upstream->bootstrap, cfg->props, 0, delivery_failed, s,
                     &s->prod, pwhy, sizeof(pwhy));
  if (err < 0) {
    brook_ctx_set_error(ctx, "%s", pwhy);
    bk_free(bk_rt_alloc(w), s);
    return err;
  }
  bk_rt_delivery_limit(w, cfg->topic->upstream->o.max_in_flight);
  *state = s;
  /* The clock checks the watermark (its idleness moves without a callback) and beats. */
  return brook_timer_set(ctx, BROOK_PROCESSING_TIME, brook_ctx_now(ctx), NULL, 0, 0);
}

/* The trace index of the message `rec` derives from in batch `t`, or SIZE_MAX. The records
 * of a batch come in the order of their messages: the last one found, then the next, are
 * tried first. */
static size_t trace_index(rp_sink_t *s, const bk_ktrace_t *t, const brook_record_t *rec) {
  uintptr_t h = (uintptr_t)rec->headers, first = (uintptr_t)t->e;
  if (h >= first && h < first + t->n * sizeof(*t->e)) { /* a tag: found at once */
    size_t i = (h - first) / sizeof(*t->e);
    if (rec->headers == &t->e[i].empty)
      return s->hint = i;
  }
  if (rec->headers) {
    for (size_t j = s->hint; j < s->hint + 2 && j < t->n; j++)
      if (t->e[j].headers == rec->headers)
        return s->hint = j;
    for (size_t j = 0; j < t->n; j++)
      if (t->e[j].headers == rec->headers)
        return s->hint = j;
  }
  const rd_kafka_message_t *m = bk_ktrace_find(t, rec); /* a key or value inside it */
  for (size_t j = 0; m && j < t->n; j++)
    if (t->e[j].msg == m)
      return s->hint = j;
  return SIZE_MAX;
}

/* The last position sent of (stream, partition), added if new; NULL if out of memory. */
static bk_krp_pos_t *last_of(rp_sink_t *s, uint32_t stream, int32_t partition) {
  for (size_t i = 0; i < s->n_last; i++)
    if (s->last[i].stream == stream && s->last[i].partition == partition)
      return &s->last[i];
  if (bk_grow(bk_rt_alloc(s->w), (void **)&s->last, &s->cap_last, s->n_last + 1, sizeof(*s->last)))
    return NULL;
  s->last[s->n_last] = (bk_krp_pos_t){stream, partition, -1, 0};
  return &s->last[s->n_last++];
}

/* The position of `rec` (see the top): 1 and *pos set, 0 if it goes without one, -1 out of
 * memory. */
static int position_of(rp_sink_t *s, const brook_record_t *rec, bk_krp_pos_t *pos) {
  bk_ksrc_t *k = *bk_rt_slot(s->w, BK_SLOT_KAFKA_BATCH);
  size_t i = k && k->trace.n ? trace_index(s, &k->trace, rec) : SIZE_MAX;
  if (i == SIZE_MAX)
    return 0;
  if (i >= s->cap_counts && bk_grow(bk_rt_alloc(s->w), (void **)&s->counts, &s->cap_counts,
                                    k->trace.cap > i ? k->trace.cap : i + 1, sizeof(*s->counts)))
    return -1;
  const rd_kafka_message_t *m = k->trace.e[i].msg;
  if (m->rkt != s->hashed_rkt) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    s->hashed = bk_murmur2(topic, strlen(topic));
    s->hashed_rkt = m->rkt;
  }
  rp_count_t *c = &s->counts[i];
  if (c->offset != m->offset || c->partition != m->partition || c->stream != s->hashed)
    *c = (rp_count_t){m->offset, m->partition, s->hashed, 0};
  *pos = (bk_krp_pos_t){s->hashed, m->partition, m->offset, c->n++};
  bk_krp_pos_t *last = last_of(s, pos->stream, pos->partition);
  if (!last)
    return -1;
  if (last->offset >= 0 && bk_krp_pos_cmp(pos->offset, pos->index, last->offset, last->index) <= 0)
    return 0; /* reordered: the reader would take it for a replay */
  *last = *pos;
  return 1;
}

/* The record's framed value in s->buf; NULL if out of memory. */
static const unsigned char *frame(rp_sink_t *s, const brook_record_t *rec, const bk_krp_pos_t *pos,
                                  size_t *len) {
  size_t vlen = rec->value ? rec->value_len : 0;
  size_t need = BK_KRP_FRAME + (pos ? BK_KRP_POS_SIZE : 0) + vlen;
  if (need > s->cap_buf) {
    unsigned char *b = bk_realloc(bk_rt_alloc(s->w), s->buf, need + 256);
    if (!b)
      return NULL;
    s->buf = b;
    s->cap_buf = need + 256;
  }
  unsigned char *p = s->buf;
  p[0] = BK_KRP_MAGIC, p[1] = 1, p[2] = BK_KRP_DATA;
  p[3] = (unsigned char)((rec->value ? 0 : BK_KRP_F_NULL) | (pos ? BK_KRP_F_POSITION : 0) |
                         (rec->header_count ? BK_KRP_F_HEADERS : 0));
  p += BK_KRP_FRAME;
  if (pos) {
    bk_krp_pos_encode(pos, p);
    p += BK_KRP_POS_SIZE;
  }
  if (vlen)
    memcpy(p, rec->value, vlen);
  *len = need;
  return s->buf;
}

static brook_err_t rp_one(brook_ctx_t *ctx, rp_sink_t *s, const brook_record_t *rec) {
  const bk_krp_topic_t *tp = s->tp;
  if (rec->timestamp <= 0) { /* a Kafka timestamp of 0 or less would become "now" */
    brook_ctx_set_error(ctx, "event time %lld cannot cross repartition topic '%s' (must be > 0)",
                        (long long)rec->timestamp, tp->name);
    return BROOK_ERR_INVALID_ARG;
  }
  bk_krp_pos_t pos;
  int positioned = position_of(s, rec, &pos);
  size_t vlen;
  const unsigned char *value =
      positioned >= 0 ? frame(s, rec, positioned ? &pos : NULL, &vlen) : NULL;
  if (!value)
    return BROOK_ERR_NOMEM;
  if (!positioned)
    bk_rt_count(s->w, BK_STAT_REPARTITION_UNPOSITIONED, 1);
  size_t klen = rec->key ? rec->key_len : 0;
  int32_t q = (int32_t)bk_murmur2_partition(rec->key, klen, (uint32_t)tp->partitions);
  uint64_t epoch = bk_rt_delivery_add(s->w);
  if (!epoch)
    return BROOK_ERR_NOMEM;
  rd_kafka_headers_t *h = bk_kprod_headers(rec);
  rd_kafka_resp_err_t kerr = bk_kprod_send_to(s->prod, tp->name, q, rec->key, klen, value, vlen,
                                              rec->timestamp, h, epoch, BK_KMSG_OUTPUT);
  if (!kerr)
    return BROOK_OK;
  if (h)
    rd_kafka_headers_destroy(h);
  bk_rt_delivery_done(s->w, epoch);
  brook_ctx_set_error(ctx, "producing to repartition topic '%s': %s", tp->name,
                      rd_kafka_err2str(kerr));
  return BROOK_ERR_KAFKA;
}

static brook_err_t rp_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  rp_sink_t *s = state;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = rp_one(ctx, s, &recs[i]);
    if (err < 0 && (err = brook_ctx_fail_record(ctx, &recs[i], err, NULL)) < 0)
      return err;
  }
  return BROOK_OK;
}

static brook_err_t rp_watermark(brook_ctx_t *ctx, void *state, brook_time_t wm) {
  (void)ctx, (void)wm;
  return maybe_write(state);
}

static brook_err_t rp_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *timer) {
  (void)timer;
  brook_err_t err = maybe_write(state);
  if (err < 0)
    return err;
  return brook_timer_set(ctx, BROOK_PROCESSING_TIME, brook_ctx_now(ctx) + BK_KRP_WM_GAP_MS, NULL, 0,
                         0);
}

static void rp_close(void *state, void *opaque) {
  (void)opaque;
  rp_sink_t *s = state;
  if (!s)
    return;
  bk_kprod_close(s->prod);
  const brook_allocator_t *a = bk_rt_alloc(s->w);
  bk_free(a, s->counts);
  bk_free(a, s->last);
  bk_free(a, s->buf);
  bk_free(a, s);
}

static const brook_operator_t repartition_sink_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "repartition_sink",
    .open = rp_open,
    .process_batch = rp_batch,
    .on_watermark = rp_watermark,
    .on_timer = rp_timer,
    .close = rp_close,
};

static void rp_cfg_free(void *p, const brook_allocator_t *a) {
  rp_cfg_t *cfg = p;
  if (!cfg)
    return;
  bk_krp_topic_free(cfg->topic, a);
  bk_kafka_props_free(a, cfg->props);
  bk_free(a, cfg);
}

brook_err_t bk_krp_sink_add(brook_stream_t *in, const char *name, bk_krp_topic_t *topic) {
  brook_topology_t *t = brook_stream_topology(in);
  const brook_allocator_t *a = &t->alloc;
  rp_cfg_t *cfg = bk_calloc(a, 1, sizeof(*cfg));
  if (!cfg || bk_kafka_props_copy(a, (const char *const *)topic->upstream->props, &cfg->props)) {
    bk_free(a, cfg);
    bk_krp_topic_free(topic, a);
    return bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", name);
  }
  cfg->topic = topic;
  size_t before = t->n_nodes;
  brook_err_t err =
      bk_topology_add_operator(&in, 1, &repartition_sink_op, cfg, rp_cfg_free, name, NULL, 0, NULL);
  if (err < 0 || t->n_nodes != before + 1)
    return err < 0 ? err : BROOK_ERR_STATE;
  bk_node_t *node = t->nodes[before];
  node->per_task_sink = 1;       /* each upstream task writes its own watermark */
  node->stateful = BK_STATELESS; /* its timer is a clock, not state */
  return BROOK_OK;
}
