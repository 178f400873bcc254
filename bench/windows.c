/* bench_windows: generator -> window_aggregate(count+sum) -> counting sink, for tumbling
 * (1 s), hopping (10 s every 1 s), sliding (10 s) and session (gap 5 s) windows, and hopping
 * every 100 ms over 100 keys with size/advance 2, 10, 100, 1000 and 10000 (per-event cost
 * must stay flat across that series), over events
 * whose event time advances 1 ms per event with up to D = 100 ms of disorder (bounded
 * watermark, max_delay D, so no event is ever late). Tumbling is also run through a
 * hand-written baseline that calls the very same generator, aggregator and sink callbacks
 * through function pointers; its checksum must equal brook's, and ratio = brook/baseline.
 *
 *   bench_windows [events] [runs] [tumbling|hopping|sliding|session|hopping_x<N>|series|all]
 *                 [workers]            (BROOK_BENCH_SMOKE=1: tiny run, for ctest)
 * The third argument runs one window type only (e.g. under a profiler). Without a worker
 * count (fourth argument or BROOK_BENCH_WORKERS) every measurement runs with 1 and then 2
 * workers. With N > 1 two inputs are measured, alternating run by run:
 *   input=partitioned  the generator's N splits are partitioned by key (partitioned_by_key):
 *                      split k makes, in event order, exactly the events whose key has
 *                      brook_key_split(key, N) == k (a per-key split table, built before the
 *                      run, says which; a split steps over the others' events without making
 *                      records for them), and the window runs per task with no exchange;
 *   input=key_by       the generator's N splits interleave events (split k makes events k,
 *                      k + N, ...) and a key_by before the window sends each key to its
 *                      worker's task through the exchange.
 * Both must give the results of one worker: tumbling's checksum equals the baseline's (the
 * whole stream on one thread); the other kinds are compared with a one-worker run made once
 * per kind. One worker is input=single (one split, no key_by). Every key=value line carries
 * workers=N and input=..., and cpu_ns_per_event (the process's CPU time over all threads per
 * event: what a loaded machine disturbs least); a line check=key_split gives the cost per
 * record of verifying a partitioned split's keys (brook_key_split on the bench's 8-byte keys).
 *
 * Keys are 8-byte binary key ids (native byte order) taken from a pre-built table of 100,000;
 * values are native 8-byte doubles (multiples of 0.25, so every sum is exact and the checksum
 * does not depend on the order of additions). Prints per-run figures, a table of medians,
 * peak RSS at N and 2N events, and as the last lines one key=value line per window type. */
#include <brook/brook.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DISORDER 100              /* D: ms of disorder, and the watermark's max_delay */
#define BASE_TIME 1700000000000LL /* event time of event 0 (ms since the epoch) */
#define N_VALUES 1024             /* pre-built values: j * 0.25 */
#define TUMBLE_SIZE (1 * BROOK_S) /* tumbling */
#define HOP_SIZE (10 * BROOK_S)   /* hopping size ... */
#define HOP_ADVANCE (1 * BROOK_S) /* ... and advance */
#define SLIDE_SIZE (10 * BROOK_S) /* sliding */
#define SESSION_GAP (5 * BROOK_S) /* session */
#define SERIES_ADVANCE 100        /* the size/advance series: advance (ms) ... */
#define SERIES_KEYS 100           /* ... and keys, whatever the ratio */
#define MAX_RUNS 99

/* ---- the workload ---- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

typedef struct gen_state {
  uint64_t next, limit;
  uint32_t n_keys;
  const uint64_t *keys; /* key table: keys[k] = k; records point into it */
  const double *values; /* value table */
} gen_state_t;

typedef struct acc {
  int64_t count;
  double sum;
} acc_t;

typedef struct sink_state {
  uint64_t results;     /* window results received */
  uint64_t count_total; /* sum of their counts */
  double sum_total;     /* sum of their sums */
  uint64_t checksum;    /* order-independent: a sum of per-result hashes */
  uint64_t bad;         /* results that were not FINAL or did not parse */
} sink_state_t;

/* ---- the user callbacks, shared by brook and the baseline ---- */

/* Event i: its hash decides its key, value and disorder. */
static uint64_t event_hash(uint64_t i) { return mix64(i + 0x9e3779b97f4a7c15ULL); }

static void fill_event(const gen_state_t *g, uint64_t i, uint64_t h, uint64_t key,
                       brook_record_t *out) {
  out->key = &g->keys[key];
  out->key_len = sizeof(uint64_t);
  out->value = &g->values[(h >> 40) % N_VALUES];
  out->value_len = sizeof(double);
  out->timestamp = BASE_TIME + (brook_time_t)i - (brook_time_t)((h >> 20) % (DISORDER + 1));
}

static brook_err_t gen_cb(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  gen_state_t *g = opaque;
  if (g->next == g->limit)
    return BROOK_DONE;
  uint64_t i = g->next++;
  uint64_t h = event_hash(i);
  fill_event(g, i, h, h % g->n_keys, out);
  return BROOK_OK;
}

static void agg_init(void *acc, const brook_aggregator_t *agg) {
  (void)agg;
  memset(acc, 0, sizeof(acc_t));
}

static brook_err_t agg_add(void *acc, const brook_record_t *rec, const brook_aggregator_t *agg) {
  (void)agg;
  if (rec->value_len != sizeof(double))
    return BROOK_ERR_INVALID_ARG;
  double v;
  memcpy(&v, rec->value, sizeof(v));
  acc_t *a = acc;
  a->count++;
  a->sum += v;
  return BROOK_OK;
}

static void agg_merge(void *acc, const void *other, const brook_aggregator_t *agg) {
  (void)agg;
  acc_t *a = acc;
  const acc_t *o = other;
  a->count += o->count;
  a->sum += o->sum;
}

static void agg_result(const void *acc, void *out, const brook_aggregator_t *agg) {
  (void)agg;
  memcpy(out, acc, sizeof(acc_t));
}

static brook_err_t sink_cb(const brook_record_t *rec, void *opaque) {
  sink_state_t *s = opaque;
  brook_window_value_t wv;
  const void *res;
  acc_t r;
  uint64_t key;
  if (brook_window_parse(rec, &wv, &res) != BROOK_OK || wv.result_len != sizeof(r) ||
      !(wv.flags & BROOK_WINDOW_FINAL) || rec->key_len != sizeof(key)) {
    s->bad++;
    return BROOK_OK;
  }
  memcpy(&r, res, sizeof(r));
  memcpy(&key, rec->key, sizeof(key));
  uint64_t h = mix64(key * 0x9e3779b97f4a7c15ULL ^ (uint64_t)wv.start);
  h = mix64(h ^ (uint64_t)wv.end);
  h = mix64(h + (uint64_t)r.count);
  h = mix64(h + (uint64_t)(int64_t)(r.sum * 4)); /* exact: sums are multiples of 0.25 */
  s->checksum += h;
  s->results++;
  s->count_total += (uint64_t)r.count;
  s->sum_total += r.sum;
  return BROOK_OK;
}

