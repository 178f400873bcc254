/* bench_store: the in-memory state store (brook/state.h) on its own, through the public API:
 *
 *   put      N new 8-byte keys with 8-byte values into a fresh store (growth included)
 *   get      N lookups of present keys, in a scattered order
 *   update   N in-place updates (brook_store_update, 16-byte values) of K present keys
 *   churn    N operations alternating insert of a new key and delete of an old one, K live
 *   small    S stores of 3 keys each (create, 3 puts, a get, free): the per-task cost of a
 *            store that holds little, in time and in bytes (brook_store_memory)
 *
 * The same-run baseline for get and update is a plain array indexed by key number (no
 * hashing, no probing): the floor a hash table can approach; ratio = baseline/store.
 *
 *   bench_store [N] [runs]      (BROOK_BENCH_SMOKE=1: tiny run, for ctest)
 *
 * Times are CPU time (CLOCK_PROCESS_CPUTIME_ID), so a busy machine disturbs them less than
 * wall-clock time would. Prints per-phase medians and, as the last line, key=value figures. */
#include <brook/brook.h>

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static brook_store_t *new_store(size_t value_size) {
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = value_size;
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

typedef struct figures {
  double put, get, get_base, update, update_base, churn, small; /* ns per operation */
  double small_bytes;                                           /* per small store */
  uint64_t checksum;
} figures_t;

static figures_t run_once(uint64_t n, uint64_t k_live, uint64_t n_small) {
  figures_t f = {0};
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
  f.checksum = sum;
  return f;
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

int main(int argc, char **argv) {
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
  double put = median_of(f, runs, offsetof(figures_t, put));
  double get = median_of(f, runs, offsetof(figures_t, get));
  double get_base = median_of(f, runs, offsetof(figures_t, get_base));
  double update = median_of(f, runs, offsetof(figures_t, update));
  double update_base = median_of(f, runs, offsetof(figures_t, update_base));
  double churn = median_of(f, runs, offsetof(figures_t, churn));
  double small = median_of(f, runs, offsetof(figures_t, small));
  double small_bytes = median_of(f, runs, offsetof(figures_t, small_bytes));
  printf("  put     %7.1f ns/op\n", put);
  printf("  get     %7.1f ns/op   baseline (array) %5.1f ns/op, ratio %.3f\n", get, get_base,
         get_base / get);
  printf("  update  %7.1f ns/op   baseline (array) %5.1f ns/op, ratio %.3f\n", update, update_base,
         update_base / update);
  printf("  churn   %7.1f ns/op\n", churn);
  printf("  small   %7.1f ns/store (create, %d puts, get, free), %.0f bytes/store\n", small,
         SMALL_KEYS, small_bytes);
  printf("store put_ns=%.1f get_ns=%.1f get_ratio=%.3f update_ns=%.1f update_ratio=%.3f "
         "churn_ns=%.1f small_store_ns=%.1f small_store_bytes=%.0f checksum=%016" PRIx64 "\n",
         put, get, get_base / get, update, update_base / update, churn, small, small_bytes,
         f[0].checksum);
  return 0;
}
