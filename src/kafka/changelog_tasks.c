/* The changelogs of a worker's tasks (changelog_tasks.h; the runtime's side:
 * runtime/task_log.h, runtime/task_restore.c), on the module's protocol
 * (changelog_writer.h, changelog_restore.h):
 *
 *   open     the task's topics `<group>-<node>-<store>-changelog` are made sure of
 *            (bk_kafka_ensure_topics: created if missing with the partition count of the
 *            input, else checked; once per topic per worker), then a restore per store starts
 *            on the worker's restore consumer at the partition's beginning (the in-memory
 *            stores are empty; a task database's stores are rolled forward from their last
 *            commit by replaying the log over them: every change in it is a latest value);
 *   step     advances every store's restore by a slice (bounded records and time); once all
 *            reached their end, each is finished with the commit of the store with the
 *            highest committed epoch (one commit for all stores of the task), the writers
 *            start at the next epoch, the dropped tail's keys are compensated and the
 *            restored commit is written at once; the task runs once that commit is
 *            acknowledged (from then on the stores' listeners collect changed keys);
 *   commit   writes each changed key's current value (or a tombstone) and commits the task's
 *            epoch with the input positions; the commit is one delivery of the worker's
 *            current epoch, done when the task's epoch is acknowledged (its markers too).
 *
 * Records and markers go out through the worker's producer (kafka_producer.c hands their
 * reports to bk_changelog_delivery). Loop thread. */
#include "kafka/changelog_tasks.h"

#include <stdio.h>
#include <string.h>

#include <brook/runtime.h>

#include "core/alloc.h"
#include "kafka/changelog_format.h"
#include "kafka/changelog_keyset.h"
#include "kafka/changelog_restore.h"
#include "kafka/changelog_writer.h"
#include "kafka/internal_topic_names.h"
#include "kafka/internal_topics.h"
#include "kafka/kafka_poll.h"
#include "kafka/kafka_producer.h"
#include "runtime/positions.h"
#include "runtime/task_log.h"
#include "state/store_changelog.h"

#define SLICE_RECORDS 20000 /* per store and turn of the worker's loop */
#define SLICE_MS 5
#define FULL_WAIT_MS 30000
#define MAX_CONFIGS                                                                                \
  16 /* name, value pairs of a changelog's topic configs */ /* a changelog write waits this long   \
                                                               for room in the queue */

struct bk_cl_layer {
  bk_worker_t *w;
  const brook_allocator_t *alloc;
  const char *group, *bootstrap;
  char *const *props;
  char *const *topics;
  int timeout_ms;
  bk_kprod_t *prod;
  rd_kafka_t *rk;       /* prod's client */
  rd_kafka_t *consumer; /* restores' */
  int32_t partitions;   /* the input's partition count (0: not asked yet) */
  char **ensured;       /* topics made sure of */
  size_t n_ensured, cap_ensured;
};

typedef struct cl_task cl_task_t;

typedef struct cl_store {
  cl_task_t *t;
  brook_store_t *store;
  char topic[BK_TOPIC_NAME_MAX + 1];
  char label[256]; /* "<node>/<store>" for the listener */
  bk_changelog_restore_t *r;
  int done, started;
  int64_t start;     /* the offset the restore starts at */
  uint64_t reported; /* records applied that the listener was told of */
  bk_changelog_writer_t *wr;
  bk_cl_keyset_t keys;
  uint64_t records_seen, markers_seen; /* the writer's stats already counted */
} cl_store_t;

typedef struct cl_pending {
  uint64_t epoch; /* the changelog epoch a commit closed */
  uint64_t token; /* its delivery (bk_rt_delivery_add) */
} cl_pending_t;

enum { PHASE_RESTORING, PHASE_STARTING, PHASE_RUNNING };

struct cl_task {
  bk_cl_layer_t *l;
  int32_t id, partition;
  char name[32];
  cl_store_t *stores;
  size_t n;
  int phase;
  uint64_t first_commit;    /* the restored commit's epoch (STARTING waits for it) */
  unsigned char *positions; /* where the restored state's input resumes (a marker's blob) */
  size_t positions_len;
  int has_positions;
  unsigned char *local; /* with state on disk: the positions of its last commit (a copy) */
  size_t local_len;
  bk_changelog_task_t *task;
  cl_pending_t *pending;
  size_t n_pending, cap_pending;
  uint64_t started_ms;
};

