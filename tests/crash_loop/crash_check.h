/* The crash-loop harness's output check: reads the pipeline's output topics ("counts",
 * "windows") as they fill, and compares them with the reference of crash_input.h:
 *   - counts: a key's count only grows, one output per record: the largest count of a key is
 *     its final count (== the reference, else records were counted twice or lost); every
 *     count 1..reference appears (else a result is missing); a count seen twice is a
 *     duplicate (at-least-once output after a crash: allowed, counted);
 *   - windows: the last result of each (key, window) in the topic is its final aggregate
 *     (== the reference); no reference window is missing; no window the reference does not
 *     have (a late record that reopened a closed window); results emitted again are
 *     duplicates (same value) or changed (another value), both counted.
 * Cmocka assertions for client errors; the verdict is in the summary. */
#ifndef BROOK_TEST_CRASH_CHECK_H
#define BROOK_TEST_CRASH_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "crash_loop/crash_input.h"

typedef struct cc_summary {
  int64_t count_outputs, count_keys_wrong, count_keys_below, count_excess, count_over,
      count_missing, count_duplicates;
  int64_t window_outputs, windows_missing, windows_wrong, windows_changed, windows_duplicates,
      windows_unexpected;
  int64_t windows_reopened; /* changed to a smaller result: a record reopened it after it closed */
  int64_t windows_reopened_late;   /* ... of which the input has late records in that window */
  int64_t windows_unexpected_late; /* unexpected windows the input has late records in */
  int64_t windows_above;           /* wrong windows whose last result is above the reference */
  int64_t bad_records; /* outputs that are not the pipeline's (unknown key, wrong size) */
} cc_summary_t;

typedef struct cc_check {
  const ci_input_t *in;
  rd_kafka_t *reader;
  uint16_t *hits;        /* count value v of key k seen hits[offset[k] + v - 1] times */
  int64_t *offset;       /* [keys + 1] */
  int64_t *max;          /* [keys + 1]: largest count seen */
  int64_t over;          /* counts past the reference */
  int32_t *last;         /* [key * n_windows + w]: last window result (-1: none) */
  uint16_t *emits;       /* ... results seen */
  uint8_t *changed;      /* ... a result differed from an earlier one */
  int64_t extra_windows; /* results of windows outside the data windows */
  int64_t bad, count_outputs, window_outputs;
  int64_t phase1_present; /* reference windows < phase1_close present */
} cc_check_t;

/* Starts reading both output topics from the beginning. */
void cc_init(cc_check_t *c, const ci_input_t *in, const char *bootstrap);
void cc_free(cc_check_t *c);

/* Reads what arrived for up to timeout_ms (returns earlier once nothing came for idle_ms);
 * returns how many outputs were read. */
int64_t cc_poll(cc_check_t *c, int timeout_ms, int idle_ms);

/* The reference windows that phase 1 closes. */
int64_t cc_phase1_windows(const ci_input_t *in);
/* Every reference window that phase 1 closes is in the output. */
int cc_phase1_closed(const cc_check_t *c);
/* Every key reached its reference count and every reference window is in the output. */
int cc_complete(const cc_check_t *c);

void cc_summarize(const cc_check_t *c, cc_summary_t *s);
/* Prints the summary and up to `max_detail` wrong keys and windows. */
void cc_print(const cc_check_t *c, const cc_summary_t *s, FILE *out, int max_detail);
/* 1 if the state was exactly once and nothing is missing (duplicates allowed). */
int cc_exact(const cc_summary_t *s);

#endif
