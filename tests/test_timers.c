/* Timers (time.h) in a custom version-2 operator: event-time and processing-time timers per
 * key through the test driver (firing order, deduplication, deletion, counts, timers due at
 * registration, timers set from on_timer, long and empty keys, failures, stats), a
 * randomized comparison with a sorted reference, and the real runtime (a generator whose
 * natural end fires every timer before end_of_input; a push source whose processing-time
 * timer fires through the loop's clock and stops the runtime). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"
#include "driver_helpers.h"
#include "runtime/timers.h"
#include "wait.h"

/* ---- the timer operator: runs commands given by the test, logs what fires ---- */

typedef struct cmd {
  char op; /* 's' brook_timer_set, 'd' brook_timer_delete, 'n' brook_timer_count */
  brook_time_domain_t dom;
  brook_time_t time;
  const void *key;
  size_t key_len;
  uint64_t tag;
  brook_err_t result; /* set / delete */
  size_t count;       /* count */
} cmd_t;

typedef struct event {
  char kind; /* 't' timer, 'w' on_watermark, 'r' record, 'e' end_of_input */
  brook_time_domain_t dom;
  brook_time_t time; /* timer time, watermark, or record timestamp */
  unsigned char *key;
  size_t key_len;
  uint64_t tag;
  brook_time_t wm, now;        /* brook_ctx_watermark / brook_ctx_now at that moment */
  size_t pending_e, pending_p; /* brook_timer_count at that moment */
} event_t;

typedef struct tops tops_t;
typedef brook_err_t (*timer_hook_fn)(brook_ctx_t *ctx, tops_t *s, const brook_timer_t *t);
typedef brook_err_t (*record_hook_fn)(brook_ctx_t *ctx, tops_t *s, const brook_record_t *rec);

struct tops {
  cmd_t *cmds; /* run (then forgotten) by the next process() */
  size_t n_cmds;
  event_t *ev;
  size_t n_ev, cap_ev;
  size_t timers_seen_in_process; /* timers fired while process() ran its commands */
  int emit_on_timer;             /* on_timer emits "t<time>/<tag>" */
  timer_hook_fn on_fire;
  record_hook_fn on_record;
  brook_runtime_t *rt;
  void *user;
  /* failure injection */
  brook_err_t fail_on_watermark;
};

static tops_t *g_tops;
static brook_topology_t *g_topo;
static brook_driver_t *g_drv;

static void tops_free(tops_t *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n_ev; i++)
    free(s->ev[i].key);
  free(s->ev);
  free(s);
}

static void fixture_free(void) {
  brook_driver_free(g_drv);
  g_drv = NULL;
  brook_topology_free(g_topo);
  g_topo = NULL;
  tops_free(g_tops);
  g_tops = NULL;
}

static int teardown(void **state) {
  (void)state;
  fixture_free();
  collect_strings_free();
  return 0;
}

static tops_t *tops_new(void) {
  fixture_free();
  g_tops = calloc(1, sizeof(*g_tops));
  assert_non_null(g_tops);
  return g_tops;
}

static size_t count_kind(const tops_t *s, char kind) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_ev; i++)
    n += s->ev[i].kind == kind;
  return n;
}

static event_t *log_event(tops_t *s, brook_ctx_t *ctx, char kind) {
  if (s->n_ev == s->cap_ev) {
    s->cap_ev = s->cap_ev ? 2 * s->cap_ev : 64;
    s->ev = realloc(s->ev, s->cap_ev * sizeof(*s->ev));
    assert_non_null(s->ev);
  }
  event_t *e = &s->ev[s->n_ev++];
  memset(e, 0, sizeof(*e));
  e->kind = kind;
  e->wm = brook_ctx_watermark(ctx);
  e->now = brook_ctx_now(ctx);
  e->pending_e = brook_timer_count(ctx, BROOK_EVENT_TIME);
  e->pending_p = brook_timer_count(ctx, BROOK_PROCESSING_TIME);
  return e;
}

static brook_err_t tops_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static void run_cmds(brook_ctx_t *ctx, tops_t *s) {
  size_t before = count_kind(s, 't');
  for (size_t i = 0; i < s->n_cmds; i++) {
    cmd_t *c = &s->cmds[i];
    switch (c->op) {
    case 's':
      c->result = brook_timer_set(ctx, c->dom, c->time, c->key, c->key_len, c->tag);
      break;
    case 'd':
      c->result = brook_timer_delete(ctx, c->dom, c->time, c->key, c->key_len, c->tag);
      break;
    default:
      c->count = brook_timer_count(ctx, c->dom);
      break;
    }
  }
  s->timers_seen_in_process += count_kind(s, 't') - before;
  s->n_cmds = 0;
}

static brook_err_t tops_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  tops_t *s = state;
  run_cmds(ctx, s);
  log_event(s, ctx, 'r')->time = rec->timestamp;
  if (s->on_record) {
    brook_err_t err = s->on_record(ctx, s, rec);
    if (err < 0)
      return err;
  }
  return brook_emit(ctx, rec);
}

static brook_err_t tops_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  tops_t *s = state;
  event_t *e = log_event(s, ctx, 't');
  e->dom = t->domain;
  e->time = t->time;
  e->tag = t->tag;
  e->key_len = t->key_len;
  e->key = malloc(t->key_len ? t->key_len : 1);
  assert_non_null(e->key);
  if (t->key_len)
    memcpy(e->key, t->key, t->key_len);
  if (s->emit_on_timer) {
    char *v = brook_ctx_alloc(ctx, 48);
    if (!v)
      return BROOK_ERR_NOMEM;
    int n = snprintf(v, 48, "t%lld/%llu", (long long)t->time, (unsigned long long)t->tag);
    brook_record_t out = {.value = v, .value_len = (size_t)n, .timestamp = t->time};
    brook_err_t err = brook_emit(ctx, &out);
    if (err < 0)
      return err;
  }
  return s->on_fire ? s->on_fire(ctx, s, t) : BROOK_OK;
}

static brook_err_t tops_on_watermark(brook_ctx_t *ctx, void *state, brook_time_t wm) {
  tops_t *s = state;
  log_event(s, ctx, 'w')->time = wm;
  if (s->fail_on_watermark) {
    brook_ctx_set_error(ctx, "watermark %lld refused", (long long)wm);
    return s->fail_on_watermark;
  }
  return BROOK_OK;
}

static brook_err_t tops_end(brook_ctx_t *ctx, void *state) {
  log_event(state, ctx, 'e');
  return BROOK_OK;
}

static const brook_operator_t timer_op = {.version = BROOK_OPERATOR_VERSION,
                                          .type_name = "timers",
                                          .open = tops_open,
                                          .process = tops_process,
                                          .end_of_input = tops_end,
                                          .on_timer = tops_on_timer,
                                          .on_watermark = tops_on_watermark};

/* source "in" -> timer operator "T" -> sink "out", under the driver. */
static brook_driver_t *timer_driver(tops_t *s, const brook_operator_t *op, brook_time_t start) {
  g_topo = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = brook_source_push(g_topo, "in", NULL);
  brook_stream_t *t = brook_stream_set_name(brook_apply(src, op, s), "T");
  assert_non_null(t);
  named_sink(t, "out");
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  o.start_time = start;
  brook_err_t err = brook_driver_new(&g_drv, g_topo, &o);
  if (err != BROOK_OK)
    fail_msg("brook_driver_new: %s", brook_topology_last_error(g_topo));
  return g_drv;
}

/* Runs `cmds` inside process() of a record with timestamp `ts`. */
static brook_err_t push_cmds(brook_driver_t *d, tops_t *s, brook_time_t ts, cmd_t *cmds, size_t n) {
  s->cmds = cmds;
  s->n_cmds = n;
  brook_record_t r = {.value = "r", .value_len = 1, .timestamp = ts};
  brook_err_t err = brook_driver_push(d, "in", &r);
  s->cmds = NULL;
  s->n_cmds = 0;
  return err;
}

static void push_ok(brook_driver_t *d, tops_t *s, brook_time_t ts, cmd_t *cmds, size_t n) {
  brook_err_t err = push_cmds(d, s, ts, cmds, n);
  if (err != BROOK_OK)
    fail_msg("push ts %lld: %s: %s", (long long)ts, brook_errname(err), brook_driver_last_error(d));
}

#define SET(dom, time, key, klen, tag)                                                             \
  { 's', (dom), (time), (key), (klen), (tag), 99, 0 }
#define SETE(time, key, tag) SET(BROOK_EVENT_TIME, (time), (key), strlen(key), (tag))
#define DEL(dom, time, key, klen, tag)                                                             \
  { 'd', (dom), (time), (key), (klen), (tag), 99, 0 }
