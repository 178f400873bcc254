/* Attaching a runtime to the application's loop (brook_runtime_start): the application's
 * own handles keep firing on time while a pipeline runs flat out on the same loop, stopping
 * and freeing from the application's callbacks, freeing while attached, and state errors.
 * Every test owns its loop and ends with uv_loop_close() == 0: brook left nothing behind. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <uv.h>

#include "wait.h"

/* ---- an unbounded generator -> map -> counting sink ---- */

typedef struct pipeline {
  uint64_t made;
  uint64_t limit; /* generator limit; 0 = unbounded */
  uint64_t mapped;
  uint64_t sunk;
  uint64_t fail_at;          /* the sink fails on this record (1-based); 0 = never */
  wait_counter_t *milestone; /* if set, signalled once the sink has seen 10000 records */
  int done_calls;
  brook_err_t done_status;
  int free_in_done;
  brook_runtime_t *rt;
} pipeline_t;

static brook_err_t gen_numbers(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  pipeline_t *p = opaque;
  uint64_t *v = brook_ctx_alloc(ctx, sizeof(*v));
  if (!v)
    return BROOK_ERR_NOMEM;
  *v = p->made++;
  out->value = v;
  out->value_len = sizeof(*v);
  return BROOK_OK;
}

static brook_err_t map_double(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  pipeline_t *p = opaque;
  uint64_t *v = brook_ctx_alloc(ctx, sizeof(*v));
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, rec->value, sizeof(*v));
  *v *= 2;
  rec->value = v;
  p->mapped++;
  return BROOK_OK;
}

static brook_err_t sink_count(const brook_record_t *rec, void *opaque) {
  (void)rec;
  pipeline_t *p = opaque;
  p->sunk++;
  if (p->milestone && p->sunk == 10000)
    wait_counter_add(p->milestone, 1);
  if (p->fail_at && p->sunk == p->fail_at)
    return BROOK_ERR_USER;
  return BROOK_OK;
}

static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  pipeline_t *p = opaque;
  p->done_calls++;
  p->done_status = status;
  if (p->free_in_done) {
    brook_runtime_free(rt);
    p->rt = NULL;
  }
}

static brook_runtime_t *make_pipeline(pipeline_t *p, uint64_t slice_us) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = p->limit;
  brook_stream_t *s = brook_source_generator(t, "numbers", gen_numbers, p, &go);
  s = brook_map(s, map_double, p);
  assert_int_equal(brook_sink_callback(s, sink_count, NULL, p), BROOK_OK);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (slice_us)
    o.slice_us = slice_us;
  o.on_done = on_done;
  o.on_done_opaque = p;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_topology_free(t);
  p->rt = rt;
  return rt;
}

/* ---- the application's timer keeps its rhythm ---- */

#define TICK_MS 10
#define RUN_MS 1000
/* Gaps are measured in the loop thread's CPU time, not wall time: on a loaded machine (CI runs
 * tests two at a time on 2 cores) the scheduler can preempt the whole process for tens of
 * milliseconds, which says nothing about whether brook yields. Measured on a 2-core machine
 * under ASan: CPU-time gaps stay within ~10-13 ms. With a slice that never yields
 * (slice_us = 2 s) the run gets one fire and a CPU-time gap of ~1200 ms. */
#define MAX_GAP_MS 60

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
    return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct ticker {
  uv_timer_t timer;
  pipeline_t *p;
  uint64_t start_ns, last_ns, last_cpu_ns, max_gap_ns;
  int fires;
  uint64_t sunk_at_stop;
} ticker_t;

static void on_tick(uv_timer_t *h) {
  ticker_t *tk = h->data;
  uint64_t now = uv_hrtime();
  uint64_t cpu = thread_cpu_ns();
  uint64_t gap = cpu - tk->last_cpu_ns;
  if (gap > tk->max_gap_ns)
    tk->max_gap_ns = gap;
  tk->last_ns = now;
  tk->last_cpu_ns = cpu;
  tk->fires++;
  if (now - tk->start_ns >= (uint64_t)RUN_MS * 1000000u) {
    tk->sunk_at_stop = tk->p->sunk;
    brook_runtime_stop(tk->p->rt);
    uv_timer_stop(h);
    uv_close((uv_handle_t *)h, NULL);
  }
}

