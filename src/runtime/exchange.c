/* Exchanges between workers (exchange.h). */
#include "runtime/exchange.h"

#include <string.h>

#include "core/alloc.h"
#include "core/murmur2.h"
#include "runtime/record_pack.h"
#include "runtime/spsc_ring.h"

#define XCHG_RING_CHUNKS 16 /* chunks in flight per pair of workers */
#define XCHG_BACK_CHUNKS 32 /* empty chunks on their way back for reuse */
#define XCHG_CHUNK_BYTES (32 * 1024)
#define XCHG_HASH_RUN 64 /* records hashed ahead of routing */

enum { XC_DATA, XC_WM, XC_END };

typedef struct xchunk xchunk_t;
struct xchunk {
  xchunk_t *next; /* in the producer's FIFO of chunks waiting for ring space */
  uint32_t x;     /* exchange index */
  int kind;       /* XC_* */
  brook_time_t wm;
  int wm_state;         /* BK_WM_* */
  size_t n, cap;        /* records */
  size_t used, size;    /* bytes in data */
  brook_record_t *recs; /* inside this allocation */
  unsigned char *data;
};

/* What worker w knows of exchange x from worker s. */
typedef struct xin {
  brook_time_t wm;
  int wm_state;
  int ended;
} xin_t;

/* What worker w sent of exchange x. */
typedef struct xsent {
  brook_time_t wm;
  int wm_state;
  int ended;
} xsent_t;

struct bk_xchg_worker {
  size_t n_x;
  size_t *x_pos;        /* exchange -> plan position */
  int *x_of_pos;        /* plan position -> exchange, or -1 */
  uint32_t *x_tasks;    /* exchange -> task count of its target sub-topology (plan/) */
  bk_spsc_t *in;        /* [n_workers]: from worker s (in[w->index] unused) */
  bk_spsc_t *back;      /* [n_workers]: empty chunks worker s sends back for reuse */
  xchunk_t **filling;   /* [n_x * n_workers]: chunk being filled for (x, worker) */
  xchunk_t **wait_head; /* [n_workers]: FIFO of chunks waiting for ring space */
  xchunk_t **wait_tail;
  xin_t *xin;                   /* [n_x * n_workers] */
  xsent_t *sent;                /* [n_x] */
  brook_record_t *local;        /* batch_size records for this worker's share of a batch */
  uint32_t dest[XCHG_HASH_RUN]; /* bk_xchg_route: the target worker of each record of a run */
  size_t fin_pos;               /* bk_xchg_finish: next plan position */
  int blocked;
  atomic_int want_space; /* set by a blocked producer: consumers wake it after popping */
};

/* The worker owning `key`: its target task is the plan's, murmur2(key) % n_tasks of the
 * exchange's target sub-topology (plan/), and task t runs on worker t % n_workers, so a key's
 * task does not depend on the number of workers. */
static uint32_t key_worker(const bk_worker_t *w, uint32_t n_tasks, const brook_record_t *rec) {
  /* A NULL key is the empty key (plan/: one group, whose state lives in one task). */
  uint32_t task = bk_murmur2_partition(rec->key, rec->key ? rec->key_len : 0, n_tasks);
  return task % (uint32_t)w->rt->n_workers;
}

/* Bytes for records' data in a standard chunk: about 32 bytes per record of a batch, at most
 * XCHG_CHUNK_BYTES; a larger record gets a chunk of its own size (not reused). */
static size_t std_size(const bk_worker_t *w) {
  size_t size = w->rt->opts.batch_size * 32;
  return size < XCHG_CHUNK_BYTES ? size : XCHG_CHUNK_BYTES;
}

/* A chunk for worker `to`: a standard one it sent back if there is one (chunks are reused
 * between two workers, so steady traffic allocates nothing), else a new one. */
