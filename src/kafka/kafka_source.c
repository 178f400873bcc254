/* The Kafka source: a librdkafka consumer in a group (subscription, cooperative-sticky
 * rebalancing) or on an explicit assignment, served on the loop thread: its queue signals a
 * pipe watched by uv_poll (kafka_poll.c), and each batch is drained with
 * rd_kafka_consumer_poll(rk, 0), which also runs the rebalance and commit callbacks here.
 * This file is its runtime side (the vtable and life cycle, pausing, the partition table)
 * around the state in kafka_source_impl.h; the rest, one concept a file:
 *   kafka_source_opts.c  the options, their checks and the builder
 *   kafka_consumer.c     the consumer: configuration, callbacks, subscription, release
 *   kafka_rebalance.c    partitions assigned and revoked (each a split with its task)
 *   kafka_batch.c        one partition's messages into a batch of records
 *   kafka_backpressure.c pausing while outputs await acknowledgement; the source's timer
 *   kafka_commit.c       at least once: offsets committed at the runtime's commits
 *   kafka_positions.c    state on disk: positions per task, resuming where a task's state ends
 *   kafka_leave.c        leaving the group, after a stop or a failed run
 *
 * Stop: a stop pauses input, processes what was fetched, asks the runtime for a final commit
 * (runtime/commit.c: flushes, acknowledgements, then this source's offsets), then closes the
 * consumer (leaving the group) before the source ends. A failed run leaves the group too,
 * after the runtime has closed its operators (ks_close), so a restart does not wait for the
 * session to time out. Loop thread; the client's destroy runs on a worker thread. */
#include "kafka/kafka_source_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "kafka/changelog_tasks.h"
#include "kafka/dead_letter.h"
#include "kafka/kafka_conf.h"
#include "kafka/repartition.h"

/* ---- messages to the runtime ---- */

void bk_ksrc_log(bk_ksrc_t *k, int level, const char *fmt, ...) {
  if (!bk_rt_logs(k->w))
    return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), k->cfg->props, k->who, fmt, ap);
  va_end(ap);
  bk_rt_log(k->w, level, msg);
}

void bk_ksrc_fail(bk_ksrc_t *k, brook_err_t err, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), k->cfg->props, k->who, fmt, ap);
  va_end(ap);
  bk_wk_fail(k->w, err, "%s", msg);
}

/* ---- partitions ---- */

size_t bk_ksrc_part_find(bk_ksrc_t *k, const char *topic, int32_t partition) {
  for (size_t i = 0; i < k->n_parts; i++)
    if (k->parts[i].partition == partition && strcmp(k->parts[i].topic, topic) == 0)
      return i;
  return SIZE_MAX;
}

size_t bk_ksrc_part_get(bk_ksrc_t *k, const char *topic, int32_t partition) {
  size_t i = bk_ksrc_part_find(k, topic, partition);
  if (i != SIZE_MAX)
    return i;
  const brook_allocator_t *a = bk_rt_alloc(k->w);
  if (bk_grow(a, (void **)&k->parts, &k->cap_parts, k->n_parts + 1, sizeof(*k->parts)))
    return SIZE_MAX;
  char *t = bk_strdup(a, topic);
  if (!t)
    return SIZE_MAX;
  k->parts[k->n_parts] = (bk_kpart_t){.topic = t,
                                      .partition = partition,
                                      .committable = -1,
                                      .committed = -1,
                                      .processed = -1,
                                      .skip_below = -1,
                                      .dropped_from = -1};
  return k->n_parts++;
}

void bk_ksrc_set_paused(bk_ksrc_t *k, int pause, rd_kafka_topic_partition_list_t *l) {
  rd_kafka_topic_partition_list_t *all = NULL;
  if (!l) {
    l = all = rd_kafka_topic_partition_list_new((int)k->n_parts);
    for (size_t i = 0; i < k->n_parts; i++)
      if (k->parts[i].assigned)
        rd_kafka_topic_partition_list_add(all, k->parts[i].topic, k->parts[i].partition);
  }
  if (l->cnt)
    (void)(pause ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l));
  if (all)
    rd_kafka_topic_partition_list_destroy(all);
}

/* ---- the vtable ---- */

static brook_err_t ks_create(bk_src_t *src) {
  bk_worker_t *w = bk_src_worker(src);
  bk_ksrc_t *k = bk_calloc(bk_rt_alloc(w), 1, sizeof(*k));
  if (!k)
    return BROOK_ERR_NOMEM;
  k->src = src;
  k->cfg = bk_src_cfg(src);
  k->w = w;
  k->batch_next = -1;
  if (bk_wk_count(w) > 1)
    snprintf(k->who, sizeof(k->who), "Kafka source '%s' (worker %zu)", bk_src_name(src),
             bk_wk_index(w));
  else
    snprintf(k->who, sizeof(k->who), "Kafka source '%s'", bk_src_name(src));
  bk_src_set_impl(src, k);
  /* Message timestamps come from any producer: checked by default (time.h, ts_bounds). */
  bk_wm_bounds_set(bk_src_wm(src), 1);
  if (k->cfg->o.commit_interval_ms && bk_wk_index(w) == 0) /* said once, not per worker */
    bk_ksrc_log(k, BROOK_LOG_WARN,
                "commit_interval_ms (%lld) is deprecated and ignored: offsets are committed at "
                "the runtime's commits (brook_runtime_opts_t.commit_interval_ms)",
                (long long)k->cfg->o.commit_interval_ms);
  brook_err_t err = bk_commit_register(w, bk_ksrc_commit_point, k);
  return err ? err : bk_ksrc_positions_register(k);
}

