/* Gathers: nodes the plan places once (a stateful node fed from every worker without a key
 * change, a line sink) run on worker 0, and every worker's records reach them through an
 * exchange with one target. With 1, 2 and 4 workers: a once count sees every record, a once
 * window's watermark is the minimum over the workers (nothing is late), a line sink writes
 * every record exactly once (in order per split), and stop, failure and end of input work. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "run_deadline.h"
#include "wait.h"
#include "worker_seen.h"

#define G_KEYS 16 /* keys k00..k15 of worker_seen.h's key_names */
#define SPLITS 4

static brook_topology_t *new_topology(brook_error_policy_t policy) {
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.error_policy = policy;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, &to), BROOK_OK);
  return t;
}

static brook_runtime_t *new_runtime(brook_topology_t *t, size_t workers) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  ro.batch_size = 256; /* many batches, many chunks */
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK)
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  return rt;
}

/* ---- the generator: split s's i-th record is "s<s>-<i>", key k<(s * 5 + i) % G_KEYS>, event
 * time i * (SPLITS - s): split 0 runs fastest in event time, so a once window that took only
 * worker 0's watermark would find the other splits' records late. ---- */

typedef struct gen {
  uint64_t next[SPLITS];
} gen_t;

static brook_err_t gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  uint64_t i = g->next[s]++;
  char *v = brook_ctx_alloc(ctx, 32);
  if (!v)
    return BROOK_ERR_NOMEM;
  out->value = v;
  out->value_len = (size_t)snprintf(v, 32, "s%zu-%llu", s, (unsigned long long)i);
  out->key = key_names[(s * 5 + i) % G_KEYS];
  out->key_len = strlen(out->key);
  out->timestamp = (brook_time_t)(i * (SPLITS - s));
  return BROOK_OK;
}

static brook_stream_t *gen_source(brook_topology_t *t, gen_t *g, uint64_t limit) {
  memset(g, 0, sizeof(*g));
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = SPLITS;
  go.limit = limit;
  return brook_source_generator(t, "gen", gen_fn, g, &go);
}

static brook_err_t key_is_key(const brook_record_t *rec, const void **key, size_t *key_len,
                              brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value; /* re-key by the whole value: records spread over every task */
  *key_len = rec->value_len;
  return BROOK_OK;
}

/* ---- line files ---- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* Checks that `path` holds lines "s<s>-<i>", each split's i counting 0, 1, 2, ... in file
 * order (every record exactly once, in order per split), and returns how many there are.
 * With `expect` (non-NULL) each split must have exactly expect[s] lines. */
static uint64_t check_lines(const char *path, const uint64_t *expect) {
  size_t len;
  char *buf = read_file(path, &len);
  uint64_t next[SPLITS] = {0}, total = 0;
  char *line = buf;
  while (line < buf + len) {
    char *nl = memchr(line, '\n', (size_t)(buf + len - line));
    if (!nl)
      fail_msg("%s: last line not terminated: '%s'", path, line);
    *nl = '\0';
    unsigned s;
    unsigned long long i;
    if (sscanf(line, "s%u-%llu", &s, &i) != 2 || s >= SPLITS)
      fail_msg("%s: bad line '%s'", path, line);
    if (i != next[s])
      fail_msg("%s: split %u: line %llu where %llu was due (lost, repeated or reordered)", path, s,
               i, (unsigned long long)next[s]);
    next[s]++;
    total++;
    line = nl + 1;
  }
  for (size_t s = 0; expect && s < SPLITS; s++)
    if (next[s] != expect[s])
      fail_msg("%s: split %zu has %llu lines, want %llu", path, s, (unsigned long long)next[s],
               (unsigned long long)expect[s]);
  free(buf);
  return total;
}

static void temp_path(char *path, size_t size, const char *what) {
  snprintf(path, size, "/tmp/brook_gather_%s_%d", what, (int)getpid());
}

/* ---- a line sink with N workers ---- */

/* generator -> line sink A; generator -> key_by -> line sink B (a gather out of an
 * exchange's target): both files hold every record exactly once, in order per split. */
