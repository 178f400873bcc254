/* bench_state: durable state figures of issue 13. This step measures the RESTORE RATE: a
 * changelog written with brook's changelog writer (epochs of 10,000 records, each closed by
 * its commit marker) restored into in-memory brook stores (brook_store_put through the
 * restore's apply callback), against a baseline in the same run: the very same records read
 * with plain librdkafka (same consumer settings, the same reading in turns of a queue per
 * partition) and put into the same kind of stores, without the protocol (no epoch header,
 * no marker, no pending buffer).
 *
 *   bench_state [records] [runs]      (BROOK_BENCH_SMOKE=1: a tiny run, for ctest)
 *
 * Records: `records` distinct keys of 16 bytes ("key-%012u") with 8-byte values, spread over
 * 32 partitions of one changelog topic (the embedded broker keeps ~5 MiB per partition: one
 * partition could not hold 1M records; 32 partitions are 32 tasks restoring at once). The
 * restore runs like a worker would: every partition's restore on one consumer, advanced in
 * slices of 10,000 records round-robin, until all are done. Each run is a fresh process
 * (this program again, with --child: its wall time, CPU time and peak RSS are its own); runs
 * alternate baseline and brook, and the medians are reported.
 *
 * Then the CHANGELOG OVERHEAD: a keyed tumbling window (count, 1 s) through Kafka over 600,000
 * records, 100,000 keys per window, 16 partitions, run with the runtime option changelogs and
 * without (fresh consumer groups, alternating, in this process), each run timed from start
 * until it ended (every record in, then the stop's final commit, which waits for the
 * changelogs); throughput with over without, and changelog records per input record.
 *
 * The restore part uses brook's internal changelog API (src/kafka/changelog_*.h). The last
 * line is the issue's
 *   bench=state changelog_ratio=... changelog_records_per_input=... restore_records_per_s=...
 *   eos_ratio=... recover_ms_standby=... recover_ms_no_standby=...
 * where eos_ratio and the recover figures are `na`: exactly-once and standbys come later. */
#define _GNU_SOURCE
#include <brook/brook.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "broker_proc.h"
#include "kafka/changelog_format.h"
#include "kafka/changelog_restore.h"
#include "kafka/changelog_writer.h"

#define TOPIC "bench-state-changelog"
#define PARTS 32
#define KEY_LEN 16
#define VAL_LEN 8
#define EPOCH_RECORDS 10000
#define SLICE 10000
#define MAX_RUNS 15

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_state: %s: %s\n", what, why);
  exit(1);
}

/* A client configuration: bootstrap, then name/value pairs (NULL-terminated). */
static rd_kafka_conf_t *new_conf(const char *bootstrap, const char *const *kv) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char err[512];
  if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err)) != RD_KAFKA_CONF_OK)
    die("bootstrap.servers", err);
  for (size_t i = 0; kv[i]; i += 2)
    if (rd_kafka_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK)
      die(kv[i], err);
  return c;
}

static void make_key(char key[KEY_LEN + 1], uint64_t i) {
  char buf[32];
  snprintf(buf, sizeof(buf), "key-%012" PRIu64, i % 1000000000000u);
  memcpy(key, buf, KEY_LEN + 1);
}

/* ---- loading the changelog: one writer per partition, as tasks would ---- */

