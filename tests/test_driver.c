/* The test driver's own behaviour (test_driver.h): pushing into named sources, captured sink
 * output (deep copies, per sink, clearing), sticky failures, validation at creation, the
 * manual clock's argument checks, freezing the topology, and NULL handling. */
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

/* ---- helpers ---- */

static brook_record_t text_rec(const char *key, const char *value, brook_time_t ts) {
  brook_record_t r = {0};
  if (key) {
    r.key = key;
    r.key_len = strlen(key);
  }
  if (value) {
    r.value = value;
    r.value_len = strlen(value);
  }
  r.timestamp = ts;
  return r;
}

static int rec_value_is(const brook_record_t *r, const char *text) {
  return r && r->value && r->value_len == strlen(text) && memcmp(r->value, text, r->value_len) == 0;
}

static int rec_key_is(const brook_record_t *r, const char *text) {
  return r && r->key && r->key_len == strlen(text) && memcmp(r->key, text, r->key_len) == 0;
}

/* A sink with a name the test can read its captured output by. Counts its calls. */
static brook_err_t named_sink_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)ctx, (void)rec;
  size_t *calls = state;
  if (calls)
    ++*calls;
  return BROOK_OK;
}

static brook_err_t named_sink_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static const brook_operator_t named_sink_op = {.version = BROOK_OPERATOR_VERSION,
                                               .type_name = "named_sink",
                                               .open = named_sink_open,
                                               .process = named_sink_process};

static void named_sink(brook_stream_t *in, const char *name, size_t *calls) {
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  o.name = name;
  o.n_outputs = 0;
  assert_int_equal(brook_operator_add(&in, 1, &named_sink_op, calls, &o, NULL), BROOK_OK);
}

static brook_driver_t *new_driver(brook_topology_t *t, brook_time_t start) {
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  o.start_time = start;
  brook_driver_t *d = NULL;
  brook_err_t err = brook_driver_new(&d, t, &o);
  if (err != BROOK_OK)
    fail_msg("brook_driver_new: %s: %s", brook_errname(err), brook_topology_last_error(t));
  assert_non_null(d);
  return d;
}

/* A map that rewrites key, value and headers into batch memory (brook_ctx_alloc), so the
 * bytes the sinks see die with the batch: only a deep copy survives. The value becomes
 * "<value>!", the key "K<key>", and two headers are attached ("h1" = value, "empty" = no
 * bytes). */
static brook_err_t rewrite_in_batch_memory(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char *v = brook_ctx_alloc(ctx, rec->value_len + 1);
  char *k = brook_ctx_alloc(ctx, rec->key_len + 1);
  char *hname = brook_ctx_alloc(ctx, 3);
  brook_header_t *h = brook_ctx_alloc(ctx, 2 * sizeof(*h));
  if (!v || !k || !hname || !h)
    return BROOK_ERR_NOMEM;
  memcpy(v, rec->value, rec->value_len);
  v[rec->value_len] = '!';
  k[0] = 'K';
  if (rec->key_len)
    memcpy(k + 1, rec->key, rec->key_len);
  memcpy(hname, "h1", 3);
  h[0] = (brook_header_t){hname, v, rec->value_len};
  h[1] = (brook_header_t){"empty", NULL, 0};
  rec->value = v;
  rec->value_len++;
  rec->key = k;
  rec->key_len++;
  rec->headers = h;
  rec->header_count = 2;
  return BROOK_OK;
}

/* ---- tests ---- */

