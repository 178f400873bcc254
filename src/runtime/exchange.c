/* Exchanges between workers (exchange.h): routing records into chunks, the rings, receiving,
 * watermarks and the end of input. The tables (which exchange leaves by which port, which
 * input is fed by which exchange) are built in exchange_setup.c. */
#include "runtime/exchange_impl.h"

#include <string.h>

#include "core/alloc.h"
#include "core/hints.h"
#include "core/murmur2.h"
#include "runtime/record_pack.h"
#include "runtime/spsc_ring.h"

/* Bytes for records' data in a standard chunk: about 32 bytes per record of a batch, at most
 * XCHG_CHUNK_BYTES; a larger record gets a chunk of its own size (not reused). */
static size_t std_size(const bk_worker_t *w) {
  size_t size = w->rt->opts.batch_size * 32;
  return size < XCHG_CHUNK_BYTES ? size : XCHG_CHUNK_BYTES;
}

/* A chunk for worker `to`: a standard one it sent back if there is one (chunks are reused
 * between two workers, so steady traffic allocates nothing), else a new one. */
static xchunk_t *chunk_new(bk_worker_t *w, size_t to, uint32_t xi, int kind, size_t need) {
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
  c->next = NULL;
  c->x = xi;
  c->kind = kind;
  c->errors = w->error_depth > 0;
  c->has_wm = 0;
  c->wm = BROOK_TIME_MIN;
  c->wm_state = BK_WM_ACTIVE;
  c->n = 0;
  c->cap = cap;
  c->used = 0;
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

/* Pushes the chunks waiting for worker `to` into its ring, oldest first; the wake-up waits
 * for wake_pending (one per batch and destination, not one per chunk). */
static void push_waiting(bk_worker_t *w, size_t to) {
  bk_xchg_worker_t *x = w->xchg;
  bk_spsc_t *ring = &w->rt->workers[to].xchg->in[w->index];
  while (x->wait_head[to]) {
    xchunk_t *c = x->wait_head[to], *next = c->next; /* once pushed, c is the consumer's */
    if (bk_spsc_push(ring, c) != 0)
      break;
    x->wait_head[to] = next;
    x->wake[to] = 1;
  }
  if (!x->wait_head[to])
    x->wait_tail[to] = NULL;
}

/* Wakes the workers that got chunks since the last call. */
static void wake_pending(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  for (size_t to = 0; to < w->rt->n_workers; to++) {
    if (x->wake[to]) {
      x->wake[to] = 0;
      bk_worker_wake(&w->rt->workers[to]);
    }
  }
}

static int any_waiting(const bk_worker_t *w) {
  for (size_t to = 0; to < w->rt->n_workers; to++)
    if (w->xchg->wait_head[to])
      return 1;
  return 0;
}

/* Blocked while chunks wait for ring space. The consumer that pops wakes us if want_space is
 * set; it may have popped between our failed push and the store, so once want_space is
 * visible (a seq_cst store, paired with the consumer's fence between popping and reading it)
 * the pushes are tried again: either they succeed now, or that consumer's next pop sees the
 * flag and wakes us. */
static void update_blocked(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  int blocked = any_waiting(w);
  if (blocked && !x->blocked) {
    atomic_store(&x->want_space, 1);
    atomic_thread_fence(memory_order_seq_cst);
    for (size_t to = 0; to < w->rt->n_workers; to++)
      if (x->wait_head[to])
        push_waiting(w, to);
    wake_pending(w);
    blocked = any_waiting(w);
  }
  x->blocked = blocked;
  if (!blocked)
    atomic_store_explicit(&x->want_space, 0, memory_order_relaxed);
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

/* 1 if worker w sends exchange xi's records to worker `to`. */
static int sends_to(const bk_worker_t *w, const xdef_t *d, size_t to) {
  return d->n_to && to != w->index && (!d->gather || to == 0);
}

/* 1 if worker w receives exchange xi's records from the other workers. An exchange that
 * feeds nothing (a key_by whose only consumers are once nodes, fed by gathers) carries
 * nothing at all. */
static int receives(const bk_worker_t *w, const xdef_t *d) {
  return d->n_to && (!d->gather || w->index == 0);
}

/* Sends a watermark (XC_WM) or the end (XC_END) of exchange xi to its receivers, after the
 * records before it. A watermark rides on the chunk being filled for a receiver when there is
 * one (no chunk of its own: steady traffic sends none); the end always has its own. */
static brook_err_t send_control(bk_worker_t *w, uint32_t xi, int kind, brook_time_t wm, int state) {
  const xdef_t *d = &w->xchg->defs[xi];
  for (size_t to = 0; to < w->rt->n_workers; to++) {
    if (!sends_to(w, d, to))
      continue;
    xchunk_t **fill = &w->xchg->filling[xi * w->rt->n_workers + to];
    xchunk_t *c = *fill;
    *fill = NULL;
    if (c && kind == XC_WM) {
      c->has_wm = 1;
    } else {
      if (c) /* the records before it go first */
        publish(w, to, c);
      if (!(c = chunk_new(w, to, xi, kind, 0)))
        return BROOK_ERR_NOMEM;
    }
    c->wm = wm;
    c->wm_state = state;
    publish(w, to, c);
  }
  return BROOK_OK;
}

/* Delivers records to targets `to` (indexes into p->to) of this worker. */
static brook_err_t deliver_to(bk_port_t *p, const size_t *to, size_t n_to,
                              const brook_record_t *recs, size_t n) {
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < n_to && err >= 0 && n; i++) {
    p->to[to[i]].ctx->input_owned = 0; /* shared with other targets or a chunk: read only */
    err = bk_ctx_process(p->to[to[i]].ctx, p->to[to[i]].input, recs, n);
  }
  return err;
}

/* The chunk of exchange xi for worker `to` with room for `need` bytes and one record: the
 * one being filled, or a new one (the full one is published). NULL: out of memory (the run
 * has failed). */
static xchunk_t *room_for(bk_worker_t *w, uint32_t xi, size_t to, size_t need) {
  xchunk_t **fill = &w->xchg->filling[xi * w->rt->n_workers + to];
  xchunk_t *c = *fill;
  int errors = w->error_depth > 0;
  if (BK_LIKELY(c && c->n < c->cap && c->size - c->used >= need && c->errors == errors))
    return c;
  if (c)
    publish(w, to, c);
  if (!(*fill = chunk_new(w, to, xi, XC_DATA, need)))
    bk_runtime_fail(w->rt, BROOK_ERR_NOMEM, "runtime: out of memory in an exchange");
  return *fill;
}

/* Packs records recs[idx[0..n)] (or recs[0..n) when idx is NULL) into chunks of exchange xi
 * for worker `to`. The inner loop keeps the chunk's counters in locals (the compiler cannot:
 * the records written might alias them) and packs a record without headers inline
 * (record_pack.h); a record with headers, or one that does not fit, takes the slow path. */
static inline __attribute__((always_inline)) brook_err_t pack_to(bk_worker_t *w, uint32_t xi,
                                                                 size_t to,
                                                                 const brook_record_t *recs,
                                                                 const uint16_t *idx, size_t n) {
  xchunk_t *c = w->xchg->filling[xi * w->rt->n_workers + to];
  int errors = w->error_depth > 0;
  size_t i = 0;
  while (i < n) {
    const brook_record_t *rec = idx ? &recs[idx[i]] : &recs[i];
    size_t need = rec->header_count ? bk_record_packed_size(rec) : bk_record_packed_size_plain(rec);
    if ((!c || c->n == c->cap || c->size - c->used < need || c->errors != errors) &&
        !(c = room_for(w, xi, to, need)))
      return BROOK_ERR_NOMEM;
    if (rec->header_count) {
      bk_record_pack(&c->recs[c->n++], rec, c->data, &c->used);
      i++;
      continue;
    }
    brook_record_t *out = c->recs + c->n, *out_end = c->recs + c->cap;
    unsigned char *data = c->data;
    size_t used = c->used, size = c->size;
    for (; i < n && out < out_end; i++, out++) {
      rec = idx ? &recs[idx[i]] : &recs[i];
      size_t ka = bk_align8(rec->key_len), va = bk_align8(rec->value_len);
      if (BK_UNLIKELY(rec->header_count || size - used < ka + va))
        break;
      unsigned char *k = data + used;
      *out = *rec;
      out->key = rec->key ? k : NULL;
      out->value = rec->value ? k + ka : NULL;
      if (rec->key)
        bk_pack_bytes(k, rec->key, rec->key_len);
      if (rec->value)
        bk_pack_bytes(k + ka, rec->value, rec->value_len);
      used += ka + va;
    }
    c->n = (size_t)(out - c->recs);
    c->used = used;
  }
  return BROOK_OK;
}

/* pack_to for a bucket of indexes and for a whole array, each its own loop. */
static brook_err_t pack_bucket(bk_worker_t *w, uint32_t xi, size_t to, const brook_record_t *recs,
                               const uint16_t *idx, size_t n) {
  return pack_to(w, xi, to, recs, idx, n);
}

static brook_err_t pack_all(bk_worker_t *w, uint32_t xi, size_t to, const brook_record_t *recs,
                            size_t n) {
  return pack_to(w, xi, to, recs, NULL, n);
}

/* murmur2 of a record's key as Kafka's partitioner takes it (& 0x7fffffff). A NULL key is the
 * empty key (core/murmur2.h); 8-byte keys (ids) are common: hashed with the length known,
 * unrolled. */
static inline uint32_t key_hash(const brook_record_t *rec) {
  if (rec->key_len == 8 && rec->key)
    return bk_murmur2(rec->key, 8) & 0x7fffffffu;
  return bk_murmur2(rec->key, rec->key ? rec->key_len : 0) & 0x7fffffffu;
}

/* Sorts run r[0..n) into x's buckets by the worker owning each key: task = hash % n_tasks (a
 * mask when n_tasks is a power of two, the common counts), then the task's worker. The
 * loops differ only in that, so neither tests it per record. */
static void bucket_by_key(const xdef_t *d, xscratch_t *x, const brook_record_t *r, size_t n) {
  size_t R = x->run;
  uint32_t nt = d->n_tasks;
  if ((nt & (nt - 1)) == 0) {
    for (size_t i = 0; i < n; i++) {
      uint32_t to = d->task_worker[key_hash(&r[i]) & (nt - 1)];
      x->bucket[to * R + x->count[to]++] = (uint16_t)i;
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      uint32_t to = d->task_worker[key_hash(&r[i]) % nt];
      x->bucket[to * R + x->count[to]++] = (uint16_t)i;
    }
  }
}

/* By key: each record to its key's worker. A run of records is sorted into one bucket of
 * indexes per destination as the keys are hashed (no record copies), so packing runs one
 * destination at a time without a branch per record, and this worker's share goes to its
 * targets as one batch. */
static brook_err_t route_by_key(bk_worker_t *w, bk_port_t *p, uint32_t xi,
                                const brook_record_t *recs, size_t n) {
  xdef_t *d = &w->xchg->defs[xi];
  xscratch_t *x = d->scratch; /* per exchange: delivering the local share may route again */
  size_t nw = w->rt->n_workers, R = x->run;
  brook_err_t err = BROOK_OK;
  for (size_t i0 = 0; i0 < n && err >= 0; i0 += R) {
    size_t run = n - i0 < R ? n - i0 : R;
    const brook_record_t *r = recs + i0;
    for (size_t to = 0; to < nw; to++)
      x->count[to] = 0;
    bucket_by_key(d, x, r, run);
    for (size_t to = 0; to < nw && err >= 0; to++) {
      size_t m = x->count[to];
      const uint16_t *b = x->bucket + to * R;
      if (!m)
        continue;
      if (to != w->index) {
        err = pack_bucket(w, xi, to, r, b, m);
        continue;
      }
      for (size_t k = 0; k < m; k++)
        x->local[k] = r[b[k]];
      err = deliver_to(p, d->to, d->n_to, x->local, m);
    }
  }
  return err;
}

int bk_xchg_routed(const bk_worker_t *w, const brook_ctx_t *from, const bk_port_t *p) {
  const xroute_t *r = w->xchg->routes[w->rt->plan.pos[from->node->id]];
  return r && r[p - from->ports].routed;
}

brook_err_t bk_xchg_route(brook_ctx_t *from, bk_port_t *p, const brook_record_t *recs, size_t n) {
  bk_worker_t *w = from->w;
  bk_xchg_worker_t *x = w->xchg;
  const xroute_t *r = &x->routes[w->rt->plan.pos[from->node->id]][p - from->ports];
  int from_errors = from == w->errors_inst; /* as exec.c's deliver: failed records */
  w->error_depth += from_errors;
  brook_err_t err = deliver_to(p, r->local, r->n_local, recs, n);
  for (size_t g = 0; g < r->n_gathers && err >= 0; g++) {
    const xdef_t *d = &x->defs[r->gathers[g]];
    err = w->index == 0 ? deliver_to(p, d->to, d->n_to, recs, n)
                        : pack_all(w, r->gathers[g], 0, recs, n);
  }
  if (r->key_x >= 0 && err >= 0)
    err = route_by_key(w, p, (uint32_t)r->key_x, recs, n);
  w->error_depth -= from_errors;
  wake_pending(w);
  update_blocked(w);
  if (err == BROOK_ERR_NOMEM && bk_runtime_status(w->rt) == BROOK_OK)
    bk_runtime_fail(w->rt, err, "runtime: out of memory in the exchange after '%s'",
                    from->node->name);
  return err;
}

void bk_xchg_flush(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  if (!x)
    return;
  size_t nw = w->rt->n_workers;
  for (size_t xi = 0; xi < x->n_x; xi++) {
    const brook_ctx_t *c = &w->insts[x->defs[xi].from_pos];
    xsent_t *s = &x->sent[xi];
    if (!s->ended && (c->wm != s->wm || c->wm_idle != s->wm_state)) {
      if (send_control(w, (uint32_t)xi, XC_WM, c->wm, c->wm_idle) < 0) {
        bk_runtime_fail(w->rt, BROOK_ERR_NOMEM, "runtime: out of memory in an exchange");
        return;
      }
      s->wm = c->wm;
      s->wm_state = c->wm_idle;
    }
    for (size_t to = 0; to < nw; to++) { /* what the watermark did not take along */
      xchunk_t **fill = &x->filling[xi * nw + to];
      if (*fill) {
        publish(w, to, *fill);
        *fill = NULL;
      }
    }
  }
  for (size_t to = 0; to < nw; to++)
    if (x->wait_head[to])
      push_waiting(w, to);
  wake_pending(w);
  update_blocked(w);
}

int bk_xchg_blocked(const bk_worker_t *w) { return w->xchg && w->xchg->blocked; }

static void deliver_chunk(bk_worker_t *w, xchunk_t *c) {
  const xdef_t *d = &w->xchg->defs[c->x];
  brook_ctx_t *from = &w->insts[d->from_pos];
  w->error_depth += c->errors; /* failed records stay failed records on this worker too */
  brook_err_t err = deliver_to(&from->ports[d->port], d->to, d->n_to, c->recs, c->n);
  w->error_depth -= c->errors;
  if (err >= 0 && w->errors_inst)
    err = bk_ctx_flush_ports(w->errors_inst);
  bk_arena_reset(&w->arena);
  if (err < 0)
    bk_runtime_fail(w->rt, err, "operator after the exchange from '%s' failed: %s",
                    from->node->name, brook_strerror(err));
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
      }
      if (c->kind == XC_WM || c->has_wm) { /* after the records it covers */
        in->wm = c->wm;
        in->wm_state = c->wm_state;
      } else if (c->kind == XC_END) {
        in->ended = 1;
        in->wm = BROOK_TIME_MAX;
        in->wm_state = BK_WM_ACTIVE;
      }
      chunk_done(w, s, c);
    }
    if (popped) { /* room made: a producer that waits for it must hear (update_blocked) */
      atomic_thread_fence(memory_order_seq_cst);
      if (atomic_load_explicit(&rt->workers[s].xchg->want_space, memory_order_relaxed))
        bk_worker_wake(&rt->workers[s]);
    }
    any |= popped;
  }
  return any;
}

