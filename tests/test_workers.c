/* Workers: a runtime with num_workers > 1 runs the generator's splits on several threads,
 * sends each key's records to the worker that owns it (the exchange after key_by), and gives
 * the same per-key results as one worker; every worker takes part. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <brook/brook.h>

#include "fail_alloc.h"
#include "run_deadline.h"
#include "wait.h"
#include "worker_seen.h"

static brook_topology_t *new_topology(void) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  return t;
}

/* key_by -> count -> the counting sink. */
static void count_by_key(brook_stream_t *s, seen_t *seen) {
  s = brook_count(brook_key_by(s, key_is_value, NULL), NULL);
  assert_int_equal(brook_sink_callback(s, count_sink, NULL, seen), BROOK_OK);
}

/* A runtime with `workers` workers (and batch_size, unless 0). */
static brook_runtime_t *new_runtime(brook_topology_t *t, size_t workers, size_t batch_size) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  if (batch_size)
    ro.batch_size = batch_size;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  return rt;
}

/* Split s's i-th record is key (s * 7 + i) % N_KEYS: every split covers every key. */
typedef struct gen {
  uint64_t next[64]; /* per split: touched only by the worker running it */
} gen_t;

static brook_err_t gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t split = brook_ctx_split(ctx);
  uint64_t i = g->next[split]++;
  out->value = key_names[(split * 7 + i) % N_KEYS];
  out->value_len = strlen(out->value);
  return BROOK_OK;
}

/* A generator "gen" calling `fn` with `g`, in `splits` splits, `limit` records (0: none). */
static brook_stream_t *gen_source(brook_topology_t *t, brook_generator_fn fn, gen_t *g,
                                  size_t splits, uint64_t limit) {
  memset(g, 0, sizeof(*g));
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = splits;
  go.limit = limit;
  return brook_source_generator(t, "gen", fn, g, &go);
}

/* generator (splits) -> key_by -> count -> sink, on `workers` workers. */
static void run_counts(size_t workers, size_t splits, uint64_t limit, seen_t *seen) {
  static gen_t g;
  seen_init(seen);
  brook_topology_t *t = new_topology();
  count_by_key(gen_source(t, gen_fn, &g, splits, limit), seen);
  brook_runtime_t *rt = new_runtime(t, workers, 0);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_in, limit);
  assert_int_equal(st.records_out, limit);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_same_counts_on_1_2_4_workers(void **state) {
  (void)state;
  const uint64_t limit = 200003; /* not a multiple of the splits */
  static seen_t one, many;
  run_counts(1, 4, limit, &one);
  uint64_t total = total_count(&one);
  assert_int_equal(total, limit);
  assert_int_equal(one.n_threads, 1);
  size_t ns[] = {2, 4};
  for (size_t i = 0; i < 2; i++) {
    run_counts(ns[i], 4, limit, &many);
    check_same_counts(&one, &many, ns[i]);
    assert_int_equal(many.records, limit);
    /* Each key's sink runs on the worker owning the key: every worker had keys. */
  }
}

/* ---- tumbling windows after the exchange: watermarks cross workers ---- */

#define N_WINDOWS 40
#define WINDOW_MS 100

static atomic_int sources_running;

/* Event time = the split's record number / 10 ms: in order within a split. */
static brook_err_t timed_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t split = brook_ctx_split(ctx);
  if (g->next[split] == (uint64_t)N_WINDOWS * WINDOW_MS * 10) {
    atomic_fetch_sub(&sources_running, 1);
    return BROOK_DONE;
  }
  brook_err_t err = gen_fn(out, ctx, opaque);
  out->timestamp = (brook_time_t)((g->next[split] - 1) / 10);
  return err;
}

static void run_windows(size_t workers, seen_t *seen) {
  static gen_t g;
  seen_init(seen);
  seen->window_ms = WINDOW_MS;
  seen->running = &sources_running;
  atomic_store(&sources_running, 4);
  brook_topology_t *t = new_topology();
  brook_stream_t *s = gen_source(t, timed_gen, &g, 4, 0);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_MONOTONOUS;
  assert_int_equal(brook_source_set_watermark(s, &wo), BROOK_OK);
  s = brook_key_by(s, key_is_value, NULL);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t tumbling = brook_window_tumbling(WINDOW_MS);
  s = brook_window_aggregate(s, &tumbling, &count, NULL);
  assert_int_equal(brook_sink_callback(s, window_count_sink, NULL, seen), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, workers, 256);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_late, 0); /* the exchange's watermark never ran ahead */
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_tumbling_windows_same_on_1_2_4_workers(void **state) {
  (void)state;
  static seen_t one, many;
  run_windows(1, &one);
  assert_int_equal(windows_total(&one), 4 * N_WINDOWS * WINDOW_MS * 10);
  size_t ns[] = {2, 4};
  for (size_t i = 0; i < 2; i++) {
    run_windows(ns[i], &many);
    check_same_windows(&one, &many, ns[i]);
    /* Watermarks crossed the exchange while the input ran: windows did not all wait for the
     * end of input. */
    assert_true(many.before_end > 0);
  }
}

