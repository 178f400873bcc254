/* The changelog writer (changelog_writer.h): produces a task's changes with their epoch, and
 * each commit's markers only once every record of that commit, in every store of the task,
 * is acknowledged; follows the acknowledgements epoch by epoch. Loop thread. */
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

/* One writer's messages of one epoch in flight (the msg_opaque of each). A writer's slots
 * form a list ordered by epoch, oldest first; the oldest is never older than the task's
 * oldest unacknowledged epoch. */
typedef struct epoch_slot {
  bk_changelog_writer_t *w;
  struct epoch_slot *next;
  uint64_t epoch;
  uint64_t pending; /* produced, not reported */
} epoch_slot_t;

/* A committed epoch whose markers are not all acknowledged yet; the task's list is ordered by
 * epoch. Only the oldest gets markers: once all of its records are acknowledged, one marker
 * per writer (n_marked of them produced so far), and it leaves once those are too. */
typedef struct closed_epoch {
  struct closed_epoch *next;
  uint64_t epoch;
  size_t n_marked;
  size_t blob_len;
  unsigned char blob[]; /* the positions */
} closed_epoch_t;

struct bk_changelog_task {
  const brook_allocator_t *alloc;
  uint64_t first;     /* the first commit's epoch: puts wait for its acknowledgement */
  uint64_t epoch;     /* the open epoch */
  uint64_t acked;     /* every epoch <= acked: records and markers acknowledged */
  uint64_t in_flight; /* messages produced and not reported, all writers */
  closed_epoch_t *closed, *closed_tail;
  bk_changelog_writer_t **writers;
  size_t n_writers, writers_cap;
  bk_changelog_writer_t *owner; /* the writer that made this task for itself, or NULL */
  int failed, freed;
  void (*on_acked)(uint64_t, void *);
  void (*on_error)(brook_err_t, void *);
  void *opaque;
  bk_errmsg_t err;
};

struct bk_changelog_writer {
  bk_changelog_task_t *task;
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
  char topic[BK_TOPIC_NAME_MAX + 1];
  int32_t partition;
  epoch_slot_t *head, *tail;
  size_t compensated; /* keys compensated so far (a resumed call starts there) */
  bk_changelog_writer_stats_t stats;
  unsigned char *buf; /* an escaped key, or a marker value */
  size_t buf_cap;
  uint64_t marker_epoch; /* the last marker acknowledged (0: none yet) */
  int64_t marker_offset; /* ... and its offset */
};

/* ---- the task ---- */

static brook_err_t task_check(const bk_changelog_task_opts_t *o, const char *what,
                              bk_errmsg_t *why) {
  if (!bk_cl_epoch_valid(o->first_epoch) || o->first_epoch <= o->committed) {
    bk_errmsg_set(why,
                  "%s: first epoch %" PRIu64 " is not after the committed epoch %" PRIu64
                  " or out of range (take the restore's next_epoch)",
                  what, o->first_epoch, o->committed);
    return BROOK_ERR_INVALID_ARG;
  }
  return BROOK_OK;
}

static bk_changelog_task_t *task_make(const bk_changelog_task_opts_t *o) {
  const brook_allocator_t *a = o->alloc ? o->alloc : bk_default_allocator();
  bk_changelog_task_t *t = bk_calloc(a, 1, sizeof(*t));
  if (!t)
    return NULL;
  t->alloc = a;
  t->first = t->epoch = o->first_epoch;
  t->acked = o->committed;
  t->on_acked = o->on_acked;
  t->on_error = o->on_error;
  t->opaque = o->opaque;
  return t;
}

brook_err_t bk_changelog_task_new(const bk_changelog_task_opts_t *o, bk_changelog_task_t **out,
                                  bk_errmsg_t *why) {
  if (!o || !out) {
    bk_errmsg_set(why, "changelog task: missing options");
    return BROOK_ERR_INVALID_ARG;
  }
  brook_err_t err = task_check(o, "changelog task", why);
  if (err)
    return err;
  if (!(*out = task_make(o))) {
    bk_errmsg_set(why, "changelog task: out of memory");
    return BROOK_ERR_NOMEM;
  }
  return BROOK_OK;
}

