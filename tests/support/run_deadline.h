/* Running a runtime with a deadline: brook_runtime_run on a thread of its own while the test
 * thread waits (for a push source it feeds, or just for the result), so a runtime that never
 * finishes fails its test with a clear message instead of hanging the whole file. */
#ifndef BROOK_TEST_RUN_DEADLINE_H
#define BROOK_TEST_RUN_DEADLINE_H

#include <pthread.h>
#include <stdint.h>

#include <brook/brook.h>

#include "wait.h"

typedef struct bg_run {
  brook_runtime_t *rt;
  pthread_t tid;
  brook_err_t result;
  wait_counter_t finished; /* 1 once brook_runtime_run returned */
  uint64_t started_ms, elapsed_ms;
} bg_run_t;

/* Starts brook_runtime_run(rt) on a new thread (asserts). */
void bg_run_start(bg_run_t *r, brook_runtime_t *rt);

/* Waits up to timeout_ms for the run to return and joins the thread; returns its result
 * (r->elapsed_ms says how long it ran). On timeout it asks the runtime to stop, waits up to
 * 3 s more, and fails the test either way (cmocka). */
brook_err_t bg_run_finish(bg_run_t *r, int64_t timeout_ms);

/* bg_run_start + bg_run_finish. */
brook_err_t run_with_deadline(brook_runtime_t *rt, int64_t timeout_ms, uint64_t *elapsed_ms);

#endif
