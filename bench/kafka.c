/* bench_kafka: Kafka -> map -> Kafka through the embedded broker (tools/broker.c), brook
 * against a hand-written librdkafka consume -> map -> produce loop in the same run.
 *
 *   bench_kafka [records] [runs] [workers]   (BROOK_BENCH_SMOKE=1: a tiny run, for ctest)
 *   bench_kafka repartition [records] [runs] key_by + count through a repartition topic
 *
 * workers: brook's num_workers (also BROOK_BENCH_WORKERS); without it, brook runs with 1 and
 * with 2 workers in each run (the explicit assignment gives worker k partitions k, k + N,
 * ...; each worker has its own consumer and producer).
 *
 * Throughput: `records` records of 100 bytes (keys "k<i % 10007>") are produced once into a
 * 64-partition topic; then, alternating, (a) the raw loop and (b) brook's Kafka source ->
 * brook_map -> Kafka sink each read all of them from the beginning (explicit assignment of
 * every partition, so no group-join wait is timed) and write them to their own 64-partition
 * topic, until every output record is acknowledged. Both call the same map callback through
 * a function pointer and use the same producer settings (idempotent, acks=all, murmur2
 * partitioner); the raw loop commits offsets every 100,000 records, brook every second.
 * Each run is a fresh process: its wall time, CPU time and peak RSS are its own.
 *
 * Latency: brook's pipeline runs on its own while this process produces records at a fixed
 * rate, each carrying its send time, and reads the output: p50/p99/max end to end.
 *
 * The last lines are machine-readable, one per worker count:
 * bench=kafka workers=N records=... raw_per_s=... brook_per_s=... ratio=... */
#define _GNU_SOURCE
#include <brook/brook.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "broker_proc.h"

#define REC_BYTES 100
#define N_KEYS 10007
#define MAX_RUNS 15
#define MAX_WCOUNTS 2

static int parts = 64;
static size_t n_workers = 1; /* brook's num_workers for the next run_brook */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_kafka: %s: %s\n", what, why);
  exit(1);
}

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v) {
  char err[512];
  if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
    die(k, err);
}

/* The producer settings brook uses by default, for the raw loop and the input loader. */
static rd_kafka_t *new_producer(const char *bootstrap,
                                void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                void *opaque) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  conf_set(c, "bootstrap.servers", bootstrap);
  conf_set(c, "enable.idempotence", "true");
  conf_set(c, "acks", "all");
  conf_set(c, "partitioner", "murmur2_random");
  conf_set(c, "log_level", "3");
  if (dr)
    rd_kafka_conf_set_dr_msg_cb(c, dr);
  rd_kafka_conf_set_opaque(c, opaque);
  char err[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
  if (!rk)
    die("producer", err);
  return rk;
}

static void produce_retry(rd_kafka_t *p, const char *topic, const void *k, size_t kl, const void *v,
                          size_t vl) {
  rd_kafka_resp_err_t err;
  while ((err = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(k, kl),
                                  RD_KAFKA_V_VALUE((void *)(uintptr_t)v, vl),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
         RD_KAFKA_RESP_ERR__QUEUE_FULL)
    rd_kafka_poll(p, 5);
  if (err)
    die("produce", rd_kafka_err2str(err));
}

/* Loads `n` records of REC_BYTES (keys "k<i % N_KEYS>", value starting with i) into
 * `topic`. */
static void load_input(const char *bootstrap, const char *topic, uint64_t n) {
  rd_kafka_t *p = new_producer(bootstrap, NULL, NULL);
  char val[REC_BYTES];
  memset(val, 'v', sizeof(val));
  for (uint64_t i = 0; i < n; i++) {
    char key[16];
    int kl = snprintf(key, sizeof(key), "k%" PRIu64, i % N_KEYS);
    memcpy(val, &i, sizeof(i));
    produce_retry(p, topic, key, (size_t)kl, val, sizeof(val));
    if (i % 1000 == 0)
      rd_kafka_poll(p, 0);
  }
  if (rd_kafka_flush(p, 120000))
    die("load", "flush timed out");
  rd_kafka_destroy(p);
}

/* ---- the user callback both sides call through a pointer ---- */

typedef struct map_state {
  atomic_uint_fast64_t count, bytes; /* several workers' map instances add to them */
  uint64_t stop_at;
  brook_runtime_t *rt; /* brook: stopped once stop_at records went through */
} map_state_t;

static brook_err_t map_cb(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  map_state_t *m = opaque;
  atomic_fetch_add_explicit(&m->bytes, rec->value_len, memory_order_relaxed);
  if (atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed) + 1 == m->stop_at && m->rt)
    brook_runtime_stop(m->rt); /* drains: every output acknowledged before run returns */
  return BROOK_OK;
}

