/* Key changes before state (brook/stateless.h, "Key changes"): a map that changes the key of
 * records from a source partitioned by key, feeding a window, must give the result key_by
 * gives - one final result per (new key, window), counted over every partition - not one
 * partial result per input partition. map_values keeps the key and so the partitioning: no
 * exchange, the window runs per task, and the results are right too. Checked on 1 and 2
 * workers against a brute-force reference. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "run_deadline.h"
#include "worker_seen.h"

#define SPLITS 4
#define N_WINDOWS 20
#define WINDOW_MS 100
#define PER_SPLIT ((uint64_t)N_WINDOWS * WINDOW_MS * 5) /* records per split, 5 per ms */

static int own_keys[SPLITS][N_KEYS]; /* per split: the indices of its keys */
static int n_own[SPLITS];

/* ---- the input: split s holds its own keys; the value names another key ---- */

typedef struct gen {
  uint64_t next[SPLITS];
} gen_t;

/* Split s's i-th record: key = its own key number i % n_own[s]; value = key "kNN" with
 * NN = (i * 7 + s * 13) % N_KEYS, which lives in any split; event time i / 5 ms. */
static int value_key(size_t s, uint64_t i) { return (int)((i * 7 + s * 13) % N_KEYS); }

static brook_err_t keyed_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  if (s >= SPLITS)
    return BROOK_ERR_STATE;
  if (g->next[s] == PER_SPLIT)
    return BROOK_DONE;
  uint64_t i = g->next[s]++;
  int k = own_keys[s][i % (uint64_t)n_own[s]];
  out->key = key_names[k];
  out->key_len = strlen(key_names[k]);
  out->value = key_names[value_key(s, i)];
  out->value_len = 3;
  out->timestamp = (brook_time_t)(i / 5);
  return BROOK_OK;
}

/* The reference: per (value's key, window) how many records. */
static int64_t expected[N_KEYS][N_WINDOWS];

static void reference(void) {
  memset(expected, 0, sizeof(expected));
  for (size_t s = 0; s < SPLITS; s++)
    for (uint64_t i = 0; i < PER_SPLIT; i++)
      expected[value_key(s, i)][(i / 5) / WINDOW_MS]++;
}

static void setup_keys(void) {
  worker_keys_init();
  memset(n_own, 0, sizeof(n_own));
  for (int k = 0; k < N_KEYS; k++) {
    uint32_t s = brook_key_split(key_names[k], strlen(key_names[k]), SPLITS);
    own_keys[s][n_own[s]++] = k;
  }
  for (int s = 0; s < SPLITS; s++)
    assert_true(n_own[s] > 0);
  reference();
}

static brook_stream_t *keyed_source(brook_topology_t *t, gen_t *g) {
  memset(g, 0, sizeof(*g));
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = SPLITS;
  go.partitioned_by_key = 1;
  brook_stream_t *s = brook_source_generator(t, "gen", keyed_gen, g, &go);
  assert_non_null(s);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_MONOTONOUS;
  assert_int_equal(brook_source_set_watermark(s, &wo), BROOK_OK);
  return s;
}

/* ---- the key changes ---- */

static brook_err_t map_key_to_value(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  rec->key = rec->value;
  rec->key_len = rec->value_len;
  return BROOK_OK;
}

/* ---- what the window sink saw: every FINAL result per (key, window) ---- */

typedef struct wseen {
  pthread_mutex_t mu;
  int results[N_KEYS][N_WINDOWS]; /* how many results */
  int64_t last[N_KEYS][N_WINDOWS];
  int bad;
} wseen_t;

static brook_err_t window_sink(const brook_record_t *rec, void *opaque) {
  wseen_t *w = opaque;
  brook_window_value_t wv;
  const void *result;
  int k = key_index(rec->key, rec->key_len);
  if (k < 0 || brook_window_parse(rec, &wv, &result) != BROOK_OK ||
      wv.result_len != sizeof(int64_t) || wv.start % WINDOW_MS ||
      wv.start / WINDOW_MS >= N_WINDOWS || !(wv.flags & BROOK_WINDOW_FINAL))
    return BROOK_ERR_USER;
  int64_t n;
  memcpy(&n, result, sizeof(n));
  pthread_mutex_lock(&w->mu);
  w->results[k][wv.start / WINDOW_MS]++;
  w->last[k][wv.start / WINDOW_MS] = n;
  pthread_mutex_unlock(&w->mu);
  return BROOK_OK;
}

/* Exactly one result per (key, window) that has records, equal to the reference; prints
 * how many results there were and how many were right before failing. */
static void check_windows(const wseen_t *w, const char *what, size_t workers) {
  int results = 0, right = 0, wrong = 0, want = 0;
  char first[160] = "";
  for (int k = 0; k < N_KEYS; k++)
    for (int x = 0; x < N_WINDOWS; x++) {
      want += expected[k][x] > 0;
      results += w->results[k][x];
      int ok = w->results[k][x] == (expected[k][x] > 0) &&
               (!expected[k][x] || w->last[k][x] == expected[k][x]);
      right += ok && expected[k][x] > 0;
      if (!ok && !wrong++)
        snprintf(first, sizeof(first), "key %s window %d: %d results, last %lld, expected %lld",
                 key_names[k], x, w->results[k][x], (long long)w->last[k][x],
                 (long long)expected[k][x]);
    }
  if (wrong)
    fail_msg("%s, %zu workers: %d results for %d windows, %d of them right; first: %s", what,
             workers, results, want, right, first);
}

static brook_topology_t *new_topology(void) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  return t;
}

/* source -> rekey (map or key_by: key := value) -> tumbling count -> sink. */
static void run_rekeyed(size_t workers, int use_key_by, wseen_t *w) {
  static gen_t g;
  memset(w, 0, sizeof(*w));
  pthread_mutex_init(&w->mu, NULL);
  brook_topology_t *t = new_topology();
  brook_stream_t *s = keyed_source(t, &g);
  s = use_key_by ? brook_key_by(s, key_is_value, NULL) : brook_map(s, map_key_to_value, NULL);
  s = brook_stream_set_name(s, "rekey");
  brook_aggregator_t count = brook_agg_count();
  brook_window_t tumbling = brook_window_tumbling(WINDOW_MS);
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "per_key_100ms";
  s = brook_window_aggregate(s, &tumbling, &count, &wo);
  assert_int_equal(brook_sink_callback(s, window_sink, NULL, w), BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  ro.batch_size = 256;
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK)
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  brook_err_t err = run_with_deadline(rt, 60000, NULL);
  if (err != BROOK_OK)
    fail_msg("%zu workers: %s", workers, brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  pthread_mutex_destroy(&w->mu);
}

static void test_map_changing_key_before_window(void **state) {
  (void)state;
  static wseen_t w;
  size_t ns[] = {1, 2};
  for (size_t i = 0; i < 2; i++) {
    run_rekeyed(ns[i], 1, &w);
    check_windows(&w, "key_by", ns[i]);
    run_rekeyed(ns[i], 0, &w);
    check_windows(&w, "map", ns[i]);
  }
}

int main(void) {
  setup_keys();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_changing_key_before_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
