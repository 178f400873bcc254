/* A generator in front of a fused chain (runtime/fuse.h): each record is made and goes through
 * the whole chain before the next one is made. What users can see of it: the order of the
 * callbacks, and under BROOK_ON_ERROR_FAIL the first record of the batch that fails, in the
 * generator or in the chain, is the failure (nothing is made after it). What must not change:
 * outputs, skipped and routed failures, limits, batch bounds, splits on N workers, and event
 * time when something downstream uses it (then the batch is made first, stamped, and goes on). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "call_log.h"
#include "collect.h"

#define N_IN 12

static const char *in_values[N_IN];

/* ---- the log (call_log.h), with the generator's calls: "g3" = it made record 3 ---- */

typedef struct logged {
  call_log_t log; /* first: the filter's and map's opaque */
  collect_gen_t gen;
  collect_t errs, out;
  collect_run_t run;
} logged_t;

static brook_err_t log_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  logged_t *l = opaque;
  size_t i = l->gen.next;
  brook_err_t err = collect_gen_fn(out, ctx, &l->gen);
  if (err != BROOK_DONE)
    call_log_add(&l->log, 'g', i);
  return err;
}

static brook_err_t log_sink(const brook_record_t *rec, void *opaque) {
  logged_t *l = opaque;
  call_log_sink(rec, &l->log);
  return collect_sink_fn(rec, &l->out);
}

typedef struct shape {
  brook_error_policy_t policy;
  size_t batch;     /* 0: default */
  int fan_out;      /* a second consumer of the source: no fusion */
  size_t gen_fails; /* record the generator fails on (N_IN: none), with -43 */
  size_t filter_at; /* N_IN: never */
  size_t map_at;    /* N_IN: never */
  uint64_t limit;   /* the generator's; 0: none */
} shape_t;

/* src -> filter -> map -> sink, all logged. */
static void logged_run(logged_t *l, const shape_t *s) {
  memset(l, 0, sizeof(*l));
  l->log.filter_fails_at = s->filter_at;
  l->log.map_fails_at = s->map_at;
  collect_init(&l->errs);
  collect_init(&l->out);
  collect_gen_init(&l->gen, in_values, N_IN);
  l->gen.ts_base = 0;
  if (s->gen_fails < N_IN) {
    l->gen.fail_index = s->gen_fails;
    l->gen.fail_err = -43;
  }
  brook_topology_t *t = collect_topology(s->policy);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = s->limit;
  brook_stream_t *src = brook_source_generator(t, "src", log_gen, l, &go);
  brook_stream_t *f = brook_stream_set_name(brook_filter(src, call_log_filter, &l->log), "filter");
  brook_stream_t *m = brook_stream_set_name(brook_map(f, call_log_map, &l->log), "map");
  assert_int_equal(brook_sink_callback(m, log_sink, NULL, l), BROOK_OK);
  collect_t other;
  collect_init(&other);
  if (s->fan_out)
    assert_int_equal(collect_sink(src, &other), BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &l->errs), BROOK_OK);
  collect_run_batch(t, s->batch, &l->run);
  collect_free(&other);
  brook_topology_free(t);
}

static void logged_free(logged_t *l) {
  collect_free(&l->errs);
  collect_free(&l->out);
}

static shape_t plain(brook_error_policy_t policy) {
  return (shape_t){policy, 0, 0, N_IN, N_IN, N_IN, 0};
}

static const char *const all_through =
    "g0 f0 m0 s0 g1 f1 m1 s1 g2 f2 m2 s2 g3 f3 g4 f4 m4 s4 g5 f5 m5 s5 g6 f6 m6 s6 g7 f7 g8 f8 m8 "
    "s8 g9 f9 m9 s9 g10 f10 m10 s10 g11 f11";

