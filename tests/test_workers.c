/* Workers: a runtime with num_workers > 1 runs the generator's splits on several threads,
 * sends each key's records to the worker that owns it (the exchange after key_by), and gives
 * the same per-key results as one worker; every worker takes part. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "run_deadline.h"

#define N_KEYS 64
#define MAX_THREADS 16

static char key_names[N_KEYS][8];

/* What the sinks saw, from every worker's thread. */
typedef struct seen {
  pthread_mutex_t mu;
  int64_t count[N_KEYS]; /* the latest count per key */
  uint64_t records;
  pthread_t threads[MAX_THREADS];
  size_t n_threads;
} seen_t;

static void seen_init(seen_t *s) {
  memset(s, 0, sizeof(*s));
  pthread_mutex_init(&s->mu, NULL);
}

static void seen_thread(seen_t *s) {
  pthread_t self = pthread_self();
  for (size_t i = 0; i < s->n_threads; i++)
    if (pthread_equal(s->threads[i], self))
      return;
  if (s->n_threads < MAX_THREADS)
    s->threads[s->n_threads++] = self;
}

static int key_index(const void *key, size_t len) {
  for (int i = 0; i < N_KEYS; i++)
    if (strlen(key_names[i]) == len && memcmp(key_names[i], key, len) == 0)
      return i;
  return -1;
}

static brook_err_t count_sink(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  int k = key_index(rec->key, rec->key_len);
  if (k < 0 || rec->value_len != sizeof(int64_t))
    return BROOK_ERR_USER;
  int64_t v;
  memcpy(&v, rec->value, sizeof(v));
  pthread_mutex_lock(&s->mu);
  if (v > s->count[k])
    s->count[k] = v;
  s->records++;
  seen_thread(s);
  pthread_mutex_unlock(&s->mu);
  return BROOK_OK;
}

/* Split s's i-th record is key (s * 7 + i) % N_KEYS: every split covers every key. */
typedef struct gen {
  uint64_t next[64]; /* per split: touched only by the worker running it */
} gen_t;

static brook_err_t gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t split = brook_ctx_split(ctx);
  uint64_t i = g->next[split]++;
  out->value = key_names[(split * 7 + i) % N_KEYS];
  out->value_len = strlen(out->value);
  return BROOK_OK;
}

static brook_err_t key_is_value(const brook_record_t *rec, const void **key, size_t *key_len,
                                brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value;
  *key_len = rec->value_len;
  return BROOK_OK;
}

/* generator (splits) -> key_by -> count -> sink, on `workers` workers. */
static void run_counts(size_t workers, size_t splits, uint64_t limit, seen_t *seen) {
  static gen_t g;
  memset(&g, 0, sizeof(g));
  seen_init(seen);
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = limit;
  go.splits = splits;
  brook_stream_t *s = brook_source_generator(t, "gen", gen_fn, &g, &go);
  s = brook_key_by(s, key_is_value, NULL);
  s = brook_count(s, NULL);
  assert_int_equal(brook_sink_callback(s, count_sink, NULL, seen), BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  brook_runtime_stats_t st;
  st.struct_size = sizeof(st);
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, limit);
  assert_int_equal(st.records_out, limit);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void test_same_counts_on_1_2_4_workers(void **state) {
  (void)state;
  const uint64_t limit = 200003; /* not a multiple of the splits */
  static seen_t one, many;
  run_counts(1, 4, limit, &one);
  uint64_t total = 0;
  for (int k = 0; k < N_KEYS; k++)
    total += (uint64_t)one.count[k];
  assert_int_equal(total, limit);
  assert_int_equal(one.n_threads, 1);
  size_t ns[] = {2, 4};
  for (size_t i = 0; i < 2; i++) {
    run_counts(ns[i], 4, limit, &many);
    for (int k = 0; k < N_KEYS; k++)
      if (many.count[k] != one.count[k])
        fail_msg("%zu workers: key %s counted %lld, one worker %lld", ns[i], key_names[k],
                 (long long)many.count[k], (long long)one.count[k]);
    assert_int_equal(many.records, limit);
    /* Each key's sink runs on the worker owning the key: every worker had keys. */
    if (many.n_threads != ns[i])
      fail_msg("%zu workers: sinks ran on %zu threads", ns[i], many.n_threads);
  }
}

int main(void) {
  for (int i = 0; i < N_KEYS; i++)
    snprintf(key_names[i], sizeof(key_names[i]), "k%02d", i);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_counts_on_1_2_4_workers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