#define DELE(time, key, tag) DEL(BROOK_EVENT_TIME, (time), (key), strlen(key), (tag))
#define COUNT(dom)                                                                                 \
  { 'n', (dom), 0, NULL, 0, 0, 99, 0 }

static void assert_results_ok(const cmd_t *cmds, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((cmds[i].op == 's' || cmds[i].op == 'd') && cmds[i].result != BROOK_OK)
      fail_msg("command %zu (%c): %s", i, cmds[i].op, brook_errname(cmds[i].result));
}

/* The fired timers (kind 't') from event index `from`. */
typedef struct expect_timer {
  brook_time_t time;
  const char *key;
  size_t key_len;
  uint64_t tag;
} expect_timer_t;

static void assert_fired(const tops_t *s, size_t from, const expect_timer_t *x, size_t n) {
  size_t k = 0;
  for (size_t i = from; i < s->n_ev; i++) {
    const event_t *e = &s->ev[i];
    if (e->kind != 't')
      continue;
    if (k >= n)
      fail_msg("extra timer fired: time %lld, key len %zu, tag %llu", (long long)e->time,
               e->key_len, (unsigned long long)e->tag);
    if (e->time != x[k].time || e->key_len != x[k].key_len || e->tag != x[k].tag ||
        (e->key_len && memcmp(e->key, x[k].key, e->key_len) != 0))
      fail_msg("timer #%zu: got (%lld, len %zu '%.*s', %llu), expected (%lld, len %zu '%.*s', "
               "%llu)",
               k, (long long)e->time, e->key_len, (int)e->key_len, (const char *)e->key,
               (unsigned long long)e->tag, (long long)x[k].time, x[k].key_len, (int)x[k].key_len,
               x[k].key, (unsigned long long)x[k].tag);
    k++;
  }
  if (k != n)
    fail_msg("%zu timers fired, expected %zu", k, n);
}

static brook_runtime_stats_t driver_stats(brook_driver_t *d) {
  brook_runtime_stats_t st;
  memset(&st, 0, sizeof(st));
  st.struct_size = sizeof(st);
  assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
  return st;
}

/* ---- order ---- */

static void test_fire_order(void **state) {
  (void)state;
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[] = {
      SETE(10, "b", 1),
      SETE(10, "a", 2),
      SETE(10, "a", 1),
      SETE(5, "z", 0),
      SETE(10, "ab", 0),
      SET(BROOK_EVENT_TIME, 10, "", 0, 0),
      SET(BROOK_EVENT_TIME, 10, "a\0", 2, 0),
      SETE(10, "\xff", 0),
      SETE(10, "B", 0),
      SETE(7, "a", 9),
      SETE(10, "a", UINT64_MAX),
      /* Common prefixes longer than 8 bytes. */
      SETE(20, "prefix12X", 0),
      SETE(20, "prefix12", 0),
      SET(BROOK_EVENT_TIME, 20, "prefix12\0", 9, 0),
      SETE(20, "prefix12XY", 0),
      SETE(20, "prefix12\x80", 0),
      SETE(20, "prefix1", 0),
      COUNT(BROOK_EVENT_TIME),
  };
  size_t n = sizeof(cmds) / sizeof(cmds[0]);
  push_ok(d, s, 1, cmds, n); /* watermark 0: nothing due */
  assert_results_ok(cmds, n);
  assert_int_equal(cmds[n - 1].count, 17);
  assert_int_equal(count_kind(s, 't'), 0);
  assert_int_equal(s->timers_seen_in_process, 0);
  size_t from = s->n_ev;
  push_ok(d, s, 11, NULL, 0); /* watermark 10 */
  static const expect_timer_t first[] = {
      {5, "z", 1, 0},   {7, "a", 1, 9},  {10, "", 0, 0},           {10, "B", 1, 0},
      {10, "a", 1, 1},  {10, "a", 1, 2}, {10, "a", 1, UINT64_MAX}, {10, "a\0", 2, 0},
      {10, "ab", 2, 0}, {10, "b", 1, 1}, {10, "\xff", 1, 0},
  };
  assert_fired(s, from, first, 11);
  /* Every timer fired with the operator's watermark already at (or past) its time, and
   * on_watermark came after the timers. */
  for (size_t i = from; i < s->n_ev; i++)
    if (s->ev[i].kind == 't')
      assert_true(s->ev[i].wm >= s->ev[i].time);
  assert_int_equal(s->ev[s->n_ev - 1].kind, 'w');
  assert_int_equal(s->ev[s->n_ev - 1].time, 10);
  from = s->n_ev;
  push_ok(d, s, 25, NULL, 0);
  static const expect_timer_t second[] = {
      {20, "prefix1", 7, 0},   {20, "prefix12", 8, 0},    {20, "prefix12\0", 9, 0},
      {20, "prefix12X", 9, 0}, {20, "prefix12XY", 10, 0}, {20, "prefix12\x80", 9, 0},
  };
  assert_fired(s, from, second, 6);
  assert_int_equal(driver_stats(d).timers_fired, 17);
}

/* ---- dedupe, domains, delete, count ---- */

static void test_dedupe_and_domains(void **state) {
  (void)state;
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[] = {
      SETE(10, "k", 0),
      SETE(10, "k", 0),
      SETE(10, "k", 0),
      COUNT(BROOK_EVENT_TIME),
      SETE(10, "k", 1), /* another tag: another timer */
      SETE(11, "k", 0), /* another time */
      SETE(10, "kk", 0),
      SET(BROOK_PROCESSING_TIME, 10, "k", 1, 0), /* another domain */
      SET(BROOK_PROCESSING_TIME, 10, "k", 1, 0),
      COUNT(BROOK_EVENT_TIME),
      COUNT(BROOK_PROCESSING_TIME),
  };
  push_ok(d, s, 1, cmds, 11);
  assert_results_ok(cmds, 11);
  assert_int_equal(cmds[3].count, 1);
  assert_int_equal(cmds[9].count, 4);
  assert_int_equal(cmds[10].count, 1);
  push_ok(d, s, 12, NULL, 0);
  static const expect_timer_t e[] = {
      {10, "k", 1, 0}, {10, "k", 1, 1}, {10, "kk", 2, 0}, {11, "k", 1, 0}};
  assert_fired(s, 0, e, 4);
  for (size_t i = 0; i < s->n_ev; i++)
    if (s->ev[i].kind == 't')
      assert_int_equal(s->ev[i].dom, BROOK_EVENT_TIME);
  size_t from = s->n_ev;
  assert_int_equal(brook_driver_advance_time(d, 10), BROOK_OK);
  static const expect_timer_t p[] = {{10, "k", 1, 0}};
  assert_fired(s, from, p, 1);
  assert_int_equal(s->ev[s->n_ev - 1].dom, BROOK_PROCESSING_TIME);
  assert_int_equal(s->ev[s->n_ev - 1].pending_p, 0);
  /* Once fired, the same registration is a new timer. */
  from = s->n_ev;
  cmd_t again[] = {SETE(10, "k", 0), COUNT(BROOK_EVENT_TIME)};
  push_ok(d, s, 12, again, 2);
  assert_int_equal(again[1].count, 1);
  static const expect_timer_t e2[] = {{10, "k", 1, 0}};
  assert_fired(s, from, e2, 1); /* due at once: fired at the end of that push */
  assert_int_equal(driver_stats(d).timers_fired, 6);
}