static void test_generator_runs_in_front_of_the_chain(void **state) {
  (void)state;
  logged_t l;
  size_t batches[] = {0, 1, 5, 12};
  for (size_t b = 0; b < 4; b++) { /* batch bounds do not change the order */
    shape_t s = plain(BROOK_ON_ERROR_FAIL);
    s.batch = batches[b];
    logged_run(&l, &s);
    assert_int_equal(l.run.status, BROOK_OK);
    assert_string_equal(l.log.text, all_through);
    assert_int_equal(l.run.stats.records_in, N_IN);
    assert_int_equal(l.run.stats.records_out, 9);
    assert_int_equal(l.out.n, 9);
    logged_free(&l);
  }
  /* A second consumer of the source: the batch is made first, then goes to both. */
  shape_t s = plain(BROOK_ON_ERROR_FAIL);
  s.fan_out = 1;
  logged_run(&l, &s);
  assert_int_equal(l.run.status, BROOK_OK);
  assert_string_equal(l.log.text,
                      "g0 g1 g2 g3 g4 g5 g6 g7 g8 g9 g10 g11 f0 m0 s0 f1 m1 s1 f2 m2 s2 "
                      "f3 f4 m4 s4 f5 m5 s5 f6 m6 s6 f7 f8 m8 s8 f9 m9 s9 f10 m10 s10 f11");
  assert_int_equal(l.run.stats.records_in, N_IN);
  logged_free(&l);
}

/* Under FAIL, the first record of the batch to fail, in the generator or in the chain, is the
 * failure; nothing is made after it, and what came before it went through the whole chain. */
static void test_fail_order_with_the_generator(void **state) {
  (void)state;
  logged_t l;
  shape_t s = plain(BROOK_ON_ERROR_FAIL);
  s.gen_fails = 5;
  s.filter_at = 2;
  logged_run(&l, &s);
  assert_int_equal(l.run.status, -41);
  assert_non_null(strstr(l.run.message, "operator 'filter' failed on a record"));
  assert_string_equal(l.log.text, "g0 f0 m0 s0 g1 f1 m1 s1 g2 f2");
  assert_int_equal(l.run.stats.records_out, 2);
  assert_int_equal(l.run.stats.records_in, 3);
  logged_free(&l);

  s = plain(BROOK_ON_ERROR_FAIL);
  s.gen_fails = 2;
  s.map_at = 6;
  logged_run(&l, &s);
  assert_int_equal(l.run.status, -43);
  assert_non_null(strstr(l.run.message, "operator 'src' failed on a record"));
  assert_non_null(strstr(l.run.message, "generator callback failed"));
  assert_string_equal(l.log.text, "g0 f0 m0 s0 g1 f1 m1 s1 g2");
  assert_int_equal(l.run.stats.records_out, 2);
  assert_int_equal(l.out.n, 2);
  logged_free(&l);
}

static brook_err_t add_one(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  rec->timestamp++;
  return BROOK_OK;
}

/* ---- a failure in the generator: what came before it still goes on after the line ---- */

static brook_err_t pass_on(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  return brook_emit(ctx, rec);
}

static void test_records_before_a_generator_failure_go_on(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t gen;
  collect_gen_init(&gen, in_values, N_IN);
  gen.fail_index = 3;
  gen.fail_err = -43;
  /* map is a line of one with the generator in front; flat_map ends it */
  brook_stream_t *s = brook_map(collect_gen_source(t, "src", &gen), add_one, NULL);
  collect_t out;
  collect_init(&out);
  assert_int_equal(collect_sink(brook_flat_map(s, pass_on, NULL), &out), BROOK_OK);
  collect_run_t run;
  collect_run_batch(t, 0, &run);
  assert_int_equal(run.status, -43);
  assert_non_null(strstr(run.message, "generator callback failed"));
  const char *before[] = {"r0", "r1", "r2"};
  collect_assert_values(&out, before, 3);
  collect_free(&out);
  brook_topology_free(t);
}

/* SKIP and ROUTE: the generator's failed record is dropped or routed, the next one is made in
 * its place, and it does not count against the limit nor the batch's room. */