static void test_unknown_source(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "in", NULL), "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t r = text_rec(NULL, "x", 1);
  assert_int_equal(brook_driver_push(d, "nope", &r), BROOK_ERR_NOT_FOUND);
  assert_int_equal(brook_driver_push_split(d, "nope", 3, &r), BROOK_ERR_NOT_FOUND);
  /* The sink is not a source either. */
  assert_int_equal(brook_driver_push(d, "out", &r), BROOK_ERR_NOT_FOUND);
  /* Not a pipeline failure: the driver goes on. */
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 1);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_push_after_end(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "in", NULL), "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t r = text_rec(NULL, "x", 1);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_ERR_STOPPED);
  assert_int_equal(brook_driver_push_split(d, "in", 1, &r), BROOK_ERR_STOPPED);
  assert_int_equal(brook_driver_output_count(d, "out"), 1);
  /* Ending is not a failure; the output stays readable. */
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  assert_true(rec_value_is(brook_driver_output(d, "out", 0), "x"));
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_output_deep_copies(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *m = brook_map(brook_source_push(t, "in", NULL), rewrite_in_batch_memory, NULL);
  size_t calls = 0;
  named_sink(m, "out", &calls);
  collect_t c;
  collect_init(&c);
  assert_int_equal(collect_sink(m, &c), BROOK_OK); /* a second sink on the same stream */
  brook_driver_t *d = new_driver(t, 0);
  static const char *const keys[] = {"a", "bb", "ccc"};
  static const char *const values[] = {"one", "two", "three"};
  for (size_t i = 0; i < 3; i++) {
    brook_record_t r = text_rec(keys[i], values[i], 100 + (brook_time_t)i);
    assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
    /* Each push ran through the whole pipeline before returning. */
    assert_int_equal(brook_driver_output_count(d, "out"), i + 1);
  }
  /* The sinks themselves still ran. */
  assert_int_equal(calls, 3);
  assert_int_equal(c.n, 3);
  /* Every batch's memory has been released and reused: the captured copies are intact. */
  for (size_t i = 0; i < 3; i++) {
    const brook_record_t *r = brook_driver_output(d, "out", i);
    assert_non_null(r);
    assert_true(rec_value_is(r, collect_strf("%s!", values[i])));
    assert_true(rec_key_is(r, collect_strf("K%s", keys[i])));
    assert_int_equal(r->timestamp, 100 + (brook_time_t)i);
    assert_int_equal(r->header_count, 2);
    assert_string_equal(r->headers[0].name, "h1");
    assert_int_equal(r->headers[0].value_len, strlen(values[i]));
    assert_memory_equal(r->headers[0].value, values[i], strlen(values[i]));
    assert_string_equal(r->headers[1].name, "empty");
    assert_int_equal(r->headers[1].value_len, 0);
    const brook_header_t *h = brook_record_header(r, "h1");
    assert_ptr_equal(h, &r->headers[0]);
  }
  assert_null(brook_driver_output(d, "out", 3));
  brook_driver_free(d);
  brook_topology_free(t);
  collect_free(&c);
}

