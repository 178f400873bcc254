/* The built-in Kafka (de)serialisers (bytes, UTF-8 string, big-endian int64) and the custom
 * hook, shared by the Kafka source and sink. Outputs may point into the input or into the
 * batch arena (brook_ctx_alloc). Loop thread. */
#ifndef BROOK_KAFKA_SERDE_H
#define BROOK_KAFKA_SERDE_H

#include <stddef.h>

#include <brook/kafka.h>

#include "core/errmsg.h"

/* Whether `serde` is well-formed (a known format; a callback for CUSTOM). */
int bk_kafka_serde_valid(const brook_kafka_serde_t *serde);

/* NULL if `serde` is well-formed, else what is wrong, prefixed by `which` (e.g. "key
 * deserialiser"), formatted into *why. */
const char *bk_kafka_serde_problem(const brook_kafka_serde_t *serde, const char *which,
                                   bk_errmsg_t *why);

/* Kafka bytes -> record bytes. BROOK_OK, or an error with brook_ctx_set_error explaining. */
brook_err_t bk_kafka_deserialize(brook_ctx_t *ctx, const brook_kafka_serde_t *serde, const void *in,
                                 size_t len, const void **out, size_t *out_len);

/* Record bytes -> Kafka bytes. */
brook_err_t bk_kafka_serialize(brook_ctx_t *ctx, const brook_kafka_serde_t *serde, const void *in,
                               size_t len, const void **out, size_t *out_len);

/* Whether s[0..len) is valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF). */
int bk_utf8_valid(const unsigned char *s, size_t len);

#endif
