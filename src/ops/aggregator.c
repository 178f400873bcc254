/* brook_aggregator_t's versions, and the copy each operator keeps of a user's table: read by
 * the version the table says it is, like the operator table (core/topology.c), so a table
 * compiled against an older header is never read past its end. */
#include "ops/aggregator.h"

#include <string.h>

/* The size of each version of brook_aggregator_t, indexed by version. The table only grows by
 * appending: a new version adds its size here (the last entry is the current sizeof). */
static const size_t agg_table_size[] = {
    0, sizeof(brook_aggregator_t), /* 1: ... number_opaque */
};
_Static_assert(sizeof(agg_table_size) / sizeof(agg_table_size[0]) == BROOK_AGGREGATOR_VERSION + 1,
               "a new aggregator table version needs its size here");

size_t bk_aggregator_table_size(uint32_t version) {
  if (version < 1 || version > BROOK_AGGREGATOR_VERSION)
    return 0;
  return agg_table_size[version];
}

const char *bk_aggregator_copy(brook_aggregator_t *dst, const brook_aggregator_t *src,
                               bk_errmsg_t *why) {
  if (!src) {
    bk_errmsg_set(why, "aggregator is NULL");
    return why->text;
  }
  size_t size = bk_aggregator_table_size(src->version);
  if (!size) {
    bk_errmsg_set(why, "aggregator table version %u is not one this library knows (1 to %d)",
                  (unsigned)src->version, BROOK_AGGREGATOR_VERSION);
    return why->text;
  }
  memset(dst, 0, sizeof(*dst));
  memcpy(dst, src, size);
  dst->version = BROOK_AGGREGATOR_VERSION;
  const char *problem = NULL;
  if (!dst->add)
    problem = "aggregator has no add callback";
  else if (dst->acc_size == 0 || dst->acc_size > 65536)
    problem = "aggregator acc_size must be 1..65536";
  else if (dst->result && dst->result_size > 65536)
    problem = "aggregator result_size must be <= 65536";
  if (problem) {
    bk_errmsg_set(why, "%s", problem);
    return why->text;
  }
  return NULL;
}
