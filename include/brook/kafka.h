/* Kafka sources and sinks, on librdkafka, driven by the runtime's libuv loop (no polling
 * thread: librdkafka's queues signal a pipe that the loop watches).
 *
 * Configuration: typed options for what brook decides, plus `properties`, librdkafka
 * properties passed through unchanged (security.protocol, sasl.*, ssl.*, client.id, ...), so
 * the same code runs against the embedded broker (tools/broker.c) and a real cluster. brook
 * never weakens TLS verification and never logs a configuration dump or a secret: values of
 * keys that look secret (*password*, *secret*, ssl.key.pem, sasl.oauthbearer.config, ...) are
 * replaced by "[redacted]" in every log line and error message brook writes.
 *
 * Defaults brook sets unless `properties` overrides them: consumers
 * enable.auto.commit=false, enable.auto.offset.store=false (brook commits offsets itself),
 * isolation.level=read_committed, partition.assignment.strategy=cooperative-sticky,
 * auto.offset.reset=earliest; producers enable.idempotence=true, acks=all,
 * partitioner=murmur2_random (the Java client's: the same key lands in the same partition
 * as from Kafka Streams).
 *
 * Delivery: at least once. A source commits input offsets at the runtime's commits (runtime.h,
 * commit_interval_ms), and an offset only once every record derived from it has been
 * delivered by every Kafka sink (acknowledged by the brokers): per partition,
 * the lowest offset not yet finished bounds the commit. Records absorbed into operator state
 * (windows, aggregates) count as finished when absorbed; that state survives a crash only
 * once changelogs exist (not yet).
 *
 * Dead letters: a source's malformed messages (on_malformed DEAD_LETTER), a sink's refused
 * records (on_failure DEAD_LETTER) and error-stream records a Kafka sink writes
 * (brook_error_stream) keep the record's key, value, headers and timestamp and carry brook's
 * headers (text values, numbers in decimal):
 *   brook.error, brook.error.message      why it failed first: a deserialiser's or an
 *                                         operator's error name (BROOK_ERR_CORRUPT, ...), or for
 *                                         an output the brokers refused librdkafka's
 *                                         (INVALID_RECORD, MSG_SIZE_TOO_LARGE, ...)
 *   brook.error.code                      brook's code (source and error stream)
 *   brook.error.operator                  the failing node (error stream)
 *   brook.source.topic, brook.source.partition, brook.source.offset
 *                                         the input message: always on a source's dead letter;
 *                                         on error-stream records whenever the runtime can tell
 *                                         (see brook_error_stream); never on a sink's refused
 *                                         outputs (written asynchronously, possibly built from
 *                                         many inputs)
 *   brook.sink.topic, brook.sink.partition, brook.sink.error, brook.sink.error.message
 *                                         where a sink's refused record was going and why the
 *                                         brokers (or the producer) refused it
 *   original.brook.*                      headers named brook.* the record already carried (a
 *                                         producer's, or an earlier failure's), renamed: every
 *                                         brook.* header is brook's own, for this failure
 * A dead letter is always deliverable. It is sized as librdkafka sizes a message (key, value,
 * headers and per-record framing) plus a record batch header (61 bytes), against the
 * producer's message.max.bytes (librdkafka's default 1000000, or the properties'). If it does
 * not fit, its value is cut to its first bytes that fit and "brook.error.original_size" gives
 * the value's size before; if even an empty value does not fit, the record's own headers are
 * dropped ("brook.error.headers_dropped": how many), then its key is cut
 * ("brook.error.original_key_size"). A letter the brokers refuse as too large (a topic or
 * broker limit below the producer's) is sent once more, cut to 16 KiB or half its size,
 * whichever is smaller. Only if that is refused too does the run fail. */
#ifndef BROOK_KAFKA_H
#define BROOK_KAFKA_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/operator.h>
#include <brook/record.h>
#include <brook/serde.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How Kafka bytes become a record's bytes (source) and back (sink).
 *
 * Use the key_serde / value_serde options (brook_serde_t tables, serde.h: built-ins, your
 * own, chains such as UTF-8 then JSON). The formats below are DEPRECATED: they keep working,
 * mapped onto the same serdes (BYTES: bytes; STRING: utf8 when read, bytes when written;
 * INT64: int64; CUSTOM: your callback), and are refused together with a table for the same
 * key or value. */
typedef enum brook_kafka_format {
  BROOK_KAFKA_BYTES = 0, /* as is (default) */
  BROOK_KAFKA_STRING,    /* UTF-8 text; invalid UTF-8 is malformed (source) */
  BROOK_KAFKA_INT64,     /* 8 bytes big-endian in Kafka, a native int64_t in the record */
  BROOK_KAFKA_CUSTOM     /* the callback below */
} brook_kafka_format_t;

