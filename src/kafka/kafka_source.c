/* The Kafka source: a librdkafka consumer in a group (subscription, cooperative-sticky
 * rebalancing) or on an explicit assignment, served on the loop thread: its queue signals a
 * pipe watched by uv_poll (kafka_poll.c), and each batch is drained with
 * rd_kafka_consumer_poll(rk, 0), which also runs the rebalance and commit callbacks here.
 *
 * Batches: one partition per batch (a run of that partition's messages), so the batch is one
 * watermark split; each assigned partition is a split, and the batch runs in the partition's
 * task (runtime/task.c), opened on assignment and closed on revocation. Records point into
 * the messages, which live until the batch has passed through the pipeline.
 *
 * At least once: when a batch is done, (its delivery epoch, partition, last offset + 1) is
 * queued; on the commit timer, entries whose epoch has no pending delivery
 * (runtime/delivery.h) advance their partition's committable offset, which is committed
 * asynchronously. On revocation the finished offsets of the revoked partitions are committed
 * first. A stop pauses input, waits for pending deliveries, commits, then closes the consumer
 * (leaving the group) before the source ends. A failed run leaves the group too, after the
 * runtime has closed its operators (ks_close), so a restart does not wait for the session
 * to time out. Either way a member that may have joined but was never assigned finishes its
 * join first (kafka_group.h: librdkafka 2.0.2 aborts otherwise).
 *
 * Backpressure: while the runtime has max_in_flight or more deliveries pending, every
 * assigned partition is paused (rd_kafka_pause_partitions) and resumed below half of it.
 * Loop thread; the client's destroy runs on a worker thread. */
#include <stdio.h>
#include <string.h>

#include <brook/kafka.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "kafka/dead_letter.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_group.h"
#include "kafka/kafka_poll.h"
#include "kafka/kafka_producer.h"
#include "kafka/kafka_serde.h"
#include "kafka/kafka_startup.h"
#include "kafka/kafka_topics.h"
#include "kafka/kafka_trace.h"
#include "runtime/runtime_impl.h"

typedef struct src_cfg {
  brook_kafka_source_opts_t o; /* pointers replaced by the copies below */
  char *bootstrap, *group, *dlq;
  char **topics; /* NULL-terminated */
  brook_kafka_partition_t *parts;
  char **props;
} src_cfg_t;

typedef struct kpart {
  char *topic;
  int32_t partition;
  int assigned;
  int task_held;       /* holds its task (bk_task_acquire) */
  int64_t committable; /* every offset below it is finished; -1 = none yet */
  int64_t committed;   /* last offset committed (or -1) */
} kpart_t;

typedef struct pending {
  uint64_t epoch;
  size_t part;
  int64_t next; /* last offset of the batch + 1 */
} pending_t;

typedef enum phase {
  PH_RUNNING,
  PH_STOP_DRAIN,  /* stop: waiting for pending deliveries */
  PH_STOP_COMMIT, /* final commit sent, waiting for its result */
  PH_JOIN_WAIT,   /* leaving: first finishing a join in progress (kafka_group.h) */
  PH_CLOSING,     /* consumer closing (leaving the group) */
  PH_CLOSED
} phase_t;

typedef struct ksrc {
  bk_src_t *src;
  const src_cfg_t *cfg;
  brook_runtime_t *rt;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  bk_kafka_poller_t *poller;
  bk_kafka_startup_t *startup;   /* until the cluster answers (kafka_startup.h) */
  bk_topic_watch_t *topic_watch; /* subscribed topics that do not exist (kafka_topics.h) */
  bk_kprod_t *dlq;
  uv_timer_t timer; /* commits; and backpressure / stop checks while waiting */
  int timer_open;
  kpart_t *parts;
  size_t n_parts, cap_parts;
  pending_t *pend; /* FIFO ring */
  size_t pend_head, n_pend, cap_pend;
  rd_kafka_message_t **msgs; /* the current batch's messages */
  size_t n_msgs, cap_msgs;
  rd_kafka_message_t *stash; /* the first message of the next batch (another partition) */
  bk_ktrace_t trace;         /* the batch's records' messages, for failures (kafka_trace.h) */
  size_t batch_part;
  int64_t batch_next; /* -1: the batch consumed nothing */
  int paused;
  phase_t phase;
  int commit_in_flight;
  int synced;            /* a group assignment came (the assignor's state exists) */
  int after_failure;     /* the run failed: ks_close leaves the group on its own */
  int64_t leave_due_ms;  /* PH_JOIN_WAIT, or a failed run's leave: when to stop waiting */
  int64_t leave_from_ms; /* when the leave began */
  char why[512];
  char who[160]; /* "Kafka source '<name>'", the prefix of its messages */
} ksrc_t;

void brook_kafka_source_opts_init(brook_kafka_source_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->struct_size = sizeof(*opts);
  opts->commit_interval_ms = 1000;
  opts->max_in_flight = 100000;
  opts->startup_timeout_ms = 30000;
}

static const bk_opts_version_t kafka_source_versions[] = {
    BK_OPTS_VERSION(brook_kafka_source_opts_t, max_in_flight),
    BK_OPTS_VERSION(brook_kafka_source_opts_t, startup_timeout_ms), /* issue 11 */
};
static const bk_opts_type_t kafka_source_opts_type =
    BK_OPTS_TYPE(brook_kafka_source_opts_t, kafka_source_versions);

static const char *const consumer_defaults[] = {"enable.auto.commit",
                                                "false",
                                                "enable.auto.offset.store",
                                                "false",
                                                "isolation.level",
                                                "read_committed",
                                                "partition.assignment.strategy",
                                                "cooperative-sticky",
                                                "auto.offset.reset",
                                                "earliest",
                                                "log.queue",
                                                "true",
                                                NULL};

/* ---- messages to the runtime ---- */

