/* The Kafka sink: an operator without outputs that hands each record to an idempotent
 * librdkafka producer. Delivery reports come back through the producer's main queue, which
 * the loop watches (kafka_poll.c): each record is counted against the current delivery
 * epoch (runtime/delivery.h) until the brokers acknowledge it, so sources commit only input
 * whose outputs are safe and the runtime ends only once everything is acknowledged.
 * A record the brokers refuse for good fails the pipeline or goes to the dead-letter topic
 * (kafka/dead_letter.c builds the letters, cut to fit the producer's limit).
 * The producer itself (defaults, delivery reports, close) is kafka_producer.c. Loop thread. */
#include <stdio.h>
#include <string.h>

#include <brook/kafka.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "kafka/dead_letter.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_producer.h"
#include "kafka/kafka_serde.h"
#include "kafka/kafka_startup.h"

typedef struct sink_cfg {
  brook_kafka_sink_opts_t o; /* strings below replace the user's */
  char *bootstrap, *topic, *dlq;
  char **props;
  bk_serde_chain_t key_serde, value_serde; /* the serialisers (kafka_serde.h) */
} sink_cfg_t;

typedef struct sink {
  const sink_cfg_t *cfg;
  bk_worker_t *w;
  bk_kprod_t *prod;
  bk_kafka_startup_t *startup; /* until the cluster answers */
} sink_t;

