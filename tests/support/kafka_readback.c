/* Reads a topic back for assertions. See kafka_readback.h. */
#include "kafka_readback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "core/murmur2.h"

static int64_t now_ms(void) { return (int64_t)(uv_hrtime() / 1000000u); }

static int left_ms(int64_t deadline) {
  int64_t left = deadline - now_ms();
  return left > 0 ? (int)left : 0;
}

static char *copy_bytes(const void *p, size_t n) {
  if (!p)
    return NULL;
  char *d = malloc(n + 1);
  if (!d)
    abort(); /* a test helper: out of memory ends the test run */
  if (n)
    memcpy(d, p, n);
  d[n] = '\0';
  return d;
}

static void keep(kr_topic_t *t, const rd_kafka_message_t *m) {
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 256;
    t->msgs = realloc(t->msgs, t->cap * sizeof(*t->msgs));
    if (!t->msgs)
      abort();
  }
  kr_msg_t *k = &t->msgs[t->n++];
  memset(k, 0, sizeof(*k));
  k->partition = m->partition;
  k->offset = m->offset;
  k->key = copy_bytes(m->key, m->key_len);
  k->key_len = m->key ? m->key_len : 0;
  k->value = copy_bytes(m->payload, m->len);
  k->value_len = m->payload ? m->len : 0;
  rd_kafka_timestamp_type_t tt;
  k->timestamp = rd_kafka_message_timestamp(m, &tt);
  k->timestamp_type = (int)tt;
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
    size_t n = rd_kafka_header_cnt(h);
    k->headers = calloc(n ? n : 1, sizeof(*k->headers));
    if (!k->headers)
      abort();
    for (size_t i = 0; i < n; i++) {
      const char *name;
      const void *val;
      size_t len;
      if (rd_kafka_header_get_all(h, i, &name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        break;
      k->headers[i].name = copy_bytes(name, strlen(name));
      k->headers[i].value = copy_bytes(val, len);
      k->headers[i].value_len = val ? len : 0;
      k->header_count++;
    }
  }
}

/* The topic's partition count once the cluster knows it, or 0 at the deadline. */
static int32_t partition_count(rd_kafka_t *rk, const char *topic, int64_t deadline) {
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  int32_t parts = 0;
  while (!parts && left_ms(deadline) > 0) {
    const struct rd_kafka_metadata *md = NULL;
    int wait = left_ms(deadline) < 2000 ? left_ms(deadline) : 2000;
    if (rd_kafka_metadata(rk, 0, rkt, &md, wait) != RD_KAFKA_RESP_ERR_NO_ERROR)
      continue;
    if (md->topic_cnt == 1 && !md->topics[0].err)
      parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(rkt);
  return parts;
}

int kr_read_topic(const char *bootstrap, const char *topic, int timeout_ms, kr_topic_t *out,
                  char *why, size_t why_len) {
  memset(out, 0, sizeof(*out));
  why[0] = '\0';
  int64_t deadline = now_ms() + timeout_ms;
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *kv[] = {"bootstrap.servers",
                      bootstrap,
                      "group.id",
                      "brook-test-readback",
                      "enable.auto.commit",
                      "false",
                      "log_level",
                      "0",
                      NULL};
  for (size_t i = 0; kv[i]; i += 2)
    if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      snprintf(why, why_len, "consumer property %s: %s", kv[i], err);
      rd_kafka_conf_destroy(conf);
      return -1;
    }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) {
    snprintf(why, why_len, "rd_kafka_new: %s", err);
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  int rc = -1;
  int64_t *high = NULL, *next = NULL;
  rd_kafka_topic_partition_list_t *tp = NULL;
  out->partitions = partition_count(rk, topic, deadline);
  if (!out->partitions) {
    snprintf(why, why_len, "no metadata for topic '%s'", topic);
    goto done;
  }
  high = calloc((size_t)out->partitions, sizeof(*high));
  next = calloc((size_t)out->partitions, sizeof(*next));
  if (!high || !next)
    abort();
  tp = rd_kafka_topic_partition_list_new(out->partitions);
  for (int32_t p = 0; p < out->partitions; p++) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_query_watermark_offsets(
                rk, topic, p, &lo, &hi, left_ms(deadline) < 2000 ? left_ms(deadline) : 2000)) &&
           left_ms(deadline) > 0) {
    }
    if (e) {
      snprintf(why, why_len, "watermarks of '%s' [%d]: %s", topic, (int)p, rd_kafka_err2str(e));
      goto done;
    }
    high[p] = hi;
    next[p] = lo;
    if (hi > lo)
      rd_kafka_topic_partition_list_add(tp, topic, p)->offset = lo;
  }
  if (tp->cnt && rd_kafka_assign(rk, tp) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    snprintf(why, why_len, "assign failed");
    goto done;
  }
  for (;;) {
    int32_t behind = -1;
    for (int32_t p = 0; p < out->partitions && behind < 0; p++)
      if (next[p] < high[p])
        behind = p;
    if (behind < 0)
      break;
    if (left_ms(deadline) == 0) {
      snprintf(why, why_len, "'%s' [%d]: read up to offset %lld of %lld, then the deadline passed",
               topic, (int)behind, (long long)next[behind], (long long)high[behind]);
      goto done;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (!m->err && m->partition >= 0 && m->partition < out->partitions &&
        m->offset < high[m->partition]) {
      keep(out, m);
      next[m->partition] = m->offset + 1;
    }
    rd_kafka_message_destroy(m);
  }
  rc = 0;
done:
  if (tp)
    rd_kafka_topic_partition_list_destroy(tp);
  free(high);
  free(next);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

void kr_topic_free(kr_topic_t *t) {
  for (size_t i = 0; i < t->n; i++) {
    kr_msg_t *m = &t->msgs[i];
    free(m->key);
    free(m->value);
    for (size_t h = 0; h < m->header_count; h++) {
      free(m->headers[h].name);
      free(m->headers[h].value);
    }
    free(m->headers);
  }
  free(t->msgs);
  memset(t, 0, sizeof(*t));
}

int32_t kr_java_partition(const void *key, size_t len, int32_t partitions) {
  return (int32_t)bk_murmur2_partition(key, len, (uint32_t)partitions);
}

const char *kr_header(const kr_msg_t *m, const char *name, size_t *len) {
  for (size_t i = 0; i < m->header_count; i++)
    if (strcmp(m->headers[i].name, name) == 0) {
      if (len)
        *len = m->headers[i].value_len;
      return m->headers[i].value;
    }
  return NULL;
}
