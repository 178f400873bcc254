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

/* The hash of `len` bytes at `data` (NULL allowed when len is 0), as Java's Utils.murmur2
 * returns it (an int; here its bit pattern as uint32_t). */
uint32_t bk_murmur2(const void *data, size_t len);

/* The partition (task) of `key` among `n` (n >= 1): (murmur2(key) & 0x7fffffff) % n. */
static inline uint32_t bk_murmur2_partition(const void *key, size_t len, uint32_t n) {
  return (bk_murmur2(key, len) & 0x7fffffffu) % n;
}

#endif
