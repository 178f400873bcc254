/* Commits with Kafka (runtime/commit.c, kafka_commit.c), on the embedded broker:
 *  - with every broker response delayed (rd_kafka_mock_broker_set_rtt), the group's committed
 *    offsets, sampled by a separate client while the pipeline runs, never pass what the sink
 *    has acknowledged: every input below a sampled committed offset already has its output
 *    in the output topic, below that topic's high watermark sampled just after it;
 *    The same with an operator that holds its records until flush(): a commit flushes
 *    before it takes its commit point;
 *  - each task's operator flushes once per commit and its store reports once per commit that
 *    followed updates (support/flush_counter.h);
 *  - the Kafka source's own commit_interval_ms is deprecated: still accepted, ignored, with a
 *    logged warning;
 *  - sinks share one producer per runtime when their effective configurations are identical,
 *    and get their own otherwise; each gets its own deliveries.
 * Every wait has a deadline. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <librdkafka/rdkafka.h>

#include "kafka/kafka_producer.h" /* bk_kprod_clients: how many librdkafka producers exist */
#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/collect.h"
#include "support/flush_counter.h"
#include "support/kafka_helpers.h"
#include "support/kafka_numbered.h"
#include "support/kafka_sink_fixture.h"
#include "support/log_capture.h"
#include "support/wait.h"

#define PER_PART 1500
#define N_PARTS 2
#define MAX_SAMPLES 4096

/* Produces "<partition>:<i>" for i < PER_PART to each partition of "in", in bursts of 50
 * that each wait for their acknowledgement: with the broker's delay the input keeps coming
 * for several seconds, so the samples see commits while outputs are in flight. */
static void *produce_numbered(void *bootstrap) {
  kn_produce(bootstrap, "in", N_PARTS, 0, PER_PART, 50);
  return NULL;
}

typedef struct sample {
  int64_t committed[N_PARTS];
  int64_t out_high; /* the output topic's high watermark, read after the committed offsets */
} sample_t;

/* Where each input's first output landed in "out" (-1: nowhere). */
typedef struct landed {
  int64_t at[N_PARTS][PER_PART];
  long n;
} landed_t;

static void on_output(const rd_kafka_message_t *m, void *opaque) {
  landed_t *l = opaque;
  int part, i;
  char tag;
  kn_parse(m, N_PARTS, PER_PART, &tag, &part, &i);
  if (l->at[part][i] < 0 || m->offset < l->at[part][i])
    l->at[part][i] = m->offset;
  l->n++;
}

/* `buffer`: the operator holds its records until its flush() (output exists only once a
 * commit flushed it, so a commit must flush before it takes its point). */
