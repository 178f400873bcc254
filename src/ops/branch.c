/* branch: route each record to the first branch whose predicate accepts it, or to the
 * default output (if any). */
#include <brook/stateless.h>

#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/topology.h"

typedef struct branch_cfg {
  size_t n;
  int has_default;
  brook_branch_t branches[];
} branch_cfg_t;

static brook_err_t branch_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static brook_err_t branch_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                size_t n) {
  const branch_cfg_t *cfg = state;
  for (size_t i = 0; i < n; i++) {
    brook_err_t err = BROOK_OK;
    size_t b = 0;
    for (; b < cfg->n; b++) {
      int hit = cfg->branches[b].pred(&recs[i], cfg->branches[b].opaque);
      if (hit > 0) {
        err = bk_emit_fast(ctx, b, &recs[i]);
        break;
      }
      if (hit < 0) {
        err = brook_ctx_fail_record(ctx, &recs[i], hit, "branch %zu predicate failed", b);
        break;
      }
    }
    if (b == cfg->n && cfg->has_default)
      err = bk_emit_fast(ctx, cfg->n, &recs[i]);
    if (err < 0)
      return err;
  }
  return BROOK_OK;
}

static const brook_operator_t branch_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "branch",
    .open = branch_open,
    .process_batch = branch_batch,
};

static void branch_cfg_free(void *cfg, const brook_allocator_t *a) { bk_free(a, cfg); }

brook_err_t brook_branch(brook_stream_t *in, const brook_branch_t *branches, size_t n,
                         brook_stream_t **outs, brook_stream_t **default_out) {
  if (!in)
    return BROOK_ERR_INVALID_ARG;
  brook_topology_t *t = in->node->topo;
  if (!branches)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "branch: branches is NULL");
  if (n == 0)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "branch: needs at least one branch");
  if (!outs)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "branch: outs is NULL");
  if (n > BROOK_OPERATOR_MAX_OUTPUTS - (default_out != NULL)) /* before n sizes anything */
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "branch: %zu branches%s are more than BROOK_OPERATOR_MAX_OUTPUTS (%d)",
                            n, default_out ? " and a default" : "", BROOK_OPERATOR_MAX_OUTPUTS);
  for (size_t i = 0; i < n; i++)
    if (!branches[i].pred)
      return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "branch: predicate %zu is NULL", i);
  branch_cfg_t *cfg = bk_malloc(&t->alloc, sizeof(*cfg) + n * sizeof(cfg->branches[0]));
  brook_stream_t **all = bk_calloc(&t->alloc, n + 1, sizeof(*all));
  if (!cfg || !all) {
    bk_free(&t->alloc, cfg);
    bk_free(&t->alloc, all);
    return bk_topology_fail(t, BROOK_ERR_NOMEM, "branch: out of memory");
  }
  cfg->n = n;
  cfg->has_default = default_out != NULL;
  memcpy(cfg->branches, branches, n * sizeof(*branches));
  brook_err_t err = bk_topology_add_operator(&in, 1, &branch_op, cfg, branch_cfg_free, NULL, NULL,
                                             n + (default_out != NULL), all);
  if (err == BROOK_OK) {
    memcpy(outs, all, n * sizeof(*all));
    if (default_out)
      *default_out = all[n];
  }
  bk_free(&t->alloc, all);
  return err;
}
