/* The shared producers. See kafka_producer.h. Loop thread. */
#include "kafka_producer.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brook/kafka.h>

#include "core/alloc.h"
#include "kafka/changelog_writer.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_poll.h"

/* One librdkafka producer, shared by the runtime's users of its configuration. */
typedef struct kclient {
  bk_worker_t *w;
  struct kclient *next; /* the runtime's clients (bk_rt_slot) */
  char *conf_dump;      /* the effective configuration, "key=value\n"..., to compare */
  rd_kafka_t *rk;
  rd_kafka_queue_t *mainq;
  bk_kafka_poller_t *poller;
  size_t max_message; /* message.max.bytes */
  bk_kprod_t **users; /* by index (in message tags); NULL once that user closed */
  size_t n_users, cap_users, live;
  uint64_t in_flight;
} kclient_t;

struct bk_kprod {
  kclient_t *c;
  size_t idx; /* in c->users */
  char who[128];
  char *const *props;
  bk_kprod_failed_fn failed;
  void *opaque;
  uint64_t in_flight;
  int (*error_hook)(void *opaque, int err, const char *fac, const char *text);
  void *error_hook_opaque;
};

/* A message's opaque: its epoch, its user and its BK_KMSG_* flags (3 bits), so a report
 * reaches its user and a refusal knows all three. */
#define FLAG_BITS 3
#define FLAG_MASK ((1u << FLAG_BITS) - 1)
#define USER_BITS 8
#define USER_MASK ((1u << USER_BITS) - 1)

static const char *const producer_defaults[] = {
    "enable.idempotence", "true",      "acks", "all", "partitioner",
    "murmur2_random",     "log.queue", "true", NULL};

static void log_line(bk_kprod_t *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(bk_kprod_t *p, int level, const char *fmt, ...) {
  if (!bk_rt_logs(p->c->w))
    return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), p->props, p->who, fmt, ap);
  va_end(ap);
  bk_rt_log(p->c->w, level, msg);
}

void bk_kprod_fail(bk_kprod_t *p, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), p->props, p->who, fmt, ap);
  va_end(ap);
  bk_wk_fail(p->c->w, BROOK_ERR_KAFKA, "%s", msg);
}

/* The client's first user still open: it speaks for the client in logs (NULL: none). */
static bk_kprod_t *first_user(const kclient_t *c) {
  for (size_t i = 0; i < c->n_users; i++)
    if (c->users[i])
      return c->users[i];
  return NULL;
}

/* Whether a user's hook took the line (err 0) or the error (fac NULL): then it is not logged. */
static int hooked(const kclient_t *c, int err, const char *fac, const char *text) {
  int taken = 0;
  for (size_t i = 0; i < c->n_users; i++) {
    bk_kprod_t *p = c->users[i];
    if (p && p->error_hook && p->error_hook(p->error_hook_opaque, err, fac, text))
      taken = 1;
  }
  return taken;
}

/* librdkafka's logs go to the main queue (log.queue), so this runs on the loop thread. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  kclient_t *c = rd_kafka_opaque(rk);
  bk_kprod_t *p = c ? first_user(c) : NULL;
  if (p && !hooked(c, 0, fac, buf))
    log_line(p, bk_kafka_log_level(level), "%s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk;
  kclient_t *c = opaque;
  bk_kprod_t *p = first_user(c);
  if (!p || hooked(c, err, NULL, reason))
    return;
  /* Transient errors (brokers down) are retried by librdkafka; a fatal one (the idempotent
   * producer lost its guarantees) ends the run. */
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(c->rk, why, sizeof(why));
    bk_kprod_fail(p, "fatal producer error: %s", why);
  } else {
    log_line(p, BROOK_LOG_WARN, "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
  }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  if (bk_changelog_delivery(m))
    return; /* a changelog's record or marker (changelog_writer.h): its writer's bookkeeping */
  (void)rk;
  kclient_t *c = opaque;
  uint64_t tag = (uint64_t)(uintptr_t)m->_private;
  uint64_t epoch = tag >> (FLAG_BITS + USER_BITS);
  size_t idx = (size_t)((tag >> FLAG_BITS) & USER_MASK);
  bk_kprod_t *p = idx < c->n_users ? c->users[idx] : NULL;
  c->in_flight--;
  if (p)
    p->in_flight--;
  if (p && m->err && bk_rt_status(c->w) == BROOK_OK) {
    p->failed(p, m, epoch, (unsigned)(tag & FLAG_MASK), p->opaque);
    return;
  }
  bk_rt_delivery_done(c->w, epoch);
}

static void client_close(kclient_t *c);

static void serve(void *opaque) {
  kclient_t *c = opaque;
  bk_worker_t *w = c->w;
  while (rd_kafka_poll(c->rk, 0) > 0) {
  }
  if (!c->live && (!c->in_flight || bk_rt_status(w) != BROOK_OK))
    client_close(c); /* its users closed before it (bk_kprod_close): now it can go */
  bk_worker_poke(w); /* a failure, a commit's acknowledgements, the end-of-run wait */
}