void brook_kafka_sink_opts_init_size(brook_kafka_sink_opts_t *opts, size_t size) {
  brook_kafka_sink_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.max_in_flight = 100000;
  d.startup_timeout_ms = 30000;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t kafka_sink_versions[] = {
    BK_OPTS_VERSION(brook_kafka_sink_opts_t, max_in_flight),
    BK_OPTS_VERSION(brook_kafka_sink_opts_t, startup_timeout_ms), /* issue 11 */
    BK_OPTS_VERSION(brook_kafka_sink_opts_t, value_serde),        /* issue 12 */
};
static const bk_opts_type_t kafka_sink_opts_type =
    BK_OPTS_TYPE(brook_kafka_sink_opts_t, kafka_sink_versions);

/* The brokers refused `m` for good: sent once more cut (a letter too large), the dead-letter
 * topic, or a pipeline failure. */
static void delivery_failed(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch,
                            unsigned flags, void *opaque) {
  sink_t *s = opaque;
  if (bk_dead_letter_retry_cut(p, m, epoch, flags))
    return;
  const char *topic = rd_kafka_topic_name(m->rkt);
  char why[512];
  snprintf(why, sizeof(why), "%s", rd_kafka_err2str(m->err));
  if (s->cfg->o.on_failure != BROOK_KAFKA_DELIVERY_DEAD_LETTER || (flags & BK_KMSG_DEAD_LETTER)) {
    bk_kprod_fail(p, "delivery to %s [%d] failed: %s", topic, (int)m->partition, why);
    bk_rt_delivery_done(s->w, epoch);
    return;
  }
  bk_dead_letter_t dl;
  bk_dead_letter_of_message(&dl, m);
  if (bk_dead_letter_refusal(p, s->cfg->dlq, &dl, topic, m->partition, m->err, epoch, flags, why,
                             sizeof(why))) {
    bk_kprod_fail(p, "dead-lettering a record for %s [%d] failed: %s", topic, (int)m->partition,
                  why);
    bk_rt_delivery_done(s->w, epoch);
  }
}

static int startup_note(void *opaque, int err, const char *fac, const char *text) {
  return bk_kafka_startup_note(((sink_t *)opaque)->startup, err, fac, text);
}

static brook_err_t sink_open(brook_ctx_t *ctx, void *opaque, void **state) {
  const sink_cfg_t *cfg = opaque;
  bk_worker_t *w = bk_ctx_worker(ctx);
  if (!bk_rt_loop(w)) {
    brook_ctx_set_error(ctx, "a Kafka sink needs a runtime on a loop (not the test driver)");
    return BROOK_ERR_STATE;
  }
  sink_t *s = bk_calloc(bk_rt_alloc(w), 1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->cfg = cfg;
  s->w = w;
  char who[160], why[512];
  snprintf(who, sizeof(who), "Kafka sink '%s'", ctx->node->name);
  brook_err_t err = bk_kprod_new(w, who, cfg->bootstrap, cfg->props, 0, delivery_failed, s,
                                 &s->prod, why, sizeof(why));
  if (err < 0) {
    brook_ctx_set_error(ctx, "%s", why);
    bk_free(bk_rt_alloc(w), s);
    return err;
  }
  if ((err = bk_kafka_startup_begin(w, bk_kprod_rk(s->prod), who, cfg->bootstrap, cfg->props,
                                    cfg->o.startup_timeout_ms, &s->startup)) < 0) {
    bk_kprod_close(s->prod);
    bk_free(bk_rt_alloc(w), s);
    return err;
  }
  bk_kprod_set_error_hook(s->prod, startup_note, s);
  /* Backpressure: sources wait while this many records await acknowledgement. */
  bk_rt_delivery_limit(w, cfg->o.max_in_flight);
  *state = s;
  return BROOK_OK;
}

/* The producer refused a record as larger than its message.max.bytes. An error-stream record
 * is a dead letter already: written cut to fit. An output goes to the dead-letter topic if
 * there is one (cut to fit there). Else the refusal stands (the error policy decides). */
static rd_kafka_resp_err_t too_large(sink_t *s, const brook_record_t *rec, const char *topic,
                                     const void *k, size_t kl, const void *v, size_t vl, int64_t ts,
                                     uint64_t epoch, unsigned flags, char *why, size_t why_len) {
  bk_dead_letter_t dl = {.key = k,
                         .key_len = kl,
                         .value = v,
                         .value_len = vl,
                         .timestamp = ts,
                         .headers = rec->headers,
                         .header_count = rec->header_count,
                         .brook_own = flags == BK_KMSG_ERROR_RECORD};
  if (flags == BK_KMSG_ERROR_RECORD)
    return bk_dead_letter_send(s->prod, topic, &dl, 0, epoch, flags, why, why_len);
  if (s->cfg->o.on_failure != BROOK_KAFKA_DELIVERY_DEAD_LETTER)
    return RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
  return bk_dead_letter_refusal(s->prod, s->cfg->dlq, &dl, topic, -1,
                                RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, epoch, flags, why, why_len);
}

static brook_err_t sink_one(brook_ctx_t *ctx, sink_t *s, const brook_record_t *rec) {
  const sink_cfg_t *cfg = s->cfg;
  const char *topic = cfg->o.topic_fn ? cfg->o.topic_fn(rec, cfg->o.topic_opaque) : NULL;
  if (!topic)
    topic = cfg->topic;
  if (!topic) {
    brook_ctx_set_error(ctx, "no topic for this record (topic_fn gave NULL, no fixed topic)");
    return BROOK_ERR_INVALID_ARG;
  }
  const void *k = NULL, *v = NULL;
  size_t kl = 0, vl = 0;
  brook_err_t err;
  if (rec->key &&
      (err = bk_serde_chain_run(ctx, &cfg->key_serde, rec->key, rec->key_len, &k, &kl, NULL)) < 0)
    return err;
  if (rec->value && (err = bk_serde_chain_run(ctx, &cfg->value_serde, rec->value, rec->value_len,
                                              &v, &vl, NULL)) < 0)
    return err;
  uint64_t epoch = bk_rt_delivery_add(s->w);
  if (!epoch)
    return BROOK_ERR_NOMEM;
  rd_kafka_headers_t *h = bk_kprod_headers(rec);
  int64_t ts = rec->timestamp > 0 ? rec->timestamp : 0; /* 0: librdkafka stamps now */
  unsigned flags = bk_rt_in_error_stream(s->w) ? BK_KMSG_ERROR_RECORD : BK_KMSG_OUTPUT;
  rd_kafka_resp_err_t kerr = bk_kprod_send(s->prod, topic, k, kl, v, vl, ts, h, epoch, flags);
  if (!kerr)
    return BROOK_OK;
  if (h)
    rd_kafka_headers_destroy(h);
  char why[512];
  snprintf(why, sizeof(why), "%s", rd_kafka_err2str(kerr));
  if (kerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
      !too_large(s, rec, topic, k, kl, v, vl, ts, epoch, flags, why, sizeof(why)))
    return BROOK_OK;
  bk_rt_delivery_done(s->w, epoch);
  brook_ctx_set_error(ctx, "producing to '%s': %s", topic, why);
  return BROOK_ERR_KAFKA;
}

static brook_err_t sink_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  sink_t *s = state;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = sink_one(ctx, s, &recs[i]);
    if (err < 0 && (err = brook_ctx_fail_record(ctx, &recs[i], err, NULL)) < 0)
      return err;
  }
  return BROOK_OK;
}

