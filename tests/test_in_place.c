/* The stateless fast paths: built-in operators rewrite a batch in place and pass it on
 * without a copy when nothing else reads it (one consumer of a port's buffer), and copy
 * otherwise; the output, the error stream and every error policy are the same either way.
 * Also: a generator callback may not emit, and a source tracks event time only where
 * something downstream can use it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"

#define N_IN 40

static const char *in_values[N_IN];

static void make_values(void) {
  for (size_t i = 0; i < N_IN; i++)
    in_values[i] = collect_strf("r%zu", i);
}

static int value_is(const brook_record_t *rec, const char *v) {
  return rec->value_len == strlen(v) && memcmp(rec->value, v, rec->value_len) == 0;
}

static size_t value_index(const brook_record_t *rec) {
  char buf[16];
  size_t len = rec->value_len < sizeof(buf) - 1 ? rec->value_len : sizeof(buf) - 1;
  memcpy(buf, rec->value, len);
  buf[len] = '\0';
  return (size_t)strtoul(buf + 1, NULL, 10);
}

/* ---- the chain: filter -> map -> key_by -> peek -> map, one failing record each ---- */

static int drop_every_third(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  if (value_is(rec, "r7"))
    return -77;
  return value_index(rec) % 3 != 2;
}

/* Scribbles on every record first: a routed one must still reach the error stream as it came. */
static brook_err_t tag_map(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  size_t i = value_index(rec);
  rec->key = "scribbled";
  rec->key_len = 9;
  rec->timestamp = -1;
  if (i == 10)
    return BROOK_ERR_USER;
  char *v = brook_ctx_alloc(ctx, 16);
  if (!v)
    return BROOK_ERR_NOMEM;
  int len = snprintf(v, 16, "m%zu", i);
  rec->value = v;
  rec->value_len = (size_t)len;
  rec->timestamp = 1000 + (brook_time_t)i;
  return BROOK_OK;
}

static brook_err_t key_of(const brook_record_t *rec, const void **key, size_t *key_len,
                          brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  if (value_is(rec, "m13"))
    return BROOK_ERR_USER;
  *key = (const char *)rec->value + 1; /* the number */
  *key_len = rec->value_len - 1;
  return BROOK_OK;
}

static brook_err_t peek_fail(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return value_is(rec, "m19") ? -19 : BROOK_OK;
}

static brook_err_t bump(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  rec->timestamp += 1;
  return BROOK_OK;
}

/* A user-written pass-through that forwards its input array: what follows it gets records it
 * must not rewrite where they lie (the array is this operator's input, borrowed). */
static brook_err_t pass_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs, size_t n) {
  (void)state;
  return brook_emit_batch(ctx, 0, recs, n);
}

static const brook_operator_t pass_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "pass",
    .process_batch = pass_batch,
};

typedef enum head { HEAD_DIRECT, HEAD_SIBLING, HEAD_CUSTOM } head_t;

typedef struct chain_run {
  collect_t out, errs, sibling;
  collect_run_t run;
} chain_run_t;

static void chain_run(chain_run_t *r, brook_error_policy_t policy, head_t head, size_t batch) {
  memset(r, 0, sizeof(*r));
  collect_init(&r->out);
  collect_init(&r->errs);
  collect_init(&r->sibling);
  brook_topology_t *t = collect_topology(policy);
  collect_gen_t gen;
  collect_gen_init(&gen, in_values, N_IN);
  brook_stream_t *src = collect_gen_source(t, "src", &gen), *s = src;
  if (head == HEAD_CUSTOM)
    s = brook_apply(s, &pass_op, NULL);
  s = brook_stream_set_name(brook_filter(s, drop_every_third, NULL), "filter");
  s = brook_stream_set_name(brook_map(s, tag_map, NULL), "map");
  s = brook_stream_set_name(brook_key_by(s, key_of, NULL), "key_by");
  s = brook_stream_set_name(brook_peek(s, peek_fail, NULL), "peek");
  s = brook_map(s, bump, NULL);
  assert_non_null(s);
  assert_int_equal(collect_sink(s, &r->out), BROOK_OK);
  /* Two consumers of the source's buffer, the chain first: neither may rewrite it. */
  if (head == HEAD_SIBLING)
    assert_int_equal(collect_sink(src, &r->sibling), BROOK_OK);
  assert_int_equal(collect_sink(brook_error_stream(t), &r->errs), BROOK_OK);
  collect_run_batch(t, batch, &r->run);
  brook_topology_free(t);
}