/* ---- a push source fed by 4 producer threads, a split each ---- */

#define PUSHES_PER_PRODUCER 50000

typedef struct producer {
  brook_push_source_t *src;
  size_t index;
  brook_err_t err;
} producer_t;

static void *produce(void *arg) {
  producer_t *p = arg;
  for (size_t i = 0; i < PUSHES_PER_PRODUCER && p->err == BROOK_OK; i++) {
    brook_record_t rec = {0};
    rec.value = key_names[(p->index * 13 + i * 7) % N_KEYS];
    rec.value_len = strlen(rec.value);
    p->err = brook_push_wait(p->src, &rec, 60000);
  }
  brook_err_t end = brook_push_end(p->src);
  if (p->err == BROOK_OK)
    p->err = end;
  return NULL;
}

static void run_pushed(size_t workers, seen_t *seen) {
  seen_init(seen);
  brook_topology_t *t = new_topology();
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.splits = 4;
  po.max_records = 4096; /* small: producers meet backpressure */
  brook_stream_t *s = brook_source_push(t, "in", &po);
  count_by_key(s, seen);
  brook_runtime_t *rt = new_runtime(t, workers, 0);
  assert_null(brook_runtime_push_source_split(rt, "in", 4)); /* splits 0..3 only */
  producer_t prods[4];
  pthread_t th[4];
  for (size_t k = 0; k < 4; k++) {
    prods[k] = (producer_t){brook_runtime_push_source_split(rt, "in", k), k, BROOK_OK};
    assert_non_null(prods[k].src);
    assert_int_equal(pthread_create(&th[k], NULL, produce, &prods[k]), 0);
  }
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  for (size_t k = 0; k < 4; k++) {
    pthread_join(th[k], NULL);
    assert_int_equal(prods[k].err, BROOK_OK);
  }
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_push_from_4_producers_same_counts(void **state) {
  (void)state;
  static seen_t one, many;
  run_pushed(1, &one);
  uint64_t total = total_count(&one);
  assert_int_equal(total, 4 * PUSHES_PER_PRODUCER);
  size_t ns[] = {2, 4};
  for (size_t i = 0; i < 2; i++) {
    run_pushed(ns[i], &many);
    check_same_counts(&one, &many, ns[i]);
  }
}

/* ---- attach mode: worker 0 on the application's loop, the others on brook's threads ---- */

typedef struct attach_done {
  int calls;
  brook_err_t status;
  pthread_t thread;
} attach_done_t;

static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  (void)rt;
  attach_done_t *d = opaque;
  d->calls++;
  d->status = status;
  d->thread = pthread_self();
}

static void on_tick(uv_timer_t *h) { (*(int *)h->data)++; }

