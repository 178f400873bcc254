/* Reading back what a test wrote to Kafka: a plain librdkafka consumer with explicit
 * assignment (no group join) reads every partition of a topic from the beginning up to the
 * high watermarks it finds, and keeps copies of the messages for assertions. Since the run
 * under test has finished when this is called, the watermarks bound everything it wrote, and
 * the count read is exactly what the topic holds (duplicates included). Every wait has a
 * deadline. */
#ifndef BROOK_TEST_KAFKA_READBACK_H
#define BROOK_TEST_KAFKA_READBACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct kr_header {
  char *name;
  char *value; /* NUL-terminated copy (value_len bytes + '\0'); NULL for a null value */
  size_t value_len;
} kr_header_t;

typedef struct kr_msg {
  int32_t partition;
  int64_t offset;
  char *key; /* NUL-terminated copy; NULL if the message had no key */
  size_t key_len;
  char *value; /* NUL-terminated copy; NULL for a null value (tombstone) */
  size_t value_len;
  int64_t timestamp;
  int timestamp_type; /* rd_kafka_timestamp_type_t */
  kr_header_t *headers;
  size_t header_count;
} kr_msg_t;

typedef struct kr_topic {
  int32_t partitions; /* as the cluster reports them */
  kr_msg_t *msgs;     /* partition by partition, in offset order */
  size_t n, cap;
} kr_topic_t;

/* Reads all of `topic` on the cluster at `bootstrap` into *out (which the caller frees with
 * kr_topic_free). Waits up to timeout_ms in total (for the topic's metadata, the watermarks
 * and the messages). Returns 0, or -1 with the reason in why[why_len] (out then holds what
 * was read so far). */
int kr_read_topic(const char *bootstrap, const char *topic, int timeout_ms, kr_topic_t *out,
                  char *why, size_t why_len);

void kr_topic_free(kr_topic_t *t);

/* The value of the first header `name` of `m` (NULL if none, or if its value is null);
 * *len gets its length when len is not NULL. */
const char *kr_header(const kr_msg_t *m, const char *name, size_t *len);

/* The partition the Java client's default partitioner (murmur2, as librdkafka's
 * murmur2_random for keyed messages) picks for `key` among `partitions`. */
int32_t kr_java_partition(const void *key, size_t len, int32_t partitions);

#endif