static void on_queue(void *opaque) {
  bk_ksrc_t *k = opaque;
  if (k->after_failure)
    bk_ksrc_failed_leave_step(k);
  else
    bk_sched_ready(k->src);
}

static brook_err_t ks_start(bk_src_t *src) {
  bk_ksrc_t *k = bk_src_impl(src);
  brook_err_t err = bk_krp_source_start(k); /* a repartition topic's reader */
  if (err >= 0) /* the worker's changelogs (runtime option changelogs) */
    err = bk_cl_layer_attach(k->w, k->cfg->group, k->cfg->bootstrap, k->cfg->props, k->cfg->topics,
                             k->cfg->o.startup_timeout_ms, &k->cl);
  return err < 0 ? err : bk_ksrc_consumer_new(k);
}

static void topic_log(void *opaque, int level, const char *msg) {
  bk_ksrc_log(opaque, level, "%s", msg);
}

static brook_err_t ks_attach(bk_src_t *src) {
  bk_ksrc_t *k = bk_src_impl(src);
  const bk_ksrc_cfg_t *cfg = k->cfg;
  brook_err_t err =
      bk_kafka_poller_start(k->w, k->q, on_queue, k, &k->poller, k->why, sizeof(k->why));
  if (err < 0) {
    brook_ctx_set_error(bk_src_ctx(src), "Kafka source: %s", k->why);
    return err;
  }
  if ((err = bk_kafka_startup_begin(k->w, k->rk, k->who, cfg->bootstrap, cfg->props,
                                    cfg->o.startup_timeout_ms, &k->startup)) < 0 ||
      (err = bk_topic_watch_begin(k->w, k->rk, cfg->topics, topic_log, k, &k->topic_watch)) < 0)
    return err;
  if (cfg->dlq) {
    char who[160];
    snprintf(who, sizeof(who), "Kafka source '%s' (dead letters)", bk_src_name(src));
    if ((err = bk_kprod_new(k->w, who, cfg->bootstrap, cfg->props, 1, bk_dead_letter_failed, NULL,
                            &k->dlq, k->why, sizeof(k->why))) < 0) {
      brook_ctx_set_error(bk_src_ctx(src), "%s", k->why);
      return err;
    }
  }
  for (size_t i = 0; i < k->n_parts; i++) /* an explicit assignment */
    if (k->parts[i].assigned)
      bk_ksrc_open_task(k, i);
  if (bk_rt_status(k->w) != BROOK_OK)
    return bk_rt_status(k->w);
  uv_timer_init(bk_rt_loop(k->w), &k->timer);
  k->timer.data = k;
  k->timer_open = 1;
  bk_ksrc_timer_arm(k);
  bk_sched_ready(src); /* the queue may hold something already: poll once */
  return BROOK_OK;
}

/* The message behind a failed record (bk_source_vt_t.origin). */
static int ks_origin(bk_src_t *src, const brook_record_t *rec, bk_origin_t *out) {
  bk_ksrc_t *k = bk_src_impl(src);
  const rd_kafka_message_t *m = bk_ktrace_find(&k->trace, rec);
  if (!m)
    return 0;
  *out = (bk_origin_t){rd_kafka_topic_name(m->rkt), m->partition, m->offset};
  return 1;
}

/* The stop sequence, one step per call: the runtime's final commit, the offsets' commit
 * result, leaving the group. */
static brook_err_t stop_step(bk_ksrc_t *k) {
  bk_src_t *src = k->src;
  if (k->phase == BK_KSRC_STOP_DRAIN) { /* everything fetched is processed */
    k->phase = BK_KSRC_STOP_FLUSH;
    k->stop_epoch = bk_rt_batch_epoch(k->w); /* covers every batch this source ran */
    bk_ksrc_timer_arm(k);                    /* the stop's waits are driven by the timer too */
    bk_commit_request(k->w, 1);              /* bk_ksrc_commit_point(final) goes on */
  }
  if (k->phase == BK_KSRC_STOP_FLUSH) {
    bk_src_unready(src);
    return BROOK_OK;
  }
  if (k->phase == BK_KSRC_STOP_COMMIT && k->commit_in_flight) {
    if (!k->leave_due_ms)
      bk_ksrc_leave_deadline_start(k); /* the commit's answer is waited for a bounded time */
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(k->rk, 0))) /* serves bk_ksrc_on_commit */
      rd_kafka_message_destroy(m);
    if (k->commit_in_flight && !bk_ksrc_leave_overdue(k)) {
      bk_src_unready(src);
      return BROOK_OK;
    }
    if (k->commit_in_flight)
      bk_ksrc_log(k, BROOK_LOG_WARN,
                  "the final offset commit was not answered in time: leaving without it (the "
                  "records since the last commit are read again)");
  }
  if (k->phase == BK_KSRC_STOP_COMMIT && k->revoke.parts) {
    bk_src_unready(src); /* the revocation finishes first (its timer), then the leave */
    return BROOK_OK;
  }
  if (k->phase == BK_KSRC_STOP_COMMIT)
    bk_ksrc_leave_begin(k);
  if (bk_ksrc_leave_step(k))
    return BROOK_DONE;
  bk_src_unready(src); /* the queue (or, for a join's deadline, the timer) signals the next step */
  return BROOK_OK;
}

