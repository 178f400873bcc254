/* Dead letters: fitting them into the producer's limit, their headers, and their refusals.
 * See dead_letter.h. Loop thread. */
#include "kafka/dead_letter.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "runtime/services.h"

/* librdkafka's worst case for one v2 record's framing: length, attributes, timestamp delta,
 * offset delta, key length, value length, header count (varints, rdkafka_proto.h). */
#define RECORD_OVERHEAD 36
/* A v2 record batch's header: the brokers check the batch against their limit. */
#define BATCH_OVERHEAD 61
#define RENAMED "original."
#define H_VALUE_WAS "brook.error.original_size"
#define H_KEY_WAS "brook.error.original_key_size"
#define H_DROPPED "brook.error.headers_dropped"

typedef struct hdr {
  const char *name;
  size_t name_len;
  const void *value;
  size_t value_len;
  int renamed;   /* sent as RENAMED + name */
  int droppable; /* the record's own, not brook's: dropped before the key is cut */
} hdr_t;

/* Bytes of a zig-zag varint holding n (how Kafka frames header lengths). */
static size_t varint_size(size_t n) {
  uint64_t z = (uint64_t)n << 1;
  size_t s = 1;
  while (z >= 0x80) {
    z >>= 7;
    s++;
  }
  return s;
}

static size_t hdr_size(const hdr_t *h) {
  size_t name = h->name_len + (h->renamed ? sizeof(RENAMED) - 1 : 0);
  return varint_size(name) + name + varint_size(h->value_len) + h->value_len;
}

static int is_brook(const char *name, size_t len) {
  return len >= 6 && memcmp(name, "brook.", 6) == 0;
}

/* The letter's headers, in the order they are sent: the record's own, then brook's. */
typedef struct letter {
  hdr_t *h;
  size_t n;
  size_t own_size, brook_size; /* droppable headers / the others, serialised */
  size_t n_droppable;
} letter_t;

static void letter_add(letter_t *l, const char *name, size_t name_len, const void *value,
                       size_t value_len, int renamed, int droppable) {
  hdr_t *h = &l->h[l->n++];
  *h = (hdr_t){name, name_len, value, value_len, renamed, droppable};
  if (droppable) {
    l->own_size += hdr_size(h);
    l->n_droppable++;
  } else {
    l->brook_size += hdr_size(h);
  }
}

/* Whether a header `name` is kept as brook's (then a cut must not add another). */
static int letter_has(const letter_t *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (!l->h[i].renamed && !l->h[i].droppable && strcmp(l->h[i].name, name) == 0)
      return 1;
  return 0;
}

static size_t own_header_count(const bk_dead_letter_t *dl) {
  return dl->kheaders ? rd_kafka_header_cnt(dl->kheaders) : dl->header_count;
}

static brook_err_t letter_build(letter_t *l, const brook_allocator_t *a,
                                const bk_dead_letter_t *dl) {
  size_t n_brook = 0;
  while (dl->brook && dl->brook[2 * n_brook])
    n_brook++;
  size_t n_own = own_header_count(dl);
  *l = (letter_t){0};
  if (!(l->h = bk_malloc(a, (n_own + n_brook + 3) * sizeof(*l->h))))
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n_own; i++) {
    const char *name;
    const void *value;
    size_t len;
    if (dl->kheaders) {
      if (rd_kafka_header_get_all(dl->kheaders, i, &name, &value, &len))
        continue;
    } else {
      name = dl->headers[i].name;
      value = dl->headers[i].value;
      len = dl->headers[i].value_len;
    }
    size_t name_len = strlen(name);
    int ours = is_brook(name, name_len);
    letter_add(l, name, name_len, value, len, ours && !dl->brook_own, !(ours && dl->brook_own));
  }
  for (size_t i = 0; i < n_brook; i++)
    letter_add(l, dl->brook[2 * i], strlen(dl->brook[2 * i]), dl->brook[2 * i + 1],
               strlen(dl->brook[2 * i + 1]), 0, 0);
  return BROOK_OK;
}