/* ---- the layer ---- */

static const bk_task_log_vt_t cl_vt;

brook_err_t bk_cl_layer_attach(bk_worker_t *w, const char *group, const char *bootstrap,
                               char *const *props, char *const *topics, int64_t timeout_ms,
                               bk_cl_layer_t **out) {
  *out = NULL;
  if (!group || !bk_task_log_wanted(w))
    return BROOK_OK;
  bk_cl_layer_t *l = bk_calloc(bk_rt_alloc(w), 1, sizeof(*l));
  if (!l)
    return BROOK_ERR_NOMEM;
  l->w = w;
  l->alloc = bk_rt_alloc(w);
  l->group = group;
  l->bootstrap = bootstrap;
  l->props = props;
  l->topics = topics;
  l->timeout_ms = timeout_ms > 0 && timeout_ms < 600000 ? (int)timeout_ms : 10000;
  if (!bk_task_log_set(w, &cl_vt, l)) {
    bk_free(l->alloc, l);
    return BROOK_OK;
  }
  *out = l;
  return BROOK_OK;
}

void bk_cl_layer_detach(bk_cl_layer_t *l) {
  if (!l)
    return;
  bk_task_log_set(l->w, NULL, NULL);
  if (l->rk) {
    /* Records and markers still in flight (a failed run: purged; a task that closed in its
     * restored commit, the run stopping meanwhile: acknowledged soon) have their reports
     * served here, so their writers' bookkeeping is freed before the producer closes. */
    if (bk_rt_status(l->w) != BROOK_OK)
      rd_kafka_purge(l->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 200 && rd_kafka_outq_len(l->rk) > 0; i++)
      rd_kafka_poll(l->rk, 10);
  }
  bk_kprod_close(l->prod);
  if (l->consumer && bk_rt_loop(l->w))
    bk_kafka_destroy_off_loop(l->w, l->consumer, 0);
  else if (l->consumer)
    rd_kafka_destroy(l->consumer); /* the loop never ran */
  for (size_t i = 0; i < l->n_ensured; i++)
    bk_free(l->alloc, l->ensured[i]);
  bk_free(l->alloc, l->ensured);
  bk_free(l->alloc, l);
}

/* A changelog message is never refused through the producer's user (its reports go to the
 * writer, bk_changelog_delivery): this only completes what reached it. */
static void never_failed(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch, unsigned flags,
                         void *opaque) {
  (void)m, (void)flags, (void)opaque;
  bk_rt_delivery_done(bk_kprod_worker(p), epoch);
}

static brook_err_t clients(bk_cl_layer_t *l, bk_errmsg_t *why) {
  char text[512];
  brook_err_t err;
  if (!l->prod) {
    if ((err = bk_kprod_new(l->w, "changelogs", l->bootstrap, l->props, 0, never_failed, l,
                            &l->prod, text, sizeof(text))) < 0) {
      bk_errmsg_set(why, "the changelogs' producer: %s", text);
      return err;
    }
    l->rk = bk_kprod_rk(l->prod);
  }
  if (!l->consumer && (err = bk_changelog_restore_consumer(
                           l->bootstrap, (const char *const *)l->props, &l->consumer, why)) < 0)
    return err;
  return BROOK_OK;
}

/* The input's partition count: the largest of the source's topics (a changelog has one
 * partition per task). */
static brook_err_t input_partitions(bk_cl_layer_t *l, bk_errmsg_t *why) {
  if (l->partitions > 0)
    return BROOK_OK;
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t kerr = rd_kafka_metadata(l->rk, 1, NULL, &md, l->timeout_ms);
  if (kerr) {
    bk_errmsg_set(why, "the cluster did not list its topics: %s", rd_kafka_err2str(kerr));
    return kerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? BROOK_ERR_TIMEOUT : BROOK_ERR_KAFKA;
  }
  int32_t most = 0;
  for (size_t i = 0; l->topics && l->topics[i]; i++)
    for (int k = 0; k < md->topic_cnt; k++)
      if (strcmp(md->topics[k].topic, l->topics[i]) == 0 && !md->topics[k].err &&
          md->topics[k].partition_cnt > most)
        most = md->topics[k].partition_cnt;
  rd_kafka_metadata_destroy(md);
  if (most <= 0) {
    bk_errmsg_set(why, "the input topics are not listed by the cluster: their partition count "
                       "sets the changelogs'");
    return BROOK_ERR_KAFKA;
  }
  l->partitions = most;
  return BROOK_OK;
}

