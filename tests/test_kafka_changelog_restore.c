/* Changelogs wired into the runtime (runtime option changelogs, README "Changelogs"), in this
 * process against the embedded broker, whose internal topics are pre-created (it cannot
 * create topics through the admin API):
 *   - a count per key, stopped and run again in a fresh runtime (in-memory state: nothing
 *     survives but the changelog): the counts continue from the changelog, nothing is read
 *     twice; only changed keys are written at each commit; the restore listener and the
 *     stats see the restore;
 *   - a tumbling window with grace, stopped with its window open and run again: the window
 *     fires after the restore with the records of both runs, at the right event time (its
 *     timers came back with its stores);
 *   - the RocksDB backend (state_dir): a fresh state directory (a task moved to a new disk)
 *     restores from the changelog;
 *   - one task restoring a large changelog does not hold up another task of the worker;
 *   - bad input: a corrupt changelog record, a changelog with the wrong partition count, a
 *     changelog that does not exist (and cannot be created here) fail the run with an error
 *     naming topic, partition and offset (or the topic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <brook/kafka.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "broker_proc.h"
#include "kafka/changelog_format.h"
#include "kafka/changelog_writer.h"
#include "kafka_helpers.h"
#include "key_counts.h"
#include "runtime/positions.h"
#include "tempfiles.h"
#include "wait.h"

#define N_KEYS 10

static broker_proc_t broker;

/* ---- the restore listener ---- */

typedef struct listened {
  int starts, ends;
  int stop_after_ends; /* > 0: the run stops once this many stores ended and outputs came */
  int outputs_done;
  brook_runtime_t **rt;
  uint64_t batches, total;
  int restoring[2]; /* per task: between on_start and on_end of one of its stores */
  uint64_t read;    /* records (markers included) the restores read */
  uint64_t restored_at_end[2];
} listened_t;

static void on_start(int32_t task, const char *store, uint64_t n, void *opaque) {
  (void)store, (void)n;
  listened_t *l = opaque;
  l->starts++;
  if (task >= 0 && task < 2)
    l->restoring[task] = 1;
}

static void on_batch(int32_t task, const char *store, uint64_t batch, uint64_t total,
                     void *opaque) {
  (void)task, (void)store, (void)total;
  listened_t *l = opaque;
  l->batches++;
  l->total += batch;
}

static void on_end(int32_t task, const char *store, uint64_t total, uint64_t read, uint64_t ms,
                   void *opaque) {
  (void)store, (void)ms;
  listened_t *l = opaque;
  l->ends++;
  l->read += read;
  if (task >= 0 && task < 2) {
    l->restoring[task] = 0;
    l->restored_at_end[task] += total;
  }
  if (l->stop_after_ends && l->ends >= l->stop_after_ends && l->outputs_done)
    brook_runtime_stop(*l->rt);
}

static int64_t end_offset(const char *topic, int32_t part);

/* ---- a count per key ---- */

typedef struct seen {
  int64_t count[N_KEYS];
  int records, stop_at;
  int during_restore; /* records of task 1 output while task 0 restored */
  listened_t l;
  brook_runtime_t *rt;
} seen_t;

static brook_err_t on_count(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  int k = kc_key_index(rec->key, rec->key_len, 1000000); /* k<N_KEYS + i>: restored keys */
  if (k < 0 || rec->value_len != sizeof(int64_t))
    return BROOK_ERR_CORRUPT;
  if (k < N_KEYS)
    memcpy(&s->count[k], rec->value, sizeof(int64_t));
  s->during_restore += s->l.restoring[0];
  if (++s->records == s->stop_at) {
    s->l.outputs_done = 1;
    if (!s->l.stop_after_ends || s->l.ends >= s->l.stop_after_ends)
      brook_runtime_stop(s->rt);
  }
  return BROOK_OK;
}

typedef struct run_opts {
  const char *group;
  const char *state_dir;
  const char *topic; /* input: "in" unless set */
} run_opts_t;

