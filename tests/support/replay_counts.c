/* Counts per key read back from an output topic (replay_counts.h). */
#include "replay_counts.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kafka_helpers.h"
#include "key_counts.h"

int rc_key_index(const void *key, size_t len) { return kc_key_index(key, len, KC_KEYS); }

void rc_on_out(const rd_kafka_message_t *m, void *opaque) {
  rc_maxes_t *x = opaque;
  int k = rc_key_index(m->key, m->key_len);
  int64_t v;
  if (k < 0 || m->len != sizeof(v))
    fail_msg("output record of %zu bytes, key %.*s", m->len, (int)m->key_len, (const char *)m->key);
  memcpy(&v, m->payload, sizeof(v));
  if (v > x->max[k])
    x->max[k] = v;
}

static int reached(const rc_maxes_t *x, int64_t want) {
  for (int k = 0; k < KC_KEYS; k++)
    if (x->max[k] < want)
      return 0;
  return 1;
}

void rc_read_until(rd_kafka_t *r, rc_maxes_t *x, int64_t want, int timeout_ms) {
  long long deadline = kh_now_ms() + timeout_ms;
  while (!reached(x, want) && kh_now_ms() < deadline)
    kh_read(r, 1 << 30, 200, rc_on_out, x);
}

void rc_expect_exact(const rc_maxes_t *x, int64_t want) {
  for (int k = 0; k < KC_KEYS; k++)
    if (x->max[k] != want)
      fail_msg("key k%d: count %lld, want %lld (%s)", k, (long long)x->max[k], (long long)want,
               x->max[k] > want ? "records counted twice" : "records missing from the state");
}

void rc_wait_written(child_lines_t *out, int n, int timeout_ms) {
  char line[128];
  for (;;) {
    if (child_read_line(out, line, sizeof(line), timeout_ms) != 0)
      fail_msg("the pipeline reported no state write %d", n);
    int got;
    if (sscanf(line, "written %d", &got) == 1 && got >= n)
      return;
  }
}

void rc_wait_running(child_lines_t *out, int n_tasks, int timeout_ms) {
  char line[128];
  unsigned seen = 0, all = (1u << n_tasks) - 1;
  while (seen != all) {
    if (child_read_line(out, line, sizeof(line), timeout_ms) != 0)
      fail_msg("the pipeline's tasks did not start");
    int t;
    if (sscanf(line, "running %d", &t) == 1 && t >= 0 && t < n_tasks)
      seen |= 1u << t;
  }
}
