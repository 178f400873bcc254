/* Kafka's partitioner (core/murmur2.c): the hash values of Kafka's own UtilsTest.testMurmur2,
 * librdkafka's murmur2 partitioner on random keys of every length and partition counts, and
 * what a NULL or empty key does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "core/murmur2.h"

/* org.apache.kafka.common.utils.UtilsTest.testMurmur2: Java's int results. */
static void test_kafka_vectors(void **state) {
  (void)state;
  static const struct {
    const char *key;
    int32_t hash;
  } cases[] = {
      {"21", -973932308},
      {"foobar", -790332482},
      {"a-little-bit-long-string", -985981536},
      {"a-little-bit-longer-string", -1486304829},
      {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
      {"abc", 479470107},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint32_t h = bk_murmur2(cases[i].key, strlen(cases[i].key));
    assert_int_equal((int32_t)h, cases[i].hash);
    /* DefaultPartitioner: toPositive(murmur2(key)) % n. */
    uint32_t positive = (uint32_t)cases[i].hash & 0x7fffffffu;
    for (uint32_t n = 1; n <= 64; n++)
      assert_int_equal(bk_murmur2_partition(cases[i].key, strlen(cases[i].key), n), positive % n);
  }
}

/* librdkafka's "murmur2" partitioner, called directly (it uses neither the topic nor the
 * opaques), agrees on random keys of lengths 0..300 and partition counts 1..1000. */
static void test_librdkafka_agrees(void **state) {
  (void)state;
  unsigned seed = 12;
  unsigned char key[300];
  for (int round = 0; round < 20000; round++) {
    size_t len = (size_t)rand_r(&seed) % sizeof(key);
    for (size_t i = 0; i < len; i++)
      key[i] = (unsigned char)rand_r(&seed);
    int32_t n = 1 + rand_r(&seed) % 1000;
    int32_t want = rd_kafka_msg_partitioner_murmur2(NULL, key, len, n, NULL, NULL);
    assert_int_equal((int32_t)bk_murmur2_partition(key, len, (uint32_t)n), want);
    if (len) /* murmur2_random differs only for a NULL key */
      assert_int_equal(rd_kafka_msg_partitioner_murmur2_random(NULL, key, len, n, NULL, NULL),
                       want);
  }
}

/* A NULL key is the empty key: hashed (zero bytes), so every keyless record goes to one
 * task, the one librdkafka's "murmur2" partitioner picks, never a random one. */
static void test_null_and_empty_key(void **state) {
  (void)state;
  assert_int_equal(bk_murmur2(NULL, 0), bk_murmur2("", 0));
  assert_int_equal(bk_murmur2(NULL, 0), 0x106e08d9u);
  for (int32_t n = 1; n < 100; n++) {
    assert_int_equal((int32_t)bk_murmur2_partition(NULL, 0, (uint32_t)n),
                     rd_kafka_msg_partitioner_murmur2(NULL, "", 0, n, NULL, NULL));
  }
}

/* Unaligned input reads the same bytes (little-endian words on any host). */
static void test_alignment(void **state) {
  (void)state;
  unsigned char buf[64 + 8];
  for (size_t i = 0; i < sizeof(buf); i++)
    buf[i] = (unsigned char)(i * 37 + 11);
  unsigned char copy[64];
  for (size_t off = 0; off < 8; off++) {
    memcpy(copy, buf + off, 64);
    for (size_t len = 0; len <= 64; len++)
      assert_int_equal(bk_murmur2(buf + off, len), bk_murmur2(copy, len));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kafka_vectors),
      cmocka_unit_test(test_librdkafka_agrees),
      cmocka_unit_test(test_null_and_empty_key),
      cmocka_unit_test(test_alignment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
