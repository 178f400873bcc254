/* A repartition topic's reader inside the Kafka source (kafka/repartition.h): frames read,
 * watermark records taken out of the stream, the partition's watermark the minimum over the
 * upstream tasks, replayed records dropped by their positions. Loop thread. */
#include "kafka/kafka_source_impl.h"

#include "core/alloc.h"
#include "kafka/repartition.h"

/* What one partition (by the source's part index) heard from each upstream task, and the
 * last position applied of each upstream stream (`last`, unordered: as many as input
 * partitions upstream; the records of one stream come in runs, so the last one hit is tried
 * first). */
typedef struct krp_part {
  bk_krp_wm_t *up; /* [n_up]; state 0xff: not heard from yet */
  uint32_t n_up;
  bk_krp_pos_t *last;
  size_t n_last, cap_last, hit;
} krp_part_t;

struct bk_krp_state {
  krp_part_t *parts;
  size_t n_parts;
};

#define NOT_HEARD 0xff

brook_time_t bk_krp_keep_watermark(const brook_record_t *rec, size_t split, brook_time_t current,
                                   void *opaque) {
  (void)rec, (void)split, (void)opaque;
  return current;
}

/* The table of part `part` with room for `n_up` upstream tasks (0: any), or NULL (out of
 * memory). */
static krp_part_t *part_table(bk_ksrc_t *k, size_t part, uint32_t n_up) {
  const brook_allocator_t *a = bk_rt_alloc(k->w);
  if (!k->rp && !(k->rp = bk_calloc(a, 1, sizeof(*k->rp))))
    return NULL;
  struct bk_krp_state *s = k->rp;
  if (part >= s->n_parts) {
    size_t cap = s->n_parts;
    if (bk_grow(a, (void **)&s->parts, &cap, part + 1, sizeof(*s->parts)))
      return NULL;
    memset(s->parts + s->n_parts, 0, (cap - s->n_parts) * sizeof(*s->parts));
    s->n_parts = cap;
  }
  krp_part_t *p = &s->parts[part];
  if (n_up > p->n_up) {
    bk_krp_wm_t *up = bk_calloc(a, n_up, sizeof(*up));
    if (!up)
      return NULL;
    for (uint32_t u = 0; u < n_up; u++)
      up[u] = u < p->n_up ? p->up[u] : (bk_krp_wm_t){u, n_up, BROOK_TIME_MIN, NOT_HEARD};
    bk_free(a, p->up);
    p->up = up;
    p->n_up = n_up;
  }
  return p;
}

/* The partition's watermark: the fold over its upstream tasks (one not heard from yet holds
 * it at the minimum). */
static bk_wm_fold_t fold_upstream(const krp_part_t *p) {
  bk_wm_fold_t f = bk_wm_fold_new();
  for (uint32_t u = 0; u < p->n_up; u++) {
    const bk_krp_wm_t *w = &p->up[u];
    if (w->state == NOT_HEARD)
      bk_wm_fold_add(&f, BROOK_TIME_MIN, BK_WM_ACTIVE);
    else
      bk_wm_fold_add(&f, w->wm, w->state);
  }
  return f;
}

/* Takes watermark record `w` of partition k->parts[part]. */
static void take_watermark(bk_ksrc_t *k, const rd_kafka_message_t *m, size_t part,
                           const unsigned char *b, size_t len) {
  bk_krp_wm_t w;
  if (bk_krp_wm_decode(b, len, &w) < 0) {
    bk_ksrc_log(k, BROOK_LOG_WARN,
                "a watermark record at offset %lld of %s [%d] is not one this version reads: "
                "ignored",
                (long long)m->offset, rd_kafka_topic_name(m->rkt), (int)m->partition);
    return;
  }
  uint32_t known = k->cfg->rp->n_upstream;
  uint32_t n_up = w.n_upstream > known ? w.n_upstream : known;
  krp_part_t *p = w.upstream < n_up ? part_table(k, part, n_up) : NULL;
  bk_wm_split_t *s = p ? bk_wm_split(bk_src_wm(k->src), part, bk_rt_now(k->w)) : NULL;
  if (!s) {
    if (w.upstream < n_up)
      bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory reading a watermark record");
    return;
  }
  bk_krp_wm_t *u = &p->up[w.upstream];
  if (u->state == NOT_HEARD || w.wm > u->wm)
    u->wm = w.wm; /* an upstream task's watermark never goes back */
  u->state = w.state;
  bk_wm_fold_t f = fold_upstream(p);
  if (f.rank && f.wm > s->wm)
    s->wm = f.wm;
  /* Idle only when every upstream task is (and does not move): one that moves with the
   * clock (advance_when_quiet upstream) moves this partition too. */
  s->idle = f.rank == 0;
}

/* The last position applied of (stream, partition) in `p`, added (offset -1: none) if new;
 * NULL if out of memory. */
static bk_krp_pos_t *last_applied(bk_ksrc_t *k, krp_part_t *p, uint32_t stream, int32_t partition) {
  if (p->hit < p->n_last && p->last[p->hit].stream == stream &&
      p->last[p->hit].partition == partition)
    return &p->last[p->hit];
  for (size_t i = 0; i < p->n_last; i++)
    if (p->last[i].stream == stream && p->last[i].partition == partition)
      return &p->last[p->hit = i];
  if (bk_grow(bk_rt_alloc(k->w), (void **)&p->last, &p->cap_last, p->n_last + 1, sizeof(*p->last)))
    return NULL;
  p->last[p->n_last] = (bk_krp_pos_t){stream, partition, -1, 0};
  return &p->last[p->hit = p->n_last++];
}