static void test_attach_3_workers_done_once_on_app_loop(void **state) {
  (void)state;
  static gen_t g;
  static seen_t seen;
  seen_init(&seen);
  brook_topology_t *t = new_topology();
  brook_stream_t *s = gen_source(t, gen_fn, &g, 3, 300000);
  count_by_key(s, &seen);
  attach_done_t done = {0};
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = 3;
  ro.on_done = on_done;
  ro.on_done_opaque = &done;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_timer_t tick; /* the application's own handle keeps firing */
  int ticks = 0;
  uv_timer_init(&loop, &tick);
  tick.data = &ticks;
  uv_timer_start(&tick, on_tick, 1, 1);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  uint64_t deadline = wait_now_ms() + 60000;
  while (!done.calls && wait_now_ms() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(done.calls, 1);
  assert_int_equal(done.status, BROOK_OK);
  assert_true(pthread_equal(done.thread, pthread_self())); /* on worker 0's loop */
  assert_true(brook_runtime_done(rt));
  assert_int_equal(seen.records, 300000);
  assert_int_equal(seen.n_threads, 3);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0); /* nothing of brook's left on the loop */
  assert_int_equal(done.calls, 1);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* ---- stop from a signal handler while 4 workers run flat out ---- */

static brook_runtime_t *volatile g_rt;

static void on_sigusr1(int sig) {
  (void)sig;
  brook_runtime_stop(g_rt); /* async-signal-safe by contract */
}

typedef struct signaller {
  seen_t *seen;
  int fired;
  int stats_ok;
} signaller_t;

static int seen_enough(void *arg) {
  seen_t *s = arg;
  pthread_mutex_lock(&s->mu);
  int ok = s->records >= 200000 && s->n_threads == 4;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static void *signal_when_busy(void *arg) {
  signaller_t *sg = arg;
  if (wait_until(seen_enough, sg->seen, 60000)) {
    /* Stats from another thread while 4 workers run: the copies they publish per slice. */
    brook_runtime_stats_t st;
    st.struct_size = sizeof(st);
    sg->stats_ok = brook_runtime_stats(g_rt, &st) == BROOK_OK && st.records_in > 0;
    kill(getpid(), SIGUSR1);
    sg->fired = 1;
  }
  return NULL;
}

static void test_stop_from_signal_handler_4_workers(void **state) {
  (void)state;
  static gen_t g;
  static seen_t seen;
  seen_init(&seen);
  brook_topology_t *t = new_topology();
  brook_stream_t *s = gen_source(t, gen_fn, &g, 8, 0); /* no limit: only the stop ends it */
  count_by_key(s, &seen);
  brook_runtime_t *rt = new_runtime(t, 4, 0);
  g_rt = rt;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
  signaller_t sg = {&seen, 0, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, signal_when_busy, &sg), 0);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  pthread_join(th, NULL);
  sigaction(SIGUSR1, &old, NULL);
  assert_true(sg.fired);
  assert_true(sg.stats_ok);
  /* Drained, not dropped: every record a source produced went through the exchange. */
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_out, st.records_in);
  assert_int_equal(seen.records, st.records_in);
  uint64_t total = total_count(&seen);
  assert_int_equal(total, st.records_in);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* ---- a failing operator on worker 3 ---- */

/* Fails its 1000th record of split 3 (which runs on worker 3 of 4); runs before key_by, so on
 * the worker of the split. */
static brook_err_t tag_split(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  brook_err_t err = gen_fn(out, ctx, opaque);
  out->timestamp = (brook_time_t)brook_ctx_split(ctx);
  return err;
}

static _Atomic long split3_seen;

static brook_err_t fail_on_split3(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  if (rec->timestamp == 3 && atomic_fetch_add(&split3_seen, 1) == 999) {
    brook_ctx_set_error(ctx, "split 3 is broken");
    return BROOK_ERR_USER;
  }
  return BROOK_OK;
}

static void test_failing_operator_on_worker_3_stops_all(void **state) {
  (void)state;
  static gen_t g;
  static seen_t seen;
  seen_init(&seen);
  atomic_store(&split3_seen, 0);
  brook_topology_t *t = new_topology();
  brook_stream_t *s =
      gen_source(t, tag_split, &g, 4, 0); /* unlimited: only the failure ends the run */
  s = brook_map(s, fail_on_split3, NULL);
  count_by_key(s, &seen);
  brook_runtime_t *rt = new_runtime(t, 4, 0);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_ERR_USER);
  const char *msg = brook_runtime_last_error(rt);
  if (!strstr(msg, "split 3 is broken"))
    fail_msg("the first failure's message was lost: %s", msg);
  assert_int_equal(brook_runtime_status(rt), BROOK_ERR_USER);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* ---- allocation failures while 4 workers start ---- */

/* fail_alloc_t under a lock: workers allocate from their own threads. */
static pthread_mutex_t fa_mu = PTHREAD_MUTEX_INITIALIZER;

static void *locked_alloc(size_t n, void *o) {
  pthread_mutex_lock(&fa_mu);
  void *p = fa_alloc(n, o);
  pthread_mutex_unlock(&fa_mu);
  return p;
}

static void *locked_realloc(void *ptr, size_t n, void *o) {
  pthread_mutex_lock(&fa_mu);
  void *p = fa_realloc(ptr, n, o);
  pthread_mutex_unlock(&fa_mu);
  return p;
}

static void locked_free(void *ptr, void *o) {
  pthread_mutex_lock(&fa_mu);
  fa_free(ptr, o);
  pthread_mutex_unlock(&fa_mu);
}

static void alloc_failure_sweep(int persistent) {
  long k, injected_runs = 0;
  for (k = 1; k < 5000; k++) {
    static gen_t g;
    static seen_t seen;
    memset(&g, 0, sizeof(g));
    seen_init(&seen);
    fail_alloc_t fa = {.fail_at = k, .persistent = persistent};
    brook_allocator_t a = fa_allocator(&fa);
    a.alloc = locked_alloc;
    a.realloc = locked_realloc;
    a.free = locked_free;
    brook_topology_opts_t to;
    brook_topology_opts_init(&to);
    to.allocator = &a;
    brook_topology_t *t = NULL;
    brook_err_t err = brook_topology_new(&t, &to);
    brook_runtime_t *rt = NULL;
    if (err == BROOK_OK) {
      brook_generator_opts_t go;
      brook_generator_opts_init(&go);
      go.splits = 4;
      go.limit = 4000;
      brook_stream_t *s = brook_source_generator(t, "gen", gen_fn, &g, &go);
      s = brook_count(brook_key_by(s, key_is_value, NULL), NULL);
      brook_sink_callback(s, count_sink, NULL, &seen);
      brook_runtime_opts_t ro;
      brook_runtime_opts_init(&ro);
      ro.num_workers = 4;
      ro.batch_size = 64;
      err = brook_runtime_new(&rt, t, &ro);
      if (err == BROOK_OK) {
        err = run_with_deadline(rt, 60000, NULL);
        if (err == BROOK_OK)
          assert_int_equal(seen.records, 4000);
        else if (err != BROOK_ERR_NOMEM)
          fail_msg("k=%ld: run failed with %s: %s", k, brook_errname(err),
                   brook_runtime_last_error(rt));
        injected_runs += fa.injected && err == BROOK_ERR_NOMEM;
      } else if (err != BROOK_ERR_NOMEM &&
                 !(err == BROOK_ERR_BUILD &&
                   strstr(brook_topology_last_error(t), "out of memory"))) {
        fail_msg("k=%ld: runtime_new failed with %s: %s", k, brook_errname(err),
                 brook_topology_last_error(t));
      }
    }
    brook_runtime_free(rt);
    brook_topology_free(t);
    if (fa.live != 0)
      fail_msg("k=%ld: %ld block(s) still allocated after everything was freed", k, fa.live);
    if (fa.injected && err == BROOK_OK && seen.records != 4000)
      fail_msg("k=%ld: a failure was injected, the run said OK but lost records", k);
    if (!fa.injected) {
      assert_int_equal(err, BROOK_OK);
      break;
    }
  }
  assert_true(k < 5000);
  assert_true(injected_runs > 0); /* failures reached the start of the workers and the run */
}

static void test_alloc_failures_starting_4_workers(void **state) {
  (void)state;
  alloc_failure_sweep(0); /* one allocation fails */
  alloc_failure_sweep(1); /* every allocation from the k-th on fails */
}

/* ---- two exchanges in a row, and a merge of exchanged and local records ---- */

/* The count's key is the word; re-key by the count's parity class: key = k<count % N_KEYS>. */
static brook_err_t key_of_count(const brook_record_t *rec, const void **key, size_t *key_len,
                                brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  int64_t v;
  if (rec->value_len != sizeof(v))
    return BROOK_ERR_USER;
  memcpy(&v, rec->value, sizeof(v));
  *key = key_names[v % N_KEYS];
  *key_len = strlen(*key);
  return BROOK_OK;
}

static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

/* gen -> key_by -> count -> key_by(count) -> merge with the counts themselves -> count ->
 * sink: a second exchange after the first, and a node fed by both an exchange and a local
 * stream (the counts stay on the worker owning their key, which is the key's worker for the
 * second count too). */
static void run_chained(size_t workers, seen_t *seen) {
  static gen_t g;
  seen_init(seen);
  brook_topology_t *t = new_topology();
  brook_stream_t *src = gen_source(t, gen_fn, &g, 4, 40000);
  brook_stream_t *counts = brook_count(brook_key_by(src, key_is_value, NULL), NULL);
  brook_stream_t *rekeyed = brook_key_by(counts, key_of_count, NULL);
  brook_stream_t *ins[2] = {rekeyed, brook_filter(counts, keep_all, NULL)}; /* local */
  brook_stream_t *merged = brook_merge(ins, 2);
  assert_non_null(merged);
  brook_stream_t *s = brook_count(merged, NULL);
  assert_int_equal(brook_sink_callback(s, count_sink, NULL, seen), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, workers, 128);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  assert_int_equal(stats_of(rt).records_out, 80000); /* each count twice */
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_chained_exchanges_same_counts(void **state) {
  (void)state;
  static seen_t one, many;
  run_chained(1, &one);
  assert_int_equal(total_count(&one), 80000);
  for (size_t w = 2; w <= 3; w++) {
    run_chained(w, &many);
    check_same_counts(&one, &many, w);
  }
}

/* ---- processing-time timers on a worker whose own sources have ended ---- */

/* Each instance (one per worker) sets one processing-time timer on its first record; the
 * generator (one split, on worker 0; two tasks after key_by) runs until every worker's timer
 * has fired. Worker 1
 * has no source: it waits for the exchange's end while worker 0 still produces. */
static atomic_int timers_fired;

static brook_err_t timer_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx, (void)opaque;
  *state = calloc(1, sizeof(int));
  return *state ? BROOK_OK : BROOK_ERR_NOMEM;
}

static brook_err_t timer_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  int *armed = state;
  if (!*armed) {
    *armed = 1;
    return brook_timer_set(ctx, BROOK_PROCESSING_TIME, brook_ctx_now(ctx) + 1, rec->key,
                           rec->key_len, 0);
  }
  return BROOK_OK;
}

