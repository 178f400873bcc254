/* Watermarks (time.h) through the test driver: the bounded, monotonous and custom strategies,
 * timestamp extraction and its failures under each error policy, the minimum over sources,
 * inputs and splits, idleness, the quiet-stream advance, the end of input, on_watermark, and
 * the validation of brook_source_set_watermark. */
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
#include "driver_helpers.h"

/* ---- a probe operator: forwards records, logs records and watermarks in order ---- */

typedef struct probe_event {
  char kind;           /* 'r' record, 'w' on_watermark */
  brook_time_t value;  /* record: its timestamp; watermark: the new watermark */
  brook_time_t ctx_wm; /* brook_ctx_watermark at that moment */
  size_t input;        /* record: the input it came from */
} probe_event_t;

typedef struct probe {
  probe_event_t ev[512];
  size_t n;
} probe_t;

static brook_err_t probe_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static void probe_log(probe_t *p, char kind, brook_time_t value, brook_time_t ctx_wm,
                      size_t input) {
  assert_true(p->n < sizeof(p->ev) / sizeof(p->ev[0]));
  p->ev[p->n++] = (probe_event_t){kind, value, ctx_wm, input};
}

static brook_err_t probe_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  probe_log(state, 'r', rec->timestamp, brook_ctx_watermark(ctx), brook_ctx_input(ctx));
  return brook_emit(ctx, rec);
}

static brook_err_t probe_on_watermark(brook_ctx_t *ctx, void *state, brook_time_t wm) {
  probe_log(state, 'w', wm, brook_ctx_watermark(ctx), 0);
  return BROOK_OK;
}

static const brook_operator_t probe_op = {.version = BROOK_OPERATOR_VERSION,
                                          .type_name = "probe",
                                          .open = probe_open,
                                          .process = probe_process,
                                          .on_watermark = probe_on_watermark};

/* The probe over `n` inputs, named `name`. */
static brook_stream_t *add_probe(brook_stream_t *const *ins, size_t n, const char *name,
                                 probe_t *p) {
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  o.name = name;
  brook_stream_t *out = NULL;
  assert_int_equal(brook_operator_add(ins, n, &probe_op, p, &o, &out), BROOK_OK);
  return out;
}

/* The watermarks on_watermark saw, in order. */
static size_t probe_watermarks(const probe_t *p, brook_time_t *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < p->n; i++)
    if (p->ev[i].kind == 'w' && k < cap)
      out[k++] = p->ev[i].value;
  return k;
}

/* on_watermark: strictly increasing values, each equal to brook_ctx_watermark then. */
static void assert_watermarks_increase(const probe_t *p) {
  brook_time_t last = BROOK_TIME_MIN;
  int first = 1;
  for (size_t i = 0; i < p->n; i++) {
    if (p->ev[i].kind != 'w')
      continue;
    if (!first && p->ev[i].value <= last)
      fail_msg("on_watermark went from %lld to %lld", (long long)last, (long long)p->ev[i].value);
    assert_int_equal(p->ev[i].ctx_wm, p->ev[i].value);
    last = p->ev[i].value;
    first = 0;
  }
}

static void assert_probe_watermarks(const probe_t *p, const brook_time_t *expected, size_t n) {
  brook_time_t got[512];
  size_t k = probe_watermarks(p, got, 512);
  for (size_t i = 0; i < k && i < n; i++)
    if (got[i] != expected[i])
      fail_msg("on_watermark #%zu: got %lld, expected %lld", i, (long long)got[i],
               (long long)expected[i]);
  if (k != n)
    fail_msg("on_watermark called %zu times, expected %zu", k, n);
  assert_watermarks_increase(p);
}

/* The test's topology and driver, freed by the teardown even when an assertion fails. */
static brook_topology_t *g_topo;
static brook_driver_t *g_drv;

static void fixture_free(void) {
  brook_driver_free(g_drv);
  g_drv = NULL;
  brook_topology_free(g_topo);
  g_topo = NULL;
}

static int teardown(void **state) {
  (void)state;
  fixture_free();
  return 0;
}

static brook_topology_t *new_topology(brook_error_policy_t policy) {
  fixture_free();
  return g_topo = collect_topology(policy);
}

static brook_driver_t *new_driver(brook_topology_t *t, brook_time_t start) {
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  o.start_time = start;
  brook_driver_t *d = NULL;
  brook_err_t err = brook_driver_new(&d, t, &o);
  if (err != BROOK_OK)
    fail_msg("brook_driver_new: %s: %s", brook_errname(err), brook_topology_last_error(t));
  brook_driver_free(g_drv);
  return g_drv = d;
}

static void push_ts(brook_driver_t *d, const char *src, size_t split, brook_time_t ts) {
  brook_record_t r = {.value = "v", .value_len = 1, .timestamp = ts};
  brook_err_t err = brook_driver_push_split(d, src, split, &r);
  if (err != BROOK_OK)
    fail_msg("push %s/%zu ts %lld: %s: %s", src, split, (long long)ts, brook_errname(err),
             brook_driver_last_error(d));
}

