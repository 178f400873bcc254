/* Dead letters, built in one place for every path that writes them: the Kafka source's
 * malformed messages, the Kafka sink's refused records, and error-stream records a Kafka sink
 * writes.
 *
 * Always deliverable: a letter is sized as librdkafka sizes a message (key + value + headers
 * + one record's framing) plus a record batch's header (so that a batch of one also fits
 * brokers whose limit equals the producer's), against the producer's message.max.bytes. When
 * it does not fit, its value is cut to fit (header brook.error.original_size: the value's size
 * before the cut); should even an empty value not fit, the record's own headers are dropped
 * (brook.error.headers_dropped: how many), and then its key is cut
 * (brook.error.original_key_size). A letter the brokers refuse as too large (their limit is
 * below the producer's; reported in the delivery report) is sent once more, cut to
 * BK_DL_RETRY_MAX bytes or half its size, whichever is smaller.
 *
 * Unambiguous headers: brook's headers describe the failure; headers named brook.* that the
 * record brought with it (from a producer, or from an earlier failure) are kept renamed
 * original.brook.*, except on error-stream records, whose brook.* headers brook wrote itself
 * (the runtime renamed foreign ones when it routed the record). Loop thread. */
#ifndef BROOK_KAFKA_DEAD_LETTER_H
#define BROOK_KAFKA_DEAD_LETTER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <brook/record.h>

#include "kafka/kafka_producer.h"

#define BK_DL_RETRY_MAX (16 * 1024)

/* A letter before it is fitted. */
typedef struct bk_dead_letter {
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  int64_t timestamp; /* 0: librdkafka stamps it */
  /* The record's own headers: librdkafka's, or brook's (header_count of them), or none. */
  const rd_kafka_headers_t *kheaders;
  const brook_header_t *headers;
  size_t header_count;
  int brook_own; /* the record's brook.* headers are brook's (kept as they are, never dropped) */
  /* brook's headers for this failure: name, value, ... NULL-terminated (may be NULL). */
  const char *const *brook;
} bk_dead_letter_t;

/* The letter of message `m` as it is (key, value, headers, timestamp). */
void bk_dead_letter_of_message(bk_dead_letter_t *dl, const rd_kafka_message_t *m);

/* Fits `dl` into `limit` bytes (0: the producer's message.max.bytes) and sends it to `topic`
 * with `flags` (BK_KMSG_*), counted against `epoch`. Returns an rd_kafka error (the letter was
 * not queued; the caller ends the epoch) with the reason in why[why_len]. */
rd_kafka_resp_err_t bk_dead_letter_send(bk_kprod_t *p, const char *topic,
                                        const bk_dead_letter_t *dl, size_t limit, uint64_t epoch,
                                        unsigned flags, char *why, size_t why_len);

/* The Kafka source: consumer message `m` is malformed (`err`, explained by `message`): sends
 * it to `topic` with brook.error, brook.error.code, brook.error.message and brook.source.*
 * and counts it (stats.records_dead_lettered). On failure the run fails; returns the error. */
brook_err_t bk_dead_letter_malformed(bk_kprod_t *p, const char *topic, const rd_kafka_message_t *m,
                                     brook_err_t err, const char *message);

/* A Kafka sink: the record `dl` (partition -1 if not known) was refused by `refused` on its
 * way to `sink_topic`: sends it to the dead-letter topic `dlq` with brook.sink.topic,
 * brook.sink.partition, brook.sink.error and brook.sink.error.message, plus brook.error and
 * brook.error.message unless it is an error-stream record (flags BK_KMSG_ERROR_RECORD: its
 * brook.error* headers say why it failed first), and counts it. Returns an rd_kafka error with
 * why[why_len] (nothing sent, nothing counted; the caller ends the epoch). */
rd_kafka_resp_err_t bk_dead_letter_refusal(bk_kprod_t *p, const char *dlq,
                                           const bk_dead_letter_t *dl, const char *sink_topic,
                                           int32_t partition, rd_kafka_resp_err_t refused,
                                           uint64_t epoch, unsigned flags, char *why,
                                           size_t why_len);

/* A refusal of message `m` (sent with `flags`): if the brokers found it too large and it is a
 * dead letter or an error-stream record not cut again yet, sends it once more, cut, and
 * returns 1 (on failure to send: the run fails, the epoch ends, still 1). Else returns 0. */
int bk_dead_letter_retry_cut(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch,
                             unsigned flags);

/* The refusal callback of a producer that only sends dead letters (bk_kprod_failed_fn): a
 * retry cut, or the run fails. */
void bk_dead_letter_failed(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch,
                           unsigned flags, void *opaque);

#endif