static void run_line_sinks(size_t workers, uint64_t limit) {
  static gen_t g;
  char a[96], b[96];
  temp_path(a, sizeof(a), "a");
  temp_path(b, sizeof(b), "b");
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = gen_source(t, &g, limit);
  assert_int_equal(brook_sink_lines(s, a, NULL), BROOK_OK);
  assert_int_equal(brook_sink_lines(brook_key_by(s, key_is_key, NULL), b, NULL), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, workers);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_in, limit);
  assert_int_equal(st.records_out, 2 * limit);
  uint64_t expect[SPLITS];
  for (size_t k = 0; k < SPLITS; k++)
    expect[k] = limit / SPLITS + (k < limit % SPLITS);
  assert_int_equal(check_lines(a, expect), limit);
  /* After key_by a split's records take several paths (tasks on other workers), so only the
   * per-split order within one sending worker holds: the gather keeps it, but records of one
   * split reach worker 0 from different workers. Check the set. */
  size_t len;
  char *buf = read_file(b, &len);
  uint64_t lines = 0;
  unsigned char *seen = calloc(SPLITS * (limit / SPLITS + 1), 1);
  assert_non_null(seen);
  for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
    nl = strchr(line, '\n');
    assert_non_null(nl);
    unsigned sp;
    unsigned long long i;
    assert_int_equal(sscanf(line, "s%u-%llu", &sp, &i), 2);
    assert_true(sp < SPLITS && i < expect[sp]);
    size_t at = sp * (limit / SPLITS + 1) + i;
    if (seen[at])
      fail_msg("%s: '%.*s' written twice", b, (int)(nl - line), line);
    seen[at] = 1;
    lines++;
  }
  assert_int_equal(lines, limit);
  free(seen);
  free(buf);
  brook_runtime_free(rt);
  brook_topology_free(t);
  unlink(a);
  unlink(b);
}

static void test_line_sink_every_record_once_1_2_4_workers(void **state) {
  (void)state;
  for (size_t w = 1; w <= 4; w *= 2)
    run_line_sinks(w, 40003);
}

/* ---- a count and a window placed once ---- */

static brook_err_t window_sink(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  brook_window_value_t wv;
  const void *result;
  if (brook_window_parse(rec, &wv, &result) != BROOK_OK || wv.result_len != sizeof(int64_t))
    return BROOK_ERR_USER;
  int64_t v;
  memcpy(&v, result, sizeof(v));
  pthread_mutex_lock(&s->mu);
  s->windowed += v;
  seen_thread(s);
  pthread_mutex_unlock(&s->mu);
  return BROOK_OK;
}

/* Fails every 7th record of each split (ROUTE: it goes to the error stream instead). */
static brook_err_t fail_some(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  unsigned s;
  unsigned long long i;
  if (sscanf(rec->value, "s%u-%llu", &s, &i) == 2 && i % 7 == 0) {
    brook_ctx_set_error(ctx, "every 7th");
    return BROOK_ERR_USER;
  }
  return BROOK_OK;
}

/* generator -> map (fails some) ; merge(map, error stream) -> count (once) and -> tumbling
 * window (once). Every record reaches both exactly once: as itself or as a failed record. */
static void run_once_nodes(size_t workers, uint64_t limit, seen_t *seen) {
  static gen_t g;
  seen_init(seen);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_ROUTE);
  brook_stream_t *src = gen_source(t, &g, limit);
  /* A worker's splits start one batch after another (a split's watermark counts from its first
   * record): 2 s of allowed disorder covers that, far less than the splits' skew (split 0 is
   * 45 s of event time ahead of split 3 at the end). */
  brook_watermark_opts_t wmo;
  brook_watermark_opts_init(&wmo);
  wmo.max_delay = 2000;
  assert_int_equal(brook_source_set_watermark(src, &wmo), BROOK_OK);
  brook_stream_t *good = brook_map(src, fail_some, NULL);
  brook_stream_t *ins[2] = {good, brook_error_stream(t)};
  brook_stream_t *all = brook_merge(ins, 2);
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "per_key";
  assert_int_equal(brook_sink_callback(brook_count(all, &ao), count_sink, NULL, seen), BROOK_OK);
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "per_key_100ms";
  brook_aggregator_t cnt = brook_agg_count();
  brook_window_t win = brook_window_tumbling(100);
  brook_stream_t *w = brook_window_aggregate(all, &win, &cnt, &wo);
  assert_int_equal(brook_sink_callback(w, window_sink, NULL, seen), BROOK_OK);
  char plan[2048];
  assert_int_equal(brook_topology_describe(t, plan, sizeof(plan), NULL), BROOK_OK);
  assert_non_null(strstr(plan, "operator 'per_key' [count] once"));
  assert_non_null(strstr(plan, "exchange into 'per_key_100ms' from 'merge#"));
  brook_runtime_t *rt = new_runtime(t, workers);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_in, limit);
  assert_true(st.records_routed > limit / 8);
  assert_int_equal(st.records_late, 0); /* the window's watermark is the minimum of all */
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_once_count_and_window_see_every_record(void **state) {
  (void)state;
  const uint64_t limit = 60001;
  static seen_t one, many;
  run_once_nodes(1, limit, &one);
  int64_t total = 0;
  for (int k = 0; k < G_KEYS; k++)
    total += one.count[k];
  assert_int_equal(total, limit);
  assert_int_equal(one.windowed, limit);
  for (size_t w = 2; w <= 4; w *= 2) {
    run_once_nodes(w, limit, &many);
    for (int k = 0; k < G_KEYS; k++)
      if (many.count[k] != one.count[k])
        fail_msg("%zu workers: key %s counted %lld, one worker %lld", w, key_names[k],
                 (long long)many.count[k], (long long)one.count[k]);
    assert_int_equal(many.windowed, limit);
    if (many.n_threads != 1) /* the once nodes' output is on worker 0 only */
      fail_msg("%zu workers: once nodes' results on %zu threads", w, many.n_threads);
  }
}

