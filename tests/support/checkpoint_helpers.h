/* Test helpers for checkpoints and timers through the test driver: a growable byte buffer
 * that is a brook_write_fn target, and emitting a formatted text record from an operator. */
#ifndef BROOK_TEST_CHECKPOINT_HELPERS_H
#define BROOK_TEST_CHECKPOINT_HELPERS_H

#include <stddef.h>

#include <brook/brook.h>

typedef struct byte_buf {
  unsigned char *data;
  size_t len, cap;
} byte_buf_t;

/* A brook_write_fn appending to the byte_buf_t `opaque` (BROOK_ERR_NOMEM if realloc fails). */
brook_err_t byte_buf_write(const void *data, size_t len, void *opaque);

/* Frees the buffer's bytes and empties it. */
void byte_buf_free(byte_buf_t *b);

/* Emits a record with a copy of `key` (a timer's key is only borrowed), timestamp `ts` and
 * the printf-formatted text (up to 127 bytes) as its value, from an operator callback. */
brook_err_t emit_textf(brook_ctx_t *ctx, const void *key, size_t key_len, brook_time_t ts,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