static void writer_destroy(bk_changelog_writer_t *w, const brook_allocator_t *a) {
  while (w->head) {
    epoch_slot_t *s = w->head;
    w->head = s->next;
    bk_free(a, s);
  }
  if (w->rkt)
    rd_kafka_topic_destroy(w->rkt);
  bk_free(a, w->buf);
  bk_free(a, w);
}

static void task_destroy(bk_changelog_task_t *t) {
  for (size_t i = 0; i < t->n_writers; i++)
    writer_destroy(t->writers[i], t->alloc);
  while (t->closed) {
    closed_epoch_t *c = t->closed;
    t->closed = c->next;
    bk_free(t->alloc, c);
  }
  bk_free(t->alloc, t->writers);
  bk_free(t->alloc, t);
}

static void task_fail(bk_changelog_task_t *t, brook_err_t err) {
  if (t->failed)
    return;
  t->failed = 1;
  if (t->on_error && !t->freed)
    t->on_error(err, t->opaque);
}

/* The slot of epoch e in w, made if missing: at the tail for the open epoch, at the head for
 * the oldest closed one (its marker). NULL: out of memory. */
static epoch_slot_t *slot_of(bk_changelog_writer_t *w, uint64_t e, const brook_allocator_t *a) {
  if (w->tail && w->tail->epoch == e)
    return w->tail;
  if (w->head && w->head->epoch == e)
    return w->head;
  epoch_slot_t *s = bk_calloc(a, 1, sizeof(*s));
  if (!s)
    return NULL;
  s->w = w;
  s->epoch = e;
  if (!w->head || w->head->epoch > e) { /* the oldest: before any later epoch's slot */
    s->next = w->head;
    w->head = s;
    if (!w->tail)
      w->tail = s;
  } else {
    w->tail->next = s;
    w->tail = s;
  }
  return s;
}

/* Whether no message of epoch e (records, and markers once produced) is unreported in any
 * writer. e is the oldest closed epoch, so it is each writer's head slot if it has one. */
static int epoch_reported(const bk_changelog_task_t *t, uint64_t e) {
  for (size_t i = 0; i < t->n_writers; i++) {
    const epoch_slot_t *s = t->writers[i]->head;
    if (s && s->epoch == e && s->pending)
      return 0;
  }
  return 1;
}

static brook_err_t produce(bk_changelog_writer_t *w, epoch_slot_t *s, const void *key, size_t klen,
                           const void *value, size_t vlen);

static brook_err_t produce_marker(bk_changelog_writer_t *w, const closed_epoch_t *c) {
  bk_changelog_task_t *t = w->task;
  size_t vlen = BK_CL_MARKER_OVERHEAD + c->blob_len;
  if (bk_grow(t->alloc, (void **)&w->buf, &w->buf_cap, vlen, 1))
    return BROOK_ERR_NOMEM;
  /* prev: every epoch before c is acknowledged (c is the oldest closed one). */
  bk_cl_marker_encode(w->buf, c->epoch, t->acked, c->blob, (uint32_t)c->blob_len);
  epoch_slot_t *s = slot_of(w, c->epoch, t->alloc);
  if (!s)
    return BROOK_ERR_NOMEM;
  brook_err_t err = produce(w, s, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN, w->buf, vlen);
  if (!err)
    w->stats.markers++;
  return err;
}

/* Moves the oldest closed epochs on: markers once their records are all acknowledged, then
 * acknowledged once their markers are. BROOK_OK, BROOK_ERR_FULL (a marker waits for room in
 * the producer's queue), or the error that failed the task. */
void (*bk_test_before_markers)(int32_t partition, uint64_t epoch, uint64_t records) = NULL;

