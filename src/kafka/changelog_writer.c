/* The changelog writer (changelog_writer.h): produces a task's changes with their epoch, and
 * each commit's marker, and follows their acknowledgements epoch by epoch. Loop thread. */
#include "kafka/changelog_writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "kafka/changelog_format.h"
#include "kafka/internal_topic_names.h"

/* The opaque of every changelog topic handle: a delivery report whose topic carries it is a
 * changelog writer's, and its msg_opaque is an epoch_slot_t. */
static const char changelog_topic_tag = 'c';

/* One epoch's messages in flight. Slots form a list, oldest first; the front leaves once it
 * is complete (marker written, nothing pending): then its epoch is acknowledged. */
typedef struct epoch_slot {
  bk_changelog_writer_t *w;
  struct epoch_slot *next;
  uint64_t epoch;
  uint64_t pending;
  int closed; /* its marker was produced */
} epoch_slot_t;

struct bk_changelog_writer {
  const brook_allocator_t *alloc;
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
  char topic[BK_TOPIC_NAME_MAX + 1];
  int32_t partition;
  uint64_t epoch;     /* the open epoch */
  uint64_t committed; /* the last marker written (the records' committed field) */
  uint64_t acked;
  epoch_slot_t *head, *tail; /* tail: the open epoch's slot, or an older one */
  uint64_t in_flight;
  size_t compensated; /* keys compensated so far (a resumed call starts there) */
  int failed, freed;
  void (*on_acked)(uint64_t, void *);
  void (*on_error)(brook_err_t, void *);
  void *opaque;
  bk_changelog_writer_stats_t stats;
  unsigned char *buf; /* an escaped key, or a marker value */
  size_t buf_cap;
  bk_errmsg_t err;
};

brook_err_t bk_changelog_writer_new(const bk_changelog_writer_opts_t *o,
                                    bk_changelog_writer_t **out, bk_errmsg_t *why) {
  if (!out || !o || !o->producer || !o->topic || o->partition < 0 ||
      strlen(o->topic) > BK_TOPIC_NAME_MAX) {
    bk_errmsg_set(why, "changelog writer: missing producer or topic, or a negative partition");
    return BROOK_ERR_INVALID_ARG;
  }
  if (o->first_epoch == 0 || o->first_epoch <= o->committed) {
    bk_errmsg_set(why,
                  "changelog '%s' partition %" PRId32 ": first epoch %" PRIu64
                  " is not after the committed epoch %" PRIu64 " (take the restore's next_epoch)",
                  o->topic, o->partition, o->first_epoch, o->committed);
    return BROOK_ERR_INVALID_ARG;
  }
  const brook_allocator_t *a = o->alloc ? o->alloc : bk_default_allocator();
  bk_changelog_writer_t *w = bk_calloc(a, 1, sizeof(*w));
  rd_kafka_topic_conf_t *tc = w ? rd_kafka_topic_conf_new() : NULL;
  if (!w || !tc) {
    bk_free(a, w);
    bk_errmsg_set(why, "changelog '%s': out of memory", o->topic);
    return BROOK_ERR_NOMEM;
  }
  rd_kafka_topic_conf_set_opaque(tc, (void *)(uintptr_t)&changelog_topic_tag);
  w->rkt = rd_kafka_topic_new(o->producer, o->topic, tc); /* takes tc */
  if (!w->rkt || rd_kafka_topic_opaque(w->rkt) != &changelog_topic_tag) {
    bk_errmsg_set(why, "changelog '%s': %s", o->topic,
                  w->rkt ? "the producer has a handle for this topic made elsewhere (the "
                           "changelog's deliveries could not be told apart)"
                         : rd_kafka_err2str(rd_kafka_last_error()));
    brook_err_t err = w->rkt ? BROOK_ERR_INVALID_ARG : BROOK_ERR_KAFKA;
    if (w->rkt)
      rd_kafka_topic_destroy(w->rkt);
    bk_free(a, w);
    return err;
  }
  w->alloc = a;
  w->rk = o->producer;
  snprintf(w->topic, sizeof(w->topic), "%s", o->topic);
  w->partition = o->partition;
  w->epoch = o->first_epoch;
  w->committed = w->acked = o->committed;
  w->on_acked = o->on_acked;
  w->on_error = o->on_error;
  w->opaque = o->opaque;
  *out = w;
  return BROOK_OK;
}

