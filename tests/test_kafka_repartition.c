/* Repartition topics (kafka/repartition.h): a key change after a Kafka source goes through the
 * internal topic "<group>-<node>-repartition", read back in the same consumer group by tasks
 * of its own, so several instances (runtimes, workers) compute re-keyed state correctly.
 *
 * - Two runtimes in one group count words that appear in every input partition: each word's
 *   final count is the total (before repartition topics each instance counted its own
 *   partitions' records only).
 * - One runtime of 2 workers does the same (it used to be refused).
 * - A tumbling window with grace after the repartition emits exactly the windows and values
 *   of the input (a brute-force reference), also with an idle input partition: each upstream
 *   task writes its watermark into every partition, an idle one says so, and a downstream
 *   task holds the minimum over the upstream tasks that are not idle.
 * - Watermark records never reach operators or sinks (yet they are in the topic).
 * - A repartition topic that cannot be created is a clear error naming it.
 * The embedded broker cannot create topics: the tests pre-create the repartition topics. */
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

#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

#define N_PARTS 4
#define N_WORDS 6
#define PER_PART 30 /* records per input partition */
#define TS0 100000
#define STEP 100
#define WIN_MS 1000
#define GRACE_MS 500
#define N_WIN 8
/* The tasks of a settled group: the input's and the repartition topic's (built against a
 * version without repartition topics, -DEXPECT_TASKS=4 shows the old behaviour). */
#ifndef EXPECT_TASKS
#define EXPECT_TASKS (2 * N_PARTS)
#endif

static broker_proc_t broker;

static int word_of(int p, int i) { return (i + p) % N_WORDS; }

/* Input partition p, record i: key "p<p>-<i>" (not the word: the count needs a key change),
 * value "w<word>", event time TS0 + i * STEP, shuffled by up to 3 steps (within the grace). */
static int64_t ts_of(int i) { return TS0 + (int64_t)(i ^ 3) * STEP; }

