/* bench_store: the in-memory state stores (brook/state.h) on their own, through the public
 * API. The point phases run on both built-in backends, the hash store (default) and the
 * ordered store (opts.ordered):
 *
 *   put      N new 8-byte keys with 8-byte values into a fresh store (growth included)
 *   get      N lookups of present keys, in a scattered order
 *   update   N in-place updates (brook_store_update, 16-byte values) of K present keys
 *   churn    N operations alternating insert of a new key and delete of an old one, K live
 *   small    S stores of 3 keys each (create, 3 puts, a get, free): the per-task cost of a
 *            store that holds little, in time and in bytes (brook_store_memory)
 *
 * and the ordered store's range scans, in the layouts windows and timers use:
 *
 *   range    N/100 keys with 100 entries each (key || time); N/10 scans "entries of key k
 *            with time in [a, a + 10)" (brook_store_iter_time): ns per scan and per entry
 *   timer    N entries keyed time || key; N/10 seeks "first entry with time >= t"
 *            (brook_store_iter_time_prefixed), then N/10 "fire everything before the
 *            watermark" steps that delete what they visit and set a later timer each
 *
 * Same-run baselines: for get and update a plain array indexed by key number (no hashing,
 * no probing), the floor a hash table can approach; for range and timer a sorted array of
 * the same entries searched by bisection, the floor an ordered store can approach. ratio =
 * baseline/store; the ordered store's point phases also give ratio vs the hash store.
 *
 *   bench_store [N] [runs]      (BROOK_BENCH_SMOKE=1: tiny run, for ctest)
 *   bench_store --pipeline [N] [keys] [runs]   a count per key through the runtime, state in
 *                               memory vs on disk (runtime option state_dir): events/s of both
 *
 * Stores are single-threaded: the bench runs one worker (workers=1 in the key=value line).
 * Times are CPU time (CLOCK_PROCESS_CPUTIME_ID), so a busy machine disturbs them less than
 * wall-clock time would. Prints per-phase medians (ns/op and operations/s), peak RSS and, as
 * the last line, key=value figures. */
#include <brook/brook.h>

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_RUNS 99
#define SMALL_KEYS 3

/* CPU time of this (single-threaded) process: what an operation costs, without the time
 * other programs on a busy machine take from it. */
static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser: key number -> key bytes */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* A scattered order of 0..n-1 (a multiplicative step coprime with n). */
static uint64_t scatter(uint64_t i, uint64_t n) { return (i * 2654435761u) % n; }

static void die(const char *what, brook_err_t err) {
  fprintf(stderr, "bench_store: %s: %s\n", what, brook_strerror(err));
  exit(1);
}

static int g_ordered; /* the backend new_store makes: 0 hash, 1 ordered */

static brook_store_t *new_store(size_t value_size) {
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = value_size;
  o.ordered = g_ordered;
  brook_store_t *s = NULL;
  brook_err_t err = brook_store_new(&s, &o, NULL);
  if (err)
    die("brook_store_new", err);
  return s;
}

/* Fills a fresh store with keys 0..n-1 (value = key number); returns the seconds taken. */
static double fill(brook_store_t *s, uint64_t n) {
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t k = mix64(i);
    brook_err_t err = brook_store_put(s, &k, sizeof(k), &i, sizeof(i));
    if (err)
      die("put", err);
  }
  return (double)(now_ns() - t0) / 1e9;
}

/* The point phases of one backend. */
typedef struct point_figures {
  double put, get, get_base, update, update_base, churn, small; /* ns per operation */
  double small_bytes;                                           /* per small store */
} point_figures_t;

typedef struct figures {
  point_figures_t hash, ordered;
  double range_scan, range_entry, range_base;     /* ns per scan, per entry; baseline/entry */
  double timer_seek, timer_seek_base, timer_fire; /* ns per seek; baseline; ns per timer */
  uint64_t checksum;
} figures_t;

