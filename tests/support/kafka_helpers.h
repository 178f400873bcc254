/* Plain librdkafka clients for Kafka tests: produce test records and read a topic back,
 * always with deadlines, against a broker started with broker_proc.h. Cmocka assertions. */
#ifndef BROOK_TEST_KAFKA_HELPERS_H
#define BROOK_TEST_KAFKA_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <brook/runtime.h>

#define KH_TIMEOUT_MS 30000

/* Runtime options for Kafka tests: the defaults but commit_interval_ms 100, so waits for
 * committed offsets are short. Static; loop thread of the caller. */
const brook_runtime_opts_t *kh_rt_opts(void);

long long kh_now_ms(void);

/* A client of the test broker with `kv` (NULL-terminated property pairs; may be NULL), an
 * optional delivery-report callback and the client's opaque. Asserts it was created. */
rd_kafka_t *kh_client(rd_kafka_type_t type, const char *bootstrap, const char *const *kv,
                      void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *), void *opaque);

/* Produces values "<prefix><i>" with keys "k<i % n_keys>" for i in [from, from + n) to
 * `topic` and waits (deadline) until all are acknowledged. Asserts none failed. */
void kh_produce(const char *bootstrap, const char *topic, const char *prefix, int from, int n,
                int n_keys);

/* Produces one message with the given bytes (NULL key allowed) and waits for its ack. */
void kh_produce_raw(const char *bootstrap, const char *topic, const void *key, size_t klen,
                    const void *val, size_t vlen);

/* A consumer of every partition of `topic` (0..partitions-1) from the beginning. */
rd_kafka_t *kh_reader(const char *bootstrap, const char *topic, int partitions);

/* Reads messages from `r` until `want` have arrived or the deadline passes; calls `fn` on each
 * (may be NULL). Returns how many arrived. */
int kh_read(rd_kafka_t *r, int want, int timeout_ms,
            void (*fn)(const rd_kafka_message_t *m, void *opaque), void *opaque);

void kh_reader_close(rd_kafka_t *r);

/* The committed offset of group `group` for topic/partition (-1001 if none). */
int64_t kh_committed(const char *bootstrap, const char *group, const char *topic,
                     int32_t partition);

#endif
