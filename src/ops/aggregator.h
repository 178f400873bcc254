/* Internal helpers around brook_aggregator_t (aggregate.h): its versions and the copy every
 * operator takes of a user's table. */
#ifndef BROOK_OPS_AGGREGATOR_H
#define BROOK_OPS_AGGREGATOR_H

#include <stddef.h>
#include <stdint.h>

#include <brook/aggregate.h>

#include "core/errmsg.h"

/* The size of table version `version` of brook_aggregator_t (the bytes a caller of that
 * version has), or 0 for a version this library does not know. */
size_t bk_aggregator_table_size(uint32_t version);

/* Copies the caller's table `src` into `dst` by its version: the bytes of that version, later
 * fields zero (their defaults), dst->version = BROOK_AGGREGATOR_VERSION. Returns NULL, or
 * what is wrong with `src` (formatted into *why; dst then undefined): NULL, a version this
 * library does not know (named), no add, acc_size or result_size out of range. */
const char *bk_aggregator_copy(brook_aggregator_t *dst, const brook_aggregator_t *src,
                               bk_errmsg_t *why);

#endif
