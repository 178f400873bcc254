/* The Kafka source's input positions for state on disk (runtime/positions.h). Each partition
 * remembers the offset after the last record processed into its task's state (processed: a
 * batch passed the pipeline). At a commit's begin the runtime takes them, per task, with the
 * task's state; when a task opens with stored positions, its partitions resume there: a seek,
 * and, since the group's committed offsets can lag behind (a crash between the state's write
 * and the offset commit) and a seek right after an assignment may be overtaken by the
 * committed offset's fetch, every message below the next offset expected is skipped on
 * reading (skip_below: the stored position, then the offset after each message taken, as the
 * seek's fetch may deliver again a message the fetch before it delivered). Loop thread. */
#include "kafka/kafka_source_impl.h"

#include "kafka/repartition.h"
#include "runtime/positions.h"

static brook_err_t positions_of(void *opaque, int32_t task, bk_positions_t *out) {
  bk_ksrc_t *k = opaque;
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < k->n_parts && err == BROOK_OK; i++) {
    const bk_kpart_t *p = &k->parts[i];
    if (p->assigned && bk_ksrc_task(k, i) == task && p->processed >= 0)
      err = bk_positions_add(out, p->topic, p->partition, p->processed);
  }
  return err == BROOK_OK && k->cfg->rp ? bk_krp_source_positions(k, task, out) : err;
}

brook_err_t bk_ksrc_positions_register(bk_ksrc_t *k) {
  return bk_positions_register(k->w, positions_of, k);
}

static void seek_to(bk_ksrc_t *k, bk_kpart_t *p, int64_t at) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = at;
  rd_kafka_error_t *e = rd_kafka_seek_partitions(k->rk, l, 0); /* asynchronous */
  if (e) { /* the skip below the position keeps it right: only slower */
    bk_ksrc_log(k, BROOK_LOG_INFO, "%s [%d]: seek to the stored offset %lld: %s", p->topic,
                (int)p->partition, (long long)at, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  rd_kafka_topic_partition_list_destroy(l);
}

/* A repartition topic's partition reloads the last upstream positions its task applied
 * (repartition.h) from the same stored positions. */
static void resume_upstream(bk_ksrc_t *k, size_t part) {
  if (bk_krp_source_resume(k, part) != BROOK_OK)
    bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory restoring upstream positions");
}

void bk_ksrc_resume(bk_ksrc_t *k, size_t part) {
  bk_kpart_t *p = &k->parts[part];
  resume_upstream(k, part);
  int64_t at;
  if (!bk_task_stored_position(k->w, bk_ksrc_task(k, part), p->topic, p->partition, &at))
    return; /* no state on disk for it: the group's committed offset */
  p->skip_below = p->processed = at;
  seek_to(k, p, at);
  bk_ksrc_log(k, BROOK_LOG_INFO,
              "%s [%d]: resuming at offset %lld, where its task's state on disk ends", p->topic,
              (int)p->partition, (long long)at);
}

/* The partition's task, RESTORING when it opened, runs now: the partition seeks to where the
 * restored state ends (the positions of the marker restored, else where the first message
 * dropped meanwhile was, i.e. the group's offset), and messages below are skipped. */
static void restored(bk_ksrc_t *k, size_t part) {
  bk_kpart_t *p = &k->parts[part];
  p->restoring = 0;
  k->n_restoring--;
  resume_upstream(k, part);
  int64_t at = p->dropped_from;
  if (bk_task_stored_position(k->w, bk_ksrc_task(k, part), p->topic, p->partition, &at))
    p->processed = at;
  else if (at < 0)
    return; /* nothing dropped, nothing restored: the group's offset */
  p->skip_below = at;
  seek_to(k, p, at);
  bk_ksrc_log(k, BROOK_LOG_INFO, "%s [%d]: its task is restored: resuming at offset %lld", p->topic,
              (int)p->partition, (long long)at);
}

void bk_ksrc_restored_check(bk_ksrc_t *k) {
  for (size_t i = 0; k->n_restoring && i < k->n_parts; i++)
    if (k->parts[i].restoring && bk_task_state(k->w, bk_ksrc_task(k, i)) != BROOK_TASK_RESTORING)
      restored(k, i);
}

int bk_ksrc_restoring(bk_ksrc_t *k, size_t part, const rd_kafka_message_t *m) {
  bk_kpart_t *p = &k->parts[part];
  if (bk_task_state(k->w, bk_ksrc_task(k, part)) == BROOK_TASK_RESTORING) {
    if (p->dropped_from < 0 || m->offset < p->dropped_from)
      p->dropped_from = m->offset;
    return 1;
  }
  restored(k, part);
  /* Taken only if it is the message at the position: the rest come again after the seek. */
  return p->skip_below >= 0 && m->offset != p->skip_below;
}
