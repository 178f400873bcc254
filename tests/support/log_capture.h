/* Capturing a runtime's log: a brook_log_cb that appends every message (one per line) to a
 * buffer the test reads after the run, e.g. to check that no secret was ever logged. The
 * callback may run on any thread (the runtime's loop thread); the buffer is locked. */
#ifndef BROOK_TEST_LOG_CAPTURE_H
#define BROOK_TEST_LOG_CAPTURE_H

#include <stddef.h>

#include <uv.h>

typedef struct log_capture {
  uv_mutex_t mu;
  char *text; /* every message so far, each followed by '\n'; NULL before the first */
  size_t len, cap;
  size_t lines;
} log_capture_t;

void log_capture_init(log_capture_t *l);
void log_capture_free(log_capture_t *l);

/* The brook_log_cb: `opaque` is a log_capture_t. */
void log_capture_cb(int level, const char *msg, void *opaque);

/* A line to wait for in a log still being written (wait.h): `log` and `needle` borrowed. */
typedef struct log_wait {
  log_capture_t *log;
  const char *needle;
} log_wait_t;

/* wait_pred_fn (wait.h) over a log_wait_t: whether the log holds the needle yet. Any thread. */
int log_capture_has(void *log_wait);

/* Everything captured ("" if nothing). Read it once the run is over. */
const char *log_capture_text(const log_capture_t *l);

#endif