static xchunk_t *chunk_new(bk_worker_t *w, size_t to, uint32_t x, int kind, size_t need) {
  size_t cap = kind == XC_DATA ? w->rt->opts.batch_size : 0;
  size_t size = kind == XC_DATA ? (need > std_size(w) ? need : std_size(w)) : 0;
  xchunk_t *c = kind == XC_DATA && size == std_size(w) ? bk_spsc_pop(&w->xchg->back[to]) : NULL;
  if (!c) {
    size_t head = bk_align8(sizeof(xchunk_t)), recs = cap * sizeof(brook_record_t);
    if (!(c = bk_malloc(&w->rt->alloc, head + recs + size)))
      return NULL;
    c->recs = (brook_record_t *)((unsigned char *)c + head);
    c->data = (unsigned char *)c->recs + recs;
  }
  brook_record_t *recs_at = c->recs;
  unsigned char *data_at = c->data;
  memset(c, 0, sizeof(*c));
  c->recs = recs_at;
  c->data = data_at;
  c->x = x;
  c->kind = kind;
  c->cap = cap;
  c->size = size;
  return c;
}

/* Worker w is done with chunk c from worker s: back to s for reuse, or freed. */
static void chunk_done(bk_worker_t *w, size_t s, xchunk_t *c) {
  bk_worker_t *from = &w->rt->workers[s];
  if (c->kind == XC_DATA && c->size == std_size(w) &&
      bk_spsc_push(&from->xchg->back[w->index], c) == 0)
    return;
  bk_free(&w->rt->alloc, c);
}

/* Pushes the chunks waiting for worker `to` into its ring, oldest first. */
static void push_waiting(bk_worker_t *w, size_t to) {
  bk_xchg_worker_t *x = w->xchg;
  bk_worker_t *dst = &w->rt->workers[to];
  bk_spsc_t *ring = &dst->xchg->in[w->index];
  int pushed = 0;
  while (x->wait_head[to]) {
    xchunk_t *c = x->wait_head[to], *next = c->next; /* once pushed, c is the consumer's */
    if (bk_spsc_push(ring, c) != 0)
      break;
    x->wait_head[to] = next;
    pushed = 1;
  }
  if (!x->wait_head[to])
    x->wait_tail[to] = NULL;
  if (pushed)
    bk_worker_wake(dst);
}

static void update_blocked(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  int blocked = 0;
  for (size_t to = 0; to < w->rt->n_workers && !blocked; to++)
    blocked = x->wait_head[to] != NULL;
  x->blocked = blocked;
  atomic_store(&x->want_space, blocked);
}

/* Queues chunk c for worker `to` (after everything queued before it). */
static void publish(bk_worker_t *w, size_t to, xchunk_t *c) {
  bk_xchg_worker_t *x = w->xchg;
  c->next = NULL;
  if (x->wait_tail[to])
    x->wait_tail[to]->next = c;
  else
    x->wait_head[to] = c;
  x->wait_tail[to] = c;
  push_waiting(w, to);
}

static brook_err_t send_control(bk_worker_t *w, uint32_t xi, int kind, brook_time_t wm, int state) {
  for (size_t to = 0; to < w->rt->n_workers; to++) {
    if (to == w->index)
      continue;
    xchunk_t **fill = &w->xchg->filling[xi * w->rt->n_workers + to];
    if (*fill) { /* the records before it go first */
      publish(w, to, *fill);
      *fill = NULL;
    }
    xchunk_t *c = chunk_new(w, to, xi, kind, 0);
    if (!c)
      return BROOK_ERR_NOMEM;
    c->wm = wm;
    c->wm_state = state;
    publish(w, to, c);
  }
  return BROOK_OK;
}

/* Delivers this worker's share of a batch to the exchange's consumers here. */
static brook_err_t deliver_local(bk_port_t *p, const brook_record_t *recs, size_t *n) {
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < p->n_to && err >= 0 && *n; i++) {
    p->to[i].ctx->input_owned = 0; /* the worker's share of a batch: not rewritten in place */
    err = bk_ctx_process(p->to[i].ctx, p->to[i].input, recs, *n);
  }
  *n = 0;
  return err;
}

static brook_err_t route_one(bk_worker_t *w, brook_ctx_t *from, bk_port_t *p, uint32_t xi,
                             size_t to, const brook_record_t *rec, size_t *n_local);