#define WM(d, name) brook_driver_watermark((d), (name))

static brook_stream_t *source_with(brook_topology_t *t, const char *name,
                                   const brook_watermark_opts_t *o) {
  brook_stream_t *s = brook_source_push(t, name, NULL);
  assert_non_null(s);
  if (o)
    assert_int_equal(brook_source_set_watermark(s, o), BROOK_OK);
  return s;
}

/* ---- strategies ---- */

static void test_bounded(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  assert_int_equal(o.kind, BROOK_WATERMARK_BOUNDED);
  assert_int_equal(o.max_delay, 0);
  o.max_delay = 5;
  brook_stream_t *src = source_with(t, "in", &o);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  assert_int_equal(WM(d, "in"), BROOK_TIME_MIN);
  assert_int_equal(WM(d, "p"), BROOK_TIME_MIN);
  /* W = max - delay - 1, never decreasing with out-of-order input. */
  static const brook_time_t ts[] = {100, 90, 120, 110, 95, 121, 116};
  static const brook_time_t wm[] = {94, 94, 114, 114, 114, 115, 115};
  for (size_t i = 0; i < 7; i++) {
    push_ts(d, "in", 0, ts[i]);
    assert_int_equal(WM(d, "in"), wm[i]);
    assert_int_equal(WM(d, "p"), wm[i]);
    assert_int_equal(WM(d, "out"), wm[i]);
  }
  /* No record is dropped by a watermark alone. */
  assert_int_equal(brook_driver_output_count(d, "out"), 7);
  static const brook_time_t expected[] = {94, 114, 115};
  assert_probe_watermarks(&p, expected, 3);
  /* Records first, then the watermark that follows them: the first record saw no
   * watermark, the second the one after the first. */
  assert_int_equal(p.ev[0].kind, 'r');
  assert_int_equal(p.ev[0].ctx_wm, BROOK_TIME_MIN);
  assert_int_equal(p.ev[1].kind, 'w');
  assert_int_equal(p.ev[1].value, 94);
  assert_int_equal(p.ev[2].kind, 'r');
  assert_int_equal(p.ev[2].ctx_wm, 94);
  /* The processing-time clock does not move a bounded watermark. */
  assert_int_equal(brook_driver_advance_time(d, 100000), BROOK_OK);
  assert_int_equal(WM(d, "in"), 115);
}

static void test_default_strategy(void **state) {
  (void)state;
  /* A source without a strategy: own timestamps, bounded with max_delay 0. */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = source_with(t, "in", NULL);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 100);
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 0, 50);
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 0, 100);
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 0, 101);
  assert_int_equal(WM(d, "in"), 100);
  assert_int_equal(WM(d, "p"), 100);
  static const brook_time_t expected[] = {99, 100};
  assert_probe_watermarks(&p, expected, 2);
}

static void test_bounded_saturates(void **state) {
  (void)state;
  /* Extreme timestamps and delays must not overflow (the sanitizer checks). */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.max_delay = BROOK_TIME_MAX;
  brook_stream_t *a = source_with(t, "a", &o);
  brook_stream_t *b = source_with(t, "b", NULL);
  named_sink(a, "outa");
  named_sink(b, "outb");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "a", 0, -100);
  assert_int_equal(WM(d, "a"), BROOK_TIME_MIN);
  push_ts(d, "a", 0, BROOK_TIME_MAX);
  assert_int_equal(WM(d, "a"), -1);
  push_ts(d, "b", 0, BROOK_TIME_MIN);
  assert_int_equal(WM(d, "b"), BROOK_TIME_MIN);
  push_ts(d, "b", 0, BROOK_TIME_MIN + 1);
  assert_int_equal(WM(d, "b"), BROOK_TIME_MIN);
  push_ts(d, "b", 0, 0);
  assert_int_equal(WM(d, "b"), -1);
}

static void test_monotonous(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.kind = BROOK_WATERMARK_MONOTONOUS;
  o.max_delay = 50; /* not part of the monotonous strategy: W = max - 1 */
  brook_stream_t *src = source_with(t, "in", &o);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 100);
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 0, 200);
  assert_int_equal(WM(d, "in"), 199);
  push_ts(d, "in", 0, 150); /* out of order anyway: no step back */
  assert_int_equal(WM(d, "in"), 199);
  assert_int_equal(WM(d, "p"), 199);
  static const brook_time_t expected[] = {99, 199};
  assert_probe_watermarks(&p, expected, 2);
}

