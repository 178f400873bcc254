/* bench_exchange: the cost of the key_by exchange between workers. generator (N splits, one
 * per worker) -> key_by -> a counting operator (per task after the key change), run with 1
 * worker (no exchange: key_by re-keys in place) and with N workers (each record goes to the
 * worker owning its key: (N-1)/N of them cross to another worker's thread).
 *
 *   bench_exchange [events] [runs] [workers]      (BROOK_BENCH_SMOKE=1: tiny run, for ctest)
 *
 * Without a worker count (third argument or BROOK_BENCH_WORKERS) it measures 1 and 2 workers.
 * Keys are 8-byte binary ids from a table of 4096, values 8 bytes. For each worker count it
 * prints per-run figures, then medians: events/s and ns/event (wall clock), CPU ns per event
 * (user + system time of every thread: robust against other load on the machine), and, for
 * N > 1, the CPU the exchange adds per record that crossed workers:
 *   xchg_cpu_ns_per_crossing = (cpu_ns/event(N) - cpu_ns/event(1)) * events / crossings
 * with the 1-worker figure measured in the same run. ratio = events/s(N) / events/s(1).
 * The last lines are key=value lines, one per worker count, each with workers=N. */
#include <brook/brook.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define N_KEYS 4096
#define MAX_RUNS 99
#define MAX_SPLITS 64

static uint64_t keys[N_KEYS];

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* ---- the pipeline ---- */

typedef struct gen {
  uint64_t next[MAX_SPLITS]; /* per split: touched only by its worker */
} gen_t;

static brook_err_t gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t split = brook_ctx_split(ctx);
  uint64_t i = g->next[split]++;
  uint64_t event = i * brook_ctx_split_count(ctx) + split; /* split k: events k, k + N, ... */
  const uint64_t *k = &keys[mix64(event) % N_KEYS];
  out->key = k;
  out->key_len = sizeof(*k);
  out->value = k; /* 8 bytes */
  out->value_len = sizeof(*k);
  out->timestamp = (brook_time_t)i;
  return BROOK_OK;
}

static brook_err_t key_of_value(const brook_record_t *rec, const void **key, size_t *key_len,
                                brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value;
  *key_len = rec->value_len;
  return BROOK_OK;
}

/* The counting operator: one instance per task (after the key change), its counts summed at
 * close, so the hot path touches nothing shared between threads. */
static _Atomic uint64_t counted, checksum;

typedef struct tally {
  uint64_t n, sum;
} tally_t;

static brook_err_t tally_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx, (void)opaque;
  *state = calloc(1, sizeof(tally_t));
  return *state ? BROOK_OK : BROOK_ERR_NOMEM;
}

static brook_err_t tally_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                               size_t n) {
  (void)ctx;
  tally_t *t = state;
  for (size_t i = 0; i < n; i++) {
    uint64_t k;
    memcpy(&k, recs[i].key, sizeof(k));
    t->sum += k;
  }
  t->n += n;
  return BROOK_OK;
}

static void tally_close(void *state, void *opaque) {
  (void)opaque;
  tally_t *t = state;
  atomic_fetch_add(&counted, t->n);
  atomic_fetch_add(&checksum, t->sum);
  free(t);
}

static const brook_operator_t tally_op = {.version = BROOK_OPERATOR_VERSION,
                                          .type_name = "tally",
                                          .open = tally_open,
                                          .process_batch = tally_batch,
                                          .close = tally_close};

typedef struct result {
  double wall_s, cpu_s;
} result_t;