static void src_log(ksrc_t *k, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void src_log(ksrc_t *k, int level, const char *fmt, ...) {
  if (!k->rt->opts.log)
    return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), k->cfg->props, k->who, fmt, ap);
  va_end(ap);
  k->rt->opts.log(level, msg, k->rt->opts.log_opaque);
}

static void src_fail(ksrc_t *k, brook_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void src_fail(ksrc_t *k, brook_err_t err, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  bk_kafka_vmessage(msg, sizeof(msg), k->cfg->props, k->who, fmt, ap);
  va_end(ap);
  bk_runtime_fail(k->rt, err, "%s", msg);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  ksrc_t *k = rd_kafka_opaque(rk);
  if (k && !bk_kafka_startup_note(k->startup, 0, fac, buf))
    src_log(k, bk_kafka_log_level(level), "%s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  ksrc_t *k = opaque;
  if (bk_kafka_startup_note(k->startup, err, NULL, reason))
    return; /* a broker that failed before: logged once during the start-up */
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof(why));
    src_fail(k, BROOK_ERR_KAFKA, "fatal consumer error: %s", why);
  } else { /* brokers down, timeouts: librdkafka retries */
    src_log(k, BROOK_LOG_WARN, "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
  }
}

/* ---- partitions ---- */

static size_t part_find(ksrc_t *k, const char *topic, int32_t partition) {
  for (size_t i = 0; i < k->n_parts; i++)
    if (k->parts[i].partition == partition && strcmp(k->parts[i].topic, topic) == 0)
      return i;
  return SIZE_MAX;
}

/* The partition's index, added if new; SIZE_MAX if out of memory. Its index is its split. */
static size_t part_get(ksrc_t *k, const char *topic, int32_t partition) {
  size_t i = part_find(k, topic, partition);
  if (i != SIZE_MAX)
    return i;
  const brook_allocator_t *a = &k->rt->alloc;
  if (bk_grow(a, (void **)&k->parts, &k->cap_parts, k->n_parts + 1, sizeof(*k->parts)))
    return SIZE_MAX;
  char *t = bk_strdup(a, topic);
  if (!t)
    return SIZE_MAX;
  k->parts[k->n_parts] = (kpart_t){t, partition, 0, 0, -1, -1};
  return k->n_parts++;
}

/* ---- commits ---- */

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  (void)rk;
  ksrc_t *k = opaque;
  k->commit_in_flight = 0;
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    src_log(k, BROOK_LOG_WARN, "offset commit failed: %s (retried at the next commit)",
            rd_kafka_err2str(err));
  for (int i = 0; offsets && i < offsets->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &offsets->elems[i];
    size_t p = part_find(k, tp->topic, tp->partition);
    if (p == SIZE_MAX)
      continue;
    if (!err && !tp->err && tp->offset > k->parts[p].committed)
      k->parts[p].committed = tp->offset;
  }
  if (k->phase == PH_STOP_COMMIT)
    bk_sched_ready(k->src); /* the stop goes on: close the consumer */
}

/* Moves finished batches (no pending delivery at or before their epoch) into their
 * partitions' committable offsets. */
static void settle_pending(ksrc_t *k) {
  uint64_t oldest = bk_delivery_oldest_pending(&k->rt->delivery);
  while (k->n_pend) {
    pending_t *e = &k->pend[k->pend_head];
    if (e->epoch >= oldest)
      break;
    if (e->part != SIZE_MAX && e->next > k->parts[e->part].committable)
      k->parts[e->part].committable = e->next;
    k->pend_head = (k->pend_head + 1) % k->cap_pend;
    k->n_pend--;
  }
}

/* Commits (asynchronously) every assigned partition whose committable offset moved; with
 * `only` set, just the partitions in it. Returns 1 if a commit was sent. */
static int commit_finished(ksrc_t *k, const rd_kafka_topic_partition_list_t *only) {
  settle_pending(k);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)k->n_parts);
  for (size_t i = 0; i < k->n_parts; i++) {
    kpart_t *p = &k->parts[i];
    if (!p->assigned || p->committable <= p->committed)
      continue;
    if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
      continue;
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->committable;
  }
  int sent = 0;
  if (l->cnt) {
    rd_kafka_resp_err_t err = rd_kafka_commit(k->rk, l, 1);
    if (err)
      src_log(k, BROOK_LOG_WARN, "offset commit not sent: %s", rd_kafka_err2str(err));
    else
      sent = k->commit_in_flight = 1;
  }
  rd_kafka_topic_partition_list_destroy(l);
  return sent;
}

/* ---- rebalancing ---- */

/* An assigned partition holds the source's watermark back from now on, even before its
 * first record arrives (until idle_timeout, if set): otherwise the partitions read first
 * would close windows that the others still have records for. */
static void hold_watermark(ksrc_t *k, size_t part) {
  /* A partition assigned again starts over: its new task's windows must not inherit the
   * watermark of an earlier ownership (the records from the committed offset would be late). */
  bk_wm_split_restart(&k->src->wm, part, k->rt->now_ms);
  if (!bk_wm_split(&k->src->wm, part, k->rt->now_ms) ||
      bk_src_split_task(k->src, part, k->parts[part].partition))
    src_fail(k, BROOK_ERR_NOMEM, "out of memory on assignment");
}

/* The partition is ours from now on: its task opens (runtime/task.c) - once the operators
 * are open, so an explicit assignment opens them in attach. */
static void open_task(ksrc_t *k, size_t part) {
  if (!k->parts[part].task_held && bk_task_acquire(k->rt, k->parts[part].partition) == BROOK_OK)
    k->parts[part].task_held = 1;
}

/* The partition is gone: its task flushes and closes once no source holds it. */
static void close_task(ksrc_t *k, size_t part) {
  if (k->parts[part].task_held) {
    k->parts[part].task_held = 0;
    bk_task_release(k->rt, k->parts[part].partition);
  }
}

