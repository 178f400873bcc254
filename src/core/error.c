/* Error codes: names and descriptions. */
#include <brook/error.h>

#include "core/errmsg.h"

#include <stdio.h>

typedef struct err_info {
  int code;
  const char *name;
  const char *text;
} err_info_t;

static const err_info_t err_table[] = {
    {BROOK_OK, "BROOK_OK", "success"},
    {BROOK_DONE, "BROOK_DONE", "end of stream"},
    {BROOK_ERR_NOMEM, "BROOK_ERR_NOMEM", "out of memory"},
    {BROOK_ERR_INVALID_ARG, "BROOK_ERR_INVALID_ARG", "invalid argument"},
    {BROOK_ERR_CYCLE, "BROOK_ERR_CYCLE", "topology has a cycle"},
    {BROOK_ERR_DANGLING, "BROOK_ERR_DANGLING", "dangling stream or operator"},
    {BROOK_ERR_FROZEN, "BROOK_ERR_FROZEN", "topology is frozen (a runtime uses it)"},
    {BROOK_ERR_STATE, "BROOK_ERR_STATE", "wrong state for this call"},
    {BROOK_ERR_NOT_FOUND, "BROOK_ERR_NOT_FOUND", "not found"},
    {BROOK_ERR_FULL, "BROOK_ERR_FULL", "queue full (no credit)"},
    {BROOK_ERR_STOPPED, "BROOK_ERR_STOPPED", "stopped"},
    {BROOK_ERR_IO, "BROOK_ERR_IO", "input/output error"},
    {BROOK_ERR_USER, "BROOK_ERR_USER", "user callback failed"},
    {BROOK_ERR_TOO_LARGE, "BROOK_ERR_TOO_LARGE", "record too large"},
    {BROOK_ERR_TIMEOUT, "BROOK_ERR_TIMEOUT", "timed out"},
    {BROOK_ERR_LOOP, "BROOK_ERR_LOOP", "event loop error"},
    {BROOK_ERR_BUILD, "BROOK_ERR_BUILD", "topology has build errors"},
    {BROOK_ERR_DUPLICATE, "BROOK_ERR_DUPLICATE", "duplicate name"},
    {BROOK_ERR_CORRUPT, "BROOK_ERR_CORRUPT", "malformed data"},
    {BROOK_ERR_KAFKA, "BROOK_ERR_KAFKA", "Kafka error"},
};

static const err_info_t *err_find(int err) {
  for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
    if (err_table[i].code == err)
      return &err_table[i];
  return NULL;
}

const char *brook_strerror(int err) {
  const err_info_t *e = err_find(err);
  if (e)
    return e->text;
  return err < 0 ? "user-defined error" : "unknown status";
}

const char *brook_errname(int err) {
  const err_info_t *e = err_find(err);
  if (e)
    return e->name;
  return err < 0 ? "BROOK_ERR_USER_DEFINED" : "BROOK_UNKNOWN";
}

void bk_errmsg_vset(bk_errmsg_t *m, const char *fmt, va_list ap) {
  vsnprintf(m->text, sizeof(m->text), fmt, ap);
}

void bk_errmsg_set(bk_errmsg_t *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bk_errmsg_vset(m, fmt, ap);
  va_end(ap);
}