static void committed_never_passes_acknowledged(int buffer) {
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:2", "out:1", NULL}, NULL), 0);
  assert_int_equal(broker_cmd(&b, "rtt 1 150"), 0); /* every response 150 ms late */

  flush_counter_t fc;
  flush_counter_init(&fc);
  fc.buffer = buffer;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = b.bootstrap;
  so.group_id = "g-commit";
  static const brook_kafka_partition_t parts[] = {{"in", 0, BROOK_KAFKA_OFFSET_BEGINNING},
                                                  {"in", 1, BROOK_KAFKA_OFFSET_BEGINNING}};
  so.partitions = parts;
  so.n_partitions = N_PARTS;
  brook_stream_t *s = brook_apply(brook_source_kafka(t, "in", &so), &flush_counter_op, &fc);
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = b.bootstrap;
  ko.topic = "out";
  /* The sink holds its records 300 ms before sending them: outputs reach the log well after
   * their inputs were processed (a commit that did not wait for them would pass them). */
  ko.properties = (const char *const[]){"linger.ms", "300", NULL};
  assert_int_equal(brook_sink_kafka(s, "out", &ko), BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100;
  ro.batch_size = 100;
  bg_run_t r;
  assert_int_equal(brook_runtime_new(&r.rt, t, &ro), BROOK_OK);
  assert_int_equal(pthread_create(&r.thread, NULL, bg_run_thread, &r), 0);
  pthread_t producer;
  assert_int_equal(pthread_create(&producer, NULL, produce_numbered, b.bootstrap), 0);

  /* Sample while it runs: committed offsets first, then the output's high watermark. */
  rd_kafka_t *q = kh_client(RD_KAFKA_CONSUMER, b.bootstrap,
                            (const char *const[]){"group.id", "g-commit", NULL}, NULL, NULL);
  static sample_t samples[MAX_SAMPLES];
  size_t n_samples = 0, mid_run = 0;
  long long deadline = kh_now_ms() + 90000;
  for (;;) {
    sample_t sm;
    kn_sample(q, "in", N_PARTS, "out", sm.committed, &sm.out_high);
    if (n_samples < MAX_SAMPLES)
      samples[n_samples++] = sm;
    int done = 1, mid = 0;
    for (int p = 0; p < N_PARTS; p++) {
      done &= sm.committed[p] == PER_PART;
      mid |= sm.committed[p] > 0 && sm.committed[p] < PER_PART;
    }
    mid_run += mid;
    if (done || kh_now_ms() > deadline)
      break;
  }
  rd_kafka_destroy(q);
  pthread_join(producer, NULL);
  brook_err_t result = bg_stop(&r);
  if (result != BROOK_OK)
    fail_msg("the run failed: %s", brook_runtime_last_error(r.rt));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  assert_int_equal(broker_cmd(&b, "rtt 1 0"), 0);

  printf("  %zu samples (%zu mid-run), %llu commits\n", n_samples, mid_run,
         (unsigned long long)st.commits);
  assert_true(mid_run >= 1); /* it sampled commits while records were in flight */
  landed_t *out = malloc(sizeof(*out));
  assert_non_null(out);
  memset(out->at, 0xff, sizeof(out->at)); /* -1 */
  out->n = 0;
  rd_kafka_t *rd = kh_reader(b.bootstrap, "out", 1);
  long got = kh_read(rd, N_PARTS * PER_PART, KH_TIMEOUT_MS, on_output, out);
  kh_reader_close(rd);
  assert_int_equal(got, N_PARTS * PER_PART);
  for (size_t k = 0; k < n_samples; k++)
    for (int p = 0; p < N_PARTS; p++)
      for (int64_t i = 0; i < samples[k].committed[p]; i++)
        if (out->at[p][i] < 0 || out->at[p][i] >= samples[k].out_high)
          fail_msg("sample %zu: input %d:%lld committed (offset %lld) before its output was "
                   "acknowledged (output at %lld, high watermark %lld)",
                   k, p, (long long)i, (long long)samples[k].committed[p], (long long)out->at[p][i],
                   (long long)samples[k].out_high);
  for (int p = 0; p < N_PARTS; p++)
    assert_int_equal(samples[n_samples - 1].committed[p], PER_PART);
  free(out);

  /* One instance per partition's task; each flushed once per commit (they were open from
   * the start, explicitly assigned, to the end) and its store reported once per commit that
   * followed updates. */
  assert_int_equal(fc.n_closed, N_PARTS);
  assert_true(st.commits >= 3);
  for (int i = 0; i < fc.n_closed; i++) {
    assert_int_equal(fc.closed[i].records, PER_PART);
    assert_int_equal(fc.closed[i].flushes, (long)st.commits);
    assert_int_equal(fc.closed[i].listener_calls, fc.closed[i].dirty_flushes);
    assert_true(fc.closed[i].dirty_flushes >= 1);
  }
  flush_counter_destroy(&fc);
  assert_int_equal(broker_stop(&b), 0);
}

static void test_committed_never_passes_acknowledged(void **state) {
  (void)state;
  committed_never_passes_acknowledged(0);
}

static void test_buffering_operator_flushed_before_commit(void **state) {
  (void)state;
  committed_never_passes_acknowledged(1);
}

/* ---- the deprecated option ---- */

static void test_source_commit_interval_deprecated(void **state) {
  (void)state;
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  assert_int_equal(so.commit_interval_ms, 0); /* not set */
  so.bootstrap_servers = "127.0.0.1:1";
  so.group_id = "g";
  so.topics = (const char *const[]){"in", NULL};
  so.commit_interval_ms = 250; /* still accepted */
  brook_stream_t *s = brook_source_kafka(t, "legacy", &so);
  assert_non_null(s);
  assert_int_equal(brook_sink_callback(s, collect_sink_fn, NULL, NULL), BROOK_OK);
  log_capture_t log;
  log_capture_init(&log);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.log = log_capture_cb;
  ro.log_opaque = &log;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  const char *text = log_capture_text(&log);
  assert_non_null(strstr(text, "Kafka source 'legacy'"));
  assert_non_null(strstr(text, "commit_interval_ms (250) is deprecated and ignored"));
  brook_runtime_free(rt);
  brook_topology_free(t);
  log_capture_free(&log);

  /* Left at its default (0): no warning. */
  t = collect_topology(BROOK_ON_ERROR_FAIL);
  so.commit_interval_ms = 0;
  assert_int_equal(
      brook_sink_callback(brook_source_kafka(t, "quiet", &so), collect_sink_fn, NULL, NULL),
      BROOK_OK);
  log_capture_init(&log);
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  assert_null(strstr(log_capture_text(&log), "deprecated"));
  brook_runtime_free(rt);
  brook_topology_free(t);
  log_capture_free(&log);
}

/* ---- one producer per runtime ---- */

/* One record per call, values "1", "2", ... (bytes in the batch arena). */
static brook_err_t gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  int *i = opaque;
  char *v = brook_ctx_alloc(ctx, 16);
  if (!v)
    return BROOK_ERR_NOMEM;
  int len = snprintf(v, 16, "%d", ++*i);
  *out = (brook_record_t){.value = v, .value_len = (size_t)len};
  return BROOK_OK;
}

