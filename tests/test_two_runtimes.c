/* Several runtimes in one process share nothing: two runtimes from two topologies running at
 * once on two threads, two runtimes of one topology on two threads, and two runtimes
 * attached to the same application loop, each with its own results, stop and on_done. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <uv.h>

/* ---- records carry a uint64_t; generators count up ---- */

typedef struct counter {
  uint64_t next;
  uint64_t step; /* each record is next * step */
} counter_t;

static brook_err_t gen_count(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  counter_t *c = opaque;
  uint64_t *v = brook_ctx_alloc(ctx, sizeof(*v));
  if (!v)
    return BROOK_ERR_NOMEM;
  *v = c->next++ * c->step;
  out->value = v;
  out->value_len = sizeof(*v);
  return BROOK_OK;
}

static uint64_t value_of(const brook_record_t *rec) {
  uint64_t v = 0;
  if (rec->value_len == sizeof(v))
    memcpy(&v, rec->value, sizeof(v));
  return v;
}

static brook_err_t map_square(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  uint64_t *v = brook_ctx_alloc(ctx, sizeof(*v));
  if (!v)
    return BROOK_ERR_NOMEM;
  *v = value_of(rec) * value_of(rec);
  rec->value = v;
  return BROOK_OK;
}

static int keep_odd(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return (int)(value_of(rec) & 1);
}

typedef struct sum_sink {
  uint64_t count, sum;
  int done_calls;
  brook_err_t done_status;
} sum_sink_t;

static brook_err_t sink_sum(const brook_record_t *rec, void *opaque) {
  sum_sink_t *s = opaque;
  s->count++;
  s->sum += value_of(rec);
  return BROOK_OK;
}

static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  (void)rt;
  sum_sink_t *s = opaque;
  s->done_calls++;
  s->done_status = status;
}

static brook_runtime_t *new_runtime(brook_topology_t *t, sum_sink_t *s, size_t batch_size) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.batch_size = batch_size;
  o.on_done = on_done;
  o.on_done_opaque = s;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  return rt;
}

/* ---- on two threads ---- */

typedef struct runner {
  brook_runtime_t *rt;
  pthread_barrier_t *start; /* both runs begin together */
  brook_err_t result;
} runner_t;

static void *run_thread(void *arg) {
  runner_t *r = arg;
  pthread_barrier_wait(r->start);
  r->result = brook_runtime_run(r->rt);
  return NULL;
}

