/* Windows with state on disk (state/window_disk.h): a pipeline stopped after a commit and
 * restarted on the same state directory finds its open windows again and closes them at the
 * same watermark with the same results, in the same order, as an uninterrupted run in memory
 * (changes after the last commit are lost, as a crash loses them, and the input is replayed
 * from the commit, as a source resumes from its committed position); the entries of a window
 * are found by its start and gone once it closed; and the operator's memory does not grow
 * with the keys. Tumbling and hopping windows (the operators' own layout: a hopping window is
 * combined from slices of gcd(size, advance)) and session windows (an ordered store of the
 * task database). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "runtime/runtime_impl.h"
#include "state/window_disk.h"
#include "support/driver_helpers.h"
#include "support/window_pipeline.h"
#include "tempfiles.h"

#define DELAY 5 /* the watermark's max_delay; the input's disorder stays within it */
#define N_RECORDS 3000

typedef struct input {
  brook_time_t ts;
  char key[8];
  size_t klen;
} input_t;

/* Event time rises by 0..2 per record with up to DELAY of disorder (nothing is late), over
 * 40 keys. */
static void make_input(input_t *in, size_t n, uint64_t seed) {
  brook_time_t base = -1000; /* negative starts too */
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    base += (brook_time_t)((seed >> 33) % 3);
    in[i].ts = base - (brook_time_t)((seed >> 40) % (DELAY + 1));
    in[i].klen =
        (size_t)snprintf(in[i].key, sizeof(in[i].key), "k%u", (unsigned)((seed >> 20) % 40));
  }
}

/* dir: the state directory (NULL: a temporary one) when on disk. */
static brook_driver_t *pipeline(brook_topology_t **t, brook_window_t win, int disk,
                                const char *dir) {
  assert_int_equal(brook_topology_new(t, NULL), BROOK_OK);
  brook_stream_t *in = bounded_push_source(*t, DELAY);
  brook_window_opts_t opts;
  brook_window_opts_init(&opts);
  opts.name = "win";
  brook_aggregator_t agg = brook_agg_count();
  named_sink(brook_window_aggregate(in, &win, &agg, &opts), "out");
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  o.state_on_disk = disk;
  o.state_dir = dir;
  o.state_cache_bytes = 4096; /* every commit evicts: reads go to RocksDB */
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, *t, &o), BROOK_OK);
  return d;
}

static void push(brook_driver_t *d, const input_t *r) {
  brook_record_t rec = {.key = r->key, .key_len = r->klen, .timestamp = r->ts};
  assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
}

/* The output so far, appended as text (key, window, count per line). */
typedef struct text {
  char *p;
  size_t len, cap;
} text_t;

static void take_output(brook_driver_t *d, text_t *out) {
  for (size_t i = 0, n = brook_driver_output_count(d, "out"); i < n; i++) {
    const brook_record_t *r = brook_driver_output(d, "out", i);
    brook_window_value_t wv;
    const void *res;
    assert_int_equal(brook_window_parse(r, &wv, &res), BROOK_OK);
    int64_t count;
    memcpy(&count, res, sizeof(count));
    char line[96];
    int m = snprintf(line, sizeof(line), "%.*s [%lld,%lld) %lld %u\n", (int)r->key_len,
                     (const char *)r->key, (long long)wv.start, (long long)wv.end, (long long)count,
                     (unsigned)wv.flags);
    if (out->len + (size_t)m + 1 > out->cap) {
      out->cap = (out->len + (size_t)m + 1) * 2;
      out->p = realloc(out->p, out->cap);
      assert_non_null(out->p);
    }
    memcpy(out->p + out->len, line, (size_t)m + 1);
    out->len += (size_t)m;
  }
  brook_driver_clear_output(d, "out");
}

/* Uninterrupted in memory, versus on disk: commit at `cut` (advance_time(0) commits), push
 * `lost` more records (not committed: the stop loses them and their output), stop; restart on
 * the directory and replay from `cut`. */