static void test_delete_and_count(void **state) {
  (void)state;
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[] = {
      SETE(50, "a", 0),
      SETE(50, "b", 0),
      SETE(60, "a", 0),
      DELE(50, "a", 0),
      DELE(50, "a", 0),                          /* no longer pending */
      DELE(50, "a", 1),                          /* never set */
      DEL(BROOK_PROCESSING_TIME, 60, "a", 1, 0), /* other domain */
      DELE(60, "ab", 0),
      COUNT(BROOK_EVENT_TIME),
      COUNT(BROOK_PROCESSING_TIME),
      DEL(BROOK_EVENT_TIME, 60, NULL, 3, 0),
      SET(BROOK_EVENT_TIME, 60, NULL, 3, 0),
      SET((brook_time_domain_t)7, 60, "a", 1, 0),
      DEL((brook_time_domain_t)7, 60, "a", 1, 0),
      COUNT((brook_time_domain_t)7),
      SETE(70, "c", 0),
      DELE(70, "c", 0),
      SETE(70, "c", 0), /* set again after a delete */
  };
  push_ok(d, s, 1, cmds, 18);
  assert_int_equal(cmds[3].result, BROOK_OK);
  assert_int_equal(cmds[4].result, BROOK_ERR_NOT_FOUND);
  assert_int_equal(cmds[5].result, BROOK_ERR_NOT_FOUND);
  assert_int_equal(cmds[6].result, BROOK_ERR_NOT_FOUND);
  assert_int_equal(cmds[7].result, BROOK_ERR_NOT_FOUND);
  assert_int_equal(cmds[8].count, 2);
  assert_int_equal(cmds[9].count, 0);
  assert_int_equal(cmds[10].result, BROOK_ERR_INVALID_ARG);
  assert_int_equal(cmds[11].result, BROOK_ERR_INVALID_ARG);
  assert_int_equal(cmds[12].result, BROOK_ERR_INVALID_ARG);
  assert_int_equal(cmds[13].result, BROOK_ERR_INVALID_ARG);
  assert_int_equal(cmds[14].count, 0);
  assert_int_equal(cmds[16].result, BROOK_OK);
  assert_int_equal(cmds[17].result, BROOK_OK);
  push_ok(d, s, 100, NULL, 0);
  static const expect_timer_t e[] = {{50, "b", 1, 0}, {60, "a", 1, 0}, {70, "c", 1, 0}};
  assert_fired(s, 0, e, 3);
  cmd_t after[] = {DELE(60, "a", 0), DELE(50, "b", 0), COUNT(BROOK_EVENT_TIME)};
  push_ok(d, s, 101, after, 3);
  assert_int_equal(after[0].result, BROOK_ERR_NOT_FOUND); /* already fired */
  assert_int_equal(after[1].result, BROOK_ERR_NOT_FOUND);
  assert_int_equal(after[2].count, 0);
  /* A pending delete of a processing-time timer. */
  cmd_t p[] = {SET(BROOK_PROCESSING_TIME, 5, "p", 1, 0), SET(BROOK_PROCESSING_TIME, 6, "p", 1, 0),
               DEL(BROOK_PROCESSING_TIME, 5, "p", 1, 0), COUNT(BROOK_PROCESSING_TIME)};
  push_ok(d, s, 102, p, 4);
  assert_int_equal(p[2].result, BROOK_OK);
  assert_int_equal(p[3].count, 1);
  size_t from = s->n_ev;
  assert_int_equal(brook_driver_advance_time(d, 100), BROOK_OK);
  static const expect_timer_t pe[] = {{6, "p", 1, 0}};
  assert_fired(s, from, pe, 1);
  assert_int_equal(brook_timer_count(NULL, BROOK_EVENT_TIME), 0);
  assert_int_equal(brook_timer_set(NULL, BROOK_EVENT_TIME, 1, "k", 1, 0), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_timer_delete(NULL, BROOK_EVENT_TIME, 1, "k", 1, 0), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_ctx_watermark(NULL), BROOK_TIME_MIN);
}

/* ---- timers due when registered ---- */

static void test_due_timers_fire_at_end_of_push(void **state) {
  (void)state;
  tops_t *s = tops_new();
  s->emit_on_timer = 1;
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  push_ok(d, s, 100, NULL, 0);
  assert_int_equal(brook_driver_watermark(d, "T"), 99);
  brook_driver_clear_output(d, "out");
  /* A late record registers timers below, at and above the watermark. */
  cmd_t cmds[] = {SETE(80, "x", 0), SETE(99, "y", 0), SETE(100, "z", 0),
                  SETE(BROOK_TIME_MIN, "min", 0)};
  size_t from = s->n_ev;
  push_ok(d, s, 50, cmds, 4);
  assert_results_ok(cmds, 4);
  assert_int_equal(s->timers_seen_in_process, 0); /* not from inside brook_timer_set */
  static const expect_timer_t e[] = {
      {BROOK_TIME_MIN, "min", 3, 0}, {80, "x", 1, 0}, {99, "y", 1, 0}};
  assert_fired(s, from, e, 3);
  assert_int_equal(brook_driver_watermark(d, "T"), 99);
  /* The record went downstream first, then what the timers emitted. */
  assert_int_equal(brook_driver_output_count(d, "out"), 4);
  const brook_record_t *r0 = brook_driver_output(d, "out", 0);
  const brook_record_t *r2 = brook_driver_output(d, "out", 2);
  assert_int_equal(r0->timestamp, 50);
  assert_int_equal(r2->value_len, 5);
  assert_memory_equal(r2->value, "t80/0", 5);
  /* No on_watermark for a watermark that did not move. */
  for (size_t i = from; i < s->n_ev; i++)
    assert_int_not_equal(s->ev[i].kind, 'w');
  from = s->n_ev;
  push_ok(d, s, 101, NULL, 0);
  static const expect_timer_t z[] = {{100, "z", 1, 0}};
  assert_fired(s, from, z, 1);
}

/* Timers registered inside on_timer. */
static brook_err_t rearm(brook_ctx_t *ctx, tops_t *s, const brook_timer_t *t) {
  (void)s;
  brook_err_t err = BROOK_OK;
  if (t->key_len == 1 && memcmp(t->key, "m", 1) == 0 && t->tag == 0) {
    /* same time, later key; same time, earlier key; the same key, another tag; below the
     * watermark; later; processing time already due; and its own key as handed over */
    if ((err = brook_timer_set(ctx, BROOK_EVENT_TIME, 100, "z", 1, 0)) < 0 ||
        (err = brook_timer_set(ctx, BROOK_EVENT_TIME, 100, "a", 1, 0)) < 0 ||
        (err = brook_timer_set(ctx, BROOK_EVENT_TIME, 100, t->key, t->key_len, 1)) < 0 ||
        (err = brook_timer_set(ctx, BROOK_EVENT_TIME, 90, "past", 4, 0)) < 0 ||
        (err = brook_timer_set(ctx, BROOK_EVENT_TIME, 150, "later", 5, 0)) < 0 ||
        (err = brook_timer_set(ctx, BROOK_PROCESSING_TIME, 0, "pnow", 4, 0)) < 0)
      return err;
  }
  if (t->key_len == 5 && memcmp(t->key, "later", 5) == 0 && t->tag < 3)
    err = brook_timer_set(ctx, BROOK_EVENT_TIME, t->time, t->key, t->key_len, t->tag + 1);
  return err;
}

static void test_timers_set_in_on_timer(void **state) {
  (void)state;
  tops_t *s = tops_new();
  s->on_fire = rearm;
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[] = {SETE(100, "m", 0)};
  push_ok(d, s, 1, cmds, 1);
  push_ok(d, s, 101, NULL, 0); /* watermark 100 */
  static const expect_timer_t e[] = {
      {100, "m", 1, 0}, {90, "past", 4, 0}, {100, "a", 1, 0}, {100, "m", 1, 1}, {100, "z", 1, 0}};
  assert_fired(s, 0, e, 5);
  assert_int_equal(s->ev[s->n_ev - 1].kind, 'w');
  assert_int_equal(s->ev[s->n_ev - 1].time, 100);
  assert_int_equal(s->ev[s->n_ev - 1].pending_e, 1); /* "later" */
  assert_int_equal(s->ev[s->n_ev - 1].pending_p, 1); /* "pnow" */
  size_t from = s->n_ev;
  push_ok(d, s, 151, NULL, 0);
  /* "later" re-registers itself with the next tag while firing: the chain runs to tag 3. */
  static const expect_timer_t l[] = {
      {150, "later", 5, 0}, {150, "later", 5, 1}, {150, "later", 5, 2}, {150, "later", 5, 3}};
  assert_fired(s, from, l, 4);
  from = s->n_ev;
  assert_int_equal(brook_driver_advance_time(d, 0), BROOK_OK); /* already due */
  static const expect_timer_t p[] = {{0, "pnow", 4, 0}};
  assert_fired(s, from, p, 1);
  assert_int_equal(driver_stats(d).timers_fired, 10);
}

/* ---- keys ---- */

