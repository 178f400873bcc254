/* Tumbling windows: one slice per window, [start, start + size) with start aligned to the
 * epoch. A window's state is created by its first record together with one event-time
 * timer at end - 1 + grace; the timer emits the final result and frees the state. */
#include "ops/window_common.h"

#include "core/context.h"

static brook_err_t tumbling_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_t *w = state;
  brook_time_t size = w->cfg->w.size;
  brook_time_t start = bk_win_floor(rec->timestamp, size);
  if (bk_win_closed(w, start + size, ctx->wm))
    return bk_win_late(ctx, w, rec);
  int created;
  void *acc;
  brook_err_t err = bk_win_slice_add(w, rec, start, &created, &acc);
  if (err < 0)
    return err;
  if (created && (err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, start + size),
                                        rec->key, rec->key_len, (uint64_t)start)) < 0)
    return err;
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return bk_win_emit(ctx, w, rec->key, rec->key_len, start, start + size, acc, 0);
  return BROOK_OK;
}

static brook_err_t tumbling_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  bk_win_t *w = state;
  brook_time_t start = (brook_time_t)t->tag;
  const void *acc = bk_win_slice_find(w, t->key, t->key_len, start);
  if (!acc)
    return BROOK_OK;
  brook_err_t err = bk_win_emit(ctx, w, t->key, t->key_len, start, start + w->cfg->w.size, acc, 1);
  bk_win_slice_remove(w, t->key, t->key_len, start);
  return err;
}

const brook_operator_t bk_window_tumbling_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_tumbling",
    .open = bk_win_open,
    .process = tumbling_process,
    .close = bk_win_close,
    .on_timer = tumbling_on_timer,
};
