/* The single-producer / single-consumer ring between workers (runtime/spsc_ring.h): empty,
 * full, wrap-around, and a producer and a consumer thread passing a million items in order
 * with the consumer woken by uv_async (run under ThreadSanitizer with the `threads` label). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include <brook/alloc.h>

#include "core/alloc.h"
#include "runtime/spsc_ring.h"

static const brook_allocator_t *alloc(void) { return bk_default_allocator(); }

static void test_empty_full_wrap(void **state) {
  (void)state;
  bk_spsc_t r;
  assert_int_equal(bk_spsc_init(&r, alloc(), 3), BROOK_OK); /* rounded up to 4 */
  assert_null(bk_spsc_pop(&r));
  uintptr_t next_in = 1, next_out = 1;
  for (int round = 0; round < 10; round++) { /* head and tail wrap many times */
    while (bk_spsc_push(&r, (void *)next_in) == 0)
      next_in++;
    assert_int_equal(bk_spsc_count(&r), 4);
    assert_int_equal(bk_spsc_push(&r, (void *)next_in), -1); /* full: nothing pushed */
    for (int k = 0; k < 3; k++)
      assert_int_equal((uintptr_t)bk_spsc_pop(&r), next_out++);
    assert_int_equal(bk_spsc_count(&r), 1);
  }
  while (bk_spsc_pop(&r))
    next_out++;
  assert_int_equal(next_out, next_in);
  assert_null(bk_spsc_pop(&r));
  bk_spsc_free(&r, alloc());
}

#define ITEMS 1000000u

typedef struct pipe_test {
  bk_spsc_t ring;
  uv_loop_t loop;
  uv_async_t wake;    /* the consumer's: an item was pushed */
  uv_sem_t space;     /* the producer waits here when the ring is full */
  atomic_int want;    /* the producer is waiting for space */
  uintptr_t next_out; /* consumer only */
  uint64_t wakeups;   /* consumer only */
} pipe_test_t;

static void on_wake(uv_async_t *h) {
  pipe_test_t *p = h->data;
  p->wakeups++;
  void *item;
  int popped = 0;
  while ((item = bk_spsc_pop(&p->ring))) {
    assert_int_equal((uintptr_t)item, p->next_out); /* in order, none lost */
    p->next_out++;
    popped = 1;
  }
  if (popped && atomic_exchange(&p->want, 0))
    uv_sem_post(&p->space);
  if (p->next_out == ITEMS + 1)
    uv_close((uv_handle_t *)h, NULL);
}

static void producer(void *arg) {
  pipe_test_t *p = arg;
  for (uintptr_t i = 1; i <= ITEMS; i++) {
    while (bk_spsc_push(&p->ring, (void *)i) != 0) { /* full: backpressure, then retry */
      atomic_store(&p->want, 1);
      uv_async_send(&p->wake);
      if (bk_spsc_count(&p->ring) > 0) /* still full after announcing: wait for the pop */
        uv_sem_wait(&p->space);
    }
    if ((i & 255) == 0)
      uv_async_send(&p->wake);
  }
  uv_async_send(&p->wake);
}

static void test_threads_in_order_with_wakeups(void **state) {
  (void)state;
  static pipe_test_t p;
  assert_int_equal(bk_spsc_init(&p.ring, alloc(), 64), BROOK_OK);
  assert_int_equal(uv_loop_init(&p.loop), 0);
  assert_int_equal(uv_async_init(&p.loop, &p.wake, on_wake), 0);
  assert_int_equal(uv_sem_init(&p.space, 0), 0);
  atomic_init(&p.want, 0);
  p.wake.data = &p;
  p.next_out = 1;
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, producer, &p), 0);
  uv_run(&p.loop, UV_RUN_DEFAULT);
  uv_thread_join(&t);
  assert_int_equal(p.next_out, ITEMS + 1);
  assert_true(p.wakeups > 1);
  assert_int_equal(uv_loop_close(&p.loop), 0);
  uv_sem_destroy(&p.space);
  bk_spsc_free(&p.ring, alloc());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_full_wrap),
      cmocka_unit_test(test_threads_in_order_with_wakeups),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
