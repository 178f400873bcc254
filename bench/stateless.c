/* bench_stateless: generator -> filter -> map -> counting sink, against a hand-written loop
 * that calls the very same callbacks through function pointers (no framework). The ratio
 * brook/loop is brook's own overhead: batching, fused dispatch, emit.
 *
 *   bench_stateless [records] [runs] [workers]   (BROOK_BENCH_SMOKE=1: tiny run, for ctest)
 *
 * Two variants, each against its own same-run loop:
 *   payload  the callbacks touch a 32-byte value (write it, read it, key on it) and sample
 *            end-to-end latency (sampled records carry their creation time to the sink);
 *   cheap    callbacks of a few instructions on the timestamp only, so brook's own cost per
 *            record is most of what is measured.
 * Without a worker count (argument or BROOK_BENCH_WORKERS) it measures 1 and 2 workers; with
 * N workers the generator has N splits (one per worker) and each worker has its own sink
 * state, summed after the run. The loop always runs on one thread. With N workers each round
 * also runs ONE worker through those same split callbacks (the generator state found per
 * record with brook_ctx_split, the sink state per thread), which cost more than the direct
 * callbacks of the 1-worker line: scaling= is the median over rounds of that run's time over
 * the N workers' time, brook's own speed-up. BROOK_BENCH_BATCH sets
 * the runtime's batch_size (1..8192; default the runtime's own, 1024).
 *
 * Prints per-run figures, medians, latency percentiles (payload), peak RSS, and a key=value
 * line per variant and worker count, with workers=N. Each ratio is given twice: from
 * wall-clock time (throughput) and from the process's CPU time (loop CPU / brook CPU), which
 * other load on a shared machine disturbs far less (with N workers, brook's CPU time is that
 * of all its threads: cpu_ratio is then CPU per record, not speed). */
#include <brook/brook.h>
#include <uv.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define VALUE_SIZE 32
#define RING 8192 /* value buffers: more than a batch, so values live until the batch ends */
#define SAMPLE_EVERY 4096
#define MAX_SAMPLES (1 << 16)

typedef struct gen_state {
  uint64_t next;
  uint64_t limit;
  unsigned char ring[RING][VALUE_SIZE];
} gen_state_t;

typedef struct sink_state {
  uint64_t count;
  uint64_t checksum;
  uint64_t *lat_ns; /* sampled latencies */
  size_t n_lat;
} sink_state_t;

/* ---- the user callbacks, shared by brook and the baseline ---- */

static brook_err_t gen_cb(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  gen_state_t *g = opaque;
  if (g->next == g->limit)
    return BROOK_DONE;
  uint64_t i = g->next++;
  unsigned char *v = g->ring[i % RING];
  memcpy(v, &i, sizeof(i));
  uint64_t stamp = (i % SAMPLE_EVERY == 0) ? uv_hrtime() : 0;
  memcpy(v + 8, &stamp, sizeof(stamp));
  memset(v + 16, (int)(i & 0xff), VALUE_SIZE - 16);
  out->value = v;
  out->value_len = VALUE_SIZE;
  out->timestamp = (brook_time_t)i;
  return BROOK_OK;
}

static int filter_cb(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  const unsigned char *v = rec->value;
  return (v[0] & 3) != 3; /* keeps 75% */
}

static brook_err_t map_cb(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  (void)opaque;
  rec->key = rec->value; /* key = the first 8 bytes (the sequence number) */
  rec->key_len = 8;
  rec->timestamp += 1000;
  return BROOK_OK;
}

static brook_err_t sink_cb(const brook_record_t *rec, void *opaque) {
  sink_state_t *s = opaque;
  const unsigned char *v = rec->value;
  uint64_t stamp;
  memcpy(&stamp, v + 8, sizeof(stamp));
  if (stamp && s->n_lat < MAX_SAMPLES)
    s->lat_ns[s->n_lat++] = uv_hrtime() - stamp;
  s->count++;
  s->checksum += v[16] + (uint64_t)rec->timestamp;
  return BROOK_OK;
}