static void test_strategy_replaced(void **state) {
  (void)state;
  /* Setting the strategy again replaces it. */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.max_delay = 1000;
  brook_stream_t *src = source_with(t, "in", &o);
  o.max_delay = 10;
  assert_int_equal(brook_source_set_watermark(src, &o), BROOK_OK);
  o.max_delay = 77; /* opts were copied */
  named_sink(src, "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 100);
  assert_int_equal(WM(d, "in"), 89);
}

/* Punctuated: the watermark is carried by a "wm" header (decimal). */
typedef struct custom_log {
  size_t calls;
  size_t split[32];
  brook_time_t current[32];
  brook_time_t ts[32];
} custom_log_t;

static brook_time_t header_time(const brook_record_t *rec, const char *name, int *found) {
  const brook_header_t *h = brook_record_header(rec, name);
  *found = h != NULL;
  if (!h)
    return 0;
  char buf[32];
  size_t n = h->value_len < sizeof(buf) - 1 ? h->value_len : sizeof(buf) - 1;
  memcpy(buf, h->value, n);
  buf[n] = '\0';
  return (brook_time_t)strtoll(buf, NULL, 10);
}

static brook_time_t punctuated(const brook_record_t *rec, size_t split, brook_time_t current,
                               void *opaque) {
  custom_log_t *l = opaque;
  if (l->calls < 32) {
    l->split[l->calls] = split;
    l->current[l->calls] = current;
    l->ts[l->calls] = rec->timestamp;
  }
  l->calls++;
  int found;
  brook_time_t w = header_time(rec, "wm", &found);
  return found ? w : current;
}

static void push_punct(brook_driver_t *d, size_t split, brook_time_t ts, const char *wm) {
  brook_header_t h = {"wm", wm, wm ? strlen(wm) : 0};
  brook_record_t r = {.value = "v", .value_len = 1, .timestamp = ts};
  if (wm) {
    r.headers = &h;
    r.header_count = 1;
  }
  assert_int_equal(brook_driver_push_split(d, "in", split, &r), BROOK_OK);
}

static void test_custom_punctuated(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  custom_log_t log = {0};
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.kind = BROOK_WATERMARK_CUSTOM;
  o.custom = punctuated;
  o.custom_opaque = &log;
  brook_stream_t *src = source_with(t, "in", &o);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_punct(d, 0, 10, NULL); /* no punctuation: timestamps alone do not move it */
  assert_int_equal(WM(d, "in"), BROOK_TIME_MIN);
  push_punct(d, 0, 20, "15");
  assert_int_equal(WM(d, "in"), 15);
  push_punct(d, 0, 30, "5"); /* smaller: ignored */
  assert_int_equal(WM(d, "in"), 15);
  push_punct(d, 0, 40, NULL);
  assert_int_equal(WM(d, "in"), 15);
  push_punct(d, 0, 50, "1000"); /* may run ahead of the timestamps */
  assert_int_equal(WM(d, "in"), 1000);
  assert_int_equal(WM(d, "p"), 1000);
  assert_int_equal(log.calls, 5);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(log.split[i], 0);
  assert_int_equal(log.current[0], BROOK_TIME_MIN);
  assert_int_equal(log.current[1], BROOK_TIME_MIN);
  assert_int_equal(log.current[2], 15);
  assert_int_equal(log.current[3], 15); /* the smaller value was not taken */
  assert_int_equal(log.current[4], 15);
  assert_int_equal(log.ts[4], 50);
  /* Another split: its own current watermark. */
  push_punct(d, 1, 60, "2000");
  assert_int_equal(log.split[5], 1);
  assert_int_equal(log.current[5], BROOK_TIME_MIN);
  assert_int_equal(WM(d, "in"), 1000); /* min over the splits */
  push_punct(d, 0, 70, "3000");
  assert_int_equal(WM(d, "in"), 2000);
  assert_int_equal(brook_driver_output_count(d, "out"), 7);
  static const brook_time_t expected[] = {15, 1000, 2000};
  assert_probe_watermarks(&p, expected, 3);
}

/* ---- timestamp extraction ---- */

typedef struct extract_log {
  size_t calls;
} extract_log_t;

/* The value is the event time in decimal; anything else fails. */
static brook_err_t ts_from_value(const brook_record_t *rec, brook_time_t *ts, void *opaque) {
  extract_log_t *l = opaque;
  l->calls++;
  if (!rec->value || rec->value_len == 0 || rec->value_len > 18)
    return BROOK_ERR_INVALID_ARG;
  brook_time_t v = 0;
  for (size_t i = 0; i < rec->value_len; i++) {
    char c = ((const char *)rec->value)[i];
    if (c < '0' || c > '9')
      return BROOK_ERR_INVALID_ARG;
    v = v * 10 + (c - '0');
  }
  *ts = v;
  return BROOK_OK;
}

static void push_text(brook_driver_t *d, const char *value, brook_err_t expect) {
  brook_record_t r = {.value = value, .value_len = strlen(value), .timestamp = 7};
  brook_err_t err = brook_driver_push(d, "in", &r);
  if (err != expect)
    fail_msg("push '%s': got %s, expected %s (%s)", value, brook_errname(err),
             brook_errname(expect), brook_driver_last_error(d));
}

static void test_timestamp_extractor(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  extract_log_t l = {0};
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.timestamp = ts_from_value;
  o.timestamp_opaque = &l;
  brook_stream_t *src = source_with(t, "in", &o);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_text(d, "1000", BROOK_OK);
  push_text(d, "900", BROOK_OK);
  push_text(d, "1500", BROOK_OK);
  assert_int_equal(l.calls, 3);
  assert_int_equal(WM(d, "in"), 1499);
  /* The extracted time is the record's timestamp downstream. */
  assert_int_equal(brook_driver_output_count(d, "out"), 3);
  assert_int_equal(brook_driver_output(d, "out", 0)->timestamp, 1000);
  assert_int_equal(brook_driver_output(d, "out", 1)->timestamp, 900);
  assert_int_equal(p.ev[0].value, 1000);
}

/* A custom strategy sees the extracted timestamp. */
static brook_time_t ts_minus_ten(const brook_record_t *rec, size_t split, brook_time_t current,
                                 void *opaque) {
  (void)split, (void)current, (void)opaque;
  return rec->timestamp - 10;
}

static void test_custom_after_extraction(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  extract_log_t l = {0};
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.kind = BROOK_WATERMARK_CUSTOM;
  o.custom = ts_minus_ten;
  o.timestamp = ts_from_value;
  o.timestamp_opaque = &l;
  named_sink(source_with(t, "in", &o), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_text(d, "500", BROOK_OK);
  assert_int_equal(WM(d, "in"), 490);
}

static void test_timestamp_extractor_errors(void **state) {
  (void)state;
  for (int policy = BROOK_ON_ERROR_FAIL; policy <= BROOK_ON_ERROR_ROUTE; policy++) {
    brook_topology_t *t = new_topology((brook_error_policy_t)policy);
    extract_log_t l = {0};
    brook_watermark_opts_t o;
    brook_watermark_opts_init(&o);
    o.timestamp = ts_from_value;
    o.timestamp_opaque = &l;
    brook_stream_t *src = source_with(t, "in", &o);
    probe_t p = {0};
    named_sink(add_probe(&src, 1, "p", &p), "out");
    named_sink(brook_error_stream(t), "errs");
    brook_driver_t *d = new_driver(t, 0);
    /* A failure on the very first record leaves no watermark. */
    push_text(d, "x1", policy == BROOK_ON_ERROR_FAIL ? BROOK_ERR_INVALID_ARG : BROOK_OK);
    assert_int_equal(WM(d, "in"), BROOK_TIME_MIN);
    assert_int_equal(WM(d, "p"), BROOK_TIME_MIN);
    if (policy == BROOK_ON_ERROR_FAIL) {
      assert_int_equal(brook_driver_status(d), BROOK_ERR_INVALID_ARG);
      assert_non_null(strstr(brook_driver_last_error(d), "in"));
      assert_int_equal(brook_driver_output_count(d, "out"), 0);
      assert_int_equal(p.n, 0);
      continue;
    }
    push_text(d, "100", BROOK_OK);
    assert_int_equal(WM(d, "in"), 99);
    /* A record whose time cannot be read is not part of the stream and does not move the
     * watermark, even with a huge "timestamp" of its own. */
    brook_record_t bad = {.value = "zzz", .value_len = 3, .timestamp = 1000000};
    assert_int_equal(brook_driver_push(d, "in", &bad), BROOK_OK);
    assert_int_equal(WM(d, "in"), 99);
    assert_int_equal(WM(d, "p"), 99);
    push_text(d, "300", BROOK_OK);
    assert_int_equal(WM(d, "in"), 299);
    assert_int_equal(brook_driver_output_count(d, "out"), 2);
    static const brook_time_t expected[] = {99, 299};
    assert_probe_watermarks(&p, expected, 2);
    brook_runtime_stats_t st = {.struct_size = sizeof(st)};
    assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
    if (policy == BROOK_ON_ERROR_SKIP) {
      assert_int_equal(st.records_skipped, 2);
      assert_int_equal(brook_driver_output_count(d, "errs"), 0);
    } else {
      assert_int_equal(st.records_routed, 2);
      assert_int_equal(brook_driver_output_count(d, "errs"), 2);
      const brook_record_t *e = brook_driver_output(d, "errs", 1);
      assert_int_equal(e->value_len, 3);
      assert_memory_equal(e->value, "zzz", 3);
      const brook_header_t *h = brook_record_header(e, "brook.error");
      assert_non_null(h);
      assert_int_equal(h->value_len, strlen("BROOK_ERR_INVALID_ARG"));
      assert_memory_equal(h->value, "BROOK_ERR_INVALID_ARG", h->value_len);
      h = brook_record_header(e, "brook.error.operator");
      assert_non_null(h);
      assert_int_equal(h->value_len, 2);
      assert_memory_equal(h->value, "in", 2);
    }
    assert_int_equal(brook_driver_end(d), BROOK_OK);
    assert_int_equal(WM(d, "in"), BROOK_TIME_MAX);
  }
}

/* ---- minimum over sources, inputs and splits ---- */

static void test_min_over_sources_merge(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *ins[2] = {source_with(t, "A", NULL), source_with(t, "B", NULL)};
  brook_stream_t *m = brook_stream_set_name(brook_merge(ins, 2), "m");
  assert_non_null(m);
  probe_t p = {0};
  named_sink(add_probe(&m, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "A", 0, 100);
  assert_int_equal(WM(d, "A"), 99);
  assert_int_equal(WM(d, "B"), BROOK_TIME_MIN);
  assert_int_equal(WM(d, "m"), BROOK_TIME_MIN); /* B has said nothing yet */
  assert_int_equal(WM(d, "p"), BROOK_TIME_MIN);
  push_ts(d, "B", 0, 50);
  assert_int_equal(WM(d, "m"), 49);
  push_ts(d, "B", 0, 200);
  assert_int_equal(WM(d, "m"), 99);
  push_ts(d, "A", 0, 300);
  assert_int_equal(WM(d, "m"), 199);
  push_ts(d, "A", 0, 150);
  assert_int_equal(WM(d, "A"), 299);
  assert_int_equal(WM(d, "m"), 199);
  assert_int_equal(WM(d, "p"), 199);
  static const brook_time_t expected[] = {49, 99, 199};
  assert_probe_watermarks(&p, expected, 3);
}

static void test_min_over_inputs_two_input_operator(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *ins[2] = {source_with(t, "A", NULL), source_with(t, "B", NULL)};
  probe_t p = {0};
  named_sink(add_probe(ins, 2, "j", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "B", 0, 1000);
  assert_int_equal(WM(d, "j"), BROOK_TIME_MIN);
  push_ts(d, "A", 0, 10);
  assert_int_equal(WM(d, "j"), 9);
  push_ts(d, "A", 0, 2000);
  assert_int_equal(WM(d, "j"), 999);
  push_ts(d, "B", 0, 3000);
  assert_int_equal(WM(d, "j"), 1999);
  /* The probe saw the inputs' records on inputs 1, 0, 0, 1. */
  size_t inputs[4], k = 0;
  for (size_t i = 0; i < p.n; i++)
    if (p.ev[i].kind == 'r' && k < 4)
      inputs[k++] = p.ev[i].input;
  assert_int_equal(k, 4);
  assert_int_equal(inputs[0], 1);
  assert_int_equal(inputs[1], 0);
  assert_int_equal(inputs[2], 0);
  assert_int_equal(inputs[3], 1);
  static const brook_time_t expected[] = {9, 999, 1999};
  assert_probe_watermarks(&p, expected, 3);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(WM(d, "j"), BROOK_TIME_MAX);
}

static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}

static void test_watermark_through_chain(void **state) {
  (void)state;
  /* Stateless operators without on_watermark pass the watermark on. */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *f =
      brook_stream_set_name(brook_filter(source_with(t, "in", NULL), keep_all, NULL), "f");
  probe_t p = {0};
  named_sink(add_probe(&f, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 42);
  assert_int_equal(WM(d, "f"), 41);
  assert_int_equal(WM(d, "p"), 41);
  assert_int_equal(WM(d, "out"), 41);
}

static void test_splits(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = source_with(t, "in", NULL);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 100);
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 1, 50); /* a new split behind: the watermark does not go back */
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 1, 150); /* split 1 at 149, split 0 at 99 */
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 0, 300); /* min(299, 149) */
  assert_int_equal(WM(d, "in"), 149);
  push_ts(d, "in", 1, 400); /* min(299, 399) */
  assert_int_equal(WM(d, "in"), 299);
  /* brook_driver_push is split 0. */
  brook_record_t r = {.value = "v", .value_len = 1, .timestamp = 500};
  assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  assert_int_equal(WM(d, "in"), 399);
  assert_int_equal(WM(d, "p"), 399);
  static const brook_time_t expected[] = {99, 149, 299, 399};
  assert_probe_watermarks(&p, expected, 4);
}