/* How the letter is cut to fit. */
typedef struct cut {
  size_t key_len, value_len;
  int drop_own;
  char value_was[24], key_was[24], dropped[24]; /* "" unless that cut happened */
} cut_t;

/* Finds the smallest cut that fits `limit`: none; the value; the value and the record's own
 * headers; everything but brook's headers and a prefix of the key. 0, or -1 if even that
 * does not fit. */
static int letter_fit(const letter_t *l, const bk_dead_letter_t *dl, size_t limit, cut_t *c) {
  memset(c, 0, sizeof(*c));
  char vbuf[24], kbuf[24], dbuf[24];
  snprintf(vbuf, sizeof(vbuf), "%zu", dl->value_len);
  snprintf(kbuf, sizeof(kbuf), "%zu", dl->key_len);
  snprintf(dbuf, sizeof(dbuf), "%zu", l->n_droppable);
  hdr_t hv = {H_VALUE_WAS, strlen(H_VALUE_WAS), vbuf, strlen(vbuf), 0, 0};
  hdr_t hk = {H_KEY_WAS, strlen(H_KEY_WAS), kbuf, strlen(kbuf), 0, 0};
  hdr_t hd = {H_DROPPED, strlen(H_DROPPED), dbuf, strlen(dbuf), 0, 0};
  /* A letter cut before (sent once more) keeps the size it already states. */
  size_t vcut = letter_has(l, hv.name) ? 0 : hdr_size(&hv);
  size_t kcut = letter_has(l, hk.name) ? 0 : hdr_size(&hk);
  size_t fixed = RECORD_OVERHEAD + BATCH_OVERHEAD + l->brook_size;
  for (int stage = 0; stage < 3; stage++) {
    c->drop_own = stage >= 1;
    if (stage == 1 && !l->n_droppable)
      continue; /* nothing to drop: the same as stage 0 */
    size_t base = fixed + (c->drop_own ? (l->n_droppable ? hdr_size(&hd) : 0) : l->own_size);
    if (stage == 2) { /* no value; the key cut to what is left */
      base += kcut + (dl->value_len ? vcut : 0);
      if (base > limit)
        return -1;
      c->value_len = 0;
      c->key_len = dl->key_len < limit - base ? dl->key_len : limit - base;
    } else {
      c->key_len = dl->key_len;
      base += dl->key_len;
      if (base <= limit && dl->value_len <= limit - base) {
        c->value_len = dl->value_len;
      } else if (dl->value_len && base + vcut <= limit) {
        c->value_len = limit - base - vcut; /* < value_len: the whole value did not fit */
      } else {
        continue;
      }
    }
    if (c->value_len < dl->value_len && vcut)
      memcpy(c->value_was, vbuf, sizeof(vbuf));
    if (c->key_len < dl->key_len && kcut)
      memcpy(c->key_was, kbuf, sizeof(kbuf));
    if (c->drop_own && l->n_droppable)
      memcpy(c->dropped, dbuf, sizeof(dbuf));
    return 0;
  }
  return -1;
}

/* The headers to send (renamed names built here), or NULL if out of memory. */
static rd_kafka_headers_t *letter_headers(const letter_t *l, const cut_t *c,
                                          const brook_allocator_t *a) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(l->n + 3);
  for (size_t i = 0; i < l->n; i++) {
    const hdr_t *e = &l->h[i];
    if (e->droppable && c->drop_own)
      continue;
    if (!e->renamed) {
      rd_kafka_header_add(h, e->name, (ssize_t)e->name_len, e->value, (ssize_t)e->value_len);
      continue;
    }
    char stack[256], *name = stack;
    size_t len = sizeof(RENAMED) - 1 + e->name_len;
    if (len >= sizeof(stack) && !(name = bk_malloc(a, len + 1))) {
      rd_kafka_headers_destroy(h);
      return NULL;
    }
    memcpy(name, RENAMED, sizeof(RENAMED) - 1);
    memcpy(name + sizeof(RENAMED) - 1, e->name, e->name_len);
    rd_kafka_header_add(h, name, (ssize_t)len, e->value, (ssize_t)e->value_len);
    if (name != stack)
      bk_free(a, name);
  }
  if (*c->value_was)
    rd_kafka_header_add(h, H_VALUE_WAS, -1, c->value_was, -1);
  if (*c->dropped)
    rd_kafka_header_add(h, H_DROPPED, -1, c->dropped, -1);
  if (*c->key_was)
    rd_kafka_header_add(h, H_KEY_WAS, -1, c->key_was, -1);
  return h;
}