static void test_output_keeps_null_and_empty(void **state) {
  (void)state;
  /* NULL key vs. empty key, NULL value (tombstone) vs. empty value survive the copy. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "in", NULL), "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t r1 = {.key = NULL, .value = NULL, .timestamp = 1};
  brook_record_t r2 = {.key = "", .key_len = 0, .value = "", .value_len = 0, .timestamp = 2};
  brook_header_t hs[] = {{"a", "xyz", 3}};
  brook_record_t r3 = {.key = "", .value = NULL, .timestamp = 3, .headers = hs, .header_count = 1};
  brook_record_t r4 = {.key = NULL, .value = "v", .value_len = 1, .timestamp = 4};
  assert_int_equal(brook_driver_push(d, "in", &r1), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &r2), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &r3), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &r4), BROOK_OK);
  hs[0].value = "zzz"; /* borrowed for the call only */
  const brook_record_t *o1 = brook_driver_output(d, "out", 0);
  const brook_record_t *o2 = brook_driver_output(d, "out", 1);
  const brook_record_t *o3 = brook_driver_output(d, "out", 2);
  const brook_record_t *o4 = brook_driver_output(d, "out", 3);
  assert_non_null(o1);
  assert_non_null(o2);
  assert_non_null(o3);
  assert_non_null(o4);
  assert_null(o1->key);
  assert_null(o1->value);
  assert_int_equal(o1->header_count, 0);
  assert_non_null(o2->key);
  assert_int_equal(o2->key_len, 0);
  assert_non_null(o2->value);
  assert_int_equal(o2->value_len, 0);
  assert_non_null(o3->key);
  assert_null(o3->value);
  assert_int_equal(o3->header_count, 1);
  assert_string_equal(o3->headers[0].name, "a");
  assert_memory_equal(o3->headers[0].value, "xyz", 3);
  assert_null(o4->key);
  assert_true(rec_value_is(o4, "v"));
  assert_int_equal(o4->timestamp, 4);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_outputs_per_sink_and_clear(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "A", NULL), "outA", NULL);
  named_sink(brook_source_push(t, "B", NULL), "outB", NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t a = text_rec(NULL, "a", 1), b = text_rec(NULL, "b", 1);
  assert_int_equal(brook_driver_push(d, "A", &a), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "A", &a), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "B", &b), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "outA"), 2);
  assert_int_equal(brook_driver_output_count(d, "outB"), 1);
  assert_true(rec_value_is(brook_driver_output(d, "outB", 0), "b"));
  assert_int_equal(brook_driver_output_count(d, "nope"), 0);
  assert_null(brook_driver_output(d, "nope", 0));
  /* Named by the node it consumes: the first sink fed by A. */
  assert_int_equal(brook_driver_output_count(d, "A"), 2);
  assert_ptr_equal(brook_driver_output(d, "A", 1), brook_driver_output(d, "outA", 1));
  brook_driver_clear_output(d, "outA");
  assert_int_equal(brook_driver_output_count(d, "outA"), 0);
  assert_null(brook_driver_output(d, "outA", 0));
  assert_int_equal(brook_driver_output_count(d, "outB"), 1);
  brook_driver_clear_output(d, "nope"); /* no-op */
  assert_int_equal(brook_driver_push(d, "A", &b), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "outA"), 1);
  assert_true(rec_value_is(brook_driver_output(d, "outA", 0), "b"));
  brook_driver_clear_output(d, "A"); /* by the consumed node's name, too */
  assert_int_equal(brook_driver_output_count(d, "outA"), 0);
  assert_int_equal(brook_driver_output_count(d, "outB"), 1);
  assert_int_equal(brook_driver_push(d, "A", &b), BROOK_OK);
  brook_driver_clear_output(d, NULL);
  assert_int_equal(brook_driver_output_count(d, "outA"), 0);
  assert_int_equal(brook_driver_output_count(d, "outB"), 0);
  /* Capturing goes on after clearing. */
  assert_int_equal(brook_driver_push(d, "B", &a), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "outB"), 1);
  assert_true(rec_value_is(brook_driver_output(d, "outB", 0), "a"));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
  assert_int_equal(st.records_in, 6);
  assert_int_equal(st.records_out, 6);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_callback_sink_by_stream_name(void **state) {
  (void)state;
  /* A callback sink has no name of its own to ask for: its output is found by the name of
   * the stream it consumes. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *m = brook_stream_set_name(
      brook_map(brook_source_push(t, "in", NULL), rewrite_in_batch_memory, NULL), "m");
  collect_t c;
  collect_init(&c);
  assert_int_equal(collect_sink(m, &c), BROOK_OK);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t r = text_rec("k", "v", 7);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "m"), 2);
  assert_true(rec_value_is(brook_driver_output(d, "m", 1), "v!"));
  assert_true(rec_key_is(brook_driver_output(d, "m", 1), "Kk"));
  assert_int_equal(brook_driver_output_count(d, "in"), 0); /* "in" feeds no sink */
  assert_int_equal(c.n, 2);
  brook_driver_clear_output(d, "m");
  assert_int_equal(brook_driver_output_count(d, "m"), 0);
  brook_driver_free(d);
  brook_topology_free(t);
  collect_free(&c);
}

static int ts_even(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->timestamp % 2 == 0;
}

static int ts_below_10(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->timestamp < 10;
}