static void chain_free(chain_run_t *r) {
  collect_free(&r->out);
  collect_free(&r->errs);
  collect_free(&r->sibling);
}

static void assert_same_records(const collect_t *a, const collect_t *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++) {
    assert_string_equal(collect_value(a, i), collect_value(b, i));
    assert_string_equal(collect_key(a, i), collect_key(b, i));
    assert_int_equal(a->recs[i].timestamp, b->recs[i].timestamp);
    assert_int_equal(a->recs[i].header_count, b->recs[i].header_count);
    for (size_t h = 0; h < a->recs[i].header_count; h++) {
      assert_string_equal(a->recs[i].headers[h].name, b->recs[i].headers[h].name);
      assert_string_equal(a->recs[i].headers[h].value, b->recs[i].headers[h].value);
    }
  }
}

/* What the chain must give: every record but the dropped and the failed, rewritten by both
 * maps and keyed by its number. */
static void assert_chain_output(const collect_t *out) {
  size_t j = 0;
  for (size_t i = 0; i < N_IN; i++) {
    if (i % 3 == 2 || i == 7 || i == 10 || i == 13 || i == 19)
      continue;
    assert_true(j < out->n);
    assert_string_equal(collect_value(out, j), collect_strf("m%zu", i));
    assert_string_equal(collect_key(out, j), collect_strf("%zu", i));
    assert_int_equal(out->recs[j].timestamp, 1001 + (brook_time_t)i);
    j++;
  }
  assert_int_equal(out->n, j);
}

static const size_t batches[] = {0, 3, 1};

static void test_route_same_with_and_without_copies(void **state) {
  (void)state;
  for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
    chain_run_t direct, sibling, custom;
    chain_run(&direct, BROOK_ON_ERROR_ROUTE, HEAD_DIRECT, batches[b]);
    chain_run(&sibling, BROOK_ON_ERROR_ROUTE, HEAD_SIBLING, batches[b]);
    chain_run(&custom, BROOK_ON_ERROR_ROUTE, HEAD_CUSTOM, batches[b]);
    assert_int_equal(direct.run.status, BROOK_OK);
    assert_chain_output(&direct.out);
    /* The failed records reach the error stream as they came into the failing operator. */
    assert_int_equal(direct.errs.n, 4);
    static const char *const failed[] = {"r7", "r10", "m13", "m19"};
    static const char *const by[] = {"filter", "map", "key_by", "peek"};
    for (size_t i = 0; i < 4; i++) {
      size_t k = collect_find(&direct.errs, failed[i], 0);
      assert_true(k != (size_t)-1);
      assert_string_equal(collect_header(&direct.errs, k, "brook.error.operator"), by[i]);
      if (i == 1) { /* the map scribbled on it before failing: not seen */
        assert_string_equal(collect_key(&direct.errs, k), "");
        assert_int_equal(direct.errs.recs[k].timestamp, 1000 + 10);
      }
    }
    assert_same_records(&direct.out, &sibling.out);
    assert_same_records(&direct.errs, &sibling.errs);
    assert_same_records(&direct.out, &custom.out);
    assert_same_records(&direct.errs, &custom.errs);
    /* The sibling of the rewritten chain saw the source's records untouched. */
    collect_assert_values(&sibling.sibling, in_values, N_IN);
    for (size_t i = 0; i < N_IN; i++)
      assert_int_equal(sibling.sibling.recs[i].timestamp, 1000 + (brook_time_t)i);
    chain_free(&direct);
    chain_free(&sibling);
    chain_free(&custom);
  }
}