/* The configuration as librdkafka holds it (global and default topic properties), as one
 * string: equal strings, equal producers. NULL if out of memory. */
static char *conf_dump(const brook_allocator_t *a, rd_kafka_conf_t *conf) {
  size_t n = 0, tn = 0;
  const char **kv = rd_kafka_conf_dump(conf, &n);
  rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(conf);
  const char **tkv = tc ? rd_kafka_topic_conf_dump(tc, &tn) : NULL;
  size_t len = 1;
  for (size_t i = 0; i < n; i++)
    len += strlen(kv[i]) + 1;
  for (size_t i = 0; i < tn; i++)
    len += strlen(tkv[i]) + 1;
  char *out = bk_malloc(a, len);
  if (out) {
    char *w = out;
    for (size_t i = 0; i + 1 < n + tn; i += 2) {
      const char *key = i < n ? kv[i] : tkv[i - n];
      const char *val = i < n ? kv[i + 1] : tkv[i + 1 - n];
      if (strncmp(val, "0x", 2) == 0)
        continue; /* a pointer (default_topic_conf): not configuration to compare */
      w += sprintf(w, "%s=%s\n", key, val);
    }
    *w = '\0';
  }
  rd_kafka_conf_dump_free(kv, n);
  if (tkv)
    rd_kafka_conf_dump_free(tkv, tn);
  return out;
}

static kclient_t **clients_of(bk_worker_t *w) {
  return (kclient_t **)bk_rt_slot(w, BK_SLOT_KAFKA_PRODUCERS);
}