static void test_callback_sinks_of_one_node(void **state) {
  (void)state;
  /* Regression (issue 11, 5): callback sinks were found only by the name of the node they
   * consume, so of several callback sinks after one node (a branch's outputs, a fanned-out
   * stream) only the first was readable. They can now be named, or found by node and port. */
  brook_branch_t br[2] = {{ts_even, NULL}, {ts_below_10, NULL}};
  brook_stream_t *outs[2], *rest = NULL;
  collect_t even, small, rest1, rest2;
  collect_init(&even), collect_init(&small), collect_init(&rest1), collect_init(&rest2);
  brook_callback_sink_opts_t so;
  brook_callback_sink_opts_init(&so);
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  assert_int_equal(brook_branch(brook_source_push(t, "in", NULL), br, 2, outs, &rest), BROOK_OK);
  assert_non_null(brook_stream_set_name(outs[0], "split"));
  so.name = "evens";
  assert_int_equal(brook_sink_callback_v2(outs[0], collect_sink_fn, NULL, &even, &so), BROOK_OK);
  so.name = "smalls";
  assert_int_equal(brook_sink_callback_v2(outs[1], collect_sink_fn, NULL, &small, &so), BROOK_OK);
  /* Two unnamed sinks on the default output (port 2); options may be NULL. */
  assert_int_equal(brook_sink_callback_v2(rest, collect_sink_fn, NULL, &rest1, NULL), BROOK_OK);
  assert_int_equal(brook_sink_callback(rest, collect_sink_fn, NULL, &rest2), BROOK_OK);
  brook_driver_t *d = new_driver(t, 0);
  for (brook_time_t ts = 0; ts < 14; ts++) {
    brook_record_t r = text_rec("k", collect_strf("v%d", (int)ts), ts);
    assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  }
  /* evens: 0 2 4 ... 12; smalls: odd and < 10: 1 3 5 7 9; the rest: 11 13 (twice). */
  assert_int_equal(brook_driver_output_count(d, "evens"), 7);
  assert_int_equal(brook_driver_output_count(d, "smalls"), 5);
  assert_true(rec_value_is(brook_driver_output(d, "smalls", 4), "v9"));
  assert_int_equal(even.n, 7);
  assert_int_equal(small.n, 5);
  /* By node and port, in the order the sinks were added. */
  assert_string_equal(brook_driver_sink_name(d, "split", 0, 0), "evens");
  assert_null(brook_driver_sink_name(d, "split", 0, 1));
  assert_string_equal(brook_driver_sink_name(d, "split", 1, 0), "smalls");
  const char *r1 = brook_driver_sink_name(d, "split", 2, 0);
  const char *r2 = brook_driver_sink_name(d, "split", 2, 1);
  assert_non_null(r1);
  assert_non_null(r2);
  assert_string_not_equal(r1, r2);
  assert_null(brook_driver_sink_name(d, "split", 2, 2));
  assert_null(brook_driver_sink_name(d, "split", 3, 0));
  assert_null(brook_driver_sink_name(d, "nope", 0, 0));
  assert_null(brook_driver_sink_name(d, NULL, 0, 0));
  assert_null(brook_driver_sink_name(NULL, "split", 0, 0));
  assert_int_equal(brook_driver_output_count(d, r1), 2);
  assert_int_equal(brook_driver_output_count(d, r2), 2);
  assert_true(rec_value_is(brook_driver_output(d, r2, 1), "v13"));
  /* The old lookup by the consumed node's name still finds the first sink after it. */
  assert_int_equal(brook_driver_output_count(d, "split"), 7);
  brook_driver_clear_output(d, "smalls");
  assert_int_equal(brook_driver_output_count(d, "smalls"), 0);
  assert_int_equal(brook_driver_output_count(d, "evens"), 7);
  brook_driver_free(d);
  brook_topology_free(t);
  collect_free(&even), collect_free(&small), collect_free(&rest1), collect_free(&rest2);
}

static brook_err_t ignore_cb(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}

static void test_callback_sink_opts_checked(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *in = brook_source_push(t, "in", NULL);
  brook_callback_sink_opts_t so;
  brook_callback_sink_opts_init(&so);
  so.struct_size = sizeof(so) + 8;
  assert_int_equal(brook_sink_callback_v2(in, ignore_cb, NULL, NULL, &so), BROOK_ERR_INVALID_ARG);
  brook_topology_free(t);
  t = collect_topology(BROOK_ON_ERROR_FAIL);
  in = brook_source_push(t, "in", NULL);
  brook_callback_sink_opts_init(&so);
  so.name = "";
  assert_int_equal(brook_sink_callback_v2(in, ignore_cb, NULL, NULL, &so), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "empty name"));
  brook_topology_free(t);
  t = collect_topology(BROOK_ON_ERROR_FAIL);
  in = brook_source_push(t, "in", NULL);
  so.name = "in"; /* the source's name */
  assert_int_equal(brook_sink_callback_v2(in, ignore_cb, NULL, NULL, &so), BROOK_ERR_DUPLICATE);
  brook_topology_free(t);
  assert_int_equal(brook_sink_callback_v2(NULL, ignore_cb, NULL, NULL, NULL),
                   BROOK_ERR_INVALID_ARG);
  brook_callback_sink_opts_init(NULL); /* no-op */
}