static void writer_destroy(bk_changelog_writer_t *w) {
  while (w->head) {
    epoch_slot_t *s = w->head;
    w->head = s->next;
    bk_free(w->alloc, s);
  }
  if (w->rkt)
    rd_kafka_topic_destroy(w->rkt);
  bk_free(w->alloc, w->buf);
  bk_free(w->alloc, w);
}

/* The open epoch's slot (made on its first message). */
static epoch_slot_t *open_slot(bk_changelog_writer_t *w) {
  if (w->tail && w->tail->epoch == w->epoch)
    return w->tail;
  epoch_slot_t *s = bk_calloc(w->alloc, 1, sizeof(*s));
  if (!s)
    return NULL;
  s->w = w;
  s->epoch = w->epoch;
  if (w->tail)
    w->tail->next = s;
  else
    w->head = s;
  w->tail = s;
  return s;
}

/* Front slots that are complete leave; their epochs are acknowledged in order. */
static void advance(bk_changelog_writer_t *w) {
  while (w->head && w->head->closed && w->head->pending == 0 && !w->failed) {
    epoch_slot_t *s = w->head;
    w->head = s->next;
    if (!w->head)
      w->tail = NULL;
    w->acked = s->epoch;
    bk_free(w->alloc, s);
    if (w->on_acked && !w->freed)
      w->on_acked(w->acked, w->opaque);
  }
}

static brook_err_t produce(bk_changelog_writer_t *w, const void *key, size_t klen,
                           const void *value, size_t vlen) {
  if (w->failed)
    return BROOK_ERR_KAFKA;
  epoch_slot_t *s = open_slot(w);
  if (!s)
    return BROOK_ERR_NOMEM;
  unsigned char hdr[BK_CL_EPOCH_HEADER_LEN];
  bk_cl_epoch_header(hdr, w->epoch, w->committed);
  rd_kafka_resp_err_t e =
      rd_kafka_producev(w->rk, RD_KAFKA_V_RKT(w->rkt), RD_KAFKA_V_PARTITION(w->partition),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, klen),
                        RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value ? vlen : 0),
                        RD_KAFKA_V_HEADER(BK_CL_EPOCH_HEADER, hdr, (ssize_t)sizeof(hdr)),
                        RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
  switch (e) {
  case RD_KAFKA_RESP_ERR_NO_ERROR:
    s->pending++;
    w->in_flight++;
    w->stats.bytes += klen + (value ? vlen : 0);
    return BROOK_OK;
  case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    return BROOK_ERR_FULL;
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    return BROOK_ERR_TOO_LARGE;
  default:
    return BROOK_ERR_KAFKA;
  }
}

static brook_err_t put_record(bk_changelog_writer_t *w, const void *key, size_t klen,
                              const void *value, size_t vlen) {
  if (!bk_cl_key_needs_escape(key, klen))
    return produce(w, key, klen, value, vlen);
  if (bk_grow(w->alloc, (void **)&w->buf, &w->buf_cap, klen + 1, 1))
    return BROOK_ERR_NOMEM;
  bk_cl_key_escape(w->buf, key, klen);
  return produce(w, w->buf, klen + 1, value, vlen);
}

brook_err_t bk_changelog_put(bk_changelog_writer_t *w, const void *key, size_t klen,
                             const void *value, size_t vlen) {
  if (!key && klen)
    return BROOK_ERR_INVALID_ARG;
  static const char empty = 0;
  brook_err_t err = put_record(w, key ? key : &empty, klen, value, vlen);
  if (!err)
    w->stats.records++;
  return err;
}

