/* Stopping a runtime: from another thread while it runs flat out, from a real signal
 * handler, before it runs; draining what a push source accepted; and which operator
 * callbacks run on stop (flush) versus at a natural end (end_of_input, then flush). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "run_helpers.h"
#include "tempfiles.h"
#include "wait.h"

#define WAIT_MS 30000 /* generous: a deadline that only a broken runtime reaches */

/* ---- an unbounded numbered generator ---- */

typedef struct numbers {
  atomic_uint_fast64_t made; /* read by the stopping thread */
  uint64_t done_after;       /* 0 = never ends */
} numbers_t;

static brook_err_t gen_numbers(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  numbers_t *g = opaque;
  uint64_t n = atomic_load(&g->made);
  if (g->done_after && n >= g->done_after)
    return BROOK_DONE;
  char *buf = brook_ctx_alloc(ctx, 24);
  if (!buf)
    return BROOK_ERR_NOMEM;
  out->value = buf;
  out->value_len = (size_t)snprintf(buf, 24, "%" PRIu64, n);
  atomic_store(&g->made, n + 1);
  return BROOK_OK;
}

/* ---- an operator that counts its life-cycle callbacks and passes records on ---- */

typedef struct lifecycle {
  int opened, end_of_input, flushes, closed;
  uint64_t seen;
  int emit_final; /* emit one "final" record from end_of_input */
} lifecycle_t;

static brook_err_t lc_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  lifecycle_t *lc = opaque;
  lc->opened++;
  *state = lc;
  return BROOK_OK;
}

static brook_err_t lc_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  lifecycle_t *lc = state;
  lc->seen++;
  return brook_emit(ctx, rec);
}

static brook_err_t lc_end_of_input(brook_ctx_t *ctx, void *state) {
  lifecycle_t *lc = state;
  lc->end_of_input++;
  if (!lc->emit_final)
    return BROOK_OK;
  brook_record_t rec = {.value = "final", .value_len = 5};
  return brook_emit(ctx, &rec);
}

static brook_err_t lc_flush(brook_ctx_t *ctx, void *state) {
  (void)ctx;
  lifecycle_t *lc = state;
  lc->flushes++;
  return BROOK_OK;
}

static void lc_close(void *state, void *opaque) {
  (void)state;
  lifecycle_t *lc = opaque;
  lc->closed++;
}

static const brook_operator_t lifecycle_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "lifecycle",
    .open = lc_open,
    .process = lc_process,
    .end_of_input = lc_end_of_input,
    .flush = lc_flush,
    .close = lc_close,
};

/* ---- sinks ---- */

typedef struct count_sink {
  uint64_t count;
  uint64_t flushes;
  int saw_final;
} count_sink_t;

static brook_err_t sink_count(const brook_record_t *rec, void *opaque) {
  count_sink_t *s = opaque;
  s->count++;
  if (rec->value_len == 5 && memcmp(rec->value, "final", 5) == 0)
    s->saw_final = 1;
  return BROOK_OK;
}

static brook_err_t sink_count_flush(void *opaque) {
  count_sink_t *s = opaque;
  s->flushes++;
  return BROOK_OK;
}

/* ---- helpers ---- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

typedef struct done_rec {
  int calls;
  brook_err_t status;
} done_rec_t;

static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  (void)rt;
  done_rec_t *d = opaque;
  d->calls++;
  d->status = status;
}

static brook_runtime_t *make_runtime(brook_topology_t *t, done_rec_t *d) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.batch_size = 256;
  if (d) {
    o.on_done = on_done;
    o.on_done_opaque = d;
  }
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_topology_free(t);
  return rt;
}

/* Checks a line-sink output: only complete lines, numbered 0, 1, 2, ... Returns the count. */
static uint64_t check_numbered_lines(const char *path) {
  size_t len = 0;
  char *buf = read_file(path, &len);
  assert_true(len > 0);
  assert_int_equal(buf[len - 1], '\n'); /* no partial last line */
  uint64_t n = 0;
  for (size_t i = 0; i < len;) {
    char *nl = memchr(buf + i, '\n', len - i);
    assert_non_null(nl);
    char expect[24];
    int el = snprintf(expect, sizeof(expect), "%" PRIu64, n);
    assert_int_equal((size_t)(nl - (buf + i)), (size_t)el);
    assert_memory_equal(buf + i, expect, (size_t)el);
    i = (size_t)(nl - buf) + 1;
    n++;
  }
  free(buf);
  return n;
}