static void test_generator_failures_skipped_and_routed(void **state) {
  (void)state;
  logged_t l;
  shape_t s = plain(BROOK_ON_ERROR_SKIP);
  s.gen_fails = 1;
  s.batch = 4;
  s.limit = 7; /* records made: r0 and r2..r7 */
  logged_run(&l, &s);
  assert_int_equal(l.run.status, BROOK_OK);
  assert_int_equal(l.run.stats.records_skipped, 1);
  assert_int_equal(l.run.stats.records_in, 7);
  assert_int_equal(l.run.stats.batches, 2);
  const char *kept[] = {"r0", "r2", "r4", "r5", "r6"}; /* r3 and r7 filtered out */
  collect_assert_values(&l.out, kept, 5);
  logged_free(&l);

  s = plain(BROOK_ON_ERROR_ROUTE);
  s.gen_fails = 4;
  s.map_at = 1;
  logged_run(&l, &s);
  assert_int_equal(l.run.status, BROOK_OK);
  assert_int_equal(l.run.stats.records_routed, 2);
  assert_int_equal(l.errs.n, 2);
  assert_string_equal(collect_value(&l.errs, 0), "r1");
  assert_string_equal(collect_header(&l.errs, 0, "brook.error.operator"), "map");
  assert_string_equal(collect_value(&l.errs, 1), "r4");
  assert_string_equal(collect_header(&l.errs, 1, "brook.error.operator"), "src");
  assert_string_equal(collect_header(&l.errs, 1, "brook.error.message"),
                      "generator callback failed");
  assert_int_equal(l.out.n, 9 - 2);
  assert_int_equal(l.run.stats.records_in, N_IN - 1);
  logged_free(&l);
}

/* ---- the batch bound after the chain: a user operator sees batches of at most batch_size ---- */

typedef struct batch_seen {
  size_t records, largest, batches;
} batch_seen_t;

static brook_err_t seen_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static brook_err_t wm_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)ctx, (void)state, (void)rec;
  return BROOK_OK;
}

static brook_err_t seen_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  (void)ctx, (void)recs;
  batch_seen_t *b = state;
  b->records += n;
  b->batches++;
  if (n > b->largest)
    b->largest = n;
  return BROOK_OK;
}

static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

static void test_batches_after_the_chain_keep_their_bound(void **state) {
  (void)state;
  size_t batches[] = {1, 3, 1024};
  for (size_t b = 0; b < 3; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t gen;
    collect_gen_init(&gen, in_values, N_IN);
    brook_stream_t *s =
        brook_map(brook_filter(collect_gen_source(t, "src", &gen), keep_all, NULL), add_one, NULL);
    batch_seen_t seen = {0};
    brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                           .type_name = "seen",
                           .open = seen_open,
                           .process = wm_process,
                           .process_batch = seen_batch};
    brook_operator_opts_t oo;
    brook_operator_opts_init(&oo);
    oo.n_outputs = 0;
    assert_int_equal(brook_operator_add(&s, 1, &op, &seen, &oo, NULL), BROOK_OK);
    collect_run_t run;
    collect_run_batch(t, batches[b], &run);
    assert_int_equal(run.status, BROOK_OK);
    assert_int_equal(seen.records, N_IN);
    assert_true(seen.largest <= batches[b]);
    assert_int_equal(seen.batches, (N_IN + batches[b] - 1) / batches[b]);
    brook_topology_free(t);
  }
}

/* ---- splits on 1 and 2 workers ---- */

#define SPLITS 4
#define PER_SPLIT 2500

typedef struct split_gen {
  atomic_size_t next[SPLITS];
  atomic_size_t seen[SPLITS]; /* records the sink got, by the split in their value */
  atomic_size_t wrong;        /* records whose split or sequence was not what was made */
} split_gen_t;

static uint64_t made_value[SPLITS][PER_SPLIT]; /* split * PER_SPLIT + i, stable for the run */

static brook_err_t split_gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  split_gen_t *g = opaque;
  size_t split = brook_ctx_split(ctx);
  if (brook_ctx_split_count(ctx) != SPLITS || split >= SPLITS)
    return BROOK_ERR_STATE;
  size_t i = atomic_fetch_add(&g->next[split], 1);
  if (i >= PER_SPLIT)
    return BROOK_DONE;
  made_value[split][i] = split * PER_SPLIT + i;
  out->value = &made_value[split][i];
  out->value_len = sizeof(uint64_t);
  out->timestamp = (brook_time_t)i;
  return BROOK_OK;
}