static void sink_close(void *state, void *opaque) {
  (void)opaque;
  sink_t *s = state;
  if (!s)
    return;
  bk_kafka_startup_end(s->startup);
  bk_kprod_close(s->prod);
  bk_free(bk_rt_alloc(s->w), s);
}

static const brook_operator_t kafka_sink_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "kafka_sink",
    .open = sink_open,
    .process_batch = sink_batch,
    .close = sink_close,
};

static void sink_cfg_free(void *p, const brook_allocator_t *a) {
  sink_cfg_t *cfg = p;
  if (!cfg)
    return;
  bk_free(a, cfg->bootstrap);
  bk_free(a, cfg->topic);
  bk_free(a, cfg->dlq);
  bk_kafka_props_free(a, cfg->props);
  bk_free(a, cfg);
}

brook_err_t brook_sink_kafka(brook_stream_t *in, const char *name,
                             const brook_kafka_sink_opts_t *opts) {
  if (!in)
    return BROOK_ERR_INVALID_ARG;
  brook_topology_t *t = brook_stream_topology(in);
  brook_kafka_sink_opts_t o;
  brook_kafka_sink_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &kafka_sink_opts_type, &why))
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "sink_kafka: %s", why.text);
  const char *problem = NULL;
  bk_serde_chain_t chain; /* checks the serdes; the sink's own are built below */
  if (!o.topic && !o.topic_fn)
    problem = "a topic or a topic_fn is required";
  else if (bk_kafka_serde_chain(&chain, &o.key, o.key_serde, BK_SERDE_WRITE, "key serialiser",
                                &why) ||
           bk_kafka_serde_chain(&chain, &o.value, o.value_serde, BK_SERDE_WRITE, "value serialiser",
                                &why))
    problem = why.text;
  else if (o.on_failure == BROOK_KAFKA_DELIVERY_DEAD_LETTER && !o.dead_letter_topic)
    problem = "on_failure DEAD_LETTER needs dead_letter_topic";
  else if (o.on_failure != BROOK_KAFKA_DELIVERY_FAIL &&
           o.on_failure != BROOK_KAFKA_DELIVERY_DEAD_LETTER)
    problem = "unknown on_failure";
  else if (o.max_in_flight == 0)
    problem = "max_in_flight must be > 0";
  else if (o.startup_timeout_ms < 0)
    problem = "startup_timeout_ms must be >= 0 (0: no limit)";
  else
    problem = bk_kafka_props_problem(o.properties, o.bootstrap_servers, &why);
  if (problem)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "sink_kafka: %s", problem);
  sink_cfg_t *cfg = bk_calloc(&t->alloc, 1, sizeof(*cfg));
  brook_err_t err = BROOK_ERR_NOMEM;
  if (cfg) {
    cfg->o = o;
    /* Checked above: these cannot fail. A CUSTOM format's chain calls through cfg->o. */
    bk_kafka_serde_chain(&cfg->key_serde, &cfg->o.key, o.key_serde, BK_SERDE_WRITE,
                         "key serialiser", &why);
    bk_kafka_serde_chain(&cfg->value_serde, &cfg->o.value, o.value_serde, BK_SERDE_WRITE,
                         "value serialiser", &why);
    cfg->o.key_serde = cfg->o.value_serde = NULL; /* replaced by the chains above */
    err = bk_kafka_props_copy(&t->alloc, o.properties, &cfg->props);
    if (err == BROOK_OK &&
        ((o.bootstrap_servers && !(cfg->bootstrap = bk_strdup(&t->alloc, o.bootstrap_servers))) ||
         (o.topic && !(cfg->topic = bk_strdup(&t->alloc, o.topic))) ||
         (o.dead_letter_topic && !(cfg->dlq = bk_strdup(&t->alloc, o.dead_letter_topic)))))
      err = BROOK_ERR_NOMEM;
  }
  if (err < 0) { /* the options were checked above: only memory can fail here */
    sink_cfg_free(cfg, &t->alloc);
    return bk_topology_fail(t, err, "sink_kafka: %s", brook_strerror(err));
  }
  cfg->o.properties = NULL; /* the copies above replace the user's pointers */
  cfg->o.topic = cfg->o.dead_letter_topic = cfg->o.bootstrap_servers = NULL;
  return bk_topology_add_operator(&in, 1, &kafka_sink_op, cfg, sink_cfg_free, name, NULL, 0, NULL);
}
