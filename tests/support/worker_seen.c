/* What sinks on every worker's thread saw (worker_seen.h). */
#include "worker_seen.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

char key_names[N_KEYS][8];

void worker_keys_init(void) {
  for (int i = 0; i < N_KEYS; i++)
    snprintf(key_names[i], sizeof(key_names[i]), "k%02d", i);
}

int key_index(const void *key, size_t len) {
  const char *k = key;
  if (len != 3 || k[0] != 'k' || k[1] < '0' || k[1] > '9' || k[2] < '0' || k[2] > '9')
    return -1;
  int i = (k[1] - '0') * 10 + (k[2] - '0');
  return i < N_KEYS ? i : -1;
}

void seen_init(seen_t *s) {
  memset(s, 0, sizeof(*s));
  pthread_mutex_init(&s->mu, NULL);
}

void seen_thread(seen_t *s) {
  pthread_t self = pthread_self();
  for (size_t i = 0; i < s->n_threads; i++)
    if (pthread_equal(s->threads[i], self))
      return;
  if (s->n_threads < MAX_THREADS)
    s->threads[s->n_threads++] = self;
}

brook_err_t count_sink(const brook_record_t *rec, void *opaque) {
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

brook_err_t key_is_value(const brook_record_t *rec, const void **key, size_t *key_len,
                         brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value;
  *key_len = rec->value_len;
  return BROOK_OK;
}

uint64_t total_count(const seen_t *s) {
  uint64_t total = 0;
  for (int k = 0; k < N_KEYS; k++)
    total += (uint64_t)s->count[k];
  return total;
}

void check_same_counts(const seen_t *one, const seen_t *many, size_t workers) {
  for (int k = 0; k < N_KEYS; k++)
    if (many->count[k] != one->count[k])
      fail_msg("%zu workers: key %s counted %lld, one worker %lld", workers, key_names[k],
               (long long)many->count[k], (long long)one->count[k]);
  if (many->n_threads != workers)
    fail_msg("%zu workers: sinks ran on %zu threads", workers, many->n_threads);
}

brook_runtime_stats_t stats_of(const brook_runtime_t *rt) {
  brook_runtime_stats_t st;
  st.struct_size = sizeof(st);
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  return st;
}

brook_err_t window_count_sink(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  brook_window_value_t wv;
  const void *res;
  int64_t n;
  int k = key_index(rec->key, rec->key_len);
  if (brook_window_parse(rec, &wv, &res) != BROOK_OK || k < 0 || wv.result_len != sizeof(n) ||
      !(wv.flags & BROOK_WINDOW_FINAL) || wv.start < 0 || s->window_ms <= 0 ||
      wv.start / s->window_ms >= MAX_WINDOWS)
    return BROOK_ERR_USER;
  memcpy(&n, res, sizeof(n));
  pthread_mutex_lock(&s->mu);
  s->win[k][wv.start / s->window_ms] += n;
  s->records++;
  if (s->running)
    s->before_end += atomic_load(s->running) > 0;
  seen_thread(s);
  pthread_mutex_unlock(&s->mu);
  return BROOK_OK;
}

int64_t windows_total(const seen_t *s) {
  int64_t total = 0;
  for (int k = 0; k < N_KEYS; k++)
    for (int w = 0; w < MAX_WINDOWS; w++)
      total += s->win[k][w];
  return total;
}

void check_same_windows(const seen_t *one, const seen_t *many, size_t workers) {
  if (many->records != one->records)
    fail_msg("%zu workers: %llu window results, one worker %llu", workers,
             (unsigned long long)many->records, (unsigned long long)one->records);
  for (int k = 0; k < N_KEYS; k++)
    for (int w = 0; w < MAX_WINDOWS; w++)
      if (many->win[k][w] != one->win[k][w])
        fail_msg("%zu workers: key %s window %d counted %lld, one worker %lld", workers,
                 key_names[k], w, (long long)many->win[k][w], (long long)one->win[k][w]);
  if (many->n_threads != workers) /* every worker fired windows */
    fail_msg("%zu workers: windows fired on %zu threads", workers, many->n_threads);
}