static brook_map_fn volatile p_map = map_cb;

/* ---- one measured run, in a child process ---- */

typedef struct run_result {
  double secs, cpu;
  uint64_t records, delivered;
  long rss_kb;
} run_result_t;

typedef struct raw_acks {
  uint64_t ok, failed;
} raw_acks_t;

static void raw_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  raw_acks_t *a = opaque;
  if (m->err)
    a->failed++;
  else
    a->ok++;
}

/* fetch_wait: fetch.wait.max.ms, or NULL for librdkafka's default (500). The mock broker
 * holds a fetch for that long when it has no data for it, even if data arrives meanwhile,
 * so the latency measurement uses a short one on both of its consumers. */
static rd_kafka_t *new_consumer(const char *bootstrap, const char *group, const char *topic,
                                int n_parts, const char *fetch_wait) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (fetch_wait)
    conf_set(c, "fetch.wait.max.ms", fetch_wait);
  conf_set(c, "bootstrap.servers", bootstrap);
  conf_set(c, "group.id", group);
  conf_set(c, "enable.auto.commit", "false");
  conf_set(c, "enable.auto.offset.store", "false");
  conf_set(c, "isolation.level", "read_committed");
  conf_set(c, "log_level", "3");
  char err[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
  if (!rk)
    die("consumer", err);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n_parts);
  for (int p = 0; p < n_parts; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  if (rd_kafka_assign(rk, l))
    die("assign", topic);
  rd_kafka_topic_partition_list_destroy(l);
  return rk;
}

static void run_raw(const char *bootstrap, uint64_t n, run_result_t *res) {
  map_state_t ms = {0};
  brook_map_fn map = p_map;
  raw_acks_t acks = {0, 0};
  uint64_t t0 = now_ns();
  rd_kafka_t *c = new_consumer(bootstrap, "bench-raw", "in", parts, NULL);
  rd_kafka_t *p = new_producer(bootstrap, raw_dr, &acks);
  uint64_t consumed = 0;
  while (consumed < n) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m)
      continue;
    if (m->err) {
      rd_kafka_message_destroy(m);
      continue;
    }
    brook_record_t rec = {.key = m->key,
                          .key_len = m->key_len,
                          .value = m->payload,
                          .value_len = m->len,
                          .timestamp = rd_kafka_message_timestamp(m, NULL)};
    if (map(&rec, NULL, &ms) != BROOK_OK)
      die("map", "failed");
    produce_retry(p, "out_raw", rec.key, rec.key_len, rec.value, rec.value_len);
    consumed++;
    if (consumed % 100000 == 0) /* commit what was consumed so far (async) */
      rd_kafka_commit_message(c, m, 1);
    rd_kafka_message_destroy(m);
    rd_kafka_poll(p, 0);
  }
  if (rd_kafka_flush(p, 120000))
    die("flush", "timed out");
  res->secs = (double)(now_ns() - t0) / 1e9;
  res->records = consumed;
  res->delivered = acks.ok;
  rd_kafka_destroy(p);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
}

