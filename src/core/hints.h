/* Branch hints for hot loops: the common case of a per-record test (a callback succeeded). */
#ifndef BROOK_CORE_HINTS_H
#define BROOK_CORE_HINTS_H

#define BK_LIKELY(x) __builtin_expect(!!(x), 1)
#define BK_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif
