/* custom_operator: how to write your own operator against brook_operator_t (operator.h).
 * Copy this file and change the numbered parts: 1. the value types, 2. the state, 3. the
 * callbacks (mostly process() and end_of_input()), 4. the program that wires it up.
 *
 * The operator here is a per-key moving average ("moving_avg"):
 *   input      key = a sensor name, value = struct reading (a native struct)
 *   output 0   for every reading: the average of that sensor's last `window` readings
 *   output 1   at the end of the input: one summary per sensor (count, min, max, mean)
 *   config     "window" = how many readings to average (default 3)
 *
 * The pipeline:
 *
 *   generator "sensors" -> moving_avg --(0)--> callback sink: print the averages
 *                                     --(1)--> callback sink: print the summaries
 *
 * A reading that is not a number makes process() fail; the topology's error policy (SKIP,
 * set in main) drops it and counts it, so the run goes on.
 *
 *   custom_operator [WINDOW]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brook/brook.h>

/* ---- 1. the values flowing in and out (native structs: no serialisation in-process) ---- */

typedef struct reading {
  double celsius;
} reading_t;

typedef struct average {
  double celsius;   /* mean of the last `samples` readings of this key */
  uint32_t samples; /* < window until the key has seen `window` readings */
} average_t;

typedef struct summary {
  uint64_t count;
  double min, max, mean;
} summary_t;

/* ---- 2. the operator's state: created in open(), freed in close() ----------------------- */

/* One key's history. The key bytes are COPIED: records are only borrowed for the call to
 * process(), so anything an operator keeps must be its own copy. */
typedef struct key_state {
  double *ring; /* the last `window` readings; next write at ring[pos] */
  uint32_t pos, filled;
  uint64_t count;
  double min, max, sum;
  size_t key_len;
  char key[]; /* key_len bytes */
} key_state_t;

typedef struct moving_avg {
  uint32_t window;
  key_state_t **keys; /* in order of first appearance (so the summary order is stable) */
  size_t n_keys, cap_keys;
  size_t *index; /* open addressing: index[h] = position in keys + 1, 0 = empty */
  size_t index_cap;
} moving_avg_t;

/* FNV-1a: a small, decent hash for short keys. */
static size_t hash_bytes(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211u;
  return (size_t)h;
}

/* Rebuilds the index with twice the room (keeps the load factor below 1/2). */
static int index_grow(moving_avg_t *m) {
  size_t cap = m->index_cap ? m->index_cap * 2 : 16;
  size_t *index = calloc(cap, sizeof(*index));
  if (!index)
    return -1;
  for (size_t k = 0; k < m->n_keys; k++) {
    size_t h = hash_bytes(m->keys[k]->key, m->keys[k]->key_len) & (cap - 1);
    while (index[h])
      h = (h + 1) & (cap - 1);
    index[h] = k + 1;
  }
  free(m->index);
  m->index = index;
  m->index_cap = cap;
  return 0;
}

/* The state of `key`, created on first sight. NULL if out of memory. */
static key_state_t *key_state_get(moving_avg_t *m, const void *key, size_t key_len) {
  if ((m->n_keys + 1) * 2 > m->index_cap && index_grow(m) != 0)
    return NULL;
  size_t h = hash_bytes(key, key_len) & (m->index_cap - 1);
  for (; m->index[h]; h = (h + 1) & (m->index_cap - 1)) {
    key_state_t *ks = m->keys[m->index[h] - 1];
    if (ks->key_len == key_len && (key_len == 0 || memcmp(ks->key, key, key_len) == 0))
      return ks;
  }
  if (m->n_keys == m->cap_keys) {
    size_t cap = m->cap_keys ? m->cap_keys * 2 : 8;
    key_state_t **keys = realloc(m->keys, cap * sizeof(*keys));
    if (!keys)
      return NULL;
    m->keys = keys;
    m->cap_keys = cap;
  }
  key_state_t *ks = calloc(1, sizeof(*ks) + key_len);
  double *ring = calloc(m->window, sizeof(*ring));
  if (!ks || !ring) {
    free(ks);
    free(ring);
    return NULL;
  }
  ks->ring = ring;
  ks->key_len = key_len;
  if (key_len)
    memcpy(ks->key, key, key_len);
  m->keys[m->n_keys++] = ks;
  m->index[h] = m->n_keys;
  return ks;
}

/* ---- 3. the callbacks: all run on the runtime's loop thread, one at a time ------------- */

/* open: once per runtime, before the first record. Reads the configuration and creates the
 * state; what it stores in *state is passed to every other callback. */