/* ---- stop, failure ---- */

typedef struct stopper {
  brook_runtime_t *rt;
  const char *path;
  int stopped;
} stopper_t;

/* The file has grown (stats may only be read on the loop thread: watch the output). */
static int has_output(void *arg) {
  struct stat st;
  return stat(arg, &st) == 0 && st.st_size > 256 * 1024;
}

static void *stop_when_busy(void *arg) {
  stopper_t *s = arg;
  s->stopped = wait_until(has_output, (void *)s->path, 30000);
  brook_runtime_stop(s->rt); /* any thread */
  return NULL;
}

/* An unlimited generator into a line sink on 4 workers, stopped from another thread: the
 * run drains (every record a source produced is written, exactly once, in order per split). */
static void test_stop_drains_line_sink_4_workers(void **state) {
  (void)state;
  static gen_t g;
  char a[96];
  temp_path(a, sizeof(a), "stop");
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  assert_int_equal(brook_sink_lines(gen_source(t, &g, 0), a, NULL), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, 4);
  stopper_t s = {rt, a, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, stop_when_busy, &s), 0);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  pthread_join(th, NULL);
  assert_true(s.stopped);
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_out, st.records_in);
  assert_int_equal(check_lines(a, NULL), st.records_in);
  brook_runtime_free(rt);
  brook_topology_free(t);
  unlink(a);
}

/* Fails its 500th record of split 3 (worker 3 of 4), upstream of the gather. */
static _Atomic long split3_seen;

static brook_err_t fail_on_split3(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  if (rec->value_len > 2 && memcmp(rec->value, "s3", 2) == 0 &&
      atomic_fetch_add(&split3_seen, 1) == 499) {
    brook_ctx_set_error(ctx, "split 3 is broken");
    return BROOK_ERR_USER;
  }
  return BROOK_OK;
}

/* A failure on worker 3 before the gather stops every worker; a failure of the once sink
 * itself (writing to /dev/full, on worker 0) too. No hang, nothing leaked. */
static void test_failures_with_gathers(void **state) {
  (void)state;
  static gen_t g;
  static seen_t seen;
  seen_init(&seen);
  atomic_store(&split3_seen, 0);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = brook_map(gen_source(t, &g, 0), fail_on_split3, NULL);
  brook_stream_t *ins[2] = {s, brook_error_stream(t)};
  brook_stream_t *c = brook_count(brook_merge(ins, 2), NULL);
  assert_int_equal(brook_sink_callback(c, count_sink, NULL, &seen), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, 4);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_ERR_USER);
  assert_non_null(strstr(brook_runtime_last_error(rt), "split 3 is broken"));
  brook_runtime_free(rt);
  brook_topology_free(t);

  if (access("/dev/full", W_OK) != 0)
    return;
  t = new_topology(BROOK_ON_ERROR_FAIL);
  brook_line_sink_opts_t lo;
  brook_line_sink_opts_init(&lo);
  lo.append = 1;
  lo.buffer_size = 64;
  assert_int_equal(brook_sink_lines(gen_source(t, &g, 100000), "/dev/full", &lo), BROOK_OK);
  rt = new_runtime(t, 2);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_ERR_IO);
  assert_non_null(strstr(brook_runtime_last_error(rt), "/dev/full"));
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* ---- records of every shape cross intact ---- */

/* Record j (global number, split s makes s, s + SPLITS, ...): key of length j % 41 (0: NULL),
 * value of length (j * 7) % 37 (0: NULL), every 3rd with two headers. Bytes are derived from
 * j, so the receiver checks them. */
static const size_t shape_lens[] = {0, 1, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 24, 40};
#define N_SHAPES (sizeof(shape_lens) / sizeof(shape_lens[0]))

static void shape_fill(unsigned char *p, size_t n, uint64_t j, unsigned salt) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(j * 31 + i * 7 + salt);
}