static const brook_aggregator_t count_sum_agg = {
    .version = BROOK_AGGREGATOR_VERSION,
    .name = "count_sum",
    .acc_size = sizeof(acc_t),
    .result_size = sizeof(acc_t),
    .init = agg_init,
    .add = agg_add,
    .merge = agg_merge,
    .result = agg_result,
};

/* Read through volatile pointers so the compiler cannot inline the callbacks into the
 * baseline: it pays the same indirect calls brook does. */
static brook_generator_fn volatile p_gen = gen_cb;
static const brook_aggregator_t *volatile p_agg = &count_sum_agg;
static brook_sink_fn volatile p_sink = sink_cb;

/* ---- one measured run (in a child process, see run_child) ---- */

typedef struct run_result {
  double secs;
  uint64_t results, count_total, checksum, bad, late, timers;
  double sum_total;
  long rss_kb;     /* the child's peak RSS, filled in by the parent */
  double cpu_secs; /* the child's CPU time (user + system, every thread), ditto */
} run_result_t;

/* What feeds the window (see the top). */
typedef enum input_kind { INPUT_SINGLE, INPUT_PARTITIONED, INPUT_KEY_BY } input_kind_t;
static const char *const input_names[] = {"single", "partitioned", "key_by"};

/* The state backend (fifth argument or BROOK_BENCH_BACKEND: memory or rocksdb). Either one
 * given explicitly makes the single input a task (a generator partitioned by key into one
 * split, as state on disk needs a task) and names the window, so both backends run the very
 * same pipeline; rocksdb then sets the runtime's state_dir (a temporary directory, removed
 * after the run), with BROOK_BENCH_CACHE_BYTES of write cache per store (default: the
 * runtime's) and BROOK_BENCH_COMMIT_MS between commits (default 100). Without it: memory,
 * the single input as before. */
static int g_backend_set, g_rocksdb;
static size_t g_cache_bytes;
static int64_t g_commit_ms = 100;
static const char *backend_name(void) { return g_rocksdb ? "rocksdb" : "memory"; }

typedef struct run_spec {
  int baseline; /* 1: the hand-written tumbling loop; 0: brook */
  brook_window_t window;
  uint64_t events;
  uint32_t n_keys;
  size_t workers;
  input_kind_t input;
  size_t splits; /* the generator's splits (not single); 0: one per worker */
} run_spec_t;

/* ---- N workers: interleaved generator splits, a sink state per worker thread ---- */

#define MAX_WORKERS 64

typedef struct split_gens {
  /* key_by: split k makes events k, k + stride, ... below limit; partitioned: the events
   * below limit whose key's split (split_of) is k, in order. */
  struct {
    _Alignas(64) gen_state_t g; /* a cache line each: next is written per event */
  } gens[MAX_WORKERS];
  size_t stride;
  const unsigned char *split_of; /* partitioned: key number -> brook_key_split(key, splits) */
  struct {
    _Alignas(64) sink_state_t s; /* a cache line each: no false sharing between workers */
  } sinks[MAX_WORKERS];
  atomic_int n_sinks;
  unsigned run; /* numbers the runs: a thread's claim from an earlier run is stale */
} split_gens_t;

static brook_err_t gen_split_cb(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  split_gens_t *sg = opaque;
  gen_state_t *g = &sg->gens[brook_ctx_split(ctx)].g;
  if (g->next >= g->limit)
    return BROOK_DONE;
  brook_err_t err = gen_cb(out, ctx, g);
  g->next += sg->stride - 1;
  return err;
}

/* Partitioned by key: the next event of this split's keys. The others' events are stepped
 * over by their hash alone (no record is made for them): the stream a split makes is the one
 * a producer partitioning by key would have written into its partition. */
static brook_err_t gen_keyed_cb(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  split_gens_t *sg = opaque;
  size_t split = brook_ctx_split(ctx);
  gen_state_t *g = &sg->gens[split].g;
  for (uint64_t i = g->next; i < g->limit; i++) {
    uint64_t h = event_hash(i);
    uint64_t key = h % g->n_keys;
    if (sg->split_of[key] != split)
      continue;
    fill_event(g, i, h, key, out);
    g->next = i + 1;
    return BROOK_OK;
  }
  g->next = g->limit;
  return BROOK_DONE;
}

static brook_err_t same_key(const brook_record_t *rec, const void **key, size_t *key_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->key;
  *key_len = rec->key_len;
  return BROOK_OK;
}

static _Thread_local sink_state_t *my_sink;
static _Thread_local unsigned my_sink_run; /* the run my_sink was claimed in */

static brook_err_t sink_split_cb(const brook_record_t *rec, void *opaque) {
  split_gens_t *sg = opaque;
  if (my_sink_run != sg->run) { /* this worker's first result: claim a sink state */
    my_sink = &sg->sinks[atomic_fetch_add(&sg->n_sinks, 1)].s;
    my_sink_run = sg->run;
  }
  return sink_cb(rec, my_sink);
}

/* ---- the baseline: tumbling windows without a framework ----
 *
 * Each open window start has its own open-addressing table (linear probing, power-of-two
 * capacity, load <= 1/2) of int32 indices into a dense entry array {key, accumulator}; so a
 * lookup of (key, window start) is a scan of the few open starts (the last one is cached)
 * then one probe sequence. Windows of one start all close at the same watermark, so closing
 * walks the dense array in insertion order and resets the table, which is then reused: no
 * allocation per event, and none per window once the pool has warmed up. */

typedef struct bl_window {
  brook_time_t start;
  uint32_t n, entries_cap; /* entries used / allocated */
  uint32_t mask;           /* index capacity - 1 */
  uint32_t *index;         /* 0 = empty, else entry number + 1 */
  unsigned char *entries;  /* n * stride bytes: uint64 key, then the accumulator */
} bl_window_t;

typedef struct baseline {
  const brook_aggregator_t *agg;
  brook_sink_fn sink;
  sink_state_t *sink_state;
  size_t stride;      /* 8 + acc_size, rounded up to 8 */
  bl_window_t **open; /* open windows, sorted by start */
  size_t n_open, open_cap;
  bl_window_t **pool; /* closed windows, ready for reuse */
  size_t n_pool, pool_cap;
  unsigned char *value; /* emission buffer: brook_window_value_t + result */
  uint64_t late;
} baseline_t;