static int ensured(const bk_cl_layer_t *l, const char *topic) {
  for (size_t i = 0; i < l->n_ensured; i++)
    if (strcmp(l->ensured[i], topic) == 0)
      return 1;
  return 0;
}

/* brook's changelog configs with the store's on top (a name given there replaces brook's
 * value), into out (2 * MAX_CONFIGS + 1 entries; what does not fit is left out). */
static const char *const *merge_configs(const char **out, const char *const *own) {
  size_t n = 0;
  for (size_t i = 0; bk_changelog_topic_defaults[i] && n < 2 * MAX_CONFIGS; i += 2) {
    out[n++] = bk_changelog_topic_defaults[i];
    out[n++] = bk_changelog_topic_defaults[i + 1];
  }
  for (size_t i = 0; own && own[i] && own[i + 1]; i += 2) {
    size_t k = 0;
    while (k < n && strcmp(out[k], own[i]) != 0)
      k += 2;
    if (k == n && n >= 2 * MAX_CONFIGS)
      continue;
    out[k] = own[i];
    out[k + 1] = own[i + 1];
    n = k == n ? n + 2 : n;
  }
  out[n] = NULL;
  return out;
}

/* Makes sure of the task's topics not made sure of yet (one blocking round trip to the
 * cluster per new topic set: the first task of a worker, in practice). */
static brook_err_t ensure_topics(bk_cl_layer_t *l, cl_task_t *t, bk_errmsg_t *why) {
  bk_topic_spec_t specs[64];
  size_t n = 0;
  for (size_t i = 0; i < t->n && n < 64; i++)
    if (!ensured(l, t->stores[i].topic))
      specs[n++] = (bk_topic_spec_t){t->stores[i].topic, 0, -1, NULL};
  if (!n)
    return BROOK_OK;
  brook_err_t err = input_partitions(l, why);
  if (err)
    return err;
  const char *configs[64][2 * MAX_CONFIGS + 1];
  for (size_t i = 0; i < n; i++) {
    specs[i].partitions = l->partitions;
    const char *const *own = NULL;
    for (size_t k = 0; k < t->n; k++)
      if (t->stores[k].topic == specs[i].name)
        own = bk_store_changelog_configs(t->stores[k].store);
    specs[i].configs = merge_configs(configs[i], own);
  }
  if ((err = bk_kafka_ensure_topics(l->rk, specs, n, l->timeout_ms, why)) < 0)
    return err;
  for (size_t i = 0; i < n; i++) {
    char *copy = bk_strdup(l->alloc, specs[i].name);
    if (!copy || bk_grow(l->alloc, (void **)&l->ensured, &l->cap_ensured, l->n_ensured + 1,
                         sizeof(*l->ensured))) {
      bk_free(l->alloc, copy);
      return BROOK_ERR_NOMEM;
    }
    l->ensured[l->n_ensured++] = copy;
  }
  return BROOK_OK;
}

/* ---- the task ---- */

static brook_err_t apply_change(const void *key, size_t klen, const void *value, size_t vlen,
                                void *opaque) {
  cl_store_t *s = opaque;
  if (!value) {
    brook_err_t err = brook_store_delete(s->store, key, klen);
    return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
  }
  return brook_store_put(s->store, key, klen, value, vlen);
}

static brook_err_t on_change(const void *key, size_t klen, const void *value, size_t vlen,
                             void *opaque) {
  (void)value, (void)vlen;
  cl_store_t *s = opaque;
  return bk_cl_keyset_add(&s->keys, key, klen);
}

