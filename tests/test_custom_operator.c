/* User-written operators (brook_operator_add): the life cycle (open, process, end_of_input,
 * flush, close), configuration and names, several inputs and outputs, the batch interface,
 * and failures (open failing, emitting to a port that does not exist). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <uv.h>

#include "collect.h"

static const size_t batch_sizes[] = {0, 3, 1};
#define N_BATCH_SIZES (sizeof(batch_sizes) / sizeof(batch_sizes[0]))

static const char *const seven[] = {"a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"};
#define N_SEVEN 7

/* Emits a copy of `rec` with value `text` (copied into batch memory). */
static brook_err_t emit_text_to(brook_ctx_t *ctx, size_t port, const brook_record_t *rec,
                                const char *text) {
  size_t n = strlen(text);
  char *v = brook_ctx_alloc(ctx, n + 1);
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, text, n + 1);
  brook_record_t out = rec ? *rec : (brook_record_t){0};
  out.value = v;
  out.value_len = n;
  return brook_emit_to(ctx, port, &out);
}

/* ---- a running counter: forwards every record, emits "total=<n>" at end of input ---- */

typedef struct life {
  int opens, closes, eois, flushes;
  long processed;
  char events[8192]; /* o=open p=process e=end_of_input f=flush c=close */
  size_t n_events;
  brook_err_t fail_open;    /* open returns this if set */
  const char *fail_process; /* process fails for this value */
} life_t;

static void life_event(life_t *l, char e) {
  if (l->n_events + 1 < sizeof(l->events))
    l->events[l->n_events++] = e;
}

typedef struct counter_state {
  life_t *life;
  long count;
} counter_state_t;

static brook_err_t counter_open(brook_ctx_t *ctx, void *opaque, void **state) {
  life_t *l = opaque;
  life_event(l, 'o');
  if (l->fail_open) {
    brook_ctx_set_error(ctx, "no backend for '%s'", brook_ctx_name(ctx));
    return l->fail_open;
  }
  counter_state_t *s = calloc(1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->life = l;
  l->opens++;
  *state = s;
  return BROOK_OK;
}

static brook_err_t counter_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  counter_state_t *s = state;
  life_event(s->life, 'p');
  s->life->processed++;
  const char *f = s->life->fail_process;
  if (f && rec->value_len == strlen(f) && memcmp(rec->value, f, rec->value_len) == 0)
    return BROOK_ERR_USER;
  s->count++;
  return brook_emit(ctx, rec);
}

static brook_err_t counter_end(brook_ctx_t *ctx, void *state) {
  counter_state_t *s = state;
  life_event(s->life, 'e');
  s->life->eois++;
  char text[64];
  snprintf(text, sizeof(text), "total=%ld", s->count);
  return emit_text_to(ctx, 0, NULL, text);
}

static brook_err_t counter_flush(brook_ctx_t *ctx, void *state) {
  (void)ctx;
  counter_state_t *s = state;
  life_event(s->life, 'f');
  s->life->flushes++;
  return BROOK_OK;
}

static void counter_close(void *state, void *opaque) {
  life_t *l = opaque;
  life_event(l, 'c');
  l->closes++;
  free(state);
}

static const brook_operator_t counter_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "counter",
    .open = counter_open,
    .process = counter_process,
    .end_of_input = counter_end,
    .flush = counter_flush,
    .close = counter_close,
};

