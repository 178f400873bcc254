/* See kafka_helpers.h. */
#include "kafka_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

const brook_runtime_opts_t *kh_rt_opts(void) {
  static brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.commit_interval_ms = 100;
  return &o;
}

long long kh_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rd_kafka_t *kh_client(rd_kafka_type_t type, const char *bootstrap, const char *const *kv,
                      void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *), void *opaque) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err)),
                   RD_KAFKA_CONF_OK);
  assert_int_equal(rd_kafka_conf_set(c, "log_level", "0", err, sizeof(err)), RD_KAFKA_CONF_OK);
  for (size_t i = 0; kv && kv[i]; i += 2)
    assert_int_equal(rd_kafka_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)), RD_KAFKA_CONF_OK);
  if (dr)
    rd_kafka_conf_set_dr_msg_cb(c, dr);
  rd_kafka_conf_set_opaque(c, opaque);
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof(err));
  if (!rk)
    fail_msg("rd_kafka_new: %s", err);
  return rk;
}

typedef struct acks {
  int ok, failed;
} acks_t;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)opaque;
  acks_t *a = rd_kafka_opaque(rk);
  if (m->err)
    a->failed++;
  else
    a->ok++;
}

static void wait_acks(rd_kafka_t *p, acks_t *a, int n) {
  long long deadline = kh_now_ms() + KH_TIMEOUT_MS;
  while (a->ok + a->failed < n) {
    if (kh_now_ms() > deadline)
      fail_msg("only %d of %d produced records acknowledged", a->ok + a->failed, n);
    rd_kafka_poll(p, 50);
  }
  assert_int_equal(a->failed, 0);
}

static rd_kafka_t *producer(const char *bootstrap, acks_t *a) {
  return kh_client(RD_KAFKA_PRODUCER, bootstrap,
                   (const char *const[]){"linger.ms", "5", "partitioner", "murmur2_random", NULL},
                   on_dr, a);
}

static void send_one(rd_kafka_t *p, const char *topic, const void *key, size_t klen,
                     const void *val, size_t vlen) {
  rd_kafka_resp_err_t err;
  while ((err = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                                  RD_KAFKA_V_VALUE((void *)(uintptr_t)val, vlen),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
         RD_KAFKA_RESP_ERR__QUEUE_FULL)
    rd_kafka_poll(p, 50);
  assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
}

void kh_produce(const char *bootstrap, const char *topic, const char *prefix, int from, int n,
                int n_keys) {
  acks_t a = {0, 0};
  rd_kafka_t *p = producer(bootstrap, &a);
  for (int i = from; i < from + n; i++) {
    char key[32], val[64];
    int kl = snprintf(key, sizeof(key), "k%d", i % n_keys);
    int vl = snprintf(val, sizeof(val), "%s%d", prefix, i);
    send_one(p, topic, key, (size_t)kl, val, (size_t)vl);
  }
  wait_acks(p, &a, n);
  rd_kafka_destroy(p);
}

void kh_produce_raw(const char *bootstrap, const char *topic, const void *key, size_t klen,
                    const void *val, size_t vlen) {
  acks_t a = {0, 0};
  rd_kafka_t *p = producer(bootstrap, &a);
  send_one(p, topic, key, klen, val, vlen);
  wait_acks(p, &a, 1);
  rd_kafka_destroy(p);
}

rd_kafka_t *kh_reader(const char *bootstrap, const char *topic, int partitions) {
  rd_kafka_t *c =
      kh_client(RD_KAFKA_CONSUMER, bootstrap,
                (const char *const[]){"group.id", "kh_reader", "enable.auto.commit", "false", NULL},
                NULL, NULL);
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(c, tp), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(tp);
  return c;
}

int kh_read(rd_kafka_t *r, int want, int timeout_ms,
            void (*fn)(const rd_kafka_message_t *m, void *opaque), void *opaque) {
  int got = 0;
  long long deadline = kh_now_ms() + timeout_ms;
  while (got < want && kh_now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r, 100);
    if (!m)
      continue;
    if (!m->err) {
      got++;
      if (fn)
        fn(m, opaque);
    }
    rd_kafka_message_destroy(m);
  }
  return got;
}

void kh_reader_close(rd_kafka_t *r) {
  rd_kafka_consumer_close(r);
  rd_kafka_destroy(r);
}

int64_t kh_committed(const char *bootstrap, const char *group, const char *topic,
                     int32_t partition) {
  rd_kafka_t *c = kh_client(
      RD_KAFKA_CONSUMER, bootstrap,
      (const char *const[]){"group.id", group, "enable.auto.commit", "false", NULL}, NULL, NULL);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition);
  rd_kafka_resp_err_t err = rd_kafka_committed(c, l, 10000);
  int64_t off = err ? -1001 : l->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(c);
  return off;
}