static void app_timer_fires_on_time_while_pipeline_runs(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  pipeline_t p = {.free_in_done = 1};
  brook_runtime_t *rt = make_pipeline(&p, 0 /* default slice: 1 ms */);

  ticker_t tk = {.p = &p};
  assert_int_equal(uv_timer_init(&loop, &tk.timer), 0);
  tk.timer.data = &tk;
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  uv_update_time(&loop);
  tk.start_ns = tk.last_ns = uv_hrtime();
  tk.last_cpu_ns = thread_cpu_ns();
  assert_int_equal(uv_timer_start(&tk.timer, on_tick, TICK_MS, TICK_MS), 0);

  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  uint64_t elapsed_ms = (tk.last_ns - tk.start_ns) / 1000000u;
  int expected = (int)(elapsed_ms / TICK_MS);
  uint64_t max_gap_ms = tk.max_gap_ns / 1000000u;
  /* Half the expected fires: preemption delays ticks on a loaded machine, while a loop that
   * never yields gets one fire in the whole run. */
  if (tk.fires * 10 < expected * 5 || max_gap_ms >= MAX_GAP_MS)
    fail_msg("app timer starved: %d fires in %" PRIu64
             " ms (expected ~%d), max CPU-time gap %" PRIu64 " ms (bound %d)",
             tk.fires, elapsed_ms, expected, max_gap_ms, MAX_GAP_MS);
  /* The pipeline really ran flat out alongside the timer. */
  assert_true(tk.sunk_at_stop > 10000);
  assert_int_equal(p.sunk, p.made);
  assert_int_equal(p.mapped, p.made);
  /* Stopped from the timer: on_done ran once and freed the runtime inside it. */
  assert_int_equal(p.done_calls, 1);
  assert_int_equal(p.done_status, BROOK_OK);
  assert_null(p.rt);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- a bounded pipeline ends by itself; the loop then has nothing of brook ---- */

static void natural_end_calls_on_done_and_leaves_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  pipeline_t p = {.limit = 20000};
  brook_runtime_t *rt = make_pipeline(&p, 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(brook_runtime_done(rt), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns once brook has closed */
  assert_int_equal(p.done_calls, 1);
  assert_int_equal(p.done_status, BROOK_OK);
  assert_int_equal(p.sunk, 20000);
  assert_int_equal(brook_runtime_done(rt), 1);
  assert_int_equal(brook_runtime_status(rt), BROOK_OK);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, 20000);
  assert_int_equal(st.records_out, 20000);
  assert_true(st.slices >= 1);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
  assert_int_equal(p.done_calls, 1);
}

/* A slice_us whose nanoseconds do not fit in 64 bits means "never yield early": the whole
 * bounded input runs in one slice, not one batch per slice after a wrapped deadline. */
static void huge_slice_does_not_wrap(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  pipeline_t p = {.limit = 200000};
  brook_runtime_t *rt = make_pipeline(&p, UINT64_MAX / 1000 + 1);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(p.sunk, 200000);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  if (st.slices > 3)
    fail_msg("%" PRIu64 " slices for %" PRIu64 " batches: the slice deadline wrapped", st.slices,
             st.batches);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
}

static void failure_in_attach_mode(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  pipeline_t p = {.fail_at = 500};
  brook_runtime_t *rt = make_pipeline(&p, 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(p.done_calls, 1);
  assert_int_equal(p.done_status, BROOK_ERR_USER);
  assert_int_equal(brook_runtime_status(rt), BROOK_ERR_USER);
  assert_int_equal(p.sunk, 500);
  assert_true(strlen(brook_runtime_last_error(rt)) > 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
}

/* ---- brook_runtime_free while attached and running ---- */

typedef struct freer {
  uv_timer_t timer;
  pipeline_t *p;
  uint64_t sunk_at_free;
} freer_t;

static void on_free_tick(uv_timer_t *h) {
  freer_t *f = h->data;
  if (f->p->sunk < 5000)
    return; /* let the pipeline get going first */
  f->sunk_at_free = f->p->sunk;
  brook_runtime_free(f->p->rt); /* deferred: stops, closes its handles, then releases */
  f->p->rt = NULL;
  uv_close((uv_handle_t *)h, NULL);
}

static void free_while_attached_and_running(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  pipeline_t p = {0};
  brook_runtime_t *rt = make_pipeline(&p, 0);
  freer_t f = {.p = &p};
  assert_int_equal(uv_timer_init(&loop, &f.timer), 0);
  f.timer.data = &f;
  assert_int_equal(uv_timer_start(&f.timer, on_free_tick, 5, 5), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_true(f.sunk_at_free >= 5000);
  assert_null(p.rt);
  /* No callback after free: on_done is not called. */
  assert_int_equal(p.done_calls, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void free_right_after_start(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  pipeline_t p = {0};
  brook_runtime_t *rt = make_pipeline(&p, 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  brook_runtime_free(rt); /* before the loop ever ran */
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(p.done_calls, 0);
  assert_int_equal(p.sunk, p.made);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- brook_runtime_stop from another thread while attached ---- */

typedef struct remote_stopper {
  brook_runtime_t *rt;
  wait_counter_t *milestone;
  int reached;
} remote_stopper_t;

static void *stop_when_busy(void *arg) {
  remote_stopper_t *rs = arg;
  rs->reached = wait_counter_wait_ge(rs->milestone, 1, 30000);
  brook_runtime_stop(rs->rt);
  return NULL;
}

static void stop_from_another_thread_while_attached(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  wait_counter_t milestone;
  wait_counter_init(&milestone, 0);
  pipeline_t p = {.milestone = &milestone};
  brook_runtime_t *rt = make_pipeline(&p, 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  remote_stopper_t rs = {rt, &milestone, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, stop_when_busy, &rs), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* the stop wakes the loop and ends it */
  pthread_join(th, NULL);
  assert_true(rs.reached);
  assert_int_equal(p.done_calls, 1);
  assert_int_equal(p.done_status, BROOK_OK);
  assert_true(p.sunk >= 10000);
  assert_int_equal(p.sunk, p.made); /* what was made before the stop was all delivered */
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
  wait_counter_destroy(&milestone);
}

/* ---- state errors ---- */

static void start_twice_is_state_error(void **state) {
  (void)state;
  uv_loop_t loop, other;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_loop_init(&other), 0);
  pipeline_t p = {.limit = 1000};
  brook_runtime_t *rt = make_pipeline(&p, 0);
  assert_int_equal(brook_runtime_start(rt, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_runtime_start(NULL, &loop), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_ERR_STATE);
  assert_true(strlen(brook_runtime_last_error(rt)) > 0);
  assert_int_equal(brook_runtime_start(rt, &other), BROOK_ERR_STATE);
  assert_int_equal(brook_runtime_run(rt), BROOK_ERR_STATE);
  assert_int_equal(uv_loop_close(&other), 0); /* nothing was attached to the other loop */
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(p.done_calls, 1);
  assert_int_equal(p.done_status, BROOK_OK); /* the refused calls did not disturb it */
  assert_int_equal(p.sunk, 1000);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_ERR_STATE); /* finished: still no */
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
}

static void failed_start_leaves_nothing_on_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  pipeline_t p = {0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *s = brook_source_generator(t, "numbers", gen_numbers, &p, NULL);
  const char *path = "/nonexistent-brook-dir/sub/out.txt";
  assert_int_equal(brook_sink_lines(s, path, NULL), BROOK_OK);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.on_done = on_done;
  o.on_done_opaque = &p;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_ERR_IO);
  assert_non_null(strstr(brook_runtime_last_error(rt), path));
  assert_int_equal(brook_runtime_status(rt), BROOK_ERR_IO);
  assert_int_equal(uv_loop_close(&loop), 0); /* no handle was left on the loop */
  assert_int_equal(p.made, 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_ERR_STATE);
  brook_runtime_free(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(app_timer_fires_on_time_while_pipeline_runs),
      cmocka_unit_test(natural_end_calls_on_done_and_leaves_loop),
      cmocka_unit_test(failure_in_attach_mode),
      cmocka_unit_test(huge_slice_does_not_wrap),
      cmocka_unit_test(free_while_attached_and_running),
      cmocka_unit_test(free_right_after_start),
      cmocka_unit_test(stop_from_another_thread_while_attached),
      cmocka_unit_test(start_twice_is_state_error),
      cmocka_unit_test(failed_start_leaves_nothing_on_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