static void test_life_cycle_and_total(void **state) {
  (void)state;
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    life_t life = {0};
    collect_t out;
    collect_init(&out);
    brook_stream_t *c = brook_apply(collect_gen_source(t, "src", &g), &counter_op, &life);
    assert_non_null(c);
    assert_int_equal(strncmp(brook_stream_name(c), "counter#", 8), 0);
    assert_int_equal(collect_sink(c, &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    const char *expected[N_SEVEN + 1];
    memcpy(expected, seven, sizeof(seven));
    expected[N_SEVEN] = "total=7";
    collect_assert_values(&out, expected, N_SEVEN + 1);
    assert_int_equal(life.opens, 1);
    assert_int_equal(life.closes, 1);
    assert_int_equal(life.eois, 1);
    assert_true(life.flushes >= 1);
    assert_true(out.flushes >= 1); /* the sink was flushed too */
    /* Order: open first, every process before end_of_input, a flush after it, close last. */
    life.events[life.n_events] = '\0';
    const char *ev = life.events;
    assert_int_equal(ev[0], 'o');
    assert_int_equal(ev[life.n_events - 1], 'c');
    const char *e = strchr(ev, 'e');
    assert_non_null(e);
    assert_null(strchr(e, 'p'));
    assert_non_null(strchr(e, 'f'));
    assert_int_equal(strchr(ev, 'c'), ev + life.n_events - 1);
    size_t ps = 0;
    for (const char *p = ev; *p; p++)
      ps += *p == 'p';
    assert_int_equal(ps, N_SEVEN);
    brook_topology_free(t);
    collect_free(&out);
  }
}

static void test_end_of_input_in_topological_order(void **state) {
  (void)state;
  /* counter A -> counter B: B's end of input comes after A's total went through B. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, seven, N_SEVEN);
  life_t la = {0}, lb = {0};
  collect_t out;
  collect_init(&out);
  brook_stream_t *s = brook_apply(brook_apply(collect_gen_source(t, "src", &g), &counter_op, &la),
                                  &counter_op, &lb);
  assert_int_equal(collect_sink(s, &out), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  assert_int_equal(out.n, N_SEVEN + 2);
  assert_string_equal(collect_value(&out, N_SEVEN), "total=7");
  assert_string_equal(collect_value(&out, N_SEVEN + 1), "total=8");
  brook_topology_free(t);
  collect_free(&out);
}

/* Emits 5000 records from end_of_input: more than a batch, delivered through full ports. */
static brook_err_t flood_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)ctx, (void)state, (void)rec;
  return BROOK_OK;
}

static brook_err_t flood_end(brook_ctx_t *ctx, void *state) {
  (void)state;
  for (int i = 0; i < 5000; i++) {
    char text[32];
    snprintf(text, sizeof(text), "f%d", i);
    brook_err_t err = emit_text_to(ctx, 0, NULL, text);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static void test_end_of_input_emits_many(void **state) {
  (void)state;
  static const brook_operator_t flood = {.version = BROOK_OPERATOR_VERSION,
                                         .type_name = "flood",
                                         .process = flood_process,
                                         .end_of_input = flood_end};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    collect_t out;
    collect_init(&out);
    assert_int_equal(
        collect_sink(brook_apply(collect_gen_source(t, "src", &g), &flood, NULL), &out), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    assert_int_equal(out.n, 5000);
    for (size_t i = 0; i < out.n; i++)
      assert_string_equal(collect_value(&out, i), collect_strf("f%zu", i));
    brook_topology_free(t);
    collect_free(&out);
  }
}

static brook_err_t eoi_fail(brook_ctx_t *ctx, void *state) {
  (void)state;
  brook_ctx_set_error(ctx, "final flush of %s refused", brook_ctx_name(ctx));
  return BROOK_ERR_IO;
}

static void test_end_of_input_failure(void **state) {
  (void)state;
  /* A failing end_of_input fails the run (no record to apply a policy to), with the
   * operator's explanation; the operator is still closed once. */
  brook_operator_t op = counter_op;
  op.end_of_input = eoi_fail;
  for (int policy = BROOK_ON_ERROR_FAIL; policy <= BROOK_ON_ERROR_SKIP; policy++) {
    brook_topology_t *t = collect_topology((brook_error_policy_t)policy);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    life_t life = {0};
    collect_t c;
    collect_init(&c);
    brook_stream_t *s =
        brook_stream_set_name(brook_apply(collect_gen_source(t, "src", &g), &op, &life), "final");
    assert_int_equal(collect_sink(s, &c), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_IO);
    assert_non_null(strstr(r.message, "final flush of final refused"));
    assert_int_equal(r.stats.records_skipped, 0);
    assert_int_equal(c.n, N_SEVEN); /* everything before the end went through */
    assert_int_equal(life.opens, 1);
    assert_int_equal(life.closes, 1);
    brook_topology_free(t);
    collect_free(&c);
  }
}

/* ---- configuration and names ---- */

static brook_err_t decorate_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  const char *pre = brook_ctx_config(ctx, "prefix");
  const char *suf = brook_ctx_config(ctx, "suffix");
  if (!pre || !suf || brook_ctx_config(ctx, "missing") || brook_ctx_config(ctx, NULL))
    return BROOK_ERR_NOT_FOUND;
  char text[128];
  snprintf(text, sizeof(text), "%s%s%.*s%s", brook_ctx_name(ctx), pre, (int)rec->value_len,
           (const char *)rec->value, suf);
  return emit_text_to(ctx, 0, rec, text);
}

static const brook_operator_t decorate_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "decorate", .process = decorate_process};

