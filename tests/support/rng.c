/* See rng.h. */
#include "rng.h"

uint64_t rng_next(rng_t *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int64_t rng_range(rng_t *r, int64_t lo, int64_t hi) {
  uint64_t span = (uint64_t)hi - (uint64_t)lo; /* exact, even for the whole range */
  uint64_t x = span == UINT64_MAX ? rng_next(r) : rng_next(r) % (span + 1);
  return (int64_t)((uint64_t)lo + x);
}