brook_err_t bk_xchg_route(brook_ctx_t *from, bk_port_t *p, const brook_record_t *recs, size_t n) {
  bk_worker_t *w = from->w;
  bk_xchg_worker_t *x = w->xchg;
  size_t pos = w->rt->plan.pos[from->node->id];
  uint32_t xi = (uint32_t)x->x_of_pos[pos];
  uint32_t n_tasks = x->x_tasks[xi];
  size_t n_local = 0;
  brook_err_t err = BROOK_OK;
  for (size_t i0 = 0; i0 < n; i0 += XCHG_HASH_RUN) {
    /* Hashing first, in runs: the keys' cache misses overlap instead of waiting one by one
     * behind the copies. */
    size_t run = n - i0 < XCHG_HASH_RUN ? n - i0 : XCHG_HASH_RUN;
    for (size_t i = 0; i < run; i++)
      x->dest[i] = key_worker(w, n_tasks, &recs[i0 + i]);
    for (size_t i = i0; i < i0 + run; i++) {
      size_t to = x->dest[i - i0];
      if ((err = route_one(w, from, p, xi, to, &recs[i], &n_local)) < 0)
        return err;
    }
  }
  err = deliver_local(p, x->local, &n_local);
  update_blocked(w);
  return err;
}

/* Sends one record to worker `to`: into this worker's share (x->local) or a chunk. */
static brook_err_t route_one(bk_worker_t *w, brook_ctx_t *from, bk_port_t *p, uint32_t xi,
                             size_t to, const brook_record_t *rec, size_t *n_local) {
  bk_xchg_worker_t *x = w->xchg;
  size_t nw = w->rt->n_workers;
  brook_err_t err;
  if (to == w->index) {
    x->local[(*n_local)++] = *rec;
    if (*n_local == w->rt->opts.batch_size && (err = deliver_local(p, x->local, n_local)) < 0)
      return err;
    return BROOK_OK;
  }
  xchunk_t **fill = &x->filling[xi * nw + to];
  size_t need = bk_record_packed_size(rec);
  if (*fill && ((*fill)->n == (*fill)->cap || (*fill)->size - (*fill)->used < need)) {
    publish(w, to, *fill);
    *fill = NULL;
  }
  if (!*fill && !(*fill = chunk_new(w, to, xi, XC_DATA, need))) {
    bk_runtime_fail(w->rt, BROOK_ERR_NOMEM, "runtime: out of memory in the exchange after '%s'",
                    from->node->name);
    return BROOK_ERR_NOMEM;
  }
  bk_record_pack(&(*fill)->recs[(*fill)->n++], rec, (*fill)->data, &(*fill)->used);
  return BROOK_OK;
}

void bk_xchg_flush(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  if (!x)
    return;
  size_t nw = w->rt->n_workers;
  for (size_t xi = 0; xi < x->n_x; xi++) {
    for (size_t to = 0; to < nw; to++) {
      xchunk_t **fill = &x->filling[xi * nw + to];
      if (*fill) {
        publish(w, to, *fill);
        *fill = NULL;
      }
    }
    const brook_ctx_t *c = &w->insts[x->x_pos[xi]];
    xsent_t *s = &x->sent[xi];
    if (!s->ended && (c->wm != s->wm || c->wm_idle != s->wm_state)) {
      if (send_control(w, (uint32_t)xi, XC_WM, c->wm, c->wm_idle) < 0) {
        bk_runtime_fail(w->rt, BROOK_ERR_NOMEM, "runtime: out of memory in an exchange");
        return;
      }
      s->wm = c->wm;
      s->wm_state = c->wm_idle;
    }
  }
  for (size_t to = 0; to < nw; to++)
    if (x->wait_head[to])
      push_waiting(w, to);
  update_blocked(w);
}

int bk_xchg_blocked(const bk_worker_t *w) { return w->xchg && w->xchg->blocked; }

static void deliver_chunk(bk_worker_t *w, xchunk_t *c) {
  brook_ctx_t *xc = &w->insts[w->xchg->x_pos[c->x]];
  bk_port_t *p = &xc->ports[0];
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < p->n_to && err >= 0; i++) {
    p->to[i].ctx->input_owned = 0; /* a chunk: not rewritten in place */
    err = bk_ctx_process(p->to[i].ctx, p->to[i].input, c->recs, c->n);
  }
  if (err >= 0 && w->errors_inst)
    err = bk_ctx_flush_ports(w->errors_inst);
  bk_arena_reset(&w->arena);
  if (err < 0)
    bk_runtime_fail(w->rt, err, "operator after exchange '%s' failed: %s", xc->node->name,
                    brook_strerror(err));
}