static brook_err_t task_pump(bk_changelog_task_t *t) {
  while (t->closed && !t->failed) {
    closed_epoch_t *c = t->closed;
    if (c->n_marked == 0 && !epoch_reported(t, c->epoch))
      return BROOK_OK; /* records of c still unreported */
    if (c->n_marked == 0 && bk_test_before_markers && t->n_writers) {
      uint64_t records = 0;
      for (size_t i = 0; i < t->n_writers; i++)
        records += t->writers[i]->stats.records;
      bk_test_before_markers(t->writers[0]->partition, c->epoch, records);
    }
    for (; c->n_marked < t->n_writers; c->n_marked++) {
      brook_err_t err = produce_marker(t->writers[c->n_marked], c);
      if (err == BROOK_ERR_FULL)
        return err;
      if (err) {
        bk_errmsg_set(&t->err,
                      "changelog '%s' partition %" PRId32 ": the marker of epoch %" PRIu64
                      " could not be produced: %s",
                      t->writers[c->n_marked]->topic, t->writers[c->n_marked]->partition, c->epoch,
                      brook_strerror(err));
        task_fail(t, err);
        return err;
      }
    }
    if (!epoch_reported(t, c->epoch))
      return BROOK_OK; /* markers of c still unreported */
    for (size_t i = 0; i < t->n_writers; i++) {
      bk_changelog_writer_t *w = t->writers[i];
      epoch_slot_t *s = w->head; /* c's slot: every writer got c's marker */
      w->head = s->next;
      if (!w->head)
        w->tail = NULL;
      bk_free(t->alloc, s);
    }
    t->closed = c->next;
    if (!t->closed)
      t->closed_tail = NULL;
    t->acked = c->epoch;
    bk_free(t->alloc, c);
    if (t->on_acked && !t->freed)
      t->on_acked(t->acked, t->opaque);
  }
  return BROOK_OK;
}

brook_err_t bk_changelog_task_pump(bk_changelog_task_t *t) {
  if (t->failed)
    return BROOK_ERR_KAFKA;
  return task_pump(t);
}

brook_err_t bk_changelog_task_commit(bk_changelog_task_t *t, const void *positions, size_t len,
                                     uint64_t *epoch) {
  if ((!positions && len) || len > UINT32_MAX - BK_CL_MARKER_OVERHEAD)
    return BROOK_ERR_INVALID_ARG;
  if (t->failed)
    return BROOK_ERR_KAFKA;
  uint64_t next = bk_cl_next_epoch(t->epoch);
  if (!next) {
    bk_errmsg_set(&t->err, "changelog task: no epoch left after %" PRIu64, t->epoch);
    return BROOK_ERR_TOO_LARGE;
  }
  closed_epoch_t *c = bk_malloc(t->alloc, sizeof(*c) + len);
  if (!c)
    return BROOK_ERR_NOMEM;
  c->next = NULL;
  c->epoch = t->epoch;
  c->n_marked = 0;
  c->blob_len = len;
  if (len)
    memcpy(c->blob, positions, len);
  if (t->closed_tail)
    t->closed_tail->next = c;
  else
    t->closed = c;
  t->closed_tail = c;
  if (epoch)
    *epoch = t->epoch;
  t->epoch = next;
  for (size_t i = 0; i < t->n_writers; i++)
    t->writers[i]->compensated = 0;
  brook_err_t err = task_pump(t);
  return err == BROOK_ERR_FULL ? BROOK_OK : err; /* a deferred marker is not this call's */
}

uint64_t bk_changelog_task_acked(const bk_changelog_task_t *t) { return t->acked; }
uint64_t bk_changelog_task_epoch(const bk_changelog_task_t *t) { return t->epoch; }

uint64_t bk_changelog_task_in_flight(const bk_changelog_task_t *t) {
  uint64_t n = t->in_flight;
  if (!t->failed)
    for (const closed_epoch_t *c = t->closed; c; c = c->next)
      n += t->n_writers - c->n_marked;
  return n;
}

const char *bk_changelog_task_error(const bk_changelog_task_t *t) { return t->err.text; }

void bk_changelog_task_free(bk_changelog_task_t *t) {
  if (!t)
    return;
  t->freed = 1;
  if (t->in_flight == 0)
    task_destroy(t);
}

/* ---- a store's writer ---- */

static brook_err_t writer_join(bk_changelog_task_t *t, bk_changelog_writer_t *w) {
  if (t->n_writers == t->writers_cap) {
    size_t cap = t->writers_cap ? 2 * t->writers_cap : 4;
    bk_changelog_writer_t **nw = bk_realloc(t->alloc, t->writers, cap * sizeof(*nw));
    if (!nw)
      return BROOK_ERR_NOMEM;
    t->writers = nw;
    t->writers_cap = cap;
  }
  t->writers[t->n_writers++] = w;
  w->task = t;
  return BROOK_OK;
}