static brook_err_t ks_produce(bk_src_t *src) {
  bk_ksrc_t *k = bk_src_impl(src);
  if (k->phase != BK_KSRC_RUNNING && k->phase != BK_KSRC_STOP_DRAIN)
    return stop_step(k);
  if (k->opens_pending)
    bk_ksrc_open_pending_tasks(k); /* assigned since the last turn: before any of their records */
  if (bk_rt_status(k->w) != BROOK_OK)
    return bk_rt_status(k->w);
  if (bk_ksrc_backpressure(k)) { /* the timer resumes (kafka_backpressure.c) */
    bk_src_unready(src);
    return BROOK_OK;
  }
  brook_err_t ret = bk_ksrc_read_batch(k);
  if (ret < 0)
    return ret;
  if (k->stash || k->opens_pending)
    bk_sched_ready(src); /* more is waiting right now */
  if (k->phase == BK_KSRC_STOP_DRAIN && k->batch_part == SIZE_MAX)
    return stop_step(k); /* nothing left to read: go on with the stop */
  return BROOK_OK;
}

static void ks_batch_done(bk_src_t *src) {
  bk_ksrc_t *k = bk_src_impl(src);
  for (size_t i = 0; i < k->n_msgs; i++)
    rd_kafka_message_destroy(k->msgs[i]);
  k->n_msgs = 0;
  bk_ktrace_end(&k->trace);
  *bk_rt_slot(k->w, BK_SLOT_KAFKA_BATCH) = NULL; /* set by bk_ksrc_read_batch */
  bk_ksrc_queue_batch_end(k); /* committed once its deliveries are done (kafka_commit.c) */
}

static void ks_stop(bk_src_t *src) {
  bk_ksrc_t *k = bk_src_impl(src);
  if (k->phase != BK_KSRC_RUNNING)
    return;
  k->phase = BK_KSRC_STOP_DRAIN;
  if (!k->paused)
    bk_ksrc_set_paused(k, 1, NULL);
  k->paused = 1;
  bk_ksrc_timer_arm(k);
  bk_sched_ready(src); /* what is already fetched is processed, then the stop goes on */
}

static void ks_close(bk_src_t *src) {
  bk_ksrc_t *k = bk_src_impl(src);
  bk_cl_layer_detach(k->cl); /* every task is closed */
  k->cl = NULL;
  bk_kprod_close(k->dlq);
  k->dlq = NULL;
  for (size_t i = 0; i < k->n_msgs; i++)
    rd_kafka_message_destroy(k->msgs[i]);
  k->n_msgs = 0;
  bk_ktrace_end(&k->trace);
  if (*bk_rt_slot(k->w, BK_SLOT_KAFKA_BATCH) == k)
    *bk_rt_slot(k->w, BK_SLOT_KAFKA_BATCH) = NULL;
  if (k->stash)
    rd_kafka_message_destroy(k->stash);
  k->stash = NULL;
  bk_ksrc_revoke_abandon(k); /* the run failed while a revocation waited */
  if (k->rk && k->phase < BK_KSRC_CLOSED && k->poller && k->timer_open) {
    bk_ksrc_leave_failed_run(k); /* the run failed: leave the group all the same */
    return;
  }
  bk_ksrc_consumer_release(k); /* closed, or the loop never ran (a failed start) */
}

static void ks_destroy(bk_src_t *src) {
  bk_ksrc_t *k = bk_src_impl(src);
  if (!k)
    return;
  bk_cl_layer_detach(k->cl); /* started, never run */
  const brook_allocator_t *a = bk_rt_alloc(k->w);
  for (size_t i = 0; i < k->n_parts; i++)
    bk_free(a, k->parts[i].topic);
  bk_free(a, k->parts);
  bk_free(a, k->pend);
  bk_free(a, k->msgs);
  bk_ktrace_free(&k->trace, a);
  bk_krp_source_free(k);
  bk_free(a, k);
  bk_src_set_impl(src, NULL);
}

const bk_source_vt_t bk_ksrc_vt = {
    .create = ks_create,
    .start = ks_start,
    .attach = ks_attach,
    .produce = ks_produce,
    .batch_done = ks_batch_done,
    .stop = ks_stop,
    .close = ks_close,
    .destroy = ks_destroy,
    .origin = ks_origin,
    .per_worker = 1, /* each worker's instance is a member of the group (kafka_consumer.c) */
};