static void oom(void) {
  fprintf(stderr, "out of memory\n");
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (!q)
    oom();
  return q;
}

static bl_window_t *bl_window_get(baseline_t *b, brook_time_t start) {
  for (size_t i = b->n_open; i-- > 0;) /* newest first: the likely one */
    if (b->open[i]->start == start)
      return b->open[i];
  bl_window_t *w;
  if (b->n_pool) {
    w = b->pool[--b->n_pool];
  } else {
    w = calloc(1, sizeof(*w));
    if (!w)
      oom();
    w->mask = 1023;
    w->index = calloc(w->mask + 1, sizeof(*w->index));
    w->entries_cap = 512;
    w->entries = xrealloc(NULL, w->entries_cap * b->stride);
    if (!w->index)
      oom();
  }
  w->start = start;
  if (b->n_open == b->open_cap) {
    b->open_cap = b->open_cap ? b->open_cap * 2 : 8;
    b->open = xrealloc(b->open, b->open_cap * sizeof(*b->open));
  }
  size_t pos = b->n_open;
  while (pos > 0 && b->open[pos - 1]->start > start)
    pos--;
  memmove(b->open + pos + 1, b->open + pos, (b->n_open - pos) * sizeof(*b->open));
  b->open[pos] = w;
  b->n_open++;
  return w;
}

static void bl_window_grow(baseline_t *b, bl_window_t *w) {
  w->entries_cap *= 2;
  w->entries = xrealloc(w->entries, w->entries_cap * b->stride);
  free(w->index);
  w->mask = w->mask * 2 + 1;
  w->index = calloc(w->mask + 1, sizeof(*w->index));
  if (!w->index)
    oom();
  for (uint32_t e = 0; e < w->n; e++) {
    uint64_t key;
    memcpy(&key, w->entries + e * b->stride, sizeof(key));
    uint32_t slot = (uint32_t)mix64(key) & w->mask;
    while (w->index[slot])
      slot = (slot + 1) & w->mask;
    w->index[slot] = e + 1;
  }
}

/* The accumulator of `key` in window `w`, created (and init'ed) if new. */
static void *bl_window_acc(baseline_t *b, bl_window_t *w, uint64_t key) {
  uint32_t slot = (uint32_t)mix64(key) & w->mask;
  for (;;) {
    uint32_t e = w->index[slot];
    if (!e)
      break;
    unsigned char *ent = w->entries + (size_t)(e - 1) * b->stride;
    uint64_t k;
    memcpy(&k, ent, sizeof(k));
    if (k == key)
      return ent + 8;
    slot = (slot + 1) & w->mask;
  }
  if (w->n == w->entries_cap) { /* keeps the index at most half full */
    bl_window_grow(b, w);
    return bl_window_acc(b, w, key);
  }
  unsigned char *ent = w->entries + (size_t)w->n * b->stride;
  w->index[slot] = ++w->n;
  memcpy(ent, &key, sizeof(key));
  memset(ent + 8, 0, b->agg->acc_size); /* accumulators start zeroed, as in brook */
  if (b->agg->init)
    b->agg->init(ent + 8, b->agg);
  return ent + 8;
}

/* Emits every result of the oldest open window to the sink, then recycles the window. */
static void bl_close_oldest(baseline_t *b, brook_time_t size) {
  bl_window_t *w = b->open[0];
  const brook_aggregator_t *agg = b->agg;
  size_t rsize = agg->result ? agg->result_size : agg->acc_size;
  brook_window_value_t wv = {w->start, w->start + size, BROOK_WINDOW_FINAL, (uint32_t)rsize};
  memcpy(b->value, &wv, sizeof(wv));
  brook_record_t out = {.key_len = sizeof(uint64_t),
                        .value = b->value,
                        .value_len = sizeof(wv) + rsize,
                        .timestamp = w->start + size - 1};
  for (uint32_t e = 0; e < w->n; e++) {
    unsigned char *ent = w->entries + (size_t)e * b->stride;
    if (agg->result)
      agg->result(ent + 8, b->value + sizeof(wv), agg);
    else
      memcpy(b->value + sizeof(wv), ent + 8, rsize);
    out.key = ent;
    if (b->sink(&out, b->sink_state) < 0)
      abort();
  }
  memset(w->index, 0, (w->mask + 1) * sizeof(*w->index));
  w->n = 0;
  memmove(b->open, b->open + 1, (b->n_open - 1) * sizeof(*b->open));
  b->n_open--;
  if (b->n_pool == b->pool_cap) {
    b->pool_cap = b->pool_cap ? b->pool_cap * 2 : 8;
    b->pool = xrealloc(b->pool, b->pool_cap * sizeof(*b->pool));
  }
  b->pool[b->n_pool++] = w;
}

static double run_baseline(gen_state_t *g, sink_state_t *s, brook_time_t size, uint64_t *late) {
  brook_generator_fn gen = p_gen;
  baseline_t b = {.agg = p_agg, .sink = p_sink, .sink_state = s};
  b.stride = (8 + b.agg->acc_size + 7) & ~(size_t)7;
  b.value = xrealloc(NULL, sizeof(brook_window_value_t) +
                               (b.agg->result ? b.agg->result_size : b.agg->acc_size));
  brook_time_t max_ts = BROOK_TIME_MIN, wm = BROOK_TIME_MIN;
  bl_window_t *last = NULL;
  uint64_t t0 = now_ns();
  for (;;) {
    brook_record_t r;
    memset(&r, 0, sizeof(r));
    brook_err_t err = gen(&r, NULL, g);
    if (err == BROOK_DONE)
      break;
    if (err != BROOK_OK)
      abort();
    brook_time_t start = r.timestamp - r.timestamp % size; /* timestamps are positive */
    if (wm != BROOK_TIME_MIN && start + size - 1 <= wm) {
      b.late++; /* every window it belongs to has closed */
      continue;
    }
    if (!last || last->start != start)
      last = bl_window_get(&b, start);
    uint64_t key;
    memcpy(&key, r.key, sizeof(key));
    if (b.agg->add(bl_window_acc(&b, last, key), &r, b.agg) < 0)
      abort(); /* never happens here: every value is a double */
    if (r.timestamp > max_ts) {
      max_ts = r.timestamp;
      wm = max_ts - DISORDER - 1; /* the bounded watermark */
      while (b.n_open && b.open[0]->start + size - 1 <= wm) {
        if (b.open[0] == last)
          last = NULL;
        bl_close_oldest(&b, size);
      }
    }
  }
  while (b.n_open) /* end of input: the watermark goes to the end of time */
    bl_close_oldest(&b, size);
  double secs = (double)(now_ns() - t0) / 1e9;
  for (size_t i = 0; i < b.n_pool; i++) {
    free(b.pool[i]->index);
    free(b.pool[i]->entries);
    free(b.pool[i]);
  }
  free(b.pool);
  free(b.open);
  free(b.value);
  *late = b.late;
  return secs;
}