brook_err_t bk_changelog_writer_new(const bk_changelog_writer_opts_t *o,
                                    bk_changelog_writer_t **out, bk_errmsg_t *why) {
  if (!out || !o || !o->producer || !o->topic || o->partition < 0 ||
      strlen(o->topic) > BK_TOPIC_NAME_MAX) {
    bk_errmsg_set(why, "changelog writer: missing producer or topic, or a negative partition");
    return BROOK_ERR_INVALID_ARG;
  }
  bk_changelog_task_t *t = o->task;
  char what[BK_TOPIC_NAME_MAX + 64];
  snprintf(what, sizeof(what), "changelog '%s' partition %" PRId32, o->topic, o->partition);
  if (t && (t->closed || t->acked >= t->first || t->failed || t->freed)) {
    bk_errmsg_set(why, "%s: a store joins its task before the task's first commit", what);
    return BROOK_ERR_STATE;
  }
  bk_changelog_task_opts_t own = {.first_epoch = o->first_epoch,
                                  .committed = o->committed,
                                  .on_acked = o->on_acked,
                                  .on_error = o->on_error,
                                  .opaque = o->opaque,
                                  .alloc = o->alloc};
  if (!t) {
    brook_err_t err = task_check(&own, what, why);
    if (err)
      return err;
  }
  const brook_allocator_t *a = t ? t->alloc : o->alloc ? o->alloc : bk_default_allocator();
  bk_changelog_writer_t *w = bk_calloc(a, 1, sizeof(*w));
  rd_kafka_topic_conf_t *tc = w ? rd_kafka_topic_conf_new() : NULL;
  if (!w || !tc) {
    bk_free(a, w);
    bk_errmsg_set(why, "%s: out of memory", what);
    return BROOK_ERR_NOMEM;
  }
  rd_kafka_topic_conf_set_opaque(tc, (void *)(uintptr_t)&changelog_topic_tag);
  w->rkt = rd_kafka_topic_new(o->producer, o->topic, tc); /* takes tc */
  if (!w->rkt || rd_kafka_topic_opaque(w->rkt) != &changelog_topic_tag) {
    bk_errmsg_set(why, "%s: %s", what,
                  w->rkt ? "the producer has a handle for this topic made elsewhere (the "
                           "changelog's deliveries could not be told apart)"
                         : rd_kafka_err2str(rd_kafka_last_error()));
    brook_err_t err = w->rkt ? BROOK_ERR_INVALID_ARG : BROOK_ERR_KAFKA;
    writer_destroy(w, a);
    return err;
  }
  w->rk = o->producer;
  snprintf(w->topic, sizeof(w->topic), "%s", o->topic);
  w->partition = o->partition;
  int owns = !t;
  if (owns && !(t = task_make(&own))) {
    writer_destroy(w, a);
    bk_errmsg_set(why, "%s: out of memory", what);
    return BROOK_ERR_NOMEM;
  }
  if (writer_join(t, w)) {
    writer_destroy(w, a);
    if (owns)
      task_destroy(t);
    bk_errmsg_set(why, "%s: out of memory", what);
    return BROOK_ERR_NOMEM;
  }
  if (owns)
    t->owner = w;
  *out = w;
  return BROOK_OK;
}

