/* What sinks on every worker's thread saw, for the tests that run a pipeline on 1, 2 and 4
 * workers and compare (test_workers, test_keyed_splits, test_gather): 64 keys "k00".."k63", the
 * latest count per key, and the threads the sinks ran on (every worker must take part). */
#ifndef BROOK_TEST_WORKER_SEEN_H
#define BROOK_TEST_WORKER_SEEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <brook/brook.h>

#define N_KEYS 64
#define MAX_THREADS 16
#define MAX_WINDOWS 40

/* "k00".."k63": filled by worker_keys_init(). */
extern char key_names[N_KEYS][8];
void worker_keys_init(void);
/* The number NN of key "kNN" (NN < N_KEYS), or -1. */
int key_index(const void *key, size_t len);

typedef struct seen {
  pthread_mutex_t mu;
  int64_t count[N_KEYS]; /* the latest (largest) count per key */
  int64_t windowed;      /* free for a test's own sum */
  uint64_t records;
  /* window_count_sink: FINAL tumbling-window counts per key and window (window k starts at
   * k * window_ms; set window_ms after seen_init), results seen while *running > 0 (running
   * may stay NULL). */
  int64_t win[N_KEYS][MAX_WINDOWS];
  int64_t window_ms;
  const atomic_int *running;
  uint64_t before_end;
  pthread_t threads[MAX_THREADS];
  size_t n_threads;
} seen_t;

void seen_init(seen_t *s);
/* Notes the calling thread; the caller holds s->mu. */
void seen_thread(seen_t *s);
/* A brook_sink_fn (opaque: a seen_t): the record is a key and its int64 count. Fails the
 * record (BROOK_ERR_USER) for an unknown key or a value of another size. */
brook_err_t count_sink(const brook_record_t *rec, void *opaque);
/* A brook_key_fn: the value becomes the key. */
brook_err_t key_is_value(const brook_record_t *rec, const void **key, size_t *key_len,
                         brook_ctx_t *ctx, void *opaque);
/* A brook_sink_fn (opaque: a seen_t): a FINAL tumbling-window result whose value is an int64
 * count, added to win[key][start / window_ms]. Fails the record (BROOK_ERR_USER) for anything
 * else. */
brook_err_t window_count_sink(const brook_record_t *rec, void *opaque);
/* Every window's count added up. */
int64_t windows_total(const seen_t *s);
/* The same count per key and window as with one worker, and results on `workers` threads
 * (fails the test, cmocka, naming key and window). */
void check_same_windows(const seen_t *one, const seen_t *many, size_t workers);
/* The counts of every key added up. */
uint64_t total_count(const seen_t *s);
/* The same count for every key as with one worker, and the sinks ran on `workers` threads
 * (fails the test, cmocka, naming the key). */
void check_same_counts(const seen_t *one, const seen_t *many, size_t workers);
/* The runtime's stats (asserts the call succeeds). */
brook_runtime_stats_t stats_of(const brook_runtime_t *rt);

#endif
