/* Waiting in tests without "sleep and hope": every wait is on a condition and has a
 * deadline, so a test either sees the condition or fails fast with a clear timeout.
 *
 *   wait_counter_t  a counter guarded by a mutex + condvar: threads add to it, another
 *                   thread waits until it reaches a value (also a gate: wait for >= 1).
 *   wait_until()    polls a predicate (for state that has no condvar to signal).
 *   wait_loop_until() turns a uv loop until a predicate holds (loop-thread tests). */
#ifndef BROOK_TEST_WAIT_H
#define BROOK_TEST_WAIT_H

#include <stdint.h>

#include <uv.h>

/* Milliseconds on a monotonic clock (uv_hrtime). */
uint64_t wait_now_ms(void);

typedef struct wait_counter {
  uv_mutex_t mu;
  uv_cond_t cv;
  int64_t value;
} wait_counter_t;

void wait_counter_init(wait_counter_t *c, int64_t value);
void wait_counter_destroy(wait_counter_t *c);
/* Adds `n` and wakes every waiter. Any thread (not async-signal-safe). */
void wait_counter_add(wait_counter_t *c, int64_t n);
int64_t wait_counter_get(wait_counter_t *c);
/* Waits until value >= target or `timeout_ms` passes. Returns 1 if reached, else 0. */
int wait_counter_wait_ge(wait_counter_t *c, int64_t target, int64_t timeout_ms);

/* Returns nonzero when the awaited condition holds. */
typedef int (*wait_pred_fn)(void *arg);

/* Checks `pred` about every 200 us until it holds or `timeout_ms` passes. Returns 1 if it
 * held. For state another thread changes without signalling. */
int wait_until(wait_pred_fn pred, void *arg, int64_t timeout_ms);

/* Runs `loop` (UV_RUN_ONCE, with a 1 ms helper timer so a turn never blocks for long) until
 * `pred` holds or `timeout_ms` passes; the helper timer is closed again before returning.
 * Returns 1 if it held. Loop thread only. */
int wait_loop_until(uv_loop_t *loop, wait_pred_fn pred, void *arg, int64_t timeout_ms);

#endif
