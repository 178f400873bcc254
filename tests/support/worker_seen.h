/* What the sinks of a pipeline saw on several workers: counts per key ("k00".."k63"), how
 * many records, and the threads the sinks ran on (to check that every worker, or exactly
 * one, took part). Any thread (a mutex). */
#ifndef BROOK_TEST_WORKER_SEEN_H
#define BROOK_TEST_WORKER_SEEN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <brook/brook.h>

#define SEEN_KEYS 64
#define SEEN_THREADS 16

typedef struct seen {
  pthread_mutex_t mu;
  int64_t count[SEEN_KEYS]; /* the latest (largest) count per key */
  int64_t windowed;         /* free for a test's own sum */
  uint64_t records;
  pthread_t threads[SEEN_THREADS];
  size_t n_threads;
} seen_t;

void seen_init(seen_t *s);
/* Notes the calling thread (under s->mu). */
void seen_thread(seen_t *s);
/* The index of key "kNN" (NN < SEEN_KEYS), or -1. */
int seen_key_index(const void *key, size_t len);
/* A callback sink (opaque: a seen_t): the value is the key's int64_t count. Fails the record
 * (BROOK_ERR_USER) for an unknown key or a value of another size. */
brook_err_t seen_count_sink(const brook_record_t *rec, void *opaque);

#endif