/* Drops the queued batch ends of partition `part`. */
static void forget_pending(ksrc_t *k, size_t part) {
  for (size_t i = 0; i < k->n_pend; i++) {
    pending_t *e = &k->pend[(k->pend_head + i) % k->cap_pend];
    if (e->part == part)
      e->part = SIZE_MAX;
  }
}

static void set_paused(ksrc_t *k, int pause, rd_kafka_topic_partition_list_t *l) {
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

/* A rebalance while leaving (a join finishing before the leave, or the leave of a failed
 * run, whose tasks are closed already): the partitions are not ours to process, so only the
 * protocol's part is done (paused: nothing is fetched). */
static void rebalance_leaving(ksrc_t *k, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *parts, int cooperative) {
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (cooperative)
      e = rd_kafka_incremental_assign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, parts);
    rd_kafka_pause_partitions(rk, parts);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && cooperative) {
    e = rd_kafka_incremental_unassign(rk, parts);
  } else {
    rerr = rd_kafka_assign(rk, NULL);
  }
  if (e || rerr)
    src_log(k, BROOK_LOG_WARN, "rebalance while leaving the group: %s",
            e ? rd_kafka_error_string(e) : rd_kafka_err2str(rerr));
  if (e)
    rd_kafka_error_destroy(e);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  ksrc_t *k = opaque;
  int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
    k->synced = 1;
  if (k->after_failure || k->phase == PH_JOIN_WAIT) {
    rebalance_leaving(k, rk, err, parts, cooperative);
    return;
  }
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < parts->cnt; i++) {
      size_t p = part_get(k, parts->elems[i].topic, parts->elems[i].partition);
      if (p == SIZE_MAX) {
        src_fail(k, BROOK_ERR_NOMEM, "out of memory on assignment");
        continue;
      }
      k->parts[p].assigned = 1;
      k->parts[p].committable = k->parts[p].committed = -1;
      forget_pending(k, p); /* from an earlier ownership: must not rewind the group's offset */
      hold_watermark(k, p);
      open_task(k, p);
    }
    if (cooperative)
      e = rd_kafka_incremental_assign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, parts);
    if (k->paused || k->phase != PH_RUNNING)
      set_paused(k, 1, parts);
    src_log(k, BROOK_LOG_INFO, "%d partition(s) assigned (%s rebalance)", parts->cnt,
            rd_kafka_rebalance_protocol(rk));
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    commit_finished(k, parts); /* what is finished is not redone by the next owner */
    for (int i = 0; i < parts->cnt; i++) {
      size_t p = part_find(k, parts->elems[i].topic, parts->elems[i].partition);
      if (p == SIZE_MAX)
        continue;
      k->parts[p].assigned = 0;
      bk_wm_split_retire(&k->src->wm, p);
      close_task(k, p);
      if (k->stash && k->stash->partition == parts->elems[i].partition &&
          strcmp(rd_kafka_topic_name(k->stash->rkt), parts->elems[i].topic) == 0) {
        rd_kafka_message_destroy(k->stash);
        k->stash = NULL;
      }
    }
    if (cooperative)
      e = rd_kafka_incremental_unassign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, NULL);
    src_log(k, BROOK_LOG_INFO, "%d partition(s) revoked (%s rebalance)", parts->cnt,
            rd_kafka_rebalance_protocol(rk));
  } else {
    src_log(k, BROOK_LOG_WARN, "rebalance error: %s", rd_kafka_err2str(err));
    for (size_t p = 0; p < k->n_parts; p++) { /* every partition is gone, as on revocation */
      if (!k->parts[p].assigned)
        continue;
      k->parts[p].assigned = 0;
      bk_wm_split_retire(&k->src->wm, p);
      close_task(k, p);
    }
    if (k->stash) {
      rd_kafka_message_destroy(k->stash);
      k->stash = NULL;
    }
    rerr = rd_kafka_assign(rk, NULL);
  }
  if (e) {
    src_fail(k, BROOK_ERR_KAFKA, "rebalance: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else if (rerr) {
    src_fail(k, BROOK_ERR_KAFKA, "rebalance: %s", rd_kafka_err2str(rerr));
  }
}

/* ---- the timer: commits, backpressure, the stop sequence ---- */

static void timer_arm(ksrc_t *k);

static void on_timer(uv_timer_t *h) {
  ksrc_t *k = h->data;
  if (k->rt->status != BROOK_OK)
    return;
  if (k->phase == PH_RUNNING) {
    if (k->rt->delivery.held && !k->paused) { /* another sink's limit holds every source */
      set_paused(k, 1, NULL);
      k->paused = 1;
    }
    if (k->paused && !k->stash) {
      /* Held by backpressure, no batch runs: still serve the consumer, so a rebalance does
       * not wait for the sink (its callbacks run in this poll) and max.poll.interval.ms does
       * not expire. Paused partitions deliver nothing; anything else waits in the stash. */
      k->stash = rd_kafka_consumer_poll(k->rk, 0);
      if (k->rt->status != BROOK_OK) {
        bk_sched_poke(k->rt); /* nothing else may run: the failure must end the run */
        return;
      }
    }
    if (!k->commit_in_flight)
      commit_finished(k, NULL);
    if (k->paused && !k->rt->delivery.held && k->rt->delivery.total < k->cfg->o.max_in_flight / 2) {
      set_paused(k, 0, NULL);
      k->paused = 0;
      bk_sched_ready(k->src);
    }
  } else if (k->phase == PH_STOP_DRAIN || k->phase == PH_JOIN_WAIT) {
    bk_sched_ready(k->src); /* produce() runs the stop sequence */
  }
  timer_arm(k);
}

static void timer_arm(ksrc_t *k) {
  if (!k->timer_open)
    return;
  int64_t ms = k->cfg->o.commit_interval_ms;
  if (k->paused || k->phase == PH_STOP_DRAIN)
    ms = 10; /* re-check soon: deliveries complete on the loop */
  else if (k->phase == PH_JOIN_WAIT)
    ms = 50; /* the deadline of the join */
  uv_timer_start(&k->timer, on_timer, (uint64_t)ms, 0);
}