int bk_xchg_receive(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  if (!x)
    return 0;
  brook_runtime_t *rt = w->rt;
  int any = 0;
  for (size_t s = 0; s < rt->n_workers; s++) {
    if (s == w->index)
      continue;
    xchunk_t *c;
    int popped = 0;
    while ((c = bk_spsc_pop(&x->in[s]))) {
      popped = 1;
      xin_t *in = &x->xin[c->x * rt->n_workers + s];
      if (c->kind == XC_DATA && bk_runtime_status(rt) == BROOK_OK) {
        w->now_ms = bk_wallclock_ms();
        deliver_chunk(w, c);
      } else if (c->kind == XC_WM) {
        in->wm = c->wm;
        in->wm_state = c->wm_state;
      } else if (c->kind == XC_END) {
        in->ended = 1;
        in->wm = BROOK_TIME_MAX;
        in->wm_state = BK_WM_ACTIVE;
      }
      chunk_done(w, s, c);
    }
    if (popped && atomic_load(&rt->workers[s].xchg->want_space))
      bk_worker_wake(&rt->workers[s]);
    any |= popped;
  }
  return any;
}

void bk_xchg_fold(const bk_worker_t *w, size_t pos, bk_wm_fold_t *f) {
  const bk_xchg_worker_t *x = w->xchg;
  const brook_ctx_t *c = &w->insts[pos];
  bk_wm_fold_add(f, c->wm, c->wm_idle);
  int xi = x->x_of_pos[pos];
  for (size_t s = 0; s < w->rt->n_workers; s++) {
    if (s == w->index)
      continue;
    const xin_t *in = &x->xin[(size_t)xi * w->rt->n_workers + s];
    bk_wm_fold_add(f, in->wm, in->wm_state);
  }
}

/* 1 if every other worker has ended every exchange node `pos` consumes. */
static int inputs_ended(const bk_worker_t *w, size_t pos) {
  const bk_xchg_worker_t *x = w->xchg;
  const bk_node_t *node = w->insts[pos].node;
  for (size_t k = 0; k < node->n_inputs; k++) {
    int xi = x->x_of_pos[w->rt->plan.pos[node->inputs[k]->node->id]];
    for (size_t s = 0; xi >= 0 && s < w->rt->n_workers; s++)
      if (s != w->index && !x->xin[(size_t)xi * w->rt->n_workers + s].ended)
        return 0;
  }
  return 1;
}

int bk_xchg_finish(bk_worker_t *w, int natural) {
  bk_xchg_worker_t *x = w->xchg;
  brook_runtime_t *rt = w->rt;
  for (; x->fin_pos < rt->plan.n && bk_runtime_status(rt) == BROOK_OK; x->fin_pos++) {
    size_t i = x->fin_pos;
    if (!inputs_ended(w, i))
      return 0;
    if (natural)
      bk_time_pass(w);
    for (size_t t = 0; t < bk_inst_count(w, i) && bk_runtime_status(rt) == BROOK_OK; t++) {
      brook_ctx_t *c = bk_inst_at(w, i, t);
      if (!c->opened || c->node->kind != BK_NODE_OPERATOR)
        continue;
      if (natural)
        bk_call_operator(w, c, bk_call_end_of_input);
      bk_call_operator(w, c, bk_call_flush);
      bk_arena_reset(&w->arena);
    }
    if (x->x_of_pos[i] >= 0) {
      bk_xchg_flush(w); /* its records and watermark first */
      x->sent[x->x_of_pos[i]].ended = 1;
      if (send_control(w, (uint32_t)x->x_of_pos[i], XC_END, BROOK_TIME_MAX, BK_WM_ACTIVE) < 0)
        bk_runtime_fail(rt, BROOK_ERR_NOMEM, "runtime: out of memory in an exchange");
    }
  }
  bk_xchg_flush(w);
  return bk_runtime_status(rt) != BROOK_OK || !x->blocked;
}

/* The task count behind the exchange out of `from`: its target sub-topology's, or one task
 * per worker while the count is unresolved (a source that learns its partitions at run time;
 * those run on one worker today). */
static uint32_t exchange_tasks(const bk_plan_t *plan, const bk_node_t *from, size_t n_workers) {
  for (size_t e = 0; e < plan->n_exchanges; e++)
    if (plan->exchanges[e].from == from && plan->subs[plan->exchanges[e].to_sub].tasks)
      return plan->subs[plan->exchanges[e].to_sub].tasks;
  return (uint32_t)n_workers;
}