static brook_topology_t *count_topology(const run_opts_t *o, seen_t *s) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = broker.bootstrap;
  so.group_id = o->group;
  so.topics = (const char *const[]){o->topic ? o->topic : "in", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "counts";
  brook_stream_t *c = brook_count(brook_source_kafka(t, "in", &so), &ao);
  assert_int_equal(brook_sink_callback(c, on_count, NULL, s), BROOK_OK);
  return t;
}

static brook_runtime_opts_t runtime_opts(const char *state_dir, listened_t *l) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100;
  ro.state_dir = state_dir;
  ro.changelogs = 1;
  static brook_restore_listener_t rl = {on_start, on_batch, on_end, NULL};
  static _Thread_local brook_restore_listener_t mine;
  mine = rl;
  mine.opaque = l;
  ro.restore_listener = &mine;
  if (getenv("BROOK_TEST_LOG")) {
    ro.log = kc_log_to_stderr;
    ro.log_opaque = (void *)"rt";
  }
  return ro;
}

/* Runs until `records` outputs came (or the run fails: its error, message in *msg). */
static brook_err_t run_counts(const run_opts_t *o, seen_t *s, int records,
                              brook_runtime_stats_t *st, char *msg, size_t cap) {
  brook_topology_t *t = count_topology(o, s);
  brook_runtime_opts_t ro = runtime_opts(o->state_dir, &s->l);
  assert_int_equal(brook_runtime_new(&s->rt, t, &ro), BROOK_OK);
  s->stop_at = records;
  brook_err_t err = brook_runtime_run(s->rt);
  if (msg)
    snprintf(msg, cap, "%s", brook_runtime_last_error(s->rt));
  if (err != BROOK_OK && !msg)
    fail_msg("run: %s", brook_runtime_last_error(s->rt));
  if (st) {
    st->struct_size = sizeof(*st);
    assert_int_equal(brook_runtime_stats(s->rt, st), BROOK_OK);
  }
  brook_runtime_free(s->rt);
  brook_topology_free(t);
  return err;
}

static void test_counts_continue_after_restart(void **state) {
  (void)state;
  run_opts_t o = {"cont", NULL, NULL};
  kh_produce(broker.bootstrap, "in", "a", 0, 200, N_KEYS);
  seen_t s1 = {0};
  brook_runtime_stats_t st;
  run_counts(&o, &s1, 200, &st, NULL, 0);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(s1.count[k], 20);
  print_message("run 1: %llu changelog records for %llu input records, %llu markers\n",
                (unsigned long long)st.changelog_records, (unsigned long long)st.records_in,
                (unsigned long long)st.changelog_markers);
  /* Only keys changed since the last commit: at most one record per key per commit. */
  assert_true(st.changelog_records >= N_KEYS);
  assert_true(st.changelog_records <= N_KEYS * (st.commits + 2));
  assert_true(st.changelog_markers >= 2); /* each task's restored commit, at least */
  assert_int_equal(st.tasks_restored, 2);
  assert_int_equal(st.restored_records, 0); /* empty changelogs */

  kh_produce(broker.bootstrap, "in", "b", 200, 100, N_KEYS);
  seen_t s2 = {0};
  run_counts(&o, &s2, 100, &st, NULL, 0);
  assert_int_equal(s2.records, 100); /* the first run's input is not read again */
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(s2.count[k], 30); /* continued from 20, not restarted at 0 */
  print_message("run 2: restored %llu records in %llu ms; listener: %d starts, %d ends, %llu "
                "batches, %llu records\n",
                (unsigned long long)st.restored_records, (unsigned long long)st.restore_ms,
                s2.l.starts, s2.l.ends, (unsigned long long)s2.l.batches,
                (unsigned long long)s2.l.total);
  assert_int_equal(st.tasks_restored, 2);
  assert_true(st.restored_records >= N_KEYS); /* every key, maybe older values too */
  assert_int_equal(s2.l.starts, 2);           /* one store per task */
  assert_int_equal(s2.l.ends, 2);
  assert_int_equal(s2.l.total, st.restored_records);
  assert_int_equal(s2.l.restored_at_end[0] + s2.l.restored_at_end[1], st.restored_records);
}