static void load(const char *bootstrap, uint64_t n) {
  rd_kafka_conf_t *c =
      new_conf(bootstrap,
               (const char *const[]){"enable.idempotence", "true", "acks", "all", "linger.ms", "20",
                                     "batch.num.messages", "10000", "queue.buffering.max.messages",
                                     "1000000", "log_level", "3", NULL});
  rd_kafka_conf_set_dr_msg_cb(c, bk_changelog_dr_msg_cb);
  char err[512];
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
  if (!p)
    die("producer", err);
  bk_changelog_writer_t *w[PARTS];
  uint64_t in_epoch[PARTS] = {0};
  for (int i = 0; i < PARTS; i++) {
    bk_changelog_writer_opts_t o = {
        .producer = p, .topic = TOPIC, .partition = i, .first_epoch = bk_cl_first_epoch(0)};
    bk_errmsg_t why;
    if (bk_changelog_writer_new(&o, &w[i], &why))
      die("writer", why.text);
    if (bk_changelog_commit(w[i], NULL, 0, NULL)) /* the first commit: puts wait for its ack */
      die("commit", "first");
  }
  for (int i = 0; i < PARTS; i++)
    while (bk_changelog_acked(w[i]) < bk_cl_first_epoch(0) && !bk_changelog_writer_error(w[i])[0])
      rd_kafka_poll(p, 10);
  char key[KEY_LEN + 1];
  for (uint64_t i = 0; i < n; i++) {
    int part = (int)(i % PARTS);
    make_key(key, i);
    brook_err_t e;
    while ((e = bk_changelog_put(w[part], key, KEY_LEN, &i, VAL_LEN)) == BROOK_ERR_FULL)
      rd_kafka_poll(p, 10);
    if (e)
      die("put", brook_errname(e));
    if (++in_epoch[part] == EPOCH_RECORDS || i + PARTS >= n) {
      uint64_t pos = i;
      while ((e = bk_changelog_commit(w[part], &pos, sizeof(pos), NULL)) == BROOK_ERR_FULL)
        rd_kafka_poll(p, 10);
      if (e)
        die("commit", brook_errname(e));
      in_epoch[part] = 0;
    }
    if (i % 1024 == 0)
      rd_kafka_poll(p, 0);
  }
  uint64_t t0 = now_ns();
  for (int i = 0; i < PARTS; i++) {
    while (bk_changelog_in_flight(w[i]) && now_ns() - t0 < 120000000000ull)
      rd_kafka_poll(p, 10);
    if (bk_changelog_in_flight(w[i]) || bk_changelog_writer_error(w[i])[0])
      die("load", "the changelog was not acknowledged");
    bk_changelog_writer_free(w[i]);
  }
  rd_kafka_destroy(p);
}

/* ---- one run (in a child process) ---- */

typedef struct run_result {
  double secs;
  uint64_t records;  /* changes put into the stores */
  uint64_t entries;  /* entries in the stores at the end */
  uint64_t read;     /* records read (brook: markers included) */
  uint64_t checksum; /* sum of every stored value */
  double cpu;        /* the child's CPU time (all its threads), restore and check */
  long rss_kb;
} run_result_t;

static brook_store_t *stores[PARTS];

static void stores_new(uint64_t n) {
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.expected_entries = (size_t)(n / PARTS + 1);
  for (int i = 0; i < PARTS; i++)
    if (brook_store_new(&stores[i], &o, NULL))
      die("store", "brook_store_new failed");
}

static void stores_result(run_result_t *r) {
  for (int i = 0; i < PARTS; i++) {
    r->entries += brook_store_count(stores[i]);
    size_t cur = 0;
    const void *k, *v;
    size_t kl, vl;
    while (brook_store_next(stores[i], &cur, &k, &kl, &v, &vl)) {
      uint64_t x;
      memcpy(&x, v, sizeof(x));
      r->checksum += x;
    }
    brook_store_free(stores[i]);
  }
}

static brook_err_t apply_put(const void *key, size_t klen, const void *value, size_t vlen,
                             void *opaque) {
  if (!value) {
    brook_err_t e = brook_store_delete(opaque, key, klen);
    return e == BROOK_ERR_NOT_FOUND ? BROOK_OK : e;
  }
  return brook_store_put(opaque, key, klen, value, vlen);
}

static void run_brook(const char *bootstrap, uint64_t n, run_result_t *res) {
  stores_new(n);
  rd_kafka_t *c = NULL;
  bk_errmsg_t why;
  if (bk_changelog_restore_consumer(bootstrap, (const char *const[]){"log_level", "3", NULL}, &c,
                                    &why))
    die("consumer", why.text);
  uint64_t t0 = now_ns();
  bk_changelog_restore_t *r[PARTS];
  for (int i = 0; i < PARTS; i++) {
    bk_changelog_restore_opts_t o = {.consumer = c,
                                     .topic = TOPIC,
                                     .partition = i,
                                     .start_offset = 0,
                                     .apply = apply_put,
                                     .apply_opaque = stores[i]};
    if (bk_changelog_restore_new(&o, &r[i], &why))
      die("restore", why.text);
  }
  int left = PARTS, done[PARTS] = {0}, idle = 0;
  while (left) {
    uint64_t before = 0, after = 0;
    for (int i = 0; i < PARTS; i++) {
      if (done[i])
        continue;
      before += bk_changelog_restore_result(r[i])->records_read;
      if (bk_changelog_restore_step(r[i], SLICE, 5, idle ? 1 : 0, &done[i], &why))
        die("restore", why.text);
      after += bk_changelog_restore_result(r[i])->records_read;
      left -= done[i];
    }
    idle = after == before;
  }
  res->secs = (double)(now_ns() - t0) / 1e9;
  for (int i = 0; i < PARTS; i++) {
    if (bk_changelog_restore_finish(r[i], 0, 0, &why)) /* each partition a task of one store */
      die("restore", why.text);
    const bk_changelog_restore_result_t *x = bk_changelog_restore_result(r[i]);
    res->records += x->records_applied;
    res->read += x->records_read;
    bk_changelog_restore_free(r[i]);
  }
  rd_kafka_destroy(c);
  stores_result(res);
}

