/* Watching topics and groups, and background input. See kafka_progress.h. */
#include "kafka_progress.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <uv.h>

struct kp_watch {
  rd_kafka_t *rk;
};

struct kp_producer {
  rd_kafka_t *rk;
  int64_t queued;
  atomic_llong acked, failed; /* counted by librdkafka's delivery callback (rd_kafka_poll) */
};

static int64_t now_ms(void) { return (int64_t)(uv_hrtime() / 1000000u); }

/* Every client here: quiet, and quick to see a broker back after "down"/"up" (librdkafka's
 * reconnect back-off otherwise grows to 10 s, and the test would be watching its own
 * client's back-off rather than the pipeline). */
static const char *const common[] = {"log_level", "0", "reconnect.backoff.max.ms", "200", NULL};

static rd_kafka_t *client(rd_kafka_type_t type, const char *const *kv, const char *const *more,
                          rd_kafka_conf_t *conf) {
  char err[512];
  for (size_t i = 0; common[i]; i += 2)
    if (rd_kafka_conf_set(conf, common[i], common[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK)
      goto bad;
  for (size_t i = 0; kv && kv[i]; i += 2)
    if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK)
      goto bad;
  for (size_t i = 0; more && more[i]; i += 2)
    if (rd_kafka_conf_set(conf, more[i], more[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK)
      goto bad;
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk)
    return rk;
bad:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

kp_watch_t *kp_watch_open(const char *bootstrap, const char *group) {
  kp_watch_t *w = calloc(1, sizeof(*w));
  if (!w)
    return NULL;
  const char *kv[] = {"bootstrap.servers",
                      bootstrap,
                      "group.id",
                      group ? group : "brook-test-watch",
                      "enable.auto.commit",
                      "false",
                      "isolation.level",
                      "read_uncommitted",
                      NULL};
  if (!(w->rk = client(RD_KAFKA_CONSUMER, kv, NULL, rd_kafka_conf_new()))) {
    free(w);
    return NULL;
  }
  return w;
}

void kp_watch_close(kp_watch_t *w) {
  if (!w)
    return;
  rd_kafka_destroy(w->rk); /* never subscribed: nothing to leave */
  free(w);
}

int64_t kp_high_sum(kp_watch_t *w, const char *topic, int partitions, int timeout_ms) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++) /* the "timestamp" END asks for the high watermark */
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_END;
  int64_t sum = -1;
  if (rd_kafka_offsets_for_times(w->rk, l, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    sum = 0;
    for (int i = 0; i < l->cnt && sum >= 0; i++) {
      if (l->elems[i].err || l->elems[i].offset < 0)
        sum = -1;
      else
        sum += l->elems[i].offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return sum;
}

int kp_leaders(kp_watch_t *w, const char *topic, int partitions, int32_t *leader, int timeout_ms) {
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->rk, topic, NULL);
  const struct rd_kafka_metadata *md = NULL;
  int found = 0;
  if (rd_kafka_metadata(w->rk, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topic_cnt; i++) {
      if (strcmp(md->topics[i].topic, topic) != 0 || md->topics[i].err)
        continue;
      for (int j = 0; j < md->topics[i].partition_cnt; j++) {
        const rd_kafka_metadata_partition_t *mp = &md->topics[i].partitions[j];
        if (mp->id >= 0 && mp->id < partitions) {
          leader[mp->id] = mp->leader;
          found++;
        }
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(rkt);
  return found == partitions ? 0 : -1;
}

int64_t kp_committed_sum(kp_watch_t *w, const char *topic, int partitions, int timeout_ms) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(l, topic, p);
  int64_t sum = -1;
  if (rd_kafka_committed(w->rk, l, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    sum = 0;
    for (int i = 0; i < l->cnt && sum >= 0; i++) {
      if (l->elems[i].err)
        sum = -1;
      else if (l->elems[i].offset > 0)
        sum += l->elems[i].offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return sum;
}

struct kp_tail {
  rd_kafka_t *rk;
  int64_t count;
};

kp_tail_t *kp_tail_open(const char *bootstrap, const char *topic, int partitions) {
  kp_tail_t *t = calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  const char *kv[] = {"bootstrap.servers",
                      bootstrap,
                      "group.id",
                      "brook-test-tail",
                      "enable.auto.commit",
                      "false",
                      "isolation.level",
                      "read_uncommitted",
                      NULL};
  if (!(t->rk = client(RD_KAFKA_CONSUMER, kv, NULL, rd_kafka_conf_new()))) {
    free(t);
    return NULL;
  }
  rd_kafka_poll_set_consumer(t->rk);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t err = rd_kafka_assign(t->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err) {
    kp_tail_close(t);
    return NULL;
  }
  return t;
}

void kp_tail_close(kp_tail_t *t) {
  if (!t)
    return;
  rd_kafka_destroy(t->rk); /* assigned, never subscribed: no group to leave */
  free(t);
}

int64_t kp_tail_count(kp_tail_t *t, int wait_ms) {
  rd_kafka_message_t *m;
  int wait = wait_ms;
  for (int i = 0; i < 100000 && (m = rd_kafka_consumer_poll(t->rk, wait)); i++) {
    if (!m->err)
      t->count++;
    rd_kafka_message_destroy(m);
    wait = 0; /* then only what is already there */
  }
  return t->count;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  kp_producer_t *p = opaque;
  if (m->err)
    atomic_fetch_add(&p->failed, 1);
  else
    atomic_fetch_add(&p->acked, 1);
}

kp_producer_t *kp_producer_open(const char *bootstrap, const char *const *props) {
  kp_producer_t *p = calloc(1, sizeof(*p));
  if (!p)
    return NULL;
  atomic_init(&p->acked, 0);
  atomic_init(&p->failed, 0);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, p);
  const char *kv[] = {"bootstrap.servers", bootstrap,        "acks", "all", "linger.ms", "5",
                      "partitioner",       "murmur2_random", NULL};
  if (!(p->rk = client(RD_KAFKA_PRODUCER, kv, props, conf))) {
    free(p);
    return NULL;
  }
  return p;
}

int kp_producer_send(kp_producer_t *p, const char *topic, const char *prefix, int from, int n,
                     int n_keys) {
  for (int i = from; i < from + n; i++) {
    char key[32], val[64];
    int kl = snprintf(key, sizeof(key), "k%d", i % n_keys);
    int vl = snprintf(val, sizeof(val), "%s%d", prefix, i);
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                                    RD_KAFKA_V_VALUE(val, (size_t)vl),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p->rk, 50); /* serves acknowledgements, which make room */
    if (err)
      return -1;
    p->queued++;
  }
  rd_kafka_poll(p->rk, 0);
  return 0;
}

int kp_producer_flush(kp_producer_t *p, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (atomic_load(&p->acked) + atomic_load(&p->failed) < p->queued && now_ms() < deadline)
    rd_kafka_poll(p->rk, 50);
  return atomic_load(&p->acked) == p->queued ? 0 : -1;
}

void kp_producer_counts(const kp_producer_t *p, int64_t *queued, int64_t *acked, int64_t *failed) {
  if (queued)
    *queued = p->queued;
  if (acked)
    *acked = atomic_load(&p->acked);
  if (failed)
    *failed = atomic_load(&p->failed);
}

void kp_producer_close(kp_producer_t *p) {
  if (!p)
    return;
  rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(p->rk, 0);
  rd_kafka_destroy(p->rk);
  free(p);
}
