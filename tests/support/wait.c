/* Deadline-bounded waits for tests: counters with condvars, predicate polling, and turning a
 * uv loop until a condition holds. See wait.h. */
#include "wait.h"

#include <time.h>

uint64_t wait_now_ms(void) { return uv_hrtime() / 1000000u; }

void wait_counter_init(wait_counter_t *c, int64_t value) {
  uv_mutex_init(&c->mu);
  uv_cond_init(&c->cv);
  c->value = value;
}

void wait_counter_destroy(wait_counter_t *c) {
  uv_cond_destroy(&c->cv);
  uv_mutex_destroy(&c->mu);
}

void wait_counter_add(wait_counter_t *c, int64_t n) {
  uv_mutex_lock(&c->mu);
  c->value += n;
  uv_cond_broadcast(&c->cv);
  uv_mutex_unlock(&c->mu);
}

int64_t wait_counter_get(wait_counter_t *c) {
  uv_mutex_lock(&c->mu);
  int64_t v = c->value;
  uv_mutex_unlock(&c->mu);
  return v;
}

int wait_counter_wait_ge(wait_counter_t *c, int64_t target, int64_t timeout_ms) {
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
  uv_mutex_lock(&c->mu);
  while (c->value < target) {
    uint64_t now = uv_hrtime();
    if (now >= deadline)
      break;
    uv_cond_timedwait(&c->cv, &c->mu, deadline - now);
  }
  int reached = c->value >= target;
  uv_mutex_unlock(&c->mu);
  return reached;
}

int wait_until(wait_pred_fn pred, void *arg, int64_t timeout_ms) {
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    if (pred(arg))
      return 1;
    if (uv_hrtime() >= deadline)
      return pred(arg) ? 1 : 0;
    struct timespec ts = {0, 200 * 1000};
    nanosleep(&ts, NULL);
  }
}

static void tick(uv_timer_t *t) { (void)t; }

int wait_loop_until(uv_loop_t *loop, wait_pred_fn pred, void *arg, int64_t timeout_ms) {
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
  uv_timer_t timer;
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, tick, 1, 1);
  int held = pred(arg);
  while (!held && uv_hrtime() < deadline) {
    uv_run(loop, UV_RUN_ONCE);
    held = pred(arg);
  }
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* runs the close callback: the timer is gone on return */
  return held;
}
