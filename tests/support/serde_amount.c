/* See serde_amount.h. */
#include "serde_amount.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void serde_calls_add(serde_calls_t *calls, const char *what) {
  size_t used = strlen(calls->log);
  snprintf(calls->log + used, sizeof(calls->log) - used, "%s%s", used ? "," : "", what);
}

brook_err_t serde_amount_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                              size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  if (s->opaque)
    serde_calls_add(s->opaque, "amount.read");
  const char *p = in;
  if (len < 7 || memcmp(p, "amount=", 7) != 0) {
    brook_serde_fail(f, NULL, "expected amount=<number>");
    return BROOK_ERR_CORRUPT;
  }
  if (len == 7) {
    brook_serde_fail(f, "amount", "empty");
    return BROOK_ERR_CORRUPT;
  }
  int64_t v = 0;
  for (size_t i = 7; i < len; i++) {
    if (p[i] < '0' || p[i] > '9') {
      brook_serde_fail(f, "amount", "not a number: '%.*s'", (int)(len - 7), p + 7);
      return BROOK_ERR_CORRUPT;
    }
    v = v * 10 + (p[i] - '0');
  }
  int64_t *o = brook_ctx_alloc(ctx, sizeof(*o));
  if (!o)
    return BROOK_ERR_NOMEM;
  *o = v;
  *out = o;
  *out_len = sizeof(*o);
  return BROOK_OK;
}

brook_err_t serde_amount_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  if (s->opaque)
    serde_calls_add(s->opaque, "amount.write");
  int64_t v;
  if (len != sizeof(v)) {
    brook_serde_fail(f, "amount", "a record value of %zu bytes is no int64_t", len);
    return BROOK_ERR_INVALID_ARG;
  }
  memcpy(&v, in, sizeof(v));
  char *text = brook_ctx_alloc(ctx, 32);
  if (!text)
    return BROOK_ERR_NOMEM;
  *out_len = (size_t)snprintf(text, 32, "amount=%" PRId64, v);
  *out = text;
  return BROOK_OK;
}

brook_serde_t serde_amount(serde_calls_t *calls) {
  brook_serde_t s = {BROOK_SERDE_VERSION, "amount", serde_amount_read,
                     serde_amount_write,  calls,    NULL};
  return s;
}
