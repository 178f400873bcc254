/* Records: the unit of data flowing through a pipeline.
 *
 * Ownership: a record passed to a callback or operator is BORROWED for that call only. Its
 * bytes (key, value, headers) belong to brook or to the upstream operator; to keep any of
 * it past the call, copy it. A record a callback produces (a map's output, an emitted
 * record) may point at: bytes of the input record, static or user-owned memory that stays
 * unchanged until the runtime is freed, or memory from brook_ctx_alloc(), which lives until
 * the current batch has passed through the whole pipeline. */
#ifndef BROOK_RECORD_H
#define BROOK_RECORD_H

#include <brook/export.h>

#include <stddef.h>

#include <brook/timestamp.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_header {
  const char *name;  /* NUL-terminated */
  const void *value; /* may be NULL when value_len is 0 */
  size_t value_len;
} brook_header_t;

typedef struct brook_record {
  const void *key; /* NULL for "no key" */
  size_t key_len;
  const void *value; /* NULL for a tombstone / empty value */
  size_t value_len;
  brook_time_t timestamp; /* event time in ms since the epoch (see timestamp.h) */
  const brook_header_t *headers;
  size_t header_count;
} brook_record_t;

/* The first header named `name` (exact match), or NULL. */
BROOK_API const brook_header_t *brook_record_header(const brook_record_t *rec, const char *name);

#ifdef __cplusplus
}
#endif
#endif