/* ---- brook ---- */

/* Key number -> its split among `splits` (Kafka's partitioner on the key's 8 bytes). */
static unsigned char *split_table(const gen_state_t *g, size_t splits) {
  unsigned char *split_of = malloc(g->n_keys);
  if (!split_of)
    oom();
  for (uint32_t k = 0; k < g->n_keys; k++)
    split_of[k] = (unsigned char)brook_key_split(&g->keys[k], sizeof(g->keys[k]), (uint32_t)splits);
  return split_of;
}

static double run_brook(gen_state_t *g, sink_state_t *s, brook_window_t window, size_t workers,
                        size_t splits, input_kind_t input, run_result_t *res) {
  brook_topology_t *t = NULL;
  brook_runtime_t *rt = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    abort();
  static split_gens_t sg;
  unsigned char *split_of = NULL;
  brook_stream_t *src;
  if (input == INPUT_SINGLE) {
    brook_generator_opts_t go;
    brook_generator_opts_init(&go);
    go.splits = 1;
    go.partitioned_by_key = 1; /* one task */
    src = brook_source_generator(t, "gen", gen_cb, g, g_backend_set ? &go : NULL);
  } else {
    unsigned run = sg.run;
    memset(&sg, 0, sizeof(sg));
    sg.run = run + 1;
    sg.stride = splits;
    for (size_t k = 0; k < splits; k++) {
      sg.gens[k].g = *g;
      sg.gens[k].g.next = input == INPUT_KEY_BY ? k : 0;
    }
    brook_generator_opts_t go;
    brook_generator_opts_init(&go);
    go.splits = splits;
    if (input == INPUT_PARTITIONED) {
      sg.split_of = split_of = split_table(g, splits);
      go.partitioned_by_key = 1;
    }
    src = brook_source_generator(t, "gen", input == INPUT_PARTITIONED ? gen_keyed_cb : gen_split_cb,
                                 &sg, &go);
  }
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_BOUNDED;
  wo.max_delay = DISORDER;
  if (src)
    brook_source_set_watermark(src, &wo);
  if (input == INPUT_KEY_BY) /* each key to its task's worker */
    src = brook_key_by(src, same_key, NULL);
  brook_window_opts_t wopts;
  brook_window_opts_init(&wopts);
  wopts.name = "win"; /* state on disk is found by name */
  brook_stream_t *out =
      brook_window_aggregate(src, &window, &count_sum_agg, g_backend_set ? &wopts : NULL);
  if (input == INPUT_SINGLE)
    brook_sink_callback(out, sink_cb, NULL, s);
  else
    brook_sink_callback(out, sink_split_cb, NULL, &sg);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  char state_dir[] = "/tmp/bench-windows-XXXXXX";
  if (g_rocksdb) {
    if (!mkdtemp(state_dir)) {
      perror("mkdtemp");
      exit(1);
    }
    ro.state_dir = state_dir;
    ro.state_cache_bytes = g_cache_bytes;
    ro.commit_interval_ms = g_commit_ms;
  }
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK) {
    fprintf(stderr, "runtime_new: %s\n", brook_topology_last_error(t));
    exit(1);
  }
  uint64_t t0 = now_ns();
  brook_err_t err = brook_runtime_run(rt);
  double secs = (double)(now_ns() - t0) / 1e9;
  if (err != BROOK_OK) {
    fprintf(stderr, "run: %s\n", brook_runtime_last_error(rt));
    exit(1);
  }
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  if (brook_runtime_stats(rt, &st) == BROOK_OK) {
    res->late = st.records_late;
    res->timers = st.timers_fired;
  }
  brook_runtime_free(rt);
  brook_topology_free(t);
  free(split_of);
  if (g_rocksdb) {
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", state_dir);
  }
  for (int k = 0; input != INPUT_SINGLE && k < atomic_load(&sg.n_sinks); k++) {
    const sink_state_t *w = &sg.sinks[k].s;
    s->results += w->results;
    s->count_total += w->count_total;
    s->sum_total += w->sum_total;
    s->checksum += w->checksum;
    s->bad += w->bad;
  }
  return secs;
}

static run_result_t run_once(const run_spec_t *spec) {
  run_result_t res = {0};
  uint64_t *keys = malloc(spec->n_keys * sizeof(*keys));
  double *values = malloc(N_VALUES * sizeof(*values));
  if (!keys || !values)
    oom();
  for (uint32_t k = 0; k < spec->n_keys; k++)
    keys[k] = k;
  for (int j = 0; j < N_VALUES; j++)
    values[j] = j * 0.25;
  gen_state_t g = {.limit = spec->events, .n_keys = spec->n_keys, .keys = keys, .values = values};
  sink_state_t s = {0};
  if (spec->baseline)
    res.secs = run_baseline(&g, &s, spec->window.size, &res.late);
  else
    res.secs = run_brook(&g, &s, spec->window, spec->workers,
                         spec->splits ? spec->splits : spec->workers, spec->input, &res);
  res.results = s.results;
  res.count_total = s.count_total;
  res.sum_total = s.sum_total;
  res.checksum = s.checksum;
  res.bad = s.bad;
  free(keys);
  free(values);
  return res;
}

/* Runs one measurement in a fresh child process and returns its figures, with the child's
 * own peak RSS from wait4(). A fresh process per run is the only way to get a per-run peak:
 * ru_maxrss of one process is a high-water mark that never goes down, so in-process deltas
 * would hide every run after the largest one, and heap freed by an earlier run would be
 * reused (and not counted) by the next. The parent allocates nothing big before forking,
 * so the child starts from the same small footprint every time. */