static void test_long_and_empty_keys(void **state) {
  (void)state;
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  unsigned char k24[24], k25[25], k100[100], k100b[100], k99[99], k1000[1000];
  for (size_t i = 0; i < sizeof(k1000); i++)
    k1000[i] = (unsigned char)(i * 7 + 3);
  memcpy(k24, k1000, 24);
  memcpy(k25, k1000, 25);
  memcpy(k100, k1000, 100);
  memcpy(k100b, k1000, 100);
  k100b[99] ^= 0x01; /* differs in the last byte only */
  memcpy(k99, k1000, 99);
  unsigned char empty = 0;
  cmd_t cmds[] = {
      SET(BROOK_EVENT_TIME, 10, k1000, 1000, 0),
      SET(BROOK_EVENT_TIME, 10, k100b, 100, 0),
      SET(BROOK_EVENT_TIME, 10, k100, 100, 0),
      SET(BROOK_EVENT_TIME, 10, k99, 99, 0),
      SET(BROOK_EVENT_TIME, 10, k25, 25, 0),
      SET(BROOK_EVENT_TIME, 10, k24, 24, 0),
      SET(BROOK_EVENT_TIME, 10, "", 0, 0),
      SET(BROOK_EVENT_TIME, 10, &empty, 0, 0), /* zero length: the same key */
      SET(BROOK_EVENT_TIME, 10, k100, 100, 0), /* duplicate long key */
      SET(BROOK_EVENT_TIME, 10, k25, 25, 7),
      DEL(BROOK_EVENT_TIME, 10, k25, 25, 7), /* delete a long key */
      SET(BROOK_EVENT_TIME, 10, k1000, 1000, 1),
      COUNT(BROOK_EVENT_TIME),
  };
  push_ok(d, s, 1, cmds, 13);
  assert_results_ok(cmds, 13);
  assert_int_equal(cmds[12].count, 8);
  /* The keys were copied: scribbling over the caller's buffers changes nothing. */
  unsigned char k1000_copy[1000], k100_copy[100], k100b_copy[100];
  memcpy(k1000_copy, k1000, 1000);
  memcpy(k100_copy, k100, 100);
  memcpy(k100b_copy, k100b, 100);
  memset(k1000, 0xEE, sizeof(k1000));
  memset(k100, 0xEE, sizeof(k100));
  memset(k100b, 0xEE, sizeof(k100b));
  memset(k99, 0xEE, sizeof(k99));
  memset(k25, 0xEE, sizeof(k25));
  memset(k24, 0xEE, sizeof(k24));
  push_ok(d, s, 11, NULL, 0);
  /* Order: empty, then the common prefix by length, the 100-byte keys by their last byte. */
  const unsigned char *k100_first = k100_copy[99] < k100b_copy[99] ? k100_copy : k100b_copy;
  const unsigned char *k100_second = k100_first == k100_copy ? k100b_copy : k100_copy;
  const expect_timer_t e[] = {
      {10, "", 0, 0},
      {10, (const char *)k1000_copy, 24, 0},
      {10, (const char *)k1000_copy, 25, 0},
      {10, (const char *)k1000_copy, 99, 0},
      {10, (const char *)k100_first, 100, 0},
      {10, (const char *)k100_second, 100, 0},
      {10, (const char *)k1000_copy, 1000, 0},
      {10, (const char *)k1000_copy, 1000, 1},
  };
  /* k100_copy and the first 100 bytes of k1000_copy are equal: whichever of k100/k100b
   * comes first, k1000 (longer, same prefix as k100) sorts right after k100. */
  if (k100_first == k100_copy) {
    expect_timer_t e2[8];
    memcpy(e2, e, sizeof(e));
    e2[5] = (expect_timer_t){10, (const char *)k1000_copy, 1000, 0};
    e2[6] = (expect_timer_t){10, (const char *)k1000_copy, 1000, 1};
    e2[7] = (expect_timer_t){10, (const char *)k100b_copy, 100, 0};
    assert_fired(s, 0, e2, 8);
  } else {
    assert_fired(s, 0, e, 8);
  }
}

/* Plain checks only (no cmocka assertions in the child): exit codes say what went wrong. */
static void null_key_scenario(void) {
  tops_t *s = calloc(1, sizeof(*s));
  brook_topology_t *t = NULL;
  brook_driver_t *d = NULL;
  if (!s || brook_topology_new(&t, NULL) != BROOK_OK)
    _exit(2);
  brook_stream_t *op =
      brook_stream_set_name(brook_apply(brook_source_push(t, "in", NULL), &timer_op, s), "T");
  if (brook_sink_callback(op, ignore_record, NULL, NULL) != BROOK_OK ||
      brook_driver_new(&d, t, NULL) != BROOK_OK)
    _exit(4);
  cmd_t cmds[] = {SET(BROOK_EVENT_TIME, 10, NULL, 0, 0), SET(BROOK_EVENT_TIME, 10, "", 0, 0),
                  COUNT(BROOK_EVENT_TIME), SET(BROOK_PROCESSING_TIME, 5, NULL, 0, 1),
                  DEL(BROOK_PROCESSING_TIME, 5, NULL, 0, 1)};
  if (push_cmds(d, s, 1, cmds, 5) != BROOK_OK || cmds[0].result != BROOK_OK ||
      cmds[1].result != BROOK_OK || cmds[2].count != 1 || cmds[4].result != BROOK_OK)
    _exit(5);
  if (push_cmds(d, s, 11, NULL, 0) != BROOK_OK || count_kind(s, 't') != 1)
    _exit(6);
  brook_driver_free(d);
  brook_topology_free(t);
  tops_free(s);
}

static void test_null_key_zero_length(void **state) {
  (void)state;
  /* Regression (this failed before the fix): brook_timer_set/delete accept key NULL with
   * key_len 0 (only "!key && key_len" is refused), but timer_hash() in
   * src/time/timer_queue.c then calls memcpy(&w, NULL + 0, 0), undefined behaviour that
   * aborts the sanitizer build. brook_dedupe and the window operators pass rec->key, which
   * is NULL for records without a key, straight to brook_timer_set. */
  int status = run_in_child(null_key_scenario);
  if (status != 0)
    fail_msg("a timer with key NULL, key_len 0 crashed or misbehaved (child status %d)", status);
}

/* ---- processing time ---- */

static void test_processing_time(void **state) {
  (void)state;
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &timer_op, 1000);
  cmd_t cmds[] = {
      SET(BROOK_PROCESSING_TIME, 1100, "p", 1, 0),
      SET(BROOK_PROCESSING_TIME, 1050, "q", 1, 0),
      SET(BROOK_PROCESSING_TIME, 1100, "p", 1, 0),
      SET(BROOK_PROCESSING_TIME, 900, "due", 3, 0), /* already due */
      SETE(2000, "e", 0),
  };
  push_ok(d, s, 1000000, cmds, 5);
  assert_results_ok(cmds, 5);
  /* The event-time timer fired with the watermark; processing-time ones wait for the
   * clock, even the one already due. */
  static const expect_timer_t e[] = {{2000, "e", 1, 0}};
  assert_fired(s, 0, e, 1);
  push_ok(d, s, 2000000, NULL, 0);
  assert_fired(s, 0, e, 1);
  size_t from = s->n_ev;
  assert_int_equal(brook_driver_advance_time(d, 0), BROOK_OK);
  static const expect_timer_t due[] = {{900, "due", 3, 0}};
  assert_fired(s, from, due, 1);
  assert_int_equal(s->ev[s->n_ev - 1].now, 1000);
  from = s->n_ev;
  assert_int_equal(brook_driver_advance_time(d, 49), BROOK_OK);
  assert_int_equal(count_kind(s, 't'), 2);
  assert_int_equal(brook_driver_advance_time(d, 1), BROOK_OK);
  static const expect_timer_t q[] = {{1050, "q", 1, 0}};
  assert_fired(s, from, q, 1);
  assert_int_equal(s->ev[s->n_ev - 1].now, 1050); /* brook_ctx_now is the manual clock */
  assert_int_equal(s->ev[s->n_ev - 1].pending_p, 1);
  from = s->n_ev;
  assert_int_equal(brook_driver_advance_time(d, 500), BROOK_OK);
  static const expect_timer_t p[] = {{1100, "p", 1, 0}};
  assert_fired(s, from, p, 1);
  assert_int_equal(s->ev[s->n_ev - 1].now, 1550);
  assert_int_equal(driver_stats(d).timers_fired, 4);
}

static void test_processing_time_order(void **state) {
  (void)state;
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[] = {
      SET(BROOK_PROCESSING_TIME, 30, "b", 1, 0), SET(BROOK_PROCESSING_TIME, 20, "c", 1, 0),
      SET(BROOK_PROCESSING_TIME, 30, "a", 1, 5), SET(BROOK_PROCESSING_TIME, 30, "a", 1, 4),
      SET(BROOK_PROCESSING_TIME, 31, "a", 1, 0),
  };
  push_ok(d, s, 1, cmds, 5);
  assert_int_equal(brook_driver_advance_time(d, 30), BROOK_OK);
  static const expect_timer_t e[] = {
      {20, "c", 1, 0}, {30, "a", 1, 4}, {30, "a", 1, 5}, {30, "b", 1, 0}};
  assert_fired(s, 0, e, 4);
}

/* ---- misuse and failures ---- */

typedef struct no_timer {
  brook_err_t set, del;
  size_t count;
} no_timer_t;

static brook_err_t no_timer_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  no_timer_t *n = state;
  n->set = brook_timer_set(ctx, BROOK_EVENT_TIME, 5, "k", 1, 0);
  n->del = brook_timer_delete(ctx, BROOK_EVENT_TIME, 5, "k", 1, 0);
  n->count = brook_timer_count(ctx, BROOK_EVENT_TIME);
  return brook_emit(ctx, rec);
}

