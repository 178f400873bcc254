/* Shared window machinery: instance set-up, result emission and late records. See window_common.h.
 * Loop thread. */
#include "ops/window_common.h"

#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "state/store.h"
#include "state/window_store_backend.h"

static size_t win_memory(const void *state) {
  const bk_win_t *w = state;
  return sizeof(*w) + w->acc_size + w->kcap + w->arr_cap * sizeof(*w->arr_tmp) +
         w->vslots * w->vstride + bk_win_hop_memory(w) + bk_win_slide_memory(w) +
         bk_win_disk_memory(w);
}

brook_err_t bk_win_open(brook_ctx_t *ctx, void *opaque, void **state) {
  const bk_win_cfg_t *cfg = opaque;
  const brook_allocator_t *a = &ctx->node->topo->alloc;
  bk_win_t *w = bk_calloc(a, 1, sizeof(*w));
  if (!w)
    return BROOK_ERR_NOMEM;
  w->cfg = cfg;
  w->alloc = a;
  w->acc_size = cfg->agg.acc_size;
  w->result_size = cfg->agg.result ? cfg->agg.result_size : cfg->agg.acc_size;
  brook_err_t err = BROOK_ERR_NOMEM;
  /* Stores belong to the runtime (freed with it), so a failure only releases `w`. Tumbling,
   * hopping and sliding windows keep all their state in one window store (segments per
   * start, rings per key, meta: state/window_store.h), opened like any store so that
   * snapshots, listeners and memory accounting cover it. */
  int bucketed = cfg->w.kind != BROOK_WINDOW_SESSION; /* sessions: window_session.c */
  if (ctx->n_ports) { /* result values: header + result, 16-byte aligned slots */
    w->vstride = (sizeof(brook_window_value_t) + w->result_size + 15) & ~(size_t)15;
    w->vslots = ctx->ports[0].cap;
    if (!(w->vbuf = bk_malloc(a, w->vslots * w->vstride))) {
      bk_win_close(w, opaque);
      return BROOK_ERR_NOMEM;
    }
  }
  if (bk_win_on_disk(cfg) && ctx->task_db) {
    /* State on disk: entries in the task database, memory bounded by its write cache. */
    if ((err = bk_win_disk_open(ctx, w)) < 0) {
      bk_win_close(w, opaque);
      return err;
    }
  } else if (bucketed) {
    bk_wstore_open_args_t args = {
        &cfg->agg, cfg->w.kind == BROOK_WINDOW_HOPPING ? BK_WIN_HOP_META_SIZE : 0, &w->ws};
    brook_store_opts_t so;
    brook_store_opts_init(&so);
    so.backend = bk_wstore_backend();
    so.backend_opaque = &args;
    brook_store_t *store;
    if ((err = brook_store_open(ctx, "window", &so, &store)) < 0) {
      bk_win_close(w, opaque);
      return err;
    }
    w->ws_gen = w->ws->gen;
  }
  if ((w->acc_tmp = bk_calloc(a, 1, w->acc_size)))
    err = BROOK_OK;
  if (err < 0) {
    bk_win_close(w, opaque);
    return err;
  }
  *state = w;
  ctx->state_memory = win_memory;
  return BROOK_OK;
}

void bk_win_close(void *state, void *opaque) {
  bk_win_t *w = state;
  const bk_win_cfg_t *cfg = opaque;
  (void)cfg;
  if (!w)
    return;
  const brook_allocator_t *a = w->alloc; /* the stores belong to the runtime */
  bk_win_hop_free(w);
  bk_win_slide_free(w);
  bk_win_disk_free(w);
  bk_free(a, w->kbuf);
  bk_free(a, w->vbuf);
  bk_free(a, w->acc_tmp);
  bk_free(a, w->arr_tmp);
  bk_free(a, w);
}

brook_err_t bk_win_on_watermark(brook_ctx_t *ctx, void *state, brook_time_t wm) {
  (void)wm;
  bk_win_t *w = state;
  if (!bk_win_restored(w))
    return BROOK_OK;
  switch (w->cfg->w.kind) {
  case BROOK_WINDOW_TUMBLING:
    return w->disk ? bk_win_disk_rebuild(ctx, w) : bk_win_tumbling_rebuild(ctx, w);
  case BROOK_WINDOW_HOPPING:
    return w->disk ? bk_win_disk_rebuild(ctx, w) : bk_win_hopping_rebuild(ctx, w);
  case BROOK_WINDOW_SLIDING:
    return bk_win_sliding_rebuild(ctx, w);
  default:
    return bk_win_session_rebuild(ctx, w);
  }
}

brook_err_t bk_win_bad_time(brook_ctx_t *ctx, const brook_record_t *rec) {
  brook_ctx_set_error(ctx, "timestamp %lld is outside the range windows support (+-2^61 ms)",
                      (long long)rec->timestamp);
  return BROOK_ERR_INVALID_ARG;
}

brook_err_t bk_win_emit_copy(brook_ctx_t *ctx, bk_win_t *w, const void *key, size_t klen,
                             brook_time_t start, brook_time_t end, const void *acc, int final) {
  unsigned char *k = NULL;
  if (klen && !(k = brook_ctx_alloc(ctx, klen)))
    return BROOK_ERR_NOMEM;
  if (klen)
    memcpy(k, key, klen);
  return bk_win_emit(ctx, w, k, klen, start, end, acc, final);
}

brook_err_t bk_win_record_failed(brook_ctx_t *ctx, const brook_record_t *rec, brook_err_t err) {
  if (bk_ctx_run_failed(ctx)) /* a downstream failure came back up: not this record's */
    return err;
  return brook_ctx_fail_record(ctx, rec, err, NULL);
}

brook_err_t bk_win_late(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec) {
  if (w->cfg->late == BROOK_LATE_ROUTE)
    return bk_emit_fast(ctx, 1, rec);
  bk_ctx_count_late(ctx, 1);
  return BROOK_OK;
}

unsigned char *bk_win_kbuf(bk_win_t *w, size_t n) {
  if (n > w->kcap) {
    size_t cap = n < 64 ? 64 : n * 2;
    unsigned char *b = bk_realloc(w->alloc, w->kbuf, cap);
    if (!b)
      return NULL;
    w->kbuf = b;
    w->kcap = cap;
  }
  return w->kbuf;
}

int64_t *bk_win_scratch(bk_win_t *w, size_t n) {
  if (n > w->arr_cap) {
    size_t cap = n < 16 ? 16 : n * 2;
    int64_t *a = bk_realloc(w->alloc, w->arr_tmp, cap * sizeof(*a));
    if (!a)
      return NULL;
    w->arr_tmp = a;
    w->arr_cap = cap;
  }
  return w->arr_tmp;
}