/* An operator failing on the value "bad" with a message. */
static brook_err_t picky_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  if (rec_value_is(rec, "bad")) {
    brook_ctx_set_error(ctx, "refusing '%.*s'", (int)rec->value_len, (const char *)rec->value);
    return BROOK_ERR_IO;
  }
  return brook_emit(ctx, rec);
}

static const brook_operator_t picky_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "picky", .process = picky_process};

static void test_failure_is_sticky(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s =
      brook_stream_set_name(brook_apply(brook_source_push(t, "in", NULL), &picky_op, NULL), "pk");
  named_sink(s, "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  assert_string_equal(brook_driver_last_error(d), "");
  brook_record_t good = text_rec(NULL, "good", 1), bad = text_rec(NULL, "bad", 2);
  assert_int_equal(brook_driver_push(d, "in", &good), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &bad), BROOK_ERR_IO);
  assert_int_equal(brook_driver_status(d), BROOK_ERR_IO);
  const char *msg = brook_driver_last_error(d);
  assert_non_null(strstr(msg, "refusing 'bad'"));
  assert_non_null(strstr(msg, "pk"));
  /* Sticky: every later call returns the failure, nothing more runs. */
  assert_int_equal(brook_driver_push(d, "in", &good), BROOK_ERR_IO);
  assert_int_equal(brook_driver_push_split(d, "in", 2, &good), BROOK_ERR_IO);
  assert_int_equal(brook_driver_push(d, "nope", &good), BROOK_ERR_IO);
  assert_int_equal(brook_driver_advance_time(d, 10), BROOK_ERR_IO);
  assert_int_equal(brook_driver_end(d), BROOK_ERR_IO);
  assert_int_equal(brook_driver_status(d), BROOK_ERR_IO);
  assert_int_equal(brook_driver_output_count(d, "out"), 1);
  assert_non_null(strstr(brook_driver_last_error(d), "refusing 'bad'"));
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_skip_policy_is_not_a_failure(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_SKIP);
  named_sink(brook_apply(brook_source_push(t, "in", NULL), &picky_op, NULL), "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t good = text_rec(NULL, "good", 1), bad = text_rec(NULL, "bad", 2);
  assert_int_equal(brook_driver_push(d, "in", &bad), BROOK_OK);
  assert_int_equal(brook_driver_push(d, "in", &good), BROOK_OK);
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 1);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
  assert_int_equal(st.records_skipped, 1);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_invalid_topology(void **state) {
  (void)state;
  brook_driver_t *d = (brook_driver_t *)&d; /* must be reset to NULL */
  /* A stream nothing consumes. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  assert_non_null(brook_source_push(t, "in", NULL));
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_ERR_DANGLING);
  assert_null(d);
  assert_non_null(strstr(brook_topology_last_error(t), "in"));
  brook_topology_free(t);
  /* A build error. */
  t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = brook_source_push(t, "in", NULL);
  named_sink(src, "out", NULL);
  assert_null(brook_dedupe(src, 0, NULL));
  d = (brook_driver_t *)&d;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_ERR_BUILD);
  assert_null(d);
  assert_true(strlen(brook_topology_last_error(t)) > 0);
  brook_topology_free(t);
  /* ROUTE without a consumer of the error stream. */
  t = collect_topology(BROOK_ON_ERROR_ROUTE);
  named_sink(brook_source_push(t, "in", NULL), "out", NULL);
  d = (brook_driver_t *)&d;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_ERR_DANGLING);
  assert_null(d);
  assert_non_null(strstr(brook_topology_last_error(t), "error"));
  brook_topology_free(t);
  /* Bad arguments. */
  t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "in", NULL), "out", NULL);
  assert_int_equal(brook_driver_new(NULL, t, NULL), BROOK_ERR_INVALID_ARG);
  d = (brook_driver_t *)&d;
  assert_int_equal(brook_driver_new(&d, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(d);
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  o.struct_size = 3;
  assert_int_equal(brook_driver_new(&d, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(d);
  /* The topology is still usable after those refusals. */
  d = new_driver(t, 0);
  brook_driver_free(d);
  brook_topology_free(t);
}

typedef struct open_fail {
  int opens, closes;
} open_fail_t;

static brook_err_t failing_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)state;
  open_fail_t *f = opaque;
  f->opens++;
  brook_ctx_set_error(ctx, "cannot open");
  return BROOK_ERR_IO;
}

static brook_err_t counting_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  open_fail_t *f = opaque;
  f->opens++;
  *state = f;
  return BROOK_OK;
}

