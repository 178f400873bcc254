/* Shared plumbing for the built-in operators that wrap one user callback: the node owns a
 * small {callback, opaque} struct that open() hands to every call as the state. */
#ifndef BROOK_OPS_FN_OP_H
#define BROOK_OPS_FN_OP_H

#include <brook/operator.h>

#include "core/fn_cfg.h"

/* open(): the state is the node's bk_fn_cfg_t. */
brook_err_t bk_fn_open(brook_ctx_t *ctx, void *opaque, void **state);

/* Adds `op` to `in` with a bk_fn_cfg_t {fn, fn2, opaque}; `n_outputs` streams are stored in
 * `outs`. Returns BROOK_OK or the (recorded) error. */
brook_err_t bk_fn_op_add(brook_stream_t *in, const brook_operator_t *op, bk_any_fn fn,
                         bk_any_fn fn2, void *opaque, size_t n_outputs, brook_stream_t **outs);

/* Same, naming the node `name` (copied; NULL = the default "<type_name>#<n>"). */
brook_err_t bk_fn_op_add_named(brook_stream_t *in, const brook_operator_t *op, bk_any_fn fn,
                               bk_any_fn fn2, void *opaque, const char *name, size_t n_outputs,
                               brook_stream_t **outs);

/* Marks the node behind `s` (just added) as a runtime may fuse it (core/fn_cfg.h). Returns s. */
brook_stream_t *bk_fn_op_fusable(brook_stream_t *s, bk_fuse_kind_t kind);

/* Single-output form: the new stream or NULL. */
brook_stream_t *bk_fn_op_add1(brook_stream_t *in, const brook_operator_t *op, bk_any_fn fn,
                              void *opaque);

#endif