/* With state on disk: a fresh state directory (the task moved to a machine without its
 * state) restores from the changelog; the same directory again restores on top of it. */
static void test_rocksdb_backend_restores(void **state) {
  (void)state;
  char *d1 = temp_dir_new("changelog"), *d2 = temp_dir_new("changelog");
  run_opts_t o = {"disk", d1, NULL};
  kh_produce(broker.bootstrap, "in", "a", 0, 200, N_KEYS);
  seen_t s1 = {0};
  run_counts(&o, &s1, 200, NULL, NULL, 0);
  kh_produce(broker.bootstrap, "in", "b", 200, 100, N_KEYS);
  o.state_dir = d2; /* nothing on disk */
  seen_t s2 = {0};
  brook_runtime_stats_t st;
  run_counts(&o, &s2, 100, &st, NULL, 0);
  assert_int_equal(s2.records, 100);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(s2.count[k], 30);
  assert_true(st.restored_records >= N_KEYS);
  kh_produce(broker.bootstrap, "in", "c", 300, 100, N_KEYS);
  seen_t s3 = {0};
  brook_runtime_stats_t st3;
  run_counts(&o, &s3, 100, &st3, NULL, 0); /* d2 again: only the changelogs' tail */
  int64_t log = end_offset("disk-counts-aggregate-changelog", 0) +
                end_offset("disk-counts-aggregate-changelog", 1);
  print_message("fresh directory: read %llu of the changelogs' records, restored %llu; intact "
                "one: read %llu of %lld, restored %llu\n",
                (unsigned long long)s2.l.read, (unsigned long long)st.restored_records,
                (unsigned long long)s3.l.read, (long long)log,
                (unsigned long long)st3.restored_records);
  assert_int_equal(s3.records, 100);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(s3.count[k], 40);
  /* The local state covers every commit up to the one before the last: only the tail after
   * that commit's marker is read (the last commit's changes and its markers), never the
   * markers and records of every earlier commit of three runs. */
  assert_true(st3.restored_records <= N_KEYS);
  assert_true(s3.l.read > 0);
  assert_true((int64_t)s3.l.read < log / 2);
  temp_dir_free(d1);
  temp_dir_free(d2);
}

/* n records with keys "k<i % N_KEYS>" to one partition. */
static void produce_to(const char *topic, int32_t part, int n) {
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, broker.bootstrap,
                            (const char *const[]){"linger.ms", "5", NULL}, NULL, NULL);
  for (int i = 0; i < n; i++) {
    char key[16];
    int kl = snprintf(key, sizeof(key), "k%d", i % N_KEYS);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                  RD_KAFKA_V_KEY(key, (size_t)kl), RD_KAFKA_V_VALUE("v", 1),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);
}