static brook_err_t moving_avg_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)opaque; /* the pointer given to brook_operator_add (unused here) */
  uint32_t window = 3;
  const char *w = brook_ctx_config(ctx, "window");
  if (w) {
    char *end;
    unsigned long v = strtoul(w, &end, 10);
    if (!*w || *end || w[0] == '-' || v < 1 || v > 1000) {
      brook_ctx_log(ctx, BROOK_LOG_ERROR, "config window=\"%s\": must be 1..1000", w);
      return BROOK_ERR_INVALID_ARG; /* the runtime does not start */
    }
    window = (uint32_t)v;
  }
  moving_avg_t *m = calloc(1, sizeof(*m));
  if (!m)
    return BROOK_ERR_NOMEM;
  m->window = window;
  *state = m;
  return BROOK_OK;
}

/* process: one input record, borrowed for this call. Emitted records are copied as structs,
 * but the bytes they point at must live until the batch is done: here the key points into
 * the input record and the value is allocated with brook_ctx_alloc (freed by brook). */
static brook_err_t moving_avg_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  moving_avg_t *m = state;
  const reading_t *r = rec->value;
  if (rec->value_len != sizeof(*r) || !isfinite(r->celsius))
    return BROOK_ERR_INVALID_ARG; /* the error policy decides: fail, skip or route */

  key_state_t *ks = key_state_get(m, rec->key, rec->key_len);
  if (!ks)
    return BROOK_ERR_NOMEM;
  double x = r->celsius;
  ks->ring[ks->pos] = x;
  ks->pos = (ks->pos + 1) % m->window;
  if (ks->filled < m->window)
    ks->filled++;
  ks->min = ks->count == 0 || x < ks->min ? x : ks->min;
  ks->max = ks->count == 0 || x > ks->max ? x : ks->max;
  ks->sum += x;
  ks->count++;

  average_t *avg = brook_ctx_alloc(ctx, sizeof(*avg));
  if (!avg)
    return BROOK_ERR_NOMEM;
  double sum = 0;
  for (uint32_t i = 0; i < ks->filled; i++)
    sum += ks->ring[i];
  *avg = (average_t){sum / ks->filled, ks->filled};

  brook_record_t out = *rec; /* same key and timestamp */
  out.value = avg;
  out.value_len = sizeof(*avg);
  return brook_emit_to(ctx, 0, &out); /* an error here came from downstream: return it */
}

/* end_of_input: every input has ended (a bounded source ran out): emit final results. Not
 * called when the runtime is stopped early or has failed. */
static brook_err_t moving_avg_end_of_input(brook_ctx_t *ctx, void *state) {
  moving_avg_t *m = state;
  for (size_t k = 0; k < m->n_keys; k++) {
    key_state_t *ks = m->keys[k];
    summary_t *s = brook_ctx_alloc(ctx, sizeof(*s));
    if (!s)
      return BROOK_ERR_NOMEM;
    *s = (summary_t){ks->count, ks->min, ks->max, ks->sum / (double)ks->count};
    /* The key bytes live in our state until close(), which is after the batch: fine. */
    brook_record_t out = {.key = ks->key,
                          .key_len = ks->key_len,
                          .value = s,
                          .value_len = sizeof(*s),
                          .timestamp = brook_ctx_now(ctx)};
    brook_err_t err = brook_emit_to(ctx, 1, &out);
    if (err != BROOK_OK)
      return err;
  }
  return BROOK_OK;
}

/* flush: at commit points, when the runtime goes idle, and before close. An operator that
 * buffers output or writes somewhere (a file, a socket) pushes it out here. This one emits
 * as it goes, so there is nothing to do; it only logs (seen with the runtime's log callback). */
static brook_err_t moving_avg_flush(brook_ctx_t *ctx, void *state) {
  moving_avg_t *m = state;
  brook_ctx_log(ctx, BROOK_LOG_DEBUG, "flush: %zu keys tracked", m->n_keys);
  return BROOK_OK;
}

/* close: exactly once per successful open(), also after a failure. Free everything. */
static void moving_avg_close(void *state, void *opaque) {
  (void)opaque;
  moving_avg_t *m = state;
  for (size_t k = 0; k < m->n_keys; k++) {
    free(m->keys[k]->ring);
    free(m->keys[k]);
  }
  free(m->keys);
  free(m->index);
  free(m);
}

/* The function table. Start with the version; unset optional callbacks stay NULL. A static
 * const table is fine: brook_operator_add copies it. */
static const brook_operator_t moving_avg_operator = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "moving_avg",
    .open = moving_avg_open,
    .process = moving_avg_process, /* or .process_batch for a whole batch per call */
    .end_of_input = moving_avg_end_of_input,
    .flush = moving_avg_flush,
    .close = moving_avg_close,
};

