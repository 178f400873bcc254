/* The Kafka sink tests' shared fixture. See kafka_sink_fixture.h. */
#include "kafka_sink_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collect.h"
#include "run_deadline.h"

/* Bounds every delivery: a record nobody acknowledges fails the run instead of hanging it. */
static const char *const common_props[] = {"message.timeout.ms", "20000", "linger.ms", "5", NULL};

brook_runtime_t *new_runtime(brook_topology_t *t, log_capture_t *log, size_t batch_size) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (log) {
    o.log = log_capture_cb;
    o.log_opaque = log;
  }
  if (batch_size)
    o.batch_size = batch_size;
  brook_runtime_t *rt = NULL;
  brook_err_t err = brook_runtime_new(&rt, t, &o);
  if (err != BROOK_OK)
    fail_msg("brook_runtime_new: %s: %s", brook_errname(err), brook_topology_last_error(t));
  return rt;
}

brook_topology_t *new_topology(brook_error_policy_t policy) { return collect_topology(policy); }

brook_kafka_sink_opts_t sink_opts(const char *bootstrap, const char *topic) {
  brook_kafka_sink_opts_t o;
  brook_kafka_sink_opts_init(&o);
  o.bootstrap_servers = bootstrap;
  o.topic = topic;
  o.properties = common_props;
  return o;
}

brook_runtime_stats_t run_expect(brook_runtime_t *rt, brook_err_t expect, char *msg, size_t msg_len,
                                 uint64_t *elapsed_ms) {
  brook_err_t err = run_with_deadline(rt, WAIT_MS, elapsed_ms);
  if (err != expect)
    fail_msg("run returned %s, expected %s: %s", brook_errname(err), brook_errname(expect),
             brook_runtime_last_error(rt));
  if (msg)
    snprintf(msg, msg_len, "%s", brook_runtime_last_error(rt));
  brook_runtime_stats_t st;
  memset(&st, 0, sizeof(st));
  st.struct_size = sizeof(st);
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  brook_runtime_free(rt);
  return st;
}

void read_topic(const broker_proc_t *b, const char *topic, kr_topic_t *out) {
  char why[512];
  if (kr_read_topic(b->bootstrap, topic, WAIT_MS, out, why, sizeof(why)) != 0)
    fail_msg("reading back '%s': %s (%zu messages read)", topic, why, out->n);
}

void start_broker(broker_proc_t *b, int n, const char *const *topics) {
  assert_int_equal(broker_start(b, n, topics, NULL), 0);
}

int value_index(const char *v, size_t len) {
  if (!v || len < 7 || len > 20 || memcmp(v, "value-", 6) != 0)
    return -1;
  char *end;
  long i = strtol(v + 6, &end, 10);
  return end == v + len && i >= 0 ? (int)i : -1;
}

void expect_exactly_once(broker_proc_t *b, const char *topic, int n) {
  kr_topic_t kt;
  read_topic(b, topic, &kt);
  unsigned char *seen = calloc((size_t)n, 1);
  assert_non_null(seen);
  int dups = 0, distinct = 0;
  for (size_t j = 0; j < kt.n; j++) {
    int i = value_index(kt.msgs[j].value, kt.msgs[j].value_len);
    assert_true(i >= 0 && i < n);
    if (seen[i])
      dups++;
    else
      distinct++;
    seen[i] = 1;
  }
  if (dups || distinct != n)
    fail_msg("'%s': %d distinct of %d records, %d duplicates (%zu messages)", topic, distinct, n,
             dups, kt.n);
  free(seen);
  kr_topic_free(&kt);
}

char *ctx_strf(brook_ctx_t *ctx, size_t *len, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  char *p = brook_ctx_alloc(ctx, (size_t)n + 1);
  if (p)
    memcpy(p, tmp, (size_t)n + 1);
  *len = (size_t)n;
  return p;
}

brook_err_t gen_plain(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  counter_gen_t *g = opaque;
  if (g->next >= g->n)
    return BROOK_DONE;
  int i = g->next++;
  out->key = ctx_strf(ctx, &out->key_len, "k%d", i);
  out->value = ctx_strf(ctx, &out->value_len, "value-%d", i);
  out->timestamp = TS_BASE + i;
  return BROOK_OK;
}

brook_err_t run_with_props(const char *const *props, int n_records, log_capture_t *log, char *msg,
                           size_t msg_len) {
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {n_records, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts("127.0.0.1:9", "t");
  o.properties = props;
  brook_err_t err = brook_sink_kafka(s, "secretive", &o);
  if (err != BROOK_OK) {
    snprintf(msg, msg_len, "%s", brook_topology_last_error(t));
    brook_topology_free(t);
    return err;
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.log = log_capture_cb;
  ro.log_opaque = log;
  brook_runtime_t *rt = NULL;
  err = brook_runtime_new(&rt, t, &ro);
  if (err != BROOK_OK) {
    snprintf(msg, msg_len, "%s", brook_topology_last_error(t));
    brook_topology_free(t);
    return err;
  }
  err = run_with_deadline(rt, WAIT_MS, NULL);
  snprintf(msg, msg_len, "%s", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err;
}