/* ---- the vtable ---- */

static brook_err_t ks_create(bk_src_t *src) {
  ksrc_t *k = bk_calloc(&src->rt->alloc, 1, sizeof(*k));
  if (!k)
    return BROOK_ERR_NOMEM;
  k->src = src;
  k->cfg = src->cfg;
  k->rt = src->rt;
  k->batch_next = -1;
  snprintf(k->who, sizeof(k->who), "Kafka source '%s'", src->ctx->node->name);
  src->impl = k;
  /* Message timestamps come from any producer: checked by default (time.h, ts_bounds). */
  bk_wm_bounds_set(&src->wm, 1);
  return BROOK_OK;
}

static void failed_leave_step(ksrc_t *k);

static void on_queue(void *opaque) {
  ksrc_t *k = opaque;
  if (k->after_failure)
    failed_leave_step(k);
  else
    bk_sched_ready(k->src);
}

static brook_err_t ks_start(bk_src_t *src) {
  ksrc_t *k = src->impl;
  const src_cfg_t *cfg = k->cfg;
  rd_kafka_conf_t *conf;
  brook_err_t err = bk_kafka_conf_build(consumer_defaults, cfg->bootstrap, cfg->props, &conf,
                                        k->why, sizeof(k->why));
  char err_group[256];
  if (err == BROOK_OK && rd_kafka_conf_set(conf, "group.id", cfg->group, err_group,
                                           sizeof(err_group)) != RD_KAFKA_CONF_OK) {
    snprintf(k->why, sizeof(k->why), "group.id: %s", err_group);
    rd_kafka_conf_destroy(conf);
    err = BROOK_ERR_INVALID_ARG;
  }
  if (err < 0) {
    brook_ctx_set_error(src->ctx, "%s", k->why);
    return err;
  }
  rd_kafka_conf_set_opaque(conf, k);
  rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_log_cb(conf, on_log);
  if (!(k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, k->why, sizeof(k->why)))) {
    rd_kafka_conf_destroy(conf);
    bk_kafka_redact(cfg->props, k->why, sizeof(k->why));
    brook_ctx_set_error(src->ctx, "Kafka consumer: %s", k->why);
    return BROOK_ERR_KAFKA;
  }
  rd_kafka_set_log_queue(k->rk, NULL);
  rd_kafka_poll_set_consumer(k->rk); /* one queue for messages, callbacks and logs */
  k->q = rd_kafka_queue_get_consumer(k->rk);
  rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (cfg->topics) {
    size_t n = 0;
    while (cfg->topics[n])
      n++;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
      rd_kafka_topic_partition_list_add(l, cfg->topics[i], RD_KAFKA_PARTITION_UA);
    rerr = rd_kafka_subscribe(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
  } else {
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)cfg->o.n_partitions);
    for (size_t i = 0; i < cfg->o.n_partitions; i++) {
      const brook_kafka_partition_t *p = &cfg->parts[i];
      rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->offset;
      size_t pi = part_get(k, p->topic, p->partition);
      if (pi == SIZE_MAX) {
        rerr = RD_KAFKA_RESP_ERR__FAIL;
      } else {
        k->parts[pi].assigned = 1;
        hold_watermark(k, pi);
      }
    }
    if (!rerr)
      rerr = rd_kafka_assign(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
  }
  if (rerr || k->rt->status != BROOK_OK) { /* status: hold_watermark ran out of memory */
    brook_err_t err = rerr == RD_KAFKA_RESP_ERR__FAIL || !rerr ? BROOK_ERR_NOMEM : BROOK_ERR_KAFKA;
    brook_ctx_set_error(src->ctx, "Kafka consumer: %s",
                        err == BROOK_ERR_NOMEM ? "out of memory" : rd_kafka_err2str(rerr));
    /* A failed start leaves nothing behind (close does not run): no group to leave yet. */
    rd_kafka_queue_destroy(k->q);
    k->q = NULL;
    rd_kafka_destroy_flags(k->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    k->rk = NULL;
    return err;
  }
  return BROOK_OK;
}

static void topic_log(void *opaque, int level, const char *msg) {
  src_log(opaque, level, "%s", msg);
}

static brook_err_t ks_attach(bk_src_t *src) {
  ksrc_t *k = src->impl;
  const src_cfg_t *cfg = k->cfg;
  brook_err_t err =
      bk_kafka_poller_start(k->rt, k->q, on_queue, k, &k->poller, k->why, sizeof(k->why));
  if (err < 0) {
    brook_ctx_set_error(src->ctx, "Kafka source: %s", k->why);
    return err;
  }
  if ((err = bk_kafka_startup_begin(k->rt, k->rk, k->who, cfg->bootstrap, cfg->props,
                                    cfg->o.startup_timeout_ms, &k->startup)) < 0 ||
      (err = bk_topic_watch_begin(k->rt, k->rk, cfg->topics, topic_log, k, &k->topic_watch)) < 0)
    return err;
  if (cfg->dlq) {
    char who[160];
    snprintf(who, sizeof(who), "Kafka source '%s' (dead letters)", src->ctx->node->name);
    if ((err = bk_kprod_new(k->rt, who, cfg->bootstrap, cfg->props, bk_dead_letter_failed, NULL,
                            &k->dlq, k->why, sizeof(k->why))) < 0) {
      brook_ctx_set_error(src->ctx, "%s", k->why);
      return err;
    }
  }
  for (size_t i = 0; i < k->n_parts; i++) /* an explicit assignment */
    if (k->parts[i].assigned)
      open_task(k, i);
  if (k->rt->status != BROOK_OK)
    return k->rt->status;
  uv_timer_init(k->rt->loop, &k->timer);
  k->timer.data = k;
  k->timer_open = 1;
  timer_arm(k);
  src->ready = 1; /* the queue may hold something already: poll once */
  return BROOK_OK;
}