static void test_config_and_name(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, seven, 3);
  char k1[] = "prefix", v1[] = "<", k2[] = "suffix", v2[] = ">";
  const char *config[] = {k1, v1, k2, v2, NULL};
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  assert_int_equal(o.n_outputs, 1);
  char name[] = "deco";
  o.name = name;
  o.config = config;
  brook_stream_t *src = collect_gen_source(t, "src", &g), *out = NULL;
  assert_int_equal(brook_operator_add(&src, 1, &decorate_op, NULL, &o, &out), BROOK_OK);
  assert_non_null(out);
  /* Name and configuration were copied. */
  memset(k1, 'x', sizeof(k1) - 1);
  memset(v1, 'x', sizeof(v1) - 1);
  memset(name, 'x', sizeof(name) - 1);
  assert_string_equal(brook_stream_name(out), "deco");
  collect_t c;
  collect_init(&c);
  assert_int_equal(collect_sink(out, &c), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  static const char *const expected[] = {"deco<a>", "deco<bb>", "deco<ccc>"};
  collect_assert_values(&c, expected, 3);
  brook_topology_free(t);
  collect_free(&c);
}

/* ---- two inputs, two outputs ---- */

static brook_err_t tag_input(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  char text[64];
  snprintf(text, sizeof(text), "%zu:%.*s", brook_ctx_input(ctx), (int)rec->value_len,
           (const char *)rec->value);
  return emit_text_to(ctx, 0, rec, text);
}

static void test_two_inputs(void **state) {
  (void)state;
  static const brook_operator_t tag_op = {
      .version = BROOK_OPERATOR_VERSION, .type_name = "tag", .process = tag_input};
  static const char *const left[] = {"l0", "l1", "l2", "l3", "l4"};
  static const char *const right[] = {"r0", "r1", "r2"};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t gl, gr;
    collect_gen_init(&gl, left, 5);
    collect_gen_init(&gr, right, 3);
    brook_stream_t *ins[2] = {collect_gen_source(t, "L", &gl), collect_gen_source(t, "R", &gr)};
    brook_stream_t *out = NULL;
    assert_int_equal(brook_operator_add(ins, 2, &tag_op, NULL, NULL, &out), BROOK_OK);
    collect_t c;
    collect_init(&c);
    assert_int_equal(collect_sink(out, &c), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    assert_int_equal(c.n, 8);
    size_t nl = 0, nr = 0;
    for (size_t i = 0; i < c.n; i++) {
      const char *v = collect_value(&c, i);
      if (v[2] == 'l')
        assert_string_equal(v, collect_strf("0:%s", left[nl++]));
      else
        assert_string_equal(v, collect_strf("1:%s", right[nr++]));
    }
    assert_int_equal(nl, 5);
    assert_int_equal(nr, 3);
    brook_topology_free(t);
    collect_free(&c);
  }
}

static brook_err_t split_by_parity(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit_to(ctx, rec->value_len % 2, rec);
}

