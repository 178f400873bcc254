/* Keyed state in the operator context: brook_store_open registers a store with the operator
 * instance that opened it; the runtime reports in-place changes at every commit (commit.c) and
 * frees the stores with the runtime. With state on disk (runtime option state_dir), a task's
 * stores of the default backend live in the task's database under "<node identity>/<name>"
 * (the identity is the escaped node name, plan/identity.c), so two operators' stores of one
 * name never meet and a restart finds each again by name. Loop thread. */
#include <stdio.h>
#include <string.h>

#include <brook/state.h>

#include "core/alloc.h"
#include "plan/plan.h"
#include "runtime/runtime_impl.h"
#include "state/store.h"
#include "state/task_db.h"

brook_err_t bk_state_store_opts(const brook_ctx_t *ctx, const char *name,
                                const brook_store_opts_t *opts, brook_store_opts_t *out,
                                char *qname, size_t qsize, bk_errmsg_t *why) {
  bk_errmsg_t ignored;
  if (!why)
    why = &ignored;
  brook_store_opts_init(out);
  if (bk_opts_copy(out, sizeof(*out), opts, &bk_store_opts_type, why))
    return BROOK_ERR_INVALID_ARG;
  /* Only a node with an identity (a stateful one) keeps its stores in the task's database: a
   * stateless node's stores (its timers: a clock such as a repartition sink's) would all be
   * named alike there, and the next run would open one node's for another's. */
  const char *id =
      ctx->task_db ? ctx->rt->plan.nodes[ctx->rt->plan.pos[ctx->node->id]].identity : NULL;
  int in_db = id && (!out->backend || out->backend == brook_store_backend_hash());
  if (in_db) {
    out->backend = bk_task_db_backend();
    out->backend_opaque = ctx->task_db;
  } else {
    id = NULL;
  }
  int n = id ? snprintf(qname, qsize, "%s/%s", id, name) : snprintf(qname, qsize, "%s", name);
  if (n < 0 || (size_t)n >= qsize) {
    bk_errmsg_set(why, "the store's name is longer than %zu bytes", qsize - 1);
    return BROOK_ERR_INVALID_ARG;
  }
  return BROOK_OK;
}

brook_err_t brook_store_open(brook_ctx_t *ctx, const char *name, const brook_store_opts_t *opts,
                             brook_store_t **out) {
  if (out)
    *out = NULL;
  if (!ctx || !name || !out)
    return BROOK_ERR_INVALID_ARG;
  if (!ctx->in_open) {
    brook_ctx_set_error(ctx, "brook_store_open('%s') must be called from open()", name);
    return BROOK_ERR_STATE;
  }
  brook_store_opts_t o;
  char qname[BK_STATE_NAME_MAX];
  bk_errmsg_t why;
  brook_err_t err = bk_state_store_opts(ctx, name, opts, &o, qname, sizeof(qname), &why);
  if (err < 0) {
    brook_ctx_set_error(ctx, "brook_store_open('%.64s'): %s", name, why.text);
    return err;
  }
  for (size_t i = 0; i < ctx->n_stores; i++) {
    if (strcmp(bk_store_name(ctx->stores[i]), qname) == 0) {
      brook_ctx_set_error(ctx, "brook_store_open: store '%s' is already open", name);
      return BROOK_ERR_DUPLICATE;
    }
  }
  brook_runtime_t *rt = ctx->rt;
  if (bk_grow(&rt->alloc, (void **)&ctx->stores, &ctx->cap_stores, ctx->n_stores + 1,
              sizeof(*ctx->stores)))
    return BROOK_ERR_NOMEM;
  brook_store_t *s;
  err = bk_store_create(&rt->alloc, &o, qname, &s, &why);
  if (err < 0) {
    brook_ctx_set_error(ctx, "brook_store_open('%s'): %s", name, why.text);
    return err;
  }
  ctx->stores[ctx->n_stores++] = s;
  *out = s;
  return BROOK_OK;
}

void bk_state_flush_ctx(brook_runtime_t *rt, brook_ctx_t *c) {
  for (size_t k = 0; k < c->n_stores && bk_runtime_status(rt) == BROOK_OK; k++) {
    if (!bk_store_has_pending_changes(c->stores[k]))
      continue;
    brook_err_t err = brook_store_flush_changes(c->stores[k]);
    if (err < 0)
      bk_runtime_fail(rt, err, "operator '%s': the change listener of store '%s' failed: %s",
                      c->node->name, bk_store_name(c->stores[k]), brook_strerror(err));
  }
}

void bk_state_flush_changes(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  for (size_t i = 0; i < rt->plan.n && bk_runtime_status(rt) == BROOK_OK; i++)
    for (size_t t = 0; t < bk_inst_count(w, i); t++)
      bk_state_flush_ctx(rt, bk_inst_at(w, i, t));
}

void bk_state_free_ctx(brook_runtime_t *rt, brook_ctx_t *c) {
  for (size_t k = 0; k < c->n_stores; k++)
    bk_store_destroy(c->stores[k]);
  bk_free(&rt->alloc, c->stores);
  c->stores = NULL;
  c->n_stores = c->cap_stores = 0;
}
