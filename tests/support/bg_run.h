/* A runtime on a thread of its own for the length of a test: built from a topology, run with
 * brook_runtime_run, stopped and joined. BROOK_TEST_LOG=1 in the environment sends the
 * pipeline's log to stderr. Cmocka assertions. */
#ifndef BROOK_TEST_BG_RUN_H
#define BROOK_TEST_BG_RUN_H

#include <pthread.h>

#include <brook/brook.h>

typedef struct bg_run {
  brook_runtime_t *rt;
  pthread_t thread;
  brook_err_t result;
} bg_run_t;

/* The thread function: brook_runtime_run(r->rt) into r->result (for a runtime made by the
 * test itself: pthread_create(&r->thread, NULL, bg_run_thread, r)). */
void *bg_run_thread(void *r);

/* Creates the runtime for `t` and starts running it. */
void bg_start(bg_run_t *r, brook_topology_t *t);

/* The same with options `opts` (copied; BROOK_TEST_LOG=1 sets a logger if it has none). */
void bg_start_opts(bg_run_t *r, brook_topology_t *t, const brook_runtime_opts_t *opts);

/* How long bg_stop waits: the longest stop a test may see (kafka_leave.c: 10 s for the final
 * offset commit, 10 s for the close, plus a join's max.poll.interval.ms) with room to spare. */
#define BG_STOP_TIMEOUT_S 90

/* Stops the pipeline and waits for it (at most BG_STOP_TIMEOUT_S, else the test fails);
 * returns what run returned. The runtime stays for its
 * stats: brook_runtime_free(r->rt) afterwards. */
brook_err_t bg_stop(bg_run_t *r);

#endif