/* ---- stop from another thread ---- */

typedef struct stopper {
  brook_runtime_t *rt;
  numbers_t *g;
  uint64_t after; /* stop once the generator made this many */
  int reached;
} stopper_t;

static int made_enough(void *arg) {
  stopper_t *s = arg;
  return atomic_load(&s->g->made) >= s->after;
}

static void *stop_thread(void *arg) {
  stopper_t *s = arg;
  s->reached = wait_until(made_enough, s, WAIT_MS);
  brook_runtime_stop(s->rt);
  brook_runtime_stop(s->rt); /* idempotent */
  return NULL;
}

static void stop_from_thread_flushes_line_sink(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof(path), "thread");
  numbers_t g = {0};
  lifecycle_t lc = {0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *s = brook_source_generator(t, "numbers", gen_numbers, &g, NULL);
  s = brook_apply(s, &lifecycle_op, &lc);
  brook_line_sink_opts_t lo;
  brook_line_sink_opts_init(&lo);
  lo.buffer_size = 1000; /* many partial writes: a flush must still leave whole lines */
  assert_int_equal(brook_sink_lines(s, path, &lo), BROOK_OK);
  done_rec_t d = {0};
  brook_runtime_t *rt = make_runtime(t, &d);

  stopper_t st = {rt, &g, 50000, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, stop_thread, &st), 0);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  pthread_join(th, NULL);
  assert_true(st.reached);

  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, BROOK_OK);
  assert_int_equal(brook_runtime_done(rt), 1);
  brook_runtime_stats_t stats = get_stats(rt);
  assert_true(stats.records_out >= 50000);
  assert_int_equal(stats.records_in, stats.records_out);
  assert_int_equal(stats.records_out, atomic_load(&g.made)); /* everything made was written */
  assert_int_equal(check_numbered_lines(path), stats.records_out);
  /* Stopped, not ended: end_of_input is not called; flush and close are. */
  assert_int_equal(lc.opened, 1);
  assert_int_equal(lc.end_of_input, 0);
  assert_true(lc.flushes >= 1);
  assert_int_equal(lc.closed, 1);
  brook_runtime_free(rt);
  unlink(path);
}

/* ---- stop from a signal handler ---- */

static brook_runtime_t *volatile g_signal_rt;
static volatile sig_atomic_t g_signals;

static void on_sigusr1(int sig) {
  (void)sig;
  g_signals++;
  brook_runtime_stop(g_signal_rt); /* async-signal-safe by contract */
}

typedef struct signaller {
  numbers_t *g;
  pthread_t target; /* the thread to signal; unused when process_directed */
  int process_directed;
  int reached;
} signaller_t;

static int made_some(void *arg) {
  signaller_t *s = arg;
  return atomic_load(&s->g->made) >= 20000;
}

static void *signal_thread(void *arg) {
  signaller_t *s = arg;
  s->reached = wait_until(made_some, s, WAIT_MS);
  if (s->process_directed)
    kill(getpid(), SIGUSR1);
  else
    pthread_kill(s->target, SIGUSR1);
  return NULL;
}

