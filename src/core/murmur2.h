/* Kafka's key partitioner: the 32-bit murmur2 hash of the Java client (Utils.murmur2, seed
 * 0x9747b28c) and the partition it picks, murmur2(key) & 0x7fffffff modulo the partition
 * count: DefaultPartitioner's choice for a keyed record and librdkafka's "murmur2" and
 * "murmur2_random" partitioners for a non-NULL key. brook uses it at key_by exchanges, so a
 * key lands on the same task here as on the same partition of a topic a Kafka producer
 * keyed, and the task of a key does not depend on the number of workers.
 *
 * A NULL key (key_len 0) is the empty key: it hashes the zero bytes like librdkafka's
 * "murmur2" partitioner (hash 0x106e08d9), never a random choice as
 * "murmur2_random" and the Java producer make for a NULL key: after key_by the keyless
 * records are one group whose state must live in one task. Any thread; no state. */
#ifndef BROOK_CORE_MURMUR2_H
#define BROOK_CORE_MURMUR2_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Inline: exchanges hash every record they route. Checked against Kafka's UtilsTest vectors
 * and librdkafka's rd_kafka_msg_partitioner_murmur2 (tests/test_murmur2.c). MurmurHash2 by
 * Austin Appleby with Kafka's seed, 4-byte words read little-endian whatever the host's byte
 * order, tail bytes unsigned. */
#define MURMUR2_SEED 0x9747b28cu
#define MURMUR2_M 0x5bd1e995u
#define MURMUR2_R 24

/* The hash of `len` bytes at `data` (NULL allowed when len is 0), as Java's Utils.murmur2
 * returns it (an int; here its bit pattern as uint32_t). */
static inline uint32_t bk_murmur2(const void *data, size_t len) {
  const unsigned char *p = data;
  /* Java takes the length as an int: keys of 2 GiB or more do not exist there. */
  uint32_t h = MURMUR2_SEED ^ (uint32_t)len;
  size_t words = len / 4;
  for (size_t i = 0; i < words; i++, p += 4) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t k; /* one load: exchanges hash every record they route */
    memcpy(&k, p, sizeof(k));
#else
    uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
#endif
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

/* The partition (task) of `key` among `n` (n >= 1): (murmur2(key) & 0x7fffffff) % n. */
static inline uint32_t bk_murmur2_partition(const void *key, size_t len, uint32_t n) {
  return (bk_murmur2(key, len) & 0x7fffffffu) % n;
}

#endif