static void test_skip_same_with_and_without_copies(void **state) {
  (void)state;
  for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
    chain_run_t direct, custom;
    chain_run(&direct, BROOK_ON_ERROR_SKIP, HEAD_DIRECT, batches[b]);
    chain_run(&custom, BROOK_ON_ERROR_SKIP, HEAD_CUSTOM, batches[b]);
    assert_int_equal(direct.run.status, BROOK_OK);
    assert_chain_output(&direct.out);
    assert_int_equal(direct.run.stats.records_skipped, 4);
    assert_int_equal(direct.errs.n, 0);
    assert_same_records(&direct.out, &custom.out);
    chain_free(&direct);
    chain_free(&custom);
  }
}

/* FAIL: the first failure (the filter's, at r7) fails the run; the records before it went
 * through the whole chain, in place or copied. */
static void test_fail_delivers_what_came_before(void **state) {
  (void)state;
  chain_run_t direct, custom;
  chain_run(&direct, BROOK_ON_ERROR_FAIL, HEAD_DIRECT, 0);
  chain_run(&custom, BROOK_ON_ERROR_FAIL, HEAD_CUSTOM, 0);
  assert_int_equal(direct.run.status, -77);
  assert_non_null(strstr(direct.run.message, "'filter'"));
  static const char *const before[] = {"m0", "m1", "m3", "m4", "m6"};
  collect_assert_values(&direct.out, before, 5);
  assert_same_records(&direct.out, &custom.out);
  chain_free(&direct);
  chain_free(&custom);
}

/* ---- a generator callback may not emit ---- */

static brook_err_t gen_emits(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  int *calls = opaque;
  if (++*calls > 5)
    return BROOK_DONE;
  out->value = "v";
  out->value_len = 1;
  if (*calls == 3)
    assert_int_equal(brook_emit(ctx, out), BROOK_ERR_STATE);
  return BROOK_OK;
}

static void test_generator_emit_fails_run(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_SKIP);
  int calls = 0;
  collect_t out;
  collect_init(&out);
  assert_int_equal(collect_sink(brook_source_generator(t, "gen", gen_emits, &calls, NULL), &out),
                   BROOK_OK);
  collect_run_t run;
  collect_run_batch(t, 0, &run);
  assert_int_equal(run.status, BROOK_ERR_STATE);
  assert_non_null(strstr(run.message, "generator callback called brook_emit"));
  assert_non_null(strstr(run.message, "'gen'"));
  collect_free(&out);
  brook_topology_free(t);
}

/* brook_emit_batch is emitting too: refused from a generator callback (the run fails; the map
 * callback's case is in test_stateless.c). */
static brook_err_t gen_emits_batch(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  int *calls = opaque;
  if (++*calls > 5)
    return BROOK_DONE;
  out->value = "v";
  out->value_len = 1;
  return *calls == 2 ? brook_emit_batch(ctx, 0, out, 1) : BROOK_OK;
}

static void test_generator_emit_batch_fails_run(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_SKIP);
  int calls = 0;
  collect_t out;
  collect_init(&out);
  assert_int_equal(
      collect_sink(brook_source_generator(t, "gen", gen_emits_batch, &calls, NULL), &out),
      BROOK_OK);
  collect_run_t run;
  collect_run_batch(t, 0, &run);
  assert_int_equal(run.status, BROOK_ERR_STATE);
  assert_non_null(strstr(run.message, "generator callback called brook_emit"));
  collect_free(&out);
  brook_topology_free(t);
}

/* ---- event time is tracked where it can be used ---- */

typedef struct gen_seq {
  size_t next, n;
  int descending; /* timestamps 1000, 999, ... (else 0, 1, ...) */
} gen_seq_t;

static brook_err_t gen_sequence(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  gen_seq_t *g = opaque;
  if (g->next == g->n)
    return BROOK_DONE;
  size_t i = g->next++;
  out->timestamp = g->descending ? 1000 - (brook_time_t)i : (brook_time_t)i;
  return BROOK_OK;
}

static brook_err_t count_sink(const brook_record_t *rec, void *opaque) {
  (void)rec;
  (*(size_t *)opaque)++;
  return BROOK_OK;
}

static brook_err_t count_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)ctx, (void)state, (void)rec;
  return BROOK_OK;
}

