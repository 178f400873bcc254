/* A custom operator for commit tests: per instance it counts the records it passes on, its
 * flush() calls, the flushes that had records since the previous one ("dirty"), and the
 * change-listener calls of its store (every record updates one key in place, so the store
 * reports that key once per store flush that follows an update); optionally it holds its
 * records until flush() (`buffer`). Totals over all instances,
 * and the per-instance figures at close, are kept under a mutex (runtimes on other threads). */
#ifndef BROOK_TEST_FLUSH_COUNTER_H
#define BROOK_TEST_FLUSH_COUNTER_H

#include <stdint.h>

#include <uv.h>

#include <brook/brook.h>

#define FC_MAX_INST 64

typedef struct fc_inst_report {
  int32_t task;
  long records, flushes, dirty_flushes, listener_calls;
} fc_inst_report_t;

typedef struct flush_counter {
  uv_mutex_t mu;
  long records, flushes, dirty_flushes, listener_calls;
  fc_inst_report_t closed[FC_MAX_INST]; /* instances as they closed */
  int n_closed;
  /* Set before the run: records are held and passed on only by flush() (a buffering
   * operator: its output exists only once a commit flushed it). Values only. */
  int buffer;
  /* Optional: called for each record before it is passed on (e.g. to check its task). */
  void (*on_record)(brook_ctx_t *ctx, const brook_record_t *rec, void *opaque);
  void *on_record_opaque;
} flush_counter_t;

void flush_counter_init(flush_counter_t *fc);
void flush_counter_destroy(flush_counter_t *fc);

/* The operator (opaque: the flush_counter_t). */
extern const brook_operator_t flush_counter_op;

#endif