static void test_timer_set_without_on_timer(void **state) {
  (void)state;
  static const brook_operator_t v2 = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "no_timer",
                                      .open = tops_open,
                                      .process = no_timer_process};
  brook_operator_t v1 = v2;
  v1.version = 1;
  v1.on_timer = tops_on_timer; /* not part of a version-1 table: must be ignored */
  const brook_operator_t *ops[] = {&v2, &v1};
  for (int i = 0; i < 2; i++) {
    no_timer_t n = {99, 99, 99};
    tops_new();
    brook_driver_t *d = timer_driver((tops_t *)&n, ops[i], 0);
    brook_record_t r = {.value = "r", .value_len = 1, .timestamp = 10};
    assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
    assert_int_equal(n.set, BROOK_ERR_STATE);
    assert_int_equal(n.del, BROOK_ERR_NOT_FOUND);
    assert_int_equal(n.count, 0);
    assert_int_equal(brook_driver_output_count(d, "out"), 1);
    assert_int_equal(brook_driver_end(d), BROOK_OK);
    assert_int_equal(driver_stats(d).timers_fired, 0);
  }
}

static brook_err_t explode(brook_ctx_t *ctx, tops_t *s, const brook_timer_t *t) {
  (void)s;
  if (t->key_len == 3 && memcmp(t->key, "bad", 3) == 0) {
    brook_ctx_set_error(ctx, "timer %s at %lld exploded", t->domain ? "P" : "E",
                        (long long)t->time);
    return BROOK_ERR_IO;
  }
  return BROOK_OK;
}

static void test_on_timer_error(void **state) {
  (void)state;
  for (int dom = 0; dom < 2; dom++) {
    tops_t *s = tops_new();
    s->on_fire = explode;
    brook_driver_t *d = timer_driver(s, &timer_op, 0);
    cmd_t cmds[] = {SET((brook_time_domain_t)dom, 10, "a", 1, 0),
                    SET((brook_time_domain_t)dom, 10, "bad", 3, 0),
                    SET((brook_time_domain_t)dom, 10, "c", 1, 0)};
    push_ok(d, s, 1, cmds, 3);
    brook_err_t err =
        dom == BROOK_EVENT_TIME ? push_cmds(d, s, 100, NULL, 0) : brook_driver_advance_time(d, 10);
    assert_int_equal(err, BROOK_ERR_IO);
    assert_int_equal(brook_driver_status(d), BROOK_ERR_IO);
    const char *msg = brook_driver_last_error(d);
    assert_non_null(strstr(msg, dom ? "timer P at 10 exploded" : "timer E at 10 exploded"));
    assert_non_null(strstr(msg, "'T'"));
    /* "c" never fired: the pipeline stopped at the failure, and stays failed. */
    static const expect_timer_t e[] = {{10, "a", 1, 0}, {10, "bad", 3, 0}};
    assert_fired(s, 0, e, 2);
    assert_int_equal(push_cmds(d, s, 200, NULL, 0), BROOK_ERR_IO);
    assert_int_equal(brook_driver_advance_time(d, 100), BROOK_ERR_IO);
    assert_int_equal(brook_driver_end(d), BROOK_ERR_IO);
    assert_fired(s, 0, e, 2);
    assert_int_equal(count_kind(s, 'e'), 0);
  }
}

static void test_on_watermark_error(void **state) {
  (void)state;
  tops_t *s = tops_new();
  s->fail_on_watermark = BROOK_ERR_USER;
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  assert_int_equal(push_cmds(d, s, 100, NULL, 0), BROOK_ERR_USER);
  assert_int_equal(brook_driver_status(d), BROOK_ERR_USER);
  assert_non_null(strstr(brook_driver_last_error(d), "watermark 99 refused"));
}

/* A library call that failed and was handled must not explain a later, unrelated failure. */
typedef struct stale {
  int n;
  brook_err_t set;
} stale_t;

static brook_err_t stale_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  stale_t *s = state;
  if (s->n++ == 0) {
    s->set = brook_timer_set(ctx, BROOK_EVENT_TIME, 5, "k", 1, 0); /* refused, and handled */
    return brook_emit(ctx, rec);
  }
  return BROOK_ERR_IO; /* fails without explaining itself */
}

static void test_handled_timer_error_does_not_explain_later_failure(void **state) {
  (void)state;
  /* Regression (this failed before the fix): brook_timer_set refusing with BROOK_ERR_STATE calls
   * brook_ctx_set_error on the caller's context, and that text stays attached to the
   * context (has_error_msg is only cleared when a record fails). The operator ignored the
   * refusal; its next, unrelated failure is then reported as "brook_timer_set: operator
   * 'S' has no on_timer callback". operator.h: brook_ctx_set_error "explains the failure a
   * callback is about to return". brook_store_open's refusals (DUPLICATE, STATE) do the
   * same. */
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "stale",
                                      .open = tops_open,
                                      .process = stale_process};
  tops_new();
  static stale_t st;
  memset(&st, 0, sizeof(st));
  g_topo = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s =
      brook_stream_set_name(brook_apply(brook_source_push(g_topo, "in", NULL), &op, &st), "S");
  named_sink(s, "out");
  assert_int_equal(brook_driver_new(&g_drv, g_topo, NULL), BROOK_OK);
  brook_record_t r = {.value = "r", .value_len = 1, .timestamp = 1};
  assert_int_equal(brook_driver_push(g_drv, "in", &r), BROOK_OK);
  assert_int_equal(st.set, BROOK_ERR_STATE);
  assert_int_equal(brook_driver_push(g_drv, "in", &r), BROOK_ERR_IO);
  const char *msg = brook_driver_last_error(g_drv);
  if (strstr(msg, "on_timer"))
    fail_msg("a stale message explains the failure: \"%s\"", msg);
  assert_non_null(strstr(msg, brook_strerror(BROOK_ERR_IO)));
}

/* Timers registered from on_watermark, and event-time timers from a processing-time timer,
 * at or before the watermark: "fires at the end of the current batch". */
static brook_err_t arm_in_on_watermark(brook_ctx_t *ctx, void *state, brook_time_t wm) {
  tops_t *s = state;
  log_event(s, ctx, 'w')->time = wm;
  if (wm == 99)
    return brook_timer_set(ctx, BROOK_EVENT_TIME, wm, "w", 1, 0);
  return BROOK_OK;
}

static void test_timer_set_in_on_watermark(void **state) {
  (void)state;
  /* Regression (this failed before the fix): a timer set from on_watermark at the current
   * watermark is due, but bk_time_pass() fires timers before calling on_watermark and does
   * not look again, so it fires only when the next batch (or the end) comes. With a quiet
   * source that can be never. time.h: "An event-time timer at or before the current
   * watermark fires at the end of the current batch." */
  brook_operator_t op = timer_op;
  op.on_watermark = arm_in_on_watermark;
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &op, 0);
  push_ok(d, s, 100, NULL, 0); /* watermark 99: on_watermark sets (99, "w") */
  static const expect_timer_t e[] = {{99, "w", 1, 0}};
  assert_fired(s, 0, e, 1);
}

static brook_err_t arm_event_from_processing(brook_ctx_t *ctx, tops_t *s, const brook_timer_t *t) {
  (void)s;
  if (t->domain == BROOK_PROCESSING_TIME)
    return brook_timer_set(ctx, BROOK_EVENT_TIME, 50, "from-p", 6, 0);
  return BROOK_OK;
}

static void test_event_timer_set_in_processing_timer(void **state) {
  (void)state;
  tops_t *s = tops_new();
  s->on_fire = arm_event_from_processing;
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[] = {SET(BROOK_PROCESSING_TIME, 10, "p", 1, 0)};
  push_ok(d, s, 100, cmds, 1); /* watermark 99 */
  assert_int_equal(brook_driver_advance_time(d, 10), BROOK_OK);
  static const expect_timer_t e[] = {{10, "p", 1, 0}, {50, "from-p", 6, 0}};
  assert_fired(s, 0, e, 2);
}

/* Many due timers each emitting a large record: the batch memory is recycled while timers
 * fire, and everything emitted must arrive intact and in order. */
static brook_err_t emit_big(brook_ctx_t *ctx, tops_t *s, const brook_timer_t *t) {
  (void)s;
  size_t n = 64 * 1024;
  unsigned char *v = brook_ctx_alloc(ctx, n);
  if (!v)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    v[i] = (unsigned char)(t->tag * 31 + i);
  brook_record_t out = {.value = v, .value_len = n, .timestamp = t->time};
  return brook_emit(ctx, &out);
}

