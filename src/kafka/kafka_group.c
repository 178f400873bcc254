/* Group membership rules. See kafka_group.h. Any thread. */
#include "kafka_group.h"

#include <stdlib.h>

int bk_kafka_join_abort_bug(void) { return rd_kafka_version() < 0x020300ff; }

int64_t bk_kafka_join_wait_ms(rd_kafka_t *rk) {
  char buf[32];
  size_t size = sizeof(buf);
  long long v = 300000; /* librdkafka's default */
  if (rd_kafka_conf_get(rd_kafka_conf(rk), "max.poll.interval.ms", buf, &size) == RD_KAFKA_CONF_OK)
    v = strtoll(buf, NULL, 10);
  return v > 0 ? v : 300000;
}

int bk_kafka_cluster_seen(rd_kafka_t *rk) {
  char *id = rd_kafka_clusterid(rk, 0);
  if (id) {
    rd_kafka_mem_free(rk, id);
    return 1;
  }
  return rd_kafka_controllerid(rk, 0) >= 0;
}