static brook_err_t shape_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  uint64_t j = g->next[s]++ * SPLITS + s;
  size_t kl = shape_lens[j % N_SHAPES], vl = shape_lens[(j / N_SHAPES) % N_SHAPES];
  unsigned char *buf = brook_ctx_alloc(ctx, 8 + kl + vl + 8);
  if (!buf)
    return BROOK_ERR_NOMEM;
  memcpy(buf, &j, 8); /* the value starts with j when it has room */
  unsigned char *k = buf + 8, *v = k + kl;
  shape_fill(k, kl, j, 1);
  shape_fill(v, vl, j, 2);
  if (vl >= 8)
    memcpy(v, &j, 8);
  out->key = kl ? k : NULL;
  out->key_len = kl;
  out->value = vl ? v : NULL;
  out->value_len = vl;
  out->timestamp = (brook_time_t)j;
  if (j % 3 == 0) {
    brook_header_t *h = brook_ctx_alloc(ctx, 2 * sizeof(*h));
    if (!h)
      return BROOK_ERR_NOMEM;
    h[0] = (brook_header_t){"j", buf, 8};
    h[1] = (brook_header_t){"empty", NULL, 0};
    out->headers = h;
    out->header_count = 2;
  }
  return BROOK_OK;
}

static _Atomic uint64_t shapes_checked;

static brook_err_t shape_check(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  uint64_t j = (uint64_t)rec->timestamp;
  size_t kl = shape_lens[j % N_SHAPES], vl = shape_lens[(j / N_SHAPES) % N_SHAPES];
  unsigned char want[64];
  if (rec->key_len != kl || (kl == 0) != (rec->key == NULL) || rec->value_len != vl ||
      (vl == 0) != (rec->value == NULL))
    return BROOK_ERR_USER;
  shape_fill(want, kl, j, 1);
  if (kl && memcmp(rec->key, want, kl) != 0)
    return BROOK_ERR_USER;
  shape_fill(want, vl, j, 2);
  if (vl >= 8)
    memcpy(want, &j, 8);
  if (vl && memcmp(rec->value, want, vl) != 0)
    return BROOK_ERR_USER;
  if (j % 3 == 0) {
    const brook_header_t *h = brook_record_header(rec, "j");
    const brook_header_t *e = brook_record_header(rec, "empty");
    if (rec->header_count != 2 || !h || h->value_len != 8 || memcmp(h->value, &j, 8) != 0 || !e ||
        e->value || e->value_len)
      return BROOK_ERR_USER;
  } else if (rec->header_count || rec->headers) {
    return BROOK_ERR_USER;
  }
  atomic_fetch_add(&shapes_checked, 1);
  return BROOK_OK;
}

static brook_err_t same_key(const brook_record_t *rec, const void **key, size_t *key_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->key;
  *key_len = rec->key_len;
  return BROOK_OK;
}

/* Keys and values of every length from 0 (NULL) to 40 bytes, with and without headers, through
 * a by-key exchange and a gather (into a once count's input) on 2 and 4 workers: every record
 * arrives with its bytes intact. */
static void test_records_of_every_shape_cross_intact(void **state) {
  (void)state;
  const uint64_t limit = 30000;
  for (size_t w = 2; w <= 4; w *= 2) {
    static gen_t g;
    memset(&g, 0, sizeof(g));
    atomic_store(&shapes_checked, 0);
    brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
    brook_generator_opts_t go;
    brook_generator_opts_init(&go);
    go.splits = SPLITS;
    go.limit = limit;
    brook_stream_t *s = brook_source_generator(t, "shapes", shape_gen, &g, &go);
    brook_stream_t *k = brook_key_by(s, same_key, NULL);
    assert_int_equal(brook_sink_callback(k, shape_check, NULL, NULL), BROOK_OK);
    char path[96];
    temp_path(path, sizeof(path), "shapes");
    assert_int_equal(brook_sink_lines(s, path, NULL), BROOK_OK); /* a gather of raw bytes */
    brook_runtime_t *rt = new_runtime(t, w);
    assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
    assert_int_equal(atomic_load(&shapes_checked), limit);
    size_t len;
    free(read_file(path, &len));
    size_t want = 0;
    for (uint64_t j = 0; j < limit; j++)
      want += shape_lens[(j / N_SHAPES) % N_SHAPES] + 1;
    assert_int_equal(len, want);
    brook_runtime_free(rt);
    brook_topology_free(t);
    unlink(path);
  }
}

int main(void) {
  worker_keys_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_sink_every_record_once_1_2_4_workers),
      cmocka_unit_test(test_once_count_and_window_see_every_record),
      cmocka_unit_test(test_stop_drains_line_sink_4_workers),
      cmocka_unit_test(test_failures_with_gathers),
      cmocka_unit_test(test_records_of_every_shape_cross_intact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
