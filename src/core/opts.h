/* Versioned option structs: every public options struct starts with `uint32_t struct_size`.
 * A caller compiled against an older, smaller struct passes its own size; fields it does
 * not know keep their defaults. */
#ifndef BROOK_CORE_OPTS_H
#define BROOK_CORE_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Copies the caller's `src` (may be NULL: keep defaults) over the defaults in `dst`, which
 * is `dst_size` bytes. Returns 0, or -1 if src's struct_size is out of range. */
static inline int bk_opts_copy(void *dst, size_t dst_size, const void *src) {
  if (!src)
    return 0;
  uint32_t size;
  memcpy(&size, src, sizeof(size));
  if (size < sizeof(uint32_t) || size > dst_size)
    return -1;
  memcpy(dst, src, size);
  return 0;
}

#endif
