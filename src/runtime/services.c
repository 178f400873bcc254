/* The runtime's services for source and sink implementations (services.h): small functions
 * over the runtime's internals, so the Kafka layer never reads them directly. A topology with
 * Kafka nodes runs one worker (runtime.h, num_workers), so the services that need a worker's
 * context (loop, clock, stats, deliveries, holds) reach worker 0's. Worker 0's thread. */
#include "runtime/services.h"

#include "runtime/runtime_impl.h"

const brook_allocator_t *bk_rt_alloc(brook_runtime_t *rt) { return &rt->alloc; }
uv_loop_t *bk_rt_loop(const brook_runtime_t *rt) { return rt->manual_clock ? NULL : rt->w0->loop; }
brook_err_t bk_rt_status(const brook_runtime_t *rt) { return bk_runtime_status(rt); }
brook_time_t bk_rt_now(const brook_runtime_t *rt) { return rt->w0->now_ms; }
int bk_rt_logs(const brook_runtime_t *rt) { return rt->opts.log != NULL; }

void bk_rt_log(brook_runtime_t *rt, int level, const char *msg) {
  if (rt->opts.log)
    rt->opts.log(level, msg, rt->opts.log_opaque);
}

void bk_rt_count(brook_runtime_t *rt, bk_stat_t which, uint64_t n) {
  brook_runtime_stats_t *st = &rt->w0->stats;
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
  }
}

void bk_runtime_hold(brook_runtime_t *rt) { bk_worker_hold(rt->w0); }
void bk_runtime_release(brook_runtime_t *rt) { bk_worker_release(rt->w0); }
void bk_runtime_close_handle(brook_runtime_t *rt, uv_handle_t *h) {
  bk_worker_close_handle(rt->w0, h);
}
void bk_runtime_wake(brook_runtime_t *rt) { bk_worker_wake(rt->w0); }
void bk_sched_poke(brook_runtime_t *rt) { bk_worker_poke(rt->w0); }

void **bk_rt_slot(brook_runtime_t *rt, bk_rt_slot_t which) { return &rt->w0->slots[which]; }

uint64_t bk_rt_delivery_add(brook_runtime_t *rt) { return bk_delivery_add(&rt->w0->delivery); }
void bk_rt_delivery_done(brook_runtime_t *rt, uint64_t epoch) {
  bk_delivery_done(&rt->w0->delivery, epoch);
}
uint64_t bk_rt_deliveries_pending(const brook_runtime_t *rt) { return rt->w0->delivery.total; }
int bk_rt_delivery_held(const brook_runtime_t *rt) { return rt->w0->delivery.held; }
void bk_rt_delivery_limit(brook_runtime_t *rt, uint64_t limit) {
  bk_delivery_t *d = &rt->w0->delivery;
  if (!d->limit || limit < d->limit)
    d->limit = limit;
}
int bk_rt_in_error_stream(const brook_runtime_t *rt) { return rt->w0->error_depth > 0; }

brook_runtime_t *bk_src_runtime(const bk_src_t *src) { return src->rt; }
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