static brook_err_t timer_fire(brook_ctx_t *ctx, void *state, const struct brook_timer *t) {
  (void)ctx, (void)state, (void)t;
  atomic_fetch_add(&timers_fired, 1);
  return BROOK_OK;
}

static void timer_close(void *state, void *opaque) {
  (void)opaque;
  free(state);
}

static brook_err_t until_timers_fired(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  if (atomic_load(&timers_fired) == 2)
    return BROOK_DONE;
  return gen_fn(out, ctx, opaque);
}

static void test_processing_timers_fire_on_a_waiting_worker(void **state) {
  (void)state;
  static gen_t g;
  static seen_t seen;
  seen_init(&seen);
  atomic_store(&timers_fired, 0);
  brook_topology_t *t = new_topology();
  brook_stream_t *s = gen_source(t, until_timers_fired, &g, 1, 0);
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "timer_once",
                                      .open = timer_open,
                                      .process = timer_process,
                                      .close = timer_close,
                                      .on_timer = timer_fire};
  /* One split upstream would make one task after key_by (plan/): ask for two, one a worker. */
  brook_stream_t *keyed = brook_key_by(s, key_is_value, NULL);
  assert_int_equal(brook_stream_set_partitions(keyed, 2), BROOK_OK);
  s = brook_apply(keyed, &op, NULL);
  assert_int_equal(brook_sink_callback(s, count_sink, NULL, &seen), BROOK_OK); /* gets none */
  brook_runtime_t *rt = new_runtime(t, 2, 64);
  assert_int_equal(run_with_deadline(rt, 30000, NULL), BROOK_OK);
  assert_int_equal(atomic_load(&timers_fired), 2);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* ---- worker counts out of range are refused, saying why ---- */

