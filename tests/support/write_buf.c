/* A growing buffer as a snapshot's writer (see write_buf.h). */
#include "write_buf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

brook_err_t buf_write(const void *data, size_t len, void *opaque) {
  buf_t *b = opaque;
  if (++b->calls == b->fail_at)
    return BROOK_ERR_IO;
  assert_true(len > 0 && len <= 64 * 1024);
  if (b->len + len > b->cap) {
    b->cap = (b->len + len) * 2;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  memcpy(b->p + b->len, data, len);
  b->len += len;
  return BROOK_OK;
}