int bk_krp_source_control(bk_ksrc_t *k, const rd_kafka_message_t *m, size_t part,
                          const void **value, size_t *value_len, int *headers) {
  const unsigned char *b = m->payload;
  size_t len = m->len;
  int kind = b && len >= BK_KRP_FRAME && b[0] == BK_KRP_MAGIC && b[1] == 1 ? b[2] : 0;
  size_t need =
      BK_KRP_FRAME + (kind == BK_KRP_DATA && (b[3] & BK_KRP_F_POSITION) ? BK_KRP_POS_SIZE : 0);
  if ((kind != BK_KRP_DATA && kind != BK_KRP_WATERMARK) || len < need) {
    bk_ksrc_fail(k, BROOK_ERR_CORRUPT,
                 "the record at offset %lld of repartition topic %s [%d] is not one this version "
                 "of brook writes (%zu bytes)",
                 (long long)m->offset, rd_kafka_topic_name(m->rkt), (int)m->partition, len);
    return 1;
  }
  if (kind == BK_KRP_WATERMARK) {
    take_watermark(k, m, part, b + BK_KRP_FRAME, len - BK_KRP_FRAME);
    return 1;
  }
  if (b[3] & BK_KRP_F_POSITION) {
    bk_krp_pos_t pos;
    bk_krp_pos_decode(b + BK_KRP_FRAME, &pos);
    krp_part_t *p = part_table(k, part, 0);
    bk_krp_pos_t *last = p ? last_applied(k, p, pos.stream, pos.partition) : NULL;
    if (!last) {
      bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory reading a repartition record");
      return 1;
    }
    if (last->offset >= 0 &&
        bk_krp_pos_cmp(pos.offset, pos.index, last->offset, last->index) <= 0) {
      bk_rt_count(k->w, BK_STAT_REPARTITION_REPLAYS_DROPPED, 1);
      return 1; /* applied before: its upstream input was read again */
    }
    *last = pos;
  }
  *value = b[3] & BK_KRP_F_NULL ? NULL : b + need;
  *value_len = len - need;
  *headers = (b[3] & BK_KRP_F_HEADERS) != 0;
  return 0;
}

brook_err_t bk_krp_source_positions(bk_ksrc_t *k, int32_t task, bk_positions_t *out) {
  struct bk_krp_state *st = k->rp;
  for (size_t i = 0; st && i < k->n_parts && i < st->n_parts; i++) {
    const bk_kpart_t *kp = &k->parts[i];
    const krp_part_t *p = &st->parts[i];
    if (!kp->assigned || !p->n_last || bk_ksrc_task(k, i) != task)
      continue;
    size_t tl = strlen(kp->topic);
    unsigned char name[BK_KRP_UPSTREAM_NAME + 256];
    if (tl > sizeof(name) - BK_KRP_UPSTREAM_NAME)
      return BROOK_ERR_INVALID_ARG; /* no Kafka topic name is that long */
    name[0] = BK_KRP_UPSTREAM_TAG;
    memcpy(name + BK_KRP_UPSTREAM_NAME, kp->topic, tl);
    for (size_t u = 0; u < p->n_last; u++) {
      const bk_krp_pos_t *pos = &p->last[u];
      if (pos->offset < 0)
        continue;
      bk_krp_put32(name + 1, pos->stream);
      bk_krp_put32(name + 5, (uint32_t)pos->partition);
      bk_krp_put32(name + 9, pos->index);
      brook_err_t err =
          bk_positions_add_named(out, name, BK_KRP_UPSTREAM_NAME + tl, kp->partition, pos->offset);
      if (err)
        return err;
    }
  }
  return BROOK_OK;
}

brook_err_t bk_krp_source_resume(bk_ksrc_t *k, size_t part) {
  if (!k->cfg->rp)
    return BROOK_OK;
  krp_part_t *p = part_table(k, part, 0);
  if (!p)
    return BROOK_ERR_NOMEM;
  p->n_last = p->hit = 0; /* the task's state starts over: so do its positions */
  const bk_kpart_t *kp = &k->parts[part];
  const void *data;
  size_t len, at = 0, tl = strlen(kp->topic);
  if (!bk_task_stored_positions(k->w, bk_ksrc_task(k, part), &data, &len))
    return BROOK_OK;
  bk_position_t e;
  while (bk_positions_next(data, len, &at, &e)) {
    if (e.name_len != BK_KRP_UPSTREAM_NAME + tl || e.name[0] != BK_KRP_UPSTREAM_TAG ||
        e.partition != kp->partition || memcmp(e.name + BK_KRP_UPSTREAM_NAME, kp->topic, tl) != 0)
      continue;
    bk_krp_pos_t *last =
        last_applied(k, p, bk_krp_get32(e.name + 1), (int32_t)bk_krp_get32(e.name + 5));
    if (!last)
      return BROOK_ERR_NOMEM;
    last->offset = e.offset;
    last->index = bk_krp_get32(e.name + 9);
  }
  return BROOK_OK;
}

brook_err_t bk_krp_source_start(bk_ksrc_t *k) {
  if (!k->cfg->rp)
    return BROOK_OK;
  bk_errmsg_t why;
  brook_err_t err = bk_krp_resolve(k->cfg->rp, &why);
  if (err < 0)
    brook_ctx_set_error(bk_src_ctx(k->src), "%s", why.text);
  return err;
}

void bk_krp_source_free(bk_ksrc_t *k) {
  if (!k->rp)
    return;
  const brook_allocator_t *a = bk_rt_alloc(k->w);
  for (size_t i = 0; i < k->rp->n_parts; i++) {
    bk_free(a, k->rp->parts[i].up);
    bk_free(a, k->rp->parts[i].last);
  }
  bk_free(a, k->rp->parts);
  bk_free(a, k->rp);
  k->rp = NULL;
}