static void test_on_timer_emits_a_lot(void **state) {
  (void)state;
  tops_t *s = tops_new();
  s->on_fire = emit_big;
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[200];
  for (size_t i = 0; i < 200; i++)
    cmds[i] = (cmd_t)SET(BROOK_EVENT_TIME, 10 + (brook_time_t)(i % 7), "k", 1, i);
  push_ok(d, s, 1, cmds, 200);
  brook_driver_clear_output(d, "out");
  push_ok(d, s, 1000, NULL, 0);
  assert_int_equal(count_kind(s, 't'), 200);
  assert_int_equal(brook_driver_output_count(d, "out"), 201);
  size_t k = 0;
  for (brook_time_t tm = 10; tm < 17; tm++)
    for (uint64_t tag = 0; tag < 200; tag++) {
      if (10 + (brook_time_t)(tag % 7) != tm)
        continue;
      const brook_record_t *r = brook_driver_output(d, "out", 1 + k++);
      assert_int_equal(r->timestamp, tm);
      assert_int_equal(r->value_len, 64 * 1024);
      const unsigned char *v = r->value;
      for (size_t i = 0; i < r->value_len; i += 997)
        if (v[i] != (unsigned char)(tag * 31 + i))
          fail_msg("timer output %zu (tag %llu) corrupted at byte %zu", k, (unsigned long long)tag,
                   i);
    }
  assert_int_equal(k, 200);
}

static void test_driver_end_fires_before_end_of_input(void **state) {
  (void)state;
  tops_t *s = tops_new();
  s->emit_on_timer = 1;
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  cmd_t cmds[] = {SETE(BROOK_TIME_MAX, "last", 0), SETE(1000000, "b", 0), SETE(1000000, "a", 0),
                  SET(BROOK_PROCESSING_TIME, 1000000, "p", 1, 0)};
  push_ok(d, s, 1, cmds, 4);
  assert_int_equal(count_kind(s, 't'), 0);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  static const expect_timer_t e[] = {
      {1000000, "a", 1, 0}, {1000000, "b", 1, 0}, {BROOK_TIME_MAX, "last", 4, 0}};
  assert_fired(s, 0, e, 3);
  /* Order: the timers, the final watermark, then end_of_input. */
  assert_int_equal(s->ev[s->n_ev - 1].kind, 'e');
  assert_int_equal(s->ev[s->n_ev - 2].kind, 'w');
  assert_int_equal(s->ev[s->n_ev - 2].time, BROOK_TIME_MAX);
  assert_int_equal(s->ev[s->n_ev - 3].kind, 't');
  assert_int_equal(brook_driver_output_count(d, "out"), 4);
}

/* ---- randomized: thousands of timers against a sorted, deduplicated reference ---- */

typedef struct ref_timer {
  int dom;
  brook_time_t time;
  unsigned char key[48];
  size_t key_len;
  uint64_t tag;
} ref_timer_t;

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static size_t rnd_below(size_t n) { return (size_t)(rnd() % n); }

static int ref_cmp(const void *pa, const void *pb) {
  const ref_timer_t *a = pa, *b = pb;
  if (a->time != b->time)
    return a->time < b->time ? -1 : 1;
  size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
  int c = n ? memcmp(a->key, b->key, n) : 0;
  if (c)
    return c;
  if (a->key_len != b->key_len)
    return a->key_len < b->key_len ? -1 : 1;
  if (a->tag != b->tag)
    return a->tag < b->tag ? -1 : 1;
  return 0;
}

static int ref_equal(const ref_timer_t *a, int dom, brook_time_t time, const void *key,
                     size_t key_len, uint64_t tag) {
  return a->dom == dom && a->time == time && a->tag == tag && a->key_len == key_len &&
         (key_len == 0 || memcmp(a->key, key, key_len) == 0);
}

typedef struct ref {
  ref_timer_t *t;
  size_t n, cap;
} ref_t;

static ptrdiff_t ref_find(const ref_t *r, int dom, brook_time_t time, const void *key,
                          size_t key_len, uint64_t tag) {
  for (size_t i = 0; i < r->n; i++)
    if (ref_equal(&r->t[i], dom, time, key, key_len, tag))
      return (ptrdiff_t)i;
  return -1;
}

static size_t ref_count(const ref_t *r, int dom) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    n += r->t[i].dom == dom;
  return n;
}

/* Removes the timers of `dom` due at `upto` into out[] (sorted); returns how many. */
static size_t ref_pop_due(ref_t *r, int dom, brook_time_t upto, ref_timer_t *out) {
  size_t k = 0, w = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (r->t[i].dom == dom && r->t[i].time <= upto)
      out[k++] = r->t[i];
    else
      r->t[w++] = r->t[i];
  }
  r->n = w;
  qsort(out, k, sizeof(*out), ref_cmp);
  return k;
}

static void check_fired_vs_ref(const tops_t *s, size_t from, const ref_timer_t *x, size_t n,
                               const char *when) {
  size_t k = 0;
  for (size_t i = from; i < s->n_ev; i++) {
    const event_t *e = &s->ev[i];
    if (e->kind != 't')
      continue;
    if (k >= n)
      fail_msg("%s: extra timer (dom %d, %lld, len %zu, tag %llu)", when, e->dom,
               (long long)e->time, e->key_len, (unsigned long long)e->tag);
    const ref_timer_t *r = &x[k];
    if (!ref_equal(r, (int)e->dom, e->time, e->key, e->key_len, e->tag))
      fail_msg("%s: timer #%zu: got (dom %d, %lld, len %zu, tag %llu), expected (dom %d, %lld, "
               "len %zu, tag %llu)",
               when, k, e->dom, (long long)e->time, e->key_len, (unsigned long long)e->tag, r->dom,
               (long long)r->time, r->key_len, (unsigned long long)r->tag);
    k++;
  }
  if (k != n)
    fail_msg("%s: %zu timers fired, expected %zu", when, k, n);
}

#define N_KEYS 64
#define MAX_CMDS 48