static int64_t end_offset(const char *topic, int32_t part) {
  rd_kafka_t *c = kh_client(RD_KAFKA_CONSUMER, broker.bootstrap, NULL, NULL, NULL);
  int64_t lo = -1, hi = -1;
  assert_int_equal(rd_kafka_query_watermark_offsets(c, topic, part, &lo, &hi, KH_TIMEOUT_MS),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(c);
  return hi;
}

/* ---- writing a changelog directly (the module's writer) ---- */

static rd_kafka_t *cl_producer(void) {
  return kh_client(RD_KAFKA_PRODUCER, broker.bootstrap,
                   (const char *const[]){"linger.ms", "5", "enable.idempotence", "true",
                                         "queue.buffering.max.messages", "1000000", NULL},
                   bk_changelog_dr_msg_cb, NULL);
}

/* Writes n keys "k<N_KEYS + i>" with count 1 to partition `part` of the counts' changelog of
 * `group`, committed with input position (in, part, 0). */
static void write_big_changelog(const char *group, int32_t part, int n) {
  char topic[256];
  snprintf(topic, sizeof(topic), "%s-counts-aggregate-changelog", group);
  rd_kafka_t *p = cl_producer();
  bk_changelog_writer_t *w = NULL;
  bk_errmsg_t why;
  bk_changelog_writer_opts_t o = {
      .producer = p, .topic = topic, .partition = part, .first_epoch = bk_cl_first_epoch(0)};
  assert_int_equal(bk_changelog_writer_new(&o, &w, &why), BROOK_OK);
  bk_positions_t pos;
  bk_positions_init(&pos, NULL);
  size_t len;
  const void *blob = bk_positions_data(&pos, &len);
  uint64_t e = 0;
  assert_int_equal(bk_changelog_commit(w, blob, len, &e), BROOK_OK);
  while (bk_changelog_acked(w) < e)
    rd_kafka_poll(p, 10);
  int64_t one = 1;
  for (int i = 0; i < n; i++) {
    char key[16];
    int kl = snprintf(key, sizeof(key), "k%d", N_KEYS + i);
    brook_err_t err;
    while ((err = bk_changelog_put(w, key, (size_t)kl, &one, sizeof(one))) == BROOK_ERR_FULL)
      rd_kafka_poll(p, 10);
    assert_int_equal(err, BROOK_OK);
  }
  assert_int_equal(bk_positions_add(&pos, "in", part, 0), BROOK_OK);
  blob = bk_positions_data(&pos, &len);
  assert_int_equal(bk_changelog_commit(w, blob, len, &e), BROOK_OK);
  uint64_t t0 = wait_now_ms();
  while (bk_changelog_acked(w) < e && wait_now_ms() - t0 < 60000)
    rd_kafka_poll(p, 10);
  assert_int_equal(bk_changelog_acked(w), e);
  bk_positions_free(&pos);
  bk_changelog_writer_free(w);
  rd_kafka_destroy(p);
}

/* Task 0 restores 60,000 records while task 1 has input: task 1 processes meanwhile. */
static void test_restore_does_not_block_other_tasks(void **state) {
  (void)state;
  write_big_changelog("big", 0, 60000); /* under the broker's ~5 MiB per partition */
  produce_to("in", 1, 2000);            /* input for task 1 only */
  run_opts_t o = {"big", NULL, NULL};
  seen_t s = {0};
  s.l.stop_after_ends = 2; /* and both restores ended */
  s.l.rt = &s.rt;
  brook_runtime_stats_t st;
  run_counts(&o, &s, 2000, &st, NULL, 0);
  print_message("restored %llu records in %llu ms; %d outputs of task 1 while task 0 restored\n",
                (unsigned long long)st.restored_records, (unsigned long long)st.restore_ms,
                s.during_restore);
  assert_true(st.restored_records >= 60000);
  assert_true(s.during_restore > 0);
}

/* ---- a tumbling window with grace ---- */

#define WIN_MS 1000
#define GRACE_MS 500
#define T0 INT64_C(1700000000000) /* a window start */

typedef struct win_seen {
  int64_t count[N_KEYS];
  int64_t start[N_KEYS];
  int results, stop_at, dup;
  brook_runtime_t *rt;
  listened_t l;
} win_seen_t;

static brook_err_t on_window(const brook_record_t *rec, void *opaque) {
  win_seen_t *s = opaque;
  brook_window_value_t wv;
  const void *res = NULL;
  if (brook_window_parse(rec, &wv, &res) != BROOK_OK || wv.result_len != sizeof(int64_t))
    return BROOK_ERR_USER;
  int k = kc_key_index(rec->key, rec->key_len, N_KEYS);
  if (k < 0)
    return BROOK_OK; /* "z": only moves time */
  s->dup += s->count[k] != 0;
  memcpy(&s->count[k], res, sizeof(int64_t));
  s->start[k] = wv.start;
  if (++s->results == s->stop_at)
    brook_runtime_stop(s->rt);
  return BROOK_OK;
}

static void produce_at(const char *topic, int32_t partition, const char *key, int64_t ts) {
  kc_produce_at(broker.bootstrap, topic, partition, key, ts);
}

/* Stops the runtime once its sources took `want` records (a window emits nothing before it
 * closes). */
typedef struct input_watch {
  brook_runtime_t *rt;
  uint64_t want;
} input_watch_t;

static void on_watch(uv_timer_t *h) {
  input_watch_t *iw = h->data;
  brook_runtime_stats_t st;
  st.struct_size = sizeof(st);
  if (brook_runtime_stats(iw->rt, &st) == BROOK_OK && st.records_in >= iw->want) {
    brook_runtime_stop(iw->rt);
    uv_close((uv_handle_t *)h, NULL);
  }
}

static void run_window(win_seen_t *s, uint64_t stop_after_input, brook_runtime_stats_t *st) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = broker.bootstrap;
  so.group_id = "wins";
  so.topics = (const char *const[]){"win", NULL};
  brook_stream_t *in = brook_source_kafka(t, "win", &so);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(WIN_MS);
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.grace = GRACE_MS;
  wo.name = "windows";
  brook_stream_t *w = brook_window_aggregate(in, &win, &count, &wo);
  assert_int_equal(brook_sink_callback(w, on_window, NULL, s), BROOK_OK);
  brook_runtime_opts_t ro = runtime_opts(NULL, &s->l);
  assert_int_equal(brook_runtime_new(&s->rt, t, &ro), BROOK_OK);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_timer_t watch;
  input_watch_t iw = {s->rt, stop_after_input};
  if (stop_after_input) {
    uv_timer_init(&loop, &watch);
    watch.data = &iw;
    uv_timer_start(&watch, on_watch, 10, 10);
  }
  assert_int_equal(brook_runtime_start(s->rt, &loop), BROOK_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (brook_runtime_status(s->rt) != BROOK_OK)
    fail_msg("run: %s", brook_runtime_last_error(s->rt));
  st->struct_size = sizeof(*st);
  assert_int_equal(brook_runtime_stats(s->rt, st), BROOK_OK);
  brook_runtime_free(s->rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_topology_free(t);
}

/* Run 1 counts 5 records per key into the window [T0, T0 + 1000) and stops with it open;
 * run 2 (a fresh runtime: only the changelogs remember) adds one record per key and moves
 * event time past the window's end + grace: the window fires once, with 6 per key, and its
 * close came from the timer restored with the window store. */
static void test_window_fires_after_restore(void **state) {
  (void)state;
  char key[8];
  for (int i = 0; i < 5; i++)
    for (int k = 0; k < 5; k++) {
      snprintf(key, sizeof(key), "k%d", k);
      produce_at("win", 0, key, T0 + 100 + i * 50 + k);
    }
  win_seen_t s1 = {0};
  brook_runtime_stats_t st;
  run_window(&s1, 25, &st);
  assert_int_equal(s1.results, 0); /* still open */
  print_message("run 1: %llu records in, %llu changelog records, %llu markers\n",
                (unsigned long long)st.records_in, (unsigned long long)st.changelog_records,
                (unsigned long long)st.changelog_markers);
  assert_true(st.changelog_records >= 5); /* window entries and its timer */
  for (int k = 0; k < 5; k++) {
    snprintf(key, sizeof(key), "k%d", k);
    produce_at("win", 0, key, T0 + 600 + k);
  }
  produce_at("win", 0, "z", T0 + WIN_MS + GRACE_MS + 1000); /* closes the window */
  win_seen_t s2 = {0};
  s2.stop_at = 5;
  run_window(&s2, 0, &st);
  print_message("run 2: restored %llu records\n", (unsigned long long)st.restored_records);
  assert_true(st.restored_records >= 5);
  for (int k = 0; k < 5; k++) {
    assert_int_equal(s2.count[k], 6); /* 5 from run 1, restored, and 1 */
    assert_int_equal(s2.start[k], T0);
  }
  assert_int_equal(s2.dup, 0);
}

/* ---- bad input ---- */

static void produce_raw(const char *topic, int32_t part, const char *key, const char *val) {
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, broker.bootstrap, NULL, NULL, NULL);
  assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                     RD_KAFKA_V_KEY(key, strlen(key)),
                                     RD_KAFKA_V_VALUE((void *)val, strlen(val)), RD_KAFKA_V_END),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);
}