static void test_sparse_split_numbers(void **state) {
  (void)state;
  /* Regression (this failed before the fix): test_driver.h: "a split exists from its first
   * record". bk_wm_split() in src/time/watermark.c creates every split below the one pushed
   * to, so pushing to split 3 creates splits 1 and 2 with watermark BROOK_TIME_MIN, which
   * hold the source's watermark back forever (until the end). */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  named_sink(source_with(t, "in", NULL), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 100);
  push_ts(d, "in", 3, 200);
  assert_int_equal(WM(d, "in"), 99);
  push_ts(d, "in", 0, 300);
  assert_int_equal(WM(d, "in"), 199); /* min over splits 0 and 3 */
}

/* ---- idleness ---- */

static void test_idle_split(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.idle_timeout = 1000;
  brook_stream_t *src = source_with(t, "in", &o);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 100);
  push_ts(d, "in", 1, 100);
  push_ts(d, "in", 0, 500);
  assert_int_equal(WM(d, "in"), 99); /* split 1 holds it */
  assert_int_equal(brook_driver_advance_time(d, 600), BROOK_OK);
  push_ts(d, "in", 0, 600); /* split 0 stays active */
  assert_int_equal(WM(d, "in"), 99);
  assert_int_equal(brook_driver_advance_time(d, 399), BROOK_OK);
  assert_int_equal(WM(d, "in"), 99); /* split 1 quiet for 999 ms: not idle yet */
  assert_int_equal(brook_driver_advance_time(d, 1), BROOK_OK);
  assert_int_equal(WM(d, "in"), 599); /* split 1 idle: no longer holds back */
  assert_int_equal(WM(d, "p"), 599);
  push_ts(d, "in", 1, 50); /* active again, behind: never goes back */
  assert_int_equal(WM(d, "in"), 599);
  push_ts(d, "in", 0, 1000); /* split 1 (at 99) holds again */
  assert_int_equal(WM(d, "in"), 599);
  push_ts(d, "in", 1, 2000);
  assert_int_equal(WM(d, "in"), 999);
  assert_int_equal(WM(d, "p"), 999);
  static const brook_time_t expected[] = {99, 599, 999};
  assert_probe_watermarks(&p, expected, 3);
}