/* ---- the cheap variant: a few instructions each, on the timestamp only ---- */

static brook_err_t cheap_gen_cb(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  gen_state_t *g = opaque;
  if (g->next == g->limit)
    return BROOK_DONE;
  out->timestamp = (brook_time_t)g->next++;
  return BROOK_OK;
}

static int cheap_filter_cb(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return (rec->timestamp & 3) != 3; /* keeps 75% */
}

static brook_err_t cheap_map_cb(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  (void)opaque;
  rec->timestamp += 1000;
  return BROOK_OK;
}

static brook_err_t cheap_sink_cb(const brook_record_t *rec, void *opaque) {
  sink_state_t *s = opaque;
  s->count++;
  s->checksum += (uint64_t)rec->timestamp;
  return BROOK_OK;
}

typedef struct variant {
  const char *name;
  const char *what;
  brook_generator_fn gen;
  brook_predicate_fn filter;
  brook_map_fn map;
  brook_sink_fn sink;
  int latency; /* its records carry creation stamps */
} variant_t;

/* Read through a volatile pointer so the compiler cannot inline the callbacks into the
 * baseline. */
static variant_t variants[] = {
    {"payload", "records of 32-byte values", gen_cb, filter_cb, map_cb, sink_cb, 1},
    {"cheap", "callbacks of a few instructions", cheap_gen_cb, cheap_filter_cb, cheap_map_cb,
     cheap_sink_cb, 0},
};
#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

/* ---- N workers: per-split generator state, per-thread sink state ---- */

#define MAX_WORKERS 64

typedef struct workers_state {
  const variant_t *v; /* the variant's callbacks */
  gen_state_t *gens;  /* one per split: split k produces [start_k, start_k + count_k) */
  struct {
    _Alignas(64) sink_state_t s; /* a cache line each: no false sharing between workers */
  } sinks[MAX_WORKERS];
  atomic_int n_sinks;
  unsigned run; /* numbers the runs: a thread's claim from an earlier run is stale */
} workers_state_t;

static brook_err_t gen_split_cb(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  workers_state_t *ws = opaque;
  return ws->v->gen(out, ctx, &ws->gens[brook_ctx_split(ctx)]);
}

static uint64_t *lat_bufs[MAX_WORKERS]; /* the workers' sampled latencies */

static _Thread_local sink_state_t *my_sink;
static _Thread_local unsigned my_sink_run; /* the run my_sink was claimed in */

static brook_err_t sink_split_cb(const brook_record_t *rec, void *opaque) {
  workers_state_t *ws = opaque;
  if (my_sink_run != ws->run) { /* this worker's first record of the run: claim a sink state */
    my_sink = &ws->sinks[atomic_fetch_add(&ws->n_sinks, 1)].s;
    my_sink_run = ws->run;
  }
  return ws->v->sink(rec, my_sink);
}

static double run_baseline(const variant_t *volatile vp, gen_state_t *g, sink_state_t *s) {
  brook_generator_fn gen = vp->gen;
  brook_predicate_fn filt = vp->filter;
  brook_map_fn map = vp->map;
  brook_sink_fn sink = vp->sink;
  uint64_t t0 = uv_hrtime();
  for (;;) {
    brook_record_t r;
    memset(&r, 0, sizeof(r));
    if (gen(&r, NULL, g) != BROOK_OK)
      break;
    int keep = filt(&r, NULL);
    if (keep < 0)
      abort();
    if (keep == 0)
      continue;
    if (map(&r, NULL, NULL) < 0 || sink(&r, s) < 0)
      abort();
  }
  return (double)(uv_hrtime() - t0) / 1e9;
}

static size_t bench_batch; /* BROOK_BENCH_BATCH, or the runtime's default */
/* Run one worker through the N-worker callbacks (per-split generator state found with
 * brook_ctx_split, per-thread sink state): the reference for scaling, so that 1 and N workers
 * pay the same callbacks. */
