/* Exchanges: where records cross workers. The output of every re-keying node (key_by) goes
 * to the worker that owns the key's target task: target = murmur2(key) % n_tasks (Kafka's
 * partitioner, so the target does not depend on the number of workers), task t runs on worker
 * t % n_workers. Records for the worker itself are delivered directly; the others are copied
 * (key, value and headers bytes: arenas are per worker) into chunks, batch by batch, and go
 * through one bounded SPSC ring per pair of workers, woken with uv_async. Watermarks (with
 * their idleness) and the end of an exchange's input travel through the same rings, after
 * the records they cover. A full ring is backpressure: its chunks wait in the producer's
 * FIFO and the producing worker pulls no source batch until they are in. Each worker's
 * thread touches only its own side; the rings are the only shared memory. */
#ifndef BROOK_RUNTIME_EXCHANGE_H
#define BROOK_RUNTIME_EXCHANGE_H

#include "runtime/runtime_impl.h"

/* Sets up worker w's exchanges (none with one worker or without re-keying nodes). */
brook_err_t bk_xchg_worker_init(bk_worker_t *w);
/* Frees them, with chunks still queued (after every worker finished). */
void bk_xchg_worker_free(bk_worker_t *w);
/* Routes records that exchange node `from` (a key_by instance) emits. */
brook_err_t bk_xchg_route(brook_ctx_t *from, bk_port_t *p, const brook_record_t *recs, size_t n);
/* Publishes the chunks being filled and whatever watermark moved; pushes what waits. */
void bk_xchg_flush(bk_worker_t *w);
/* Takes what other workers sent and delivers it. Returns 1 if anything arrived. */
int bk_xchg_receive(bk_worker_t *w);
/* 1 while chunks wait for ring space: the worker pulls no source batch. */
int bk_xchg_blocked(const bk_worker_t *w);
/* The watermark of exchange node at plan position `pos` for its consumers on w: the fold
 * over its instance on w and what the other workers sent. */
void bk_xchg_fold(const bk_worker_t *w, size_t pos, bk_wm_fold_t *f);
/* Finishing with exchanges, in topological order: a consumer of an exchange goes only once
 * every other worker has ended that exchange; passing an exchange node ends it towards the
 * others. Each operator instance gets end_of_input (a natural end) and flush. Returns 1 when every
 * node is done and nothing waits for ring space, 0 to be called again (after something arrives). */
int bk_xchg_finish(bk_worker_t *w, int natural);

#endif
