/* brook's librdkafka producers, for the Kafka sinks and the sources' dead-letter outputs:
 * brook's producer defaults, delivery reports served on the loop (kafka_poll.c), each message
 * counted against a delivery epoch (runtime/delivery.h) until it is acknowledged, logs and
 * errors forwarded to the runtime's logger with secrets redacted, and a close that never
 * blocks the loop (the final rd_kafka_destroy runs on a worker thread).
 *
 * One producer per execution context (the runtime; a worker's once there are workers): every
 * sink and dead-letter output whose effective librdkafka configuration is identical (brook's
 * defaults, bootstrap servers and properties, compared as librdkafka reports them) shares one
 * client, as Kafka Streams shares a thread's producer. A bk_kprod_t is one user's handle on
 * it: its messages' delivery reports and refusals come back to that user only. A different
 * configuration (a dead-letter output's batch.num.messages=1, other properties) gets its own
 * client. Loop thread. */
#ifndef BROOK_KAFKA_PRODUCER_H
#define BROOK_KAFKA_PRODUCER_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "runtime/services.h"

#define BK_KPROD_MAX_USERS 255 /* users of one client (message tags carry the user) */

typedef struct bk_kprod bk_kprod_t;

/* What a message is, given to bk_kprod_send and handed back with its refusal (flags). */
enum {
  BK_KMSG_OUTPUT = 0,       /* a sink's output */
  BK_KMSG_ERROR_RECORD = 1, /* an error-stream record: its brook.* headers are brook's own */
  BK_KMSG_DEAD_LETTER = 2,  /* a dead letter (kafka/dead_letter.h): nowhere else to go */
  BK_KMSG_CUT_AGAIN = 4     /* already sent once more, cut, after a refusal as too large */
};

/* The brokers refused `m` for good (after librdkafka's retries). The callee decides: send
 * it elsewhere with the same `epoch` (bk_kprod_send), or fail the run; either way it calls
 * bk_delivery_done for `epoch` unless it re-sent the message. `flags` are the send's. */
typedef void (*bk_kprod_failed_fn)(bk_kprod_t *p, const rd_kafka_message_t *m, uint64_t epoch,
                                   unsigned flags, void *opaque);

/* A producer for `who` (e.g. "Kafka sink 'alerts'", used in messages) on bootstrap (may be
 * NULL if props have it) and props (borrowed: must outlive the producer), into *out: the
 * runtime's client of the same effective configuration, or a new one.
 * dead_letters_only: a producer that carries nothing but dead letters, one per record batch
 * (each is sized to fit alone).
 * Returns BROOK_OK, or an error (BROOK_ERR_NOMEM, BROOK_ERR_KAFKA, ...) with the reason
 * (redacted) in why. */
brook_err_t bk_kprod_new(bk_worker_t *w, const char *who, const char *bootstrap, char *const *props,
                         int dead_letters_only, bk_kprod_failed_fn failed, void *opaque,
                         bk_kprod_t **out, char *why, size_t why_len);

/* Sends a message (bytes copied; `headers` owned by the producer on success, by the caller
 * on failure). The delivery counts against `epoch` (from bk_delivery_add); `flags`
 * (BK_KMSG_*) come back with a refusal. Returns an rd_kafka error: the message was not
 * queued (RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: over bk_kprod_max_message). */
rd_kafka_resp_err_t bk_kprod_send(bk_kprod_t *p, const char *topic, const void *key, size_t klen,
                                  const void *val, size_t vlen, int64_t ts,
                                  rd_kafka_headers_t *headers, uint64_t epoch, unsigned flags);

/* A record's headers as librdkafka headers for bk_kprod_send (NULL if it has none). */
rd_kafka_headers_t *bk_kprod_headers(const brook_record_t *rec);

/* bk_kprod_send to partition `partition` of the topic (RD_KAFKA_PARTITION_UA: the
 * partitioner's choice, murmur2 of the key by brook's default). */
rd_kafka_resp_err_t bk_kprod_send_to(bk_kprod_t *p, const char *topic, int32_t partition,
                                     const void *key, size_t klen, const void *val, size_t vlen,
                                     int64_t ts, rd_kafka_headers_t *headers, uint64_t epoch,
                                     unsigned flags);

/* The producer's effective message.max.bytes (librdkafka's default unless the properties set
 * it): no message larger than that on the wire is accepted. */
size_t bk_kprod_max_message(const bk_kprod_t *p);

bk_worker_t *bk_kprod_worker(const bk_kprod_t *p);

/* The client, for watches that only read its state (kafka_startup.h). */
rd_kafka_t *bk_kprod_rk(bk_kprod_t *p);

/* Lets `fn` see each error of the client's error callback (fac NULL) and each line of its log
 * (err 0) first; when it returns 1 the producer does not log it. */
void bk_kprod_set_error_hook(bk_kprod_t *p,
                             int (*fn)(void *opaque, int err, const char *fac, const char *text),
                             void *opaque);

/* The librdkafka clients the runtime's producers use now (tests: sharing is observable). */
size_t bk_kprod_clients(brook_runtime_t *rt);

/* Messages sent and not yet reported. */
uint64_t bk_kprod_in_flight(const bk_kprod_t *p);

/* Fails the run with "<who>: <fmt ...>", secrets redacted. */
void bk_kprod_fail(bk_kprod_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends this user: its later delivery reports only end their epochs. When the client's last
 * user ends, the client is destroyed off the loop (holding the runtime until done): at once if
 * nothing it sent is unreported or the run failed (undelivered messages are dropped: nobody
 * waits for them), else once their reports are in, which commits and the end of the run wait
 * for, or at the latest as the run ends. NULL is a no-op. */
void bk_kprod_close(bk_kprod_t *p);

#endif
