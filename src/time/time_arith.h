/* Overflow-free arithmetic on brook_time_t. Times span the whole int64_t range (a producer may
 * send BROOK_TIME_MIN or BROOK_TIME_MAX), so a plain `a + b` or `a - b` on two times can
 * overflow, which is undefined behaviour in C and in practice wraps to a time on the other side
 * of the range. These helpers saturate at the ends of the range, or measure distances as
 * unsigned numbers, which are exact for any two times. Any thread. */
#ifndef BROOK_TIME_TIME_ARITH_H
#define BROOK_TIME_TIME_ARITH_H

#include <stdint.h>

#include <brook/timestamp.h>

/* a + b, clamped to [BROOK_TIME_MIN, BROOK_TIME_MAX]. */
static inline brook_time_t bk_time_add_sat(brook_time_t a, brook_time_t b) {
  if (b > 0 && a > BROOK_TIME_MAX - b)
    return BROOK_TIME_MAX;
  if (b < 0 && a < BROOK_TIME_MIN - b)
    return BROOK_TIME_MIN;
  return a + b;
}

/* a - b, clamped to [BROOK_TIME_MIN, BROOK_TIME_MAX]. */
static inline brook_time_t bk_time_sub_sat(brook_time_t a, brook_time_t b) {
  if (b < 0 && a > BROOK_TIME_MAX + b)
    return BROOK_TIME_MAX;
  if (b > 0 && a < BROOK_TIME_MIN + b)
    return BROOK_TIME_MIN;
  return a - b;
}

/* The distance from `from` to `to` (to >= from), exact: up to 2^64 - 1 ms. */
static inline uint64_t bk_time_span(brook_time_t from, brook_time_t to) {
  return (uint64_t)to - (uint64_t)from;
}

/* 1 if |a - b| < d (d >= 0), computed without overflow. */
static inline int bk_time_within(brook_time_t a, brook_time_t b, brook_time_t d) {
  uint64_t span = a >= b ? bk_time_span(b, a) : bk_time_span(a, b);
  return span < (uint64_t)d;
}

#endif