static void test_randomized_against_reference(void **state) {
  (void)state;
  static const uint64_t seed = 0x9E3779B97F4A7C15ULL;
  rng_state = seed;
  /* A pool of keys built to collide: lengths around 8 and 24 bytes, bytes from a small
   * alphabet with NUL and 0xff, prefixes of one another. */
  static const unsigned char alphabet[] = {0x00, 'a', 'b', 0xff};
  static const size_t lens[] = {0, 1, 2, 3, 7, 8, 9, 16, 23, 24, 25, 40};
  unsigned char keys[N_KEYS][48];
  size_t key_lens[N_KEYS];
  for (size_t i = 0; i < N_KEYS; i++) {
    key_lens[i] = lens[rnd_below(sizeof(lens) / sizeof(lens[0]))];
    if (i > 0 && rnd_below(3) == 0) { /* derived from an earlier key */
      size_t j = rnd_below(i);
      memcpy(keys[i], keys[j], 48);
    }
    for (size_t b = 0; b < key_lens[i]; b++)
      if (i == 0 || rnd_below(4) == 0)
        keys[i][b] = alphabet[rnd_below(4)];
  }
  tops_t *s = tops_new();
  brook_driver_t *d = timer_driver(s, &timer_op, 0);
  ref_t ref = {0};
  ref.cap = 16384;
  ref.t = malloc(ref.cap * sizeof(*ref.t));
  ref_timer_t *due = malloc(ref.cap * sizeof(*due));
  assert_non_null(ref.t);
  assert_non_null(due);
  cmd_t cmds[MAX_CMDS];
  size_t expect_count[MAX_CMDS];
  brook_err_t expect_result[MAX_CMDS];
  brook_time_t max_ts = 1000, wm = BROOK_TIME_MIN, now = 0;
  size_t total_fired = 0, sets = 0, dups = 0, dels = 0, dels_found = 0;
  for (int step = 0; step < 600; step++) {
    size_t n = rnd_below(MAX_CMDS + 1);
    for (size_t i = 0; i < n; i++) {
      cmd_t *c = &cmds[i];
      memset(c, 0, sizeof(*c));
      int dom = rnd_below(4) == 0 ? BROOK_PROCESSING_TIME : BROOK_EVENT_TIME;
      brook_time_t base = dom == BROOK_EVENT_TIME ? (wm == BROOK_TIME_MIN ? max_ts : wm) : now;
      size_t k = rnd_below(N_KEYS);
      c->dom = (brook_time_domain_t)dom;
      c->time = base - 10 + (brook_time_t)rnd_below(300);
      c->key = keys[k];
      c->key_len = key_lens[k];
      c->tag = rnd_below(3);
      size_t what = rnd_below(10);
      if (what < 2 && ref.n) { /* an existing timer again: set (duplicate) or delete */
        const ref_timer_t *r = &ref.t[rnd_below(ref.n)];
        c->dom = (brook_time_domain_t)r->dom;
        c->time = r->time;
        c->tag = r->tag;
        for (size_t j = 0; j < N_KEYS; j++)
          if (key_lens[j] == r->key_len && memcmp(keys[j], r->key, r->key_len) == 0) {
            c->key = keys[j];
            break;
          }
        c->key_len = r->key_len;
      }
      c->op = what == 0 || what == 7 ? 'd' : what == 8 ? 'n' : 's';
      /* The reference, in the same order. */
      ptrdiff_t at = ref_find(&ref, dom = (int)c->dom, c->time, c->key, c->key_len, c->tag);
      if (c->op == 's') {
        sets++;
        expect_result[i] = BROOK_OK;
        if (at >= 0) {
          dups++;
        } else {
          assert_true(ref.n < ref.cap);
          ref_timer_t *r = &ref.t[ref.n++];
          r->dom = dom;
          r->time = c->time;
          r->key_len = c->key_len;
          memcpy(r->key, c->key, c->key_len);
          r->tag = c->tag;
        }
      } else if (c->op == 'd') {
        dels++;
        expect_result[i] = at >= 0 ? BROOK_OK : BROOK_ERR_NOT_FOUND;
        if (at >= 0) {
          dels_found++;
          ref.t[at] = ref.t[--ref.n];
        }
      } else {
        expect_count[i] = ref_count(&ref, dom);
      }
    }
    size_t from = s->n_ev;
    if (rnd_below(4) != 0) {
      /* A record: usually later, sometimes late. */
      brook_time_t ts = rnd_below(5) == 0 ? max_ts - (brook_time_t)rnd_below(100)
                                          : max_ts + (brook_time_t)rnd_below(60);
      push_ok(d, s, ts, cmds, n);
      if (ts > max_ts)
        max_ts = ts;
      if (max_ts - 1 > wm)
        wm = max_ts - 1;
      assert_int_equal(brook_driver_watermark(d, "T"), wm);
      size_t k = ref_pop_due(&ref, BROOK_EVENT_TIME, wm, due);
      check_fired_vs_ref(s, from, due, k, "push");
      total_fired += k;
    } else {
      if (n) { /* registers; the watermark stays (or appears, on the first record) */
        push_ok(d, s, max_ts, cmds, n);
        if (max_ts - 1 > wm)
          wm = max_ts - 1;
      }
      size_t k = ref_pop_due(&ref, BROOK_EVENT_TIME, wm, due);
      check_fired_vs_ref(s, from, due, k, "registration push");
      total_fired += k;
      from = s->n_ev;
      brook_time_t adv = (brook_time_t)rnd_below(80);
      assert_int_equal(brook_driver_advance_time(d, adv), BROOK_OK);
      now += adv;
      k = ref_pop_due(&ref, BROOK_PROCESSING_TIME, now, due);
      check_fired_vs_ref(s, from, due, k, "advance_time");
      total_fired += k;
    }
    for (size_t i = 0; i < n; i++) {
      if (cmds[i].op == 'n') {
        if (cmds[i].count != expect_count[i])
          fail_msg("step %d cmd %zu: count %zu, expected %zu", step, i, cmds[i].count,
                   expect_count[i]);
      } else if (cmds[i].result != expect_result[i]) {
        fail_msg("step %d cmd %zu (%c): %s, expected %s", step, i, cmds[i].op,
                 brook_errname(cmds[i].result), brook_errname(expect_result[i]));
      }
    }
  }
  /* The end: every event-time timer fires, in order. */
  size_t from = s->n_ev;
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  size_t k = ref_pop_due(&ref, BROOK_EVENT_TIME, BROOK_TIME_MAX, due);
  size_t kk = 0;
  for (size_t i = from; i < s->n_ev; i++)
    kk += s->ev[i].kind == 't' && s->ev[i].dom == BROOK_EVENT_TIME;
  assert_int_equal(kk, k);
  size_t j = 0;
  for (size_t i = from; i < s->n_ev; i++) {
    const event_t *e = &s->ev[i];
    if (e->kind != 't' || e->dom != BROOK_EVENT_TIME)
      continue;
    assert_true(ref_equal(&due[j], BROOK_EVENT_TIME, e->time, e->key, e->key_len, e->tag));
    j++;
  }
  total_fired += k;
  /* Processing-time timers may or may not fire at the end: count what did. */
  for (size_t i = from; i < s->n_ev; i++)
    total_fired += s->ev[i].kind == 't' && s->ev[i].dom == BROOK_PROCESSING_TIME;
  assert_int_equal(driver_stats(d).timers_fired, total_fired);
  /* The test exercised what it claims to. */
  assert_true(sets > 5000);
  assert_true(dups > 500);
  assert_true(dels_found > 300);
  assert_true(dels - dels_found > 300);
  assert_true(total_fired > 2000);
  free(ref.t);
  free(due);
}

/* ---- the real runtime ---- */

typedef struct gen {
  size_t n, next;
} gen_t;

/* Record i: timestamp 10 * i, key "k<i % 37>". */
static brook_err_t gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  if (g->next >= g->n)
    return BROOK_DONE;
  size_t i = g->next++;
  char *k = brook_ctx_alloc(ctx, 8);
  if (!k)
    return BROOK_ERR_NOMEM;
  out->key = k;
  out->key_len = (size_t)snprintf(k, 8, "k%zu", i % 37);
  out->value = "v";
  out->value_len = 1;
  out->timestamp = 10 * (brook_time_t)i;
  return BROOK_OK;
}

/* Per record: a timer at ts + 5 (fires during the run), and one far in the future per key
 * and tag (fires only at the end). */
static brook_err_t arm_per_record(brook_ctx_t *ctx, tops_t *s, const brook_record_t *rec) {
  (void)s;
  brook_err_t err =
      brook_timer_set(ctx, BROOK_EVENT_TIME, rec->timestamp + 5, rec->key, rec->key_len, 0);
  if (err >= 0)
    err = brook_timer_set(ctx, BROOK_EVENT_TIME, 1000000000, rec->key, rec->key_len,
                          (uint64_t)(rec->timestamp / 10) % 5);
  return err;
}

static void test_runtime_end_fires_all_before_end_of_input(void **state) {
  (void)state;
  static const size_t batch_sizes[] = {1, 64, 1024};
  for (size_t b = 0; b < 3; b++) {
    tops_t *s = tops_new();
    s->on_record = arm_per_record;
    s->emit_on_timer = 1;
    g_topo = collect_topology(BROOK_ON_ERROR_FAIL);
    gen_t g = {.n = 2000};
    brook_stream_t *src = brook_source_generator(g_topo, "gen", gen_fn, &g, NULL);
    brook_stream_t *t = brook_stream_set_name(brook_apply(src, &timer_op, s), "T");
    collect_t c;
    collect_init(&c);
    assert_int_equal(collect_sink(t, &c), BROOK_OK);
    collect_run_t r;
    brook_err_t err = collect_run_batch(g_topo, batch_sizes[b], &r);
    if (err != BROOK_OK)
      fail_msg("run: %s", r.message);
    /* 2000 near timers, and 37 keys x 5 tags far ones. */
    size_t near = 0, far = 0;
    brook_time_t last = BROOK_TIME_MIN;
    for (size_t i = 0; i < s->n_ev; i++) {
      const event_t *e = &s->ev[i];
      if (e->kind != 't')
        continue;
      assert_true(e->time >= last); /* in time order across batches */
      assert_true(e->wm >= e->time);
      last = e->time;
      if (e->time == 1000000000)
        far++;
      else
        near++;
    }
    assert_int_equal(near, 2000);
    assert_int_equal(far, 37 * 5);
    /* end_of_input once, after every timer; the last watermark is the maximum. */
    assert_int_equal(count_kind(s, 'e'), 1);
    assert_int_equal(s->ev[s->n_ev - 1].kind, 'e');
    brook_time_t last_wm = BROOK_TIME_MIN;
    for (size_t i = 0; i < s->n_ev; i++)
      if (s->ev[i].kind == 'w') {
        assert_true(s->ev[i].time > last_wm);
        last_wm = s->ev[i].time;
      }
    assert_int_equal(last_wm, BROOK_TIME_MAX);
    assert_int_equal(r.stats.timers_fired, 2000 + 37 * 5);
    /* What on_timer emitted reached the sink, before the run ended. */
    assert_int_equal(c.n, 2000 + 2000 + 37 * 5);
    collect_free(&c);
  }
}

/* A push source that is never ended: a processing-time timer fires through the runtime's
 * clock, and its callback stops the runtime. */
typedef struct ptimer {
  brook_time_t armed_at, fired_at;
  int fired;
  brook_err_t set_err;
} ptimer_t;

static brook_err_t arm_processing_timer(brook_ctx_t *ctx, tops_t *s, const brook_record_t *rec) {
  (void)rec;
  ptimer_t *p = s->user;
  if (p->armed_at)
    return BROOK_OK;
  p->armed_at = brook_ctx_now(ctx);
  p->set_err = brook_timer_set(ctx, BROOK_PROCESSING_TIME, p->armed_at + 30, "p", 1, 0);
  if (p->set_err >= 0)
    p->set_err = brook_timer_set(ctx, BROOK_EVENT_TIME, 1000000, "e", 1, 0);
  return p->set_err;
}