/* A custom (de)serialiser: converts `in` (in_len bytes) into *out / *out_len. The output may
 * point into `in`, at static memory, or at brook_ctx_alloc() memory. Return BROOK_OK, or a
 * negative code for malformed input (brook_ctx_set_error may say why). Loop thread. */
typedef brook_err_t (*brook_kafka_serde_fn)(brook_ctx_t *ctx, const void *in, size_t in_len,
                                            const void **out, size_t *out_len, void *opaque);

typedef struct brook_kafka_serde {
  brook_kafka_format_t format;
  brook_kafka_serde_fn fn; /* BROOK_KAFKA_CUSTOM */
  void *opaque;
} brook_kafka_serde_t;

/* What a source does with a message its deserialisers reject. */
typedef enum brook_kafka_malformed {
  BROOK_KAFKA_MALFORMED_FAIL = 0,   /* the pipeline stops with the error (default) */
  BROOK_KAFKA_MALFORMED_SKIP,       /* dropped and counted (stats.records_skipped) */
  BROOK_KAFKA_MALFORMED_DEAD_LETTER /* to dead_letter_topic, see below */
} brook_kafka_malformed_t;

/* A partition to read, for explicit assignment. offset: a number, or BROOK_KAFKA_OFFSET_*
 * (resume from the group's committed offset, else auto.offset.reset). */
#define BROOK_KAFKA_OFFSET_STORED (-1000)
#define BROOK_KAFKA_OFFSET_BEGINNING (-2)
#define BROOK_KAFKA_OFFSET_END (-1)

typedef struct brook_kafka_partition {
  const char *topic;
  int32_t partition;
  int64_t offset;
} brook_kafka_partition_t;

typedef struct brook_kafka_source_opts {
  uint32_t struct_size;          /* set by brook_kafka_source_opts_init() */
  const char *bootstrap_servers; /* required (or "bootstrap.servers" in properties) */
  const char *group_id;          /* the application id: the consumer group; required */
  /* Subscription: NULL-terminated topic names; a name starting with '^' is a regex. */
  const char *const *topics;
  /* Or explicit assignment (no group rebalancing; offsets are still committed to group_id). */
  const brook_kafka_partition_t *partitions;
  size_t n_partitions;
  /* librdkafka properties, NULL-terminated key, value pairs; copied. */
  const char *const *properties;
  brook_kafka_serde_t key, value; /* DEPRECATED (key_serde, value_serde); default bytes */
  brook_kafka_malformed_t on_malformed;
  /* BROOK_KAFKA_MALFORMED_DEAD_LETTER: the topic that gets the original key, value and
   * headers plus "brook.error" (reason), "brook.error.code", "brook.error.message",
   * "brook.source.topic", "brook.source.partition" and "brook.source.offset" (see dead letters
   * above: cut to fit if too large). Written through a producer with the same bootstrap and
   * properties (so its message.max.bytes too). */
  const char *dead_letter_topic;
  /* Deprecated and ignored: offsets are committed at the runtime's commits (runtime.h,
   * brook_runtime_opts_t.commit_interval_ms, default 1000). Still accepted; any value but 0
   * (the default now) logs a warning when the runtime is created. */
  int64_t commit_interval_ms;
  /* Backpressure bound: once the runtime has this many records awaiting a delivery
   * acknowledgement (from all its sinks), the source pauses its partitions, and resumes them
   * below half of it. Default 100000. */
  size_t max_in_flight;
  /* How long the consumer may take to reach the cluster (a metadata answer from any broker)
   * when the run starts; past it the run fails with BROOK_ERR_TIMEOUT, naming every broker
   * and why it could not be reached. 0: no limit. Default 30000. Later outages are retried by
   * librdkafka as before. */
  int64_t startup_timeout_ms;
  /* The deserialisers (serde.h): a chain of tables, copied by their versions when the source
   * is built (opaques borrowed). NULL: bytes (or the deprecated key / value formats). A
   * message they reject follows on_malformed, the stage, field and reason in the message. */
  const brook_serde_t *key_serde, *value_serde;
  /* Appended (issue 12): how long a revoked partition may wait, before it is handed over, for
   * the acknowledgements of every output derived from its input (README, "Commits and
   * rebalances"). The revocation (a rebalance) suspends the partition's task (operators and
   * stores flushed), waits for those acknowledgements without blocking the loop, commits the
   * partition's offsets, closes the task, and only then lets the group give the partition to
   * another member. Past the bound it commits only what earlier commits finished (never an
   * offset whose outputs are unacknowledged: the next owner reads the rest again) and logs a
   * warning (brook_runtime_stats_t.revocations_timed_out). 0: half the consumer's
   * max.poll.interval.ms (150000 with librdkafka's default), the time an eager group gives a
   * member to rejoin. Must be >= 0. */
  int64_t revoke_timeout_ms;
} brook_kafka_source_opts_t;