static point_figures_t run_points(uint64_t n, uint64_t k_live, uint64_t n_small, uint64_t *sump) {
  point_figures_t f = {0};
  uint64_t sum = 0;

  brook_store_t *s = new_store(0);
  f.put = fill(s, n) * 1e9 / (double)n;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t k = mix64(scatter(i, n));
    const void *v;
    size_t vlen;
    if (brook_store_get(s, &k, sizeof(k), &v, &vlen) != BROOK_OK || vlen != 8)
      die("get", BROOK_ERR_STATE);
    uint64_t x;
    memcpy(&x, v, 8);
    sum += x;
  }
  f.get = (double)(now_ns() - t0) / (double)n;
  brook_store_free(s);

  uint64_t *arr = calloc(n, sizeof(*arr) * 2);
  if (!arr)
    die("calloc", BROOK_ERR_NOMEM);
  for (uint64_t i = 0; i < n; i++)
    arr[2 * i] = i;
  t0 = now_ns();
  for (uint64_t i = 0; i < n; i++)
    sum += arr[2 * scatter(i, n)];
  f.get_base = (double)(now_ns() - t0) / (double)n;

  s = new_store(16);
  for (uint64_t i = 0; i < k_live; i++) {
    uint64_t k = mix64(i);
    void *v;
    brook_err_t err = brook_store_update(s, &k, sizeof(k), &v, NULL);
    if (err)
      die("update", err);
  }
  t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t k = mix64(scatter(i, k_live));
    uint64_t *v;
    brook_err_t err = brook_store_update(s, &k, sizeof(k), (void **)&v, NULL);
    if (err)
      die("update", err);
    v[0]++;
    v[1] += i;
  }
  f.update = (double)(now_ns() - t0) / (double)n;
  t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t *v = &arr[2 * scatter(i, k_live)];
    v[0]++;
    v[1] += i;
  }
  f.update_base = (double)(now_ns() - t0) / (double)n;
  for (uint64_t i = 0; i < k_live; i++)
    sum += arr[2 * i] + arr[2 * i + 1];
  free(arr);
  brook_store_free(s);

  s = new_store(0);
  fill(s, k_live);
  t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t add = mix64(k_live + i), del = mix64(i);
    brook_err_t err = brook_store_put(s, &add, sizeof(add), &i, sizeof(i));
    if (err || (err = brook_store_delete(s, &del, sizeof(del))))
      die("churn", err);
  }
  f.churn = (double)(now_ns() - t0) / (double)(2 * n);
  sum += brook_store_count(s);
  brook_store_free(s);

  size_t bytes = 0;
  t0 = now_ns();
  for (uint64_t i = 0; i < n_small; i++) {
    brook_store_t *t = new_store(0);
    for (uint64_t j = 0; j < SMALL_KEYS; j++) {
      char key[16];
      int len = snprintf(key, sizeof(key), "card-%05" PRIu64, (i + j) % 100000);
      brook_err_t err = brook_store_put(t, key, (size_t)len, &j, sizeof(j));
      if (err)
        die("small put", err);
    }
    const void *v;
    if (brook_store_get(t, "card-00000", 10, &v, NULL) == BROOK_OK)
      sum++;
    bytes += brook_store_memory(t);
    brook_store_free(t);
  }
  f.small = (double)(now_ns() - t0) / (double)n_small;
  f.small_bytes = (double)bytes / (double)n_small;
  *sump += sum;
  return f;
}

/* ---- the ordered store's scans ---- */

#define RANGE_PER_KEY 100 /* entries per key in the range phase */
#define RANGE_SPAN 10     /* times per scan */

static void be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

