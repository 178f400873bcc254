/* murmur2 as the Kafka Java client computes it (see murmur2.h): MurmurHash2 by Austin
 * Appleby with Kafka's seed, reading 4-byte words little-endian whatever the host's byte
 * order, and the tail bytes as unsigned. Checked against Kafka's UtilsTest vectors and
 * librdkafka's rd_kafka_msg_partitioner_murmur2 (tests/test_murmur2.c). */
#include "core/murmur2.h"

#define MURMUR2_SEED 0x9747b28cu
#define MURMUR2_M 0x5bd1e995u
#define MURMUR2_R 24

uint32_t bk_murmur2(const void *data, size_t len) {
  const unsigned char *p = data;
  /* Java takes the length as an int: keys of 2 GiB or more do not exist there. */
  uint32_t h = MURMUR2_SEED ^ (uint32_t)len;
  size_t words = len / 4;
  for (size_t i = 0; i < words; i++, p += 4) {
    uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    k *= MURMUR2_M;
    k ^= k >> MURMUR2_R;
    k *= MURMUR2_M;
    h *= MURMUR2_M;
    h ^= k;
  }
  switch (len % 4) {
  case 3:
    h ^= (uint32_t)p[2] << 16;
    /* fall through */
  case 2:
    h ^= (uint32_t)p[1] << 8;
    /* fall through */
  case 1:
    h ^= (uint32_t)p[0];
    h *= MURMUR2_M;
    break;
  default:
    break;
  }
  h ^= h >> 13;
  h *= MURMUR2_M;
  h ^= h >> 15;
  return h;
}
