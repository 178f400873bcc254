/* The shared producer. See kafka_producer.h. Loop thread, except destroy_work. */
#include "kafka_producer.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brook/kafka.h>

#include "core/alloc.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_poll.h"

struct bk_kprod {
  brook_runtime_t *rt;
  char who[128];
  char *const *props;
  rd_kafka_t *rk;
  rd_kafka_queue_t *mainq;
  bk_kafka_poller_t *poller;
  bk_kprod_failed_fn failed;
  void *opaque;
  uint64_t in_flight;
  size_t max_message; /* message.max.bytes */
  int (*error_hook)(void *opaque, int err, const char *fac, const char *text);
  void *error_hook_opaque;
};

/* A message's opaque: its epoch and its BK_KMSG_* flags (3 bits), so a refusal knows both. */
#define FLAG_BITS 3
#define FLAG_MASK ((1u << FLAG_BITS) - 1)

static const char *const producer_defaults[] = {
    "enable.idempotence", "true",      "acks", "all", "partitioner",
    "murmur2_random",     "log.queue", "true", NULL};

static void log_line(bk_kprod_t *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(bk_kprod_t *p, int level, const char *fmt, ...) {
  if (!p->rt->opts.log)
    return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), p->props, p->who, fmt, ap);
  va_end(ap);
  p->rt->opts.log(level, msg, p->rt->opts.log_opaque);
}

void bk_kprod_fail(bk_kprod_t *p, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), p->props, p->who, fmt, ap);
  va_end(ap);
  bk_runtime_fail(p->rt, BROOK_ERR_KAFKA, "%s", msg);
}

/* librdkafka's logs go to the main queue (log.queue), so this runs on the loop thread. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  bk_kprod_t *p = rd_kafka_opaque(rk);
  if (p && !(p->error_hook && p->error_hook(p->error_hook_opaque, 0, fac, buf)))
    log_line(p, bk_kafka_log_level(level), "%s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk;
  bk_kprod_t *p = opaque;
  if (p->error_hook && p->error_hook(p->error_hook_opaque, err, NULL, reason))
    return;
  /* Transient errors (brokers down) are retried by librdkafka; a fatal one (the idempotent
   * producer lost its guarantees) ends the run. */
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(p->rk, why, sizeof(why));
    bk_kprod_fail(p, "fatal producer error: %s", why);
  } else {
    log_line(p, BROOK_LOG_WARN, "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
  }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  bk_kprod_t *p = opaque;
  uint64_t tag = (uint64_t)(uintptr_t)m->_private;
  uint64_t epoch = tag >> FLAG_BITS;
  p->in_flight--;
  if (m->err && p->rt->status == BROOK_OK) {
    p->failed(p, m, epoch, (unsigned)(tag & FLAG_MASK), p->opaque);
    return;
  }
  bk_delivery_done(&p->rt->w0->delivery, epoch);
}

static void serve(void *opaque) {
  bk_kprod_t *p = opaque;
  while (rd_kafka_poll(p->rk, 0) > 0) {
  }
  bk_worker_poke(p->rt->w0); /* a failure, or the end-of-run wait that may now be over */
}

brook_err_t bk_kprod_new(brook_runtime_t *rt, const char *who, const char *bootstrap,
                         char *const *props, int dead_letters_only, bk_kprod_failed_fn failed,
                         void *opaque, bk_kprod_t **out, char *why, size_t why_len) {
  *out = NULL;
  bk_kprod_t *p = bk_calloc(&rt->alloc, 1, sizeof(*p));
  if (!p) {
    snprintf(why, why_len, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  p->rt = rt;
  snprintf(p->who, sizeof(p->who), "%s", who);
  p->props = props;
  p->failed = failed;
  p->opaque = opaque;
  rd_kafka_conf_t *conf;
  brook_err_t err = bk_kafka_conf_build(producer_defaults, bootstrap, props, &conf, why, why_len);
  if (err < 0) {
    bk_free(&rt->alloc, p);
    return err;
  }
  /* A dead-letter producer sends each letter in a record batch of its own: letters are sized
   * to fit alone (dead_letter.c), and a broker checks a topic's max.message.bytes against a
   * whole batch, so letters batched together could be refused together, again and again. */
  if (dead_letters_only &&
      rd_kafka_conf_set(conf, "batch.num.messages", "1", why, why_len) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    bk_free(&rt->alloc, p);
    return BROOK_ERR_KAFKA;
  }
  rd_kafka_conf_set_opaque(conf, p);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_log_cb(conf, on_log);
  if (!(p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, why_len))) {
    rd_kafka_conf_destroy(conf);
    bk_kafka_redact(props, why, why_len);
    bk_free(&rt->alloc, p);
    return BROOK_ERR_KAFKA;
  }
  rd_kafka_set_log_queue(p->rk, NULL); /* logs to the main queue: the loop thread */
  char max[32];
  size_t max_len = sizeof(max);
  p->max_message = 1000000; /* librdkafka's default, should the lookup ever fail */
  if (rd_kafka_conf_get(rd_kafka_conf(p->rk), "message.max.bytes", max, &max_len) ==
          RD_KAFKA_CONF_OK &&
      strtoull(max, NULL, 10) > 0)
    p->max_message = (size_t)strtoull(max, NULL, 10);
  p->mainq = rd_kafka_queue_get_main(p->rk);
  if ((err = bk_kafka_poller_start(rt, p->mainq, serve, p, &p->poller, why, why_len)) < 0) {
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_destroy(p->rk);
    bk_free(&rt->alloc, p);
    return err;
  }
  *out = p;
  return BROOK_OK;
}

rd_kafka_resp_err_t bk_kprod_send(bk_kprod_t *p, const char *topic, const void *key, size_t klen,
                                  const void *val, size_t vlen, int64_t ts,
                                  rd_kafka_headers_t *headers, uint64_t epoch, unsigned flags) {
  assert(flags <= FLAG_MASK && epoch < (UINT64_MAX >> FLAG_BITS));
  void *tag = (void *)(uintptr_t)(epoch << FLAG_BITS | flags);
  for (;;) {
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                          RD_KAFKA_V_VALUE((void *)(uintptr_t)val, vlen),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
                          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      if (!err)
        p->in_flight++;
      return err;
    }
    /* librdkafka's own queue is full (past the pipeline's backpressure): serve delivery
     * reports until there is room. Blocks the loop, bounded by message.timeout.ms. */
    rd_kafka_poll(p->rk, 10);
  }
}

uint64_t bk_kprod_in_flight(const bk_kprod_t *p) { return p->in_flight; }

size_t bk_kprod_max_message(const bk_kprod_t *p) { return p->max_message; }

brook_runtime_t *bk_kprod_runtime(const bk_kprod_t *p) { return p->rt; }
rd_kafka_t *bk_kprod_rk(bk_kprod_t *p) { return p->rk; }

void bk_kprod_set_error_hook(bk_kprod_t *p,
                             int (*fn)(void *opaque, int err, const char *fac, const char *text),
                             void *opaque) {
  p->error_hook = fn;
  p->error_hook_opaque = opaque;
}

void bk_kprod_close(bk_kprod_t *p) {
  if (!p)
    return;
  brook_runtime_t *rt = p->rt;
  bk_kafka_poller_close(p->poller);
  if (p->in_flight) /* a failed run: drop what is queued; nobody waits for it */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_queue_destroy(p->mainq);
  rd_kafka_t *rk = p->rk; /* nothing serves its queue any more: no callback reaches p */
  bk_free(&rt->alloc, p);
  bk_kafka_destroy_off_loop(rt, rk, 0);
}
