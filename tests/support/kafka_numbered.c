/* Numbered input and commit samples for Kafka commit tests. See kafka_numbered.h. */
#include "kafka_numbered.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kafka_helpers.h"

void kn_produce(const char *bootstrap, const char *topic, int parts, int from, int to, int burst) {
  rd_kafka_t *pr = kh_client(RD_KAFKA_PRODUCER, bootstrap, NULL, NULL, NULL);
  for (int at = from; at < to; at += burst) {
    for (int p = 0; p < parts; p++) {
      for (int i = at; i < at + burst && i < to; i++) {
        char v[32];
        int n = snprintf(v, sizeof(v), "%d:%d", p, i);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            pr, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_VALUE(v, (size_t)n),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err)
          fail_msg("produce: %s", rd_kafka_err2str(err));
      }
    }
    if (rd_kafka_flush(pr, KH_TIMEOUT_MS))
      fail_msg("produce: not acknowledged in time");
  }
  rd_kafka_destroy(pr);
}

void kn_sample(rd_kafka_t *q, const char *in, int parts, const char *out, int64_t *committed,
               int64_t *out_high) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
  for (int p = 0; p < parts; p++)
    rd_kafka_topic_partition_list_add(l, in, p);
  assert_int_equal(rd_kafka_committed(q, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int p = 0; p < parts; p++)
    committed[p] = l->elems[p].offset < 0 ? 0 : l->elems[p].offset;
  rd_kafka_topic_partition_list_destroy(l);
  int64_t lo;
  assert_int_equal(rd_kafka_query_watermark_offsets(q, out, 0, &lo, out_high, 10000),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
}

void kn_parse(const rd_kafka_message_t *m, int parts, int per_part, char *tag, int *p, int *i) {
  char v[48];
  size_t n = m->len < sizeof(v) - 1 ? m->len : sizeof(v) - 1;
  memcpy(v, m->payload, n);
  v[n] = '\0';
  *tag = 0;
  *p = *i = -1;
  int ok = v[0] >= '0' && v[0] <= '9' ? sscanf(v, "%d:%d", p, i) == 2
                                      : sscanf(v, "%c:%d:%d", tag, p, i) == 3;
  if (!ok || *p < 0 || *p >= parts || *i < 0 || *i >= per_part)
    fail_msg("unexpected output '%s'", v);
}
