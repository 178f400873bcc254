/* The Kafka source leaving its consumer group: closing the consumer (LeaveGroup) on the loop,
 * one step per queue wake-up or timer tick, after a stop's final commit (kafka_source.c) or
 * when a run failed, so that a restart does not wait for the session to time out. Either way
 * a member that may have joined but was never assigned finishes its join first
 * (kafka_group.h: librdkafka 2.0.2 aborts otherwise). Loop thread. */
#include "kafka/kafka_source_impl.h"

#include "kafka/kafka_group.h"

#define LEAVE_WAIT_MS 10000 /* a failed run's close (LeaveGroup) before it gives up */

/* Whether the consumer may be in the middle of a group join (kafka_group.h): never assigned,
 * and either a JoinGroup was answered (it has a member id) or it has a subscribed topic to join
 * for: unless the topic watch, asked since the leave began, found none. */
static int may_be_joining(bk_ksrc_t *k) {
  if (k->synced)
    return 0;
  char *id = rd_kafka_memberid(k->rk);
  int member = id && *id;
  if (id)
    rd_kafka_mem_free(k->rk, id);
  return member || !bk_topic_watch_none_since(k->topic_watch, k->leave_from_ms);
}

/* Starts leaving: closing the consumer at once, or first finishing a join that may be in
 * progress (kafka_group.h): never assigned yet, but the cluster has answered. */
void bk_ksrc_leave_begin(bk_ksrc_t *k) {
  k->leave_from_ms = bk_wallclock_ms();
  k->leave_due_ms = k->leave_from_ms + LEAVE_WAIT_MS;
  if (!k->cfg->topics || k->synced || !bk_kafka_join_abort_bug() || !bk_kafka_cluster_seen(k->rk))
    return;
  bk_topic_watch_ask_now(k->topic_watch); /* a fresh answer: are there topics to join for? */
  int64_t wait = bk_kafka_join_wait_ms(k->rk);
  k->phase = BK_KSRC_JOIN_WAIT;
  k->leave_due_ms = bk_wallclock_ms() + wait;
  bk_ksrc_log(
      k, BROOK_LOG_INFO,
      "leaving the group once its join is complete (at most %lld ms): librdkafka %s aborts a "
      "consumer that leaves between joining and its first assignment",
      (long long)wait, rd_kafka_version_str());
}

/* The leave, one step per call (queue wake-up or timer): the end of a join, then the close
 * and its rebalance events. Returns 1 once the consumer is closed. */
int bk_ksrc_leave_step(bk_ksrc_t *k) {
  rd_kafka_message_t *m;
  while ((m = rd_kafka_consumer_poll(k->rk, 0))) /* serves the rebalance callbacks */
    rd_kafka_message_destroy(m);
  if (k->phase == BK_KSRC_JOIN_WAIT) {
    int joining = may_be_joining(k);
    if (joining && bk_wallclock_ms() < k->leave_due_ms)
      return 0;
    if (joining)
      bk_ksrc_log(k, BROOK_LOG_WARN,
                  "the group join did not complete in time: leaving before the first assignment "
                  "(librdkafka %s may abort the process here; 2.3.0 fixed it)",
                  rd_kafka_version_str());
    k->leave_due_ms = bk_wallclock_ms() + LEAVE_WAIT_MS;
    k->phase = BK_KSRC_STOP_COMMIT; /* closes now */
  }
  if (k->phase != BK_KSRC_CLOSING) {
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(k->rk, k->q);
    if (e) {
      bk_ksrc_log(k, BROOK_LOG_WARN, "closing the consumer: %s", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      k->phase = BK_KSRC_CLOSED;
      return 1;
    }
    k->phase = BK_KSRC_CLOSING;
    while ((m = rd_kafka_consumer_poll(k->rk, 0))) /* rebalance events of the leave */
      rd_kafka_message_destroy(m);
  }
  if (!rd_kafka_consumer_closed(k->rk))
    return 0;
  k->phase = BK_KSRC_CLOSED;
  return 1;
}

/* A failed run's leave, one step per queue wake-up or timer tick; ends by releasing the
 * consumer and the runtime's hold. */
void bk_ksrc_failed_leave_step(bk_ksrc_t *k) {
  int closed = bk_ksrc_leave_step(k);
  if (!closed && bk_wallclock_ms() < k->leave_due_ms)
    return;
  if (!closed)
    bk_ksrc_log(k, BROOK_LOG_WARN,
                "the failed run could not leave the group in time; the group notices after "
                "session.timeout.ms");
  bk_ksrc_consumer_release(k);
  bk_worker_release(k->w);
}

static void on_leave_timer(uv_timer_t *h) { bk_ksrc_failed_leave_step(h->data); }

void bk_ksrc_leave_failed_run(bk_ksrc_t *k) {
  /* The run failed (operators and tasks are closed already): leave the group all the same,
   * on the loop, so that a restart is not kept waiting for this member's session to time
   * out. The runtime is held until the consumer is closed or LEAVE_WAIT_MS have passed. */
  k->after_failure = 1;
  bk_worker_hold(k->w);
  if (k->phase != BK_KSRC_CLOSING && k->phase != BK_KSRC_JOIN_WAIT) {
    k->phase = BK_KSRC_STOP_COMMIT; /* no final commit after a failure: the rest is read again */
    bk_ksrc_leave_begin(k);
  }
  uv_timer_start(&k->timer, on_leave_timer, 50, 50);
  bk_ksrc_failed_leave_step(k);
}
