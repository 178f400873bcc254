/* A runtime run bounded by a deadline. See run_deadline.h. */
#include "run_deadline.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void *bg_main(void *arg) {
  bg_run_t *r = arg;
  r->result = brook_runtime_run(r->rt);
  r->elapsed_ms = wait_now_ms() - r->started_ms;
  wait_counter_add(&r->finished, 1);
  return NULL;
}

void bg_run_start(bg_run_t *r, brook_runtime_t *rt) {
  memset(r, 0, sizeof(*r));
  r->rt = rt;
  r->result = BROOK_OK;
  wait_counter_init(&r->finished, 0);
  r->started_ms = wait_now_ms();
  assert_int_equal(pthread_create(&r->tid, NULL, bg_main, r), 0);
}

brook_err_t bg_run_finish(bg_run_t *r, int64_t timeout_ms) {
  if (!wait_counter_wait_ge(&r->finished, 1, timeout_ms)) {
    brook_runtime_stop(r->rt);
    int stopped = wait_counter_wait_ge(&r->finished, 1, 3000);
    if (stopped)
      pthread_join(r->tid, NULL);
    fail_msg("the runtime did not finish within %lld ms (%s after brook_runtime_stop)",
             (long long)timeout_ms, stopped ? "it finished" : "still running");
  }
  pthread_join(r->tid, NULL);
  wait_counter_destroy(&r->finished);
  return r->result;
}

brook_err_t run_with_deadline(brook_runtime_t *rt, int64_t timeout_ms, uint64_t *elapsed_ms) {
  bg_run_t r;
  bg_run_start(&r, rt);
  brook_err_t err = bg_run_finish(&r, timeout_ms);
  if (elapsed_ms)
    *elapsed_ms = r.elapsed_ms;
  return err;
}
