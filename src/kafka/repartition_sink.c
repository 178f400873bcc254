/* The repartition sink (kafka/repartition.h): one instance per upstream task, writing the
 * task's records to partition murmur2(key) % partitions of the repartition topic and its
 * watermark to every partition. Each write counts as a delivery against the batch's epoch, so
 * the input's commit waits for it. Loop thread. */
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

typedef struct rp_sink {
  const bk_krp_topic_t *tp; /* resolved: the reader's start asked the cluster */
  bk_worker_t *w;
  bk_kprod_t *prod;
  brook_ctx_t *ctx;
  uint32_t upstream;    /* this task's partition upstream */
  brook_time_t sent_wm; /* the last watermark written, its state, and when */
  int sent_state;
  brook_time_t sent_at;
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
  unsigned char value[BK_KRP_WM_SIZE];
  bk_krp_wm_encode(&wm, value);
  for (int32_t q = 0; q < tp->partitions; q++) {
    uint64_t epoch = bk_rt_delivery_add(s->w);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    if (!epoch || !h) {
      if (epoch)
        bk_rt_delivery_done(s->w, epoch);
      return BROOK_ERR_NOMEM;
    }
    rd_kafka_header_add(h, BK_KRP_HEADER, -1, "", 0);
    rd_kafka_resp_err_t kerr = bk_kprod_send_to(s->prod, tp->name, q, NULL, 0, value, sizeof(value),
                                                now, h, epoch, BK_KMSG_OUTPUT);
    if (kerr) {
      rd_kafka_headers_destroy(h);
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

static brook_err_t rp_one(brook_ctx_t *ctx, rp_sink_t *s, const brook_record_t *rec) {
  const bk_krp_topic_t *tp = s->tp;
  if (rec->timestamp <= 0) { /* a Kafka timestamp of 0 or less would become "now" */
    brook_ctx_set_error(ctx, "event time %lld cannot cross repartition topic '%s' (must be > 0)",
                        (long long)rec->timestamp, tp->name);
    return BROOK_ERR_INVALID_ARG;
  }
  size_t klen = rec->key ? rec->key_len : 0;
  int32_t q = (int32_t)bk_murmur2_partition(rec->key, klen, (uint32_t)tp->partitions);
  uint64_t epoch = bk_rt_delivery_add(s->w);
  if (!epoch)
    return BROOK_ERR_NOMEM;
  rd_kafka_headers_t *h = bk_kprod_headers(rec);
  rd_kafka_resp_err_t kerr =
      bk_kprod_send_to(s->prod, tp->name, q, rec->key, klen, rec->value,
                       rec->value ? rec->value_len : 0, rec->timestamp, h, epoch, BK_KMSG_OUTPUT);
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
  bk_free(bk_rt_alloc(s->w), s);
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
