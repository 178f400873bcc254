/* The Kafka source's batches: the messages waiting in the consumer's queue, one partition per
 * batch (a run of that partition's messages), so the batch is one watermark split and runs in
 * the partition's task (runtime/task.c). Each message becomes a record (key and value through
 * the deserialisers, the message's timestamp checked against the source's bounds, its
 * headers); a malformed one is skipped, dead-lettered or fails the run, as the options say.
 * Records point into the messages, which live until the batch has passed through the
 * pipeline (ks_batch_done). Loop thread. */
#include "kafka/kafka_source_impl.h"

#include <string.h>

#include "core/alloc.h"
#include "kafka/dead_letter.h"
#include "kafka/kafka_serde.h"
#include "kafka/repartition.h"

/* The message's headers as brook headers in the batch arena (none: a trace tag). */
static brook_err_t headers_of(bk_ksrc_t *k, rd_kafka_message_t *m, brook_record_t *rec) {
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || !h) {
    bk_ktrace_record(&k->trace, m, rec);
    return BROOK_OK;
  }
  size_t n = rd_kafka_header_cnt(h);
  brook_header_t *out = brook_ctx_alloc(bk_src_ctx(k->src), n * sizeof(*out) + 1);
  if (!out)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    const char *name;
    const void *val;
    size_t size;
    if (rd_kafka_header_get_all(h, i, &name, &val, &size))
      return BROOK_ERR_KAFKA;
    out[i] = (brook_header_t){name, val, size};
  }
  rec->headers = out;
  rec->header_count = n;
  bk_ktrace_record(&k->trace, m, rec);
  return BROOK_OK;
}

/* The record's timestamp: the message's (CreateTime or LogAppendTime), or the time it was
 * read if it has none. Unless a timestamp extractor replaces it, it must be within the
 * source's bounds: an odd one (negative, far ahead) is malformed (BROOK_ERR_CORRUPT, the
 * reason in the context's message) and never reaches the watermark. */
static brook_err_t message_time(bk_ksrc_t *k, rd_kafka_message_t *m, brook_record_t *rec) {
  rd_kafka_timestamp_type_t type;
  int64_t ts = rd_kafka_message_timestamp(m, &type);
  rec->timestamp = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? bk_rt_now(k->w) : ts;
  const bk_wm_gen_t *g = bk_src_wm(k->src);
  char why[160];
  if (g->opts->timestamp ||
      bk_wm_check_ts(g, rec->timestamp, bk_rt_now(k->w), why, sizeof(why)) == 0)
    return BROOK_OK;
  bk_rt_count(k->w, BK_STAT_RECORDS_OUT_OF_BOUNDS, 1);
  brook_ctx_set_error(bk_src_ctx(k->src), "%s", why);
  return BROOK_ERR_CORRUPT;
}

/* Turns message `m` into the batch's next record; a malformed one follows the policy.
 * Returns BROOK_OK (consumed, as a record or not) or an error that fails the source. */
static brook_err_t take_message(bk_ksrc_t *k, rd_kafka_message_t *m, const void *value,
                                size_t value_len, int headers) {
  bk_src_t *src = k->src;
  brook_ctx_t *ctx = bk_src_ctx(src);
  const bk_ksrc_cfg_t *cfg = k->cfg;
  bk_port_t *port = bk_src_port_of(src);
  brook_record_t *rec = &port->buf[port->n];
  memset(rec, 0, sizeof(*rec));
  ctx->has_error_msg = 0;
  brook_err_t err = BROOK_OK;
  rec->key = m->key, rec->key_len = m->key_len;
  rec->value = value, rec->value_len = value_len;
  if (m->key && !bk_serde_chain_is_identity(&cfg->key_serde))
    err = bk_serde_chain_run(ctx, &cfg->key_serde, m->key, m->key_len, &rec->key, &rec->key_len,
                             NULL);
  if (err >= 0 && value && !bk_serde_chain_is_identity(&cfg->value_serde))
    err = bk_serde_chain_run(ctx, &cfg->value_serde, value, value_len, &rec->value, &rec->value_len,
                             NULL);
  if (err >= 0)
    err = message_time(k, m, rec);
  if (err == BROOK_ERR_NOMEM)
    return err;
  if (err < 0) {
    switch (cfg->o.on_malformed) {
    case BROOK_KAFKA_MALFORMED_SKIP:
      bk_rt_count(k->w, BK_STAT_RECORDS_SKIPPED, 1);
      return BROOK_OK;
    case BROOK_KAFKA_MALFORMED_DEAD_LETTER:
      return bk_dead_letter_malformed(
          k->dlq, cfg->dlq, m, err, ctx->has_error_msg ? ctx->error_msg.text : brook_strerror(err));
    default:
      bk_ksrc_fail(k, err, "malformed record at offset %lld of %s [%d]: %s", (long long)m->offset,
                   rd_kafka_topic_name(m->rkt), (int)m->partition,
                   ctx->has_error_msg ? ctx->error_msg.text : brook_strerror(err));
      return err;
    }
  }
  if (!headers) /* a repartition record without headers: nothing to parse */
    bk_ktrace_record(&k->trace, m, rec);
  else if ((err = headers_of(k, m, rec)) < 0)
    return err;
  port->n++;
  return BROOK_OK;
}