static run_result_t run_child(const run_spec_t *spec) {
  int fd[2];
  if (pipe(fd) != 0) {
    perror("pipe");
    exit(1);
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    close(fd[0]);
    run_result_t res = run_once(spec);
    ssize_t n = write(fd[1], &res, sizeof(res));
    close(fd[1]);
    exit(n == (ssize_t)sizeof(res) ? 0 : 1);
  }
  close(fd[1]);
  run_result_t res;
  size_t got = 0;
  while (got < sizeof(res)) {
    ssize_t n = read(fd[0], (char *)&res + got, sizeof(res) - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd[0]);
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("wait4");
      exit(1);
    }
  }
  if (got != sizeof(res) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "a %s run failed (child status %d)\n", spec->baseline ? "baseline" : "brook",
            status);
    exit(1);
  }
  res.rss_kb = ru.ru_maxrss;
  res.cpu_secs = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  return res;
}

/* ---- reporting ---- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *v, int n) {
  double tmp[MAX_RUNS];
  memcpy(tmp, v, (size_t)n * sizeof(*v));
  qsort(tmp, (size_t)n, sizeof(*tmp), cmp_double);
  return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static long max_rss(const run_result_t *r, int n) {
  long m = 0;
  for (int i = 0; i < n; i++)
    m = r[i].rss_kb > m ? r[i].rss_kb : m;
  return m;
}

static double ns_per_result(double secs, uint64_t results) {
  return results ? secs * 1e9 / (double)results : 0;
}

/* Every run of a window type must produce the same results; returns 0 if not. */
static int same_results(const run_result_t *a, const run_result_t *b) {
  return a->results == b->results && a->checksum == b->checksum &&
         a->count_total == b->count_total && a->sum_total == b->sum_total;
}

typedef struct kind_report {
  const char *name;
  brook_window_t window;
  uint32_t n_keys;       /* 0 = the run's default */
  int series;            /* 1: a point of the hopping size/advance series */
  uint64_t expect_count; /* sum of counts over all results, 0 = not known in closed form */
  double secs;           /* median */
  run_result_t first;    /* the figures of the first run */
  long rss_kb, rss2_kb;  /* peak over the runs at N events, and of one run at 2N */
  run_result_t twice;    /* the run at 2N */
  double base_secs;      /* tumbling only */
  long base_rss_kb;
  double cpu_secs; /* median CPU time of the process (all threads, with set-up) */
  double kb_secs;  /* workers > 1: the key_by input's median (secs: partitioned's) */
  double kb_cpu_secs;
  run_result_t kb_first;
  long kb_rss_kb;
  double scaling; /* workers > 1: median over rounds of (1 worker, same splits) / partitioned */
} kind_report_t;

static int bench(kind_report_t *kinds, size_t n_kinds, uint64_t events, uint32_t n_keys, int runs,
                 size_t workers);
static void check_cost(uint64_t events, uint32_t n_keys);

/* Peak RSS against the number of keys: ONE tumbling window holding every event (n_keys keys,
 * each in it), then hopping windows of four slices each holding every event (every key in
 * four windows), run on both backends (each run a fresh process, one worker, the task input),
 * so that state is as big as the key count makes it. In memory the peak grows with the keys;
 * on disk it is bounded by the write cache (plus RocksDB's memtables and block cache). Both
 * must give the same results. Returns nonzero on a mismatch. */
static int bench_keys_of(const char *name, brook_window_t win, uint64_t events, uint32_t n_keys,
                         int runs) {
  printf("bench_windows keys: %s over %" PRIu64 " events and %" PRIu32
         " keys, both backends (commit every %lld ms on disk); %d runs each\n",
         name, events, n_keys, (long long)g_commit_ms, runs);
  run_result_t first[2];
  double secs[2];
  long rss[2], rss_med[2];
  g_backend_set = 1;
  for (int b = 0; b < 2; b++) {
    g_rocksdb = b;
    run_result_t rr[MAX_RUNS] = {0};
    double t[MAX_RUNS], kb[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
      run_spec_t spec = {0, win, events, n_keys, 1, INPUT_SINGLE, 0};
      rr[r] = run_child(&spec);
      t[r] = rr[r].secs;
      kb[r] = (double)rr[r].rss_kb;
      printf("  backend=%-7s run %d: %6.2f M ev/s, %" PRIu64 " results, checksum %016" PRIx64
             ", peak RSS %ld KiB\n",
             backend_name(), r + 1, (double)events / t[r] / 1e6, rr[r].results, rr[r].checksum,
             rr[r].rss_kb);
    }
    first[b] = rr[0];
    secs[b] = median(t, runs);
    rss[b] = max_rss(rr, runs);
    rss_med[b] = (long)median(kb, runs);
  }
  int failed = !same_results(&first[0], &first[1]) || first[0].count_total != events;
  if (failed)
    printf("RESULT MISMATCH: the backends' results differ (or do not count every event)\n");
  for (int b = 0; b < 2; b++) {
    g_rocksdb = b;
    printf("window=%s_keys backend=%s workers=1 input=task keys=%" PRIu32 " events=%" PRIu64
           " events_per_s=%.0f peak_rss_kb=%ld median_rss_kb=%ld results=%" PRIu64
           " checksum=%016" PRIx64 "\n",
           name, backend_name(), n_keys, events, (double)events / secs[b], rss[b], rss_med[b],
           first[b].results, first[b].checksum);
  }
  printf("window=%s_keys keys=%" PRIu32 " rocksdb_vs_memory=%.2f\n", name, n_keys,
         secs[1] > 0 ? secs[0] / secs[1] : 0.0);
  return failed;
}

static int bench_keys(uint64_t events, uint32_t n_keys, int runs) {
  const char *which = getenv("BROOK_BENCH_KEYS_WINDOWS"); /* tumbling, hopping or both */
  int failed = 0;
  if (!which || strcmp(which, "hopping") != 0) /* one window holding every event */
    failed |= bench_keys_of("tumbling", brook_window_tumbling((brook_time_t)1 << 42), events,
                            n_keys, runs);
  if (!which || strcmp(which, "tumbling") != 0) /* four windows of four slices hold them all */
    failed |=
        bench_keys_of("hopping", brook_window_hopping((brook_time_t)1 << 43, (brook_time_t)1 << 41),
                      events, n_keys, runs);
  return failed;
}