static void test_corrupt_changelog_fails_the_run(void **state) {
  (void)state;
  kh_produce(broker.bootstrap, "in", "a", 0, 20, N_KEYS);
  run_opts_t o = {"corrupt", NULL, NULL};
  seen_t s1 = {0};
  run_counts(&o, &s1, 20, NULL, NULL, 0);
  /* A record without brook's epoch header: nothing brook wrote. */
  produce_raw("corrupt-counts-aggregate-changelog", 1, "k1", "12345678");
  int64_t end = end_offset("corrupt-counts-aggregate-changelog", 1);
  seen_t s2 = {0};
  char msg[1024];
  brook_err_t err = run_counts(&o, &s2, 1 << 30, NULL, msg, sizeof(msg));
  print_message("%s: %s\n", brook_errname(err), msg);
  assert_int_equal(err, BROOK_ERR_CORRUPT);
  char want[128];
  snprintf(want, sizeof(want), "partition 1 offset %lld", (long long)(end - 1));
  assert_non_null(strstr(msg, "corrupt-counts-aggregate-changelog"));
  assert_non_null(strstr(msg, want));
  assert_int_equal(s2.records, 0); /* nothing processed past the problem */
}

static void test_wrong_partition_count_fails_the_run(void **state) {
  (void)state;
  kh_produce(broker.bootstrap, "in", "a", 0, 20, N_KEYS);
  run_opts_t o = {"narrow", NULL, NULL}; /* its changelog has 1 partition, the input 2 */
  seen_t s = {0};
  char msg[1024];
  brook_err_t err = run_counts(&o, &s, 1 << 30, NULL, msg, sizeof(msg));
  print_message("%s: %s\n", brook_errname(err), msg);
  assert_int_equal(err, BROOK_ERR_KAFKA);
  assert_non_null(strstr(msg, "narrow-counts-aggregate-changelog"));
  assert_int_equal(s.records, 0);
}

