/* The crash-loop harness's output check. See crash_check.h. */
#include "crash_loop/crash_check.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <brook/brook.h>
#include <cmocka.h>

#include "crash_loop/crash_pipeline.h"
#include "kafka_helpers.h"

void cc_init(cc_check_t *c, const ci_input_t *in, const char *bootstrap) {
  memset(c, 0, sizeof(*c));
  c->in = in;
  int keys = in->p.keys + 1;
  c->offset = calloc((size_t)keys + 1, sizeof(int64_t));
  c->max = calloc((size_t)keys, sizeof(int64_t));
  assert_non_null(c->offset);
  assert_non_null(c->max);
  for (int k = 0; k < keys; k++)
    c->offset[k + 1] = c->offset[k] + in->count[k];
  size_t nw = (size_t)(in->p.keys * in->n_windows);
  c->hits = calloc((size_t)c->offset[keys] + 1, sizeof(uint16_t));
  c->last = malloc(nw * sizeof(int32_t));
  c->emits = calloc(nw, sizeof(uint16_t));
  c->changed = calloc(nw, 1);
  assert_true(c->hits && c->last && c->emits && c->changed);
  for (size_t i = 0; i < nw; i++)
    c->last[i] = -1;
  c->reader = kh_client(
      RD_KAFKA_CONSUMER, bootstrap,
      (const char *const[]){"group.id", "crash_check", "enable.auto.commit", "false", NULL}, NULL,
      NULL);
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(2 * in->p.partitions);
  for (int p = 0; p < in->p.partitions; p++) {
    rd_kafka_topic_partition_list_add(tp, CP_TOPIC_COUNTS, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(tp, CP_TOPIC_WINDOWS, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  assert_int_equal(rd_kafka_assign(c->reader, tp), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(tp);
}

void cc_free(cc_check_t *c) {
  if (c->reader) {
    rd_kafka_consumer_close(c->reader);
    rd_kafka_destroy(c->reader);
  }
  free(c->offset);
  free(c->max);
  free(c->hits);
  free(c->last);
  free(c->emits);
  free(c->changed);
  memset(c, 0, sizeof(*c));
}

static void on_count(cc_check_t *c, int32_t k, const rd_kafka_message_t *m) {
  int64_t v;
  if (m->len != sizeof(v)) {
    c->bad++;
    return;
  }
  memcpy(&v, m->payload, sizeof(v));
  c->count_outputs++;
  if (v > c->max[k])
    c->max[k] = v;
  if (v < 1 || v > c->in->count[k]) {
    c->over++;
    return;
  }
  uint16_t *h = &c->hits[c->offset[k] + v - 1];
  if (*h < UINT16_MAX)
    (*h)++;
}

static void on_window(cc_check_t *c, int32_t k, const rd_kafka_message_t *m) {
  brook_record_t rec;
  memset(&rec, 0, sizeof(rec));
  rec.value = m->payload;
  rec.value_len = m->len;
  brook_window_value_t wv;
  const void *res = NULL;
  int64_t v;
  if (brook_window_parse(&rec, &wv, &res) != BROOK_OK || wv.result_len != sizeof(v)) {
    c->bad++;
    return;
  }
  memcpy(&v, res, sizeof(v));
  c->window_outputs++;
  int64_t w = (wv.start - c->in->w0) / CP_WINDOW_MS;
  if (k == c->in->p.keys || wv.start < c->in->w0 || w >= c->in->n_windows ||
      wv.end - wv.start != CP_WINDOW_MS || (wv.start - c->in->w0) % CP_WINDOW_MS != 0) {
    c->extra_windows++; /* no data window: the "end" key's, or a misaligned one */
    return;
  }
  size_t i = (size_t)(k * c->in->n_windows + w);
  if (c->emits[i] && c->last[i] != v)
    c->changed[i] = 1;
  if (!c->emits[i] && c->in->win[i] && w < c->in->phase1_close)
    c->phase1_present++;
  if (c->emits[i] < UINT16_MAX)
    c->emits[i]++;
  c->last[i] = (int32_t)v;
}

static void on_message(cc_check_t *c, const rd_kafka_message_t *m) {
  int32_t k = ci_key_index(c->in, m->key, m->key_len);
  if (k < 0) {
    c->bad++;
    return;
  }
  if (strcmp(rd_kafka_topic_name(m->rkt), CP_TOPIC_COUNTS) == 0)
    on_count(c, k, m);
  else
    on_window(c, k, m);
}

int64_t cc_poll(cc_check_t *c, int timeout_ms, int idle_ms) {
  int64_t got = 0;
  long long now = kh_now_ms(), deadline = now + timeout_ms, last = now;
  while ((now = kh_now_ms()) < deadline && now - last < idle_ms) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->reader, 10);
    if (!m)
      continue;
    if (!m->err) {
      on_message(c, m);
      got++;
      last = kh_now_ms();
    }
    rd_kafka_message_destroy(m);
  }
  return got;
}

int64_t cc_phase1_windows(const ci_input_t *in) {
  int64_t n = 0;
  for (int64_t k = 0; k < in->p.keys; k++)
    for (int64_t w = 0; w < in->phase1_close; w++)
      n += in->win[k * in->n_windows + w] != 0;
  return n;
}

int cc_phase1_closed(const cc_check_t *c) { return c->phase1_present >= cc_phase1_windows(c->in); }

int cc_complete(const cc_check_t *c) {
  for (int k = 0; k <= c->in->p.keys; k++)
    if (c->max[k] < c->in->count[k])
      return 0;
  size_t nw = (size_t)(c->in->p.keys * c->in->n_windows);
  for (size_t i = 0; i < nw; i++)
    if (c->in->win[i] && !c->emits[i])
      return 0;
  return 1;
}

void cc_summarize(const cc_check_t *c, cc_summary_t *s) {
  memset(s, 0, sizeof(*s));
  const ci_input_t *in = c->in;
  s->count_outputs = c->count_outputs;
  s->count_over = c->over;
  for (int k = 0; k <= in->p.keys; k++) {
    s->count_keys_wrong += c->max[k] != in->count[k];
    s->count_keys_below += c->max[k] < in->count[k];
    s->count_excess += c->max[k] > in->count[k] ? c->max[k] - in->count[k] : 0;
    for (int64_t v = 1; v <= in->count[k]; v++) {
      uint16_t h = c->hits[c->offset[k] + v - 1];
      s->count_missing += h == 0;
      s->count_duplicates += h > 1 ? h - 1 : 0;
    }
  }
  s->window_outputs = c->window_outputs;
  s->windows_unexpected = c->extra_windows;
  size_t nw = (size_t)(in->p.keys * in->n_windows);
  for (size_t i = 0; i < nw; i++) {
    if (!c->emits[i]) {
      s->windows_missing += in->win[i] != 0;
      continue;
    }
    if (!in->win[i]) {
      s->windows_unexpected++;
      s->windows_unexpected_late += in->late_win[i] > 0;
      continue;
    }
    s->windows_wrong += c->last[i] != in->win[i];
    s->windows_above += c->last[i] > in->win[i];
    s->windows_changed += c->changed[i];
    if (c->changed[i] && c->last[i] < in->win[i]) {
      s->windows_reopened++;
      s->windows_reopened_late += in->late_win[i] > 0;
    }
    s->windows_duplicates += c->emits[i] - 1;
  }
  s->bad_records = c->bad;
}

int cc_exact(const cc_summary_t *s) {
  return s->count_keys_wrong == 0 && s->count_over == 0 && s->count_missing == 0 &&
         s->windows_missing == 0 && s->windows_wrong == 0 && s->windows_unexpected == 0 &&
         s->bad_records == 0;
}

void cc_print(const cc_check_t *c, const cc_summary_t *s, FILE *out, int max_detail) {
  const ci_input_t *in = c->in;
  fprintf(
      out,
      "counts: %lld outputs for %d keys: %lld keys wrong (final counts %lld above the reference "
      "in all), %lld count outputs past the reference, "
      "%lld counts missing, %lld duplicates\n"
      "windows: %lld outputs for %lld reference windows: %lld missing, %lld wrong (%lld above), "
      "%lld unexpected (%lld with late input), %lld changed (%lld reopened after they closed, "
      "%lld of them with late input), %lld duplicates; %lld foreign records\n",
      (long long)s->count_outputs, in->p.keys + 1, (long long)s->count_keys_wrong,
      (long long)s->count_excess, (long long)s->count_over, (long long)s->count_missing,
      (long long)s->count_duplicates, (long long)s->window_outputs, (long long)in->ref_windows,
      (long long)s->windows_missing, (long long)s->windows_wrong, (long long)s->windows_above,
      (long long)s->windows_unexpected, (long long)s->windows_unexpected_late,
      (long long)s->windows_changed, (long long)s->windows_reopened,
      (long long)s->windows_reopened_late, (long long)s->windows_duplicates,
      (long long)s->bad_records);
  int shown = 0;
  char key[16];
  for (int k = 0; k <= in->p.keys && shown < max_detail; k++)
    if (c->max[k] != in->count[k]) {
      ci_key_text(in, k, key, sizeof(key));
      fprintf(out, "  key %s: final count %lld, reference %lld\n", key, (long long)c->max[k],
              (long long)in->count[k]);
      shown++;
    }
  size_t nw = (size_t)(in->p.keys * in->n_windows);
  for (size_t i = 0; i < nw && shown < 2 * max_detail; i++)
    if ((c->emits[i] || in->win[i]) && c->last[i] != in->win[i]) {
      ci_key_text(in, (int32_t)(i / (size_t)in->n_windows), key, sizeof(key));
      int64_t start = in->w0 + (int64_t)(i % (size_t)in->n_windows) * CP_WINDOW_MS;
      fprintf(out,
              "  window %s [%lld, +%d): last result %d (%u results), reference %d, %d late "
              "records in the input\n",
              key, (long long)start, CP_WINDOW_MS, c->emits[i] ? c->last[i] : 0, c->emits[i],
              in->win[i], in->late_win[i]);
      shown++;
    }
}