int main(int argc, char **argv) {
  int smoke = getenv("BROOK_BENCH_SMOKE") != NULL;
  uint64_t events = smoke ? 40000 : 20000000;
  uint32_t n_keys = smoke ? 1000 : 100000;
  int runs = smoke ? 1 : 3;
  if (argc > 1)
    events = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    runs = atoi(argv[2]);
  size_t worker_counts[2] = {1, 2}, n_counts = 2;
  const char *wenv = getenv("BROOK_BENCH_WORKERS");
  if (argc > 4 || wenv) {
    worker_counts[0] = (size_t)strtoull(argc > 4 ? argv[4] : wenv, NULL, 10);
    n_counts = 1;
  }
  const char *backend = argc > 5 ? argv[5] : getenv("BROOK_BENCH_BACKEND");
  if (backend) {
    g_backend_set = 1;
    g_rocksdb = strcmp(backend, "rocksdb") == 0;
    if (!g_rocksdb && strcmp(backend, "memory") != 0)
      events = 0; /* usage */
  }
  const char *cache = getenv("BROOK_BENCH_CACHE_BYTES"), *commit = getenv("BROOK_BENCH_COMMIT_MS");
  g_cache_bytes = cache ? (size_t)strtoull(cache, NULL, 10) : 0;
  g_commit_ms = commit ? strtoll(commit, NULL, 10) : g_commit_ms;
  if (runs < 1 || runs > MAX_RUNS || events == 0 || events > (UINT64_MAX >> 2) ||
      worker_counts[0] < 1 || worker_counts[0] > MAX_WORKERS || g_commit_ms < 1) {
    fprintf(stderr, "usage: bench_windows [events] [runs 1..99] "
                    "[tumbling|hopping|sliding|session|hopping_x<N>|series|keys|all] [workers] "
                    "[memory|rocksdb]\n");
    return 2;
  }
  if (argc > 3 && strcmp(argv[3], "keys") == 0) { /* BROOK_BENCH_KEYS: the key count */
    const char *nk = getenv("BROOK_BENCH_KEYS");
    uint32_t keys = nk ? (uint32_t)strtoul(nk, NULL, 10) : smoke ? 10000 : 1000000;
    return bench_keys(argc > 1 ? events : (smoke ? 30000 : 3000000), keys, runs);
  }
  kind_report_t kinds[] = {
      {.name = "tumbling", .window = brook_window_tumbling(TUMBLE_SIZE), .expect_count = events},
      {.name = "hopping",
       .window = brook_window_hopping(HOP_SIZE, HOP_ADVANCE),
       .expect_count = events * (HOP_SIZE / HOP_ADVANCE)},
      {.name = "sliding", .window = brook_window_sliding(SLIDE_SIZE)},
      {.name = "session", .window = brook_window_session(SESSION_GAP), .expect_count = events},
      /* Hopping by size/advance at equal record counts, advance and keys: per-record cost
       * must stay flat (a record updates one slice; a window combines its slices in O(1)
       * amortised), as results per event are the same at every ratio. */
      {.name = "hopping_x2",
       .series = 1,
       .n_keys = SERIES_KEYS,
       .window = brook_window_hopping(2 * SERIES_ADVANCE, SERIES_ADVANCE),
       .expect_count = events * 2},
      {.name = "hopping_x10",
       .series = 1,
       .n_keys = SERIES_KEYS,
       .window = brook_window_hopping(10 * SERIES_ADVANCE, SERIES_ADVANCE),
       .expect_count = events * 10},
      {.name = "hopping_x100",
       .series = 1,
       .n_keys = SERIES_KEYS,
       .window = brook_window_hopping(100 * SERIES_ADVANCE, SERIES_ADVANCE),
       .expect_count = events * 100},
      {.name = "hopping_x1000",
       .series = 1,
       .n_keys = SERIES_KEYS,
       .window = brook_window_hopping(1000 * SERIES_ADVANCE, SERIES_ADVANCE),
       .expect_count = events * 1000},
      {.name = "hopping_x10000",
       .series = 1,
       .n_keys = SERIES_KEYS,
       .window = brook_window_hopping(10000 * SERIES_ADVANCE, SERIES_ADVANCE),
       .expect_count = events * 10000},
  };
  size_t n_kinds = sizeof(kinds) / sizeof(kinds[0]);
  if (argc > 3 && strcmp(argv[3], "all") != 0) {
    size_t keep = 0; /* "series": the whole hopping size/advance series */
    for (size_t k = 0; k < n_kinds; k++)
      if (strcmp(kinds[k].name, argv[3]) == 0 ||
          (kinds[k].series && strcmp(argv[3], "series") == 0))
        kinds[keep++] = kinds[k];
    if (!keep) {
      fprintf(stderr, "bench_windows: unknown window type '%s'\n", argv[3]);
      return 2;
    }
    n_kinds = keep;
  }
  int failed = 0;
  for (size_t wc = 0; wc < n_counts; wc++)
    failed |= bench(kinds, n_kinds, events, n_keys, runs, worker_counts[wc]);
  check_cost(events < 4000000 ? events : 4000000, n_keys);
  return failed;
}

/* What a partitioned split's check costs per record: like the source, over each batch of
 * records just generated (1024 at a time, keys pointing into the key table), brook_key_split
 * of every key compared with the split (2 splits). Only the check loops are timed; through
 * the exported function, so a call more per record than the library's inlined hash. */
static void check_cost(uint64_t events, uint32_t n_keys) {
  enum { BATCH = 1024 };
  uint64_t *keys = malloc(n_keys * sizeof(*keys));
  double *values = malloc(N_VALUES * sizeof(*values));
  brook_record_t *batch = calloc(BATCH, sizeof(*batch));
  if (!keys || !values || !batch)
    oom();
  for (uint32_t k = 0; k < n_keys; k++)
    keys[k] = k;
  for (int j = 0; j < N_VALUES; j++)
    values[j] = j * 0.25;
  gen_state_t g = {.limit = events, .n_keys = n_keys, .keys = keys, .values = values};
  double best = 0;
  uint64_t own = 0;
  for (int r = 0; r < 3; r++) {
    uint64_t spent = 0;
    own = 0;
    for (uint64_t i = 0; i < events; i += BATCH) {
      size_t n = events - i < BATCH ? (size_t)(events - i) : BATCH;
      for (size_t k = 0; k < n; k++) {
        uint64_t h = event_hash(i + k);
        fill_event(&g, i + k, h, h % n_keys, &batch[k]);
      }
      uint64_t t0 = now_ns();
      for (size_t k = 0; k < n; k++)
        own += brook_key_split(batch[k].key, batch[k].key_len, 2) == 0;
      spent += now_ns() - t0;
    }
    double ns = (double)spent / (double)events;
    best = r == 0 || ns < best ? ns : best;
  }
  printf("check=key_split splits=2 ns_per_record=%.2f own_share=%.3f\n", best,
         (double)own / (double)events);
  free(batch);
  free(values);
  free(keys);
}

/* Prints one run's figures. */
static void print_run(const char *name, const char *input, int r, uint64_t events, double secs,
                      const run_result_t *res) {
  printf("  %-8s run %d: %-11s %6.2f M ev/s (%7.1f ns/ev) %11" PRIu64
         " results, checksum %016" PRIx64 ", timers %" PRIu64 ", late %" PRIu64,
         name, r + 1, input, (double)events / secs / 1e6, secs * 1e9 / (double)events, res->results,
         res->checksum, res->timers, res->late);
}