brook_err_t bk_ksrc_read_batch(bk_ksrc_t *k) {
  bk_src_t *src = k->src;
  bk_port_t *port = bk_src_port_of(src);
  k->batch_next = -1;
  *bk_rt_slot(k->w, BK_SLOT_KAFKA_BATCH) = k; /* the repartition sinks it feeds trace it */
  if (bk_ktrace_begin(&k->trace, bk_rt_alloc(k->w), port->cap) < 0)
    return BROOK_ERR_NOMEM;
  size_t part = SIZE_MAX;
  brook_err_t ret = BROOK_OK; /* on failure the records taken so far still go on */
  if (k->n_restoring)
    bk_ksrc_restored_check(k); /* tasks restored since: their partitions seek first */
  while (port->n < port->cap) {
    rd_kafka_message_t *m = k->stash;
    k->stash = NULL;
    if (!m && !(m = rd_kafka_consumer_poll(k->rk, 0))) {
      bk_src_unready(src); /* empty: the poller wakes us */
      break;
    }
    if (bk_rt_status(k->w) != BROOK_OK) { /* a callback inside the poll failed the run */
      rd_kafka_message_destroy(m);
      ret = bk_rt_status(k->w);
      break;
    }
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        bk_ksrc_log(k, BROOK_LOG_WARN, "consumer: %s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    /* Messages come in runs of one partition: compare with the batch's previous message
     * (still held, so its topic handle is alive) before searching by name. */
    size_t p = part != SIZE_MAX && m->rkt == k->msgs[k->n_msgs - 1]->rkt &&
                       m->partition == k->parts[part].partition
                   ? part
                   : bk_ksrc_part_get(k, rd_kafka_topic_name(m->rkt), m->partition);
    if (p == SIZE_MAX) {
      rd_kafka_message_destroy(m);
      ret = BROOK_ERR_NOMEM;
      break;
    }
    if (k->parts[p].revoking) {
      /* Being revoked (kafka_rebalance.c): its task is suspending, the next owner reads it. */
      rd_kafka_message_destroy(m);
      continue;
    }
    if (k->parts[p].restoring && bk_ksrc_restoring(k, p, m)) {
      rd_kafka_message_destroy(m); /* read again once its task is restored */
      continue;
    }
    if (m->offset < k->parts[p].skip_below) {
      rd_kafka_message_destroy(m); /* in its task's state on disk already (kafka_positions.c) */
      continue;
    }
    if (k->parts[p].open_pending) {
      /* Assigned in this poll: its task opens first (ks_produce), then this message is the
       * next batch's first. */
      k->stash = m;
      break;
    }
    if (part != SIZE_MAX && p != part) {
      k->stash = m; /* one partition (split) per batch */
      break;
    }
    if (k->n_msgs == k->cap_msgs && bk_grow(bk_rt_alloc(k->w), (void **)&k->msgs, &k->cap_msgs,
                                            k->n_msgs + 1, sizeof(*k->msgs))) {
      rd_kafka_message_destroy(m);
      ret = BROOK_ERR_NOMEM;
      break;
    }
    k->msgs[k->n_msgs++] = m; /* records point into it until batch_done */
    part = p;
    if (k->parts[p].skip_below >= 0) /* a seek's fetch may deliver it again */
      k->parts[p].skip_below = m->offset + 1;
    k->batch_next = m->offset + 1;
    const void *value = m->payload;
    size_t value_len = m->len;
    int headers = 1;
    if (k->cfg->rp && bk_krp_source_control(k, m, p, &value, &value_len, &headers))
      continue; /* a watermark or replayed record of a repartition topic: never a record */
    if ((ret = take_message(k, m, value, value_len, headers)) < 0)
      break;
  }
  k->batch_part = part;
  bk_src_set_split(src, part == SIZE_MAX ? 0 : part);
  if (part != SIZE_MAX && bk_src_enter_task(src, bk_ksrc_task(k, part)) < 0) {
    /* Its task is not running (the partition was just revoked): the next owner reads these. */
    port->n = 0;
    k->batch_next = -1;
  }
  return ret;
}