/* The message's headers as brook headers in the batch arena (none: a trace tag). */
static brook_err_t headers_of(ksrc_t *k, rd_kafka_message_t *m, brook_record_t *rec) {
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || !h) {
    bk_ktrace_record(&k->trace, m, rec);
    return BROOK_OK;
  }
  size_t n = rd_kafka_header_cnt(h);
  brook_header_t *out = brook_ctx_alloc(k->src->ctx, n * sizeof(*out) + 1);
  if (!out)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    const char *name;
    const void *val;
    size_t size;
    if (rd_kafka_header_get_all(h, i, &name, &val, &size))
      return BROOK_ERR_KAFKA;
    out[i] = (brook_header_t){name, val, size};
  }
  rec->headers = out;
  rec->header_count = n;
  bk_ktrace_record(&k->trace, m, rec);
  return BROOK_OK;
}

/* The message behind a failed record (bk_source_vt_t.origin). */
static int ks_origin(bk_src_t *src, const brook_record_t *rec, bk_origin_t *out) {
  ksrc_t *k = src->impl;
  const rd_kafka_message_t *m = bk_ktrace_find(&k->trace, rec);
  if (!m)
    return 0;
  *out = (bk_origin_t){rd_kafka_topic_name(m->rkt), m->partition, m->offset};
  return 1;
}

/* The record's timestamp: the message's (CreateTime or LogAppendTime), or the time it was
 * read if it has none. Unless a timestamp extractor replaces it, it must be within the
 * source's bounds: an odd one (negative, far ahead) is malformed (BROOK_ERR_CORRUPT, the
 * reason in the context's message) and never reaches the watermark. */
static brook_err_t message_time(ksrc_t *k, rd_kafka_message_t *m, brook_record_t *rec) {
  rd_kafka_timestamp_type_t type;
  int64_t ts = rd_kafka_message_timestamp(m, &type);
  rec->timestamp = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? k->rt->now_ms : ts;
  const bk_wm_gen_t *g = &k->src->wm;
  char why[160];
  if (g->opts->timestamp || bk_wm_check_ts(g, rec->timestamp, k->rt->now_ms, why, sizeof(why)) == 0)
    return BROOK_OK;
  k->rt->stats.records_out_of_bounds++;
  brook_ctx_set_error(k->src->ctx, "%s", why);
  return BROOK_ERR_CORRUPT;
}

/* Turns message `m` into the batch's next record; a malformed one follows the policy.
 * Returns BROOK_OK (consumed, as a record or not) or an error that fails the source. */
static brook_err_t take_message(ksrc_t *k, rd_kafka_message_t *m) {
  bk_src_t *src = k->src;
  brook_ctx_t *ctx = src->ctx;
  const src_cfg_t *cfg = k->cfg;
  bk_port_t *port = bk_src_port(src);
  brook_record_t *rec = &port->buf[port->n];
  memset(rec, 0, sizeof(*rec));
  ctx->has_error_msg = 0;
  brook_err_t err = BROOK_OK;
  if (m->key)
    err = bk_kafka_deserialize(ctx, &cfg->o.key, m->key, m->key_len, &rec->key, &rec->key_len);
  if (err >= 0 && m->payload)
    err =
        bk_kafka_deserialize(ctx, &cfg->o.value, m->payload, m->len, &rec->value, &rec->value_len);
  if (err >= 0)
    err = message_time(k, m, rec);
  if (err == BROOK_ERR_NOMEM)
    return err;
  if (err < 0) {
    switch (cfg->o.on_malformed) {
    case BROOK_KAFKA_MALFORMED_SKIP:
      k->rt->stats.records_skipped++;
      return BROOK_OK;
    case BROOK_KAFKA_MALFORMED_DEAD_LETTER:
      return bk_dead_letter_malformed(
          k->dlq, cfg->dlq, m, err, ctx->has_error_msg ? ctx->error_msg.text : brook_strerror(err));
    default:
      src_fail(k, err, "malformed record at offset %lld of %s [%d]: %s", (long long)m->offset,
               rd_kafka_topic_name(m->rkt), (int)m->partition,
               ctx->has_error_msg ? ctx->error_msg.text : brook_strerror(err));
      return err;
    }
  }
  if ((err = headers_of(k, m, rec)) < 0)
    return err;
  port->n++;
  return BROOK_OK;
}

/* ---- leaving the group ---- */

#define LEAVE_WAIT_MS 10000 /* a failed run's close (LeaveGroup) before it gives up */

/* Whether the consumer may be in the middle of a group join (kafka_group.h): never assigned,
 * and either a JoinGroup was answered (it has a member id) or it has a subscribed topic to join
 * for: unless the topic watch, asked since the leave began, found none. */
static int may_be_joining(ksrc_t *k) {
  if (k->synced)
    return 0;
  char *id = rd_kafka_memberid(k->rk);
  int member = id && *id;
  if (id)
    rd_kafka_mem_free(k->rk, id);
  return member || !bk_topic_watch_none_since(k->topic_watch, k->leave_from_ms);
}

/* Starts leaving: closing the consumer at once, or first finishing a join that may be in
 * progress (kafka_group.h): never assigned yet, but the cluster has answered. */
static void leave_begin(ksrc_t *k) {
  k->leave_from_ms = bk_wallclock_ms();
  k->leave_due_ms = k->leave_from_ms + LEAVE_WAIT_MS;
  if (!k->cfg->topics || k->synced || !bk_kafka_join_abort_bug() || !bk_kafka_cluster_seen(k->rk))
    return;
  bk_topic_watch_ask_now(k->topic_watch); /* a fresh answer: are there topics to join for? */
  int64_t wait = bk_kafka_join_wait_ms(k->rk);
  k->phase = PH_JOIN_WAIT;
  k->leave_due_ms = bk_wallclock_ms() + wait;
  src_log(k, BROOK_LOG_INFO,
          "leaving the group once its join is complete (at most %lld ms): librdkafka %s aborts a "
          "consumer that leaves between joining and its first assignment",
          (long long)wait, rd_kafka_version_str());
}

