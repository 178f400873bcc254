/* A small seeded random number generator for property and fuzz tests (splitmix64: the same
 * sequence on every platform, so a printed seed replays a case anywhere). */
#ifndef BROOK_TEST_RNG_H
#define BROOK_TEST_RNG_H

#include <stdint.h>

typedef struct rng {
  uint64_t s;
} rng_t;

/* The next 64 random bits. */
uint64_t rng_next(rng_t *r);

/* Uniform in [lo, hi] (any lo <= hi of int64_t, the whole range included). */
int64_t rng_range(rng_t *r, int64_t lo, int64_t hi);

#endif
