/* A runtime log kept in memory. See log_capture.h. */
#include "log_capture.h"

#include <stdlib.h>
#include <string.h>

void log_capture_init(log_capture_t *l) {
  memset(l, 0, sizeof(*l));
  uv_mutex_init(&l->mu);
}

void log_capture_free(log_capture_t *l) {
  uv_mutex_destroy(&l->mu);
  free(l->text);
  l->text = NULL;
}

void log_capture_cb(int level, const char *msg, void *opaque) {
  (void)level;
  log_capture_t *l = opaque;
  size_t n = strlen(msg);
  uv_mutex_lock(&l->mu);
  if (l->len + n + 2 > l->cap) {
    l->cap = 2 * (l->len + n + 2) + 4096;
    l->text = realloc(l->text, l->cap);
    if (!l->text)
      abort(); /* not on the test's thread: no cmocka assertion here */
  }
  memcpy(l->text + l->len, msg, n);
  l->len += n;
  l->text[l->len++] = '\n';
  l->text[l->len] = '\0';
  l->lines++;
  uv_mutex_unlock(&l->mu);
}

const char *log_capture_text(const log_capture_t *l) { return l->text ? l->text : ""; }

int log_capture_has(void *arg) {
  log_wait_t *w = arg;
  uv_mutex_lock(&w->log->mu);
  int has = w->log->text && strstr(w->log->text, w->needle);
  uv_mutex_unlock(&w->log->mu);
  return has;
}
