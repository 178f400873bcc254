/* The Kafka source leaving its consumer group: closing the consumer (LeaveGroup) on the loop,
 * one step per queue wake-up or timer tick, after a stop's final commit (kafka_source.c) or
 * when a run failed, so that a restart does not wait for the session to time out. Either way
 * a member that may have joined but was never assigned finishes its join first
 * (kafka_group.h: librdkafka 2.0.2 aborts otherwise).
 *
 * Every wait is bounded, so a stop ends the run in bounded time whatever the cluster does:
 *   - the final offset commit's answer and the close (LeaveGroup, the revocation, librdkafka's
 *     outstanding requests) get LEAVE_WAIT_MS each; a close that does not finish by then is
 *     given up: the client is destroyed without it (the group notices after
 *     session.timeout.ms, and the records since the last commit are read again);
 *   - a join in progress (librdkafka before 2.3.0 only) gets max.poll.interval.ms, the longest
 *     a broker lets a rebalance take (leaving earlier could abort the process). A join still
 *     not complete by then is left at once if its JoinGroup was never answered (the member has
 *     no member id: nothing to abort on); otherwise the client is abandoned (destroyed with
 *     BK_KAFKA_DESTROY_F_IMMEDIATE, kafka_group.h: its threads end on their own, its memory is not
 *     reclaimed), the one way out that neither aborts nor blocks.
 * A stop therefore takes at most 2 * LEAVE_WAIT_MS, plus max.poll.interval.ms if it came
 * during a join, after the runtime's final commit. The timer (kafka_backpressure.c) steps the
 * leave every 50 ms, so a lost queue wake-up only delays it. Loop thread. */
#include "kafka/kafka_source_impl.h"

#include "kafka/kafka_group.h"

#define LEAVE_WAIT_MS 10000 /* the final commit's answer, and the close, before giving up */
#define JOIN_CHECK_MS 50    /* how often a join wait asks librdkafka for its member id */

/* Whether the consumer may be in the middle of a group join (kafka_group.h): never assigned,
 * and either a JoinGroup was answered (it has a member id) or it has a subscribed topic to join
 * for: unless the topic watch, asked since the leave began, found none. rd_kafka_memberid is
 * a blocking round trip to librdkafka's main thread (and, with debug=cgrp, a log line that
 * wakes the queue again): asked at most every JOIN_CHECK_MS, never once per wake-up. */
static int may_be_joining(bk_ksrc_t *k) {
  if (k->synced)
    return 0;
  int64_t now = bk_wallclock_ms();
  if (k->join_checked_ms && now - k->join_checked_ms < JOIN_CHECK_MS)
    return k->joining;
  k->join_checked_ms = now;
  char *id = rd_kafka_memberid(k->rk);
  k->join_answered = id && *id;
  if (id)
    rd_kafka_mem_free(k->rk, id);
  k->joining = k->join_answered || !bk_topic_watch_none_since(k->topic_watch, k->leave_from_ms);
  return k->joining;
}

void bk_ksrc_leave_deadline_start(bk_ksrc_t *k) {
  k->leave_due_ms = bk_wallclock_ms() + LEAVE_WAIT_MS;
}

int bk_ksrc_leave_overdue(const bk_ksrc_t *k) { return bk_wallclock_ms() >= k->leave_due_ms; }

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
    if (joining && k->join_answered) {
      /* A JoinGroup was answered and no assignment came within the rebalance timeout (the
       * coordinator is gone or slower than its own limit): any close or destroy would abort
       * the process. The stop ends all the same; the client is left to librdkafka's threads
       * (destroyed without waiting: its memory is not reclaimed) and the group notices after
       * session.timeout.ms. */
      bk_ksrc_log(k, BROOK_LOG_ERROR,
                  "the group join did not complete within max.poll.interval.ms: the consumer is "
                  "abandoned without closing it (librdkafka %s would abort the process; 2.3.0 "
                  "fixed it): its memory is not reclaimed",
                  rd_kafka_version_str());
      k->phase = BK_KSRC_ABANDONED;
      k->destroy_immediately = 1;
      return 1;
    }
    if (joining) /* never answered: the assignor has no state to destroy yet */
      bk_ksrc_log(k, BROOK_LOG_WARN,
                  "the group join did not complete within max.poll.interval.ms: leaving before "
                  "its JoinGroup was answered");
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
  if (rd_kafka_consumer_closed(k->rk)) {
    k->phase = BK_KSRC_CLOSED;
    return 1;
  }
  if (bk_wallclock_ms() < k->leave_due_ms)
    return 0;
  /* librdkafka waits for the coordinator (LeaveGroup, commits) without a limit of its own:
   * give the close up; the client is destroyed without it (bk_ksrc_consumer_release). */
  bk_ksrc_log(k, BROOK_LOG_WARN,
              "the consumer could not leave the group within %d ms (coordinator unreachable?): "
              "closed without leaving; the group notices after session.timeout.ms",
              LEAVE_WAIT_MS);
  k->phase = BK_KSRC_ABANDONED;
  return 1;
}

/* A failed run's leave, one step per queue wake-up or timer tick; ends by releasing the
 * consumer and the runtime's hold. */
void bk_ksrc_failed_leave_step(bk_ksrc_t *k) {
  if (!bk_ksrc_leave_step(k))
    return;
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