static brook_err_t ignore_watermark(brook_ctx_t *ctx, void *state, brook_time_t wm) {
  (void)ctx, (void)state, (void)wm;
  return BROOK_OK;
}

static const brook_operator_t wm_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "wm_user",
    .process = count_process,
    .on_watermark = ignore_watermark,
};

typedef enum time_user { USER_NONE, USER_STRATEGY, USER_OPERATOR } time_user_t;

static uint64_t behind_watermark(time_user_t user) {
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  /* After the first batch, every record is behind the watermark. */
  gen_seq_t g = {0, 100, 1};
  size_t n = 0;
  brook_stream_t *s = brook_source_generator(t, "gen", gen_sequence, &g, NULL);
  if (user == USER_STRATEGY) {
    brook_watermark_opts_t wo;
    brook_watermark_opts_init(&wo);
    assert_int_equal(brook_source_set_watermark(s, &wo), BROOK_OK);
  }
  brook_stream_t *m = brook_map(s, bump, NULL);
  assert_int_equal(brook_sink_callback(m, count_sink, NULL, &n), BROOK_OK);
  if (user == USER_OPERATOR) {
    brook_operator_opts_t oo;
    brook_operator_opts_init(&oo);
    oo.n_outputs = 0;
    assert_int_equal(brook_operator_add(&m, 1, &wm_op, NULL, &oo, NULL), BROOK_OK);
  }
  collect_run_t run;
  collect_run_batch(t, 10, &run);
  assert_int_equal(run.status, BROOK_OK);
  assert_int_equal(n, 100);
  brook_topology_free(t);
  return run.stats.records_behind_watermark;
}

static void test_event_time_tracked_where_used(void **state) {
  (void)state;
  /* Nothing downstream uses event time: no pass over the batches, nothing counted. */
  assert_int_equal(behind_watermark(USER_NONE), 0);
  /* A strategy set on the source, or an operator that gets watermarks: the 90 records after
   * the first batch are behind it. */
  assert_int_equal(behind_watermark(USER_STRATEGY), 90);
  assert_int_equal(behind_watermark(USER_OPERATOR), 90);
}

typedef struct seen {
  brook_time_t wm[N_IN];
  size_t n;
} seen_t;

static brook_err_t note_watermark(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec;
  seen_t *s = opaque;
  s->wm[s->n++] = brook_ctx_watermark(ctx);
  return BROOK_OK;
}

/* A callback that asks for the watermark starts tracking: from the batch after its first
 * call, the watermark follows the records (batches of 10, timestamps 0, 1, ...). */
static void test_watermark_tracked_once_asked(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  gen_seq_t g = {0, N_IN, 0};
  seen_t seen = {{0}, 0};
  size_t n = 0;
  brook_stream_t *s = brook_source_generator(t, "gen", gen_sequence, &g, NULL);
  assert_int_equal(brook_sink_callback(brook_map(s, note_watermark, &seen), count_sink, NULL, &n),
                   BROOK_OK);
  collect_run_t run;
  collect_run_batch(t, 10, &run);
  assert_int_equal(run.status, BROOK_OK);
  assert_int_equal(seen.n, N_IN);
  for (size_t i = 0; i < 20; i++) /* the first call, then the batch being tracked */
    assert_int_equal(seen.wm[i], BROOK_TIME_MIN);
  for (size_t i = 20; i < N_IN; i++) /* the previous batch's newest timestamp - 1 */
    assert_int_equal(seen.wm[i], (brook_time_t)(i / 10 * 10 - 2));
  brook_topology_free(t);
}

static int teardown_strings(void **state) {
  (void)state;
  collect_strings_free();
  return 0;
}

int main(void) {
  make_values();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_route_same_with_and_without_copies),
      cmocka_unit_test(test_skip_same_with_and_without_copies),
      cmocka_unit_test(test_fail_delivers_what_came_before),
      cmocka_unit_test(test_generator_emit_fails_run),
      cmocka_unit_test(test_generator_emit_batch_fails_run),
      cmocka_unit_test(test_event_time_tracked_where_used),
      cmocka_unit_test(test_watermark_tracked_once_asked),
  };
  return cmocka_run_group_tests(tests, NULL, teardown_strings);
}
