/* A log of callback calls for tests of fused lines (call_log.h). */
#include "call_log.h"

#include <stdio.h>

void call_log_add(call_log_t *l, char op, size_t i) {
  if (l->len >= sizeof(l->text))
    return;
  l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%c%zu",
                             l->len ? " " : "", op, i);
}

size_t call_log_index(const brook_record_t *rec) { return (size_t)(rec->timestamp % 1000); }

int call_log_filter(const brook_record_t *rec, void *opaque) {
  call_log_t *l = opaque;
  size_t i = call_log_index(rec);
  call_log_add(l, 'f', i);
  if (i == l->filter_fails_at)
    return -41;
  return i % 4 != 3;
}

brook_err_t call_log_map(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  call_log_t *l = opaque;
  size_t i = call_log_index(rec);
  call_log_add(l, 'm', i);
  rec->timestamp += 1000;
  return i == l->map_fails_at ? -42 : BROOK_OK;
}

brook_err_t call_log_sink(const brook_record_t *rec, void *opaque) {
  call_log_add(opaque, 's', call_log_index(rec));
  return BROOK_OK;
}