static void test_two_outputs(void **state) {
  (void)state;
  static const brook_operator_t split_op = {
      .version = BROOK_OPERATOR_VERSION, .type_name = "split", .process = split_by_parity};
  static const char *const even[] = {"bb", "dddd", "ffffff"};
  static const char *const odd[] = {"a", "ccc", "eeeee", "g"};
  for (size_t b = 0; b < N_BATCH_SIZES; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    brook_operator_opts_t o;
    brook_operator_opts_init(&o);
    o.n_outputs = 2;
    brook_stream_t *src = collect_gen_source(t, "src", &g), *outs[2] = {NULL, NULL};
    assert_int_equal(brook_operator_add(&src, 1, &split_op, NULL, &o, outs), BROOK_OK);
    assert_non_null(outs[0]);
    assert_non_null(outs[1]);
    assert_ptr_not_equal(outs[0], outs[1]);
    collect_t c0, c1;
    collect_init(&c0);
    collect_init(&c1);
    assert_int_equal(collect_sink(outs[0], &c0), BROOK_OK);
    assert_int_equal(collect_sink(outs[1], &c1), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, batch_sizes[b], &r), BROOK_OK);
    collect_assert_values(&c0, even, 3);
    collect_assert_values(&c1, odd, 4);
    brook_topology_free(t);
    collect_free(&c0);
    collect_free(&c1);
  }
}

/* ---- the batch interface ---- */

typedef struct batch_seen {
  size_t calls, max_n, total;
} batch_seen_t;

static brook_err_t batch_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

/* Emits a marker "batch:<n>" one by one, then forwards the whole batch without copying. */
static brook_err_t marker_then_forward(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                       size_t n) {
  batch_seen_t *s = state;
  s->calls++;
  s->total += n;
  if (n > s->max_n)
    s->max_n = n;
  char text[32];
  snprintf(text, sizeof(text), "batch:%zu", n);
  brook_err_t err = emit_text_to(ctx, 0, NULL, text);
  if (err < 0)
    return err;
  return brook_emit_batch(ctx, 0, recs, n);
}

static void test_process_batch_forwarding(void **state) {
  (void)state;
  static const brook_operator_t fwd_op = {.version = BROOK_OPERATOR_VERSION,
                                          .type_name = "forward",
                                          .open = batch_open,
                                          .process_batch = marker_then_forward};
  const size_t bs[] = {3, 1, 1024};
  for (size_t b = 0; b < 3; b++) {
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    batch_seen_t seen = {0};
    collect_t c;
    collect_init(&c);
    assert_int_equal(
        collect_sink(brook_apply(collect_gen_source(t, "src", &g), &fwd_op, &seen), &c), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, bs[b], &r), BROOK_OK);
    /* Expected: per source batch, the marker first, then that batch's records in order. */
    const char *expected[2 * N_SEVEN];
    size_t k = 0;
    for (size_t i = 0; i < N_SEVEN; i += bs[b]) {
      size_t n = N_SEVEN - i < bs[b] ? N_SEVEN - i : bs[b];
      expected[k++] = collect_strf("batch:%zu", n);
      for (size_t j = 0; j < n; j++)
        expected[k++] = seven[i + j];
    }
    collect_assert_values(&c, expected, k);
    assert_int_equal(seen.total, N_SEVEN);
    assert_true(seen.max_n <= bs[b]);
    brook_topology_free(t);
    collect_free(&c);
  }
}

