/* See bg_run.h. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "bg_run.h"

void *bg_run_thread(void *p) {
  bg_run_t *r = p;
  r->result = brook_runtime_run(r->rt);
  return NULL;
}

static void log_to_stderr(int level, const char *msg, void *opaque) {
  (void)opaque;
  fprintf(stderr, "[brook %d] %s\n", level, msg);
}

void bg_start_opts(bg_run_t *r, brook_topology_t *t, const brook_runtime_opts_t *opts) {
  brook_runtime_opts_t o = *opts;
  if (getenv("BROOK_TEST_LOG") && !o.log)
    o.log = log_to_stderr;
  if (brook_runtime_new(&r->rt, t, &o) != BROOK_OK)
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  assert_int_equal(pthread_create(&r->thread, NULL, bg_run_thread, r), 0);
}

void bg_start(bg_run_t *r, brook_topology_t *t) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.commit_interval_ms = 100; /* commits often: tests waiting on flushed or committed output */
  bg_start_opts(r, t, &o);
}

brook_err_t bg_stop(bg_run_t *r) {
  brook_runtime_stop(r->rt);
  /* A stop that never ends fails its test with this message, not the whole file at ctest's
   * timeout without one. */
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += BG_STOP_TIMEOUT_S;
  if (pthread_timedjoin_np(r->thread, NULL, &deadline) != 0)
    fail_msg("the runtime did not finish within %d s of brook_runtime_stop", BG_STOP_TIMEOUT_S);
  return r->result;
}