static void run_brook(const char *bootstrap, uint64_t n, run_result_t *res) {
  brook_topology_t *t;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    die("topology", "new");
  brook_kafka_partition_t *ps = calloc((size_t)parts, sizeof(*ps));
  for (int i = 0; i < parts; i++)
    ps[i] = (brook_kafka_partition_t){"in", i, BROOK_KAFKA_OFFSET_BEGINNING};
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = "bench-brook";
  so.partitions = ps;
  so.n_partitions = (size_t)parts;
  map_state_t ms = {.stop_at = n};
  brook_stream_t *in = brook_source_kafka(t, "in", &so);
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = bootstrap;
  ko.topic = "out_brook";
  brook_sink_kafka(brook_map(in, p_map, &ms), "out", &ko);
  free(ps);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = n_workers;
  brook_runtime_t *rt;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK)
    die("runtime", brook_topology_last_error(t));
  ms.rt = rt;
  uint64_t t0 = now_ns();
  brook_err_t err = brook_runtime_run(rt);
  res->secs = (double)(now_ns() - t0) / 1e9;
  if (err != BROOK_OK)
    die("brook run", brook_runtime_last_error(rt));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  brook_runtime_stats(rt, &st);
  res->records = atomic_load(&ms.count);
  res->delivered = st.records_out; /* handed to the sink; the run ends once all are acked */
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* Runs one side in a fresh process; returns its figures with its peak RSS. */
static run_result_t run_child(int brook, const char *bootstrap, uint64_t n) {
  int fd[2];
  if (pipe(fd))
    die("pipe", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", strerror(errno));
  if (pid == 0) {
    close(fd[0]);
    run_result_t r = {0};
    if (brook)
      run_brook(bootstrap, n, &r);
    else
      run_raw(bootstrap, n, &r);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    ssize_t w = write(fd[1], &r, sizeof(r));
    _exit(w == (ssize_t)sizeof(r) ? 0 : 1);
  }
  close(fd[1]);
  run_result_t r;
  size_t got = 0;
  while (got < sizeof(r)) {
    ssize_t k = read(fd[0], (char *)&r + got, sizeof(r) - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  close(fd[0]);
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  if (got != sizeof(r) || !WIFEXITED(status) || WEXITSTATUS(status))
    die(brook ? "brook run" : "raw run", "the child failed");
  r.rss_kb = ru.ru_maxrss;
  return r;
}

/* ---- latency at a fixed input rate ---- */

typedef struct lat_producer {
  const char *bootstrap;
  uint64_t n, rate;
} lat_producer_t;

static void *lat_produce(void *p) {
  lat_producer_t *lp = p;
  rd_kafka_t *pr = new_producer(lp->bootstrap, NULL, NULL);
  char val[REC_BYTES];
  memset(val, 'x', sizeof(val));
  uint64_t start = now_ns(), gap = 1000000000u / lp->rate;
  for (uint64_t i = 0; i < lp->n; i++) {
    uint64_t due = start + i * gap;
    while (now_ns() < due) { /* paced: spin briefly, poll the producer meanwhile */
      rd_kafka_poll(pr, 0);
    }
    uint64_t sent = now_ns();
    memcpy(val, &sent, sizeof(sent));
    char key[16];
    int kl = snprintf(key, sizeof(key), "k%" PRIu64, i % N_KEYS);
    produce_retry(pr, "lat_in", key, (size_t)kl, val, sizeof(val));
  }
  rd_kafka_flush(pr, 60000);
  rd_kafka_destroy(pr);
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Starts brook on lat_in -> map -> lat_out in a child, produces `n` records at `rate`/s and
 * measures each record's time from send to arrival in lat_out. */
static void measure_latency(const char *bootstrap, uint64_t n, uint64_t rate, double *p50,
                            double *p99, double *pmax) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", strerror(errno));
  if (pid == 0) {
    brook_topology_t *t;
    brook_topology_new(&t, NULL);
    brook_kafka_source_opts_t so;
    brook_kafka_source_opts_init(&so);
    so.bootstrap_servers = bootstrap;
    so.group_id = "bench-lat";
    brook_kafka_partition_t ps[8];
    for (int i = 0; i < 8; i++)
      ps[i] = (brook_kafka_partition_t){"lat_in", i, BROOK_KAFKA_OFFSET_BEGINNING};
    so.partitions = ps;
    so.n_partitions = 8;
    so.properties = (const char *const[]){"fetch.wait.max.ms", "5", NULL};
    map_state_t ms = {.stop_at = n + 1}; /* + the warm-up record */
    brook_kafka_sink_opts_t ko;
    brook_kafka_sink_opts_init(&ko);
    ko.bootstrap_servers = bootstrap;
    ko.topic = "lat_out";
    ko.properties = (const char *const[]){"linger.ms", "1", NULL};
    brook_sink_kafka(brook_map(brook_source_kafka(t, "lat", &so), p_map, &ms), "out", &ko);
    brook_runtime_t *rt;
    if (brook_runtime_new(&rt, t, NULL) != BROOK_OK)
      _exit(1);
    ms.rt = rt;
    brook_err_t err = brook_runtime_run(rt);
    brook_runtime_free(rt);
    brook_topology_free(t);
    _exit(err == BROOK_OK ? 0 : 1);
  }
  /* Warm-up: one record through, so the pipeline is running before the clock starts. */
  lat_producer_t warm = {bootstrap, 1, 1000};
  lat_produce(&warm);
  rd_kafka_t *c = new_consumer(bootstrap, "bench-lat-reader", "lat_out", 8, "5");
  uint64_t seen = 0, deadline = now_ns() + 60000000000ull;
  while (seen < 1 && now_ns() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (m && !m->err)
      seen++;
    if (m)
      rd_kafka_message_destroy(m);
  }
  if (!seen)
    die("latency", "the warm-up record never came out");
  lat_producer_t lp = {bootstrap, n, rate};
  pthread_t th;
  pthread_create(&th, NULL, lat_produce, &lp);
  uint64_t *lat = calloc(n, sizeof(*lat));
  uint64_t got = 0;
  deadline = now_ns() + 120000000000ull;
  while (got < n && now_ns() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m)
      continue;
    if (!m->err && m->len >= sizeof(uint64_t)) {
      uint64_t sent;
      memcpy(&sent, m->payload, sizeof(sent));
      lat[got++] = now_ns() - sent;
    }
    rd_kafka_message_destroy(m);
  }
  pthread_join(th, NULL);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  int status;
  waitpid(pid, &status, 0);
  if (got < n)
    die("latency", "not every record came out");
  qsort(lat, got, sizeof(*lat), cmp_u64);
  *p50 = (double)lat[got / 2] / 1e6;
  *p99 = (double)lat[(got * 99) / 100] / 1e6;
  *pmax = (double)lat[got - 1] / 1e6;
  free(lat);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- repartition mode: key_by + count through the repartition topic ---- */

/* `bench_kafka repartition [records] [runs]`: records keyed "k<i % 10007>" in an 8-partition
 * topic, read by a group subscription (1 worker); (a) key_by (the same key) + count per key,
 * through the repartition topic "<group>-by_key-repartition" (8 partitions), against (b) the
 * count per key without the key change (the input is partitioned by that key already: what
 * the pipeline costs without a repartition). Timed until every record's count came out:
 * `ratio` from the moment every task is RUNNING (the group's join is not timed; but the
 * upstream tasks may run, and read, before the repartition topic's readers are RUNNING, so
 * part of the work can escape it), `work_ratio` from the first input record read (a peek
 * after the source) and `cpu_ratio` the process's CPU time per record over that same span
 * (every thread; the broker is another process), which other load on the shared machine
 * disturbs far less than wall-clock time. Medians of the runs. */
/* The process's CPU seconds so far (every thread: the loop's and librdkafka's). */
static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

typedef struct rp_run {
  atomic_uint_fast64_t results;
  atomic_uint_fast64_t first_ns;     /* when the first input record entered the pipeline */
  atomic_uint_fast64_t first_cpu_ns; /* the process's CPU time then */
  atomic_int running;
} rp_run_t;

/* Notes when the first record came from the input (a task may run, and read, before the
 * others are RUNNING: the time is taken from the first record, not from the assignment). */
static brook_err_t rp_first(const brook_record_t *rec, void *opaque) {
  (void)rec;
  rp_run_t *r = opaque;
  uint_fast64_t none = 0;
  if (atomic_load_explicit(&r->first_ns, memory_order_relaxed) == 0 &&
      atomic_compare_exchange_strong(&r->first_ns, &none, now_ns()))
    atomic_store(&r->first_cpu_ns, (uint_fast64_t)(cpu_now() * 1e9));
  return BROOK_OK;
}

static void rp_on_task(int32_t task, int old_state, int new_state, const char *reason,
                       void *opaque) {
  (void)task, (void)reason;
  rp_run_t *r = opaque;
  atomic_fetch_add(&r->running,
                   (new_state == BROOK_TASK_RUNNING) - (old_state == BROOK_TASK_RUNNING));
}

static brook_err_t rp_result(const brook_record_t *rec, void *opaque) {
  (void)rec;
  atomic_fetch_add(&((rp_run_t *)opaque)->results, 1);
  return BROOK_OK;
}

static brook_err_t rp_same_key(const brook_record_t *rec, const void **key, size_t *key_len,
                               brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->key;
  *key_len = rec->key_len;
  return BROOK_OK;
}

static void *rp_thread(void *rt) {
  brook_runtime_run(rt);
  return NULL;
}

/* One run: seconds from every task RUNNING to n results; in *first the seconds from the first
 * input record read to n results (the work: a task may read before the others run); in *cpu
 * the process's CPU seconds over that time (every thread; the broker is another process: not
 * counted). */
static double rp_once(const char *bootstrap, const char *group, int repartition, uint64_t n,
                      double *cpu, double *first) {
  brook_topology_t *t;
  if (brook_topology_new(&t, NULL))
    die("topology", "out of memory");
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){"rp_in", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  rp_run_t r;
  atomic_init(&r.results, 0);
  atomic_init(&r.first_ns, 0);
  atomic_init(&r.first_cpu_ns, 0);
  atomic_init(&r.running, 0);
  brook_stream_t *in = brook_peek(brook_source_kafka(t, "in", &so), rp_first, &r);
  if (repartition)
    in = brook_stream_set_name(brook_key_by(in, rp_same_key, NULL), "by_key");
  if (brook_sink_callback(brook_count(in, NULL), rp_result, NULL, &r))
    die("topology", brook_topology_last_error(t));
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.on_task_state = rp_on_task;
  o.on_task_state_opaque = &r;
  brook_runtime_t *rt;
  if (brook_runtime_new(&rt, t, &o))
    die("runtime", brook_topology_last_error(t));
  pthread_t th;
  pthread_create(&th, NULL, rp_thread, rt);
  int tasks = repartition ? 16 : 8;
  struct timespec tick = {0, 200000};
  uint64_t due = now_ns() + 60 * 1000000000ull; /* a run that stalls says where */
  while (atomic_load(&r.running) < tasks && now_ns() < due)
    nanosleep(&tick, NULL);
  uint64_t t0 = now_ns();
  while (atomic_load(&r.results) < n && now_ns() < due)
    nanosleep(&tick, NULL);
  uint64_t t2 = now_ns();
  if (atomic_load(&r.results) < n) {
    fprintf(stderr, "run %s stalled: %d of %d tasks running, %" PRIu64 " of %" PRIu64 " results\n",
            group, (int)atomic_load(&r.running), tasks, (uint64_t)atomic_load(&r.results), n);
    exit(1);
  }
  double secs = (double)(t2 - t0) / 1e9;
  *first = (double)(t2 - atomic_load(&r.first_ns)) / 1e9;
  *cpu = cpu_now() - (double)atomic_load(&r.first_cpu_ns) / 1e9;
  brook_runtime_stop(rt);
  pthread_join(th, NULL);
  brook_runtime_free(rt);
  brook_topology_free(t);
  return secs;
}

static int repartition_main(int argc, char **argv) {
  int smoke = getenv("BROOK_BENCH_SMOKE") != NULL;
  uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : smoke ? 5000 : 200000;
  int runs = argc > 2 ? atoi(argv[2]) : smoke ? 1 : 3;
  if (n == 0 || runs < 1 || runs > MAX_RUNS || n * (REC_BYTES + 40) / 8 > 4u * 1024 * 1024) {
    fprintf(stderr, "usage: bench_kafka repartition [records, <= 240000] [runs 1..%d]\n", MAX_RUNS);
    return 2;
  }
  broker_proc_t b;
  if (broker_start(&b, 1, (const char *const[]){"rp_in:8", NULL}, NULL) != 0)
    die("broker", "brook-broker did not start");
  load_input(b.bootstrap, "rp_in", n);
  printf("bench_kafka repartition: %" PRIu64 " records of %d bytes, 8 partitions, 1 worker\n", n,
         REC_BYTES);
  double tr[MAX_RUNS], tl[MAX_RUNS], cr[MAX_RUNS], cl[MAX_RUNS], sr[MAX_RUNS], sl[MAX_RUNS];
  for (int r = 0; r < runs; r++) {
    char group[32];
    snprintf(group, sizeof(group), "rpl%d", r);
    tl[r] = rp_once(b.bootstrap, group, 0, n, &cl[r], &sl[r]);
    snprintf(group, sizeof(group), "rpr%d", r);
    if (broker_cmd(&b, "topic %s-by_key-repartition 8", group))
      die("broker", "topic");
    tr[r] = rp_once(b.bootstrap, group, 1, n, &cr[r], &sr[r]);
    printf("  run %d: no key change %8.0f rec/s, key_by through the topic %8.0f rec/s, ratio "
           "%.3f (from the first record %.3f); CPU us/record %.2f and %.2f, cpu_ratio %.3f\n",
           r + 1, (double)n / tl[r], (double)n / tr[r], tl[r] / tr[r], sl[r] / sr[r],
           cl[r] * 1e6 / (double)n, cr[r] * 1e6 / (double)n, cl[r] / cr[r]);
  }
  broker_stop(&b);
  double rs[MAX_RUNS], rc[MAX_RUNS];
  for (int r = 0; r < runs; r++)
    rs[r] = sl[r] / sr[r], rc[r] = cl[r] / cr[r];
  qsort(tl, (size_t)runs, sizeof(double), cmp_d);
  qsort(tr, (size_t)runs, sizeof(double), cmp_d);
  qsort(cl, (size_t)runs, sizeof(double), cmp_d);
  qsort(cr, (size_t)runs, sizeof(double), cmp_d);
  qsort(rs, (size_t)runs, sizeof(double), cmp_d);
  qsort(rc, (size_t)runs, sizeof(double), cmp_d);
  /* Medians. ratio: wall-clock speed, repartition over local, from every task RUNNING (a task
   * that ran before may have done part of the work untimed); work_ratio: the same from the
   * first input record on (all of the work); cpu_ratio: CPU per record, local over
   * repartition (far less disturbed by other load on a shared machine). */
  printf("bench=kafka_repartition records=%" PRIu64 " local_per_s=%.0f repartition_per_s=%.0f "
         "ratio=%.3f work_ratio=%.3f local_cpu_us=%.2f repartition_cpu_us=%.2f "
         "cpu_ratio=%.3f\n",
         n, (double)n / tl[runs / 2], (double)n / tr[runs / 2], tl[runs / 2] / tr[runs / 2],
         rs[runs / 2], cl[runs / 2] * 1e6 / (double)n, cr[runs / 2] * 1e6 / (double)n,
         rc[runs / 2]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "repartition") == 0)
    return repartition_main(argc - 1, argv + 1);
  int smoke = getenv("BROOK_BENCH_SMOKE") != NULL;
  uint64_t n = smoke ? 20000 : 2000000;
  int runs = smoke ? 1 : 3;
  uint64_t lat_n = smoke ? 2000 : 100000, lat_rate = smoke ? 2000 : 20000;
  if (smoke)
    parts = 8;
  if (argc > 1)
    n = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    runs = atoi(argv[2]);
  size_t wcounts[MAX_WCOUNTS] = {1, 2};
  int n_wc = 2;
  const char *wenv = argc > 3 ? argv[3] : getenv("BROOK_BENCH_WORKERS");
  if (wenv) {
    wcounts[0] = (size_t)atoi(wenv);
    n_wc = 1;
  }
  if (n == 0 || runs < 1 || runs > MAX_RUNS || wcounts[0] < 1 || wcounts[0] > 64) {
    fprintf(stderr, "usage: bench_kafka [records] [runs 1..%d] [workers 1..64]\n", MAX_RUNS);
    return 2;
  }
  char in[32], out_raw[32], out_brook[32];
  snprintf(in, sizeof(in), "in:%d", parts);
  snprintf(out_raw, sizeof(out_raw), "out_raw:%d", parts);
  snprintf(out_brook, sizeof(out_brook), "out_brook:%d", parts);
  broker_proc_t b;
  if (broker_start(&b, 1,
                   (const char *const[]){in, out_raw, out_brook, "lat_in:8", "lat_out:8", NULL},
                   NULL) != 0)
    die("broker", "brook-broker did not start");
  printf("bench_kafka: %" PRIu64 " records of %d bytes, %d partitions, embedded broker at %s; "
         "%d runs each, alternating, each in a fresh process\n",
         n, REC_BYTES, parts, b.bootstrap, runs);
  /* Load the input once. The mock keeps ~5 MiB per partition: stay below. */
  if (n * (REC_BYTES + 20) / (uint64_t)parts > 4u * 1024 * 1024)
    die("input", "too many records for the mock broker's per-partition retention");
  load_input(b.bootstrap, "in", n);
  double traw[MAX_RUNS], tbrook[MAX_WCOUNTS][MAX_RUNS], craw[MAX_RUNS],
      cbrook[MAX_WCOUNTS][MAX_RUNS];
  long rss_raw = 0, rss_brook[MAX_WCOUNTS] = {0};
  for (int r = 0; r < runs; r++) {
    run_result_t a = run_child(0, b.bootstrap, n);
    if (a.records != n || a.delivered != n)
      die("run", "the raw loop did not move every record");
    traw[r] = a.secs;
    craw[r] = a.cpu;
    rss_raw = a.rss_kb > rss_raw ? a.rss_kb : rss_raw;
    printf("  run %d: raw %8.0f rec/s (%.2f s, cpu %.2f s, %ld KiB)\n", r + 1, (double)n / a.secs,
           a.secs, a.cpu, a.rss_kb);
    for (int w = 0; w < n_wc; w++) {
      n_workers = wcounts[w];
      run_result_t k = run_child(1, b.bootstrap, n);
      if (k.records != n || k.delivered != n)
        die("run", "brook did not move every record");
      tbrook[w][r] = k.secs;
      cbrook[w][r] = k.cpu;
      rss_brook[w] = k.rss_kb > rss_brook[w] ? k.rss_kb : rss_brook[w];
      printf("         brook workers=%zu %8.0f rec/s (%.2f s, cpu %.2f s, %ld KiB)   ratio %.3f\n",
             wcounts[w], (double)n / k.secs, k.secs, k.cpu, k.rss_kb, a.secs / k.secs);
    }
  }
  qsort(traw, (size_t)runs, sizeof(double), cmp_d);
  qsort(craw, (size_t)runs, sizeof(double), cmp_d);
  double mr = traw[runs / 2];
  n_workers = 1;
  double p50, p99, pmax;
  measure_latency(b.bootstrap, lat_n, lat_rate, &p50, &p99, &pmax);
  broker_stop(&b);
  printf("\nlatency at %" PRIu64 " rec/s (%" PRIu64 " records, brook, 1 worker): p50 %.2f ms, "
         "p99 %.2f ms, max %.2f ms\n",
         lat_rate, lat_n, p50, p99, pmax);
  for (int w = 0; w < n_wc; w++) {
    qsort(tbrook[w], (size_t)runs, sizeof(double), cmp_d);
    qsort(cbrook[w], (size_t)runs, sizeof(double), cmp_d);
    double mb = tbrook[w][runs / 2];
    printf("medians, %zu worker(s): raw %.0f rec/s (%.0f ns/rec, cpu %.2f s), brook %.0f rec/s "
           "(%.0f ns/rec, cpu %.2f s), ratio brook/raw %.3f; peak RSS raw %ld KiB, brook %ld "
           "KiB\n",
           wcounts[w], (double)n / mr, mr * 1e9 / (double)n, craw[runs / 2], (double)n / mb,
           mb * 1e9 / (double)n, cbrook[w][runs / 2], mr / mb, rss_raw, rss_brook[w]);
  }
  for (int w = 0; w < n_wc; w++) {
    double mb = tbrook[w][runs / 2];
    printf("bench=kafka workers=%zu records=%" PRIu64 " raw_per_s=%.0f brook_per_s=%.0f "
           "ratio=%.3f raw_cpu_s=%.2f brook_cpu_s=%.2f raw_rss_kb=%ld brook_rss_kb=%ld "
           "p50_ms=%.2f p99_ms=%.2f\n",
           wcounts[w], n, (double)n / mr, (double)n / mb, mr / mb, craw[runs / 2],
           cbrook[w][runs / 2], rss_raw, rss_brook[w], p50, p99);
  }
  return 0;
}
