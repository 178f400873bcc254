/* The Kafka source's partitions assigned and revoked by its group's rebalances (the
 * consumer's rebalance callback, run in its poll). An assigned partition becomes a watermark
 * split at once, but the callback only records it: its task is created, restored and opened
 * on the next turn of the loop (bk_ksrc_open_pending_tasks, task states in brook/task.h),
 * before the next batch is read; with state on disk, the partition then resumes where its
 * task's stored state ends (kafka_positions.c), and a revocation writes that state before its
 * offsets. A message of the partition that arrives before that ends
 * the batch being read and waits in the stash (kafka_batch.c), so nothing is processed before
 * its task runs, and nothing is lost or reordered. The partition is not paused for this:
 * librdkafka 2.0.2 may resume a partition paused right after its assignment from the wrong
 * position (2.1.0 fixed pause/resume skipping messages).
 *
 * A revocation is what Kafka Streams does in onPartitionsRevoked, without blocking the loop:
 * the callback only records it and returns without the unassign call (librdkafka waits for
 * it: the group's join state is WAIT_UNASSIGN_CALL, and it keeps every assigned partition
 * paused meanwhile); messages of the revoked partitions are no longer processed. Then, on the
 * source's timer (outside any batch, bk_ksrc_revoke_step):
 *   1. the partitions' tasks suspend: their operators flush and their stores report changes;
 *   2. the revocation point (runtime/commit.c): every output derived from their input counts
 *      against a delivery epoch <= it; the wait for those acknowledgements is a watch that
 *      re-arms the timer, so other tasks (cooperative rebalances keep the partitions not
 *      revoked) and the application's loop run on meanwhile;
 *   3. once acknowledged, everything they read is committed (asynchronously: librdkafka holds
 *      the rejoin until the commit's answer, rdkafka_assignment.c); past revoke_timeout_ms
 *      only what earlier commits finished is, a warning is logged and counted;
 *   4. the unassign call (incremental_unassign, or assign(NULL) in an eager group), the splits
 *      retire and the tasks close. Only then does the group move the partitions on.
 * Lost partitions (the session expired: another member may own them already) and revocations
 * while the consumer closes (after the stop's final commit) are handed over at once, the lost
 * ones without a commit. While the source leaves the group (kafka_leave.c) only the
 * protocol's part is done. Loop thread. */
#include "kafka/kafka_source_impl.h"

#include <string.h>

#include "kafka/kafka_group.h"
#include "runtime/positions.h"

/* An assigned partition holds the source's watermark back from now on, even before its
 * first record arrives (until idle_timeout, if set): otherwise the partitions read first
 * would close windows that the others still have records for. */
void bk_ksrc_hold_watermark(bk_ksrc_t *k, size_t part) {
  /* A partition assigned again starts over: its new task's windows must not inherit the
   * watermark of an earlier ownership (the records from the committed offset would be late). */
  bk_wm_gen_t *wm = bk_src_wm(k->src);
  bk_wm_split_restart(wm, part, bk_rt_now(k->w));
  if (!bk_wm_split(wm, part, bk_rt_now(k->w)) ||
      bk_src_split_task(k->src, part, bk_ksrc_task(k, part)))
    bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory on assignment");
}

void bk_ksrc_open_task(bk_ksrc_t *k, size_t part) {
  bk_kpart_t *p = &k->parts[part];
  p->open_pending = 0;
  if (!p->task_held &&
      bk_task_acquire(k->w, bk_ksrc_task(k, part), "partition assigned") == BROOK_OK) {
    p->task_held = 1;
    if (bk_task_state(k->w, bk_ksrc_task(k, part)) == BROOK_TASK_RESTORING)
      p->restoring = 1, k->n_restoring++; /* it resumes once restored (kafka_positions.c) */
    else
      bk_ksrc_resume(k, part); /* where its state on disk ends, if it has one */
  }
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
  k->n_restoring -= k->parts[part].restoring;
  k->parts[part].restoring = 0;
  if (k->parts[part].task_held) {
    k->parts[part].task_held = 0;
    bk_task_release(k->w, bk_ksrc_task(k, part), reason);
  }
}

