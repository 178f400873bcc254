/* The Kafka source's consumer: librdkafka's configuration (brook's defaults under the user's
 * properties, the group id), its callbacks (rebalance: kafka_rebalance.c, commits:
 * kafka_commit.c, errors and logs here), the subscription or explicit assignment, and its
 * release. One queue serves messages, callbacks and logs, so rd_kafka_consumer_poll on the
 * loop thread runs them all. With N workers, each worker's source instance has its own
 * consumer, a member of the group on the worker's loop (Kafka Streams' consumer per stream
 * thread): the group's assignor spreads the partitions, an explicit assignment gives worker
 * k its partitions k, k + N, ... Loop thread; the client's destroy runs on a worker thread. */
#include "kafka/kafka_source_impl.h"

#include <stdio.h>

#include "kafka/kafka_conf.h"
#include "kafka/kafka_group.h"

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

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  bk_ksrc_t *k = rd_kafka_opaque(rk);
  if (k && !bk_kafka_startup_note(k->startup, 0, fac, buf))
    bk_ksrc_log(k, bk_kafka_log_level(level), "%s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  bk_ksrc_t *k = opaque;
  if (bk_kafka_startup_note(k->startup, err, NULL, reason))
    return; /* a broker that failed before: logged once during the start-up */
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof(why));
    bk_ksrc_fail(k, BROOK_ERR_KAFKA, "fatal consumer error: %s", why);
  } else { /* brokers down, timeouts: librdkafka retries */
    bk_ksrc_log(k, BROOK_LOG_WARN, "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
  }
}

/* With N workers each worker's consumer is a member of the group: a static member id
 * (group.instance.id) set by the user becomes "<id>-<worker index>", one per member (two
 * members with the same id fence each other). */
static rd_kafka_conf_res_t instance_id_per_worker(bk_ksrc_t *k, rd_kafka_conf_t *conf, char *err,
                                                  size_t err_len) {
  char id[256];
  size_t len = sizeof(id);
  if (bk_wk_count(k->w) == 1 || rd_kafka_conf_get(conf, "group.instance.id", id, &len) || !id[0])
    return RD_KAFKA_CONF_OK;
  char mine[300];
  snprintf(mine, sizeof(mine), "%s-%zu", id, bk_wk_index(k->w));
  return rd_kafka_conf_set(conf, "group.instance.id", mine, err, err_len);
}

brook_err_t bk_ksrc_consumer_new(bk_ksrc_t *k) {
  bk_src_t *src = k->src;
  const bk_ksrc_cfg_t *cfg = k->cfg;
  rd_kafka_conf_t *conf;
  brook_err_t err = bk_kafka_conf_build(consumer_defaults, cfg->bootstrap, cfg->props, &conf,
                                        k->why, sizeof(k->why));
  char err_group[256];
  if (err == BROOK_OK &&
      (rd_kafka_conf_set(conf, "group.id", cfg->group, err_group, sizeof(err_group)) !=
           RD_KAFKA_CONF_OK ||
       instance_id_per_worker(k, conf, err_group, sizeof(err_group)) != RD_KAFKA_CONF_OK)) {
    snprintf(k->why, sizeof(k->why), "group.id: %s", err_group);
    rd_kafka_conf_destroy(conf);
    err = BROOK_ERR_INVALID_ARG;
  }
  if (err < 0) {
    brook_ctx_set_error(bk_src_ctx(src), "%s", k->why);
    return err;
  }
  rd_kafka_conf_set_opaque(conf, k);
  rd_kafka_conf_set_rebalance_cb(conf, bk_ksrc_on_rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, bk_ksrc_on_commit);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_log_cb(conf, on_log);
  if (!(k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, k->why, sizeof(k->why)))) {
    rd_kafka_conf_destroy(conf);
    bk_kafka_redact(cfg->props, k->why, sizeof(k->why));
    brook_ctx_set_error(bk_src_ctx(src), "Kafka consumer: %s", k->why);
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
    size_t nw = bk_wk_count(k->w), wi = bk_wk_index(k->w);
    for (size_t i = wi; i < cfg->o.n_partitions; i += nw) { /* this worker's share */
      const brook_kafka_partition_t *p = &cfg->parts[i];
      rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->offset;
      size_t pi = bk_ksrc_part_get(k, p->topic, p->partition);
      if (pi == SIZE_MAX) {
        rerr = RD_KAFKA_RESP_ERR__FAIL;
      } else {
        k->parts[pi].assigned = 1;
        bk_ksrc_hold_watermark(k, pi);
      }
    }
    if (!rerr)
      rerr = rd_kafka_assign(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
  }
  if (rerr ||
      bk_rt_status(k->w) != BROOK_OK) { /* status: bk_ksrc_hold_watermark ran out of memory */
    brook_err_t err = rerr == RD_KAFKA_RESP_ERR__FAIL || !rerr ? BROOK_ERR_NOMEM : BROOK_ERR_KAFKA;
    brook_ctx_set_error(bk_src_ctx(src), "Kafka consumer: %s",
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

void bk_ksrc_consumer_release(bk_ksrc_t *k) {
  bk_kafka_poller_close(k->poller);
  k->poller = NULL;
  bk_kafka_startup_end(k->startup);
  k->startup = NULL;
  if (k->timer_open) {
    k->timer_open = 0;
    uv_timer_stop(&k->timer);
    bk_worker_close_handle(k->w, (uv_handle_t *)&k->timer);
  }
  if (k->q)
    rd_kafka_queue_destroy(k->q);
  k->q = NULL;
  if (k->rk) {
    int flags = k->phase == BK_KSRC_CLOSED ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE;
    if (k->destroy_immediately)
      flags |= BK_KAFKA_DESTROY_F_IMMEDIATE; /* kafka_group.h */
    if (bk_rt_loop(k->w))                    /* once the topic watch no longer asks through it */
      bk_topic_watch_end(k->topic_watch, k->w, k->rk, flags);
    else
      rd_kafka_destroy_flags(k->rk, flags);
  }
  k->topic_watch = NULL;
  k->rk = NULL;
}