static void run_both_on_threads(runner_t *a, runner_t *b) {
  pthread_barrier_t start;
  assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
  a->start = b->start = &start;
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, run_thread, a), 0);
  assert_int_equal(pthread_create(&tb, NULL, run_thread, b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  pthread_barrier_destroy(&start);
}

static void two_topologies_on_two_threads(void **state) {
  (void)state;
  /* A: 0..N-1 squared. B: the odd ones among 0, 3, 6, ... */
  const uint64_t na = 200000, nb = 300000;
  counter_t ca = {0, 1}, cb = {0, 3};
  sum_sink_t sa = {0}, sb = {0};
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);

  brook_topology_t *ta = NULL, *tb = NULL;
  assert_int_equal(brook_topology_new(&ta, NULL), BROOK_OK);
  go.limit = na;
  brook_stream_t *s =
      brook_map(brook_source_generator(ta, "a", gen_count, &ca, &go), map_square, NULL);
  assert_int_equal(brook_sink_callback(s, sink_sum, NULL, &sa), BROOK_OK);
  assert_int_equal(brook_topology_new(&tb, NULL), BROOK_OK);
  go.limit = nb;
  s = brook_filter(brook_source_generator(tb, "b", gen_count, &cb, &go), keep_odd, NULL);
  assert_int_equal(brook_sink_callback(s, sink_sum, NULL, &sb), BROOK_OK);

  runner_t ra = {new_runtime(ta, &sa, 100), NULL, BROOK_ERR_STATE};
  runner_t rb = {new_runtime(tb, &sb, 1000), NULL, BROOK_ERR_STATE};
  brook_topology_free(ta);
  brook_topology_free(tb);
  run_both_on_threads(&ra, &rb);

  assert_int_equal(ra.result, BROOK_OK);
  assert_int_equal(rb.result, BROOK_OK);
  uint64_t want_a = 0, want_b = 0, odd_b = 0;
  for (uint64_t i = 0; i < na; i++)
    want_a += i * i;
  for (uint64_t i = 0; i < nb; i++)
    if ((i * 3) & 1) {
      want_b += i * 3;
      odd_b++;
    }
  assert_int_equal(sa.count, na);
  assert_int_equal(sa.sum, want_a);
  assert_int_equal(sb.count, odd_b);
  assert_int_equal(sb.sum, want_b);
  assert_int_equal(sa.done_calls, 1);
  assert_int_equal(sb.done_calls, 1);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(ra.rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, na);
  assert_int_equal(st.records_out, na);
  assert_int_equal(brook_runtime_stats(rb.rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, nb);
  assert_int_equal(st.records_out, odd_b);
  brook_runtime_free(ra.rt);
  brook_runtime_free(rb.rt);
}

/* One topology, two runtimes at once: each gets its own operator instances. The callbacks
 * share their opaque, so the per-runtime state lives in thread-locals (each runtime runs on
 * its own thread). */
static _Thread_local counter_t tl_counter;
static _Thread_local sum_sink_t tl_sum;

static brook_err_t gen_thread_local(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  return gen_count(out, ctx, &tl_counter);
}

static brook_err_t sink_thread_local(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return sink_sum(rec, &tl_sum);
}

typedef struct shared_runner {
  runner_t r;
  uint64_t step;
  sum_sink_t result;
} shared_runner_t;

static void *run_shared(void *arg) {
  shared_runner_t *sr = arg;
  tl_counter = (counter_t){0, sr->step};
  memset(&tl_sum, 0, sizeof(tl_sum));
  run_thread(&sr->r);
  sr->result = tl_sum;
  return NULL;
}

static void one_topology_two_runtimes_on_two_threads(void **state) {
  (void)state;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = 100000;
  brook_stream_t *s = brook_source_generator(t, "gen", gen_thread_local, NULL, &go);
  assert_int_equal(
      brook_sink_callback(brook_map(s, map_square, NULL), sink_thread_local, NULL, NULL), BROOK_OK);
  brook_runtime_t *a = NULL, *b = NULL;
  assert_int_equal(brook_runtime_new(&a, t, NULL), BROOK_OK);
  assert_int_equal(brook_runtime_new(&b, t, NULL), BROOK_OK);
  brook_topology_free(t); /* both runtimes keep it alive */

  pthread_barrier_t start;
  assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
  shared_runner_t ra = {{a, &start, BROOK_ERR_STATE}, 1, {0}};
  shared_runner_t rb = {{b, &start, BROOK_ERR_STATE}, 2, {0}};
  pthread_t tha, thb;
  assert_int_equal(pthread_create(&tha, NULL, run_shared, &ra), 0);
  assert_int_equal(pthread_create(&thb, NULL, run_shared, &rb), 0);
  pthread_join(tha, NULL);
  pthread_join(thb, NULL);
  pthread_barrier_destroy(&start);

  assert_int_equal(ra.r.result, BROOK_OK);
  assert_int_equal(rb.r.result, BROOK_OK);
  uint64_t want = 0;
  for (uint64_t i = 0; i < 100000; i++)
    want += i * i;
  assert_int_equal(ra.result.count, 100000);
  assert_int_equal(ra.result.sum, want);
  assert_int_equal(rb.result.count, 100000);
  assert_int_equal(rb.result.sum, want * 4); /* (2i)^2 */
  brook_runtime_free(a);
  brook_runtime_free(b);
}

/* ---- two runtimes on one application loop ---- */

typedef struct pair {
  brook_runtime_t *unbounded; /* runs until stopped */
  sum_sink_t *unbounded_sink;
  sum_sink_t *bounded_sink;
  uint64_t unbounded_count_at_bounded_done;
} pair_t;

static void on_bounded_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  pair_t *p = opaque;
  on_done(rt, status, p->bounded_sink);
  /* B finished while A ran flat out beside it: now stop A, and free B here. */
  p->unbounded_count_at_bounded_done = p->unbounded_sink->count;
  brook_runtime_stop(p->unbounded);
  brook_runtime_free(rt);
}