/* Per-record failures inside process_batch go through brook_ctx_fail_record. */
static brook_err_t batch_fail_some(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                   size_t n) {
  (void)state;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err;
    if (recs[i].value_len == 3)
      err = brook_ctx_fail_record(ctx, &recs[i], BROOK_ERR_TOO_LARGE, "record '%.*s' is bad",
                                  (int)recs[i].value_len, (const char *)recs[i].value);
    else
      err = brook_emit(ctx, &recs[i]);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static void test_process_batch_fail_record(void **state) {
  (void)state;
  static const brook_operator_t op = {
      .version = BROOK_OPERATOR_VERSION, .type_name = "picky", .process_batch = batch_fail_some};
  static const char *const kept[] = {"a", "bb", "dddd", "eeeee", "ffffff", "g"};
  for (int policy = BROOK_ON_ERROR_FAIL; policy <= BROOK_ON_ERROR_ROUTE; policy++) {
    brook_topology_t *t = collect_topology((brook_error_policy_t)policy);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    collect_t c, errs;
    collect_init(&c);
    collect_init(&errs);
    brook_stream_t *s =
        brook_stream_set_name(brook_apply(collect_gen_source(t, "src", &g), &op, NULL), "picky");
    assert_int_equal(collect_sink(s, &c), BROOK_OK);
    assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
    collect_run_t r;
    brook_err_t err = collect_run_batch(t, 0, &r);
    if (policy == BROOK_ON_ERROR_FAIL) {
      assert_int_equal(err, BROOK_ERR_TOO_LARGE);
      assert_non_null(strstr(r.message, "record 'ccc' is bad"));
      assert_non_null(strstr(r.message, "picky"));
    } else {
      assert_int_equal(err, BROOK_OK);
      collect_assert_values(&c, kept, 6);
    }
    if (policy == BROOK_ON_ERROR_ROUTE) {
      assert_int_equal(errs.n, 1);
      assert_string_equal(collect_value(&errs, 0), "ccc");
      assert_string_equal(collect_header(&errs, 0, "brook.error"), "BROOK_ERR_TOO_LARGE");
      assert_string_equal(collect_header(&errs, 0, "brook.error.operator"), "picky");
      assert_string_equal(collect_header(&errs, 0, "brook.error.message"), "record 'ccc' is bad");
    } else {
      assert_int_equal(errs.n, 0);
    }
    brook_topology_free(t);
    collect_free(&c);
    collect_free(&errs);
  }
}

static void test_process_error_policies(void **state) {
  (void)state;
  /* process() (per record) returning an error: the runtime applies the policy. */
  for (int policy = BROOK_ON_ERROR_FAIL; policy <= BROOK_ON_ERROR_ROUTE; policy++) {
    brook_topology_t *t = collect_topology((brook_error_policy_t)policy);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    life_t life = {.fail_process = "ccc"};
    collect_t c, errs;
    collect_init(&c);
    collect_init(&errs);
    brook_stream_t *s = brook_stream_set_name(
        brook_apply(collect_gen_source(t, "src", &g), &counter_op, &life), "cnt");
    assert_int_equal(collect_sink(s, &c), BROOK_OK);
    assert_int_equal(collect_sink(brook_error_stream(t), &errs), BROOK_OK);
    collect_run_t r;
    brook_err_t err = collect_run_batch(t, 0, &r);
    if (policy == BROOK_ON_ERROR_FAIL) {
      assert_int_equal(err, BROOK_ERR_USER);
      assert_non_null(strstr(r.message, "cnt"));
      assert_int_equal(life.eois, 0); /* no end of input after a failure */
    } else {
      assert_int_equal(err, BROOK_OK);
      static const char *const expected[] = {"a", "bb", "dddd", "eeeee", "ffffff", "g", "total=6"};
      collect_assert_values(&c, expected, 7);
      assert_int_equal(r.stats.records_skipped, policy == BROOK_ON_ERROR_SKIP ? 1 : 0);
      assert_int_equal(r.stats.records_routed, policy == BROOK_ON_ERROR_ROUTE ? 1 : 0);
      assert_int_equal(errs.n, policy == BROOK_ON_ERROR_ROUTE ? 1 : 0);
      if (errs.n)
        assert_string_equal(collect_header(&errs, 0, "brook.error.operator"), "cnt");
    }
    assert_int_equal(life.opens, 1);
    assert_int_equal(life.closes, 1); /* also after a failure */
    brook_topology_free(t);
    collect_free(&c);
    collect_free(&errs);
  }
}

/* ---- open and close ---- */

static void test_close_once_per_open_over_runtimes(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, seven, N_SEVEN);
  life_t life = {0};
  collect_t c;
  collect_init(&c);
  assert_int_equal(
      collect_sink(brook_apply(collect_gen_source(t, "src", &g), &counter_op, &life), &c),
      BROOK_OK);
  for (int i = 0; i < 3; i++) {
    collect_gen_reset(&g);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, 0, &r), BROOK_OK);
  }
  /* A runtime created and freed without running never opens anything. */
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_runtime_free(rt);
  assert_int_equal(life.opens, 3);
  assert_int_equal(life.closes, 3);
  assert_int_equal(life.eois, 3);
  brook_topology_free(t);
  collect_free(&c);
}