static brook_err_t produce(bk_changelog_writer_t *w, epoch_slot_t *s, const void *key, size_t klen,
                           const void *value, size_t vlen) {
  bk_changelog_task_t *t = w->task;
  unsigned char hdr[BK_CL_EPOCH_HEADER_LEN];
  /* committed: the last ACKNOWLEDGED marker, so it lies before this record in the log. */
  bk_cl_epoch_header(hdr, s->epoch, t->acked);
  rd_kafka_resp_err_t e =
      rd_kafka_producev(w->rk, RD_KAFKA_V_RKT(w->rkt), RD_KAFKA_V_PARTITION(w->partition),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, klen),
                        RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value ? vlen : 0),
                        RD_KAFKA_V_HEADER(BK_CL_EPOCH_HEADER, hdr, (ssize_t)sizeof(hdr)),
                        RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
  switch (e) {
  case RD_KAFKA_RESP_ERR_NO_ERROR:
    s->pending++;
    t->in_flight++;
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

/* A record of the open epoch. */
static brook_err_t put_record(bk_changelog_writer_t *w, const void *key, size_t klen,
                              const void *value, size_t vlen) {
  bk_changelog_task_t *t = w->task;
  if (t->failed)
    return BROOK_ERR_KAFKA;
  (void)task_pump(t); /* a marker deferred by a full queue goes first */
  epoch_slot_t *s = slot_of(w, t->epoch, t->alloc);
  if (!s)
    return BROOK_ERR_NOMEM;
  if (!bk_cl_key_needs_escape(key, klen))
    return produce(w, s, key, klen, value, vlen);
  if (bk_grow(t->alloc, (void **)&w->buf, &w->buf_cap, klen + 1, 1))
    return BROOK_ERR_NOMEM;
  bk_cl_key_escape(w->buf, key, klen);
  return produce(w, s, w->buf, klen + 1, value, vlen);
}

brook_err_t bk_changelog_put(bk_changelog_writer_t *w, const void *key, size_t klen,
                             const void *value, size_t vlen) {
  if (!key && klen)
    return BROOK_ERR_INVALID_ARG;
  if (w->task->acked < w->task->first && !w->task->failed)
    return BROOK_ERR_STATE; /* the first commit (after compensation) is not acknowledged */
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
  return bk_changelog_task_commit(w->task, positions, len, epoch);
}

bk_changelog_task_t *bk_changelog_writer_task(const bk_changelog_writer_t *w) { return w->task; }
uint64_t bk_changelog_acked(const bk_changelog_writer_t *w) { return w->task->acked; }
uint64_t bk_changelog_epoch(const bk_changelog_writer_t *w) { return w->task->epoch; }
uint64_t bk_changelog_in_flight(const bk_changelog_writer_t *w) {
  return bk_changelog_task_in_flight(w->task);
}

const bk_changelog_writer_stats_t *bk_changelog_writer_stats(const bk_changelog_writer_t *w) {
  return &w->stats;
}

const char *bk_changelog_writer_error(const bk_changelog_writer_t *w) { return w->task->err.text; }

int bk_changelog_writer_marker(const bk_changelog_writer_t *w, uint64_t *epoch, int64_t *offset) {
  if (!w->marker_epoch)
    return 0;
  *epoch = w->marker_epoch;
  *offset = w->marker_offset;
  return 1;
}

int bk_changelog_delivery(const rd_kafka_message_t *m) {
  if (!m->rkt || rd_kafka_topic_opaque(m->rkt) != &changelog_topic_tag)
    return 0;
  epoch_slot_t *s = m->_private;
  bk_changelog_writer_t *w = s->w;
  bk_changelog_task_t *t = w->task;
  s->pending--;
  t->in_flight--;
  if (!m->err && m->key_len == BK_CL_MARKER_KEY_LEN &&
      memcmp(m->key, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN) == 0 && s->epoch > w->marker_epoch) {
    w->marker_epoch = s->epoch;
    w->marker_offset = m->offset;
  }
  if (m->err && !t->failed) {
    bk_errmsg_set(&t->err,
                  "changelog '%s' partition %" PRId32 ": a record of epoch %" PRIu64
                  " was not written: %s",
                  w->topic, w->partition, s->epoch, rd_kafka_err2str(m->err));
    task_fail(t, BROOK_ERR_KAFKA);
  }
  if (t->freed) {
    if (t->in_flight == 0)
      task_destroy(t);
  } else {
    (void)task_pump(t); /* errors are the task's (failed, or retried on the next call) */
  }
  return 1;
}

void bk_changelog_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk, (void)opaque;
  (void)bk_changelog_delivery(m);
}

void bk_changelog_writer_free(bk_changelog_writer_t *w) {
  if (w && w->task->owner == w)
    bk_changelog_task_free(w->task);
}