/* The leave, one step per call (queue wake-up or timer): the end of a join, then the close
 * and its rebalance events. Returns 1 once the consumer is closed. */
static int leave_step(ksrc_t *k) {
  rd_kafka_message_t *m;
  while ((m = rd_kafka_consumer_poll(k->rk, 0))) /* serves the rebalance callbacks */
    rd_kafka_message_destroy(m);
  if (k->phase == PH_JOIN_WAIT) {
    int joining = may_be_joining(k);
    if (joining && bk_wallclock_ms() < k->leave_due_ms)
      return 0;
    if (joining)
      src_log(k, BROOK_LOG_WARN,
              "the group join did not complete in time: leaving before the first assignment "
              "(librdkafka %s may abort the process here; 2.3.0 fixed it)",
              rd_kafka_version_str());
    k->leave_due_ms = bk_wallclock_ms() + LEAVE_WAIT_MS;
    k->phase = PH_STOP_COMMIT; /* closes now */
  }
  if (k->phase != PH_CLOSING) {
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(k->rk, k->q);
    if (e) {
      src_log(k, BROOK_LOG_WARN, "closing the consumer: %s", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      k->phase = PH_CLOSED;
      return 1;
    }
    k->phase = PH_CLOSING;
    while ((m = rd_kafka_consumer_poll(k->rk, 0))) /* rebalance events of the leave */
      rd_kafka_message_destroy(m);
  }
  if (!rd_kafka_consumer_closed(k->rk))
    return 0;
  k->phase = PH_CLOSED;
  return 1;
}

/* The stop sequence, one step per call: drain deliveries, commit, leave the group. */
static brook_err_t stop_step(ksrc_t *k) {
  bk_src_t *src = k->src;
  if (k->phase == PH_STOP_DRAIN) {
    if (k->rt->delivery.total) {
      src->ready = 0; /* the timer re-checks; the queue is empty, so it signals anew */
      return BROOK_OK;
    }
    k->phase = PH_STOP_COMMIT;
    if (commit_finished(k, NULL)) {
      src->ready = 0; /* on_commit continues */
      return BROOK_OK;
    }
  }
  if (k->phase == PH_STOP_COMMIT && k->commit_in_flight) {
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(k->rk, 0))) /* serves on_commit */
      rd_kafka_message_destroy(m);
    if (k->commit_in_flight) {
      src->ready = 0;
      return BROOK_OK;
    }
  }
  if (k->phase == PH_STOP_COMMIT)
    leave_begin(k);
  if (leave_step(k))
    return BROOK_DONE;
  src->ready = 0; /* the queue (or, for a join's deadline, the timer) signals the next step */
  return BROOK_OK;
}

