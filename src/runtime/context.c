/* The operator context's accessors (the parts of operator.h that are not about emitting). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime_impl.h"
#include "runtime/task_ids.h"

void *brook_ctx_alloc(brook_ctx_t *ctx, size_t size) {
  return ctx ? bk_arena_alloc(&ctx->w->arena, size) : NULL;
}

void brook_ctx_set_error(brook_ctx_t *ctx, const char *fmt, ...) {
  if (!ctx || !fmt)
    return;
  va_list ap;
  va_start(ap, fmt);
  bk_errmsg_vset(&ctx->error_msg, fmt, ap);
  va_end(ap);
  ctx->has_error_msg = 1;
}

size_t brook_ctx_input(const brook_ctx_t *ctx) { return ctx ? ctx->input : 0; }

const char *brook_ctx_config(const brook_ctx_t *ctx, const char *key) {
  if (!ctx || !key || !ctx->node->config)
    return NULL;
  for (char **c = ctx->node->config; c[0] && c[1]; c += 2)
    if (strcmp(c[0], key) == 0)
      return c[1];
  return NULL;
}

const char *brook_ctx_name(const brook_ctx_t *ctx) { return ctx ? ctx->node->name : NULL; }

size_t brook_ctx_split(const brook_ctx_t *ctx) {
  const bk_src_t *src = ctx ? ctx->src : NULL;
  return src && src->vt->split_count ? src->split0 + src->cur_split * src->split_stride : 0;
}

size_t brook_ctx_split_count(const brook_ctx_t *ctx) {
  const bk_src_t *src = ctx ? ctx->src : NULL;
  return src && src->vt->split_count ? src->n_splits : 1;
}

int32_t brook_ctx_task(const brook_ctx_t *ctx) {
  return ctx ? bk_task_partition(ctx->rt, ctx->task) : -1; /* the partition (task_ids.h) */
}

brook_time_t brook_ctx_now(const brook_ctx_t *ctx) { return ctx ? ctx->w->now_ms : 0; }

void brook_ctx_log(brook_ctx_t *ctx, int level, const char *fmt, ...) {
  if (!ctx || !fmt || !ctx->rt->opts.log)
    return;
  char msg[1024];
  int n = snprintf(msg, sizeof(msg), "%s: ", ctx->node->name);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof(msg))
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
  va_end(ap);
  ctx->rt->opts.log(level, msg, ctx->rt->opts.log_opaque);
}

brook_time_t bk_wallclock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (brook_time_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
