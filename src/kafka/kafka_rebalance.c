/* The Kafka source's partitions assigned and revoked by its group's rebalances (the
 * consumer's rebalance callback, run in its poll). An assigned partition becomes a watermark
 * split at once, but the callback only records it: its task is created, restored and opened
 * on the next turn of the loop (bk_ksrc_open_pending_tasks, task states in brook/task.h),
 * before the next batch is read. A message of the partition that arrives before that ends
 * the batch being read and waits in the stash (kafka_batch.c), so nothing is processed before
 * its task runs, and nothing is lost or reordered. The partition is not paused for this:
 * librdkafka 2.0.2 may resume a partition paused right after its assignment from the wrong
 * position (2.1.0 fixed pause/resume skipping messages). A revoked partition's
 * task flushes (suspends), the partition commits what is finished, then its split retires
 * and its task closes. While the source leaves the group (kafka_leave.c) only the protocol's
 * part is done. Loop thread. */
#include "kafka/kafka_source_impl.h"

#include <string.h>

/* An assigned partition holds the source's watermark back from now on, even before its
 * first record arrives (until idle_timeout, if set): otherwise the partitions read first
 * would close windows that the others still have records for. */
void bk_ksrc_hold_watermark(bk_ksrc_t *k, size_t part) {
  /* A partition assigned again starts over: its new task's windows must not inherit the
   * watermark of an earlier ownership (the records from the committed offset would be late). */
  bk_wm_gen_t *wm = bk_src_wm(k->src);
  bk_wm_split_restart(wm, part, bk_rt_now(k->w));
  if (!bk_wm_split(wm, part, bk_rt_now(k->w)) ||
      bk_src_split_task(k->src, part, k->parts[part].partition))
    bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory on assignment");
}

void bk_ksrc_open_task(bk_ksrc_t *k, size_t part) {
  bk_kpart_t *p = &k->parts[part];
  p->open_pending = 0;
  if (!p->task_held && bk_task_acquire(k->w, p->partition, "partition assigned") == BROOK_OK)
    p->task_held = 1;
}

void bk_ksrc_open_pending_tasks(bk_ksrc_t *k) {
  k->opens_pending = 0;
  for (size_t i = 0; i < k->n_parts && bk_rt_status(k->w) == BROOK_OK; i++)
    if (k->parts[i].assigned && k->parts[i].open_pending)
      bk_ksrc_open_task(k, i);
}

/* The partition is gone: its task flushes, suspends and closes once no source holds it. */
static void close_task(bk_ksrc_t *k, size_t part, const char *reason) {
  k->parts[part].open_pending = 0;
  if (k->parts[part].task_held) {
    k->parts[part].task_held = 0;
    bk_task_release(k->w, k->parts[part].partition, reason);
  }
}

/* Revocation: the tasks flush and suspend (their operators' buffered output goes out first,
 * the order of a commit, runtime/commit.c), the partitions commit what is finished, then the
 * tasks close. */
static void revoke_parts(bk_ksrc_t *k, const rd_kafka_topic_partition_list_t *parts,
                         const char *reason) {
  for (int i = 0; i < parts->cnt; i++) {
    size_t p = bk_ksrc_part_find(k, parts->elems[i].topic, parts->elems[i].partition);
    if (p != SIZE_MAX && k->parts[p].assigned && k->parts[p].task_held)
      bk_task_suspend(k->w, k->parts[p].partition, reason);
  }
  bk_ksrc_commit_revoked(k, parts);
  for (int i = 0; i < parts->cnt; i++) {
    size_t p = bk_ksrc_part_find(k, parts->elems[i].topic, parts->elems[i].partition);
    if (p == SIZE_MAX || !k->parts[p].assigned)
      continue;
    k->parts[p].assigned = 0;
    bk_wm_split_retire(bk_src_wm(k->src), p);
    close_task(k, p, reason);
    if (k->stash && k->stash->partition == parts->elems[i].partition &&
        strcmp(rd_kafka_topic_name(k->stash->rkt), parts->elems[i].topic) == 0) {
      rd_kafka_message_destroy(k->stash);
      k->stash = NULL;
    }
  }
}