static void stop_from_signal(int process_directed) {
  char path[256];
  temp_path(path, sizeof(path), "signal");
  numbers_t g = {0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(
      brook_sink_lines(brook_source_generator(t, "numbers", gen_numbers, &g, NULL), path, NULL),
      BROOK_OK);
  done_rec_t d = {0};
  brook_runtime_t *rt = make_runtime(t, &d);

  struct sigaction sa, old;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  g_signal_rt = rt;
  g_signals = 0;
  assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

  signaller_t sg = {&g, pthread_self(), process_directed, 0};
  pthread_t th;
  if (process_directed) { /* the signaller blocks SIGUSR1: the kernel picks another thread */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    assert_int_equal(pthread_create(&th, NULL, signal_thread, &sg), 0);
    pthread_sigmask(SIG_UNBLOCK, &block, NULL);
  } else {
    assert_int_equal(pthread_create(&th, NULL, signal_thread, &sg), 0);
  }
  brook_err_t err = brook_runtime_run(rt);
  pthread_join(th, NULL);
  sigaction(SIGUSR1, &old, NULL);
  g_signal_rt = NULL;

  assert_true(sg.reached);
  assert_int_equal(err, BROOK_OK);
  assert_int_equal(g_signals, 1);
  assert_int_equal(d.calls, 1);
  brook_runtime_stats_t stats = get_stats(rt);
  assert_true(stats.records_out >= 20000);
  assert_int_equal(check_numbered_lines(path), stats.records_out);
  brook_runtime_free(rt);
  unlink(path);
}

/* pthread_kill: the handler interrupts the loop thread in the middle of a batch. */
static void stop_from_signal_on_loop_thread(void **state) {
  (void)state;
  stop_from_signal(0);
}

/* kill(getpid()): the handler runs on whichever thread the kernel picks. */
static void stop_from_process_signal(void **state) {
  (void)state;
  stop_from_signal(1);
}

/* ---- stop before run ---- */

static void stop_before_run_returns_promptly(void **state) {
  (void)state;
  numbers_t g = {0};
  count_sink_t cs = {0};
  lifecycle_t lc = {0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *s = brook_source_generator(t, "numbers", gen_numbers, &g, NULL);
  assert_int_equal(
      brook_sink_callback(brook_apply(s, &lifecycle_op, &lc), sink_count, sink_count_flush, &cs),
      BROOK_OK);
  done_rec_t d = {0};
  brook_runtime_t *rt = make_runtime(t, &d);
  brook_runtime_stop(rt);
  uint64_t t0 = wait_now_ms();
  assert_int_equal(brook_runtime_run(rt), BROOK_OK); /* an unbounded source: only stop ends it */
  assert_true(wait_now_ms() - t0 < 10000);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, BROOK_OK);
  /* Stopped before any input was taken: nothing was produced. */
  brook_runtime_stats_t stats = get_stats(rt);
  assert_int_equal(stats.records_in, 0);
  assert_int_equal(stats.records_out, 0);
  assert_int_equal(cs.count, 0);
  assert_int_equal(lc.opened, 1);
  assert_int_equal(lc.end_of_input, 0);
  assert_int_equal(lc.closed, 1);
  brook_runtime_free(rt);
}

/* ---- natural end versus stop ---- */

static void end_of_input_at_natural_end_only(void **state) {
  (void)state;
  /* Natural end: end_of_input runs (and what it emits reaches the sink), then flush. */
  numbers_t g = {.done_after = 1000};
  count_sink_t cs = {0};
  lifecycle_t lc = {.emit_final = 1};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *s = brook_source_generator(t, "numbers", gen_numbers, &g, NULL);
  assert_int_equal(
      brook_sink_callback(brook_apply(s, &lifecycle_op, &lc), sink_count, sink_count_flush, &cs),
      BROOK_OK);
  brook_runtime_t *rt = make_runtime(t, NULL);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(lc.end_of_input, 1);
  assert_true(lc.flushes >= 1);
  assert_int_equal(lc.closed, 1);
  assert_int_equal(cs.count, 1001);
  assert_true(cs.saw_final);
  assert_true(cs.flushes >= 1);
  brook_runtime_free(rt);

  /* Stopped: the input was cut, not ended, so no end_of_input (no final results); the
   * sinks are still flushed. */
  numbers_t g2 = {0};
  count_sink_t cs2 = {0};
  lifecycle_t lc2 = {.emit_final = 1};
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  s = brook_source_generator(t, "numbers", gen_numbers, &g2, NULL);
  assert_int_equal(
      brook_sink_callback(brook_apply(s, &lifecycle_op, &lc2), sink_count, sink_count_flush, &cs2),
      BROOK_OK);
  rt = make_runtime(t, NULL);
  stopper_t st = {rt, &g2, 5000, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, stop_thread, &st), 0);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  pthread_join(th, NULL);
  assert_true(st.reached);
  assert_int_equal(lc2.end_of_input, 0);
  assert_true(lc2.flushes >= 1);
  assert_true(cs2.flushes >= 1);
  assert_int_equal(lc2.closed, 1);
  assert_false(cs2.saw_final);
  assert_int_equal(cs2.count, atomic_load(&g2.made));
  brook_runtime_free(rt);
}

/* ---- drain: queued pushes are processed on stop ---- */

typedef struct gated_sink {
  wait_counter_t entered; /* records the sink has started on */
  wait_counter_t gate;    /* the first record waits until this is >= 1 */
  uint64_t count;
  uint64_t expect;
  uint64_t out_of_order;
} gated_sink_t;