/* A sorted array of 16-byte keys (the baseline): the index of the first key >= k. */
static size_t sorted_lb(const unsigned char *keys, size_t n, const unsigned char *k) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (memcmp(keys + 16 * mid, k, 16) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int cmp_key16(const void *a, const void *b) { return memcmp(a, b, 16); }

static void run_scans(uint64_t n, figures_t *f, uint64_t *sump) {
  uint64_t sum = 0, n_keys = n / RANGE_PER_KEY, n_scans = n / 10;
  unsigned char k[16];
  brook_store_entry_t e;
  brook_store_iter_t *it;
  brook_err_t err;
  g_ordered = 1;

  /* range: key || time, scans of one key's window of times. */
  brook_store_t *s = new_store(0);
  unsigned char *keys = malloc(16 * n);
  if (!keys)
    die("malloc", BROOK_ERR_NOMEM);
  for (uint64_t i = 0; i < n; i++) {
    be64(k, mix64(i / RANGE_PER_KEY));
    brook_store_time_encode((int64_t)(i % RANGE_PER_KEY) * 1000, k + 8);
    memcpy(keys + 16 * i, k, 16);
    if ((err = brook_store_put(s, k, 16, &i, sizeof(i))))
      die("range put", err);
  }
  uint64_t visited = 0, t0 = now_ns();
  for (uint64_t i = 0; i < n_scans; i++) {
    uint64_t key = mix64(scatter(i, n_keys)), a = (i * 7) % (RANGE_PER_KEY - RANGE_SPAN);
    be64(k, key);
    if ((err = brook_store_iter_time(s, k, 8, (int64_t)a * 1000, (int64_t)(a + RANGE_SPAN) * 1000,
                                     &it)))
      die("range scan", err);
    while (brook_store_iter_next(it, &e)) {
      uint64_t v;
      memcpy(&v, e.value, 8);
      sum += v;
      visited++;
    }
    if ((err = brook_store_iter_close(it)))
      die("range scan", err);
  }
  uint64_t dt = now_ns() - t0;
  f->range_scan = (double)dt / (double)n_scans;
  f->range_entry = (double)dt / (double)visited;
  brook_store_free(s);
  qsort(keys, n, 16, cmp_key16);
  uint64_t base_visited = 0;
  t0 = now_ns();
  for (uint64_t i = 0; i < n_scans; i++) {
    uint64_t key = mix64(scatter(i, n_keys)), a = (i * 7) % (RANGE_PER_KEY - RANGE_SPAN);
    unsigned char lo[16], hi[16];
    be64(lo, key);
    memcpy(hi, lo, 8);
    brook_store_time_encode((int64_t)a * 1000, lo + 8);
    brook_store_time_encode((int64_t)(a + RANGE_SPAN) * 1000, hi + 8);
    for (size_t j = sorted_lb(keys, n, lo); j < n && memcmp(keys + 16 * j, hi, 16) < 0; j++) {
      sum += keys[16 * j + 15];
      base_visited++;
    }
  }
  f->range_base = (double)(now_ns() - t0) / (double)base_visited;
  if (base_visited != visited)
    die("range baseline", BROOK_ERR_STATE);

  /* timer: time || key; the first timer at or after t, then firing. */
  s = new_store(0);
  for (uint64_t i = 0; i < n; i++) {
    brook_store_time_encode((int64_t)(mix64(i) % (n * 10)), k);
    be64(k + 8, i);
    memcpy(keys + 16 * i, k, 16);
    if ((err = brook_store_put(s, k, 16, "", 0)))
      die("timer put", err);
  }
  t0 = now_ns();
  for (uint64_t i = 0; i < n_scans; i++) {
    int64_t t = (int64_t)(mix64(i + n) % (n * 10));
    if ((err = brook_store_iter_time_prefixed(s, t, INT64_MAX, &it)))
      die("timer seek", err);
    if (brook_store_iter_next(it, &e))
      sum += (uint64_t)brook_store_entry_time_prefix(&e);
    if ((err = brook_store_iter_close(it)))
      die("timer seek", err);
  }
  f->timer_seek = (double)(now_ns() - t0) / (double)n_scans;
  qsort(keys, n, 16, cmp_key16);
  t0 = now_ns();
  for (uint64_t i = 0; i < n_scans; i++) {
    unsigned char lo[16] = {0};
    brook_store_time_encode((int64_t)(mix64(i + n) % (n * 10)), lo);
    size_t j = sorted_lb(keys, n, lo);
    if (j < n)
      sum += (uint64_t)brook_store_time_decode(keys + 16 * j);
  }
  f->timer_seek_base = (double)(now_ns() - t0) / (double)n_scans;
  /* Firing: the watermark advances in steps; each step deletes every timer before it and
   * sets one later timer per timer fired (a periodic timer), so the store stays the same
   * size. */
  uint64_t fired = 0, next_id = n;
  int64_t wm = 0, step = 10;
  t0 = now_ns();
  for (uint64_t i = 0; i < n_scans; i++) {
    wm += step;
    if ((err = brook_store_iter_time_prefixed(s, INT64_MIN, wm, &it)))
      die("timer fire", err);
    while (brook_store_iter_next(it, &e)) {
      int64_t t = brook_store_entry_time_prefix(&e);
      if ((err = brook_store_delete(s, e.key, e.key_len)))
        die("timer fire delete", err);
      brook_store_time_encode(t + (int64_t)(n * 10), k);
      be64(k + 8, next_id++);
      if ((err = brook_store_put(s, k, 16, "", 0)))
        die("timer fire put", err);
      fired++;
    }
    if ((err = brook_store_iter_close(it)))
      die("timer fire", err);
  }
  f->timer_fire = fired ? (double)(now_ns() - t0) / (double)fired : 0;
  sum += fired + brook_store_count(s);
  brook_store_free(s);
  free(keys);
  *sump += sum;
}

static figures_t run_once(uint64_t n, uint64_t k_live, uint64_t n_small) {
  figures_t f = {0};
  uint64_t sum = 0;
  g_ordered = 0;
  f.hash = run_points(n, k_live, n_small, &sum);
  g_ordered = 1;
  f.ordered = run_points(n, k_live, n_small, &sum);
  run_scans(n, &f, &sum);
  f.checksum = sum;
  return f;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss; /* kB on Linux */
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median over the runs of the figure at byte offset `off` in figures_t. */
static double median_of(const figures_t *f, int runs, size_t off) {
  double v[MAX_RUNS];
  for (int r = 0; r < runs; r++)
    memcpy(&v[r], (const char *)&f[r] + off, sizeof(double));
  return median(v, runs);
}

/* ---- --pipeline: a count per key through the runtime, state in memory vs on disk ---- */

typedef struct pipe_gen {
  uint64_t next[2], n, keys;
  char (*key)[17];      /* key number -> its 16 hex digits */
  unsigned char *split; /* key number -> its split */
} pipe_gen_t;

/* Record i has key number i % keys; split s takes those whose key lands in it. */
static brook_err_t pipe_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  pipe_gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  for (;;) {
    uint64_t i = g->next[s]++;
    if (i >= g->n)
      return BROOK_DONE;
    uint64_t k = i % g->keys;
    if (g->split[k] != s)
      continue;
    *out = (brook_record_t){.key = g->key[k], .key_len = 16, .timestamp = (int64_t)i};
    return BROOK_OK;
  }
}

static brook_err_t pipe_sink(const brook_record_t *rec, void *opaque) {
  uint64_t v;
  memcpy(&v, rec->value, sizeof(v));
  *(uint64_t *)opaque += v;
  return BROOK_OK;
}

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One run: events/s (wall clock: RocksDB's own threads count too); *sum: checksum. */
static double pipe_run(uint64_t n, uint64_t keys, const char *state_dir, uint64_t *sum,
                       uint64_t *bytes_written) {
  brook_topology_t *t = NULL;
  brook_err_t err = brook_topology_new(&t, NULL);
  if (err)
    die("brook_topology_new", err);
  pipe_gen_t g = {.n = n, .keys = keys};
  g.key = malloc(keys * sizeof(*g.key));
  g.split = malloc(keys);
  if (!g.key || !g.split)
    die("malloc", BROOK_ERR_NOMEM);
  for (uint64_t k = 0; k < keys; k++) {
    snprintf(g.key[k], sizeof(g.key[k]), "%016" PRIx64, mix64(k));
    g.split[k] = (unsigned char)brook_key_split(g.key[k], 16, 2);
  }
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = 2;
  go.partitioned_by_key = 1;
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = "counts";
  *sum = 0;
  err = brook_sink_callback(brook_count(brook_source_generator(t, "gen", pipe_gen, &g, &go), &ao),
                            pipe_sink, NULL, sum);
  if (err)
    die("pipeline", err);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.state_dir = state_dir;
  brook_runtime_t *rt = NULL;
  if ((err = brook_runtime_new(&rt, t, &ro)))
    die(brook_topology_last_error(t), err);
  uint64_t t0 = wall_ns();
  if ((err = brook_runtime_run(rt)))
    die(brook_runtime_last_error(rt), err);
  uint64_t dt = wall_ns() - t0;
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  (void)brook_runtime_stats(rt, &st);
  *bytes_written = st.state_bytes_written;
  brook_runtime_free(rt);
  brook_topology_free(t);
  free(g.key);
  free(g.split);
  return (double)n * 1e9 / (double)dt;
}

/* bench_store --pipeline [N] [keys] [runs]: a generator (2 splits, partitioned by key) ->
 * brook_count -> callback sink, with state in memory and with runtime option state_dir (a
 * temporary directory; RocksDB task databases behind the default 16 MiB write cache, a commit
 * every second); the same runs alternate, medians. */
static int pipeline_main(int argc, char **argv) {
  int smoke = getenv("BROOK_BENCH_SMOKE") != NULL;
  uint64_t n = smoke ? 20000 : 2000000, keys = smoke ? 1000 : 100000;
  int runs = smoke ? 1 : 3;
  if (argc > 0)
    n = strtoull(argv[0], NULL, 10);
  if (argc > 1)
    keys = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    runs = atoi(argv[2]);
  if (n < 100 || keys < 1 || runs < 1 || runs > MAX_RUNS) {
    fprintf(stderr, "usage: bench_store --pipeline [N >= 100] [keys] [runs 1..99]\n");
    return 2;
  }
  double mem[MAX_RUNS], disk[MAX_RUNS];
  uint64_t sum_mem = 0, sum_disk = 0, written = 0, ignored;
  for (int r = 0; r < runs; r++) {
    char dir[] = "/tmp/bench_store_state_XXXXXX";
    if (!mkdtemp(dir))
      die("mkdtemp", BROOK_ERR_IO);
    mem[r] = pipe_run(n, keys, NULL, &sum_mem, &ignored);
    disk[r] = pipe_run(n, keys, dir, &sum_disk, &written);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
      die("rm", BROOK_ERR_IO);
    if (sum_mem != sum_disk) {
      fprintf(stderr, "MISMATCH: memory checksum %" PRIu64 " != state_dir %" PRIu64 "\n", sum_mem,
              sum_disk);
      return 1;
    }
  }
  double m = median(mem, runs), d = median(disk, runs);
  printf("bench_store --pipeline: N=%" PRIu64 " records, %" PRIu64 " keys, count per key, 2 tasks, "
         "%d runs, medians (wall clock)\n",
         n, keys, runs);
  printf("  memory     %10.0f events/s\n", m);
  printf("  state_dir  %10.0f events/s  ratio %.3f  (%" PRIu64 " bytes written to the task "
         "databases)\n",
         d, d / m, written);
  printf("store_pipeline workers=1 memory_events_per_s=%.0f state_dir_events_per_s=%.0f "
         "state_dir_ratio=%.3f state_bytes_written=%" PRIu64 "\n",
         m, d, d / m, written);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--pipeline") == 0)
    return pipeline_main(argc - 2, argv + 2);
  int smoke = getenv("BROOK_BENCH_SMOKE") != NULL;
  uint64_t n = smoke ? 20000 : 1000000;
  int runs = smoke ? 1 : 5;
  if (argc > 1)
    n = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    runs = atoi(argv[2]);
  if (n < 100 || n > (UINT64_MAX >> 8) || runs < 1 || runs > MAX_RUNS) {
    fprintf(stderr, "usage: bench_store [N >= 100] [runs 1..99]\n");
    return 2;
  }
  uint64_t k_live = n / 10, n_small = n / 10;
  printf("bench_store: N=%" PRIu64 " operations per phase, K=%" PRIu64
         " live keys for update/churn, %" PRIu64 " small stores of %d keys; %d runs, medians\n",
         n, k_live, n_small, SMALL_KEYS, runs);
  figures_t f[MAX_RUNS];
  for (int r = 0; r < runs; r++) {
    f[r] = run_once(n, k_live, n_small);
    if (f[r].checksum != f[0].checksum) {
      fprintf(stderr, "MISMATCH: run %d checksum %016" PRIx64 " != %016" PRIx64 "\n", r + 1,
              f[r].checksum, f[0].checksum);
      return 1;
    }
  }
#define MED(field) median_of(f, runs, offsetof(figures_t, field))
  point_figures_t h = {MED(hash.put),    MED(hash.get),         MED(hash.get_base),
                       MED(hash.update), MED(hash.update_base), MED(hash.churn),
                       MED(hash.small),  MED(hash.small_bytes)};
  point_figures_t o = {MED(ordered.put),    MED(ordered.get),         MED(ordered.get_base),
                       MED(ordered.update), MED(ordered.update_base), MED(ordered.churn),
                       MED(ordered.small),  MED(ordered.small_bytes)};
  double range_scan = MED(range_scan), range_entry = MED(range_entry), range_base = MED(range_base),
         timer_seek = MED(timer_seek), timer_seek_base = MED(timer_seek_base),
         timer_fire = MED(timer_fire);
#undef MED
  long rss = peak_rss_kb();
  const point_figures_t *pf[2] = {&h, &o};
  for (int b = 0; b < 2; b++) {
    const point_figures_t *p = pf[b];
    printf("%s store:\n", b ? "ordered" : "hash");
    printf("  put     %7.1f ns/op %6.2f M/s\n", p->put, 1e3 / p->put);
    printf("  get     %7.1f ns/op %6.2f M/s   baseline (array) %5.1f ns/op, ratio %.3f\n", p->get,
           1e3 / p->get, p->get_base, p->get_base / p->get);
    printf("  update  %7.1f ns/op %6.2f M/s   baseline (array) %5.1f ns/op, ratio %.3f\n",
           p->update, 1e3 / p->update, p->update_base, p->update_base / p->update);
    printf("  churn   %7.1f ns/op %6.2f M/s\n", p->churn, 1e3 / p->churn);
    printf("  small   %7.1f ns/store (create, %d puts, get, free), %.0f bytes/store\n", p->small,
           SMALL_KEYS, p->small_bytes);
  }
  printf("ordered vs hash (same run): put %.3f, get %.3f, update %.3f, churn %.3f\n", h.put / o.put,
         h.get / o.get, h.update / o.update, h.churn / o.churn);
  printf("ordered scans:\n");
  printf("  range   %7.1f ns/scan of %d entries, %.1f ns/entry %6.2f M entries/s   baseline "
         "(sorted array) %.1f ns/entry, ratio %.3f\n",
         range_scan, RANGE_SPAN, range_entry, 1e3 / range_entry, range_base,
         range_base / range_entry);
  printf("  timer   %7.1f ns/seek %6.2f M/s   baseline (sorted array) %.1f ns/seek, ratio %.3f; "
         "firing %.1f ns/timer (delete + set a later one)\n",
         timer_seek, 1e3 / timer_seek, timer_seek_base, timer_seek_base / timer_seek, timer_fire);
  printf("  peak RSS %ld kB\n", rss);
  printf("store workers=1 put_ns=%.1f get_ns=%.1f get_per_s=%.0f get_ratio=%.3f update_ns=%.1f "
         "update_ratio=%.3f churn_ns=%.1f small_store_ns=%.1f small_store_bytes=%.0f "
         "ordered_put_ns=%.1f ordered_get_ns=%.1f ordered_get_ratio_vs_hash=%.3f "
         "ordered_update_ns=%.1f ordered_churn_ns=%.1f ordered_small_store_bytes=%.0f "
         "range_scan_ns=%.1f range_entry_ns=%.1f range_entries_per_s=%.0f range_ratio=%.3f "
         "timer_seek_ns=%.1f timer_seek_ratio=%.3f timer_fire_ns=%.1f peak_rss_kb=%ld "
         "checksum=%016" PRIx64 "\n",
         h.put, h.get, 1e9 / h.get, h.get_base / h.get, h.update, h.update_base / h.update, h.churn,
         h.small, h.small_bytes, o.put, o.get, h.get / o.get, o.update, o.churn, o.small_bytes,
         range_scan, range_entry, 1e9 / range_entry, range_base / range_entry, timer_seek,
         timer_seek_base / timer_seek, timer_fire, rss, f[0].checksum);
  return 0;
}
