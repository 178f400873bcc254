/* The built-in serdes: bytes, utf8, string, int32, int64 and double, written into a caller's
 * table by its version (brook_serde_builtin), and the UTF-8 validator they share. Their
 * callbacks run per record: no allocation but the batch arena. */
#include <stdint.h>
#include <string.h>

#include "serde/serde.h"

/* ---- UTF-8 ---- */

int bk_utf8_valid(const unsigned char *s, size_t len, size_t *bad) {
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
      goto invalid;
    }
    if (len - i < n)
      goto invalid;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        goto invalid;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      goto invalid;
    i += n;
  }
  return 1;
invalid:
  if (bad)
    *bad = i;
  return 0;
}

/* ---- callbacks ---- */

static brook_err_t bytes_pass(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                              size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)ctx, (void)in, (void)len, (void)out, (void)out_len, (void)f, (void)s;
  return BROOK_OK; /* *out / *out_len already are the input */
}

static brook_err_t utf8_check(const void *in, size_t len, brook_serde_failure_t *f,
                              brook_err_t err) {
  size_t bad;
  if (bk_utf8_valid(in, len, &bad))
    return BROOK_OK;
  brook_serde_fail(f, NULL, "not valid UTF-8 at byte %zu of %zu", bad, len);
  return err;
}

static brook_err_t utf8_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                             size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)ctx, (void)out, (void)out_len, (void)s;
  return utf8_check(in, len, f, BROOK_ERR_CORRUPT);
}

static brook_err_t utf8_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                              size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)ctx, (void)out, (void)out_len, (void)s;
  return utf8_check(in, len, f, BROOK_ERR_INVALID_ARG);
}

static brook_err_t string_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)s;
  brook_err_t err = utf8_check(in, len, f, BROOK_ERR_CORRUPT);
  if (err < 0)
    return err;
  const char *nul = len ? memchr(in, '\0', len) : NULL;
  if (nul) {
    brook_serde_fail(f, NULL, "text contains a NUL byte at %zu", (size_t)(nul - (const char *)in));
    return BROOK_ERR_CORRUPT;
  }
  char *c = brook_ctx_alloc(ctx, len + 1);
  if (!c)
    return BROOK_ERR_NOMEM;
  if (len)
    memcpy(c, in, len);
  c[len] = '\0';
  *out = c;
  *out_len = len;
  return BROOK_OK;
}

static brook_err_t string_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                                size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)ctx, (void)out, (void)s;
  if (len && ((const char *)in)[len - 1] == '\0')
    len--; /* a C string whose value_len counts its NUL */
  brook_err_t err = utf8_check(in, len, f, BROOK_ERR_INVALID_ARG);
  *out_len = len;
  return err;
}

static uint64_t load_be(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

static void store_be(unsigned char *p, size_t n, uint64_t v) {
  for (size_t i = n; i-- > 0; v >>= 8)
    p[i] = (unsigned char)v;
}

/* Fixed-size numbers: `n` bytes big-endian on the wire, the native type in the record. Both
 * ways, the input must be exactly n bytes (a native value in the record is n bytes too). */
static brook_err_t number_convert(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                                  size_t *out_len, brook_serde_failure_t *f, size_t n,
                                  const char *what, int read) {
  if (len != n) {
    brook_serde_fail(f, NULL, "%s %s needs %zu bytes, got %zu", what[0] == 'i' ? "an" : "a", what,
                     n, len);
    return read ? BROOK_ERR_CORRUPT : BROOK_ERR_INVALID_ARG;
  }
  unsigned char *b = brook_ctx_alloc(ctx, n);
  if (!b)
    return BROOK_ERR_NOMEM;
  if (read) {
    uint64_t v = load_be(in, n);
    if (n == 4) {
      uint32_t v32 = (uint32_t)v;
      memcpy(b, &v32, 4);
    } else {
      memcpy(b, &v, 8); /* int64_t and double: the bit pattern */
    }
  } else {
    uint64_t v;
    if (n == 4) {
      uint32_t v32;
      memcpy(&v32, in, 4);
      v = v32;
    } else {
      memcpy(&v, in, 8);
    }
    store_be(b, n, v);
  }
  *out = b;
  *out_len = n;
  return BROOK_OK;
}

static brook_err_t int32_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                              size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)s;
  return number_convert(ctx, in, len, out, out_len, f, 4, "int32", 1);
}

static brook_err_t int32_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)s;
  return number_convert(ctx, in, len, out, out_len, f, 4, "int32", 0);
}

static brook_err_t int64_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                              size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)s;
  return number_convert(ctx, in, len, out, out_len, f, 8, "int64", 1);
}

static brook_err_t int64_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)s;
  return number_convert(ctx, in, len, out, out_len, f, 8, "int64", 0);
}

static brook_err_t double_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)s;
  return number_convert(ctx, in, len, out, out_len, f, 8, "double", 1);
}

static brook_err_t double_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                                size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)s;
  return number_convert(ctx, in, len, out, out_len, f, 8, "double", 0);
}

int bk_serde_is_bytes(const brook_serde_t *serde) {
  return serde->deserialize == bytes_pass || serde->serialize == bytes_pass;
}

brook_err_t brook_serde_builtin(brook_serde_t *serde, uint32_t version,
                                brook_serde_format_t which) {
  static const brook_serde_t builtins[] = {
      [BROOK_SERDE_BYTES] = {BROOK_SERDE_VERSION, "bytes", bytes_pass, bytes_pass, NULL, NULL},
      [BROOK_SERDE_UTF8] = {BROOK_SERDE_VERSION, "utf8", utf8_read, utf8_write, NULL, NULL},
      [BROOK_SERDE_STRING] = {BROOK_SERDE_VERSION, "string", string_read, string_write, NULL, NULL},
      [BROOK_SERDE_INT32] = {BROOK_SERDE_VERSION, "int32", int32_read, int32_write, NULL, NULL},
      [BROOK_SERDE_INT64] = {BROOK_SERDE_VERSION, "int64", int64_read, int64_write, NULL, NULL},
      [BROOK_SERDE_DOUBLE] = {BROOK_SERDE_VERSION, "double", double_read, double_write, NULL, NULL},
  };
  size_t size = bk_serde_table_size(version);
  if (!serde || !size || (unsigned)which >= sizeof(builtins) / sizeof(builtins[0]))
    return BROOK_ERR_INVALID_ARG;
  brook_serde_t s = builtins[which];
  s.version = version; /* the caller's table is as large as its version */
  memcpy(serde, &s, size);
  return BROOK_OK;
}
