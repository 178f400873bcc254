/* The Kafka source's partitions assigned and revoked by its group's rebalances (the
 * consumer's rebalance callback, run in its poll): each assigned partition is a watermark
 * split and opens its task (runtime/task.c); a revoked one commits what is finished, then
 * retires its split and closes its task. While the source leaves the group (kafka_leave.c)
 * only the protocol's part is done. Loop thread. */
#include "kafka/kafka_source_impl.h"

#include <string.h>

/* An assigned partition holds the source's watermark back from now on, even before its
 * first record arrives (until idle_timeout, if set): otherwise the partitions read first
 * would close windows that the others still have records for. */
void bk_ksrc_hold_watermark(bk_ksrc_t *k, size_t part) {
  /* A partition assigned again starts over: its new task's windows must not inherit the
   * watermark of an earlier ownership (the records from the committed offset would be late). */
  bk_wm_split_restart(&k->src->wm, part, k->rt->w0->now_ms);
  if (!bk_wm_split(&k->src->wm, part, k->rt->w0->now_ms) ||
      bk_src_split_task(k->src, part, k->parts[part].partition))
    bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory on assignment");
}

/* The partition is ours from now on: its task opens (runtime/task.c) - once the operators
 * are open, so an explicit assignment opens them in attach. */
void bk_ksrc_open_task(bk_ksrc_t *k, size_t part) {
  if (!k->parts[part].task_held && bk_task_acquire(k->rt->w0, k->parts[part].partition) == BROOK_OK)
    k->parts[part].task_held = 1;
}

/* The partition is gone: its task flushes and closes once no source holds it. */
static void close_task(bk_ksrc_t *k, size_t part) {
  if (k->parts[part].task_held) {
    k->parts[part].task_held = 0;
    bk_task_release(k->rt->w0, k->parts[part].partition);
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
  int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
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
      bk_ksrc_forget_pending(k,
                             p); /* from an earlier ownership: must not rewind the group's offset */
      bk_ksrc_hold_watermark(k, p);
      bk_ksrc_open_task(k, p);
    }
    if (cooperative)
      e = rd_kafka_incremental_assign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, parts);
    if (k->paused || k->phase != BK_KSRC_RUNNING)
      bk_ksrc_set_paused(k, 1, parts);
    bk_ksrc_log(k, BROOK_LOG_INFO, "%d partition(s) assigned (%s rebalance)", parts->cnt,
                rd_kafka_rebalance_protocol(rk));
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    bk_ksrc_commit_finished(k, parts); /* what is finished is not redone by the next owner */
    for (int i = 0; i < parts->cnt; i++) {
      size_t p = bk_ksrc_part_find(k, parts->elems[i].topic, parts->elems[i].partition);
      if (p == SIZE_MAX)
        continue;
      k->parts[p].assigned = 0;
      bk_wm_split_retire(&k->src->wm, p);
      close_task(k, p);
      if (k->stash && k->stash->partition == parts->elems[i].partition &&
          strcmp(rd_kafka_topic_name(k->stash->rkt), parts->elems[i].topic) == 0) {
        rd_kafka_message_destroy(k->stash);
        k->stash = NULL;
      }
    }
    if (cooperative)
      e = rd_kafka_incremental_unassign(rk, parts);
    else
      rerr = rd_kafka_assign(rk, NULL);
    bk_ksrc_log(k, BROOK_LOG_INFO, "%d partition(s) revoked (%s rebalance)", parts->cnt,
                rd_kafka_rebalance_protocol(rk));
  } else {
    bk_ksrc_log(k, BROOK_LOG_WARN, "rebalance error: %s", rd_kafka_err2str(err));
    for (size_t p = 0; p < k->n_parts; p++) { /* every partition is gone, as on revocation */
      if (!k->parts[p].assigned)
        continue;
      k->parts[p].assigned = 0;
      bk_wm_split_retire(&k->src->wm, p);
      close_task(k, p);
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