/* A sink to `topic` with the fixture's options, but `props` (NULL: none) as its properties. */
static brook_kafka_sink_opts_t sink_to(const char *bootstrap, const char *topic,
                                       const char *const *props) {
  brook_kafka_sink_opts_t o = sink_opts(bootstrap, topic);
  o.properties = props;
  return o;
}

/* Runs a generator of `n` records into sinks to "a" and "b" (b with `b_props`); returns how
 * many librdkafka producers the runtime used. */
static size_t producers_for(broker_proc_t *b, const char *const *b_props, int n) {
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  int i = 0;
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = (uint64_t)n;
  brook_stream_t *s = brook_source_generator(t, "gen", gen_fn, &i, &go);
  brook_kafka_sink_opts_t oa = sink_to(b->bootstrap, "a", NULL);
  brook_kafka_sink_opts_t ob = sink_to(b->bootstrap, "b", b_props);
  assert_int_equal(brook_sink_kafka(s, "to_a", &oa), BROOK_OK);
  assert_int_equal(brook_sink_kafka(s, "to_b", &ob), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, kh_rt_opts()), BROOK_OK);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK); /* sinks open here */
  size_t clients = bk_kprod_clients(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true(brook_runtime_done(rt));
  assert_int_equal(brook_runtime_status(rt), BROOK_OK);
  assert_int_equal(bk_kprod_clients(rt), 0); /* the last user closed it */
  brook_runtime_free(rt);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_topology_free(t);
  return clients;
}

static void test_one_producer_per_configuration(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"a:1", "b:1", NULL}, NULL), 0);
  /* The same configuration (the defaults written out make no difference): one client, and
   * each sink still gets every one of its records delivered. */
  assert_int_equal(producers_for(&b, (const char *const[]){"acks", "all", NULL}, 500), 1);
  /* A different one: two clients. */
  assert_int_equal(producers_for(&b, (const char *const[]){"linger.ms", "7", NULL}, 500), 2);
  rd_kafka_t *r = kh_reader(b.bootstrap, "a", 1);
  assert_int_equal(kh_read(r, 1000, KH_TIMEOUT_MS, NULL, NULL), 1000);
  kh_reader_close(r);
  r = kh_reader(b.bootstrap, "b", 1);
  assert_int_equal(kh_read(r, 1000, KH_TIMEOUT_MS, NULL, NULL), 1000);
  kh_reader_close(r);
  assert_int_equal(broker_stop(&b), 0);
}

/* Two sources' dead-letter outputs (the same properties) share one client; the sink's
 * producer differs from them (a dead-letter output sends one letter per batch). */
static void test_dead_letter_outputs_share(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(
      broker_start(&b, 1, (const char *const[]){"in1:1", "in2:1", "out:1", "dlq:1", NULL}, NULL),
      0);
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_stream_t *in[2];
  static const brook_kafka_partition_t p1[] = {{"in1", 0, BROOK_KAFKA_OFFSET_BEGINNING}};
  static const brook_kafka_partition_t p2[] = {{"in2", 0, BROOK_KAFKA_OFFSET_BEGINNING}};
  for (int i = 0; i < 2; i++) {
    brook_kafka_source_opts_t so;
    brook_kafka_source_opts_init(&so);
    so.bootstrap_servers = b.bootstrap;
    so.group_id = "g-dlq";
    so.partitions = i ? p2 : p1;
    so.n_partitions = 1;
    so.on_malformed = BROOK_KAFKA_MALFORMED_DEAD_LETTER;
    so.dead_letter_topic = "dlq";
    in[i] = brook_source_kafka(t, i ? "in2" : "in1", &so);
  }
  brook_stream_t *both = brook_merge(in, 2);
  brook_kafka_sink_opts_t ko = sink_to(b.bootstrap, "out", NULL);
  assert_int_equal(brook_sink_kafka(both, "out", &ko), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, kh_rt_opts()), BROOK_OK);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK); /* sinks and sources attach */
  assert_int_equal(bk_kprod_clients(rt), 2);
  brook_runtime_stop(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(brook_runtime_status(rt), BROOK_OK);
  assert_int_equal(bk_kprod_clients(rt), 0);
  brook_runtime_free(rt);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_topology_free(t);
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_committed_never_passes_acknowledged),
      cmocka_unit_test(test_buffering_operator_flushed_before_commit),
      cmocka_unit_test(test_source_commit_interval_deprecated),
      cmocka_unit_test(test_one_producer_per_configuration),
      cmocka_unit_test(test_dead_letter_outputs_share),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
