/* The order of keys wherever brook orders them (timers, window results): bytewise, a key
 * that is a prefix of another first. The 8-byte prefix decides most comparisons with one
 * integer compare. */
#ifndef BROOK_CORE_KEY_ORDER_H
#define BROOK_CORE_KEY_ORDER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The first 8 bytes of the key, big-endian, zero padded: a < b as prefixes implies a < b as
 * keys; equal prefixes need bk_key_compare. */
static inline uint64_t bk_key_prefix(const void *key, size_t len) {
  const unsigned char *k = key;
  uint64_t p = 0;
  for (size_t i = 0; i < 8; i++)
    p = (p << 8) | (i < len ? k[i] : 0);
  return p;
}

/* <0, 0, >0 as a sorts before, with, after b. Keys may be NULL when their length is 0. */
static inline int bk_key_compare(const void *a, size_t la, const void *b, size_t lb) {
  size_t n = la < lb ? la : lb;
  int c = n ? memcmp(a, b, n) : 0;
  if (c)
    return c;
  return la < lb ? -1 : la > lb;
}

#endif
