/* A repartition topic's reader inside the Kafka source (kafka/repartition.h): watermark
 * records taken out of the stream, the partition's watermark the minimum over the upstream
 * tasks. Loop thread. */
#include "kafka/kafka_source_impl.h"

#include "core/alloc.h"
#include "kafka/repartition.h"

/* What one partition (by the source's part index) heard from each upstream task. */
typedef struct krp_part {
  bk_krp_wm_t *up; /* [n_up]; state 0xff: not heard from yet */
  uint32_t n_up;
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

/* The table of part `part` with room for `n_up` upstream tasks, or NULL (out of memory). */
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

int bk_krp_source_control(bk_ksrc_t *k, const rd_kafka_message_t *m, size_t part) {
  rd_kafka_headers_t *h = NULL;
  const void *v;
  size_t n;
  if (rd_kafka_message_headers(m, &h) || !h ||
      rd_kafka_header_get_last(h, BK_KRP_HEADER, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return 0;
  bk_krp_wm_t w;
  if (bk_krp_wm_decode(m->payload, m->len, &w) < 0) {
    bk_ksrc_log(k, BROOK_LOG_WARN,
                "a watermark record at offset %lld of %s [%d] is not one this version reads: "
                "ignored",
                (long long)m->offset, rd_kafka_topic_name(m->rkt), (int)m->partition);
    return 1;
  }
  uint32_t known = k->cfg->rp->n_upstream;
  uint32_t n_up = w.n_upstream > known ? w.n_upstream : known;
  krp_part_t *p = w.upstream < n_up ? part_table(k, part, n_up) : NULL;
  bk_wm_split_t *s = p ? bk_wm_split(bk_src_wm(k->src), part, bk_rt_now(k->w)) : NULL;
  if (!s) {
    if (w.upstream < n_up)
      bk_ksrc_fail(k, BROOK_ERR_NOMEM, "out of memory reading a watermark record");
    return 1;
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
  return 1;
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
  for (size_t i = 0; i < k->rp->n_parts; i++)
    bk_free(a, k->rp->parts[i].up);
  bk_free(a, k->rp->parts);
  bk_free(a, k->rp);
  k->rp = NULL;
}
