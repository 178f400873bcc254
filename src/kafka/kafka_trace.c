/* Tracing failed records back to their Kafka message. See kafka_trace.h. Loop thread. */
#include "kafka/kafka_trace.h"

#include <assert.h>
#include <stdint.h>

brook_err_t bk_ktrace_begin(bk_ktrace_t *t, const brook_allocator_t *a, size_t cap) {
  t->n = 0;
  if (t->cap < cap && bk_grow(a, (void **)&t->e, &t->cap, cap, sizeof(*t->e)))
    return BROOK_ERR_NOMEM;
  return BROOK_OK;
}

void bk_ktrace_record(bk_ktrace_t *t, const rd_kafka_message_t *m, brook_record_t *rec) {
  assert(t->n < t->cap); /* one per record: the batch holds at most cap */
  bk_ktrace_entry_t *e = &t->e[t->n++];
  e->msg = m;
  if (!rec->headers)
    rec->headers = &e->empty;
  e->headers = rec->headers;
}

/* Whether [p, p + len) lies inside [base, base + base_len) (len > 0). */
static int within(const void *p, size_t len, const void *base, size_t base_len) {
  uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
  return p && len && base && a >= b && a - b <= base_len && len <= base_len - (a - b);
}

const rd_kafka_message_t *bk_ktrace_find(const bk_ktrace_t *t, const brook_record_t *rec) {
  uintptr_t h = (uintptr_t)rec->headers, first = (uintptr_t)t->e;
  if (t->n && h >= first && h < first + t->n * sizeof(*t->e)) { /* a tag: found at once */
    size_t i = (h - first) / sizeof(*t->e);
    if (rec->headers == &t->e[i].empty)
      return t->e[i].msg;
  }
  for (size_t i = 0; i < t->n; i++)
    if (rec->headers == t->e[i].headers)
      return t->e[i].msg;
  for (size_t i = 0; i < t->n; i++) {
    const rd_kafka_message_t *m = t->e[i].msg;
    if (within(rec->value, rec->value_len, m->payload, m->len) ||
        within(rec->key, rec->key_len, m->key, m->key_len))
      return m;
  }
  return NULL;
}

void bk_ktrace_free(bk_ktrace_t *t, const brook_allocator_t *a) {
  bk_free(a, t->e);
  *t = (bk_ktrace_t){0};
}
