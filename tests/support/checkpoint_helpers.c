/* See checkpoint_helpers.h. */
#include "checkpoint_helpers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

brook_err_t byte_buf_write(const void *data, size_t len, void *opaque) {
  byte_buf_t *b = opaque;
  if (b->len + len > b->cap) {
    size_t cap = (b->len + len) * 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
      return BROOK_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return BROOK_OK;
}

void byte_buf_free(byte_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

brook_err_t emit_textf(brook_ctx_t *ctx, const void *key, size_t key_len, brook_time_t ts,
                       const char *fmt, ...) {
  char *v = brook_ctx_alloc(ctx, 128);
  unsigned char *k = brook_ctx_alloc(ctx, key_len + 1);
  if (!v || !k)
    return BROOK_ERR_NOMEM;
  if (key_len)
    memcpy(k, key, key_len);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(v, 128, fmt, ap);
  va_end(ap);
  brook_record_t r = {0};
  r.key = k;
  r.key_len = key_len;
  r.value = v;
  r.value_len = n < 0 ? 0 : n >= 128 ? 127 : (size_t)n;
  r.timestamp = ts;
  return brook_emit(ctx, &r);
}
