/* A brook_write_fn target for snapshot tests: appends every piece to a growing buffer, and
 * can fail the fail_at-th write (1-based; 0 = never) with BROOK_ERR_IO.
 *
 *   buf_t b = {0};
 *   brook_store_snapshot(s, buf_write, &b);  ...  free(b.p);
 */
#ifndef BROOK_TEST_WRITE_BUF_H
#define BROOK_TEST_WRITE_BUF_H

#include <stddef.h>

#include <brook/error.h>

typedef struct buf {
  unsigned char *p;
  size_t len, cap;
  int calls, fail_at;
} buf_t;

/* Appends (a snapshot writes at most 64 KiB at a time: checked). */
brook_err_t buf_write(const void *data, size_t len, void *opaque);

#endif