static void two_runtimes_on_one_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  counter_t ca = {0, 1}, cb = {0, 1};
  sum_sink_t sa = {0}, sb = {0};

  brook_topology_t *ta = NULL, *tb = NULL;
  assert_int_equal(brook_topology_new(&ta, NULL), BROOK_OK);
  assert_int_equal(brook_sink_callback(brook_source_generator(ta, "a", gen_count, &ca, NULL),
                                       sink_sum, NULL, &sa),
                   BROOK_OK);
  brook_runtime_t *a = new_runtime(ta, &sa, 256);
  brook_topology_free(ta);

  pair_t p = {a, &sa, &sb, 0};
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = 50000;
  assert_int_equal(brook_topology_new(&tb, NULL), BROOK_OK);
  assert_int_equal(brook_sink_callback(brook_source_generator(tb, "b", gen_count, &cb, &go),
                                       sink_sum, NULL, &sb),
                   BROOK_OK);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.batch_size = 256;
  o.on_done = on_bounded_done;
  o.on_done_opaque = &p;
  brook_runtime_t *b = NULL;
  assert_int_equal(brook_runtime_new(&b, tb, &o), BROOK_OK);
  brook_topology_free(tb);

  assert_int_equal(brook_runtime_start(a, &loop), BROOK_OK);
  assert_int_equal(brook_runtime_start(b, &loop), BROOK_OK);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* both finished and closed */

  /* B was not starved by A (slices take turns on the loop) and finished correctly. */
  assert_int_equal(sb.done_calls, 1);
  assert_int_equal(sb.done_status, BROOK_OK);
  assert_int_equal(sb.count, 50000);
  assert_int_equal(sb.sum, (uint64_t)50000 * 49999 / 2);
  /* A ran alongside B, and was stopped by B's on_done: it is finished too. */
  assert_true(p.unbounded_count_at_bounded_done > 0);
  assert_int_equal(sa.done_calls, 1);
  assert_int_equal(sa.done_status, BROOK_OK);
  assert_true(sa.count >= p.unbounded_count_at_bounded_done);
  assert_int_equal(sa.sum, sa.count * (sa.count - 1) / 2); /* 0..count-1, each once */
  assert_int_equal(brook_runtime_done(a), 1);
  brook_runtime_free(a);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Push sources with the same name in two runtimes are separate queues. */
static void same_push_source_name_in_two_runtimes(void **state) {
  (void)state;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  sum_sink_t shared = {0}; /* both runtimes run on this thread, one at a time */
  assert_int_equal(brook_sink_callback(brook_source_push(t, "in", NULL), sink_sum, NULL, &shared),
                   BROOK_OK);
  brook_runtime_t *a = NULL, *b = NULL;
  assert_int_equal(brook_runtime_new(&a, t, NULL), BROOK_OK);
  assert_int_equal(brook_runtime_new(&b, t, NULL), BROOK_OK);
  brook_topology_free(t);
  brook_push_source_t *pa = brook_runtime_push_source(a, "in");
  brook_push_source_t *pb = brook_runtime_push_source(b, "in");
  assert_non_null(pa);
  assert_non_null(pb);
  assert_ptr_not_equal(pa, pb);
  for (uint64_t i = 1; i <= 10; i++) {
    brook_record_t rec = {.value = &i, .value_len = sizeof(i)};
    assert_int_equal(brook_push(pa, &rec), BROOK_OK);
  }
  uint64_t big = 1000;
  brook_record_t rec = {.value = &big, .value_len = sizeof(big)};
  assert_int_equal(brook_push(pb, &rec), BROOK_OK);
  assert_int_equal(brook_push_end(pa), BROOK_OK);
  assert_int_equal(brook_push(pb, &rec), BROOK_OK); /* ending A's source leaves B's open */
  assert_int_equal(brook_push_end(pb), BROOK_OK);

  assert_int_equal(brook_runtime_run(a), BROOK_OK);
  assert_int_equal(shared.count, 10);
  assert_int_equal(shared.sum, 55);
  assert_int_equal(brook_runtime_run(b), BROOK_OK);
  assert_int_equal(shared.count, 12);
  assert_int_equal(shared.sum, 2055);
  brook_runtime_free(a);
  brook_runtime_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(two_topologies_on_two_threads),
      cmocka_unit_test(one_topology_two_runtimes_on_two_threads),
      cmocka_unit_test(two_runtimes_on_one_loop),
      cmocka_unit_test(same_push_source_name_in_two_runtimes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
