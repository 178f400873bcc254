/* What the sinks saw on several workers (worker_seen.h). */
#include "worker_seen.h"

#include <string.h>

void seen_init(seen_t *s) {
  memset(s, 0, sizeof(*s));
  pthread_mutex_init(&s->mu, NULL);
}

void seen_thread(seen_t *s) {
  pthread_t self = pthread_self();
  for (size_t i = 0; i < s->n_threads; i++)
    if (pthread_equal(s->threads[i], self))
      return;
  if (s->n_threads < SEEN_THREADS)
    s->threads[s->n_threads++] = self;
}

int seen_key_index(const void *key, size_t len) {
  const char *k = key;
  if (len != 3 || k[0] != 'k' || k[1] < '0' || k[1] > '9' || k[2] < '0' || k[2] > '9')
    return -1;
  int i = (k[1] - '0') * 10 + (k[2] - '0');
  return i < SEEN_KEYS ? i : -1;
}

brook_err_t seen_count_sink(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  int k = seen_key_index(rec->key, rec->key_len);
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