static brook_err_t stop_on_fire(brook_ctx_t *ctx, tops_t *s, const brook_timer_t *t) {
  ptimer_t *p = s->user;
  if (t->domain == BROOK_PROCESSING_TIME) {
    p->fired++;
    p->fired_at = brook_ctx_now(ctx);
    brook_runtime_stop(s->rt);
  }
  return BROOK_OK;
}

static int runtime_done(void *arg) { return brook_runtime_done(arg); }

static void test_runtime_processing_timer_stops_runtime(void **state) {
  (void)state;
  tops_t *s = tops_new();
  ptimer_t p = {0};
  s->user = &p;
  s->on_record = arm_processing_timer;
  s->on_fire = stop_on_fire;
  g_topo = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *t =
      brook_stream_set_name(brook_apply(brook_source_push(g_topo, "P", NULL), &timer_op, s), "T");
  collect_t c;
  collect_init(&c);
  assert_int_equal(collect_sink(t, &c), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, g_topo, NULL), BROOK_OK);
  s->rt = rt;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  brook_push_source_t *src = brook_runtime_push_source(rt, "P");
  assert_non_null(src);
  brook_record_t rec = {.value = "x", .value_len = 1, .timestamp = 100};
  assert_int_equal(brook_push(src, &rec), BROOK_OK);
  /* No brook_push_end: only the timer can end this run. */
  int done = wait_loop_until(&loop, runtime_done, rt, 10000);
  brook_err_t status = brook_runtime_status(rt);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  if (!done) { /* clean up before failing: stop, and let the loop close everything */
    brook_runtime_stop(rt);
    wait_loop_until(&loop, runtime_done, rt, 10000);
  }
  brook_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_true(done);
  assert_int_equal(status, BROOK_OK);
  assert_int_equal(p.set_err, BROOK_OK);
  assert_int_equal(p.fired, 1);
  assert_true(p.fired_at >= p.armed_at + 30);
  assert_int_equal(st.timers_fired, 1);
  /* A stop is not a natural end: no end_of_input, the event-time timer never fired. */
  assert_int_equal(count_kind(s, 'e'), 0);
  for (size_t i = 0; i < s->n_ev; i++)
    if (s->ev[i].kind == 't')
      assert_int_equal(s->ev[i].dom, BROOK_PROCESSING_TIME);
  assert_int_equal(c.n, 1);
  collect_free(&c);
}

/* ---- timers are state: the timer store holds exactly the pending timers ---- */

typedef struct mirror {
  int write_through; /* bk_timers_keep_synced in open */
  uint64_t rng;
  size_t checks;
} mirror_t;

/* The store's entries are the pending timers: same number, each one pending (deleting it
 * succeeds; it is set back), none malformed. In lazy mode the store is synced first. */
static void check_mirror(brook_ctx_t *ctx, mirror_t *m) {
  if (!m->write_through)
    assert_int_equal(bk_timers_sync(ctx), BROOK_OK);
  brook_store_t *st = bk_timers_store(ctx);
  size_t pending =
      brook_timer_count(ctx, BROOK_EVENT_TIME) + brook_timer_count(ctx, BROOK_PROCESSING_TIME);
  assert_int_equal(st ? brook_store_count(st) : 0, pending);
  if (!st)
    return;
  brook_timer_t *all = calloc(pending + 1, sizeof(*all));
  unsigned char **keys = calloc(pending + 1, sizeof(*keys));
  assert_true(all && keys);
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(st, &it), BROOK_OK);
  brook_store_entry_t e;
  size_t n = 0;
  while (brook_store_iter_next(it, &e)) {
    assert_true(n < pending);
    assert_int_equal(bk_timer_key_decode(e.key, e.key_len, &all[n]), 1);
    keys[n] = malloc(all[n].key_len + 1);
    memcpy(keys[n], all[n].key ? all[n].key : "", all[n].key_len);
    all[n].key = keys[n];
    n++;
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_int_equal(n, pending);
  for (size_t i = 0; i < n; i++) {
    brook_timer_t *t = &all[i];
    assert_int_equal(brook_timer_delete(ctx, t->domain, t->time, t->key, t->key_len, t->tag),
                     BROOK_OK);
    assert_int_equal(brook_timer_set(ctx, t->domain, t->time, t->key, t->key_len, t->tag),
                     BROOK_OK);
    free(keys[i]);
  }
  free(all);
  free(keys);
  m->checks++;
}

static brook_err_t mirror_open(brook_ctx_t *ctx, void *opaque, void **state) {
  mirror_t *m = opaque;
  *state = m;
  return m->write_through ? bk_timers_keep_synced(ctx) : BROOK_OK;
}

static const char *const MIRROR_KEYS[] = {"", "k", "a-key-longer-than-twenty-four-bytes"};

/* Each record sets, re-sets (a no-op) or deletes random timers of both domains. */
static brook_err_t mirror_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  mirror_t *m = state;
  for (int i = 0; i < 6; i++) {
    m->rng = m->rng * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t r = m->rng >> 33;
    brook_time_domain_t dom = (brook_time_domain_t)(r & 1);
    brook_time_t t = rec->timestamp + (brook_time_t)((r >> 1) % 20) - 5;
    const char *k = MIRROR_KEYS[(r >> 8) % 3];
    uint64_t tag = (r >> 12) % 3;
    brook_err_t err = (r >> 16) % 4 == 0 ? brook_timer_delete(ctx, dom, t, k, strlen(k), tag)
                                         : brook_timer_set(ctx, dom, t, k, strlen(k), tag);
    assert_true(err == BROOK_OK || err == BROOK_ERR_NOT_FOUND);
  }
  check_mirror(ctx, m);
  return BROOK_OK;
}

static brook_err_t mirror_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  (void)t;
  check_mirror(ctx, state); /* the fired timer is no longer in the store */
  return BROOK_OK;
}

static void run_mirror(int write_through) {
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "mirror",
                                      .open = mirror_open,
                                      .process = mirror_process,
                                      .on_timer = mirror_on_timer};
  mirror_t m = {write_through, 42, 0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = brook_source_push(t, "in", NULL), *out = NULL;
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "mirror";
  assert_int_equal(brook_operator_add(&in, 1, &op, &m, &oo, &out), BROOK_OK);
  named_sink(out, "out");
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  for (int i = 0; i < 200; i++) {
    brook_record_t r = {0};
    r.timestamp = i * 3;
    assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
    if (i % 7 == 0)
      assert_int_equal(brook_driver_advance_time(d, 4), BROOK_OK);
  }
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_advance_time(d, BROOK_TIME_MAX), BROOK_OK);
  brook_driver_free(d);
  brook_topology_free(t);
  assert_true(m.checks > 200); /* after every record and every fired timer */
}

static void test_timer_store_mirrors_queue_lazily(void **state) {
  (void)state;
  run_mirror(0);
}

static void test_timer_store_written_through(void **state) {
  (void)state;
  run_mirror(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_fire_order, teardown),
      cmocka_unit_test_teardown(test_dedupe_and_domains, teardown),
      cmocka_unit_test_teardown(test_delete_and_count, teardown),
      cmocka_unit_test_teardown(test_due_timers_fire_at_end_of_push, teardown),
      cmocka_unit_test_teardown(test_timers_set_in_on_timer, teardown),
      cmocka_unit_test_teardown(test_long_and_empty_keys, teardown),
      cmocka_unit_test_teardown(test_null_key_zero_length, teardown),
      cmocka_unit_test_teardown(test_processing_time, teardown),
      cmocka_unit_test_teardown(test_processing_time_order, teardown),
      cmocka_unit_test_teardown(test_timer_set_without_on_timer, teardown),
      cmocka_unit_test_teardown(test_on_timer_error, teardown),
      cmocka_unit_test_teardown(test_on_watermark_error, teardown),
      cmocka_unit_test_teardown(test_handled_timer_error_does_not_explain_later_failure, teardown),
      cmocka_unit_test_teardown(test_timer_set_in_on_watermark, teardown),
      cmocka_unit_test_teardown(test_event_timer_set_in_processing_timer, teardown),
      cmocka_unit_test_teardown(test_on_timer_emits_a_lot, teardown),
      cmocka_unit_test_teardown(test_driver_end_fires_before_end_of_input, teardown),
      cmocka_unit_test_teardown(test_randomized_against_reference, teardown),
      cmocka_unit_test_teardown(test_runtime_end_fires_all_before_end_of_input, teardown),
      cmocka_unit_test_teardown(test_runtime_processing_timer_stops_runtime, teardown),
      cmocka_unit_test(test_timer_store_mirrors_queue_lazily),
      cmocka_unit_test(test_timer_store_written_through),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
