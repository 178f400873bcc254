/* The built-in aggregators: count, sum, min, max, mean and stats, written into a caller's
 * table by its version (brook_agg_builtin). Numeric ones read a double through the
 * aggregator's `number` callback, or take the value as a native double. */
#include <math.h>
#include <string.h>

#include <brook/aggregate.h>

#include "ops/aggregator.h"

static brook_err_t read_number(const brook_record_t *rec, const brook_aggregator_t *agg,
                               double *out) {
  if (agg->number)
    return agg->number(rec, out, agg->number_opaque);
  if (rec->value_len != sizeof(double) || !rec->value)
    return BROOK_ERR_INVALID_ARG; /* no extractor: the value must be a native double */
  memcpy(out, rec->value, sizeof(double));
  return BROOK_OK;
}

/* ---- count ---- */

static brook_err_t count_add(void *acc, const brook_record_t *rec, const brook_aggregator_t *agg) {
  (void)rec;
  (void)agg;
  ++*(int64_t *)acc;
  return BROOK_OK;
}

static void count_merge(void *acc, const void *other, const brook_aggregator_t *agg) {
  (void)agg;
  *(int64_t *)acc += *(const int64_t *)other;
}

/* ---- stats: count, sum, min, max (mean derived); sum/min/max/mean are views of it ---- */

typedef struct stats_acc {
  int64_t count;
  double sum, min, max;
} stats_acc_t;

static brook_err_t stats_add(void *acc, const brook_record_t *rec, const brook_aggregator_t *agg) {
  double x;
  brook_err_t err = read_number(rec, agg, &x);
  if (err < 0)
    return err;
  stats_acc_t *s = acc;
  if (s->count == 0 || x < s->min)
    s->min = x;
  if (s->count == 0 || x > s->max)
    s->max = x;
  s->count++;
  s->sum += x;
  return BROOK_OK;
}

static void stats_merge(void *acc, const void *other, const brook_aggregator_t *agg) {
  (void)agg;
  stats_acc_t *s = acc;
  const stats_acc_t *o = other;
  if (o->count == 0)
    return;
  if (s->count == 0 || o->min < s->min)
    s->min = o->min;
  if (s->count == 0 || o->max > s->max)
    s->max = o->max;
  s->count += o->count;
  s->sum += o->sum;
}

static void stats_result(const void *acc, void *out, const brook_aggregator_t *agg) {
  (void)agg;
  const stats_acc_t *s = acc;
  brook_agg_stats_t r = {s->count, s->sum, s->min, s->max,
                         s->count ? s->sum / (double)s->count : NAN};
  memcpy(out, &r, sizeof(r));
}

static void sum_result(const void *acc, void *out, const brook_aggregator_t *agg) {
  (void)agg;
  memcpy(out, &((const stats_acc_t *)acc)->sum, sizeof(double));
}

static void min_result(const void *acc, void *out, const brook_aggregator_t *agg) {
  (void)agg;
  memcpy(out, &((const stats_acc_t *)acc)->min, sizeof(double));
}

static void max_result(const void *acc, void *out, const brook_aggregator_t *agg) {
  (void)agg;
  memcpy(out, &((const stats_acc_t *)acc)->max, sizeof(double));
}

static void mean_result(const void *acc, void *out, const brook_aggregator_t *agg) {
  (void)agg;
  const stats_acc_t *s = acc;
  double m = s->count ? s->sum / (double)s->count : NAN;
  memcpy(out, &m, sizeof(double));
}

static brook_aggregator_t numeric(const char *name, size_t result_size,
                                  void (*result)(const void *, void *, const brook_aggregator_t *),
                                  brook_number_fn number, void *opaque) {
  return (brook_aggregator_t){.version = BROOK_AGGREGATOR_VERSION,
                              .name = name,
                              .acc_size = sizeof(stats_acc_t),
                              .result_size = result_size,
                              .add = stats_add,
                              .merge = stats_merge,
                              .result = result,
                              .number = number,
                              .number_opaque = opaque};
}

brook_err_t brook_agg_builtin(brook_aggregator_t *agg, uint32_t version, brook_agg_builtin_t which,
                              brook_number_fn number, void *opaque) {
  size_t size = bk_aggregator_table_size(version);
  if (!agg || !size)
    return BROOK_ERR_INVALID_ARG;
  brook_aggregator_t a;
  switch (which) {
  case BROOK_AGG_COUNT:
    a = (brook_aggregator_t){.version = BROOK_AGGREGATOR_VERSION,
                             .name = "count",
                             .acc_size = sizeof(int64_t),
                             .add = count_add,
                             .merge = count_merge};
    break;
  case BROOK_AGG_SUM:
    a = numeric("sum", sizeof(double), sum_result, number, opaque);
    break;
  case BROOK_AGG_MIN:
    a = numeric("min", sizeof(double), min_result, number, opaque);
    break;
  case BROOK_AGG_MAX:
    a = numeric("max", sizeof(double), max_result, number, opaque);
    break;
  case BROOK_AGG_MEAN:
    a = numeric("mean", sizeof(double), mean_result, number, opaque);
    break;
  case BROOK_AGG_STATS:
    a = numeric("stats", sizeof(brook_agg_stats_t), stats_result, number, opaque);
    break;
  default:
    return BROOK_ERR_INVALID_ARG;
  }
  /* The caller's table is as large as its version: write that much, marked as that version
   * (the fields it has mean the same in every later version). */
  a.version = version;
  memcpy(agg, &a, size);
  return BROOK_OK;
}
