/* Kafka's murmur2 (the Java client's default partitioner, librdkafka's murmur2_random for
 * keyed messages): the exchanges between workers choose a key's target task with it, so a
 * key's task is the partition Kafka would choose for it. */
#ifndef BROOK_RUNTIME_MURMUR2_H
#define BROOK_RUNTIME_MURMUR2_H

#include <stddef.h>
#include <stdint.h>

/* The hash of `len` bytes at `key` (NULL allowed when len is 0). */
static inline uint32_t bk_murmur2(const void *key, size_t len) {
  const unsigned char *d = key;
  const uint32_t m = 0x5bd1e995;
  uint32_t h = 0x9747b28c ^ (uint32_t)len;
  for (; len >= 4; d += 4, len -= 4) {
    uint32_t k = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
    k *= m;
    k ^= k >> 24;
    k *= m;
    h = h * m ^ k;
  }
  switch (len) {
  case 3:
    h ^= (uint32_t)d[2] << 16;
    /* fall through */
  case 2:
    h ^= (uint32_t)d[1] << 8;
    /* fall through */
  case 1:
    h ^= d[0];
    h *= m;
  }
  h ^= h >> 13;
  h *= m;
  return h ^ (h >> 15);
}

/* The partition (task) of `key` among `n` (> 0), as Kafka's Java client chooses it. */
static inline uint32_t bk_murmur2_partition(const void *key, size_t len, uint32_t n) {
  return (bk_murmur2(key, len) & 0x7fffffff) % n;
}

#endif
