/* A log of callback calls for tests of fused lines: "f3" = the filter saw record 3. Record i
 * is told by its timestamp % 1000 (records are made with timestamp i; the map adds 1000). */
#ifndef BROOK_TEST_CALL_LOG_H
#define BROOK_TEST_CALL_LOG_H

#include <stddef.h>

#include <brook/brook.h>

typedef struct call_log {
  char text[4096];
  size_t len;
  size_t filter_fails_at, map_fails_at; /* record numbers; anything larger: never */
} call_log_t;

/* Appends "<op><i>" (space-separated). */
void call_log_add(call_log_t *l, char op, size_t i);
size_t call_log_index(const brook_record_t *rec);
/* Callbacks whose opaque is a call_log_t: the filter keeps i % 4 != 3 and fails with -41 on
 * filter_fails_at; the map adds 1000 to the timestamp and fails with -42 on map_fails_at; the
 * sink only logs. */
int call_log_filter(const brook_record_t *rec, void *opaque);
brook_err_t call_log_map(brook_record_t *rec, brook_ctx_t *ctx, void *opaque);
brook_err_t call_log_sink(const brook_record_t *rec, void *opaque);

#endif
