/* Saturating arithmetic on brook_time_t: event times come from producers and may be anything
 * from BROOK_TIME_MIN to BROOK_TIME_MAX, so a watermark minus a delay, a clock plus a skew or an
 * idle deadline must clamp at the ends instead of overflowing (undefined behaviour in C). */
#ifndef BROOK_TIME_TIME_MATH_H
#define BROOK_TIME_TIME_MATH_H

#include <brook/timestamp.h>

/* a + b, clamped to [BROOK_TIME_MIN, BROOK_TIME_MAX]. Any signs. */
static inline brook_time_t bk_time_add(brook_time_t a, brook_time_t b) {
  brook_time_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? BROOK_TIME_MAX : BROOK_TIME_MIN;
  return r;
}

/* a - b, clamped to [BROOK_TIME_MIN, BROOK_TIME_MAX]. Any signs. */
static inline brook_time_t bk_time_sub(brook_time_t a, brook_time_t b) {
  brook_time_t r;
  if (__builtin_sub_overflow(a, b, &r))
    return b < 0 ? BROOK_TIME_MAX : BROOK_TIME_MIN;
  return r;
}

#endif