static void counting_close(void *state, void *opaque) {
  (void)state;
  open_fail_t *f = opaque;
  f->closes++;
}

static brook_err_t forward(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit(ctx, rec);
}

static void test_open_failure(void **state) {
  (void)state;
  static const brook_operator_t good_op = {.version = BROOK_OPERATOR_VERSION,
                                           .type_name = "good",
                                           .open = counting_open,
                                           .process = forward,
                                           .close = counting_close};
  static const brook_operator_t bad_op = {.version = BROOK_OPERATOR_VERSION,
                                          .type_name = "bad",
                                          .open = failing_open,
                                          .process = forward,
                                          .close = counting_close};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  open_fail_t good = {0}, bad = {0};
  brook_stream_t *s = brook_apply(brook_source_push(t, "in", NULL), &good_op, &good);
  s = brook_apply(s, &bad_op, &bad);
  named_sink(s, "out", NULL);
  brook_driver_t *d = (brook_driver_t *)&d;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_ERR_IO);
  assert_null(d);
  assert_int_equal(good.opens, 1);
  assert_int_equal(good.closes, 1); /* what was opened is closed again */
  assert_int_equal(bad.opens, 1);
  assert_int_equal(bad.closes, 0); /* close only after a successful open */
  brook_topology_free(t);
}

static void test_close_on_free(void **state) {
  (void)state;
  static const brook_operator_t good_op = {.version = BROOK_OPERATOR_VERSION,
                                           .type_name = "good",
                                           .open = counting_open,
                                           .process = forward,
                                           .close = counting_close};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  open_fail_t good = {0};
  named_sink(brook_apply(brook_source_push(t, "in", NULL), &good_op, &good), "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  assert_int_equal(good.opens, 1); /* opened by brook_driver_new */
  assert_int_equal(good.closes, 0);
  brook_driver_free(d);
  assert_int_equal(good.closes, 1);
  /* A second driver over the same topology gets its own instance. */
  d = new_driver(t, 0);
  assert_int_equal(good.opens, 2);
  brook_record_t r = text_rec(NULL, "x", 1);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  brook_driver_free(d);
  assert_int_equal(good.closes, 2);
  brook_topology_free(t);
}

static void test_clock(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "in", NULL), "out", NULL);
  brook_driver_t *d = new_driver(t, 5000);
  assert_int_equal(brook_driver_time(d), 5000);
  assert_int_equal(brook_driver_advance_time(d, -1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_time(d), 5000);
  assert_int_equal(brook_driver_status(d), BROOK_OK); /* a refused call is no failure */
  assert_int_equal(brook_driver_advance_time(d, 0), BROOK_OK);
  assert_int_equal(brook_driver_advance_time(d, 250), BROOK_OK);
  assert_int_equal(brook_driver_time(d), 5250);
  /* Pushing does not move the manual clock. */
  brook_record_t r = text_rec(NULL, "x", 99999);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_int_equal(brook_driver_time(d), 5250);
  brook_driver_free(d);
  /* The default start time is 0. */
  d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  assert_int_equal(brook_driver_time(d), 0);
  brook_driver_free(d);
  brook_topology_free(t);
}

static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