brook_err_t bk_xchg_worker_init(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  const brook_allocator_t *a = &rt->alloc;
  size_t nw = rt->n_workers, n_x = 0;
  for (size_t i = 0; i < rt->plan.n; i++)
    n_x += rt->plan.order[i]->rekeys;
  if (nw == 1 || n_x == 0)
    return BROOK_OK;
  bk_xchg_worker_t *x = bk_calloc(a, 1, sizeof(*x));
  if (!x)
    return BROOK_ERR_NOMEM;
  w->xchg = x;
  x->n_x = n_x;
  x->x_pos = bk_calloc(a, n_x, sizeof(*x->x_pos));
  x->x_of_pos = bk_calloc(a, rt->plan.n, sizeof(*x->x_of_pos));
  x->x_tasks = bk_calloc(a, n_x, sizeof(*x->x_tasks));
  x->in = bk_calloc(a, nw, sizeof(*x->in));
  x->back = bk_calloc(a, nw, sizeof(*x->back));
  x->filling = bk_calloc(a, n_x * nw, sizeof(*x->filling));
  x->wait_head = bk_calloc(a, nw, sizeof(*x->wait_head));
  x->wait_tail = bk_calloc(a, nw, sizeof(*x->wait_tail));
  x->xin = bk_calloc(a, n_x * nw, sizeof(*x->xin));
  x->sent = bk_calloc(a, n_x, sizeof(*x->sent));
  x->local = bk_calloc(a, rt->opts.batch_size, sizeof(*x->local));
  atomic_init(&x->want_space, 0);
  if (!x->x_pos || !x->x_of_pos || !x->x_tasks || !x->in || !x->back || !x->filling ||
      !x->wait_head || !x->wait_tail || !x->xin || !x->sent || !x->local)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0, k = 0; i < rt->plan.n; i++) {
    x->x_of_pos[i] = rt->plan.order[i]->rekeys ? (int)k : -1;
    if (rt->plan.order[i]->rekeys) {
      x->x_tasks[k] = exchange_tasks(&rt->plan, rt->plan.order[i], nw);
      x->x_pos[k++] = i;
    }
  }
  for (size_t k = 0; k < n_x * nw; k++)
    x->xin[k] = (xin_t){BROOK_TIME_MIN, BK_WM_ACTIVE, 0};
  for (size_t k = 0; k < n_x; k++)
    x->sent[k] = (xsent_t){BROOK_TIME_MIN, BK_WM_ACTIVE, 0};
  for (size_t s = 0; s < nw; s++)
    if (s != w->index && (bk_spsc_init(&x->in[s], a, XCHG_RING_CHUNKS) ||
                          bk_spsc_init(&x->back[s], a, XCHG_BACK_CHUNKS)))
      return BROOK_ERR_NOMEM;
  return BROOK_OK;
}

void bk_xchg_worker_free(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  if (!x)
    return;
  const brook_allocator_t *a = &w->rt->alloc;
  size_t nw = w->rt->n_workers;
  bk_spsc_t *rings[2] = {x->in, x->back};
  for (size_t r = 0; r < 2; r++) {
    for (size_t s = 0; rings[r] && s < nw; s++) {
      if (!rings[r][s].slots)
        continue;
      xchunk_t *c;
      while ((c = bk_spsc_pop(&rings[r][s])))
        bk_free(a, c);
      bk_spsc_free(&rings[r][s], a);
    }
  }
  for (size_t k = 0; x->filling && k < x->n_x * nw; k++)
    bk_free(a, x->filling[k]);
  for (size_t to = 0; x->wait_head && to < nw; to++) {
    while (x->wait_head[to]) {
      xchunk_t *c = x->wait_head[to];
      x->wait_head[to] = c->next;
      bk_free(a, c);
    }
  }
  bk_free(a, x->x_pos);
  bk_free(a, x->x_tasks);
  bk_free(a, x->x_of_pos);
  bk_free(a, x->in);
  bk_free(a, x->back);
  bk_free(a, x->filling);
  bk_free(a, x->wait_head);
  bk_free(a, x->wait_tail);
  bk_free(a, x->xin);
  bk_free(a, x->sent);
  bk_free(a, x->local);
  bk_free(a, x);
  w->xchg = NULL;
}
