/* Internal helpers around brook_aggregator_t (aggregate.h). */
#ifndef BROOK_OPS_AGGREGATOR_H
#define BROOK_OPS_AGGREGATOR_H

#include <brook/aggregate.h>

/* NULL if `agg` is usable, else a description of what is wrong with it. */
const char *bk_aggregator_problem(const brook_aggregator_t *agg);

#endif
