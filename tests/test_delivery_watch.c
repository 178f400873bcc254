/* The delivery epochs' watch (runtime/delivery.h), which revocations wait on: on_passed runs
 * exactly once, when every write of an epoch <= the watched one is done, whatever order the
 * acknowledgements come in, and never for writes of later epochs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "runtime/delivery.h"

static void count(void *opaque) { (*(int *)opaque)++; }

#include "core/alloc.h"

/* Deliveries whose watch counts into *fired. */
static void watched(bk_delivery_t *d, int *fired) {
  bk_delivery_init(d, bk_default_allocator());
  *fired = 0;
  d->on_passed = count;
  d->on_passed_opaque = fired;
}

static void test_fires_once_when_the_point_is_passed(void **state) {
  (void)state;
  bk_delivery_t d;
  int fired;
  watched(&d, &fired);
  uint64_t e1 = bk_delivery_add(&d), e1b = bk_delivery_add(&d); /* epoch 1: two writes */
  bk_delivery_next_epoch(&d);
  uint64_t e2 = bk_delivery_add(&d); /* epoch 2 */
  bk_delivery_next_epoch(&d);
  uint64_t e3 = bk_delivery_add(&d); /* epoch 3: after the point */
  assert_int_equal(e1, 1);
  assert_int_equal(e2, 2);
  d.watch = 2;
  bk_delivery_done(&d, e2); /* out of order: epoch 1 still pending */
  assert_int_equal(fired, 0);
  bk_delivery_done(&d, e1);
  assert_int_equal(fired, 0);
  bk_delivery_done(&d, e1b); /* the oldest pending is now 3 */
  assert_int_equal(fired, 1);
  assert_int_equal(d.watch, 0); /* cleared: once */
  assert_int_equal(bk_delivery_oldest_pending(&d), 3);
  bk_delivery_done(&d, e3);
  assert_int_equal(fired, 1);
  bk_delivery_free(&d);
}

static void test_later_epochs_do_not_hold_it(void **state) {
  (void)state;
  bk_delivery_t d;
  int fired;
  watched(&d, &fired);
  uint64_t e1 = bk_delivery_add(&d);
  bk_delivery_next_epoch(&d);
  for (int i = 0; i < 100; i++) /* a stream of later writes keeps total above 0 */
    bk_delivery_add(&d);
  d.watch = 1;
  bk_delivery_done(&d, e1);
  assert_int_equal(fired, 1);
  assert_int_equal(d.total, 100);
  bk_delivery_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fires_once_when_the_point_is_passed),
      cmocka_unit_test(test_later_epochs_do_not_hold_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