static void produce_words(const char *topic, int skip_part) {
  rd_kafka_t *rk = kh_client(RD_KAFKA_PRODUCER, broker.bootstrap, NULL, NULL, NULL);
  for (int p = 0; p < N_PARTS; p++) {
    if (p == skip_part)
      continue;
    for (int i = 0; i < PER_PART; i++) {
      char key[32], val[16];
      snprintf(key, sizeof(key), "p%d-%d", p, i);
      snprintf(val, sizeof(val), "w%d", word_of(p, i));
      assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                                         RD_KAFKA_V_KEY(key, strlen(key)),
                                         RD_KAFKA_V_VALUE(val, strlen(val)),
                                         RD_KAFKA_V_TIMESTAMP(ts_of(i)),
                                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                       RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    /* An "end" record far ahead: the partition's watermark passes every data window. */
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                                       RD_KAFKA_V_KEY("end", 3), RD_KAFKA_V_VALUE("end", 3),
                                       RD_KAFKA_V_TIMESTAMP(TS0 + 100 * WIN_MS),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  assert_int_equal(rd_kafka_flush(rk, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

/* ---- what the runs saw (callbacks on the workers' threads) ---- */

typedef struct seen {
  uv_mutex_t mu;
  int64_t count[N_WORDS];      /* largest count emitted per word */
  int64_t win[N_WORDS][N_WIN]; /* window results per word */
  int dup;                     /* a window reported twice, or a record that is not ours */
  int64_t records;             /* records that reached the plain sink */
  int64_t with_brook_header;   /* ... carrying a brook.repartition.* header */
  int running[2];              /* RUNNING tasks per runtime */
  wait_counter_t results;
} seen_t;

static seen_t seen;

typedef struct inst {
  seen_t *s;
  int which;
} inst_t;

static void on_task(int32_t task, int old_state, int new_state, const char *reason, void *opaque) {
  (void)task, (void)reason;
  inst_t *in = opaque;
  uv_mutex_lock(&in->s->mu);
  in->s->running[in->which] +=
      (new_state == BROOK_TASK_RUNNING) - (old_state == BROOK_TASK_RUNNING);
  uv_mutex_unlock(&in->s->mu);
}

static int word_index(const brook_record_t *rec) {
  int w = -1;
  char k[16] = {0};
  memcpy(k, rec->key, rec->key_len < sizeof(k) - 1 ? rec->key_len : sizeof(k) - 1);
  return sscanf(k, "w%d", &w) == 1 && w >= 0 && w < N_WORDS ? w : -1;
}

static brook_err_t on_count(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  int64_t c;
  if (rec->value_len != sizeof(c))
    return BROOK_ERR_USER;
  memcpy(&c, rec->value, sizeof(c));
  int w = word_index(rec);
  uv_mutex_lock(&s->mu);
  if (w < 0)
    s->dup += rec->key_len != 3 || memcmp(rec->key, "end", 3) != 0;
  else if (c > s->count[w])
    s->count[w] = c;
  uv_mutex_unlock(&s->mu);
  wait_counter_add(&s->results, 1);
  return BROOK_OK;
}

static brook_err_t on_window(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  brook_window_value_t wv;
  const void *res = NULL;
  if (brook_window_parse(rec, &wv, &res) != BROOK_OK || wv.result_len != sizeof(int64_t))
    return BROOK_ERR_USER;
  int64_t c;
  memcpy(&c, res, sizeof(c));
  int w = word_index(rec), k = (int)((wv.start - TS0) / WIN_MS);
  uv_mutex_lock(&s->mu);
  if (w < 0 || k < 0 || k >= N_WIN || s->win[w][k])
    s->dup++;
  else
    s->win[w][k] = c;
  uv_mutex_unlock(&s->mu);
  wait_counter_add(&s->results, 1);
  return BROOK_OK;
}

static brook_err_t on_record(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  uv_mutex_lock(&s->mu);
  s->records++;
  for (size_t h = 0; h < rec->header_count; h++)
    s->with_brook_header += strncmp(rec->headers[h].name, "brook.repartition", 17) == 0;
  uv_mutex_unlock(&s->mu);
  wait_counter_add(&s->results, 1);
  return BROOK_OK;
}

static void seen_init(seen_t *s) {
  memset(s, 0, sizeof(*s));
  uv_mutex_init(&s->mu);
  wait_counter_init(&s->results, 0);
}

static void seen_destroy(seen_t *s) {
  uv_mutex_destroy(&s->mu);
  wait_counter_destroy(&s->results);
}

/* ---- pipelines ---- */

static brook_err_t word_key(const brook_record_t *rec, const void **key, size_t *key_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value;
  *key_len = rec->value_len;
  return BROOK_OK;
}

enum { COUNT, WINDOW, PLAIN };

static brook_topology_t *pipeline(const char *group, const char *topic, int what,
                                  int64_t startup_ms, int64_t idle_ms) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = broker.bootstrap;
  so.group_id = group;
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  if (startup_ms)
    so.startup_timeout_ms = startup_ms;
  const char *topics[] = {topic, NULL};
  so.topics = topics;
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  assert_non_null(in);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.idle_timeout = idle_ms; /* an input partition without records stops holding time back */
  assert_int_equal(brook_source_set_watermark(in, &wo), BROOK_OK);
  brook_stream_t *words = brook_key_by(in, word_key, NULL);
  assert_non_null(brook_stream_set_name(words, "by_word"));
  if (what == COUNT) {
    assert_int_equal(brook_sink_callback(brook_count(words, NULL), on_count, NULL, &seen),
                     BROOK_OK);
  } else if (what == WINDOW) {
    brook_aggregator_t count = brook_agg_count();
    brook_window_t win = brook_window_tumbling(WIN_MS);
    brook_window_opts_t wopts;
    brook_window_opts_init(&wopts);
    wopts.grace = GRACE_MS;
    brook_stream_t *w = brook_window_aggregate(words, &win, &count, &wopts);
    assert_int_equal(brook_sink_callback(w, on_window, NULL, &seen), BROOK_OK);
  } else {
    assert_int_equal(brook_sink_callback(words, on_record, NULL, &seen), BROOK_OK);
  }
  if (brook_topology_validate(t) != BROOK_OK)
    fail_msg("topology: %s", brook_topology_last_error(t));
  return t;
}

static void start(bg_run_t *r, brook_topology_t *t, int workers, inst_t *in) {
  brook_runtime_opts_t o = *kh_rt_opts();
  o.num_workers = (size_t)workers;
  o.on_task_state = on_task;
  o.on_task_state_opaque = in;
  bg_start_opts(r, t, &o);
}

typedef struct settle {
  int runtimes, tasks;
} settle_t;

/* Every task RUNNING, on every runtime: the group's assignment is complete. */
static int settled(void *p) {
  const settle_t *st = p;
  uv_mutex_lock(&seen.mu);
  int total = 0, each = 1;
  for (int r = 0; r < st->runtimes; r++) {
    total += seen.running[r];
    each &= seen.running[r] > 0;
  }
  uv_mutex_unlock(&seen.mu);
  return total == st->tasks && each;
}

static int counts_done(void *p) {
  (void)p;
  uv_mutex_lock(&seen.mu);
  int done = 1;
  for (int w = 0; w < N_WORDS; w++)
    done &= seen.count[w] == (int64_t)N_PARTS * PER_PART / N_WORDS;
  uv_mutex_unlock(&seen.mu);
  return done;
}

static void topics_for(const char *group, const char *topic) {
  assert_int_equal(broker_cmd(&broker, "topic %s %d", topic, N_PARTS), 0);
  assert_int_equal(broker_cmd(&broker, "topic %s-by_word-repartition %d", group, N_PARTS), 0);
}

/* Counts per word over 2 instances (2 runtimes of `workers` each, or 1 runtime of 2 workers
 * when `runtimes` is 1): the final count of every word is its total over all partitions. */
static void count_words(int runtimes, int workers, const char *group, const char *topic) {
  topics_for(group, topic);
  seen_init(&seen);
  brook_topology_t *t[2] = {NULL, NULL};
  bg_run_t r[2];
  inst_t in[2] = {{&seen, 0}, {&seen, 1}};
  for (int k = 0; k < runtimes; k++) {
    t[k] = pipeline(group, topic, COUNT, 0, 0);
    start(&r[k], t[k], workers, &in[k]);
  }
  settle_t st = {runtimes, EXPECT_TASKS};
  assert_true(wait_until(settled, &st, KH_TIMEOUT_MS));
  produce_words(topic, -1);
  int done = wait_until(counts_done, NULL, 20000);
  for (int k = 0; k < runtimes; k++) {
    assert_int_equal(bg_stop(&r[k]), BROOK_OK);
    brook_runtime_free(r[k].rt);
    brook_topology_free(t[k]);
  }
  for (int w = 0; w < N_WORDS; w++)
    print_message("word w%d: final count %lld, expected %d\n", w, (long long)seen.count[w],
                  N_PARTS * PER_PART / N_WORDS);
  assert_true(done);
  assert_int_equal(seen.dup, 0);
  seen_destroy(&seen);
}

static void test_two_instances_count(void **state) {
  (void)state;
  count_words(2, 1, "gc", "words");
}

static void test_two_workers_count(void **state) {
  (void)state;
  count_words(1, 2, "gw", "words2");
}

/* The window results the input implies: every record is on time (shuffled within the grace),
 * every data window closes (the end records). */
static int expected_windows(int64_t exp[N_WORDS][N_WIN], int skip_part) {
  memset(exp, 0, sizeof(int64_t) * N_WORDS * N_WIN);
  int n = 0;
  for (int p = 0; p < N_PARTS; p++)
    for (int i = 0; p != skip_part && i < PER_PART; i++) {
      int64_t *c = &exp[word_of(p, i)][(ts_of(i) - TS0) / WIN_MS];
      n += *c == 0;
      (*c)++;
    }
  return n;
}

/* The input is in the topic before the run starts, so every input partition has records
 * from its first fetch on: none goes idle while others run ahead (an idle partition would
 * let the watermark pass records of its own not read yet, with or without a repartition). An
 * `idle_part` never gets any: after idle_ms its task says it is idle, and stops holding the
 * windows back. */
static void windows_after_repartition(const char *group, const char *topic, int idle_part,
                                      int64_t idle_ms) {
  topics_for(group, topic);
  seen_init(&seen);
  produce_words(topic, idle_part);
  brook_topology_t *t = pipeline(group, topic, WINDOW, 0, idle_ms);
  bg_run_t r;
  inst_t in = {&seen, 0};
  start(&r, t, 1, &in);
  static int64_t exp[N_WORDS][N_WIN];
  int want = expected_windows(exp, idle_part);
  int got = wait_counter_wait_ge(&seen.results, want, 20000);
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  print_message("windows: %lld of %d\n", (long long)wait_counter_get(&seen.results), want);
  assert_true(got);
  assert_int_equal(seen.dup, 0);
  assert_int_equal(wait_counter_get(&seen.results), want);
  assert_memory_equal(seen.win, exp, sizeof(exp));
  seen_destroy(&seen);
}

static void test_windows_same_as_without(void **state) {
  (void)state;
  windows_after_repartition("gwin", "wwords", -1, 0);
}

/* Input partition 2 gets nothing: its task goes idle (idle_timeout) and writes so; the
 * downstream tasks stop waiting for it, and the windows close all the same. */
static void test_windows_idle_partition(void **state) {
  (void)state;
  windows_after_repartition("gidle", "iwords", 2, 3000);
}

typedef struct wm_count {
  int64_t marked, plain;
} wm_count_t;

/* A watermark record: its frame (kafka/repartition.h) says so. */
static void count_marked(const rd_kafka_message_t *m, void *opaque) {
  wm_count_t *c = opaque;
  const unsigned char *b = m->payload;
  if (b && m->len >= 4 && b[0] == 0xB7 && b[1] == 1 && b[2] == 2)
    c->marked++;
  else
    c->plain++;
}

/* The sink after the key change sees exactly the input's records, none of them a watermark
 * record, though the topic holds watermark records too. */
static void test_watermark_records_invisible(void **state) {
  (void)state;
  const char *group = "gv", *topic = "vwords";
  topics_for(group, topic);
  seen_init(&seen);
  brook_topology_t *t = pipeline(group, topic, PLAIN, 0, 0);
  bg_run_t r;
  inst_t in = {&seen, 0};
  start(&r, t, 1, &in);
  settle_t st = {1, EXPECT_TASKS};
  assert_true(wait_until(settled, &st, KH_TIMEOUT_MS));
  produce_words(topic, -1);
  int64_t want = N_PARTS * (PER_PART + 1);
  assert_true(wait_counter_wait_ge(&seen.results, want, 20000));
  rd_kafka_t *rd = kh_reader(broker.bootstrap, "gv-by_word-repartition", N_PARTS);
  wm_count_t c = {0, 0};
  int64_t deadline = kh_now_ms() + KH_TIMEOUT_MS;
  while ((c.plain < want || c.marked < N_PARTS) && kh_now_ms() < deadline)
    kh_read(rd, 1, 1000, count_marked, &c);
  kh_reader_close(rd);
  assert_int_equal(bg_stop(&r), BROOK_OK);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  assert_int_equal(seen.records, want);
  assert_int_equal(seen.with_brook_header, 0);
  assert_int_equal(c.plain, want);
  assert_true(c.marked >= N_PARTS); /* at least one per partition */
  seen_destroy(&seen);
}

/* Runs `t` until it fails at start-up; returns the error, its message in msg[cap]. */
static brook_err_t run_failing(brook_topology_t *t, char *msg, size_t cap) {
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, kh_rt_opts()) != BROOK_OK) /* offline: no cluster asked */
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  brook_err_t err = brook_runtime_run(rt);
  snprintf(msg, cap, "%s", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  print_message("%s: %s\n", brook_errname(err), msg);
  return err;
}

/* No repartition topic and a broker that cannot create it: the run fails at start-up, before
 * anything is produced, naming the topic. A topic with another partition count than the
 * input's is refused too. */
static void test_topic_not_creatable(void **state) {
  (void)state;
  assert_int_equal(broker_cmd(&broker, "topic %s %d", "nwords", N_PARTS), 0);
  seen_init(&seen);
  brook_topology_t *t = pipeline("gn", "nwords", COUNT, 2000, 0);
  char msg[1024];
  brook_err_t err = run_failing(t, msg, sizeof(msg));
  assert_true(err == BROOK_ERR_TIMEOUT || err == BROOK_ERR_KAFKA);
  assert_non_null(strstr(msg, "repartition topic 'gn-by_word-repartition' (4 partitions)"));
  assert_int_equal(broker_cmd(&broker, "topic %s %d", "gn-by_word-repartition", 2), 0);
  assert_int_equal(run_failing(t, msg, sizeof(msg)), BROOK_ERR_KAFKA);
  assert_non_null(strstr(msg, "'gn-by_word-repartition' has 2 partitions, brook needs 4"));
  brook_topology_free(t);
  seen_destroy(&seen);
}

static int setup(void **state) {
  (void)state;
  return broker_start(&broker, 1, NULL, NULL);
}

static int teardown(void **state) {
  (void)state;
  return broker_stop(&broker);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_instances_count),
      cmocka_unit_test(test_two_workers_count),
      cmocka_unit_test(test_windows_same_as_without),
      cmocka_unit_test(test_windows_idle_partition),
      cmocka_unit_test(test_watermark_records_invisible),
      cmocka_unit_test(test_topic_not_creatable),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
