/* The crash loop's look into the repartition topic: how many data records the upstream tasks
 * wrote into it (an upstream task replayed after a crash writes its records again: issue 13's
 * per-upstream-task positions are what drops them downstream), and whether the downstream
 * counted exactly what the topic holds (final count per key == the key's records in the
 * topic: exactly once from the topic, so any excess over the reference is those replays).
 * Cmocka assertions. */
#ifndef BROOK_TEST_CRASH_REPARTITION_H
#define BROOK_TEST_CRASH_REPARTITION_H

#include <stdint.h>

#include "crash_loop/crash_check.h"
#include "crash_loop/crash_input.h"

typedef struct cr_report {
  int64_t data;          /* data records in the topic */
  int64_t watermarks;    /* watermark records (header brook.repartition.watermark) */
  int64_t written_again; /* data - input records */
  int keys_as_in_topic;  /* keys whose final count equals their records in the topic */
  int keys_above_topic;  /* ... counted more often than the topic holds them */
  int keys_below_topic;  /* ... less often */
} cr_report_t;

/* Reads all of `topic` (the run has ended) and compares it with the final counts of `c`. */
void cr_read(const cc_check_t *c, const char *bootstrap, const char *topic, cr_report_t *out);

#endif