static void test_refused_worker_counts_and_nodes(void **state) {
  (void)state;
  static gen_t g;
  brook_topology_t *t = new_topology();
  brook_stream_t *s = gen_source(t, gen_fn, &g, 2, 10);
  assert_int_equal(brook_sink_lines(s, "/dev/null", NULL), BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  brook_runtime_t *rt = NULL;
  ro.num_workers = 0;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "num_workers must be 1..256, got 0"));
  ro.num_workers = 257;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  assert_non_null(strstr(brook_topology_last_error(t), "num_workers must be 1..256, got 257"));
  ro.num_workers = 2; /* a line sink has one instance, on worker 0 (test_gather.c) */
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

int main(void) {
  worker_keys_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_counts_on_1_2_4_workers),
      cmocka_unit_test(test_tumbling_windows_same_on_1_2_4_workers),
      cmocka_unit_test(test_push_from_4_producers_same_counts),
      cmocka_unit_test(test_attach_3_workers_done_once_on_app_loop),
      cmocka_unit_test(test_stop_from_signal_handler_4_workers),
      cmocka_unit_test(test_failing_operator_on_worker_3_stops_all),
      cmocka_unit_test(test_alloc_failures_starting_4_workers),
      cmocka_unit_test(test_chained_exchanges_same_counts),
      cmocka_unit_test(test_processing_timers_fire_on_a_waiting_worker),
      cmocka_unit_test(test_refused_worker_counts_and_nodes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