static void task_free(cl_task_t *t) {
  bk_cl_layer_t *l = t->l;
  for (size_t i = 0; i < t->n; i++) {
    bk_changelog_restore_free(t->stores[i].r);
    bk_cl_keyset_free(&t->stores[i].keys);
  }
  for (size_t i = 0; i < t->n_pending; i++) /* abandoned: the run failed, or revoked at the */
    bk_rt_delivery_done(l->w, t->pending[i].token); /* timeout (offsets not committed past) */
  bk_changelog_task_free(t->task);                  /* and its writers */
  bk_free(l->alloc, t->pending);
  bk_free(l->alloc, t->positions);
  bk_free(l->alloc, t->local);
  bk_free(l->alloc, t->stores);
  bk_free(l->alloc, t);
}

/* The epoch entry of a changelog in the positions blob: "<topic>#epoch" (no topic name has a
 * '#', so it never meets an input's). */
static void epoch_name(char *out, size_t cap, const char *topic) {
  snprintf(out, cap, "%s#epoch", topic);
}

/* With state on disk: the last marker its local state covers (stored with it by
 * cl_positions_add): the restore replays only what follows (*start); its epoch, or 0 (none:
 * from the beginning). */
static uint64_t local_marker(const cl_task_t *t, const cl_store_t *s, int64_t *start) {
  char name[BK_TOPIC_NAME_MAX + 8];
  int64_t at = -1, epoch = 0;
  epoch_name(name, sizeof(name), s->topic);
  if (!t->local || !bk_positions_find(t->local, t->local_len, s->topic, t->partition, &at) ||
      !bk_positions_find(t->local, t->local_len, name, t->partition, &epoch) || at < 0 ||
      !bk_cl_epoch_valid((uint64_t)epoch))
    return 0;
  *start = at;
  return (uint64_t)epoch;
}

static brook_err_t cl_positions_add(void *state, bk_positions_t *out) {
  cl_task_t *t = state;
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < t->n && !err && t->phase == PHASE_RUNNING; i++) {
    uint64_t epoch;
    int64_t offset;
    char name[BK_TOPIC_NAME_MAX + 8];
    if (!bk_changelog_writer_marker(t->stores[i].wr, &epoch, &offset))
      continue;
    epoch_name(name, sizeof(name), t->stores[i].topic);
    if (!(err = bk_positions_add(out, t->stores[i].topic, t->partition, offset + 1)))
      err = bk_positions_add(out, name, t->partition, (int64_t)epoch);
  }
  return err;
}

static brook_err_t cl_open(void *layer, const bk_task_log_task_t *lt, void **state,
                           bk_errmsg_t *why) {
  bk_cl_layer_t *l = layer;
  *state = NULL;
  why->text[0] = '\0';
  cl_task_t *t = bk_calloc(l->alloc, 1, sizeof(*t));
  if (!t || !(t->stores = bk_calloc(l->alloc, lt->n_stores, sizeof(*t->stores)))) {
    bk_free(l->alloc, t);
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  t->l = l;
  t->id = lt->id;
  t->partition = lt->partition;
  snprintf(t->name, sizeof(t->name), "%s", lt->name);
  t->n = lt->n_stores;
  t->started_ms = (uint64_t)bk_wallclock_ms();
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < t->n && !err; i++) {
    cl_store_t *s = &t->stores[i];
    s->t = t;
    s->store = lt->stores[i].store;
    bk_cl_keyset_init(&s->keys, l->alloc);
    snprintf(s->label, sizeof(s->label), "%s/%s", lt->stores[i].node, lt->stores[i].name);
    err = bk_changelog_topic(s->topic, sizeof(s->topic), l->group, lt->stores[i].node,
                             lt->stores[i].name, why);
  }
  if (!err && !(err = clients(l, why)))
    err = ensure_topics(l, t, why);
  if (!err && lt->local_positions && lt->local_len) {
    if (!(t->local = bk_malloc(l->alloc, lt->local_len)))
      err = BROOK_ERR_NOMEM;
    else
      memcpy(t->local, lt->local_positions, lt->local_len), t->local_len = lt->local_len;
  }
  for (size_t i = 0; i < t->n && !err; i++) {
    cl_store_t *s = &t->stores[i];
    int64_t start = 0;
    uint64_t known = local_marker(t, s, &start);
    s->start = start;
    bk_changelog_restore_opts_t o = {.consumer = l->consumer,
                                     .topic = s->topic,
                                     .partition = t->partition,
                                     .start_offset = start,
                                     .known_epoch = known,
                                     .timeout_ms = l->timeout_ms,
                                     .apply = apply_change,
                                     .apply_opaque = s,
                                     .alloc = l->alloc};
    err = bk_changelog_restore_new(&o, &s->r, why);
  }
  if (err) {
    if (!why->text[0])
      bk_errmsg_set(why, "%s", brook_strerror(err));
    task_free(t);
    return err;
  }
  *state = t;
  return BROOK_OK;
}

