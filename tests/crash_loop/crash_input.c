/* The crash-loop harness's input and reference. See crash_input.h. */
#include "crash_loop/crash_input.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "crash_loop/crash_pipeline.h"
#include "kafka_helpers.h"
#include "rng.h"

const ci_rec_t *ci_rec(const ci_input_t *in, int part, int64_t i) {
  return &in->recs[(int64_t)part * (in->per_part + 1) + i];
}

static int64_t window_of(const ci_input_t *in, int64_t ts) { return (ts - in->w0) / CP_WINDOW_MS; }

int ci_generate(ci_input_t *in, const ci_params_t *p, int64_t ts0) {
  memset(in, 0, sizeof(*in));
  if (p->partitions < 1 || p->keys < 1 || p->records < p->partitions || p->phase1_percent < 1 ||
      p->phase1_percent > 99 || ts0 % CP_WINDOW_MS != 0)
    return -1;
  in->p = *p;
  in->ts0 = ts0;
  in->per_part = p->records / p->partitions;
  in->phase1 = in->per_part * p->phase1_percent / 100;
  in->w0 = ts0 - CP_WINDOW_MS; /* the jitter reaches below ts0 */
  in->n_windows = window_of(in, ts0 + in->per_part * CI_STEP_MS) + 1;
  /* Windows that phase 1 alone closes: every partition's watermark (its largest event time:
   * max_delay 0) has passed their end - 1 + grace. */
  int64_t wmin1 = INT64_MAX;
  rng_t r = {p->seed};
  in->recs = calloc((size_t)(p->partitions * (in->per_part + 1)), sizeof(ci_rec_t));
  in->count = calloc((size_t)p->keys + 1, sizeof(int64_t));
  in->win = calloc((size_t)(p->keys * in->n_windows), sizeof(int32_t));
  in->late_win = calloc((size_t)(p->keys * in->n_windows), sizeof(int32_t));
  if (!in->recs || !in->count || !in->win || !in->late_win)
    return -1;
  for (int part = 0; part < p->partitions; part++) {
    int64_t max1 = INT64_MIN;
    for (int64_t i = 0; i < in->phase1; i++) {
      ci_rec_t *rec = &in->recs[(int64_t)part * (in->per_part + 1) + i];
      rec->key = (int32_t)rng_range(&r, 0, p->keys - 1);
      rec->ts = ts0 + i * CI_STEP_MS - rng_range(&r, 0, CI_JITTER_MS);
      max1 = rec->ts > max1 ? rec->ts : max1;
    }
    wmin1 = max1 < wmin1 ? max1 : wmin1;
  }
  /* Window w closes by phase 1 iff start + WINDOW - 1 + GRACE <= wmin1. */
  in->phase1_close = (wmin1 - CP_GRACE_MS + 1 - in->w0) / CP_WINDOW_MS;
  /* Late records fall in windows that closed at least two windows before the last one phase 1
   * closes: whatever the order of the downstream tasks, theirs had closed. */
  int64_t late_max = in->w0 + (in->phase1_close - 3) * CP_WINDOW_MS - 1;
  if (in->phase1_close < 5 || in->phase1 >= in->per_part)
    return -1;
  for (int part = 0; part < p->partitions; part++) {
    for (int64_t i = in->phase1; i < in->per_part; i++) {
      ci_rec_t *rec = &in->recs[(int64_t)part * (in->per_part + 1) + i];
      rec->key = (int32_t)rng_range(&r, 0, p->keys - 1);
      rec->late = rng_range(&r, 0, 999) < p->late_permille;
      rec->ts = rec->late ? rng_range(&r, ts0, late_max)
                          : ts0 + i * CI_STEP_MS - rng_range(&r, 0, CI_JITTER_MS);
    }
    ci_rec_t *end = &in->recs[(int64_t)part * (in->per_part + 1) + in->per_part];
    end->key = p->keys;
    end->ts = ts0 + (in->per_part + 10) * CI_STEP_MS + 10 * CP_WINDOW_MS;
  }
  for (int part = 0; part < p->partitions; part++)
    for (int64_t i = 0; i <= in->per_part; i++) {
      const ci_rec_t *rec = ci_rec(in, part, i);
      in->count[rec->key]++;
      in->late += rec->late;
      if (rec->late)
        in->late_win[rec->key * in->n_windows + window_of(in, rec->ts)]++;
      if (i == in->per_part || rec->late)
        continue;
      int32_t *w = &in->win[rec->key * in->n_windows + window_of(in, rec->ts)];
      in->ref_windows += *w == 0;
      (*w)++;
    }
  return 0;
}

void ci_free(ci_input_t *in) {
  free(in->recs);
  free(in->count);
  free(in->win);
  free(in->late_win);
  memset(in, 0, sizeof(*in));
}

