/* Exchanges: where records cross workers. Two kinds, both from the plan (plan/plan.h):
 *
 * - By key: each output of every re-keying node (key_by, or a key change before state:
 *   plan.exchanges, one per output port) goes to the worker that owns the key's target
 *   task: target = murmur2(key) % n_tasks (Kafka's partitioner, so the target does not
 *   depend on the number of workers), task t runs on worker t % n_workers.
 * - Gather: an input of a node placed once (a stateful node fed from every worker without a
 *   key change, a line sink) is an exchange with one target task, on worker 0: every
 *   worker's records of that input go there, in order per sending worker. The once node has
 *   an instance (opened) on worker 0 only.
 *
 * Records for the worker itself are delivered directly; the others are copied (key, value and
 * headers bytes: arenas are per worker) into chunks, batch by batch, and go through one
 * bounded SPSC ring per pair of workers, woken with uv_async once per batch and destination.
 * Watermarks (with their idleness) and the end of an exchange's input travel through the
 * same rings, after the records they cover: a consumer's watermark is the minimum over every
 * sending worker, and its end waits for every sender's. A full ring is backpressure: its
 * chunks wait in the producer's FIFO and the producing worker pulls no source batch until they
 * are in. Each worker's thread touches only its own side; the rings are the only shared
 * memory. */
#ifndef BROOK_RUNTIME_EXCHANGE_H
#define BROOK_RUNTIME_EXCHANGE_H

#include "runtime/runtime_impl.h"

/* Sets up worker w's exchanges (none with one worker or without exchanges in the plan). */
brook_err_t bk_xchg_worker_init(bk_worker_t *w);
/* Frees them, with chunks still queued (after every worker finished). */
void bk_xchg_worker_free(bk_worker_t *w);
/* 1 if what `from` (any instance of its node) emits on port `p` crosses workers. */
int bk_xchg_routed(const bk_worker_t *w, const brook_ctx_t *from, const bk_port_t *p);
/* Delivers records that `from` emits on a routed port: to the targets on this worker, and
 * into chunks for the others. */
brook_err_t bk_xchg_route(brook_ctx_t *from, bk_port_t *p, const brook_record_t *recs, size_t n);
/* Publishes the chunks being filled and whatever watermark moved; pushes what waits. */
void bk_xchg_flush(bk_worker_t *w);
/* Takes what other workers sent and delivers it. Returns 1 if anything arrived. */
int bk_xchg_receive(bk_worker_t *w);
/* 1 while chunks wait for ring space: the worker pulls no source batch. */
int bk_xchg_blocked(const bk_worker_t *w);
/* Input `k` of `node` on w: if its records cross workers, adds its watermark (the fold over
 * the sending workers' instances; a once node's input on a worker other than 0 is idle: no
 * record ever arrives there) to *f and returns 1; else returns 0 (the caller adds the input
 * instance's own). */
int bk_xchg_fold_input(const bk_worker_t *w, const bk_node_t *node, size_t k, bk_wm_fold_t *f);
/* Finishing with exchanges, in topological order: a consumer of an exchange goes only once
 * every worker sending to it has ended that exchange; passing a node ends the exchanges it
 * feeds towards their receivers. Each opened operator instance gets end_of_input (a natural
 * end) and flush. Returns 1 when every node is done and nothing waits for ring space, 0 to be
 * called again (after something arrives). */
int bk_xchg_finish(bk_worker_t *w, int natural);

#endif