void (*bk_test_after_changelog_acked)(int32_t task, uint64_t epoch) = NULL;

static void on_acked(uint64_t epoch, void *opaque) {
  cl_task_t *t = opaque;
  if (bk_test_after_changelog_acked && t->phase == PHASE_RUNNING)
    bk_test_after_changelog_acked(t->id, epoch);
  size_t k = 0;
  for (size_t i = 0; i < t->n_pending; i++) {
    if (t->pending[i].epoch <= epoch)
      bk_rt_delivery_done(t->l->w, t->pending[i].token);
    else
      t->pending[k++] = t->pending[i];
  }
  t->n_pending = k;
  bk_worker_poke(t->l->w);
}

static void on_error(brook_err_t err, void *opaque) {
  cl_task_t *t = opaque;
  bk_wk_fail(t->l->w, err, "changelogs of task %s: %s", t->name, bk_changelog_task_error(t->task));
  bk_worker_poke(t->l->w);
}

/* The listener of the restore's progress. */
static void report(cl_task_t *t, cl_store_t *s, int end) {
  const brook_restore_listener_t *rl = bk_task_log_listener(t->l->w);
  const bk_changelog_restore_result_t *res = bk_changelog_restore_result(s->r);
  if (!s->started && (res->end_offset > 0 || end)) {
    s->started = 1;
    if (rl && rl->on_start)
      rl->on_start(t->id, s->label,
                   res->end_offset > s->start ? (uint64_t)(res->end_offset - s->start) : 0,
                   rl->opaque);
  }
  uint64_t applied = res->records_applied;
  if (applied > s->reported) {
    bk_task_log_count(t->l->w, BK_LOG_STAT_RESTORED, applied - s->reported);
    if (rl && rl->on_batch)
      rl->on_batch(t->id, s->label, applied - s->reported, applied, rl->opaque);
    s->reported = applied;
  }
  if (end && rl && rl->on_end) {
    uint64_t now = (uint64_t)bk_wallclock_ms();
    rl->on_end(t->id, s->label, applied, res->records_read,
               now > t->started_ms ? now - t->started_ms : 0, rl->opaque);
  }
}

static void tail_key_at(size_t i, const void **key, size_t *klen, void *opaque) {
  bk_changelog_restore_tail_key(opaque, i, key, klen);
}

static brook_err_t lookup(const void *key, size_t klen, const void **value, size_t *vlen,
                          void *opaque) {
  static const unsigned char empty = 0;
  brook_err_t err = brook_store_get(opaque, key, klen, value, vlen);
  if (err == BROOK_OK && !*value)
    *value = &empty; /* an empty value, not a deletion */
  return err;
}

static void count_written(cl_task_t *t) {
  for (size_t i = 0; i < t->n; i++) {
    cl_store_t *s = &t->stores[i];
    const bk_changelog_writer_stats_t *st = bk_changelog_writer_stats(s->wr);
    uint64_t rec = st->records + st->compensations, mk = st->markers;
    bk_task_log_count(t->l->w, BK_LOG_STAT_RECORDS, rec - s->records_seen);
    bk_task_log_count(t->l->w, BK_LOG_STAT_MARKERS, mk - s->markers_seen);
    s->records_seen = rec;
    s->markers_seen = mk;
  }
}