static void test_topology_frozen(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = brook_source_push(t, "in", NULL);
  named_sink(src, "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  assert_null(brook_source_push(t, "in2", NULL));
  assert_null(brook_filter(src, keep_all, NULL));
  assert_int_equal(brook_topology_set_error_policy(t, BROOK_ON_ERROR_SKIP), BROOK_ERR_FROZEN);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  assert_int_equal(brook_source_set_watermark(src, &wo), BROOK_ERR_FROZEN);
  /* Refusals after freezing are not build errors of the topology. */
  assert_int_equal(brook_topology_error(t), BROOK_OK);
  /* The driver works on. */
  brook_record_t r = text_rec(NULL, "x", 1);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  brook_driver_free(d);
  /* Still frozen once the driver is gone. */
  assert_int_equal(brook_topology_set_error_policy(t, BROOK_ON_ERROR_SKIP), BROOK_ERR_FROZEN);
  brook_topology_free(t);
}

static void test_topology_outlives_caller_reference(void **state) {
  (void)state;
  /* Like a runtime, a driver keeps the topology's memory alive. */
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_map(brook_source_push(t, "in", NULL), rewrite_in_batch_memory, NULL), "out",
             NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_topology_free(t);
  brook_record_t r = text_rec("k", "v", 1);
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_true(rec_value_is(brook_driver_output(d, "out", 0), "v!"));
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  brook_driver_free(d);
}

static void test_null_arguments(void **state) {
  (void)state;
  brook_driver_free(NULL);
  assert_int_equal(brook_driver_push(NULL, "in", NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_advance_time(NULL, 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_end(NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_output_count(NULL, "out"), 0);
  assert_null(brook_driver_output(NULL, "out", 0));
  brook_driver_clear_output(NULL, NULL);
  assert_int_equal(brook_driver_watermark(NULL, "in"), BROOK_TIME_MIN);
  brook_driver_opts_init(NULL);

  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  named_sink(brook_source_push(t, "in", NULL), "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t r = text_rec(NULL, "x", 1);
  assert_int_equal(brook_driver_push(d, NULL, &r), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_push(d, "in", NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_driver_status(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, NULL), 0);
  assert_int_equal(brook_driver_watermark(d, NULL), BROOK_TIME_MIN);
  assert_int_equal(brook_driver_watermark(d, "nope"), BROOK_TIME_MIN);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_generator_source_not_read(void **state) {
  (void)state;
  /* The driver never reads a source's own input: only pushed records flow. */
  static const char *const values[] = {"g1", "g2"};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, values, 2);
  named_sink(collect_gen_source(t, "gen", &g), "out", NULL);
  brook_driver_t *d = new_driver(t, 0);
  brook_record_t r = text_rec(NULL, "pushed", 1);
  assert_int_equal(brook_driver_push(d, "gen", &r), BROOK_OK);
  assert_int_equal(brook_driver_advance_time(d, 1000), BROOK_OK);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(g.calls, 0);
  assert_int_equal(brook_driver_output_count(d, "out"), 1);
  assert_true(rec_value_is(brook_driver_output(d, "out", 0), "pushed"));
  brook_driver_free(d);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unknown_source),
      cmocka_unit_test(test_push_after_end),
      cmocka_unit_test(test_output_deep_copies),
      cmocka_unit_test(test_output_keeps_null_and_empty),
      cmocka_unit_test(test_outputs_per_sink_and_clear),
      cmocka_unit_test(test_callback_sink_by_stream_name),
      cmocka_unit_test(test_callback_sinks_of_one_node),
      cmocka_unit_test(test_callback_sink_opts_checked),
      cmocka_unit_test(test_failure_is_sticky),
      cmocka_unit_test(test_skip_policy_is_not_a_failure),
      cmocka_unit_test(test_invalid_topology),
      cmocka_unit_test(test_open_failure),
      cmocka_unit_test(test_close_on_free),
      cmocka_unit_test(test_clock),
      cmocka_unit_test(test_topology_frozen),
      cmocka_unit_test(test_topology_outlives_caller_reference),
      cmocka_unit_test(test_null_arguments),
      cmocka_unit_test(test_generator_source_not_read),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