/* The reason a run's results are wrong, or NULL: identical across runs, equal to the
 * reference (the baseline's for tumbling, else one worker's), nothing late or broken, and
 * every event counted in exactly as many windows as it belongs to. */
static const char *wrong(const kind_report_t *kr, const run_result_t *res,
                         const run_result_t *first, const run_result_t *ref) {
  if (res->bad || res->late)
    return "brook emitted a malformed or non-final result, or dropped a late event";
  if (first && !same_results(res, first))
    return "brook's results differ between runs";
  if (ref && (!same_results(res, ref) || ref->late || ref->bad))
    return kr->window.kind == BROOK_WINDOW_TUMBLING
               ? "brook's tumbling results differ from the baseline's"
               : "brook's results differ from one worker's";
  if (kr->expect_count && res->count_total != kr->expect_count)
    return "the counts over all windows do not add up";
  return NULL;
}

static void report_mismatch(const kind_report_t *kr, const char *input, const char *why,
                            const run_result_t *res, const run_result_t *ref) {
  fprintf(stderr,
          "MISMATCH (%s, input=%s): %s: brook results=%" PRIu64 " checksum=%016" PRIx64
          " count_total=%" PRIu64 " sum_total=%.2f late=%" PRIu64 " bad=%" PRIu64,
          kr->name, input, why, res->results, res->checksum, res->count_total, res->sum_total,
          res->late, res->bad);
  if (kr->expect_count)
    fprintf(stderr, " (expected count_total=%" PRIu64 ")", kr->expect_count);
  if (ref)
    fprintf(stderr,
            "; reference results=%" PRIu64 " checksum=%016" PRIx64 " count_total=%" PRIu64
            " sum_total=%.2f late=%" PRIu64,
            ref->results, ref->checksum, ref->count_total, ref->sum_total, ref->late);
  fprintf(stderr, "\n");
}