static void test_open_failure(void **state) {
  (void)state;
  /* upstream "good" opens fine; "broken" fails to open. The run fails with broken's error
   * and a message naming it; whatever was opened is closed exactly once; nothing runs. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, seven, N_SEVEN);
  life_t good = {0}, broken = {.fail_open = BROOK_ERR_IO}, after = {0};
  collect_t c;
  collect_init(&c);
  brook_stream_t *s = brook_stream_set_name(
      brook_apply(collect_gen_source(t, "src", &g), &counter_op, &good), "good");
  s = brook_stream_set_name(brook_apply(s, &counter_op, &broken), "broken");
  s = brook_stream_set_name(brook_apply(s, &counter_op, &after), "after");
  assert_int_equal(collect_sink(s, &c), BROOK_OK);
  collect_run_t r;
  assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_IO);
  assert_non_null(strstr(r.message, "broken"));
  assert_non_null(strstr(r.message, "open"));
  assert_non_null(strstr(r.message, "no backend for 'broken'")); /* brook_ctx_set_error */
  assert_true(r.done);
  assert_int_equal(good.opens, good.closes);
  assert_int_equal(broken.opens, 0);
  assert_int_equal(broken.closes, 0); /* close only after a successful open */
  assert_int_equal(after.opens, after.closes);
  assert_int_equal(good.processed + broken.processed + after.processed, 0);
  assert_int_equal(c.n, 0);
  assert_int_equal(g.calls, 0);
  assert_int_equal(good.eois + after.eois, 0);
  brook_topology_free(t);
  collect_free(&c);
}

/* ---- emitting where there is no port ---- */

typedef struct bad_emit {
  /* 0: emit_to port 1, return its error; 1: the same but ignore the error; 2: emit_batch to
   * port 7; 3: a sink (no outputs) emitting to port 0 */
  int mode;
  brook_err_t got;
} bad_emit_t;

static brook_err_t bad_emit_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  bad_emit_t *b = state;
  if (b->mode == 2)
    b->got = brook_emit_batch(ctx, 7, rec, 1);
  else
    b->got = brook_emit_to(ctx, b->mode == 3 ? 0 : 1, rec);
  if (b->mode == 1)
    return brook_emit(ctx, rec);
  return b->got;
}

static void test_emit_to_missing_port(void **state) {
  (void)state;
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "bad_emit",
                                      .open = batch_open,
                                      .process = bad_emit_process};
  static const char *const port_text[] = {"output 1", "output 1", "output 7", "output 0"};
  for (int mode = 0; mode < 4; mode++) {
    /* Even under SKIP: this is a programming error, not a bad record. */
    brook_topology_t *t = collect_topology(BROOK_ON_ERROR_SKIP);
    collect_gen_t g;
    collect_gen_init(&g, seven, N_SEVEN);
    bad_emit_t be = {.mode = mode};
    collect_t c;
    collect_init(&c);
    brook_operator_opts_t o;
    brook_operator_opts_init(&o);
    o.name = "emitter";
    o.n_outputs = mode == 3 ? 0 : 1;
    brook_stream_t *src = collect_gen_source(t, "src", &g), *out = NULL;
    assert_int_equal(brook_operator_add(&src, 1, &op, &be, &o, &out), BROOK_OK);
    if (mode != 3)
      assert_int_equal(collect_sink(out, &c), BROOK_OK);
    collect_run_t r;
    assert_int_equal(collect_run_batch(t, 0, &r), BROOK_ERR_INVALID_ARG);
    assert_int_equal(be.got, BROOK_ERR_INVALID_ARG);
    assert_non_null(strstr(r.message, "emitter"));
    assert_non_null(strstr(r.message, port_text[mode]));
    brook_topology_free(t);
    collect_free(&c);
  }
}

/* ---- logging and time ---- */

typedef struct log_seen {
  int level;
  char msg[256];
  int count;
} log_seen_t;

static void log_cb(int level, const char *msg, void *opaque) {
  log_seen_t *l = opaque;
  l->level = level;
  snprintf(l->msg, sizeof(l->msg), "%s", msg);
  l->count++;
}

typedef struct now_seen {
  brook_time_t min, max;
} now_seen_t;

static brook_err_t log_open(brook_ctx_t *ctx, void *opaque, void **state) {
  brook_ctx_log(ctx, BROOK_LOG_WARN, "hello %d", 42);
  *state = opaque;
  return BROOK_OK;
}

