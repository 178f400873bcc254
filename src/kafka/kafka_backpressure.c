/* The Kafka source's backpressure: while the runtime has max_in_flight or more deliveries
 * pending, every assigned partition is paused (rd_kafka_pause_partitions) and no batch is
 * taken; they resume below half of it (partitions whose task is not open yet stay paused).
 * The source's timer checks that (every 10 ms while paused; every CHECK_MS otherwise, to
 * notice another sink's hold), keeps serving the consumer while paused (rebalances and
 * max.poll.interval.ms do not wait for the sinks), drives the stop sequence's waits and a
 * revocation's steps (kafka_rebalance.c). Loop thread. */
#include "kafka/kafka_source_impl.h"

#define CHECK_MS 1000 /* running: another sink's backpressure hold is noticed this soon */

static void on_timer(uv_timer_t *h) {
  bk_ksrc_t *k = h->data;
  if (bk_rt_status(k->w) != BROOK_OK)
    return;
  if (k->revoke.parts) /* a revocation's steps (kafka_rebalance.c): outside any batch */
    bk_ksrc_revoke_step(k);
  if (bk_rt_status(k->w) != BROOK_OK) {
    bk_worker_poke(k->w);
    return;
  }
  if (k->phase == BK_KSRC_RUNNING) {
    if (bk_rt_delivery_held(k->w) && !k->paused) { /* another sink's limit holds every source */
      bk_ksrc_set_paused(k, 1, NULL);
      k->paused = 1;
    }
    if (k->paused && !k->stash) {
      /* Held by backpressure, no batch runs: still serve the consumer, so a rebalance does
       * not wait for the sink (its callbacks run in this poll) and max.poll.interval.ms does
       * not expire. Paused partitions deliver nothing; anything else waits in the stash. */
      k->stash = rd_kafka_consumer_poll(k->rk, 0);
      if (bk_rt_status(k->w) != BROOK_OK) {
        bk_worker_poke(k->w); /* nothing else may run: the failure must end the run */
        return;
      }
    }
    if (k->paused && !bk_rt_delivery_held(k->w) &&
        bk_rt_deliveries_pending(k->w) < k->cfg->o.max_in_flight / 2) {
      k->paused = 0;
      bk_ksrc_set_paused(k, 0, NULL);
      bk_sched_ready(k->src);
    }
  } else if (k->phase != BK_KSRC_STOP_FLUSH && k->phase < BK_KSRC_CLOSED) {
    /* produce() runs the stop sequence: its waits (the final offset commit, a join, the
     * close) have deadlines, and the close's rebalance events are served, even if the queue
     * does not signal (kafka_leave.c) */
    bk_sched_ready(k->src);
  }
  bk_ksrc_timer_arm(k);
}

void bk_ksrc_timer_arm(bk_ksrc_t *k) {
  if (!k->timer_open)
    return;
  int64_t ms = CHECK_MS;
  if (k->paused && k->phase == BK_KSRC_RUNNING)
    ms = 10; /* re-check soon: deliveries complete on the loop */
  else if (k->phase >= BK_KSRC_STOP_COMMIT && k->phase < BK_KSRC_CLOSED)
    ms = 50; /* the stop's waits and their deadlines (kafka_leave.c) */
  if (bk_ksrc_revoke_due_in(k) < ms)
    ms = bk_ksrc_revoke_due_in(k); /* a revocation's timeout */
  uv_timer_start(&k->timer, on_timer, (uint64_t)ms, 0);
}

void bk_ksrc_timer_soon(bk_ksrc_t *k) {
  if (k->timer_open)
    uv_timer_start(&k->timer, on_timer, 0, 0);
}

int bk_ksrc_backpressure(bk_ksrc_t *k) {
  /* Too much output awaits acknowledgement: pause fetching and take no new batch until half
   * of it is acknowledged (the timer resumes). The queue is left as it is meanwhile, so it
   * will not signal: the timer, not the poller, wakes the source. */
  if (k->phase != BK_KSRC_RUNNING || bk_rt_deliveries_pending(k->w) < k->cfg->o.max_in_flight)
    return 0;
  if (!k->paused) {
    bk_ksrc_set_paused(k, 1, NULL);
    k->paused = 1;
    bk_ksrc_timer_arm(k);
  }
  return 1;
}