brook_err_t bk_changelog_compensate(bk_changelog_writer_t *w, size_t n, bk_changelog_key_fn key_at,
                                    void *key_opaque, bk_changelog_lookup_fn lookup,
                                    void *lookup_opaque) {
  for (; w->compensated < n; w->compensated++) {
    const void *key = NULL, *val = NULL;
    size_t klen = 0, vlen = 0;
    key_at(w->compensated, &key, &klen, key_opaque);
    brook_err_t err = lookup(key, klen, &val, &vlen, lookup_opaque);
    if (err == BROOK_ERR_NOT_FOUND)
      val = NULL, vlen = 0;
    else if (err)
      return err;
    static const char empty = 0;
    if (!val && err == BROOK_OK)
      val = &empty; /* an empty value, not a deletion */
    if ((err = put_record(w, key ? key : &empty, klen, val, vlen)))
      return err;
    w->stats.compensations++;
  }
  return BROOK_OK;
}

brook_err_t bk_changelog_commit(bk_changelog_writer_t *w, const void *positions, size_t len,
                                uint64_t *epoch) {
  if ((!positions && len) || len > UINT32_MAX - BK_CL_MARKER_OVERHEAD)
    return BROOK_ERR_INVALID_ARG;
  size_t vlen = BK_CL_MARKER_OVERHEAD + len;
  if (bk_grow(w->alloc, (void **)&w->buf, &w->buf_cap, vlen, 1))
    return BROOK_ERR_NOMEM;
  bk_cl_marker_encode(w->buf, w->epoch, w->committed, positions, (uint32_t)len);
  brook_err_t err = produce(w, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN, w->buf, vlen);
  if (err)
    return err;
  w->tail->closed = 1; /* produce made the open epoch's slot the tail */
  w->stats.markers++;
  if (epoch)
    *epoch = w->epoch;
  w->committed = w->epoch;
  w->epoch = bk_cl_next_epoch(w->epoch);
  w->compensated = 0;
  return BROOK_OK;
}

uint64_t bk_changelog_acked(const bk_changelog_writer_t *w) { return w->acked; }
uint64_t bk_changelog_epoch(const bk_changelog_writer_t *w) { return w->epoch; }
uint64_t bk_changelog_in_flight(const bk_changelog_writer_t *w) { return w->in_flight; }

const bk_changelog_writer_stats_t *bk_changelog_writer_stats(const bk_changelog_writer_t *w) {
  return &w->stats;
}

const char *bk_changelog_writer_error(const bk_changelog_writer_t *w) { return w->err.text; }

int bk_changelog_delivery(const rd_kafka_message_t *m) {
  if (!m->rkt || rd_kafka_topic_opaque(m->rkt) != &changelog_topic_tag)
    return 0;
  epoch_slot_t *s = m->_private;
  bk_changelog_writer_t *w = s->w;
  s->pending--;
  w->in_flight--;
  if (m->err && !w->failed) {
    w->failed = 1;
    bk_errmsg_set(&w->err,
                  "changelog '%s' partition %" PRId32 ": a record of epoch %" PRIu64
                  " was not written: %s",
                  w->topic, w->partition, s->epoch, rd_kafka_err2str(m->err));
    if (w->on_error && !w->freed)
      w->on_error(BROOK_ERR_KAFKA, w->opaque);
  }
  advance(w);
  if (w->freed && w->in_flight == 0)
    writer_destroy(w);
  return 1;
}

void bk_changelog_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk, (void)opaque;
  (void)bk_changelog_delivery(m);
}

void bk_changelog_writer_free(bk_changelog_writer_t *w) {
  if (!w)
    return;
  w->freed = 1;
  if (w->in_flight == 0)
    writer_destroy(w);
}
