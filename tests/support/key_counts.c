/* Counting per key in the Kafka restart tests (key_counts.h). */
#include "key_counts.h"

#include "kafka_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/task.h>

int kc_key_index(const void *key, size_t len, int n_keys) {
  const char *c = key;
  if (len < 2 || len > 7 || c[0] != 'k')
    return -1;
  int k = 0;
  for (size_t i = 1; i < len; i++) {
    if (c[i] < '0' || c[i] > '9')
      return -1;
    k = k * 10 + (c[i] - '0');
  }
  return k < n_keys ? k : -1;
}

void kc_produce_at(const char *bootstrap, const char *topic, int32_t partition, const char *key,
                   int64_t ts) {
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, bootstrap, NULL, NULL, NULL);
  assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                     RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE("v", 1),
                                     RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);
}

void kc_log_to_stderr(int level, const char *msg, void *opaque) {
  fprintf(stderr, "[%s %d] %s\n", (const char *)opaque, level, msg);
}

void kc_on_out(const rd_kafka_message_t *m, void *opaque) {
  kc_maxes_t *x = opaque;
  int k = kc_key_index(m->key, m->key_len, x->n_keys);
  int64_t v;
  if (k < 0 || m->len != sizeof(v))
    fail_msg("output record of %zu bytes, key %.*s", m->len, (int)m->key_len, (const char *)m->key);
  memcpy(&v, m->payload, sizeof(v));
  if (v > x->max[k])
    x->max[k] = v;
}

int kc_reached(const kc_maxes_t *x, int64_t want) {
  for (int k = 0; k < x->n_keys; k++)
    if (x->max[k] < want)
      return 0;
  return 1;
}

void kc_expect_max(const kc_maxes_t *x, int64_t want) {
  for (int k = 0; k < x->n_keys; k++)
    if (x->max[k] != want)
      fail_msg("key k%d: count %lld, want %lld (%s)", k, (long long)x->max[k], (long long)want,
               x->max[k] > want ? "records counted twice" : "records missing from the state");
}

void kc_report_running(int32_t task, int old, int state, const char *reason, void *opaque) {
  (void)old, (void)reason, (void)opaque;
  if (state == BROOK_TASK_RUNNING) {
    printf("running %d\n", (int)task);
    fflush(stdout);
  }
}

void kc_wait_running(kc_child_t *c, int n, int distinct, int timeout_ms) {
  char line[128];
  unsigned seen = 0;
  for (int got = 0; got < n;) {
    if (child_read_line(&c->out, line, sizeof(line), timeout_ms) != 0)
      fail_msg("the pipeline's tasks did not start");
    int t;
    if (sscanf(line, "running %d", &t) != 1)
      continue;
    if (!distinct) {
      got++;
    } else if (t >= 0 && t < n && t < 32 && !(seen & (1u << t))) {
      seen |= 1u << t;
      got++;
    }
  }
}

int kc_end_child(kc_child_t *c, int sig, int timeout_ms) {
  int code = self_exec_end(c->pid, sig, timeout_ms);
  close(c->out.fd);
  return code;
}
