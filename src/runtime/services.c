/* The runtime's services for source and sink implementations (services.h): small functions
 * over a worker's internals, so the Kafka layer never reads them directly. Each acts on the
 * worker it is given (the caller's own): the worker's thread. */
#include "runtime/services.h"

#include <stdarg.h>

#include "runtime/runtime_impl.h"

size_t bk_rt_n_workers(const brook_runtime_t *rt) { return rt->n_workers; }
bk_worker_t *bk_rt_worker(brook_runtime_t *rt, size_t i) { return &rt->workers[i]; }
size_t bk_wk_index(const bk_worker_t *w) { return w->index; }
size_t bk_wk_count(const bk_worker_t *w) { return w->rt->n_workers; }

const brook_allocator_t *bk_rt_alloc(bk_worker_t *w) { return &w->rt->alloc; }
uv_loop_t *bk_rt_loop(const bk_worker_t *w) { return w->rt->manual_clock ? NULL : w->loop; }
brook_err_t bk_rt_status(const bk_worker_t *w) { return bk_runtime_status(w->rt); }
brook_time_t bk_rt_now(const bk_worker_t *w) { return w->now_ms; }
int bk_rt_logs(const bk_worker_t *w) { return w->rt->opts.log != NULL; }

void bk_rt_log(bk_worker_t *w, int level, const char *msg) {
  if (w->rt->opts.log)
    w->rt->opts.log(level, msg, w->rt->opts.log_opaque);
}

void bk_wk_fail(bk_worker_t *w, brook_err_t err, const char *fmt, ...) {
  bk_errmsg_t m;
  va_list ap;
  va_start(ap, fmt);
  bk_errmsg_vset(&m, fmt, ap);
  va_end(ap);
  bk_runtime_fail(w->rt, err, "%s", m.text);
}

void bk_rt_count(bk_worker_t *w, bk_stat_t which, uint64_t n) {
  brook_runtime_stats_t *st = &w->stats;
  switch (which) {
  case BK_STAT_RECORDS_SKIPPED:
    st->records_skipped += n;
    break;
  case BK_STAT_RECORDS_OUT_OF_BOUNDS:
    st->records_out_of_bounds += n;
    break;
  case BK_STAT_RECORDS_DEAD_LETTERED:
    st->records_dead_lettered += n;
    break;
  case BK_STAT_REPARTITION_REPLAYS_DROPPED:
    st->repartition_replays_dropped += n;
    break;
  case BK_STAT_REPARTITION_UNPOSITIONED:
    st->repartition_records_unpositioned += n;
    break;
  }
}

void **bk_rt_slot(bk_worker_t *w, bk_rt_slot_t which) { return &w->slots[which]; }

void bk_rt_slot_closer(bk_worker_t *w, bk_rt_slot_t which, void (*fn)(bk_worker_t *w)) {
  w->slot_closers[which] = fn;
}

uint64_t bk_rt_delivery_add(bk_worker_t *w) { return bk_delivery_add(&w->delivery); }
void bk_rt_delivery_done(bk_worker_t *w, uint64_t epoch) { bk_delivery_done(&w->delivery, epoch); }
uint64_t bk_rt_deliveries_pending(const bk_worker_t *w) { return w->delivery.total; }
int bk_rt_delivery_held(const bk_worker_t *w) { return w->delivery.held; }
void bk_rt_delivery_limit(bk_worker_t *w, uint64_t limit) {
  bk_delivery_t *d = &w->delivery;
  if (!d->limit || limit < d->limit)
    d->limit = limit;
}
int bk_rt_in_error_stream(const bk_worker_t *w) { return w->error_depth > 0; }

bk_worker_t *bk_ctx_worker(const brook_ctx_t *ctx) { return ctx->w; }

bk_worker_t *bk_src_worker(const bk_src_t *src) { return src->w; }
const void *bk_src_cfg(const bk_src_t *src) { return src->cfg; }
void *bk_src_impl(const bk_src_t *src) { return src->impl; }
void bk_src_set_impl(bk_src_t *src, void *impl) { src->impl = impl; }
brook_ctx_t *bk_src_ctx(const bk_src_t *src) { return src->ctx; }
const char *bk_src_name(const bk_src_t *src) { return src->home->node->name; }
bk_port_t *bk_src_port_of(bk_src_t *src) { return bk_src_port(src); }
bk_wm_gen_t *bk_src_wm(bk_src_t *src) { return &src->wm; }
void bk_src_set_split(bk_src_t *src, size_t split) { src->cur_split = split; }
void bk_src_unready(bk_src_t *src) { src->ready = 0; }
int bk_src_is_ready(const bk_src_t *src) { return src->ready; }