/* The baseline: the same consumer settings, every partition from 0 to its end, each record
 * put into its partition's store as it is. */
static void run_raw(const char *bootstrap, uint64_t n, run_result_t *res) {
  stores_new(n);
  /* The settings bk_changelog_restore_consumer gives the restore's consumer. */
  rd_kafka_conf_t *conf =
      new_conf(bootstrap,
               (const char *const[]){"group.id", "bench-state-raw", "enable.auto.commit", "false",
                                     "enable.partition.eof", "true", "auto.offset.reset", "error",
                                     "isolation.level", "read_committed", "log_level", "3", NULL});
  char err[512];
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!c)
    die("consumer", err);
  uint64_t t0 = now_ns();
  /* The restore's consumption pattern without its protocol: each partition on its own queue,
   * read in turns of up to SLICE records, never waiting while records flow. */
  rd_kafka_queue_t *q[PARTS];
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
  for (int i = 0; i < PARTS; i++) {
    q[i] = rd_kafka_queue_get_partition(c, TOPIC, i);
    rd_kafka_queue_forward(q[i], NULL);
    rd_kafka_topic_partition_list_add(l, TOPIC, i)->offset = 0;
  }
  if (rd_kafka_assign(c, l))
    die("assign", TOPIC);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_message_t *msgs[512];
  int left = PARTS, at_eof[PARTS] = {0}, idle = 0;
  while (left) {
    uint64_t before = res->read;
    for (int p = 0; p < PARTS; p++) {
      size_t taken = 0;
      ssize_t got = 1;
      while (!at_eof[p] && taken < SLICE && got > 0) {
        got = rd_kafka_consume_batch_queue(q[p], idle && taken == 0 ? 1 : 0, msgs, 512);
        for (ssize_t i = 0; i < got; i++) {
          rd_kafka_message_t *m = msgs[i];
          if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_eof[p] = 1;
            left--;
          } else if (m->err) {
            die("consume", rd_kafka_err2str(m->err));
          } else {
            res->read++;
            taken++;
            if (m->key_len == KEY_LEN) { /* a data record (markers are 8 bytes) */
              if (apply_put(m->key, m->key_len, m->payload, m->len, stores[p]))
                die("put", "failed");
              res->records++;
            }
          }
          rd_kafka_message_destroy(m);
        }
      }
    }
    idle = res->read == before;
  }
  res->secs = (double)(now_ns() - t0) / 1e9;
  for (int i = 0; i < PARTS; i++)
    rd_kafka_queue_destroy(q[i]);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  stores_result(res);
}

/* Runs one measurement in a fresh process (this program with --child), so its wall time,
 * CPU time and peak RSS are its own: the child prints one line of results. */
static run_result_t run_child(int brook, const char *bootstrap, uint64_t n) {
  char exe[4096], cmd[8192];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0)
    die("readlink /proc/self/exe", strerror(errno));
  exe[len] = '\0';
  snprintf(cmd, sizeof(cmd), "'%s' --child %s '%s' %" PRIu64, exe, brook ? "brook" : "raw",
           bootstrap, n);
  fflush(NULL);
  FILE *f = popen(cmd, "r");
  if (!f)
    die("popen", strerror(errno));
  run_result_t r = {0};
  int got = fscanf(f, "result %lf %lf %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %ld", &r.secs,
                   &r.cpu, &r.records, &r.entries, &r.read, &r.checksum, &r.rss_kb);
  int status = pclose(f);
  if (got != 7 || status == -1 || !WIFEXITED(status) || WEXITSTATUS(status))
    die(brook ? "brook run" : "raw run", "the child failed");
  return r;
}