static brook_err_t now_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  now_seen_t *n = state;
  brook_time_t now = brook_ctx_now(ctx);
  if (now < n->min)
    n->min = now;
  if (now > n->max)
    n->max = now;
  return brook_emit(ctx, rec);
}

static brook_time_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (brook_time_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_log_and_now(void **state) {
  (void)state;
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "clock",
                                      .open = log_open,
                                      .process = now_process};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, seven, N_SEVEN);
  now_seen_t now = {BROOK_TIME_MAX, BROOK_TIME_MIN};
  collect_t c;
  collect_init(&c);
  brook_stream_t *s =
      brook_stream_set_name(brook_apply(collect_gen_source(t, "src", &g), &op, &now), "clock");
  assert_int_equal(collect_sink(s, &c), BROOK_OK);
  log_seen_t seen = {0};
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.log = log_cb;
  o.log_opaque = &seen;
  brook_time_t before = wall_ms();
  collect_run_t r;
  assert_int_equal(collect_run_topology(t, &o, NULL, NULL, &r), BROOK_OK);
  brook_time_t after = wall_ms();
  assert_int_equal(seen.count, 1);
  assert_int_equal(seen.level, BROOK_LOG_WARN);
  assert_non_null(strstr(seen.msg, "hello 42"));
  assert_non_null(strstr(seen.msg, "clock"));
  assert_true(now.min >= before - 1);
  assert_true(now.max <= after + 1);
  assert_int_equal(c.n, N_SEVEN);
  brook_topology_free(t);
  collect_free(&c);
}

/* ---- flushing at commits while idle ---- */

static void test_flush_when_idle(void **state) {
  (void)state;
  /* operator.h: flush() runs at every commit (every commit_interval_ms) and at the end;
   * sink.h: the sink's flush runs at commits. A push source with an empty queue leaves the
   * runtime idle: what was processed must be flushed by the next commit, without waiting for
   * the end. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  life_t life = {0};
  collect_t c;
  collect_init(&c);
  assert_int_equal(
      collect_sink(brook_apply(brook_source_push(t, "P", NULL), &counter_op, &life), &c), BROOK_OK);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.commit_interval_ms = 20;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  brook_push_source_t *p = brook_runtime_push_source(rt, "P");
  assert_non_null(p);
  for (size_t i = 0; i < 3; i++) {
    brook_record_t rec = {.value = seven[i], .value_len = strlen(seven[i])};
    assert_int_equal(brook_push(p, &rec), BROOK_OK);
  }
  for (int i = 0; i < 1000 && c.n < 3; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  brook_time_t deadline = wall_ms() + 10000; /* idle: the commit timer is what runs */
  while ((life.flushes < 1 || c.flushes < 1) && wall_ms() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  size_t processed = c.n;
  int op_flushes = life.flushes, sink_flushes = (int)c.flushes;
  /* End cleanly (before asserting, so a failure leaves nothing running). */
  assert_int_equal(brook_push_end(p), BROOK_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true(brook_runtime_done(rt));
  brook_runtime_free(rt);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_topology_free(t);
  collect_free(&c);
  assert_int_equal(processed, 3);
  assert_true(op_flushes >= 1);
  assert_true(sink_flushes >= 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_life_cycle_and_total),
      cmocka_unit_test(test_end_of_input_in_topological_order),
      cmocka_unit_test(test_end_of_input_emits_many),
      cmocka_unit_test(test_end_of_input_failure),
      cmocka_unit_test(test_config_and_name),
      cmocka_unit_test(test_two_inputs),
      cmocka_unit_test(test_two_outputs),
      cmocka_unit_test(test_process_batch_forwarding),
      cmocka_unit_test(test_process_batch_fail_record),
      cmocka_unit_test(test_process_error_policies),
      cmocka_unit_test(test_close_once_per_open_over_runtimes),
      cmocka_unit_test(test_open_failure),
      cmocka_unit_test(test_emit_to_missing_port),
      cmocka_unit_test(test_log_and_now),
      cmocka_unit_test(test_flush_when_idle),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
