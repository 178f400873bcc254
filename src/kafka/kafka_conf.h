/* librdkafka client configuration for brook's Kafka source and sink: brook's safe defaults,
 * then the user's bootstrap servers and pass-through properties (which override them), and
 * the redaction of secrets in anything brook writes (logs, error messages). */
#ifndef BROOK_KAFKA_CONF_H
#define BROOK_KAFKA_CONF_H

#include <stdarg.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include <brook/alloc.h>
#include <brook/error.h>

#include "core/errmsg.h"

/* Copies a NULL-terminated key/value list (NULL gives NULL). *out is NULL-terminated too.
 * Returns BROOK_OK, BROOK_ERR_INVALID_ARG for an odd count or a NULL value, BROOK_ERR_NOMEM. */
brook_err_t bk_kafka_props_copy(const brook_allocator_t *a, const char *const *in, char ***out);
void bk_kafka_props_free(const brook_allocator_t *a, char **props);

/* NULL if a source's or sink's connection options are usable, else what is wrong (formatted
 * into *why): `props` not NULL-terminated key/value pairs, or no bootstrap servers (neither
 * `bootstrap` nor the property "bootstrap.servers"). */
const char *bk_kafka_props_problem(const char *const *props, const char *bootstrap,
                                   bk_errmsg_t *why);

/* The value of `key` in a key/value list, or NULL. */
const char *bk_kafka_props_get(char *const *props, const char *key);

/* Builds a configuration: defaults (key/value list, may be NULL), then bootstrap.servers (if
 * not NULL), then `props`. On failure returns BROOK_ERR_INVALID_ARG with the reason (secret
 * values redacted) in why[why_len]. */
brook_err_t bk_kafka_conf_build(const char *const *defaults, const char *bootstrap,
                                char *const *props, rd_kafka_conf_t **out, char *why,
                                size_t why_len);

/* Replaces every occurrence of a secret property value of `props` in text[0..] (NUL
 * terminated, at most cap bytes) by "[redacted]", in place. */
void bk_kafka_redact(char *const *props, char *text, size_t cap);

/* Formats "<who>: <fmt ...>" into msg[cap] with the secret values of `props` redacted
 * (before anything is cut). */
void bk_kafka_vmessage(char *msg, size_t cap, char *const *props, const char *who, const char *fmt,
                       va_list ap);

/* librdkafka's syslog-style log level as a BROOK_LOG_* level. */
int bk_kafka_log_level(int syslog_level);

#endif
