/* The Kafka source's offsets, at least once. When a batch is done, (its delivery epoch,
 * partition, last offset + 1) is queued. At each of the runtime's commits (runtime/commit.c:
 * operators flushed, stores flushed, every output up to the commit point acknowledged) the
 * batches of epochs up to the point advance their partitions' committable offsets, which are
 * committed asynchronously: an offset is never committed before the outputs of the records
 * below it are acknowledged. A revoked partition commits at its revocation
 * (kafka_rebalance.c), once its task is flushed and the outputs up to the revocation point
 * are acknowledged: everything it read (bk_ksrc_settle_part); at the revocation's timeout,
 * only what the last commits finished. Loop thread (the commit callback runs in the
 * consumer's poll). */
#include "kafka/kafka_source_impl.h"

#include "core/alloc.h"
#include "kafka/kafka_group.h"

void bk_ksrc_on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  (void)rk;
  bk_ksrc_t *k = opaque;
  k->commit_in_flight = 0;
  int rebalancing = err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
  for (int i = 0; offsets && i < offsets->cnt; i++)
    rebalancing |= offsets->elems[i].err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
  if (rebalancing && k->phase < BK_KSRC_JOIN_WAIT && !k->rebalancing_since)
    k->rebalancing_since = bk_wallclock_ms(); /* until the rebalance's callback */
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    bk_ksrc_log(k, BROOK_LOG_WARN, "offset commit failed: %s (retried at the next commit)",
                rd_kafka_err2str(err));
  for (int i = 0; offsets && i < offsets->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &offsets->elems[i];
    size_t p = bk_ksrc_part_find(k, tp->topic, tp->partition);
    if (p == SIZE_MAX)
      continue;
    if (!err && !tp->err && tp->offset > k->parts[p].committed)
      k->parts[p].committed = tp->offset;
  }
  if (k->phase == BK_KSRC_STOP_COMMIT)
    bk_sched_ready(k->src); /* the stop goes on: close the consumer */
}

/* Moves the queued batches of epochs <= `epoch` into their partitions' committable offsets. */
static void settle_pending(bk_ksrc_t *k, uint64_t epoch) {
  while (k->n_pend) {
    bk_kpending_t *e = &k->pend[k->pend_head];
    if (e->epoch > epoch)
      break;
    if (e->part != SIZE_MAX && e->next > k->parts[e->part].committable)
      k->parts[e->part].committable = e->next;
    k->pend_head = (k->pend_head + 1) % k->cap_pend;
    k->n_pend--;
  }
}

int bk_ksrc_commit_finished(bk_ksrc_t *k, const rd_kafka_topic_partition_list_t *only) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)k->n_parts);
  for (size_t i = 0; i < k->n_parts; i++) {
    bk_kpart_t *p = &k->parts[i];
    if (!p->assigned || p->committable <= p->committed)
      continue;
    if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
      continue;
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->committable;
  }
  int sent = 0;
  if (l->cnt) {
    rd_kafka_resp_err_t err = rd_kafka_commit(k->rk, l, 1);
    if (err)
      bk_ksrc_log(k, BROOK_LOG_WARN, "offset commit not sent: %s", rd_kafka_err2str(err));
    else
      sent = k->commit_in_flight = 1;
  }
  rd_kafka_topic_partition_list_destroy(l);
  return sent;
}

/* Whether the group is rebalancing (k->rebalancing_since), as far as the member can tell. */
static int rebalancing(bk_ksrc_t *k) {
  if (!k->rebalancing_since)
    return 0;
  if (bk_wallclock_ms() - k->rebalancing_since < bk_kafka_join_wait_ms(k->rk))
    return 1;
  k->rebalancing_since = 0; /* no callback came within the rebalance timeout: commit again */
  return 0;
}

void bk_ksrc_commit_point(void *opaque, uint64_t epoch, int final) {
  bk_ksrc_t *k = opaque;
  if (!k->rk || k->after_failure || k->phase > BK_KSRC_STOP_FLUSH)
    return; /* closing or closed: its last commit is done */
  settle_pending(k, epoch);
  /* A final commit that began before this source's stop asked for one (another source's)
   * does not cover its last batches: the next one, which it asked for, does. */
  if (k->phase == BK_KSRC_STOP_FLUSH && final && epoch >= k->stop_epoch) {
    k->phase = BK_KSRC_STOP_COMMIT;
    bk_ksrc_commit_finished(k, NULL);
    bk_sched_ready(k->src); /* the stop goes on (kafka_source.c) */
  } else if (!k->commit_in_flight && !rebalancing(k)) {
    /* Else the next commit sends these positions too. While the group rebalances, a commit
     * of the old generation that reaches the coordinator after the new one formed is refused
     * as ILLEGAL_GENERATION, and librdkafka 2.0.2 then drops the whole assignment as lost
     * (no revocation commit, everything since the last commit read again): the interval's
     * commits wait for the rebalance's callback. */
    bk_ksrc_commit_finished(k, NULL);
  }
}

void bk_ksrc_settle_part(bk_ksrc_t *k, size_t part) {
  bk_kpart_t *p = &k->parts[part];
  for (size_t i = 0; i < k->n_pend; i++) {
    bk_kpending_t *e = &k->pend[(k->pend_head + i) % k->cap_pend];
    if (e->part != part)
      continue;
    if (e->next > p->committable)
      p->committable = e->next;
    e->part = SIZE_MAX;
  }
}

void bk_ksrc_forget_pending(bk_ksrc_t *k, size_t part) {
  for (size_t i = 0; i < k->n_pend; i++) {
    bk_kpending_t *e = &k->pend[(k->pend_head + i) % k->cap_pend];
    if (e->part == part)
      e->part = SIZE_MAX;
  }
}

void bk_ksrc_queue_batch_end(bk_ksrc_t *k) {
  if (k->batch_next < 0)
    return;
  k->parts[k->batch_part].processed = k->batch_next; /* in its task's state now */
  /* Finished once the runtime commits past this epoch. */
  if (k->n_pend == k->cap_pend) {
    size_t cap = k->cap_pend ? k->cap_pend * 2 : 64;
    bk_kpending_t *r = bk_malloc(bk_rt_alloc(k->w), cap * sizeof(*r));
    if (!r) { /* cannot remember it: it is committed with a later batch of its partition */
      k->batch_next = -1;
      return;
    }
    for (size_t i = 0; i < k->n_pend; i++)
      r[i] = k->pend[(k->pend_head + i) % k->cap_pend];
    bk_free(bk_rt_alloc(k->w), k->pend);
    k->pend = r;
    k->cap_pend = cap;
    k->pend_head = 0;
  }
  k->pend[(k->pend_head + k->n_pend++) % k->cap_pend] =
      (bk_kpending_t){bk_rt_batch_epoch(k->w), k->batch_part, k->batch_next};
  k->batch_next = -1;
}