size_t ci_key_text(const ci_input_t *in, int32_t k, char *out, size_t cap) {
  int n = k == in->p.keys ? snprintf(out, cap, "end") : snprintf(out, cap, "k%d", (int)k);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int32_t ci_key_index(const ci_input_t *in, const void *key, size_t len) {
  const char *c = key;
  if (len == 3 && memcmp(c, "end", 3) == 0)
    return in->p.keys;
  if (len < 2 || len > 10 || c[0] != 'k')
    return -1;
  int64_t k = 0;
  for (size_t i = 1; i < len; i++) {
    if (c[i] < '0' || c[i] > '9')
      return -1;
    k = k * 10 + (c[i] - '0');
  }
  return k < in->p.keys ? (int32_t)k : -1;
}

typedef struct acks {
  int64_t ok, failed;
} acks_t;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  acks_t *a = opaque;
  if (m->err)
    a->failed++;
  else
    a->ok++;
}

/* Sends partition-interleaved records [at, until) of the pace's order: record k is index
 * from + k / partitions of partition k % partitions. */
static int feed_send(ci_feeder_t *f, rd_kafka_t *pr, int64_t at, int64_t until) {
  const ci_input_t *in = f->in;
  int parts = in->p.partitions;
  for (int64_t k = at; k < until; k++) {
    int part = (int)(k % parts);
    int64_t i = f->from + k / parts;
    const ci_rec_t *rec = ci_rec(in, part, i);
    char key[32], val[16];
    int kl = snprintf(key, sizeof(key), "p%d-%lld", part, (long long)i);
    size_t vl = ci_key_text(in, rec->key, val, sizeof(val));
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(pr, RD_KAFKA_V_TOPIC(f->topic), RD_KAFKA_V_PARTITION(part),
                                    RD_KAFKA_V_KEY(key, (size_t)kl), RD_KAFKA_V_VALUE(val, vl),
                                    RD_KAFKA_V_TIMESTAMP(rec->ts),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(pr, 10);
    if (err) {
      snprintf(f->error, sizeof(f->error), "produce: %s", rd_kafka_err2str(err));
      return -1;
    }
  }
  rd_kafka_poll(pr, 0);
  return 0;
}

static void *feed(void *arg) {
  ci_feeder_t *f = arg;
  acks_t a = {0, 0};
  char err[200];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", f->bootstrap, err, sizeof(err));
  rd_kafka_conf_set(c, "log_level", "0", err, sizeof(err));
  rd_kafka_conf_set(c, "linger.ms", "20", err, sizeof(err));
  rd_kafka_conf_set(c, "enable.idempotence", "true", err, sizeof(err));
  rd_kafka_conf_set_dr_msg_cb(c, on_dr);
  rd_kafka_conf_set_opaque(c, &a);
  rd_kafka_t *pr = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
  if (!pr) {
    snprintf(f->error, sizeof(f->error), "producer: %s", err);
    atomic_store(&f->done, 1);
    return NULL;
  }
  int64_t total = (f->to - f->from) * f->in->p.partitions, sent = 0;
  long long start = kh_now_ms();
  while (sent < total && !f->error[0]) {
    long long elapsed = kh_now_ms() - start;
    int64_t due = elapsed >= f->duration_ms ? total : total * elapsed / f->duration_ms;
    if (due > sent && feed_send(f, pr, sent, due) == 0)
      sent = due;
    rd_kafka_poll(pr, 50);
  }
  long long deadline = kh_now_ms() + 120000;
  while (a.ok + a.failed < sent && kh_now_ms() < deadline)
    rd_kafka_poll(pr, 50);
  if (!f->error[0] && a.ok != total)
    snprintf(f->error, sizeof(f->error), "%lld of %lld records acknowledged, %lld failed",
             (long long)a.ok, (long long)total, (long long)a.failed);
  rd_kafka_destroy(pr);
  atomic_store(&f->done, 1);
  return NULL;
}

void ci_feed_start(ci_feeder_t *f) {
  f->error[0] = '\0';
  atomic_store(&f->done, 0);
  assert_int_equal(pthread_create(&f->thread, NULL, feed, f), 0);
}

int ci_feed_join(ci_feeder_t *f) {
  pthread_join(f->thread, NULL);
  return f->error[0] ? -1 : 0;
}

void ci_produce(const ci_input_t *in, const char *bootstrap, const char *topic, int64_t from,
                int64_t to) {
  ci_feeder_t f = {
      .in = in, .bootstrap = bootstrap, .topic = topic, .from = from, .to = to, .duration_ms = 0};
  ci_feed_start(&f); /* no pace: everything at once */
  if (ci_feed_join(&f) != 0)
    fail_msg("input [%lld, %lld): %s", (long long)from, (long long)to, f.error);
}
