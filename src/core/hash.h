/* A fast, well-mixing 64-bit hash for short byte keys (state-store keys, snapshot checksums).
 * Not cryptographic: an adversary who picks keys can make them collide. Inline because it
 * runs once per record on the keyed hot path.
 *
 * Words are read little-endian through memcpy (no unaligned-access UB), so the value is the
 * same on every platform; snapshot checksums rely on that. */
#ifndef BROOK_CORE_HASH_H
#define BROOK_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BK_HASH_K1 UINT64_C(0x9E3779B97F4A7C15)
#define BK_HASH_K2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define BK_HASH_K3 UINT64_C(0x165667B19E3779F9)

static inline uint64_t bk_hash_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t bk_hash_read64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline uint64_t bk_hash_read32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

/* Final avalanche (murmur3's fmix64): a bijection in which every input bit flips each output
 * bit with probability about 1/2. Also useful on its own to spread an integer. */
static inline uint64_t bk_hash_mix64(uint64_t x) {
  x ^= x >> 33;
  x *= UINT64_C(0xFF51AFD7ED558CCD);
  x ^= x >> 33;
  x *= UINT64_C(0xC4CEB9FE1A85EC53);
  x ^= x >> 33;
  return x;
}

/* One 8-byte lane step for keys longer than 16 bytes (the xxHash64 round). */
static inline uint64_t bk_hash_round(uint64_t acc, uint64_t word) {
  return bk_hash_rotl(acc + word * BK_HASH_K2, 31) * BK_HASH_K1;
}

/* Hashes `len` bytes at `p` (p may be NULL when len is 0). Keys of up to 8 bytes are mapped
 * injectively before the final bijective mix, so equal-length keys of <= 8 bytes never
 * collide. Longer keys are read as overlapping 8-byte words (tail included), two lanes at a
 * time. Any thread. */
static inline uint64_t bk_hash_bytes(const void *p, size_t len) {
  const unsigned char *b = p;
  uint64_t lo, hi;
  if (len <= 16) {
    if (len > 8) {
      lo = bk_hash_read64(b);
      hi = bk_hash_read64(b + len - 8);
    } else if (len >= 4) {
      lo = (bk_hash_read32(b) << 32) | bk_hash_read32(b + len - 4);
      hi = 0;
    } else if (len > 0) {
      lo = ((uint64_t)b[0] << 16) | ((uint64_t)b[len >> 1] << 8) | b[len - 1];
      hi = 0;
    } else {
      lo = hi = 0;
    }
  } else {
    uint64_t v1 = BK_HASH_K3, v2 = BK_HASH_K2 ^ (uint64_t)len;
    size_t n = len;
    while (n > 16) {
      v1 = bk_hash_round(v1, bk_hash_read64(b));
      v2 = bk_hash_round(v2, bk_hash_read64(b + 8));
      b += 16;
      n -= 16;
    }
    lo = bk_hash_round(v1, bk_hash_read64(b + n - 16));
    hi = bk_hash_round(v2, bk_hash_read64(b + n - 8));
  }
  uint64_t x = (lo ^ ((uint64_t)len * BK_HASH_K3)) * BK_HASH_K1;
  x ^= bk_hash_rotl(hi * BK_HASH_K2, 29);
  return bk_hash_mix64(x);
}

#endif
