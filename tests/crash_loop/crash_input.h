/* The crash-loop harness's input and its fault-free reference (crash_pipeline.h's pipeline),
 * both deterministic from a seed:
 *   - `partitions` input partitions; record i of partition p has event time
 *     ts0 + i * CI_STEP_MS minus a jitter of up to CI_JITTER_MS (out of order, always within
 *     the grace), a random key "k<n>" of `keys`, and Kafka key "p<p>-<i>";
 *   - phase 1 is the first `phase1_percent` of every partition; phase 2 the rest, produced once
 *     the windows phase 1 closes are all in the output. About `late_permille` of phase 2's
 *     records are late beyond the grace: their event time falls in a window phase 1 closed
 *     well before (a fault-free run drops them from the windows; the count per key has them);
 *   - each partition ends with a record of key "end", far ahead in event time, so that every
 *     data window closes.
 * Reference: the count per key (every record), and per (key, window) the count of the records
 * that are not late (the windows' final results; all of them close). */
#ifndef BROOK_TEST_CRASH_INPUT_H
#define BROOK_TEST_CRASH_INPUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CI_STEP_MS 10    /* event time per record of a partition */
#define CI_JITTER_MS 300 /* out of order by up to this (< CP_GRACE_MS) */

typedef struct ci_params {
  uint64_t seed;
  int partitions;
  int64_t records; /* data records over all partitions (the "end" records come on top) */
  int keys;
  int phase1_percent;
  int late_permille; /* of phase 2's records */
} ci_params_t;

typedef struct ci_rec {
  int32_t key; /* 0..keys-1; keys = "end" */
  uint8_t late;
  int64_t ts;
} ci_rec_t;

typedef struct ci_input {
  ci_params_t p;
  int64_t ts0;
  int64_t per_part; /* data records per partition */
  int64_t phase1;   /* records of phase 1 per partition */
  ci_rec_t *recs;   /* partition p's record i at [p * (per_part + 1) + i]; the last is "end" */
  /* The reference. */
  int64_t *count;       /* [keys + 1] */
  int64_t w0;           /* start of window 0 */
  int64_t n_windows;    /* data windows 0..n_windows-1 */
  int32_t *win;         /* [key * n_windows + w]: the window's count (0: no window) */
  int64_t ref_windows;  /* windows with a count */
  int64_t phase1_close; /* windows 0..phase1_close-1 close with phase 1's input alone */
  int64_t late;         /* late records */
  int32_t *late_win;    /* [key * n_windows + w]: late records whose event time is in it */
} ci_input_t;

/* Generates the input and its reference (ts0: event time of record 0, a multiple of the
 * window). Returns 0, or -1 for parameters out of range. */
int ci_generate(ci_input_t *in, const ci_params_t *p, int64_t ts0);
void ci_free(ci_input_t *in);

/* The record of partition `part`, index i (i == per_part: the "end" record). */
const ci_rec_t *ci_rec(const ci_input_t *in, int part, int64_t i);

/* Writes key index k as its text ("k<k>", or "end") into out[cap]; returns its length. */
size_t ci_key_text(const ci_input_t *in, int32_t k, char *out, size_t cap);
/* The key index of a key text, or -1. */
int32_t ci_key_index(const ci_input_t *in, const void *key, size_t len);

/* Produces records [from, to) of every partition (to <= per_part + 1: the "end" record is
 * index per_part) to topic `topic` at `bootstrap`, in order, and waits until all are
 * acknowledged. Phase 1 is [0, phase1), phase 2 [phase1, per_part + 1). Cmocka assertions. */
void ci_produce(const ci_input_t *in, const char *bootstrap, const char *topic, int64_t from,
                int64_t to);

/* A producer thread that feeds records [from, to) of every partition at an even pace over
 * `duration_ms` (every 50 ms the records due by then), so that input flows while the pipeline
 * is killed and restarted. No cmocka in the thread: its errors are in `error`. */
typedef struct ci_feeder {
  const ci_input_t *in;
  const char *bootstrap, *topic;
  int64_t from, to, duration_ms;
  pthread_t thread;
  atomic_int done; /* 1 once every record is acknowledged (or it failed) */
  char error[256]; /* empty if it went well; read after ci_feed_join */
} ci_feeder_t;

void ci_feed_start(ci_feeder_t *f);
/* Waits for the thread; 0 if every record was acknowledged, else -1 (f->error says why). */
int ci_feed_join(ci_feeder_t *f);

#endif