int bk_xchg_fold_input(const bk_worker_t *w, const bk_node_t *node, size_t k, bk_wm_fold_t *f) {
  const bk_xchg_worker_t *x = w->xchg;
  size_t pos = w->rt->plan.pos[node->id];
  int xi = x->in_x[x->in_off[pos] + k];
  if (xi < 0)
    return 0;
  const xdef_t *d = &x->defs[xi];
  if (!receives(w, d)) { /* a once node's input on another worker: nothing comes here */
    bk_wm_fold_add(f, BROOK_TIME_MAX, BK_WM_IDLE);
    return 1;
  }
  const brook_ctx_t *c = &w->insts[d->from_pos];
  bk_wm_fold_add(f, c->wm, c->wm_idle);
  for (size_t s = 0; s < w->rt->n_workers; s++) {
    if (s == w->index)
      continue;
    const xin_t *in = &x->xin[(size_t)xi * w->rt->n_workers + s];
    bk_wm_fold_add(f, in->wm, in->wm_state);
  }
  return 1;
}

/* 1 if every worker sending to w has ended every exchange into node `pos`. */
static int inputs_ended(const bk_worker_t *w, size_t pos) {
  const bk_xchg_worker_t *x = w->xchg;
  const bk_node_t *node = w->insts[pos].node;
  for (size_t k = 0; k < node->n_inputs; k++) {
    int xi = x->in_x[x->in_off[pos] + k];
    if (xi < 0 || !receives(w, &x->defs[xi]))
      continue;
    for (size_t s = 0; s < w->rt->n_workers; s++)
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
    for (size_t xi = 0; xi < x->n_x; xi++) {
      if (x->defs[xi].from_pos != i)
        continue;
      bk_xchg_flush(w); /* its records and watermark first */
      x->sent[xi].ended = 1;
      if (send_control(w, (uint32_t)xi, XC_END, BROOK_TIME_MAX, BK_WM_ACTIVE) < 0)
        bk_runtime_fail(rt, BROOK_ERR_NOMEM, "runtime: out of memory in an exchange");
    }
  }
  bk_xchg_flush(w);
  /* A worker that finished would no longer pop its rings: it goes only once every sender has
   * ended every exchange it receives (a sender's last chunks always find room). */
  for (size_t xi = 0; xi < x->n_x; xi++)
    for (size_t s = 0; receives(w, &x->defs[xi]) && s < rt->n_workers; s++)
      if (s != w->index && !x->xin[xi * rt->n_workers + s].ended)
        return bk_runtime_status(rt) != BROOK_OK;
  return bk_runtime_status(rt) != BROOK_OK || !x->blocked;
}