static void test_idle_source_into_merge(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.idle_timeout = 1000;
  brook_stream_t *ins[2] = {source_with(t, "A", NULL), source_with(t, "B", &o)};
  brook_stream_t *m = brook_stream_set_name(brook_merge(ins, 2), "m");
  probe_t p = {0};
  named_sink(add_probe(&m, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "A", 0, 100);
  push_ts(d, "B", 0, 100);
  push_ts(d, "A", 0, 500);
  assert_int_equal(WM(d, "m"), 99);
  assert_int_equal(brook_driver_advance_time(d, 999), BROOK_OK);
  assert_int_equal(WM(d, "m"), 99);
  assert_int_equal(brook_driver_advance_time(d, 1), BROOK_OK);
  assert_int_equal(WM(d, "m"), 499); /* B idle: A alone decides */
  assert_int_equal(WM(d, "B"), 99);  /* an idle source keeps its own watermark */
  assert_int_equal(brook_driver_advance_time(d, 5000), BROOK_OK);
  assert_int_equal(WM(d, "m"), 499);
  push_ts(d, "A", 0, 700);
  assert_int_equal(WM(d, "m"), 699);
  push_ts(d, "B", 0, 50); /* B active again, behind */
  assert_int_equal(WM(d, "m"), 699);
  push_ts(d, "A", 0, 1000);
  assert_int_equal(WM(d, "m"), 699); /* held by B at 99 */
  push_ts(d, "B", 0, 800);
  assert_int_equal(WM(d, "m"), 799);
  assert_int_equal(WM(d, "p"), 799);
  static const brook_time_t expected[] = {99, 499, 699, 799};
  assert_probe_watermarks(&p, expected, 4);
}

static void test_all_inputs_idle(void **state) {
  (void)state;
  /* Every input idle: the consumer keeps its watermark (no jump, no step back), and wakes
   * up with the first input that has a record again. */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.idle_timeout = 100;
  brook_stream_t *ins[2] = {source_with(t, "A", &o), source_with(t, "B", &o)};
  brook_stream_t *m = brook_stream_set_name(brook_merge(ins, 2), "m");
  probe_t p = {0};
  named_sink(add_probe(&m, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "A", 0, 100);
  push_ts(d, "B", 0, 200);
  assert_int_equal(WM(d, "m"), 99);
  assert_int_equal(brook_driver_advance_time(d, 100), BROOK_OK);
  assert_int_equal(WM(d, "m"), 99);
  assert_int_equal(WM(d, "p"), 99);
  assert_int_equal(brook_driver_advance_time(d, 10000), BROOK_OK);
  assert_int_equal(WM(d, "m"), 99);
  push_ts(d, "A", 0, 150); /* A alone is active */
  assert_int_equal(WM(d, "m"), 149);
  static const brook_time_t expected[] = {99, 149};
  assert_probe_watermarks(&p, expected, 2);
}

static void test_idle_source_without_records(void **state) {
  (void)state;
  /* Regression (this failed before the fix): time.h: "A split (or a whole input) that has been
   * idle for idle_timeout stops holding the minimum back." A source that never received a
   * record has been idle since the start, but with no split yet bk_wm_combine() reports it
   * as not idle and bk_wm_tick() has nothing to mark, so it holds its consumers at
   * BROOK_TIME_MIN forever (until the end). */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.idle_timeout = 1000;
  brook_stream_t *ins[2] = {source_with(t, "A", NULL), source_with(t, "B", &o)};
  brook_stream_t *m = brook_stream_set_name(brook_merge(ins, 2), "m");
  named_sink(m, "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "A", 0, 100);
  assert_int_equal(WM(d, "m"), BROOK_TIME_MIN);
  assert_int_equal(brook_driver_advance_time(d, 1000), BROOK_OK);
  push_ts(d, "A", 0, 200);
  assert_int_equal(WM(d, "m"), 199);
}

/* ---- quiet advance ---- */

static void test_advance_when_quiet(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.advance_when_quiet = 500;
  brook_stream_t *src = source_with(t, "in", &o);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 10000);
  /* Nothing to advance before the first record. */
  assert_int_equal(brook_driver_advance_time(d, 5000), BROOK_OK);
  assert_int_equal(WM(d, "in"), BROOK_TIME_MIN);
  push_ts(d, "in", 0, 1000); /* at 15000 */
  assert_int_equal(WM(d, "in"), 999);
  assert_int_equal(brook_driver_advance_time(d, 499), BROOK_OK);
  assert_int_equal(WM(d, "in"), 999);
  assert_int_equal(brook_driver_advance_time(d, 1), BROOK_OK);
  /* W = (bounded watermark at the last record) + (now - arrival of the last record) */
  assert_int_equal(WM(d, "in"), 999 + 500);
  assert_int_equal(WM(d, "p"), 1499);
  assert_int_equal(brook_driver_advance_time(d, 250), BROOK_OK);
  assert_int_equal(WM(d, "in"), 999 + 750);
  push_ts(d, "in", 0, 3000); /* at 15750 */
  assert_int_equal(WM(d, "in"), 2999);
  assert_int_equal(brook_driver_advance_time(d, 100), BROOK_OK);
  assert_int_equal(WM(d, "in"), 2999); /* quiet for only 100 */
  assert_int_equal(brook_driver_advance_time(d, 400), BROOK_OK);
  assert_int_equal(WM(d, "in"), 2999 + 500);
  assert_int_equal(WM(d, "p"), 3499);
  static const brook_time_t expected[] = {999, 1499, 1749, 2999, 3499};
  assert_probe_watermarks(&p, expected, 5);
}

static void test_advance_when_quiet_with_delay(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.advance_when_quiet = 200;
  o.max_delay = 100;
  named_sink(source_with(t, "in", &o), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 1000);
  assert_int_equal(WM(d, "in"), 899);
  assert_int_equal(brook_driver_advance_time(d, 300), BROOK_OK);
  assert_int_equal(WM(d, "in"), 899 + 300);
  /* Per split: a second split that is not quiet keeps the minimum down. */
  push_ts(d, "in", 1, 1250); /* split 1 at 1149, split 0 quiet at 1199 */
  assert_int_equal(WM(d, "in"), 1199);
  assert_int_equal(brook_driver_advance_time(d, 100), BROOK_OK);
  /* split 0: 899 + 400; split 1 quiet for 100 < 200: 1149 */
  assert_int_equal(WM(d, "in"), 1199);
  assert_int_equal(brook_driver_advance_time(d, 100), BROOK_OK);
  /* split 0: 899 + 500 = 1399; split 1: 1149 + 200 = 1349 */
  assert_int_equal(WM(d, "in"), 1349);
}

static void test_advance_when_quiet_after_late_record(void **state) {
  (void)state;
  /* Regression (this failed before the fix): time.h: W = (bounded watermark at the last
   * record) + (now - arrival of the last record). bk_wm_observe() stores the split's
   * watermark (which already includes the earlier quiet advance) as wm_at_last. After the quiet
   * advance took the watermark to 1749, a record at 1200 arrives: the bounded watermark at that
   * record is 1199 (largest timestamp 1200, delay 0), so quiet for 500 more ms gives 1699 (below
   * 1749: no change) and for 600 ms 1799. The quiet advance must not compound on its own
   * extrapolation. */
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.advance_when_quiet = 500;
  named_sink(source_with(t, "in", &o), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "in", 0, 1000);
  assert_int_equal(brook_driver_advance_time(d, 750), BROOK_OK);
  assert_int_equal(WM(d, "in"), 1749);
  push_ts(d, "in", 0, 1200);
  assert_int_equal(WM(d, "in"), 1749);
  assert_int_equal(brook_driver_advance_time(d, 500), BROOK_OK);
  assert_int_equal(WM(d, "in"), 1749);
  assert_int_equal(brook_driver_advance_time(d, 100), BROOK_OK);
  assert_int_equal(WM(d, "in"), 1799);
}

/* ---- the end ---- */

static void test_end_goes_to_max(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  o.max_delay = 1000;
  brook_stream_t *ins[3] = {source_with(t, "A", &o), source_with(t, "B", NULL),
                            source_with(t, "C", NULL)}; /* C never gets a record */
  brook_stream_t *m = brook_stream_set_name(brook_merge(ins, 3), "m");
  probe_t p = {0};
  named_sink(add_probe(&m, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  push_ts(d, "A", 0, 5000);
  push_ts(d, "A", 2, 6000);
  push_ts(d, "B", 0, 100);
  assert_int_equal(WM(d, "m"), BROOK_TIME_MIN);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(WM(d, "A"), BROOK_TIME_MAX);
  assert_int_equal(WM(d, "B"), BROOK_TIME_MAX);
  assert_int_equal(WM(d, "C"), BROOK_TIME_MAX);
  assert_int_equal(WM(d, "m"), BROOK_TIME_MAX);
  assert_int_equal(WM(d, "p"), BROOK_TIME_MAX);
  assert_int_equal(WM(d, "out"), BROOK_TIME_MAX);
  static const brook_time_t expected[] = {BROOK_TIME_MAX};
  assert_probe_watermarks(&p, expected, 1);
  /* Idempotent: no second on_watermark. */
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_probe_watermarks(&p, expected, 1);
  assert_int_equal(brook_driver_advance_time(d, 10), BROOK_OK);
  assert_int_equal(WM(d, "p"), BROOK_TIME_MAX);
}

static void test_end_after_progress(void **state) {
  (void)state;
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = source_with(t, "in", NULL);
  probe_t p = {0};
  named_sink(add_probe(&src, 1, "p", &p), "out");
  brook_driver_t *d = new_driver(t, 0);
  for (brook_time_t ts = 10; ts <= 100; ts += 10)
    push_ts(d, "in", 0, ts);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  static const brook_time_t expected[] = {9, 19, 29, 39, 49, 59, 69, 79, 89, 99, BROOK_TIME_MAX};
  assert_probe_watermarks(&p, expected, 11);
  /* The last event is the final watermark; every record came before its watermark. */
  assert_int_equal(p.ev[p.n - 1].kind, 'w');
  for (size_t i = 0; i + 1 < p.n; i += 2) {
    assert_int_equal(p.ev[i].kind, 'r');
    assert_int_equal(p.ev[i + 1].kind, 'w');
    assert_int_equal(p.ev[i + 1].value, p.ev[i].value - 1);
  }
}

/* ---- validation ---- */

static void test_set_watermark_validation(void **state) {
  (void)state;
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  assert_int_equal(brook_source_set_watermark(NULL, &o), BROOK_ERR_INVALID_ARG);
  brook_watermark_opts_init(NULL);

  for (int c = 0; c < 4; c++) {
    brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
    brook_stream_t *src = brook_source_push(t, "in", NULL);
    brook_stream_t *f = brook_filter(src, keep_all, NULL);
    named_sink(f, "out");
    brook_watermark_opts_init(&o);
    brook_stream_t *target = src;
    switch (c) {
    case 0: /* not a source's stream */
      target = f;
      break;
    case 1:
      o.max_delay = -1;
      break;
    case 2:
      o.kind = BROOK_WATERMARK_CUSTOM; /* without a custom callback */
      break;
    case 3:
      o.struct_size = 1;
      break;
    }
    assert_int_equal(brook_source_set_watermark(target, &o), BROOK_ERR_INVALID_ARG);
    assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
    assert_true(strlen(brook_topology_last_error(t)) > 0);
    brook_driver_t *d = (brook_driver_t *)&o;
    assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_ERR_BUILD);
    assert_null(d);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_bounded, teardown),
      cmocka_unit_test_teardown(test_default_strategy, teardown),
      cmocka_unit_test_teardown(test_bounded_saturates, teardown),
      cmocka_unit_test_teardown(test_monotonous, teardown),
      cmocka_unit_test_teardown(test_strategy_replaced, teardown),
      cmocka_unit_test_teardown(test_custom_punctuated, teardown),
      cmocka_unit_test_teardown(test_timestamp_extractor, teardown),
      cmocka_unit_test_teardown(test_custom_after_extraction, teardown),
      cmocka_unit_test_teardown(test_timestamp_extractor_errors, teardown),
      cmocka_unit_test_teardown(test_min_over_sources_merge, teardown),
      cmocka_unit_test_teardown(test_min_over_inputs_two_input_operator, teardown),
      cmocka_unit_test_teardown(test_watermark_through_chain, teardown),
      cmocka_unit_test_teardown(test_splits, teardown),
      cmocka_unit_test_teardown(test_sparse_split_numbers, teardown),
      cmocka_unit_test_teardown(test_idle_split, teardown),
      cmocka_unit_test_teardown(test_idle_source_into_merge, teardown),
      cmocka_unit_test_teardown(test_all_inputs_idle, teardown),
      cmocka_unit_test_teardown(test_idle_source_without_records, teardown),
      cmocka_unit_test_teardown(test_advance_when_quiet, teardown),
      cmocka_unit_test_teardown(test_advance_when_quiet_with_delay, teardown),
      cmocka_unit_test_teardown(test_advance_when_quiet_after_late_record, teardown),
      cmocka_unit_test_teardown(test_end_goes_to_max, teardown),
      cmocka_unit_test_teardown(test_end_after_progress, teardown),
      cmocka_unit_test_teardown(test_set_watermark_validation, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