BROOK_API void brook_kafka_source_opts_init_size(brook_kafka_source_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_kafka_source_opts_init(brook_kafka_source_opts_t *opts) {
  brook_kafka_source_opts_init_size(opts, sizeof(*opts));
}

/* A Kafka source named `name` (required). Records carry the message's key, value (after the
 * deserialisers), headers and timestamp (the message timestamp, or what the source's
 * watermark extractor says); each partition is a split with its own watermark. A record whose
 * message has no headers has header_count 0 but a headers pointer that is not NULL (brook
 * traces failed records back to their message by it): read headers up to header_count only.
 * `opts` is copied (strings included). NULL on error (recorded in the topology). */
BROOK_API brook_stream_t *brook_source_kafka(brook_topology_t *t, const char *name,
                                             const brook_kafka_source_opts_t *opts);

/* Picks a record's topic (sink option topic_fn): a NUL-terminated name that stays valid
 * until the call returns, or NULL for the sink's fixed topic. Loop thread. */
typedef const char *(*brook_kafka_topic_fn)(const brook_record_t *rec, void *opaque);

/* What a sink does when the brokers permanently refuse a record. */
typedef enum brook_kafka_delivery_failure {
  BROOK_KAFKA_DELIVERY_FAIL = 0, /* the pipeline stops with the error (default) */
  /* to dead_letter_topic, with brook.error and brook.sink.* headers (dead letters above);
   * this includes a record the producer refuses as larger than its message.max.bytes */
  BROOK_KAFKA_DELIVERY_DEAD_LETTER
} brook_kafka_delivery_failure_t;

typedef struct brook_kafka_sink_opts {
  uint32_t struct_size;          /* set by brook_kafka_sink_opts_init() */
  const char *bootstrap_servers; /* required (or "bootstrap.servers" in properties) */
  const char *topic;             /* the topic; required unless topic_fn always answers */
  brook_kafka_topic_fn topic_fn; /* optional: a topic per record */
  void *topic_opaque;
  const char *const *properties;  /* librdkafka properties, NULL-terminated pairs; copied */
  brook_kafka_serde_t key, value; /* DEPRECATED (key_serde, value_serde); default bytes */
  brook_kafka_delivery_failure_t on_failure;
  const char *dead_letter_topic;
  /* Records handed to librdkafka and not yet acknowledged; beyond it the sink holds the
   * pipeline back (sources pause). Default 100000. */
  size_t max_in_flight;
  /* How long the producer may take to reach the cluster when the run starts; past it the run
   * fails with BROOK_ERR_TIMEOUT, naming the brokers and why. 0: no limit. Default 30000. */
  int64_t startup_timeout_ms;
  /* The serialisers (serde.h), run last table first; copied when the sink is built (opaques
   * borrowed). NULL: bytes (or the deprecated formats). A record they refuse follows the
   * error policy, the stage, field and reason in its message. */
  const brook_serde_t *key_serde, *value_serde;
} brook_kafka_sink_opts_t;

BROOK_API void brook_kafka_sink_opts_init_size(brook_kafka_sink_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_kafka_sink_opts_init(brook_kafka_sink_opts_t *opts) {
  brook_kafka_sink_opts_init_size(opts, sizeof(*opts));
}

/* Writes `in` to Kafka: key and value through the serialisers, the record's headers and
 * timestamp as the message's. Partitioning is librdkafka's (keyed: murmur2 by default).
 * Delivery reports are handled on the loop; the runtime finishes (end of input or stop)
 * only once every record is acknowledged or has failed. `name` may be NULL. */
BROOK_API brook_err_t brook_sink_kafka(brook_stream_t *in, const char *name,
                                       const brook_kafka_sink_opts_t *opts);

/* Whether a librdkafka property's value is a secret brook never writes out (by key pattern:
 * sasl.password, ssl.key.password, ssl.keystore.password, ssl.key.pem, *secret*, ...).
 * Any thread. */
BROOK_API int brook_kafka_property_is_secret(const char *key);

#ifdef __cplusplus
}
#endif
#endif