/* Retries a write that found the producer's queue full, serving the producer meanwhile. */
static brook_err_t wait_for_room(cl_task_t *t, uint64_t *since) {
  uint64_t now = (uint64_t)bk_wallclock_ms();
  if (!*since)
    *since = now;
  if (now - *since > FULL_WAIT_MS)
    return BROOK_ERR_TIMEOUT;
  rd_kafka_poll(t->l->rk, 10);
  return BROOK_OK;
}

/* Every store restored: one commit for all (changelog_restore.h), the writers, the tail's
 * compensation and the restored commit. */
static brook_err_t start_writing(cl_task_t *t, bk_errmsg_t *why) {
  bk_cl_layer_t *l = t->l;
  size_t top = 0;
  for (size_t i = 1; i < t->n; i++)
    if (bk_changelog_restore_result(t->stores[i].r)->committed_epoch >
        bk_changelog_restore_result(t->stores[top].r)->committed_epoch)
      top = i;
  const bk_changelog_restore_result_t *tr = bk_changelog_restore_result(t->stores[top].r);
  uint64_t epoch = tr->committed_epoch, prev = tr->marker_prev;
  /* The restored state's input positions: the last marker's; with state on disk and no
   * marker after the one it covers, its own (so the restored commit's marker carries them). */
  const void *pos = tr->has_marker ? tr->positions : t->local;
  size_t pos_len = tr->has_marker ? tr->positions_len : t->local_len;
  brook_err_t err;
  if (tr->has_marker && pos_len &&
      (err = bk_positions_check(pos, pos_len, t->stores[top].topic, why)) < 0)
    return err; /* a marker whose checksum holds but whose positions do not parse */
  if (pos && pos_len) {
    if (!(t->positions = bk_malloc(l->alloc, pos_len)))
      return BROOK_ERR_NOMEM;
    memcpy(t->positions, pos, pos_len);
    t->positions_len = pos_len;
    t->has_positions = 1;
  }
  uint64_t first = 0;
  for (size_t i = 0; i < t->n; i++) {
    cl_store_t *s = &t->stores[i];
    if ((err = bk_changelog_restore_finish(s->r, epoch, prev, why)) < 0)
      return err;
    const bk_changelog_restore_result_t *res = bk_changelog_restore_result(s->r);
    first = res->next_epoch > first ? res->next_epoch : first;
    report(t, s, 1);
  }
  bk_changelog_task_opts_t to = {.first_epoch = first,
                                 .committed = epoch,
                                 .on_acked = on_acked,
                                 .on_error = on_error,
                                 .opaque = t,
                                 .alloc = l->alloc};
  if ((err = bk_changelog_task_new(&to, &t->task, why)) < 0)
    return err;
  for (size_t i = 0; i < t->n; i++) {
    cl_store_t *s = &t->stores[i];
    bk_changelog_writer_opts_t wo = {
        .producer = l->rk, .topic = s->topic, .partition = t->partition, .task = t->task};
    if ((err = bk_changelog_writer_new(&wo, &s->wr, why)) < 0)
      return err;
  }
  for (size_t i = 0; i < t->n; i++) {
    cl_store_t *s = &t->stores[i];
    size_t n_tail = bk_changelog_restore_result(s->r)->tail_keys;
    uint64_t since = 0;
    while ((err = bk_changelog_compensate(s->wr, n_tail, tail_key_at, s->r, lookup, s->store)) ==
           BROOK_ERR_FULL)
      if ((err = wait_for_room(t, &since)) < 0)
        break;
    if (err < 0) {
      bk_errmsg_set(why, "compensating the dropped tail of %s [%d]: %s", s->topic,
                    (int)t->partition, brook_strerror(err));
      return err;
    }
  }
  if ((err = bk_changelog_task_commit(t->task, t->positions, t->positions_len, &t->first_commit)) <
      0) {
    bk_errmsg_set(why, "the restored commit of task %s: %s", t->name, brook_strerror(err));
    return err;
  }
  count_written(t);
  for (size_t i = 0; i < t->n; i++) {
    bk_changelog_restore_free(t->stores[i].r);
    t->stores[i].r = NULL;
  }
  t->phase = PHASE_STARTING;
  return BROOK_OK;
}