static brook_err_t sink_gated(const brook_record_t *rec, void *opaque) {
  gated_sink_t *s = opaque;
  if (s->count == 0) {
    wait_counter_add(&s->entered, 1);
    wait_counter_wait_ge(&s->gate, 1, WAIT_MS);
  }
  uint64_t v = UINT64_MAX; /* runs on the runner thread: no cmocka asserts here */
  if (rec->value_len == sizeof(v))
    memcpy(&v, rec->value, sizeof(v));
  if (v != s->expect)
    s->out_of_order++;
  s->expect = v + 1;
  s->count++;
  return BROOK_OK;
}

static brook_err_t push_number(brook_push_source_t *p, uint64_t v) {
  brook_record_t rec = {.value = &v, .value_len = sizeof(v)};
  return brook_push(p, &rec);
}

static void stop_drains_accepted_pushes(void **state) {
  (void)state;
  gated_sink_t gs = {0};
  wait_counter_init(&gs.entered, 0);
  wait_counter_init(&gs.gate, 0);
  lifecycle_t lc = {.emit_final = 1};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 1u << 20;
  brook_stream_t *s = brook_source_push(t, "in", &po);
  assert_int_equal(brook_sink_callback(brook_apply(s, &lifecycle_op, &lc), sink_gated, NULL, &gs),
                   BROOK_OK);
  done_rec_t d = {0};
  brook_runtime_t *rt = make_runtime(t, &d);
  brook_push_source_t *p = brook_runtime_push_source(rt, "in");
  assert_non_null(p);

  runner_t r = {rt, BROOK_OK};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, run_thread, &r), 0);
  uint64_t accepted = 0;
  assert_int_equal(push_number(p, accepted++), BROOK_OK);
  /* The loop thread is now held inside the sink: everything pushed next stays queued. */
  assert_true(wait_counter_wait_ge(&gs.entered, 1, WAIT_MS));
  for (int i = 0; i < 3000; i++)
    assert_int_equal(push_number(p, accepted++), BROOK_OK);
  brook_runtime_stop(rt);
  wait_counter_add(&gs.gate, 1);
  /* The stop reaches the push source once the loop thread sees it; until then a push may
   * still be accepted, and every accepted one must be delivered. Then pushes are refused. */
  brook_err_t err;
  uint64_t t0 = wait_now_ms();
  while ((err = push_number(p, accepted)) == BROOK_OK && wait_now_ms() - t0 < WAIT_MS)
    accepted++;
  assert_int_equal(err, BROOK_ERR_STOPPED);
  pthread_join(th, NULL);

  assert_int_equal(r.result, BROOK_OK);
  assert_int_equal(d.calls, 1);
  assert_int_equal(gs.count, accepted);
  assert_int_equal(gs.out_of_order, 0);
  assert_int_equal(get_stats(rt).records_out, accepted);
  assert_int_equal(lc.end_of_input, 0); /* a stop, not an end */
  assert_true(lc.flushes >= 1);
  assert_int_equal(push_number(p, 1), BROOK_ERR_STOPPED); /* after the runtime finished */
  assert_int_equal(brook_push_credit(p), 0);
  brook_runtime_free(rt);
  wait_counter_destroy(&gs.entered);
  wait_counter_destroy(&gs.gate);
}

static void stop_before_run_drains_queued_pushes(void **state) {
  (void)state;
  gated_sink_t gs = {0};
  wait_counter_init(&gs.entered, 0);
  wait_counter_init(&gs.gate, 1); /* open */
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(brook_sink_callback(brook_source_push(t, "in", NULL), sink_gated, NULL, &gs),
                   BROOK_OK);
  brook_runtime_t *rt = make_runtime(t, NULL);
  brook_push_source_t *p = brook_runtime_push_source(rt, "in");
  for (uint64_t i = 0; i < 2500; i++)
    assert_int_equal(push_number(p, i), BROOK_OK);
  brook_runtime_stop(rt);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(gs.count, 2500);
  assert_int_equal(gs.out_of_order, 0);
  assert_int_equal(push_number(p, 0), BROOK_ERR_STOPPED);
  brook_runtime_free(rt);
  wait_counter_destroy(&gs.entered);
  wait_counter_destroy(&gs.gate);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stop_from_thread_flushes_line_sink),
      cmocka_unit_test(stop_from_signal_on_loop_thread),
      cmocka_unit_test(stop_from_process_signal),
      cmocka_unit_test(stop_before_run_returns_promptly),
      cmocka_unit_test(end_of_input_at_natural_end_only),
      cmocka_unit_test(stop_drains_accepted_pushes),
      cmocka_unit_test(stop_before_run_drains_queued_pushes),
  };
  return cmocka_run_group_tests(tests, NULL, temp_remove_all);
}
