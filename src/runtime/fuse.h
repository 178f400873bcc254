/* A generator run in front of the fused chain its records go to (fuse.c): each record is made
 * and goes through the whole chain before the next one is made, instead of a pass that fills
 * the batch and a second one over it. bk_fuse_plan and bk_fuse_run: runtime_impl.h. */
#ifndef BROOK_RUNTIME_FUSE_H
#define BROOK_RUNTIME_FUSE_H

#include <brook/source.h>

#include "runtime/runtime_impl.h"

/* The generator's callback and what it is called with. */
typedef struct bk_fuse_gen {
  brook_generator_fn fn;
  void *opaque;
  brook_ctx_t *ctx; /* the source's */
} bk_fuse_gen_t;

/* The length (>= 1) of the fused chain that `src`'s next batch would go to, if its records
 * may be made in front of that chain; 0 if they must be made as a batch first: the source has
 * more than one consumer, or it tracks event time (each batch is stamped and observed before
 * anything sees it), or its records would have no task. A callback that asks
 * brook_ctx_watermark for the first time turns tracking on from the next batch: the batch in
 * progress is not stamped (in a filled batch, one the generator's own callback asked during,
 * was). Worker thread, between batches. */
size_t bk_fuse_source_chain(bk_src_t *src);

/* Makes up to `max` records with `gen` into `src`'s port buffer (empty), each running through
 * the chain of `len` operators (bk_fuse_source_chain) before the next is made; the chain's
 * survivors are delivered from its last operator at the end, as bk_ctx_process would on the
 * chain's head. *made: the records the callback made (not those it failed on). Failures
 * follow the error policy; under FAIL the first record of the batch that fails, in the
 * generator or any operator of the chain, is the failure, and no record is made after it.
 * Returns BROOK_OK, BROOK_DONE (the callback said so) or the run's error. Worker thread. */
brook_err_t bk_fuse_generate(bk_src_t *src, size_t len, const bk_fuse_gen_t *gen, size_t max,
                             size_t *made);

#endif