void bk_dead_letter_of_message(bk_dead_letter_t *dl, const rd_kafka_message_t *m) {
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
    h = NULL;
  *dl = (bk_dead_letter_t){.key = m->key,
                           .key_len = m->key_len,
                           .value = m->payload,
                           .value_len = m->len,
                           .timestamp = rd_kafka_message_timestamp(m, NULL),
                           .kheaders = h};
  if (dl->timestamp < 0)
    dl->timestamp = 0;
}

rd_kafka_resp_err_t bk_dead_letter_send(bk_kprod_t *p, const char *topic,
                                        const bk_dead_letter_t *dl, size_t limit, uint64_t epoch,
                                        unsigned flags, char *why, size_t why_len) {
  const brook_allocator_t *a = bk_rt_alloc(bk_kprod_worker(p));
  if (!limit)
    limit = bk_kprod_max_message(p);
  letter_t l;
  cut_t c;
  rd_kafka_headers_t *h;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__FAIL;
  if (letter_build(&l, a, dl) < 0) {
    snprintf(why, why_len, "out of memory");
    return err;
  }
  if (letter_fit(&l, dl, limit, &c) < 0) {
    snprintf(why, why_len,
             "a dead letter for %s cannot fit %zu bytes (message.max.bytes) even without its "
             "value, its own headers and its key",
             topic, limit);
    err = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
  } else if (!(h = letter_headers(&l, &c, a))) {
    snprintf(why, why_len, "out of memory");
  } else if ((err = bk_kprod_send(p, topic, dl->key, c.key_len, dl->value, c.value_len,
                                  dl->timestamp, h, epoch, flags))) {
    rd_kafka_headers_destroy(h);
    snprintf(why, why_len, "%s", rd_kafka_err2str(err));
  }
  bk_free(a, l.h);
  return err;
}

brook_err_t bk_dead_letter_malformed(bk_kprod_t *p, const char *topic, const rd_kafka_message_t *m,
                                     brook_err_t err, const char *message) {
  bk_worker_t *w = bk_kprod_worker(p);
  char code[16], part[16], off[32], why[512];
  snprintf(code, sizeof(code), "%d", (int)err);
  snprintf(part, sizeof(part), "%d", (int)m->partition);
  snprintf(off, sizeof(off), "%lld", (long long)m->offset);
  const char *src_topic = rd_kafka_topic_name(m->rkt);
  const char *const brook[] = {"brook.error",
                               brook_errname(err),
                               "brook.error.code",
                               code,
                               "brook.error.message",
                               message,
                               "brook.source.topic",
                               src_topic,
                               "brook.source.partition",
                               part,
                               "brook.source.offset",
                               off,
                               NULL};
  bk_dead_letter_t dl;
  bk_dead_letter_of_message(&dl, m);
  dl.brook = brook;
  uint64_t epoch = bk_rt_delivery_add(w);
  if (!epoch)
    return BROOK_ERR_NOMEM;
  if (bk_dead_letter_send(p, topic, &dl, 0, epoch, BK_KMSG_DEAD_LETTER, why, sizeof(why))) {
    bk_rt_delivery_done(w, epoch);
    bk_kprod_fail(p, "dead-lettering offset %lld of %s [%d]: %s", (long long)m->offset, src_topic,
                  (int)m->partition, why);
    return BROOK_ERR_KAFKA;
  }
  bk_rt_count(w, BK_STAT_RECORDS_DEAD_LETTERED, 1);
  return BROOK_OK;
}