/* A new client with `conf` (consumed on success). */
static brook_err_t client_new(bk_worker_t *w, rd_kafka_conf_t *conf, char *dump, char *const *props,
                              kclient_t **out, char *why, size_t why_len) {
  const brook_allocator_t *a = bk_rt_alloc(w);
  kclient_t *c = bk_calloc(a, 1, sizeof(*c));
  if (!c) {
    snprintf(why, why_len, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  c->w = w;
  c->conf_dump = dump;
  rd_kafka_conf_set_opaque(conf, c);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_log_cb(conf, on_log);
  if (!(c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, why_len))) {
    bk_kafka_redact(props, why, why_len);
    bk_free(a, c);
    return BROOK_ERR_KAFKA;
  }
  rd_kafka_set_log_queue(c->rk, NULL); /* logs to the main queue: the loop thread */
  char max[32];
  size_t max_len = sizeof(max);
  c->max_message = 1000000; /* librdkafka's default, should the lookup ever fail */
  if (rd_kafka_conf_get(rd_kafka_conf(c->rk), "message.max.bytes", max, &max_len) ==
          RD_KAFKA_CONF_OK &&
      strtoull(max, NULL, 10) > 0)
    c->max_message = (size_t)strtoull(max, NULL, 10);
  c->mainq = rd_kafka_queue_get_main(c->rk);
  brook_err_t err = bk_kafka_poller_start(w, c->mainq, serve, c, &c->poller, why, why_len);
  if (err < 0) {
    rd_kafka_queue_destroy(c->mainq);
    rd_kafka_destroy(c->rk);
    bk_free(a, c);
    return err;
  }
  kclient_t **head = clients_of(w);
  c->next = *head;
  *head = c;
  *out = c;
  return BROOK_OK;
}

static void client_close(kclient_t *c) {
  bk_worker_t *w = c->w;
  const brook_allocator_t *a = bk_rt_alloc(w);
  for (kclient_t **pp = clients_of(w); *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  bk_kafka_poller_close(c->poller);
  if (c->in_flight) /* a failed run: drop what is queued; nobody waits for it */
    rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_queue_destroy(c->mainq);
  rd_kafka_t *rk = c->rk; /* nothing serves its queue any more: no callback reaches c */
  bk_free(a, c->users);
  bk_free(a, c->conf_dump);
  bk_free(a, c);
  bk_kafka_destroy_off_loop(w, rk, 0);
}

size_t bk_kprod_clients(brook_runtime_t *rt) {
  size_t n = 0;
  for (size_t i = 0; i < bk_rt_n_workers(rt); i++)
    for (kclient_t *c = *clients_of(bk_rt_worker(rt, i)); c; c = c->next)
      n++;
  return n;
}

brook_err_t bk_kprod_new(bk_worker_t *w, const char *who, const char *bootstrap, char *const *props,
                         int dead_letters_only, bk_kprod_failed_fn failed, void *opaque,
                         bk_kprod_t **out, char *why, size_t why_len) {
  *out = NULL;
  const brook_allocator_t *a = bk_rt_alloc(w);
  rd_kafka_conf_t *conf;
  brook_err_t err = bk_kafka_conf_build(producer_defaults, bootstrap, props, &conf, why, why_len);
  if (err < 0)
    return err;
  /* A dead-letter producer sends each letter in a record batch of its own: letters are sized
   * to fit alone (dead_letter.c), and a broker checks a topic's max.message.bytes against a
   * whole batch, so letters batched together could be refused together, again and again. */
  if (dead_letters_only &&
      rd_kafka_conf_set(conf, "batch.num.messages", "1", why, why_len) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return BROOK_ERR_KAFKA;
  }
  bk_kprod_t *p = bk_calloc(a, 1, sizeof(*p));
  char *dump = p ? conf_dump(a, conf) : NULL;
  if (!dump) {
    rd_kafka_conf_destroy(conf);
    bk_free(a, p);
    snprintf(why, why_len, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  kclient_t *c = *clients_of(w);
  while (c && (c->n_users >= BK_KPROD_MAX_USERS || strcmp(c->conf_dump, dump) != 0))
    c = c->next;
  if (c) { /* the same configuration: share its client */
    rd_kafka_conf_destroy(conf);
    bk_free(a, dump);
  } else if ((err = client_new(w, conf, dump, props, &c, why, why_len)) < 0) {
    rd_kafka_conf_destroy(conf);
    bk_free(a, dump);
    bk_free(a, p);
    return err;
  }
  if (bk_grow(a, (void **)&c->users, &c->cap_users, c->n_users + 1, sizeof(*c->users))) {
    bk_free(a, p);
    if (!c->live)
      client_close(c);
    snprintf(why, why_len, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  p->c = c;
  p->idx = c->n_users;
  snprintf(p->who, sizeof(p->who), "%s", who);
  p->props = props;
  p->failed = failed;
  p->opaque = opaque;
  c->users[c->n_users++] = p;
  c->live++;
  *out = p;
  return BROOK_OK;
}

rd_kafka_resp_err_t bk_kprod_send_to(bk_kprod_t *p, const char *topic, int32_t partition,
                                     const void *key, size_t klen, const void *val, size_t vlen,
                                     int64_t ts, rd_kafka_headers_t *headers, uint64_t epoch,
                                     unsigned flags) {
  assert(flags <= FLAG_MASK && epoch < (UINT64_MAX >> (FLAG_BITS + USER_BITS)));
  void *tag =
      (void *)(uintptr_t)(epoch << (FLAG_BITS + USER_BITS) | (uint64_t)p->idx << FLAG_BITS | flags);
  kclient_t *c = p->c;
  for (;;) {
    rd_kafka_resp_err_t err =
        rd_kafka_producev(c->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)(uintptr_t)val, vlen),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
                          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      if (!err) {
        p->in_flight++;
        c->in_flight++;
      }
      return err;
    }
    /* librdkafka's own queue is full (past the pipeline's backpressure): serve delivery
     * reports until there is room. Blocks the loop, bounded by message.timeout.ms. */
    rd_kafka_poll(c->rk, 10);
  }
}

rd_kafka_headers_t *bk_kprod_headers(const brook_record_t *rec) {
  if (!rec->header_count)
    return NULL;
  rd_kafka_headers_t *h = rd_kafka_headers_new(rec->header_count);
  for (size_t i = 0; i < rec->header_count; i++)
    rd_kafka_header_add(h, rec->headers[i].name, -1, rec->headers[i].value,
                        (ssize_t)rec->headers[i].value_len);
  return h;
}

rd_kafka_resp_err_t bk_kprod_send(bk_kprod_t *p, const char *topic, const void *key, size_t klen,
                                  const void *val, size_t vlen, int64_t ts,
                                  rd_kafka_headers_t *headers, uint64_t epoch, unsigned flags) {
  return bk_kprod_send_to(p, topic, RD_KAFKA_PARTITION_UA, key, klen, val, vlen, ts, headers, epoch,
                          flags);
}

uint64_t bk_kprod_in_flight(const bk_kprod_t *p) { return p->in_flight; }

size_t bk_kprod_max_message(const bk_kprod_t *p) { return p->c->max_message; }

bk_worker_t *bk_kprod_worker(const bk_kprod_t *p) { return p->c->w; }
rd_kafka_t *bk_kprod_rk(bk_kprod_t *p) { return p->c->rk; }

void bk_kprod_set_error_hook(bk_kprod_t *p,
                             int (*fn)(void *opaque, int err, const char *fac, const char *text),
                             void *opaque) {
  p->error_hook = fn;
  p->error_hook_opaque = opaque;
}

/* The slot's closer (services.h), as the run ends: the clients that outlived their users. */
static void close_orphans(bk_worker_t *w) {
  for (kclient_t *c = *clients_of(w), *next; c; c = next) {
    next = c->next;
    if (!c->live)
      client_close(c);
  }
}

void bk_kprod_close(bk_kprod_t *p) {
  if (!p)
    return;
  kclient_t *c = p->c;
  c->users[p->idx] = NULL; /* its reports from now on only end their epochs */
  bk_free(bk_rt_alloc(c->w), p);
  if (--c->live > 0)
    return;
  /* Records still unacknowledged count against their epochs, which commits and the end of
   * the run wait for (delivery.h): a task closing at a rebalance may close the last user with
   * some in flight. The client stays until their reports are in (serve), or the run ends. */
  if (c->in_flight && bk_rt_status(c->w) == BROOK_OK) {
    bk_rt_slot_closer(c->w, BK_SLOT_KAFKA_PRODUCERS, close_orphans);
    return;
  }
  client_close(c);
}