static brook_err_t split_sink(const brook_record_t *rec, void *opaque) {
  split_gen_t *g = opaque;
  uint64_t v;
  memcpy(&v, rec->value, sizeof(v));
  size_t split = v / PER_SPLIT;
  if (split >= SPLITS || (brook_time_t)(v % PER_SPLIT) + 1 != rec->timestamp) {
    atomic_fetch_add(&g->wrong, 1);
    return BROOK_OK;
  }
  atomic_fetch_add(&g->seen[split], 1);
  return BROOK_OK;
}

static void test_splits_on_workers(void **state) {
  (void)state;
  for (size_t workers = 1; workers <= 2; workers++) {
    split_gen_t g;
    memset(&g, 0, sizeof(g));
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    brook_generator_opts_t go;
    brook_generator_opts_init(&go);
    go.splits = SPLITS;
    brook_stream_t *s = brook_source_generator(t, "src", split_gen_fn, &g, &go);
    s = brook_map(brook_filter(s, keep_all, NULL), add_one, NULL);
    assert_int_equal(brook_sink_callback(s, split_sink, NULL, &g), BROOK_OK);
    brook_runtime_opts_t ro;
    brook_runtime_opts_init(&ro);
    ro.num_workers = workers;
    ro.batch_size = 100;
    collect_run_t run;
    collect_run_topology(t, &ro, NULL, NULL, &run);
    assert_int_equal(run.status, BROOK_OK);
    assert_int_equal(atomic_load(&g.wrong), 0);
    for (size_t k = 0; k < SPLITS; k++)
      assert_int_equal(atomic_load(&g.seen[k]), PER_SPLIT);
    assert_int_equal(run.stats.records_in, SPLITS * PER_SPLIT);
    assert_int_equal(run.stats.records_out, SPLITS * PER_SPLIT);
    brook_topology_free(t);
  }
}

/* ---- event time used downstream: each batch is stamped and observed before it goes on ---- */

static const brook_time_t late_ts[] = {1000, 2000, 3000, 10, 4000};

static brook_err_t late_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  size_t *next = opaque;
  if (*next == sizeof(late_ts) / sizeof(late_ts[0]))
    return BROOK_DONE;
  out->timestamp = late_ts[(*next)++];
  return BROOK_OK;
}

static brook_err_t wm_seen(brook_ctx_t *ctx, void *state, brook_time_t watermark) {
  (void)ctx;
  *(brook_time_t *)state = watermark;
  return BROOK_OK;
}

static void test_event_time_downstream_is_kept(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  size_t next = 0;
  brook_stream_t *s = brook_source_generator(t, "src", late_gen, &next, NULL);
  s = brook_map(brook_filter(s, keep_all, NULL), add_one, NULL);
  brook_time_t last_wm = BROOK_TIME_MIN;
  brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                         .type_name = "wm",
                         .open = seen_open,
                         .process = wm_process,
                         .on_watermark = wm_seen};
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.n_outputs = 0;
  assert_int_equal(brook_operator_add(&s, 1, &op, &last_wm, &oo, NULL), BROOK_OK);
  collect_run_t run;
  collect_run_batch(t, 1, &run);
  assert_int_equal(run.status, BROOK_OK);
  assert_int_equal(run.stats.records_in, 5);
  /* The record at 10 came after the watermark passed 2999: stamped and observed. */
  assert_int_equal(run.stats.records_behind_watermark, 1);
  assert_true(last_wm >= 3999);
  brook_topology_free(t);
}

int main(void) {
  for (size_t i = 0; i < N_IN; i++)
    in_values[i] = collect_strf("r%zu", i);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_generator_runs_in_front_of_the_chain),
      cmocka_unit_test(test_fail_order_with_the_generator),
      cmocka_unit_test(test_records_before_a_generator_failure_go_on),
      cmocka_unit_test(test_generator_failures_skipped_and_routed),
      cmocka_unit_test(test_batches_after_the_chain_keep_their_bound),
      cmocka_unit_test(test_splits_on_workers),
      cmocka_unit_test(test_event_time_downstream_is_kept),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