rd_kafka_resp_err_t bk_dead_letter_refusal(bk_kprod_t *p, const char *dlq,
                                           const bk_dead_letter_t *dl, const char *sink_topic,
                                           int32_t partition, rd_kafka_resp_err_t refused,
                                           uint64_t epoch, unsigned flags, char *why,
                                           size_t why_len) {
  char part[16];
  snprintf(part, sizeof(part), "%d", (int)partition);
  const char *name = rd_kafka_err2name(refused), *text = rd_kafka_err2str(refused);
  const char *brook[16];
  size_t n = 0;
  if (!(flags & BK_KMSG_ERROR_RECORD)) { /* this refusal is its first failure */
    brook[n++] = "brook.error";
    brook[n++] = name;
    brook[n++] = "brook.error.message";
    brook[n++] = text;
  }
  brook[n++] = "brook.sink.topic";
  brook[n++] = sink_topic;
  if (partition >= 0) {
    brook[n++] = "brook.sink.partition";
    brook[n++] = part;
  }
  brook[n++] = "brook.sink.error";
  brook[n++] = name;
  brook[n++] = "brook.sink.error.message";
  brook[n++] = text;
  brook[n] = NULL;
  bk_dead_letter_t letter = *dl;
  letter.brook = brook;
  letter.brook_own = (flags & BK_KMSG_ERROR_RECORD) != 0;
  rd_kafka_resp_err_t err =
      bk_dead_letter_send(p, dlq, &letter, 0, epoch, BK_KMSG_DEAD_LETTER, why, why_len);
  if (!err)
    bk_rt_count(bk_kprod_worker(p), BK_STAT_RECORDS_DEAD_LETTERED, 1);
  return err;
}

int bk_dead_letter_retry_cut(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch,
                             unsigned flags) {
  if (m->err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || (flags & BK_KMSG_CUT_AGAIN) ||
      !(flags & (BK_KMSG_DEAD_LETTER | BK_KMSG_ERROR_RECORD)))
    return 0;
  bk_dead_letter_t dl;
  bk_dead_letter_of_message(&dl, m);
  dl.brook_own = 1; /* a letter or an error-stream record: its brook.* headers are brook's */
  size_t size = RECORD_OVERHEAD + BATCH_OVERHEAD + m->key_len + m->len;
  for (size_t i = 0; dl.kheaders && i < rd_kafka_header_cnt(dl.kheaders); i++) {
    const char *name;
    const void *value;
    size_t len;
    if (rd_kafka_header_get_all(dl.kheaders, i, &name, &value, &len) == 0)
      size += hdr_size(&(hdr_t){name, strlen(name), value, len, 0, 0});
  }
  size_t limit = size / 2 < BK_DL_RETRY_MAX ? size / 2 : BK_DL_RETRY_MAX;
  const char *topic = rd_kafka_topic_name(m->rkt);
  char why[512];
  if (bk_dead_letter_send(p, topic, &dl, limit, epoch, flags | BK_KMSG_CUT_AGAIN, why,
                          sizeof(why))) {
    bk_kprod_fail(p,
                  "%s refused a record as too large, and cut to %zu bytes it could not be "
                  "sent again: %s",
                  topic, limit, why);
    bk_rt_delivery_done(bk_kprod_worker(p), epoch);
  }
  return 1;
}

void bk_dead_letter_failed(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch,
                           unsigned flags, void *opaque) {
  (void)opaque;
  if (bk_dead_letter_retry_cut(p, m, epoch, flags))
    return;
  bk_kprod_fail(p, "dead-lettering to %s failed: %s", rd_kafka_topic_name(m->rkt),
                rd_kafka_err2str(m->err));
  bk_rt_delivery_done(bk_kprod_worker(p), epoch);
}