/* A rebalance while leaving (a join finishing before the leave, or the leave of a failed
 * run, whose tasks are closed already): the partitions are not ours to process, so only the
 * protocol's part is done (paused: nothing is fetched). */
static void rebalance_leaving(bk_ksrc_t *k, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *parts, int cooperative) {
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (cooperative)
      e = rd_kafka_incremental_assign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, parts);
    rd_kafka_pause_partitions(rk, parts);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && cooperative) {
    e = rd_kafka_incremental_unassign(rk, parts);
  } else {
    rerr = rd_kafka_assign(rk, NULL);
  }
  if (e || rerr)
    bk_ksrc_log(k, BROOK_LOG_WARN, "rebalance while leaving the group: %s",
                e ? rd_kafka_error_string(e) : rd_kafka_err2str(rerr));
  if (e)
    rd_kafka_error_destroy(e);
}

void bk_ksrc_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t *parts, void *opaque) {
  bk_ksrc_t *k = opaque;
  /* NULL once the group is terminating (a revocation served by the close): the protocol of the
   * assignment before, then. */
  const char *proto = rd_kafka_rebalance_protocol(rk);
  int cooperative = proto ? strcmp(proto, "COOPERATIVE") == 0 : k->cooperative;
  k->cooperative = cooperative;
  proto = cooperative ? "COOPERATIVE" : "EAGER";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
    k->synced = 1;
  if (k->after_failure || k->phase == BK_KSRC_JOIN_WAIT) {
    rebalance_leaving(k, rk, err, parts, cooperative);
    return;
  }
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < parts->cnt; i++) {
      size_t p = bk_ksrc_part_get(k, parts->elems[i].topic, parts->elems[i].partition);
      if (p == SIZE_MAX) {
        bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory on assignment");
        continue;
      }
      k->parts[p].assigned = 1;
      k->parts[p].committable = k->parts[p].committed = -1;
      k->parts[p].open_pending = 1; /* its task opens on the next turn, outside this callback */
      /* From an earlier ownership: must not rewind the group's offset. */
      bk_ksrc_forget_pending(k, p);
      bk_ksrc_hold_watermark(k, p);
    }
    if (cooperative)
      e = rd_kafka_incremental_assign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, parts);
    if (k->paused || k->phase != BK_KSRC_RUNNING)
      bk_ksrc_set_paused(k, 1, parts);
    k->opens_pending = 1;
    bk_sched_ready(k->src);
    bk_ksrc_log(k, BROOK_LOG_INFO, "%d partition(s) assigned (%s rebalance)", parts->cnt, proto);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    revoke_parts(k, parts,
                 k->phase >= BK_KSRC_STOP_COMMIT ? "stopped (leaving the group)"
                                                 : "partition revoked");
    if (cooperative)
      e = rd_kafka_incremental_unassign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, NULL);
    bk_ksrc_log(k, BROOK_LOG_INFO, "%d partition(s) revoked (%s rebalance)", parts->cnt, proto);
  } else {
    bk_ksrc_log(k, BROOK_LOG_WARN, "rebalance error: %s", rd_kafka_err2str(err));
    for (size_t p = 0; p < k->n_parts; p++) { /* every partition is gone, as on revocation */
      if (!k->parts[p].assigned)
        continue;
      k->parts[p].assigned = 0;
      bk_wm_split_retire(bk_src_wm(k->src), p);
      close_task(k, p, "partitions lost in a rebalance error");
    }
    if (k->stash) {
      rd_kafka_message_destroy(k->stash);
      k->stash = NULL;
    }
    rerr = rd_kafka_assign(rk, NULL);
  }
  if (e) {
    bk_ksrc_fail(k, BROOK_ERR_KAFKA, "rebalance: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else if (rerr) {
    bk_ksrc_fail(k, BROOK_ERR_KAFKA, "rebalance: %s", rd_kafka_err2str(rerr));
  }
}
