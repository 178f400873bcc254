/* Stores opened by an operator (brook_store_open) with a chosen backend, in a running
 * pipeline: an ordered store read by key || time ranges, an in-place counter store whose
 * changes the runtime reports at every commit, and the messages a user gets when a
 * backend is unusable or fails to open (the operator's error names the store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"
#include "support/sorted_store.h"

static const char *const letters[] = {"a", "b", "a", "a", "b", "a"}; /* times 1000.. */
#define N_LETTERS (sizeof(letters) / sizeof(letters[0]))
#define SPAN 2 /* entries of the same key within [t - SPAN, t] are "recent" */

typedef struct recent_cfg {
  const brook_store_backend_t *backend; /* NULL: the ordered store */
  void *backend_opaque;
  long reports; /* changes the counter store reported */
} recent_cfg_t;

typedef struct recent {
  brook_store_t *events; /* key || time -> nothing, ordered */
  brook_store_t *counts; /* key -> uint64_t, updated in place */
} recent_t;

static brook_err_t count_report(const void *k, size_t kl, const void *v, size_t vl, void *op) {
  (void)k, (void)kl, (void)v;
  assert_int_equal(vl, 8);
  ++((recent_cfg_t *)op)->reports;
  return BROOK_OK;
}

static brook_err_t recent_open(brook_ctx_t *ctx, void *opaque, void **state) {
  recent_cfg_t *cfg = opaque;
  static recent_t r;
  memset(&r, 0, sizeof(r));
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.ordered = 1;
  o.backend = cfg->backend;
  o.backend_opaque = cfg->backend_opaque;
  brook_err_t err = brook_store_open(ctx, "events", &o, &r.events);
  if (err)
    return err;
  brook_store_opts_init(&o);
  o.ordered = 1;
  o.value_size = 8;
  if ((err = brook_store_open(ctx, "counts", &o, &r.counts)))
    return err;
  brook_store_set_listener(r.counts, count_report, cfg);
  *state = &r;
  return BROOK_OK;
}

static brook_err_t recent_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  recent_t *r = state;
  unsigned char k[1 + BROOK_STORE_TIME_LEN];
  k[0] = *(const unsigned char *)rec->value;
  brook_store_time_encode(rec->timestamp, k + 1);
  brook_err_t err = brook_store_put(r->events, k, sizeof(k), NULL, 0);
  if (err)
    return err;
  /* Forget this key's entries older than the span, deleting as the scan goes. */
  brook_store_iter_t *it;
  brook_store_entry_t e;
  if ((err = brook_store_iter_time(r->events, k, 1, INT64_MIN, rec->timestamp - SPAN, &it)))
    return err;
  while (brook_store_iter_next(it, &e))
    if ((err = brook_store_delete(r->events, e.key, e.key_len)))
      break;
  brook_err_t cerr = brook_store_iter_close(it);
  if (err || (err = cerr))
    return err;
  size_t n = 0;
  if ((err =
           brook_store_iter_time(r->events, k, 1, rec->timestamp - SPAN, rec->timestamp + 1, &it)))
    return err;
  while (brook_store_iter_next(it, &e)) {
    int64_t t = brook_store_entry_time_suffix(&e);
    assert_true(t >= rec->timestamp - SPAN && t <= rec->timestamp);
    n++;
  }
  if ((err = brook_store_iter_close(it)))
    return err;
  uint64_t *c;
  if ((err = brook_store_update(r->counts, k, 1, (void **)&c, NULL)))
    return err;
  ++*c;
  char text[32];
  snprintf(text, sizeof(text), "%c:%zu", k[0], n);
  brook_record_t out = *rec;
  char *v = brook_ctx_alloc(ctx, strlen(text));
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, text, strlen(text));
  out.value = v;
  out.value_len = strlen(text);
  return brook_emit(ctx, &out);
}

static brook_err_t recent_end(brook_ctx_t *ctx, void *state) {
  recent_t *r = state;
  char text[32];
  uint64_t a = 0, b = 0;
  size_t n;
  if (brook_store_get_copy(r->counts, "a", 1, &a, sizeof(a), &n) ||
      brook_store_get_copy(r->counts, "b", 1, &b, sizeof(b), &n))
    return BROOK_ERR_STATE;
  int len = snprintf(text, sizeof(text), "left=%zu a=%llu b=%llu", brook_store_count(r->events),
                     (unsigned long long)a, (unsigned long long)b);
  char *v = brook_ctx_alloc(ctx, (size_t)len);
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, text, (size_t)len);
  brook_record_t out = {.value = v, .value_len = (size_t)len, .timestamp = 0};
  return brook_emit(ctx, &out);
}

static const brook_operator_t recent_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "recent",
    .open = recent_open,
    .process = recent_process,
    .end_of_input = recent_end,
};

static brook_err_t run(recent_cfg_t *cfg, collect_t *out, collect_run_t *r) {
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_t g;
  collect_gen_init(&g, letters, N_LETTERS);
  collect_init(out);
  brook_stream_t *s = brook_stream_set_name(
      brook_apply(collect_gen_source(t, "src", &g), &recent_op, cfg), "recent");
  assert_int_equal(collect_sink(s, out), BROOK_OK);
  brook_err_t err = collect_run_batch(t, 1, r);
  brook_topology_free(t);
  return err;
}

static void test_ordered_store_in_a_pipeline(void **state) {
  (void)state;
  sorted_store_opts_t so = {0};
  recent_cfg_t cfgs[] = {{NULL, NULL, 0}, {sorted_store_backend(), &so, 0}};
  for (size_t i = 0; i < 2; i++) {
    collect_t out;
    collect_run_t r;
    assert_int_equal(run(&cfgs[i], &out, &r), BROOK_OK);
    const char *want[] = {"a:1", "b:1", "a:2", "a:2", "b:1", "a:2", "left=3 a=4 b=2"};
    collect_assert_values(&out, want, sizeof(want) / sizeof(want[0]));
    /* In-place changes are reported at commits (runtime.h, commit_interval_ms), once per key
     * changed since the last: both keys (a, b) at least once, at most once per commit. */
    assert_true(r.stats.commits >= 1);
    assert_true(cfgs[i].reports >= 2);
    assert_true((uint64_t)cfgs[i].reports <= 2 * r.stats.commits);
    assert_true(r.stats.state_bytes > 0);
    collect_free(&out);
  }
}

static void test_backend_refused_or_failing(void **state) {
  (void)state;
  /* A table of an unknown version: refused, the message names the store and says why. */
  brook_store_backend_t bad = *brook_store_backend_ordered();
  bad.version = 0;
  recent_cfg_t cfg = {&bad, NULL, 0};
  collect_t out;
  collect_run_t r;
  assert_int_equal(run(&cfg, &out, &r), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(r.message, "brook_store_open('events')"));
  assert_non_null(strstr(r.message, "version 0"));
  collect_free(&out);
  /* A backend whose open fails: its error and message. */
  sorted_store_opts_t so = {.fail_open = 1};
  cfg = (recent_cfg_t){sorted_store_backend(), &so, 0};
  assert_int_equal(run(&cfg, &out, &r), BROOK_ERR_IO);
  assert_non_null(strstr(r.message, "store 'events'"));
  assert_non_null(strstr(r.message, "injected open error"));
  collect_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ordered_store_in_a_pipeline),
      cmocka_unit_test(test_backend_refused_or_failing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
