/* Built-in (de)serialisers. See kafka_serde.h. Loop thread. */
#include "kafka_serde.h"

#include <stdint.h>
#include <string.h>

int bk_kafka_serde_valid(const brook_kafka_serde_t *serde) {
  switch (serde->format) {
  case BROOK_KAFKA_BYTES:
  case BROOK_KAFKA_STRING:
  case BROOK_KAFKA_INT64:
    return 1;
  case BROOK_KAFKA_CUSTOM:
    return serde->fn != NULL;
  }
  return 0;
}

const char *bk_kafka_serde_problem(const brook_kafka_serde_t *serde, const char *which,
                                   bk_errmsg_t *why) {
  if (bk_kafka_serde_valid(serde))
    return NULL;
  if (serde->format == BROOK_KAFKA_CUSTOM)
    bk_errmsg_set(why, "%s: format CUSTOM needs fn", which);
  else
    bk_errmsg_set(why, "%s: unknown format %d", which, (int)serde->format);
  return why->text;
}

int bk_utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (len - i < n)
      return 0;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += n;
  }
  return 1;
}

static uint64_t load_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static void store_be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

brook_err_t bk_kafka_deserialize(brook_ctx_t *ctx, const brook_kafka_serde_t *serde, const void *in,
                                 size_t len, const void **out, size_t *out_len) {
  switch (serde->format) {
  case BROOK_KAFKA_BYTES:
    break;
  case BROOK_KAFKA_STRING:
    if (!bk_utf8_valid(in, len)) {
      brook_ctx_set_error(ctx, "not valid UTF-8 (%zu bytes)", len);
      return BROOK_ERR_CORRUPT;
    }
    break;
  case BROOK_KAFKA_INT64: {
    if (len != 8) {
      brook_ctx_set_error(ctx, "an int64 needs 8 bytes, got %zu", len);
      return BROOK_ERR_CORRUPT;
    }
    int64_t *v = brook_ctx_alloc(ctx, sizeof(*v));
    if (!v)
      return BROOK_ERR_NOMEM;
    *v = (int64_t)load_be64(in);
    *out = v;
    *out_len = sizeof(*v);
    return BROOK_OK;
  }
  case BROOK_KAFKA_CUSTOM:
    return serde->fn(ctx, in, len, out, out_len, serde->opaque);
  }
  *out = in;
  *out_len = len;
  return BROOK_OK;
}

brook_err_t bk_kafka_serialize(brook_ctx_t *ctx, const brook_kafka_serde_t *serde, const void *in,
                               size_t len, const void **out, size_t *out_len) {
  switch (serde->format) {
  case BROOK_KAFKA_BYTES:
  case BROOK_KAFKA_STRING:
    break;
  case BROOK_KAFKA_INT64: {
    if (len != 8) {
      brook_ctx_set_error(ctx, "an int64 needs 8 bytes, got %zu", len);
      return BROOK_ERR_INVALID_ARG;
    }
    unsigned char *b = brook_ctx_alloc(ctx, 8);
    if (!b)
      return BROOK_ERR_NOMEM;
    int64_t v;
    memcpy(&v, in, sizeof(v));
    store_be64(b, (uint64_t)v);
    *out = b;
    *out_len = 8;
    return BROOK_OK;
  }
  case BROOK_KAFKA_CUSTOM:
    return serde->fn(ctx, in, len, out, out_len, serde->opaque);
  }
  *out = in;
  *out_len = len;
  return BROOK_OK;
}