/* ---- 4. the rest of the program: a source, the operator, two sinks ---------------------- */

static const char *const sensors[] = {"kitchen", "garage", "attic"};
#define N_READINGS 13

/* The generator: 13 readings, round-robin over the sensors, one second apart; the 8th is not
 * a number (a broken sensor), which the operator rejects. */
static brook_err_t next_reading(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  unsigned *i = opaque;
  if (*i == N_READINGS)
    return BROOK_DONE;
  reading_t *r = brook_ctx_alloc(ctx, sizeof(*r));
  if (!r)
    return BROOK_ERR_NOMEM;
  const char *sensor = sensors[*i % 3];
  r->celsius = *i == 7 ? NAN : 18.0 + (double)(*i % 3) * 2.5 + (double)(*i * *i % 7) * 0.5;
  out->key = sensor; /* static strings outlive the runtime: no copy needed */
  out->key_len = strlen(sensor);
  out->value = r;
  out->value_len = sizeof(*r);
  out->timestamp = 1795514400000 + (brook_time_t)*i * BROOK_S; /* 2026-11-24T10:00:00Z + i s */
  (*i)++;
  return BROOK_OK;
}

static void print_time(brook_time_t ts) {
  int64_t ms = ts % (24 * BROOK_H);
  printf("%02d:%02d:%02d", (int)(ms / BROOK_H), (int)(ms / BROOK_MIN % 60),
         (int)(ms / BROOK_S % 60));
}

static brook_err_t print_average(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  const average_t *a = rec->value;
  print_time(rec->timestamp);
  printf("  %-8.*s avg %6.2f C over %" PRIu32 "\n", (int)rec->key_len, (const char *)rec->key,
         a->celsius, a->samples);
  return BROOK_OK;
}

static brook_err_t print_summary(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  const summary_t *s = rec->value;
  printf("summary %-8.*s %" PRIu64 " readings, min %.2f, max %.2f, mean %.2f\n", (int)rec->key_len,
         (const char *)rec->key, s->count, s->min, s->max, s->mean);
  return BROOK_OK;
}

static void on_log(int level, const char *msg, void *opaque) {
  (void)opaque;
  if (level <= BROOK_LOG_WARN || getenv("VERBOSE"))
    fprintf(stderr, "custom_operator: %s\n", msg);
}

int main(int argc, char **argv) {
  if (argc > 2) {
    fprintf(stderr, "usage: %s [WINDOW]\n", argv[0]);
    return 2;
  }
  brook_topology_opts_t topts;
  brook_topology_opts_init(&topts);
  topts.error_policy = BROOK_ON_ERROR_SKIP; /* a failed record is dropped and counted */
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, &topts) != BROOK_OK)
    return 1;

  unsigned counter = 0;
  brook_stream_t *readings = brook_source_generator(t, "sensors", next_reading, &counter, NULL);

  /* Configuration: NULL-terminated key, value pairs, copied by brook_operator_add. */
  const char *config[] = {"window", argc == 2 ? argv[1] : "3", NULL};
  brook_operator_opts_t oopts;
  brook_operator_opts_init(&oopts);
  oopts.name = "moving_avg";
  oopts.config = config;
  oopts.n_outputs = 2;
  brook_stream_t *outs[2] = {NULL, NULL};
  brook_operator_add(&readings, 1, &moving_avg_operator, NULL, &oopts, outs);
  brook_sink_callback(outs[0], print_average, NULL, NULL);
  brook_sink_callback(outs[1], print_summary, NULL, NULL);

  brook_runtime_opts_t ropts;
  brook_runtime_opts_init(&ropts);
  ropts.log = on_log;
  ropts.batch_size = 4; /* tiny batches, to show that state carries across them */
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ropts) != BROOK_OK) {
    fprintf(stderr, "custom_operator: %s\n", brook_topology_last_error(t));
    brook_topology_free(t);
    return 1;
  }
  brook_topology_free(t);

  brook_err_t err = brook_runtime_run(rt);
  brook_runtime_stats_t stats = {.struct_size = sizeof(stats)};
  brook_runtime_stats(rt, &stats);
  if (err != BROOK_OK)
    fprintf(stderr, "custom_operator: failed: %s\n", brook_runtime_last_error(rt));
  else
    printf("%" PRIu64 " readings in, %" PRIu64 " skipped (not a number)\n", stats.records_in,
           stats.records_skipped);
  brook_runtime_free(rt);
  return err == BROOK_OK ? 0 : 1;
}