static int cmp_line(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the text's lines. */
static void sort_lines(text_t *tx) {
  size_t n = 0;
  for (size_t i = 0; i < tx->len; i++)
    n += tx->p[i] == '\n';
  char **lines = calloc(n ? n : 1, sizeof(*lines));
  char *copy = malloc(tx->len + 1);
  assert_true(lines && copy);
  memcpy(copy, tx->p, tx->len + 1);
  size_t k = 0;
  for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
    lines[k++] = l;
  qsort(lines, k, sizeof(*lines), cmp_line);
  size_t at = 0;
  for (size_t i = 0; i < k; i++)
    at += (size_t)sprintf(tx->p + at, "%s\n", lines[i]);
  free(lines);
  free(copy);
}

/* in_order: the output must be byte-identical; else the same lines in any order. */
static void check_restart(brook_window_t win, size_t cut, size_t lost, int in_order) {
  input_t *in = calloc(N_RECORDS, sizeof(*in));
  make_input(in, N_RECORDS, 42 + cut);
  brook_topology_t *t;
  brook_driver_t *d = pipeline(&t, win, 0, NULL);
  text_t want = {0}, got = {0};
  for (size_t i = 0; i < N_RECORDS; i++)
    push(d, &in[i]);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  take_output(d, &want);
  brook_driver_free(d);
  brook_topology_free(t);

  char *dir = temp_dir_new("window_disk");
  d = pipeline(&t, win, 1, dir);
  for (size_t i = 0; i < cut; i++)
    push(d, &in[i]);
  assert_int_equal(brook_driver_advance_time(d, 0), BROOK_OK); /* a commit */
  take_output(d, &got);
  for (size_t i = cut; i < cut + lost; i++)
    push(d, &in[i]);
  brook_driver_clear_output(d, "out"); /* never committed: as if the process died */
  brook_driver_free(d);
  brook_topology_free(t);

  d = pipeline(&t, win, 1, dir);
  for (size_t i = cut; i < N_RECORDS; i++)
    push(d, &in[i]);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  take_output(d, &got);
  brook_driver_free(d);
  brook_topology_free(t);
  temp_dir_free(dir);

  assert_true(want.len > 0);
  if (!in_order) { /* the same lines, in any order */
    sort_lines(&want);
    sort_lines(&got);
  }
  if (got.len != want.len || memcmp(got.p, want.p, want.len) != 0) {
    size_t at = 0;
    while (at < got.len && at < want.len && got.p[at] == want.p[at])
      at++;
    fail_msg("restart at %zu (%zu lost) differs at byte %zu:\nwant ...%.80s\ngot  ...%.80s", cut,
             lost, at, want.p + at, at < got.len ? got.p + at : "(end)");
  }
  free(want.p);
  free(got.p);
  free(in);
}

static void test_tumbling_restart(void **state) {
  (void)state;
  check_restart(brook_window_tumbling(50), 1000, 0, 1);
  check_restart(brook_window_tumbling(50), 1777, 30, 1);
  check_restart(brook_window_tumbling(400), 2222, 63, 1); /* many keys per window on disk */
}

/* Open hopping windows come back: slices on disk, the last window fired (so none fires
 * twice), and the timers; results are byte-identical to an uninterrupted run in memory. */
static void test_hopping_restart(void **state) {
  (void)state;
  check_restart(brook_window_hopping(50, 10), 1000, 0, 1);
  check_restart(brook_window_hopping(50, 10), 1777, 30, 1);
  check_restart(brook_window_hopping(60, 25), 2222, 63, 1);  /* slices of 5 */
  check_restart(brook_window_hopping(400, 100), 1500, 7, 1); /* many keys per slice on disk */
  check_restart(brook_window_hopping(30, 30), 1200, 5, 1);   /* one slice: tumbling-like */
}

static void test_session_restart(void **state) {
  (void)state;
  /* Sessions closing at one watermark leave in the order the restored timers fire (the
   * timer store's, by time then key), not in the order they were set: same results. */
  check_restart(brook_window_session(3), 1500, 10, 0);
  check_restart(brook_window_session(40), 999, 0, 0);
}

static brook_store_t *instance_store(brook_driver_t *d, const char *name) {
  brook_runtime_t *rt = *(brook_runtime_t **)(void *)d; /* driver.c: its first member */
  for (size_t i = 0; i < rt->plan.n; i++) {
    if (strcmp(rt->plan.order[i]->name, "win") != 0)
      continue;
    brook_ctx_t *c = bk_inst_at(rt->w0, i, 0);
    for (size_t k = 0; k < c->n_stores; k++) {
      const char *n = brook_store_name(c->stores[k]);
      size_t nl = strlen(n), l = strlen(name);
      if (nl > l && n[nl - l - 1] == '/' && strcmp(n + nl - l, name) == 0)
        return c->stores[k];
    }
  }
  fail_msg("no store '%s'", name);
  return NULL;
}

/* After a commit every entry of "window" starts with its window's start; a closed window's
 * entries are purged at the next commit. */
static void test_tumbling_layout(void **state) {
  (void)state;
  brook_topology_t *t;
  brook_driver_t *d = pipeline(&t, brook_window_tumbling(100), 1, NULL);
  const char *keys[] = {"b", "a", "c"};
  for (int w = 0; w < 2; w++) {
    for (int i = 0; i < 3; i++) {
      brook_record_t rec = {.key = keys[i], .key_len = 1, .timestamp = (w ? 150 : -50) + i};
      assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
    }
  }
  /* Watermark 146: [-100, 0) closed, [100, 200) open. */
  assert_int_equal(brook_driver_advance_time(d, 0), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 3);
  brook_store_t *acc = instance_store(d, "window"), *order = instance_store(d, "window_order");
  assert_int_equal(brook_store_count(acc), 3);
  unsigned char want[BK_WDISK_START_LEN];
  bk_wdisk_start_key(want, 100);
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(acc, &it), BROOK_OK);
  brook_store_entry_t e;
  size_t n = 0;
  while (brook_store_iter_next(it, &e)) {
    assert_int_equal(e.key_len, BK_WDISK_START_LEN + 1);
    assert_memory_equal(e.key, want, sizeof(want));
    n++;
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_int_equal(n, 3);
  /* The order store: the list and one entry per key, in arrival order b, a, c. */
  assert_int_equal(brook_store_count(order), 4);
  for (uint64_t seq = 0; seq < 3; seq++) {
    unsigned char ok[BK_WDISK_ORDER_LEN];
    bk_wdisk_order_key(ok, 100, seq);
    const void *v;
    size_t vl;
    assert_int_equal(brook_store_get(order, ok, sizeof(ok), &v, &vl), BROOK_OK);
    assert_int_equal(vl, 1);
    assert_memory_equal(v, keys[seq], 1);
  }
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_int_equal(brook_driver_output_count(d, "out"), 6);
  assert_int_equal(brook_store_count(acc), 0);
  assert_int_equal(brook_store_count(order), 0);
  brook_driver_free(d);
  brook_topology_free(t);
}

static uint64_t state_bytes(brook_driver_t *d) {
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
  return st.state_bytes;
}

/* One window with 30,000 keys: in memory the operator's state grows with them, on disk it
 * stays what changed since the last commit. */
static void check_memory_not_per_key(brook_window_t win, size_t results) {
  uint64_t bytes[2];
  for (int disk = 0; disk < 2; disk++) {
    brook_topology_t *t;
    brook_driver_t *d = pipeline(&t, win, disk, NULL);
    for (int i = 0; i < 30000; i++) {
      char key[16];
      int kl = snprintf(key, sizeof(key), "key%d", i);
      brook_record_t rec = {.key = key, .key_len = (size_t)kl, .timestamp = i / 100};
      assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
    }
    bytes[disk] = state_bytes(d);
    assert_int_equal(brook_driver_end(d), BROOK_OK);
    assert_int_equal(brook_driver_output_count(d, "out"), results);
    if (disk) { /* every slice gone from disk once its last window fired: range deletions */
      assert_int_equal(brook_store_count(instance_store(d, "window")), 0);
      assert_true(brook_store_count(instance_store(d, "window_order")) <= 1); /* hopping's "m" */
    }
    brook_driver_free(d);
    brook_topology_free(t);
  }
  assert_true(bytes[0] > 30000 * 16);
  if (bytes[1] * 10 > bytes[0])
    fail_msg("on disk %llu bytes, in memory %llu", (unsigned long long)bytes[1],
             (unsigned long long)bytes[0]);
}

static void test_memory_not_per_key(void **state) {
  (void)state;
  check_memory_not_per_key(brook_window_tumbling(1000000), 30000);
  /* Four windows of four slices each hold every key: 4 x 30,000 results. */
  check_memory_not_per_key(brook_window_hopping(1000000, 250000), 4 * 30000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tumbling_restart),   cmocka_unit_test(test_hopping_restart),
      cmocka_unit_test(test_session_restart),    cmocka_unit_test(test_tumbling_layout),
      cmocka_unit_test(test_memory_not_per_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