static void test_missing_changelog_fails_the_run(void **state) {
  (void)state;
  kh_produce(broker.bootstrap, "in", "a", 0, 20, N_KEYS);
  run_opts_t o = {"absent", NULL, NULL}; /* the embedded broker cannot create it */
  seen_t s = {0};
  char msg[1024];
  brook_err_t err = run_counts(&o, &s, 1 << 30, NULL, msg, sizeof(msg));
  print_message("%s: %s\n", brook_errname(err), msg);
  assert_true(err != BROOK_OK);
  assert_non_null(strstr(msg, "absent-counts-aggregate-changelog"));
  assert_int_equal(s.records, 0);
}

static int setup(void **state) {
  (void)state;
  const char *const topics[] = {"in:2",
                                "win:2",
                                "cont-counts-aggregate-changelog:2",
                                "disk-counts-aggregate-changelog:2",
                                "big-counts-aggregate-changelog:2",
                                "corrupt-counts-aggregate-changelog:2",
                                "narrow-counts-aggregate-changelog:1",
                                "wins-windows-window-changelog:2",
                                "wins-windows-timers-changelog:2",
                                NULL};
  assert_int_equal(broker_start(&broker, 1, topics, NULL), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return broker_stop(&broker) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_counts_continue_after_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rocksdb_backend_restores, setup, teardown),
      cmocka_unit_test_setup_teardown(test_window_fires_after_restore, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restore_does_not_block_other_tasks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_changelog_fails_the_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_partition_count_fails_the_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_changelog_fails_the_run, setup, teardown),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