/* The child's side: one run, its results on stdout. */
static int child_main(const char *mode, const char *bootstrap, uint64_t n) {
  run_result_t r = {0};
  if (strcmp(mode, "brook") == 0)
    run_brook(bootstrap, n, &r);
  else
    run_raw(bootstrap, n, &r);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  r.cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  printf("result %.6f %.6f %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %ld\n", r.secs, r.cpu,
         r.records, r.entries, r.read, r.checksum, ru.ru_maxrss);
  return 0;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- the changelog overhead: a keyed tumbling window through Kafka ---- */

#define CL_TOPIC "bench-cl-in"
#define CL_PARTS 16
#define CL_WIN_MS 1000
#define CL_T0 INT64_C(1700000000000)

/* n records, keys "key-%012u" of i % keys, one window of event time per `keys` records (each
 * window holds every key once); the last window stays open. */
static void cl_load(const char *bootstrap, uint64_t n, uint64_t keys) {
  rd_kafka_conf_t *c =
      new_conf(bootstrap, (const char *const[]){"linger.ms", "20", "batch.num.messages", "10000",
                                                "queue.buffering.max.messages", "1000000",
                                                "log_level", "3", NULL});
  char err[512];
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
  if (!p)
    die("producer", err);
  char key[KEY_LEN + 1];
  for (uint64_t i = 0; i < n; i++) {
    make_key(key, i % keys);
    int64_t ts = CL_T0 + (int64_t)(i / keys) * CL_WIN_MS + (int64_t)(i % (CL_WIN_MS / 2));
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(CL_TOPIC), RD_KAFKA_V_KEY(key, KEY_LEN),
                                  RD_KAFKA_V_VALUE(&i, sizeof(i)), RD_KAFKA_V_TIMESTAMP(ts),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    if (e)
      die("produce", rd_kafka_err2str(e));
  }
  if (rd_kafka_flush(p, 60000))
    die("flush", "input not acknowledged");
  rd_kafka_destroy(p);
}

typedef struct cl_watch {
  brook_runtime_t *rt;
  uint64_t want;
} cl_watch_t;

static void cl_on_watch(uv_timer_t *h) {
  cl_watch_t *cw = h->data;
  brook_runtime_stats_t st;
  st.struct_size = sizeof(st);
  if (brook_runtime_stats(cw->rt, &st) == BROOK_OK && st.records_in >= cw->want) {
    brook_runtime_stop(cw->rt);
    uv_close((uv_handle_t *)h, NULL);
  }
}

static brook_err_t cl_sink(const brook_record_t *rec, void *opaque) {
  (void)rec;
  ++*(uint64_t *)opaque;
  return BROOK_OK;
}

/* One run of the window over the whole input in group `group`: seconds from start until the
 * run ended (every record in, then the stop's final commit), stats in *st. */
static double cl_run(const char *bootstrap, const char *group, int changelogs, uint64_t n,
                     brook_runtime_stats_t *st, uint64_t *results) {
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    die("topology", "new");
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){CL_TOPIC, NULL};
  so.properties = (const char *const[]){"log_level", "3", NULL};
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(CL_WIN_MS);
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "win";
  brook_stream_t *w = brook_window_aggregate(brook_source_kafka(t, "in", &so), &win, &count, &wo);
  if (brook_sink_callback(w, cl_sink, NULL, results) != BROOK_OK)
    die("topology", brook_topology_last_error(t));
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.changelogs = changelogs;
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK)
    die("runtime", brook_topology_last_error(t));
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_timer_t h;
  cl_watch_t cw = {rt, n};
  uv_timer_init(&loop, &h);
  h.data = &cw;
  uv_timer_start(&h, cl_on_watch, 5, 5);
  uint64_t t0 = now_ns();
  if (brook_runtime_start(rt, &loop) != BROOK_OK)
    die("start", brook_runtime_last_error(rt));
  uv_run(&loop, UV_RUN_DEFAULT);
  double secs = (double)(now_ns() - t0) / 1e9;
  if (brook_runtime_status(rt) != BROOK_OK)
    die("window run", brook_runtime_last_error(rt));
  st->struct_size = sizeof(*st);
  brook_runtime_stats(rt, st);
  brook_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  brook_topology_free(t);
  return secs;
}

/* Throughput with changelogs over without, medians of `runs` alternating runs (fresh groups:
 * each reads the whole input). *per_input: changelog records per input record. */
