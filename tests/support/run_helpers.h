/* Small helpers for tests that drive a runtime: run it on a thread of its own, read its
 * stats. */
#ifndef BROOK_TEST_RUN_HELPERS_H
#define BROOK_TEST_RUN_HELPERS_H

#include <brook/brook.h>

/* brook_runtime_run(rt) on a pthread: pthread_create(&tid, NULL, run_thread, &runner). */
typedef struct runner {
  brook_runtime_t *rt;
  brook_err_t result;
} runner_t;

void *run_thread(void *arg);

/* The runtime's stats (asserts the call succeeds). */
brook_runtime_stats_t get_stats(brook_runtime_t *rt);

#endif