/* The partitions stop being ours: no longer assigned, their splits retire, their tasks close
 * and a stashed message of theirs is dropped (the next owner reads it). */
static void hand_over(bk_ksrc_t *k, const rd_kafka_topic_partition_list_t *parts,
                      const char *reason) {
  for (int i = 0; i < parts->cnt; i++) {
    size_t p = bk_ksrc_part_find(k, parts->elems[i].topic, parts->elems[i].partition);
    if (p == SIZE_MAX || !k->parts[p].assigned)
      continue;
    k->parts[p].assigned = 0;
    k->parts[p].revoking = 0;
    bk_wm_split_retire(bk_src_wm(k->src), p);
    close_task(k, p, reason);
    if (k->stash && k->stash->partition == parts->elems[i].partition &&
        strcmp(rd_kafka_topic_name(k->stash->rkt), parts->elems[i].topic) == 0) {
      rd_kafka_message_destroy(k->stash);
      k->stash = NULL;
    }
  }
}

/* The unassign call that completes a revocation for librdkafka. */
static void unassign(bk_ksrc_t *k, rd_kafka_topic_partition_list_t *parts, int cooperative) {
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (cooperative)
    e = rd_kafka_incremental_unassign(k->rk, parts);
  else
    rerr = rd_kafka_assign(k->rk, NULL);
  if (e) {
    bk_ksrc_fail(k, BROOK_ERR_KAFKA, "rebalance: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else if (rerr) {
    bk_ksrc_fail(k, BROOK_ERR_KAFKA, "rebalance: %s", rd_kafka_err2str(rerr));
  }
}

/* A revocation handed over at once, inside the callback: the tasks flush and suspend (their
 * buffered output goes out first), the partitions commit what is finished (unless lost),
 * then the tasks close. */
static void revoke_now(bk_ksrc_t *k, rd_kafka_topic_partition_list_t *parts, int cooperative,
                       int lost, const char *reason) {
  for (int i = 0; i < parts->cnt; i++) {
    size_t p = bk_ksrc_part_find(k, parts->elems[i].topic, parts->elems[i].partition);
    if (p != SIZE_MAX && k->parts[p].assigned && k->parts[p].task_held)
      bk_task_suspend(k->w, bk_ksrc_task(k, p), reason);
  }
  if (!lost)
    bk_ksrc_commit_finished(k, parts);
  hand_over(k, parts, reason);
  unassign(k, parts, cooperative);
  bk_ksrc_log(k, BROOK_LOG_INFO, "%d partition(s) %s (%s rebalance)", parts->cnt,
              lost ? "lost" : "revoked", cooperative ? "COOPERATIVE" : "EAGER");
}

/* ---- the revocation in progress ---- */

static int64_t revoke_timeout_ms(bk_ksrc_t *k) {
  if (k->cfg->o.revoke_timeout_ms > 0)
    return k->cfg->o.revoke_timeout_ms;
  return bk_kafka_join_wait_ms(k->rk) / 2; /* max.poll.interval.ms: an eager rejoin's bound */
}

/* Records a revocation (in the callback): its partitions' messages are dropped from now on,
 * the rest runs on the source's timer. A second one before the first is done joins it. */
static void revoke_begin(bk_ksrc_t *k, const rd_kafka_topic_partition_list_t *parts,
                         int cooperative, const char *reason) {
  bk_krevoke_t *r = &k->revoke;
  if (!r->parts) {
    if (!(r->parts = rd_kafka_topic_partition_list_new(parts->cnt)))
      return; /* librdkafka aborts when it runs out of memory */
    r->from_ms = bk_wallclock_ms();
    r->due_ms = r->from_ms + revoke_timeout_ms(k);
  }
  for (int i = 0; i < parts->cnt; i++) {
    const rd_kafka_topic_partition_t *tp = &parts->elems[i];
    if (!rd_kafka_topic_partition_list_find(r->parts, tp->topic, tp->partition))
      rd_kafka_topic_partition_list_add(r->parts, tp->topic, tp->partition);
    size_t p = bk_ksrc_part_find(k, tp->topic, tp->partition);
    if (p != SIZE_MAX && k->parts[p].assigned)
      k->parts[p].revoking = 1;
  }
  r->cooperative = cooperative;
  r->reason = reason;
  r->begun = 0; /* (again): the new partitions' tasks suspend, the point moves on */
  bk_commit_unwatch(k->w, k);
  bk_ksrc_log(k, BROOK_LOG_INFO,
              "%d partition(s) being revoked (%s rebalance): waiting for their outputs' "
              "acknowledgements (at most %lld ms)",
              parts->cnt, cooperative ? "COOPERATIVE" : "EAGER",
              (long long)(r->due_ms - r->from_ms));
  bk_ksrc_timer_soon(k);
}

static void revoke_clear(bk_ksrc_t *k) {
  bk_commit_unwatch(k->w, k);
  rd_kafka_topic_partition_list_destroy(k->revoke.parts);
  k->revoke = (bk_krevoke_t){0};
}

/* Inside a delivery's completion: only schedules the next step. */
static void revoke_acked(void *opaque) { bk_ksrc_timer_soon(opaque); }

/* Commits (everything read if `acked`, else what earlier commits finished), hands the
 * partitions over and makes the unassign call. */
static void revoke_finish(bk_ksrc_t *k, int acked) {
  bk_krevoke_t *r = &k->revoke;
  rd_kafka_topic_partition_list_t *parts = r->parts;
  int64_t took = bk_wallclock_ms() - r->from_ms;
  size_t n = 0;
  for (int i = 0; i < parts->cnt; i++) {
    size_t p = bk_ksrc_part_find(k, parts->elems[i].topic, parts->elems[i].partition);
    if (p == SIZE_MAX || !k->parts[p].assigned)
      continue;
    n++;
    if (acked) {
      bk_ksrc_settle_part(k, p);
      /* The task's state with its positions, before its offsets (runtime/positions.h). */
      if (k->parts[p].task_held)
        (void)bk_task_commit_state(k->w, k->parts[p].partition);
    } else
      bk_ksrc_forget_pending(k, p); /* the next owner reads them again */
  }
  if (!acked)
    bk_ksrc_log(k, BROOK_LOG_WARN,
                "%d partition(s) revoked with outputs still unacknowledged after %lld ms "
                "(revoke_timeout_ms): only what earlier commits finished is committed; the next "
                "owner reads the rest again",
                parts->cnt, (long long)took);
  bk_ksrc_commit_finished(k, parts);
  bk_commit_revoked(k->w, n, !acked);
  hand_over(k, parts, r->reason);
  unassign(k, parts, r->cooperative);
  if (r->cooperative) { /* librdkafka rejoins after the assignment that follows */
    k->rebalancing_since = bk_wallclock_ms();
    k->rejoin_after_assign = 1;
  }
  bk_ksrc_log(k, BROOK_LOG_INFO, "%d partition(s) revoked (%s rebalance) after %lld ms%s",
              parts->cnt, r->cooperative ? "COOPERATIVE" : "EAGER", (long long)took,
              acked ? ", their outputs acknowledged and offsets committed" : "");
  revoke_clear(k);
  if (k->phase != BK_KSRC_RUNNING)
    bk_sched_ready(k->src); /* a stop waits for the revocation (kafka_source.c) */
}

void bk_ksrc_revoke_step(bk_ksrc_t *k) {
  bk_krevoke_t *r = &k->revoke;
  if (!r->parts || bk_rt_status(k->w) != BROOK_OK)
    return; /* a failed run abandons it (ks_close) */
  if (!r->begun) {
    for (int i = 0; i < r->parts->cnt; i++) {
      size_t p = bk_ksrc_part_find(k, r->parts->elems[i].topic, r->parts->elems[i].partition);
      if (p != SIZE_MAX && k->parts[p].assigned && k->parts[p].task_held)
        bk_task_suspend(k->w, bk_ksrc_task(k, p), r->reason);
    }
    if (bk_rt_status(k->w) != BROOK_OK)
      return;
    r->point = bk_commit_revoke_point(k->w);
    r->begun = 1;
    if (!bk_commit_acknowledged(k->w, r->point) &&
        bk_commit_watch(k->w, r->point, revoke_acked, k) < 0) {
      bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory on revocation");
      return;
    }
  }
  int acked = bk_commit_acknowledged(k->w, r->point);
  if (acked || bk_wallclock_ms() >= r->due_ms)
    revoke_finish(k, acked);
}

int64_t bk_ksrc_revoke_due_in(const bk_ksrc_t *k) {
  if (!k->revoke.parts)
    return INT64_MAX;
  if (!k->revoke.begun || bk_commit_acknowledged(k->w, k->revoke.point))
    return 0; /* its next step is due now */
  int64_t left = k->revoke.due_ms - bk_wallclock_ms();
  return left > 0 ? left : 0;
}

void bk_ksrc_revoke_abandon(bk_ksrc_t *k) {
  if (!k->revoke.parts)
    return;
  for (int i = 0; i < k->revoke.parts->cnt; i++) {
    size_t p =
        bk_ksrc_part_find(k, k->revoke.parts->elems[i].topic, k->revoke.parts->elems[i].partition);
    if (p != SIZE_MAX)
      bk_ksrc_forget_pending(k, p);
  }
  hand_over(k, k->revoke.parts, "the run failed (closed without flush or commit)");
  if (k->rk)
    unassign(k, k->revoke.parts, k->revoke.cooperative);
  revoke_clear(k);
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
  /* The rebalance is over (the interval's commits go on, kafka_commit.c), unless this is the
   * assignment after a cooperative revocation: the member rejoins right after it, so that
   * the group can hand the revoked partitions on. */
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && k->rejoin_after_assign)
    k->rejoin_after_assign = 0;
  else
    k->rebalancing_since = 0;
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
      k->parts[p].revoking = 0;
      k->parts[p].committable = k->parts[p].committed = -1;
      k->parts[p].processed = k->parts[p].skip_below = k->parts[p].dropped_from = -1;
      k->n_restoring -= k->parts[p].restoring;
      k->parts[p].restoring = 0;
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
    int lost = rd_kafka_assignment_lost(rk);
    if (lost || k->phase >= BK_KSRC_STOP_COMMIT || !k->timer_open) {
      rd_kafka_topic_partition_list_t *all = parts;
      if (k->revoke.parts) { /* the revocation that waited goes with them */
        all = rd_kafka_topic_partition_list_copy(k->revoke.parts);
        for (int i = 0; i < parts->cnt; i++)
          if (!rd_kafka_topic_partition_list_find(all, parts->elems[i].topic,
                                                  parts->elems[i].partition))
            rd_kafka_topic_partition_list_add(all, parts->elems[i].topic,
                                              parts->elems[i].partition);
        revoke_clear(k);
      }
      revoke_now(k, all, cooperative, lost,
                 lost                              ? "partition lost (the group's session expired)"
                 : k->phase >= BK_KSRC_STOP_COMMIT ? "stopped (leaving the group)"
                                                   : "partition revoked");
      if (all != parts)
        rd_kafka_topic_partition_list_destroy(all);
    } else {
      revoke_begin(k, parts, cooperative, "partition revoked");
    }
    return;
  } else {
    bk_ksrc_log(k, BROOK_LOG_WARN, "rebalance error: %s", rd_kafka_err2str(err));
    if (k->revoke.parts) { /* nothing to commit: the partitions are gone */
      for (int i = 0; i < k->revoke.parts->cnt; i++) {
        size_t p = bk_ksrc_part_find(k, k->revoke.parts->elems[i].topic,
                                     k->revoke.parts->elems[i].partition);
        if (p != SIZE_MAX)
          bk_ksrc_forget_pending(k, p);
      }
      revoke_clear(k);
    }
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
