/* See bg_run.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

void bg_start(bg_run_t *r, brook_topology_t *t) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.commit_interval_ms = 100; /* commits often: tests waiting on flushed or committed output */
  if (getenv("BROOK_TEST_LOG"))
    o.log = log_to_stderr;
  if (brook_runtime_new(&r->rt, t, &o) != BROOK_OK)
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  assert_int_equal(pthread_create(&r->thread, NULL, bg_run_thread, r), 0);
}

brook_err_t bg_stop(bg_run_t *r) {
  brook_runtime_stop(r->rt);
  pthread_join(r->thread, NULL);
  return r->result;
}