static brook_err_t cl_step(void *layer, void *state, int *done, bk_errmsg_t *why) {
  bk_cl_layer_t *l = layer;
  cl_task_t *t = state;
  *done = 0;
  why->text[0] = '\0';
  brook_err_t err = BROOK_OK;
  if (t->phase == PHASE_RESTORING) {
    rd_kafka_poll(l->consumer, 0); /* its logs and errors */
    size_t left = 0;
    for (size_t i = 0; i < t->n && !err; i++) {
      cl_store_t *s = &t->stores[i];
      if (s->done)
        continue;
      err = bk_changelog_restore_step(s->r, SLICE_RECORDS, SLICE_MS, 0, &s->done, why);
      if (!err)
        report(t, s, 0);
      left += !s->done;
    }
    if (!err && !left)
      err = start_writing(t, why);
  }
  if (!err && t->phase == PHASE_STARTING) {
    if (bk_changelog_task_error(t->task)[0]) {
      bk_errmsg_set(why, "%s", bk_changelog_task_error(t->task));
      return BROOK_ERR_KAFKA;
    }
    (void)bk_changelog_task_pump(t->task);
    if (bk_changelog_task_acked(t->task) >= t->first_commit) {
      t->phase = PHASE_RUNNING;
      for (size_t i = 0; i < t->n; i++)
        brook_store_set_listener(t->stores[i].store, on_change, &t->stores[i]);
      *done = 1;
    }
  }
  if (err && !why->text[0])
    bk_errmsg_set(why, "%s", brook_strerror(err));
  return err;
}

static const void *cl_positions(void *state, size_t *len) {
  cl_task_t *t = state;
  *len = t->positions_len;
  return t->phase == PHASE_RUNNING && t->has_positions ? t->positions : NULL;
}

static brook_err_t cl_commit(void *layer, void *state, const void *positions, size_t len,
                             bk_errmsg_t *why) {
  bk_cl_layer_t *l = layer;
  cl_task_t *t = state;
  if (t->phase != PHASE_RUNNING)
    return BROOK_OK;
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < t->n && !err; i++) {
    cl_store_t *s = &t->stores[i];
    uint64_t since = 0;
    for (size_t k = 0; k < s->keys.n && !err;) {
      size_t klen;
      const void *key = bk_cl_keyset_key(&s->keys, k, &klen);
      const void *val = NULL;
      size_t vlen = 0;
      err = lookup(key, klen, &val, &vlen, s->store);
      if (err == BROOK_ERR_NOT_FOUND)
        val = NULL, vlen = 0, err = BROOK_OK;
      if (!err && (err = bk_changelog_put(s->wr, key, klen, val, vlen)) == BROOK_ERR_FULL &&
          (err = wait_for_room(t, &since)) == BROOK_OK)
        continue; /* the same key again */
      k++;
    }
    if (err)
      bk_errmsg_set(why, "writing to %s [%d]: %s%s%s", s->topic, (int)t->partition,
                    brook_strerror(err), bk_changelog_task_error(t->task)[0] ? ": " : "",
                    bk_changelog_task_error(t->task));
    bk_cl_keyset_reset(&s->keys);
  }
  uint64_t epoch = 0;
  if (!err && (err = bk_changelog_task_commit(t->task, positions, len, &epoch)) < 0)
    bk_errmsg_set(why, "committing epoch: %s %s", brook_strerror(err),
                  bk_changelog_task_error(t->task));
  if (err)
    return err;
  count_written(t);
  if (bk_changelog_task_acked(t->task) >= epoch)
    return BROOK_OK;
  uint64_t token = bk_rt_delivery_add(l->w);
  if (!token || bk_grow(l->alloc, (void **)&t->pending, &t->cap_pending, t->n_pending + 1,
                        sizeof(*t->pending))) {
    if (token)
      bk_rt_delivery_done(l->w, token);
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  t->pending[t->n_pending++] = (cl_pending_t){epoch, token};
  return BROOK_OK;
}

static void cl_close(void *layer, void *state) {
  (void)layer;
  if (state)
    task_free(state);
}

static const bk_task_log_vt_t cl_vt = {
    .open = cl_open,
    .step = cl_step,
    .positions = cl_positions,
    .commit = cl_commit,
    .positions_add = cl_positions_add,
    .close = cl_close,
};