static brook_err_t ks_produce(bk_src_t *src) {
  ksrc_t *k = src->impl;
  if (k->phase != PH_RUNNING && k->phase != PH_STOP_DRAIN)
    return stop_step(k);
  /* Too much output awaits acknowledgement: pause fetching and take no new batch until
   * half of it is acknowledged (the timer resumes). The queue is left as it is meanwhile, so
   * it will not signal: the timer, not the poller, wakes the source. */
  if (k->phase == PH_RUNNING && k->rt->delivery.total >= k->cfg->o.max_in_flight) {
    if (!k->paused) {
      set_paused(k, 1, NULL);
      k->paused = 1;
      timer_arm(k);
    }
    src->ready = 0;
    return BROOK_OK;
  }
  bk_port_t *port = bk_src_port(src);
  k->batch_next = -1;
  if (bk_ktrace_begin(&k->trace, &k->rt->alloc, port->cap) < 0)
    return BROOK_ERR_NOMEM;
  size_t part = SIZE_MAX;
  brook_err_t ret = BROOK_OK; /* on failure the records taken so far still go on */
  while (port->n < port->cap) {
    rd_kafka_message_t *m = k->stash;
    k->stash = NULL;
    if (!m && !(m = rd_kafka_consumer_poll(k->rk, 0))) {
      src->ready = 0; /* empty: the poller wakes us */
      break;
    }
    if (k->rt->status != BROOK_OK) { /* a callback inside the poll failed the run */
      rd_kafka_message_destroy(m);
      ret = k->rt->status;
      break;
    }
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        src_log(k, BROOK_LOG_WARN, "consumer: %s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    /* Messages come in runs of one partition: compare with the batch's previous message
     * (still held, so its topic handle is alive) before searching by name. */
    size_t p = part != SIZE_MAX && m->rkt == k->msgs[k->n_msgs - 1]->rkt &&
                       m->partition == k->parts[part].partition
                   ? part
                   : part_get(k, rd_kafka_topic_name(m->rkt), m->partition);
    if (p == SIZE_MAX) {
      rd_kafka_message_destroy(m);
      ret = BROOK_ERR_NOMEM;
      break;
    }
    if (part != SIZE_MAX && p != part) {
      k->stash = m; /* one partition (split) per batch */
      break;
    }
    if (k->n_msgs == k->cap_msgs &&
        bk_grow(&k->rt->alloc, (void **)&k->msgs, &k->cap_msgs, k->n_msgs + 1, sizeof(*k->msgs))) {
      rd_kafka_message_destroy(m);
      ret = BROOK_ERR_NOMEM;
      break;
    }
    k->msgs[k->n_msgs++] = m; /* records point into it until batch_done */
    part = p;
    k->batch_next = m->offset + 1;
    if ((ret = take_message(k, m)) < 0)
      break;
  }
  k->batch_part = part;
  src->cur_split = part == SIZE_MAX ? 0 : part;
  if (part != SIZE_MAX && bk_src_enter_task(src, k->parts[part].partition) < 0) {
    /* Its task is closed (the partition was just revoked): the next owner reads these. */
    port->n = 0;
    k->batch_next = -1;
  }
  if (ret < 0)
    return ret;
  if (k->stash)
    src->ready = 1; /* more is waiting right now */
  if (k->phase == PH_STOP_DRAIN && part == SIZE_MAX)
    return stop_step(k); /* nothing left to read: go on with the stop */
  return BROOK_OK;
}

static void ks_batch_done(bk_src_t *src) {
  ksrc_t *k = src->impl;
  for (size_t i = 0; i < k->n_msgs; i++)
    rd_kafka_message_destroy(k->msgs[i]);
  k->n_msgs = 0;
  bk_ktrace_end(&k->trace);
  if (k->batch_next < 0)
    return;
  /* Finished once no delivery of this epoch (or earlier) is pending. */
  if (k->n_pend == k->cap_pend) {
    size_t cap = k->cap_pend ? k->cap_pend * 2 : 64;
    pending_t *r = bk_malloc(&k->rt->alloc, cap * sizeof(*r));
    if (!r) { /* cannot remember it: it is committed with a later batch of its partition */
      k->batch_next = -1;
      return;
    }
    for (size_t i = 0; i < k->n_pend; i++)
      r[i] = k->pend[(k->pend_head + i) % k->cap_pend];
    bk_free(&k->rt->alloc, k->pend);
    k->pend = r;
    k->cap_pend = cap;
    k->pend_head = 0;
  }
  k->pend[(k->pend_head + k->n_pend++) % k->cap_pend] =
      (pending_t){k->rt->delivery.epoch, k->batch_part, k->batch_next};
  k->batch_next = -1;
}

static void ks_stop(bk_src_t *src) {
  ksrc_t *k = src->impl;
  if (k->phase != PH_RUNNING)
    return;
  k->phase = PH_STOP_DRAIN;
  if (!k->paused)
    set_paused(k, 1, NULL);
  k->paused = 1;
  bk_sched_ready(src); /* what is already fetched is processed, then the stop goes on */
}

/* Releases the consumer: its poller, timer and queue, and the client itself (destroyed off the
 * loop). One not closed by then goes without the close handshake (the group notices after
 * session.timeout.ms). */
static void release_consumer(ksrc_t *k) {
  bk_kafka_poller_close(k->poller);
  k->poller = NULL;
  bk_kafka_startup_end(k->startup);
  k->startup = NULL;
  if (k->timer_open) {
    k->timer_open = 0;
    uv_timer_stop(&k->timer);
    bk_runtime_close_handle(k->rt, (uv_handle_t *)&k->timer);
  }
  if (k->q)
    rd_kafka_queue_destroy(k->q);
  k->q = NULL;
  if (k->rk) {
    int flags = k->phase == PH_CLOSED ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE;
    if (k->rt->loop) /* once the topic watch no longer asks through it */
      bk_topic_watch_end(k->topic_watch, k->rt, k->rk, flags);
    else
      rd_kafka_destroy_flags(k->rk, flags);
  }
  k->topic_watch = NULL;
  k->rk = NULL;
}

/* A failed run's leave, one step per queue wake-up or timer tick; ends by releasing the
 * consumer and the runtime's hold. */
static void failed_leave_step(ksrc_t *k) {
  int closed = leave_step(k);
  if (!closed && bk_wallclock_ms() < k->leave_due_ms)
    return;
  if (!closed)
    src_log(k, BROOK_LOG_WARN,
            "the failed run could not leave the group in time; the group notices after "
            "session.timeout.ms");
  release_consumer(k);
  bk_runtime_release(k->rt);
}

static void on_leave_timer(uv_timer_t *h) { failed_leave_step(h->data); }

static void ks_close(bk_src_t *src) {
  ksrc_t *k = src->impl;
  bk_kprod_close(k->dlq);
  k->dlq = NULL;
  for (size_t i = 0; i < k->n_msgs; i++)
    rd_kafka_message_destroy(k->msgs[i]);
  k->n_msgs = 0;
  if (k->stash)
    rd_kafka_message_destroy(k->stash);
  k->stash = NULL;
  if (k->rk && k->phase != PH_CLOSED && k->poller && k->timer_open) {
    /* The run failed (operators and tasks are closed already): leave the group all the same,
     * on the loop, so that a restart is not kept waiting for this member's session to time
     * out. The runtime is held until the consumer is closed or LEAVE_WAIT_MS have passed. */
    k->after_failure = 1;
    bk_runtime_hold(k->rt);
    if (k->phase != PH_CLOSING && k->phase != PH_JOIN_WAIT) {
      k->phase = PH_STOP_COMMIT; /* no final commit after a failure: the rest is read again */
      leave_begin(k);
    }
    uv_timer_start(&k->timer, on_leave_timer, 50, 50);
    failed_leave_step(k);
    return;
  }
  release_consumer(k); /* closed, or the loop never ran (a failed start) */
}

static void ks_destroy(bk_src_t *src) {
  ksrc_t *k = src->impl;
  if (!k)
    return;
  const brook_allocator_t *a = &src->rt->alloc;
  for (size_t i = 0; i < k->n_parts; i++)
    bk_free(a, k->parts[i].topic);
  bk_free(a, k->parts);
  bk_free(a, k->pend);
  bk_free(a, k->msgs);
  bk_ktrace_free(&k->trace, a);
  bk_free(a, k);
  src->impl = NULL;
}

static const bk_source_vt_t kafka_vt = {
    .create = ks_create,
    .start = ks_start,
    .attach = ks_attach,
    .produce = ks_produce,
    .batch_done = ks_batch_done,
    .stop = ks_stop,
    .close = ks_close,
    .destroy = ks_destroy,
    .origin = ks_origin,
};

/* ---- the builder ---- */

static void cfg_free(void *p, const brook_allocator_t *a) {
  src_cfg_t *c = p;
  if (!c)
    return;
  bk_free(a, c->bootstrap);
  bk_free(a, c->group);
  bk_free(a, c->dlq);
  bk_kafka_props_free(a, c->topics);
  for (size_t i = 0; c->parts && i < c->o.n_partitions; i++)
    bk_free(a, (char *)(uintptr_t)c->parts[i].topic);
  bk_free(a, c->parts);
  bk_kafka_props_free(a, c->props);
  bk_free(a, c);
}

static const bk_source_type_t kafka_type = {"kafka", &kafka_vt, cfg_free, 1};

/* Copies a NULL-terminated string list (non-empty strings). */
static brook_err_t copy_list(const brook_allocator_t *a, const char *const *in, char ***out) {
  size_t n = 0;
  while (in[n]) {
    if (!*in[n])
      return BROOK_ERR_INVALID_ARG;
    n++;
  }
  if (!n)
    return BROOK_ERR_INVALID_ARG;
  char **l = bk_calloc(a, n + 1, sizeof(*l));
  if (!l)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    if (!(l[i] = bk_strdup(a, in[i]))) {
      bk_kafka_props_free(a, l);
      return BROOK_ERR_NOMEM;
    }
  *out = l;
  return BROOK_OK;
}

brook_stream_t *brook_source_kafka(brook_topology_t *t, const char *name,
                                   const brook_kafka_source_opts_t *opts) {
  if (!t)
    return NULL;
  brook_kafka_source_opts_t o;
  brook_kafka_source_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &kafka_source_opts_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_kafka: %s", why.text);
    return NULL;
  }
  const char *problem = NULL;
  if (!name)
    problem = "a name is required";
  else if (!o.group_id || !*o.group_id)
    problem = "group_id (the application id) is required";
  else if (!o.topics && !o.partitions)
    problem = "topics (a subscription) or partitions (an explicit assignment) is required";
  else if (o.topics && o.partitions)
    problem = "give either topics (a subscription) or partitions (an explicit assignment), "
              "not both";
  else if (o.partitions && !o.n_partitions)
    problem = "n_partitions is 0";
  else if (bk_kafka_serde_problem(&o.key, "key deserialiser", &why) ||
           bk_kafka_serde_problem(&o.value, "value deserialiser", &why))
    problem = why.text;
  else if (o.on_malformed == BROOK_KAFKA_MALFORMED_DEAD_LETTER && !o.dead_letter_topic)
    problem = "on_malformed DEAD_LETTER needs dead_letter_topic";
  else if (o.on_malformed > BROOK_KAFKA_MALFORMED_DEAD_LETTER)
    problem = "unknown on_malformed";
  else if (o.commit_interval_ms <= 0)
    problem = "commit_interval_ms must be > 0";
  else if (o.max_in_flight == 0)
    problem = "max_in_flight must be > 0";
  else if (o.startup_timeout_ms < 0)
    problem = "startup_timeout_ms must be >= 0 (0: no limit)";
  for (size_t i = 0; !problem && o.partitions && i < o.n_partitions; i++)
    if (!o.partitions[i].topic || !*o.partitions[i].topic || o.partitions[i].partition < 0) {
      bk_errmsg_set(&why, "partitions[%zu] has no topic or a negative partition number", i);
      problem = why.text;
    }
  if (!problem && o.topics && !o.topics[0])
    problem = "topics is empty (a NULL-terminated list of names)";
  for (size_t i = 0; !problem && o.topics && o.topics[i]; i++)
    if (!*o.topics[i]) {
      bk_errmsg_set(&why, "topics[%zu] is an empty name", i);
      problem = why.text;
    }
  if (!problem)
    problem = bk_kafka_props_problem(o.properties, o.bootstrap_servers, &why);
  if (problem) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_kafka: %s", problem);
    return NULL;
  }
  const brook_allocator_t *a = &t->alloc;
  src_cfg_t *c = bk_calloc(a, 1, sizeof(*c));
  brook_err_t err = c ? BROOK_OK : BROOK_ERR_NOMEM;
  if (c) {
    c->o = o;
    if ((o.bootstrap_servers && !(c->bootstrap = bk_strdup(a, o.bootstrap_servers))) ||
        !(c->group = bk_strdup(a, o.group_id)) ||
        (o.dead_letter_topic && !(c->dlq = bk_strdup(a, o.dead_letter_topic))))
      err = BROOK_ERR_NOMEM;
    if (err == BROOK_OK)
      err = bk_kafka_props_copy(a, o.properties, &c->props);
    if (err == BROOK_OK && o.topics)
      err = copy_list(a, o.topics, &c->topics);
    if (err == BROOK_OK && o.partitions) {
      c->o.n_partitions = 0; /* counts the copies, for cfg_free */
      if (!(c->parts = bk_calloc(a, o.n_partitions, sizeof(*c->parts))))
        err = BROOK_ERR_NOMEM;
      for (size_t i = 0; err == BROOK_OK && i < o.n_partitions; i++) {
        c->parts[i] = o.partitions[i];
        if (!(c->parts[i].topic = bk_strdup(a, o.partitions[i].topic)))
          err = BROOK_ERR_NOMEM;
        else
          c->o.n_partitions++;
      }
    }
  }
  if (err < 0) { /* the lists were checked above: only memory can fail here */
    cfg_free(c, a);
    bk_topology_fail(t, err, "source_kafka: %s", brook_strerror(err));
    return NULL;
  }
  c->o.bootstrap_servers = c->o.group_id = c->o.dead_letter_topic = NULL;
  c->o.topics = NULL;
  c->o.partitions = NULL;
  c->o.properties = NULL;
  return bk_topology_add_source(t, &kafka_type, c, name);
}
