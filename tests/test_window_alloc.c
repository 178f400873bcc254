/* Allocation failures inside the window operators' per-key rings (hopping with many slices
 * per window, sliding) and their early-results sweeps: for k = 1, 2, ... the k-th allocation
 * fails (only it, or it and every later one) while a pipeline is built, fed out-of-order
 * records and ended. Every call succeeds or reports BROOK_ERR_NOMEM (BROOK_ERR_BUILD when a
 * builder ran out), nothing crashes and nothing leaks (the allocator's live blocks return to
 * zero; ASan checks the rest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/driver_helpers.h"
#include "support/fail_alloc.h"

#define N_RECORDS 50

static int acceptable(brook_err_t err) {
  return err == BROOK_OK || err == BROOK_ERR_NOMEM || err == BROOK_ERR_BUILD;
}

/* One run with allocation `fail_at` failing; returns whether a failure was injected. */
static int run_once(brook_window_t win, brook_emit_mode_t emit, long fail_at, int persistent) {
  fail_alloc_t fa = {.fail_at = fail_at, .persistent = persistent};
  brook_allocator_t a = fa_allocator(&fa);
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.allocator = &a;
  brook_topology_t *t = NULL;
  brook_err_t err = brook_topology_new(&t, &to);
  if (err == BROOK_OK) {
    brook_stream_t *in = brook_source_push(t, "in", NULL);
    brook_watermark_opts_t wo;
    brook_watermark_opts_init(&wo);
    wo.max_delay = 20;
    if (in)
      (void)brook_source_set_watermark(in, &wo);
    brook_window_opts_t o;
    brook_window_opts_init(&o);
    o.emit = emit;
    o.grace = 10;
    brook_aggregator_t agg = brook_agg_count();
    brook_sink_callback(brook_window_aggregate(in, &win, &agg, &o), ignore_record, NULL, NULL);
    brook_driver_t *d = NULL;
    err = brook_driver_new(&d, t, NULL);
    for (int i = 0; err == BROOK_OK && i < N_RECORDS; i++) {
      static const char *const keys[] = {"a", "bb", "c", "a-long-key-of-20-b", "e"};
      /* rising with disorder, now and then behind the watermark but in an open window */
      brook_time_t ts = i * 9 - (i % 4) * 13 - (i % 11 == 5 ? 40 : 0);
      brook_record_t rec = {.key = keys[i % 5], .key_len = strlen(keys[i % 5]), .timestamp = ts};
      err = brook_driver_push(d, "in", &rec);
    }
    if (err == BROOK_OK)
      err = brook_driver_end(d);
    brook_driver_free(d);
  }
  brook_topology_free(t);
  if (!acceptable(err))
    fail_msg("fail_at %ld%s: unexpected %s", fail_at, persistent ? " (persistent)" : "",
             brook_strerror(err));
  if (fa.live != 0)
    fail_msg("fail_at %ld%s: %ld blocks leaked", fail_at, persistent ? " (persistent)" : "",
             fa.live);
  return fa.injected > 0;
}

static void sweep(brook_window_t win, brook_emit_mode_t emit) {
  for (int persistent = 0; persistent < 2; persistent++)
    for (long k = 1; run_once(win, emit, k, persistent); k++)
      ;
}

static void test_hopping_rings(void **state) { /* 200 slices per window: per-key rings */
  (void)state;
  sweep(brook_window_hopping(200, 6), BROOK_EMIT_ON_CLOSE);
  sweep(brook_window_hopping(200, 6), BROOK_EMIT_ON_UPDATE);
}

static void test_hopping_merged(void **state) { /* 5 slices per window: merged on firing */
  (void)state;
  sweep(brook_window_hopping(50, 10), BROOK_EMIT_ON_UPDATE);
}

static void test_sliding(void **state) {
  (void)state;
  sweep(brook_window_sliding(60), BROOK_EMIT_ON_CLOSE);
  sweep(brook_window_sliding(60), BROOK_EMIT_ON_UPDATE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hopping_rings),
      cmocka_unit_test(test_hopping_merged),
      cmocka_unit_test(test_sliding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
