/* The Kafka source's offsets, at least once. When a batch is done, (its delivery epoch,
 * partition, last offset + 1) is queued. At each of the runtime's commits (runtime/commit.c:
 * operators flushed, stores flushed, every output up to the commit point acknowledged) the
 * batches of epochs up to the point advance their partitions' committable offsets, which are
 * committed asynchronously: an offset is never committed before the outputs of the records
 * below it are acknowledged. A revoked partition commits inside the rebalance
 * (kafka_rebalance.c), without waiting for outputs in flight: what the last commit finished,
 * or all it read if nothing is in flight; the rest is read again by the next owner. Loop
 * thread (the commit callback runs in the consumer's poll). */
#include "kafka/kafka_source_impl.h"

#include "core/alloc.h"

void bk_ksrc_on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  (void)rk;
  bk_ksrc_t *k = opaque;
  k->commit_in_flight = 0;
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
    bk_sched_ready(k->src);          /* the stop goes on (kafka_source.c) */
  } else if (!k->commit_in_flight) { /* else the next commit sends these positions too */
    bk_ksrc_commit_finished(k, NULL);
  }
}

void bk_ksrc_commit_revoked(bk_ksrc_t *k, const rd_kafka_topic_partition_list_t *parts) {
  if (bk_rt_deliveries_pending(k->w) == 0) /* nothing in flight: every batch read is done */
    settle_pending(k, bk_rt_batch_epoch(k->w));
  bk_ksrc_commit_finished(k, parts);
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