static int one_worker_split_path;

static double run_brook(const variant_t *v, gen_state_t *g, sink_state_t *s, size_t workers) {
  brook_topology_t *t = NULL;
  brook_runtime_t *rt = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    abort();
  static workers_state_t ws;
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = workers;
  brook_stream_t *src;
  int direct = workers == 1 && !one_worker_split_path;
  if (direct) {
    src = brook_source_generator(t, "gen", v->gen, g, NULL);
  } else {
    if (!(ws.gens = calloc(workers, sizeof(*ws.gens))))
      abort();
    for (size_t k = 0, start = 0; k < workers; k++) {
      size_t count = g->limit / workers + (k < g->limit % workers);
      ws.gens[k].next = start;
      ws.gens[k].limit = start + count;
      start += count;
    }
    memset(ws.sinks, 0, sizeof(ws.sinks));
    for (size_t k = 0; k < MAX_WORKERS; k++)
      ws.sinks[k].s.lat_ns = lat_bufs[k];
    atomic_store(&ws.n_sinks, 0);
    ws.run++;
    ws.v = v;
    src = brook_source_generator(t, "gen", gen_split_cb, &ws, &go);
  }
  brook_stream_t *out = brook_map(brook_filter(src, v->filter, NULL), v->map, NULL);
  if (direct)
    brook_sink_callback(out, v->sink, NULL, s);
  else
    brook_sink_callback(out, sink_split_cb, NULL, &ws);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  ro.batch_size = bench_batch;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK) {
    fprintf(stderr, "runtime_new: %s\n", brook_topology_last_error(t));
    exit(1);
  }
  uint64_t t0 = uv_hrtime();
  brook_err_t err = brook_runtime_run(rt);
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  if (err != BROOK_OK) {
    fprintf(stderr, "run: %s\n", brook_runtime_last_error(rt));
    exit(1);
  }
  brook_runtime_free(rt);
  brook_topology_free(t);
  if (!direct) { /* the workers' sink states, as one */
    for (int k = 0; k < atomic_load(&ws.n_sinks); k++) {
      sink_state_t *w = &ws.sinks[k].s;
      s->count += w->count;
      s->checksum += w->checksum;
      for (size_t i = 0; i < w->n_lat && s->n_lat < MAX_SAMPLES; i++)
        s->lat_ns[s->n_lat++] = w->lat_ns[i];
    }
  }
  free(ws.gens);
  ws.gens = NULL;
  return secs;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t pct(const uint64_t *v, size_t n, double p) {
  if (!n)
    return 0;
  size_t i = (size_t)(p * (double)(n - 1));
  return v[i];
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* CPU time of the whole process (every thread), in seconds. */
static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct result {
  double brook_s, loop_s; /* medians, wall clock */
  double scaling; /* N workers: median over rounds of (1 worker through the same callbacks) / N */
  double brook_cpu_s, loop_cpu_s; /* medians, process CPU time */
  uint64_t count, checksum;
  uint64_t *lat; /* sampled latencies of brook's last run, sorted */
  size_t n_lat;
} result_t;

/* Alternating runs of the loop and brook with `workers` workers; 0, or 1 if brook's output
 * differs from the loop's (or memory ran out). */
static int measure(const variant_t *v, uint64_t records, int runs, size_t workers, gen_state_t *g,
                   sink_state_t *s, result_t *res) {
  double tb[99], tl[99], cb[99], cl[99], t1[99];
  printf("%s: generator -> filter(75%%) -> map -> counting sink, %s, %" PRIu64
         " records, %d runs each, alternating, %zu worker(s)\n",
         v->name, v->what, records, runs, workers);
  for (size_t k = 0; k < MAX_WORKERS && workers > 1; k++)
    if (!lat_bufs[k] && !(lat_bufs[k] = malloc(MAX_SAMPLES * sizeof(uint64_t))))
      return 1;
  for (int r = 0; r < runs; r++) {
    memset(g, 0, sizeof(*g));
    g->limit = records;
    s->count = s->checksum = 0;
    s->n_lat = 0;
    double c0 = cpu_seconds();
    tl[r] = run_baseline(v, g, s);
    cl[r] = cpu_seconds() - c0;
    uint64_t expect_count = s->count, expect_sum = s->checksum;
    memset(g, 0, sizeof(*g));
    g->limit = records;
    s->count = s->checksum = 0;
    s->n_lat = 0;
    c0 = cpu_seconds();
    tb[r] = run_brook(v, g, s, workers);
    cb[r] = cpu_seconds() - c0;
    if (s->count != expect_count || s->checksum != expect_sum) {
      fprintf(stderr,
              "MISMATCH (%s, %zu workers): brook count=%" PRIu64 " sum=%" PRIu64
              ", loop count=%" PRIu64 " sum=%" PRIu64 "\n",
              v->name, workers, s->count, s->checksum, expect_count, expect_sum);
      return 1;
    }
    memcpy(res->lat, s->lat_ns, s->n_lat * sizeof(*res->lat));
    res->n_lat = s->n_lat;
    res->count = s->count;
    res->checksum = s->checksum;
    printf("  run %d: loop %.1f M rec/s (%.2f ns/rec)   brook %.1f M rec/s (%.2f ns/rec)   "
           "ratio %.3f (cpu %.3f)",
           r + 1, (double)records / tl[r] / 1e6, tl[r] * 1e9 / (double)records,
           (double)records / tb[r] / 1e6, tb[r] * 1e9 / (double)records, tl[r] / tb[r],
           cl[r] / cb[r]);
    t1[r] = 0;
    if (workers > 1) { /* the scaling reference, in the same round */
      memset(g, 0, sizeof(*g));
      g->limit = records;
      s->count = s->checksum = 0;
      s->n_lat = 0;
      one_worker_split_path = 1;
      t1[r] = run_brook(v, g, s, 1);
      one_worker_split_path = 0;
      if (s->count != expect_count || s->checksum != expect_sum) {
        fprintf(stderr, "MISMATCH (%s, 1 worker through the split callbacks)\n", v->name);
        return 1;
      }
      printf("   1 worker, same callbacks: %.1f M rec/s, %zu workers %.2fx",
             (double)records / t1[r] / 1e6, workers, t1[r] / tb[r]);
    }
    printf("\n");
  }
  for (int r = 0; workers > 1 && r < runs; r++)
    t1[r] /= tb[r]; /* each round's speed-up: the same minutes' noise on both */
  res->scaling = workers > 1 ? median(t1, runs) : 0;
  res->brook_s = median(tb, runs);
  res->loop_s = median(tl, runs);
  res->brook_cpu_s = median(cb, runs);
  res->loop_cpu_s = median(cl, runs);
  qsort(res->lat, res->n_lat, sizeof(*res->lat), cmp_u64);
  return 0;
}

static void report(const variant_t *v, uint64_t records, size_t workers, const result_t *res) {
  double brook_rps = (double)records / res->brook_s, loop_rps = (double)records / res->loop_s;
  double ns = res->brook_s * 1e9 / (double)records;
  double cpu_ratio = res->loop_cpu_s / res->brook_cpu_s;
  long rss = peak_rss_kb();
  printf("%s median (%zu worker(s)): brook %.1f M records/s (%.2f ns/record), loop %.1f M "
         "records/s (%.2f ns/record), ratio brook/loop %.3f; CPU time %.2f against %.2f "
         "ns/record, ratio %.3f\n",
         v->name, workers, brook_rps / 1e6, ns, loop_rps / 1e6, res->loop_s * 1e9 / (double)records,
         brook_rps / loop_rps, res->brook_cpu_s * 1e9 / (double)records,
         res->loop_cpu_s * 1e9 / (double)records, cpu_ratio);
  double p50 = (double)pct(res->lat, res->n_lat, 0.50) / 1e3;
  double p99 = (double)pct(res->lat, res->n_lat, 0.99) / 1e3;
  if (v->latency)
    printf("%s brook source-to-sink latency (sampled, last run): p50 %.1f us, p99 %.1f us, "
           "p99.9 %.1f us, max %.1f us\n",
           v->name, p50, p99, (double)pct(res->lat, res->n_lat, 0.999) / 1e3,
           (double)pct(res->lat, res->n_lat, 1.0) / 1e3);
  if (workers > 1)
    printf("%s scaling: %zu workers run %.3fx as fast as 1 worker through the same callbacks "
           "(median of the rounds' ratios)\n",
           v->name, workers, res->scaling);
  printf("%s peak RSS %ld KiB; records kept by the sink %" PRIu64 "; checksum %" PRIu64 "\n",
         v->name, rss, res->count, res->checksum);
  printf("bench=stateless variant=%s workers=%zu batch=%zu records=%" PRIu64
         " records_per_s=%.0f ns_per_record=%.2f loop_records_per_s=%.0f ratio=%.3f "
         "cpu_ratio=%.3f",
         v->name, workers, bench_batch, records, brook_rps, ns, loop_rps, brook_rps / loop_rps,
         cpu_ratio);
  if (v->latency)
    printf(" p50_us=%.1f p99_us=%.1f", p50, p99);
  if (workers > 1)
    printf(" scaling=%.3f", res->scaling);
  printf(" peak_rss_kb=%ld\n", rss);
}

int main(int argc, char **argv) {
  int smoke = getenv("BROOK_BENCH_SMOKE") != NULL;
  uint64_t records = smoke ? 200000 : 50000000;
  int runs = smoke ? 1 : 5;
  if (argc > 1)
    records = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    runs = atoi(argv[2]);
  size_t worker_counts[2] = {1, 2}, n_counts = 2;
  brook_runtime_opts_t defaults;
  brook_runtime_opts_init(&defaults);
  bench_batch = defaults.batch_size;
  const char *benv = getenv("BROOK_BENCH_BATCH");
  if (benv) {
    bench_batch = (size_t)strtoull(benv, NULL, 10);
    if (bench_batch < 1 || bench_batch > RING) { /* the values must live until a batch ends */
      fprintf(stderr, "BROOK_BENCH_BATCH must be 1..%d\n", RING);
      return 2;
    }
  }
  const char *wenv = getenv("BROOK_BENCH_WORKERS");
  if (argc > 3 || wenv) {
    worker_counts[0] = (size_t)strtoull(argc > 3 ? argv[3] : wenv, NULL, 10);
    n_counts = 1;
  }
  if (runs < 1 || runs > 99 || records == 0 || worker_counts[0] < 1 ||
      worker_counts[0] > MAX_WORKERS) {
    fprintf(stderr, "usage: bench_stateless [records] [runs 1..99] [workers 1..%d]\n", MAX_WORKERS);
    return 2;
  }
  gen_state_t *g = malloc(sizeof(*g));
  sink_state_t s = {0};
  s.lat_ns = malloc(MAX_SAMPLES * sizeof(*s.lat_ns));
  result_t res[N_VARIANTS];
  int failed = !g || !s.lat_ns;
  for (size_t i = 0; i < N_VARIANTS; i++)
    failed |= !(res[i].lat = malloc(MAX_SAMPLES * sizeof(*res[i].lat)));
  for (size_t wc = 0; wc < n_counts && !failed; wc++) {
    for (size_t i = 0; i < N_VARIANTS && !failed; i++)
      failed = measure(&variants[i], records, runs, worker_counts[wc], g, &s, &res[i]);
    for (size_t i = 0; i < N_VARIANTS && !failed; i++)
      report(&variants[i], records, worker_counts[wc], &res[i]);
  }
  for (size_t i = 0; i < N_VARIANTS; i++)
    free(res[i].lat);
  for (size_t k = 0; k < MAX_WORKERS; k++)
    free(lat_bufs[k]);
  free(g);
  free(s.lat_ns);
  return failed;
}