/* Measures every window kind with `workers` workers. Returns nonzero on a mismatch. */
static int bench(kind_report_t *kinds, size_t n_kinds, uint64_t events, uint32_t n_keys, int runs,
                 size_t workers) {
  int many = workers > 1;
  input_kind_t main_input = many ? INPUT_PARTITIONED : INPUT_SINGLE;
  printf("bench_windows backend=%s (%zu worker(s)): generator -> %swindow_aggregate(count+sum) -> "
         "counting "
         "sink; %" PRIu64 " events, %" PRIu32
         " keys (8-byte binary), event time +1 ms/event with disorder "
         "[-%d, 0] ms, bounded watermark max_delay %d ms; %d runs each, each in a fresh "
         "process; tumbling alternates with a hand-written baseline\n",
         backend_name(), workers,
         many ? "(input=partitioned: splits partitioned by key | input=key_by: interleaved "
                "splits -> key_by) -> "
              : "",
         events, n_keys, DISORDER, DISORDER, runs);
  int failed = 0;
  for (size_t k = 0; k < n_kinds; k++) {
    kind_report_t *kr = &kinds[k];
    run_result_t rb[MAX_RUNS], rl[MAX_RUNS], rk[MAX_RUNS], one;
    double tb[MAX_RUNS], tl[MAX_RUNS], tk[MAX_RUNS], cb[MAX_RUNS], ck[MAX_RUNS], sc[MAX_RUNS];
    int tumbling = kr->window.kind == BROOK_WINDOW_TUMBLING;
    uint32_t keys = kr->n_keys ? kr->n_keys : n_keys;
    const run_result_t *ref = NULL;
    if (many && !tumbling) { /* the one-worker results, to compare with (not timed here) */
      run_spec_t s1 = {0, kr->window, events, keys, 1, INPUT_SINGLE, 0};
      one = run_child(&s1);
      ref = &one;
    }
    for (int r = 0; r < runs; r++) {
      run_spec_t spec = {0, kr->window, events, keys, workers, main_input, 0};
      if (tumbling) {
        spec.baseline = 1;
        rl[r] = run_child(&spec);
        tl[r] = rl[r].secs;
        spec.baseline = 0;
        ref = &rl[r];
      }
      rb[r] = run_child(&spec);
      tb[r] = rb[r].secs;
      cb[r] = rb[r].cpu_secs;
      print_run(kr->name, input_names[main_input], r, events, tb[r], &rb[r]);
      if (tumbling)
        printf("   baseline %6.2f M ev/s (%7.1f ns/ev), checksum %016" PRIx64 ", ratio %.3f",
               (double)events / tl[r] / 1e6, tl[r] * 1e9 / (double)events, rl[r].checksum,
               tl[r] / tb[r]);
      printf("\n");
      const char *why = wrong(kr, &rb[r], r > 0 ? &rb[0] : NULL, ref);
      if (why) {
        report_mismatch(kr, input_names[main_input], why, &rb[r], ref);
        failed = 1;
      }
      if (!many)
        continue;
      /* The scaling reference: one worker running the same partitioned splits (the same
       * generator work per event as the N workers together). */
      run_spec_t s1 = {0, kr->window, events, keys, 1, INPUT_PARTITIONED, workers};
      run_result_t r1 = run_child(&s1);
      sc[r] = r1.secs / tb[r];
      printf("  %-8s run %d: 1 worker, the same %zu partitioned splits %6.2f M ev/s: %zu workers "
             "%.2fx\n",
             kr->name, r + 1, workers, (double)events / r1.secs / 1e6, workers, sc[r]);
      if ((why = wrong(kr, &r1, &rb[0], ref))) {
        report_mismatch(kr, "partitioned, 1 worker", why, &r1, ref);
        failed = 1;
      }
      spec.input = INPUT_KEY_BY;
      rk[r] = run_child(&spec);
      tk[r] = rk[r].secs;
      ck[r] = rk[r].cpu_secs;
      print_run(kr->name, input_names[INPUT_KEY_BY], r, events, tk[r], &rk[r]);
      if (tumbling)
        printf("   ratio %.3f", tl[r] / tk[r]);
      printf("\n");
      if ((why = wrong(kr, &rk[r], r > 0 ? &rk[0] : NULL, ref))) {
        report_mismatch(kr, input_names[INPUT_KEY_BY], why, &rk[r], ref);
        failed = 1;
      }
    }
    kr->secs = median(tb, runs);
    kr->cpu_secs = median(cb, runs);
    kr->first = rb[0];
    kr->rss_kb = max_rss(rb, runs);
    if (many) {
      kr->kb_secs = median(tk, runs);
      kr->kb_cpu_secs = median(ck, runs);
      kr->kb_first = rk[0];
      kr->kb_rss_kb = max_rss(rk, runs);
      kr->scaling = median(sc, runs);
    }
    if (tumbling) {
      kr->base_secs = median(tl, runs);
      kr->base_rss_kb = max_rss(rl, runs);
    }
    /* State is bounded by live keys and windows, not by events: twice the events must not
     * need (much) more memory. */
    run_spec_t spec2 = {0, kr->window, events * 2, keys, workers, main_input, 0};
    kr->twice = run_child(&spec2);
    kr->rss2_kb = kr->twice.rss_kb;
    if (kr->twice.late || kr->twice.bad) {
      fprintf(stderr, "MISMATCH (%s, 2x events): late=%" PRIu64 " bad=%" PRIu64 "\n", kr->name,
              kr->twice.late, kr->twice.bad);
      failed = 1;
    }
  }

  printf("\nmedians over %d runs (%" PRIu64 " events; peak RSS = max over the runs' processes; "
         "RSS 2x = one run with %" PRIu64 " events)\n",
         runs, events, events * 2);
  printf("%-22s %10s %9s %12s %12s %9s %16s %12s %10s\n", "window", "M ev/s", "ns/ev", "results",
         "res/event", "ns/result", "checksum", "peakRSS KiB", "RSS 2x KiB");
  for (size_t k = 0; k < n_kinds; k++) {
    const kind_report_t *kr = &kinds[k];
    char label[64];
    snprintf(label, sizeof(label), "%s %s", kr->name, input_names[main_input]);
    printf("%-22s %10.2f %9.1f %12" PRIu64 " %12.3f %9.1f %016" PRIx64 " %12ld %10ld\n", label,
           (double)events / kr->secs / 1e6, kr->secs * 1e9 / (double)events, kr->first.results,
           (double)kr->first.results / (double)events, ns_per_result(kr->secs, kr->first.results),
           kr->first.checksum, kr->rss_kb, kr->rss2_kb);
    if (many) {
      snprintf(label, sizeof(label), "%s key_by", kr->name);
      printf("%-22s %10.2f %9.1f %12" PRIu64 " %12.3f %9.1f %016" PRIx64 " %12ld %10s   "
             "partitioned/key_by speed %.2fx\n",
             label, (double)events / kr->kb_secs / 1e6, kr->kb_secs * 1e9 / (double)events,
             kr->kb_first.results, (double)kr->kb_first.results / (double)events,
             ns_per_result(kr->kb_secs, kr->kb_first.results), kr->kb_first.checksum, kr->kb_rss_kb,
             "-", kr->kb_secs / kr->secs);
    }
    if (kr->window.kind == BROOK_WINDOW_TUMBLING)
      printf("%-22s %10.2f %9.1f %12" PRIu64 " %12.3f %9.1f %016" PRIx64 " %12ld %10s   ratio "
             "brook/baseline %.3f\n",
             "tumbling baseline", (double)events / kr->base_secs / 1e6,
             kr->base_secs * 1e9 / (double)events, kr->first.results,
             (double)kr->first.results / (double)events,
             ns_per_result(kr->base_secs, kr->first.results), kr->first.checksum, kr->base_rss_kb,
             "-", kr->base_secs / kr->secs);
  }
  /* Hopping emits size/advance results per event where tumbling emits one: compare both per
   * event and per result. */
  const kind_report_t *tu = NULL, *ho = NULL;
  for (size_t k = 0; k < n_kinds; k++) {
    if (kinds[k].window.kind == BROOK_WINDOW_TUMBLING)
      tu = &kinds[k];
    if (kinds[k].window.kind == BROOK_WINDOW_HOPPING && !kinds[k].series)
      ho = &kinds[k];
  }
  if (tu && ho)
    printf("hopping / tumbling time: %.2fx per event, %.2fx per result\n", ho->secs / tu->secs,
           ns_per_result(ho->secs, ho->first.results) / ns_per_result(tu->secs, tu->first.results));
  /* The size/advance series: ns per event should not grow with the ratio. */
  double s_min = 0, s_max = 0;
  int n_series = 0;
  for (size_t k = 0; k < n_kinds; k++) {
    if (!kinds[k].series)
      continue;
    double ns = kinds[k].secs * 1e9 / (double)events;
    if (!n_series++)
      printf("hopping by size/advance (advance %d ms, %d keys, equal events), ns/event:",
             SERIES_ADVANCE, SERIES_KEYS);
    printf("  x%lld: %.1f", (long long)(kinds[k].window.size / kinds[k].window.advance), ns);
    s_min = n_series == 1 || ns < s_min ? ns : s_min;
    s_max = n_series == 1 || ns > s_max ? ns : s_max;
  }
  if (n_series)
    printf("   max/min %.2f\n", s_max / s_min);
  if (failed)
    printf("RESULT MISMATCH: see the messages above\n");
  for (size_t k = 0; k < n_kinds; k++) {
    const kind_report_t *kr = &kinds[k];
    for (int v = 0; v < 1 + many; v++) {
      double secs = v ? kr->kb_secs : kr->secs;
      double cpu = v ? kr->kb_cpu_secs : kr->cpu_secs;
      const run_result_t *first = v ? &kr->kb_first : &kr->first;
      printf("window=%s backend=%s workers=%zu input=%s events_per_s=%.0f ns_per_event=%.2f "
             "ns_per_result=%.2f",
             kr->name, backend_name(), workers,
             g_backend_set && !v && main_input == INPUT_SINGLE
                 ? "task"
                 : input_names[v ? INPUT_KEY_BY : main_input],
             (double)events / secs, secs * 1e9 / (double)events,
             ns_per_result(secs, first->results));
      printf(" cpu_ns_per_event=%.2f", cpu * 1e9 / (double)events);
      if (kr->window.kind == BROOK_WINDOW_TUMBLING)
        printf(" ratio=%.3f", kr->base_secs / secs);
      if (many && !v)
        printf(" scaling=%.3f", kr->scaling);
      printf(" peak_rss_kb=%ld results=%" PRIu64 " checksum=%016" PRIx64 "\n",
             v ? kr->kb_rss_kb : kr->rss_kb, first->results, first->checksum);
    }
  }
  if (n_series)
    printf("window=hopping_series backend=%s workers=%zu input=%s ns_per_event_max_over_min=%.3f\n",
           backend_name(), workers, input_names[main_input], s_max / s_min);
  return failed;
}