static double cl_overhead(const char *bootstrap, uint64_t n, uint64_t keys, int runs,
                          double *per_input) {
  printf("\nbench_state changelog overhead: a keyed tumbling window (%d ms, count) through "
         "Kafka, %" PRIu64 " records, %" PRIu64 " keys per window, %d partitions; changelogs "
         "on (runtime option changelogs) vs off; %d runs each, alternating\n",
         CL_WIN_MS, n, keys, CL_PARTS, runs);
  uint64_t tl = now_ns();
  cl_load(bootstrap, n, keys);
  printf("  input written in %.2f s\n", (double)(now_ns() - tl) / 1e9);
  double off[MAX_RUNS], on[MAX_RUNS], pin[MAX_RUNS];
  /* A warm-up run, not measured: the first group of a fresh embedded broker sometimes waits
   * tens of seconds for its coordinator, whichever variant comes first. */
  brook_runtime_stats_t warm;
  uint64_t rw = 0;
  printf("  warm-up run: %.3f s\n", cl_run(bootstrap, "clwarm", 0, n, &warm, &rw));
  for (int r = 0; r < runs; r++) {
    char g_off[32], g_on[32];
    snprintf(g_off, sizeof(g_off), "cloff%d", r);
    snprintf(g_on, sizeof(g_on), "clon%d", r);
    brook_runtime_stats_t a, b;
    uint64_t ra = 0, rb = 0;
    off[r] = cl_run(bootstrap, g_off, 0, n, &a, &ra);
    on[r] = cl_run(bootstrap, g_on, 1, n, &b, &rb);
    if (a.records_in < n || b.records_in < n || ra != rb)
      die("window runs", "the runs did not see the same input or results");
    pin[r] = (double)b.changelog_records / (double)b.records_in;
    printf("  run %d: without %9.0f rec/s (%.3f s)   with changelogs %9.0f rec/s (%.3f s, "
           "%" PRIu64 " changelog records, %" PRIu64 " markers, %" PRIu64 " tasks restoring for "
           "%" PRIu64 " ms in all, %" PRIu64 " results)   ratio %.3f\n",
           r + 1, (double)n / off[r], off[r], (double)n / on[r], on[r], b.changelog_records,
           b.changelog_markers, b.tasks_restored, b.restore_ms, rb, off[r] / on[r]);
  }
  qsort(off, (size_t)runs, sizeof(double), cmp_d);
  qsort(on, (size_t)runs, sizeof(double), cmp_d);
  qsort(pin, (size_t)runs, sizeof(double), cmp_d);
  double ratio = off[runs / 2] / on[runs / 2];
  *per_input = pin[runs / 2];
  printf("changelog overhead (median of %d): without %.0f records/s, with %.0f records/s, ratio "
         "%.3f, changelog records per input record %.3f\n",
         runs, (double)n / off[runs / 2], (double)n / on[runs / 2], ratio, *per_input);
  return ratio;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--child") == 0)
    return child_main(argv[2], argv[3], strtoull(argv[4], NULL, 10));
  int smoke = getenv("BROOK_BENCH_SMOKE") != NULL;
  uint64_t n = smoke ? 20000 : 1000000;
  int runs = smoke ? 1 : 3;
  if (argc > 1)
    n = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    runs = atoi(argv[2]);
  if (n < PARTS || runs < 1 || runs > MAX_RUNS) {
    fprintf(stderr, "usage: bench_state [records >= %d] [runs 1..%d]\n", PARTS, MAX_RUNS);
    return 2;
  }
  /* ~60 bytes a record on the wire: stay under the mock's ~5 MiB per partition. */
  if (n / PARTS * 64 > 4u * 1024 * 1024)
    die("records", "too many for the embedded broker's ~5 MiB per partition");
  /* The changelog part's input and its changelogs (the embedded broker cannot create
   * topics): per run r, groups cloff<r> (no changelogs) and clon<r>. */
  char topics[2 + 2 * MAX_RUNS + 1][64];
  const char *names[2 + 2 * MAX_RUNS + 1];
  size_t nt = 0;
  snprintf(topics[nt++], sizeof(topics[0]), TOPIC ":%d", PARTS);
  snprintf(topics[nt++], sizeof(topics[0]), CL_TOPIC ":%d", CL_PARTS);
  for (int r = 0; r < runs; r++) {
    snprintf(topics[nt++], sizeof(topics[0]), "clon%d-win-window-changelog:%d", r, CL_PARTS);
    snprintf(topics[nt++], sizeof(topics[0]), "clon%d-win-timers-changelog:%d", r, CL_PARTS);
  }
  for (size_t i = 0; i < nt; i++)
    names[i] = topics[i];
  names[nt] = NULL;
  broker_proc_t b;
  if (broker_start(&b, 1, names, NULL) != 0)
    die("broker", "brook-broker did not start");
  printf("bench_state restore: %" PRIu64 " keys of %d bytes, %d-byte values, %d partitions, "
         "epochs of %d records; embedded broker at %s; %d runs each, alternating, fresh "
         "processes\n",
         n, KEY_LEN, VAL_LEN, PARTS, EPOCH_RECORDS, b.bootstrap, runs);
  uint64_t tl = now_ns();
  load(b.bootstrap, n);
  printf("  changelog written in %.2f s\n", (double)(now_ns() - tl) / 1e9);
  uint64_t want_sum = n * (n - 1) / 2;
  double traw[MAX_RUNS], tbrook[MAX_RUNS], craw[MAX_RUNS], cbrook[MAX_RUNS];
  long rss_raw = 0, rss_brook = 0;
  for (int r = 0; r < runs; r++) {
    run_result_t a = run_child(0, b.bootstrap, n);
    run_result_t k = run_child(1, b.bootstrap, n);
    if (a.entries != n || a.checksum != want_sum)
      die("baseline", "the stores do not hold every record");
    if (k.entries != n || k.checksum != want_sum || k.records != n)
      die("brook", "the restored stores do not hold every record");
    traw[r] = a.secs;
    tbrook[r] = k.secs;
    craw[r] = a.cpu;
    cbrook[r] = k.cpu;
    rss_raw = a.rss_kb > rss_raw ? a.rss_kb : rss_raw;
    rss_brook = k.rss_kb > rss_brook ? k.rss_kb : rss_brook;
    printf("  run %d: raw %9.0f rec/s (%.3f s, cpu %.3f s, %ld KiB)   brook restore %9.0f rec/s "
           "(%.3f s, cpu %.3f s, %" PRIu64 " read incl. markers, %ld KiB)   ratio %.3f\n",
           r + 1, (double)n / a.secs, a.secs, a.cpu, a.rss_kb, (double)n / k.secs, k.secs, k.cpu,
           k.read, k.rss_kb, a.secs / k.secs);
  }
  double per_input = 0;
  double cl_ratio =
      cl_overhead(b.bootstrap, smoke ? 20000 : 600000, smoke ? 5000 : 100000, runs, &per_input);
  broker_stop(&b);
  qsort(traw, (size_t)runs, sizeof(double), cmp_d);
  qsort(tbrook, (size_t)runs, sizeof(double), cmp_d);
  qsort(craw, (size_t)runs, sizeof(double), cmp_d);
  qsort(cbrook, (size_t)runs, sizeof(double), cmp_d);
  double mr = traw[runs / 2], mb = tbrook[runs / 2], cr = craw[runs / 2], cb = cbrook[runs / 2];
  double rate = (double)n / mb;
  printf("\nrestore (median of %d): brook %.0f records/s (%.0f ns/record, peak RSS %ld KiB), "
         "raw librdkafka + store %.0f records/s (%.0f ns/record, peak RSS %ld KiB), "
         "ratio brook/raw %.3f\n",
         runs, rate, mb * 1e9 / (double)n, rss_brook, (double)n / mr, mr * 1e9 / (double)n, rss_raw,
         mr / mb);
  printf("CPU per record (the process: restore, consumer threads, the final check; what a "
         "loaded machine disturbs least): brook %.0f ns, raw %.0f ns, cpu_ratio %.3f\n",
         cb * 1e9 / (double)n, cr * 1e9 / (double)n, cr / cb);
  printf("bench=state restore records=%" PRIu64 " restore_records_per_s=%.0f "
         "restore_ns_per_record=%.0f raw_records_per_s=%.0f ratio=%.3f cpu_ns_per_record=%.0f "
         "cpu_ratio=%.3f rss_kb=%ld\n",
         n, rate, mb * 1e9 / (double)n, (double)n / mr, mr / mb, cb * 1e9 / (double)n, cr / cb,
         rss_brook);
  /* `na`: measured by the later steps of issue 13 (exactly-once, standbys). */
  printf("bench=state changelog_ratio=%.3f changelog_records_per_input=%.3f "
         "restore_records_per_s=%.0f eos_ratio=na recover_ms_standby=na "
         "recover_ms_no_standby=na\n",
         cl_ratio, per_input, rate);
  return 0;
}