static result_t run_once(uint64_t events, size_t workers) {
  static gen_t g;
  memset(&g, 0, sizeof(g));
  atomic_store(&counted, 0);
  atomic_store(&checksum, 0);
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    exit(1);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = events;
  go.splits = workers; /* every worker produces */
  brook_stream_t *s = brook_source_generator(t, "gen", gen_fn, &g, &go);
  brook_stream_t *k = brook_key_by(s, key_of_value, NULL);
  /* A fixed task count after the key change, so 1 and N workers run the same plan. */
  brook_stream_set_partitions(k, 16);
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "tally";
  oo.n_outputs = 0; /* a sink */
  if (!k || brook_operator_add(&k, 1, &tally_op, NULL, &oo, NULL) != BROOK_OK) {
    fprintf(stderr, "bench_exchange: %s\n", brook_topology_last_error(t));
    exit(1);
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK) {
    fprintf(stderr, "bench_exchange: %s\n", brook_topology_last_error(t));
    exit(1);
  }
  uint64_t c0 = cpu_ns(), t0 = now_ns();
  brook_err_t err = brook_runtime_run(rt);
  uint64_t t1 = now_ns(), c1 = cpu_ns();
  if (err != BROOK_OK) {
    fprintf(stderr, "bench_exchange: run failed: %s\n", brook_runtime_last_error(rt));
    exit(1);
  }
  brook_runtime_free(rt);
  brook_topology_free(t);
  if (atomic_load(&counted) != events) {
    fprintf(stderr, "bench_exchange: counted %llu of %llu events\n",
            (unsigned long long)atomic_load(&counted), (unsigned long long)events);
    exit(1);
  }
  return (result_t){(double)(t1 - t0) / 1e9, (double)(c1 - c0) / 1e9};
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct summary {
  double events_per_s, ns_per_event, cpu_ns_per_event;
  long rss_kb;
  uint64_t checksum;
} summary_t;

static summary_t measure(uint64_t events, int runs, size_t workers) {
  double wall[MAX_RUNS], cpu[MAX_RUNS];
  uint64_t sum = 0;
  for (int r = 0; r < runs; r++) {
    result_t res = run_once(events, workers);
    wall[r] = res.wall_s;
    cpu[r] = res.cpu_s;
    sum = atomic_load(&checksum);
    printf("  workers=%zu run %d: %.3f s wall, %.3f s cpu, %.2f ns/event, %.2f cpu ns/event\n",
           workers, r + 1, res.wall_s, res.cpu_s, res.wall_s * 1e9 / (double)events,
           res.cpu_s * 1e9 / (double)events);
  }
  double w = median(wall, runs), c = median(cpu, runs);
  return (summary_t){(double)events / w, w * 1e9 / (double)events, c * 1e9 / (double)events,
                     peak_rss_kb(), sum};
}

int main(int argc, char **argv) {
  uint64_t events = 5000000;
  int runs = 5;
  size_t counts[2] = {1, 2}, n_counts = 2;
  const char *wenv = getenv("BROOK_BENCH_WORKERS");
  if (argc > 1)
    events = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    runs = atoi(argv[2]);
  if (argc > 3 || wenv) {
    counts[1] = (size_t)strtoull(argc > 3 ? argv[3] : wenv, NULL, 10);
    if (counts[1] == 1)
      n_counts = 1;
  }
  if (getenv("BROOK_BENCH_SMOKE")) {
    events = 20000;
    runs = 1;
  }
  if (runs < 1 || runs > MAX_RUNS || events == 0 || counts[1] == 0 || counts[1] > MAX_SPLITS) {
    fprintf(stderr, "usage: bench_exchange [events] [runs 1..%d] [workers 1..%d]\n", MAX_RUNS,
            MAX_SPLITS);
    return 2;
  }
  for (size_t i = 0; i < N_KEYS; i++)
    keys[i] = mix64(i + 1);
  printf("bench_exchange: generator -> key_by -> count per task, %llu events, %d runs "
         "(medians)\n",
         (unsigned long long)events, runs);
  summary_t s[2];
  for (size_t k = 0; k < n_counts; k++)
    s[k] = measure(events, runs, counts[k]);
  if (n_counts == 2 && s[0].checksum != s[1].checksum) {
    fprintf(stderr, "bench_exchange: checksums differ between 1 and %zu workers\n", counts[1]);
    return 1;
  }
  for (size_t k = 0; k < n_counts; k++) {
    size_t n = counts[k];
    double crossing = (double)(n - 1) / (double)n; /* keys spread evenly over the workers */
    printf("exchange workers=%zu events_per_s=%.0f ns_per_event=%.2f cpu_ns_per_event=%.2f "
           "ratio=%.3f peak_rss_kb=%ld",
           n, s[k].events_per_s, s[k].ns_per_event, s[k].cpu_ns_per_event,
           s[k].events_per_s / s[0].events_per_s, s[k].rss_kb);
    if (n > 1)
      printf(" xchg_cpu_ns_per_crossing=%.2f",
             (s[k].cpu_ns_per_event - s[0].cpu_ns_per_event) / crossing);
    printf(" checksum=%016llx\n", (unsigned long long)s[k].checksum);
  }
  return 0;
}
