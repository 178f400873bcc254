/* Building a keyed stateful operator node (aggregate, reduce, dedupe): the shared part of
 * their builders. */
#ifndef BROOK_OPS_KEYED_ADD_H
#define BROOK_OPS_KEYED_ADD_H

#include <stddef.h>

#include <brook/aggregate.h>
#include <brook/operator.h>

/* Adds `op` after `in` with a copy of cfg[0..cfg_size) as its opaque (freed with the
 * topology), named by opts->name. `problem` (NULL if none) is a validation failure the
 * caller found: it is recorded as BROOK_ERR_INVALID_ARG "<type_name>: <problem>". Returns
 * the output stream, or NULL with the error recorded in the topology. */
brook_stream_t *bk_keyed_add(brook_stream_t *in, const brook_operator_t *op, const void *cfg,
                             size_t cfg_size, const brook_aggregate_opts_t *opts,
                             const char *problem);

#endif
