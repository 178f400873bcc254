/* The generator source: a user callback fills records, one batch at a time, written straight
 * into the source's output buffer (no copy). */
#include <string.h>

#include "core/alloc.h"
#include "core/hints.h"
#include "core/opts.h"
#include "runtime/fuse.h"
#include "runtime/runtime_impl.h"
#include "runtime/source_keyed.h"

typedef struct gen_cfg {
  brook_generator_fn fn;
  void *opaque;
  uint64_t limit; /* over all splits */
  size_t splits;
  int partitioned; /* by key: each split is a task (source_keyed.h) */
} gen_cfg_t;

/* This worker's splits: split0 + k * stride for k < n (runtime_impl.h, bk_src_t). */
typedef struct gen_split {
  uint64_t produced, limit;
  int done;
  int started; /* partitioned: its task was acquired */
  int end_due; /* partitioned: ended, its task to be released after this batch */
} gen_split_t;

typedef struct gen_state {
  gen_split_t *splits;
  size_t n, live, next;
  uint64_t produced; /* of the split being produced */
} gen_state_t;

void brook_generator_opts_init_size(brook_generator_opts_t *opts, size_t size) {
  brook_generator_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.splits = 1;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static size_t gen_split_count(const void *cfg) { return ((const gen_cfg_t *)cfg)->splits; }

static brook_err_t gen_create(bk_src_t *src) {
  const gen_cfg_t *cfg = src->cfg;
  gen_state_t *st = bk_calloc(&src->rt->alloc, 1, sizeof(*st));
  if (!st)
    return BROOK_ERR_NOMEM;
  st->n = st->live = (cfg->splits - src->split0 + src->split_stride - 1) / src->split_stride;
  if (!(st->splits = bk_calloc(&src->rt->alloc, st->n, sizeof(*st->splits)))) {
    bk_free(&src->rt->alloc, st);
    return BROOK_ERR_NOMEM;
  }
  for (size_t k = 0; k < st->n; k++) {
    size_t split = src->split0 + k * src->split_stride;
    st->splits[k].limit = cfg->limit / cfg->splits + (split < cfg->limit % cfg->splits);
    if (cfg->limit && !st->splits[k].limit) { /* fewer records than splits: nothing here */
      st->splits[k].done = 1;
      st->live--;
    }
  }
  src->impl = st;
  return BROOK_OK;
}

/* The split whose batch comes next (round robin over the live ones), as src->cur_split. */
static gen_split_t *gen_pick(bk_src_t *src, gen_state_t *st) {
  while (st->splits[st->next].done)
    st->next = (st->next + 1) % st->n;
  src->cur_split = st->next;
  st->next = (st->next + 1) % st->n;
  return &st->splits[src->cur_split];
}

/* The split produced its last record: the source ends with its last split. */
static brook_err_t gen_split_done(gen_state_t *st, gen_split_t *sp) {
  sp->done = 1;
  return --st->live ? BROOK_OK : BROOK_DONE;
}

static brook_err_t gen_start(bk_src_t *src) {
  src->ready = 1; /* always has data until it ends */
  return BROOK_OK;
}

static brook_err_t gen_fill(bk_src_t *src, const gen_cfg_t *cfg, gen_state_t *st, uint64_t limit);
static brook_err_t gen_fill_fused(bk_src_t *src, const gen_cfg_t *cfg, gen_state_t *st,
                                  uint64_t limit, size_t chain);

/* Partitioned by key: the split's task starts with its first batch, and the batch is verified
 * and moved into the task (source_keyed.h). Outside the fill loop: once per batch. */
static brook_err_t gen_keyed_start(bk_src_t *src, gen_split_t *sp) {
  if (sp->started)
    return BROOK_OK;
  sp->started = 1; /* a failed start fails the run: not retried */
  return bk_keyed_split_start(src, src->cur_split, brook_ctx_split(src->home));
}

/* After the batch: the task of a split that ended is released (source_keyed.h). */
static void gen_keyed_ends(bk_src_t *src, gen_state_t *st) {
  for (size_t k = 0; k < st->n; k++) {
    if (!st->splits[k].end_due)
      continue;
    st->splits[k].end_due = 0;
    bk_keyed_split_end(src, k, src->split0 + k * src->split_stride);
  }
}

static brook_err_t gen_keyed_batch(bk_src_t *src, brook_err_t err) {
  brook_err_t verr = bk_keyed_batch(src, brook_ctx_split(src->home), NULL, NULL);
  return verr < 0 ? verr : err;
}

static brook_err_t gen_produce(bk_src_t *src) {
  const gen_cfg_t *cfg = src->cfg;
  gen_state_t *st = src->impl;
  if (!st->live)
    return BROOK_DONE;
  gen_split_t *sp = gen_pick(src, st);
  brook_err_t err;
  if (cfg->partitioned && (err = gen_keyed_start(src, sp)) < 0)
    return err;
  st->produced = sp->produced;
  /* A partitioned source's batch is verified and moved into its task after the fill
   * (source_keyed.h): it is filled first, never fused with the line it feeds. */
  size_t chain = cfg->partitioned ? 0 : bk_fuse_source_chain(src);
  err = chain ? gen_fill_fused(src, cfg, st, sp->limit, chain) : gen_fill(src, cfg, st, sp->limit);
  sp->produced = st->produced;
  if (cfg->partitioned) {
    err = gen_keyed_batch(src, err);
    sp->end_due = err == BROOK_DONE;
  }
  return err == BROOK_DONE ? gen_split_done(st, sp) : err;
}

/* The records the current split may still make in this batch: at most the port's capacity,
 * and up to `limit` (0: none). */
static size_t gen_room(const bk_port_t *port, const gen_state_t *st, uint64_t limit) {
  size_t max = port->cap - port->n;
  if (limit && limit - st->produced < max)
    max = (size_t)(limit - st->produced);
  return max;
}

/* The end of a batch of the current split: an emit from the callback fails the run (checked
 * once per batch, not per record); the split ends at its limit. */
static brook_err_t gen_batch_end(bk_src_t *src, const gen_state_t *st, uint64_t limit,
                                 brook_err_t err) {
  brook_ctx_t *ctx = src->ctx;
  ctx->no_emit = 0;
  if (ctx->emit_misused) {
    ctx->emit_misused = 0;
    if (err >= 0)
      err = brook_ctx_fail_record(ctx, NULL, BROOK_ERR_STATE,
                                  "generator callback called brook_emit (it must fill *out)");
  }
  if (err == BROOK_OK && limit && st->produced >= limit)
    return BROOK_DONE;
  return err;
}

/* One batch of the current split made record by record in front of the fused chain its
 * records go to (runtime/fuse.h): each record goes through the chain before the next is
 * made, so the batch is not filled and then walked again. */
static brook_err_t gen_fill_fused(bk_src_t *src, const gen_cfg_t *cfg, gen_state_t *st,
                                  uint64_t limit, size_t chain) {
  bk_fuse_gen_t gen = {cfg->fn, cfg->opaque, src->ctx};
  size_t made = 0;
  src->ctx->no_emit = 1;
  brook_err_t err =
      bk_fuse_generate(src, chain, &gen, gen_room(bk_src_port(src), st, limit), &made);
  src->w->stats.records_in += made;
  st->produced += made;
  return gen_batch_end(src, st, limit, err);
}

/* Fills the port with one batch of the current split, at most up to `limit` (0: none). The
 * count and the buffer stay in registers across the callbacks: they cannot change the port,
 * since emitting from a generator callback is refused (it would append to the very buffer
 * being filled); that misuse is a bug of the callback, which fails the run (checked once per
 * batch, not per record). */
static brook_err_t gen_fill(bk_src_t *src, const gen_cfg_t *cfg, gen_state_t *st, uint64_t limit) {
  bk_port_t *port = bk_src_port(src);
  brook_generator_fn fn = cfg->fn;
  void *opaque = cfg->opaque;
  brook_ctx_t *ctx = src->ctx;
  brook_record_t *rec = port->buf + port->n, *start = rec, *end = rec + gen_room(port, st, limit);
  brook_err_t err = BROOK_OK;
  ctx->no_emit = 1;
  while (rec < end) {
    memset(rec, 0, sizeof(*rec)); /* the callback's contract: *out starts zeroed */
    err = fn(rec, ctx, opaque);
    if (BK_LIKELY(err == BROOK_OK)) {
      rec++;
      continue;
    }
    if (err == BROOK_DONE)
      break;
    if (err > 0) { /* a positive code other than DONE: a record too */
      rec++;
      err = BROOK_OK;
      continue;
    }
    if ((err = brook_ctx_fail_record(ctx, rec, err, "generator callback failed")) < 0)
      break; /* the records before it still go on */
    /* skipped or routed: not part of the batch */
  }
  port->n = (size_t)(rec - port->buf);
  st->produced += (uint64_t)(rec - start);
  return gen_batch_end(src, st, limit, err);
}

static void gen_batch_done(bk_src_t *src) {
  if (((const gen_cfg_t *)src->cfg)->partitioned)
    gen_keyed_ends(src, src->impl);
}

static void gen_stop(bk_src_t *src) { src->ended = 1; }

static void gen_close(bk_src_t *src) { (void)src; }

static void gen_destroy(bk_src_t *src) {
  gen_state_t *st = src->impl;
  bk_free(&src->rt->alloc, st->splits);
  bk_free(&src->rt->alloc, st);
}

static const bk_source_vt_t gen_vt = {
    .create = gen_create,
    .start = gen_start,
    .produce = gen_produce,
    .batch_done = gen_batch_done,
    .stop = gen_stop,
    .close = gen_close,
    .destroy = gen_destroy,
    .split_count = gen_split_count,
};

static void gen_cfg_free(void *cfg, const brook_allocator_t *a) { bk_free(a, cfg); }

static const bk_source_type_t gen_type = {"generator", &gen_vt, gen_cfg_free, 0, NULL};
/* partitioned_by_key: a partitioned source, like Kafka's (plan/placement.c). */
static const bk_source_type_t gen_keyed_type = {"generator", &gen_vt, gen_cfg_free, 1, NULL};

static const bk_opts_version_t generator_versions[] = {
    BK_OPTS_VERSION(brook_generator_opts_t, limit),
    BK_OPTS_VERSION(brook_generator_opts_t, splits),             /* issue 12 */
    BK_OPTS_VERSION(brook_generator_opts_t, partitioned_by_key), /* issue 12: keyed splits */
};
static const bk_opts_type_t generator_opts_type =
    BK_OPTS_TYPE(brook_generator_opts_t, generator_versions);

brook_stream_t *brook_source_generator(brook_topology_t *t, const char *name, brook_generator_fn fn,
                                       void *opaque, const brook_generator_opts_t *opts) {
  if (!t)
    return NULL;
  brook_generator_opts_t o;
  brook_generator_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &generator_opts_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_generator: %s", why.text);
    return NULL;
  }
  if (!fn) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_generator: callback is NULL");
    return NULL;
  }
  if (o.splits == 0 || o.splits > 65536) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_generator: splits must be 1..65536, got %zu",
                     o.splits);
    return NULL;
  }
  gen_cfg_t *cfg = bk_malloc(&t->alloc, sizeof(*cfg));
  if (!cfg) {
    bk_topology_fail(t, BROOK_ERR_NOMEM, "source_generator: out of memory");
    return NULL;
  }
  *cfg = (gen_cfg_t){fn, opaque, o.limit, o.splits, o.partitioned_by_key != 0};
  brook_stream_t *out =
      bk_topology_add_source(t, cfg->partitioned ? &gen_keyed_type : &gen_type, cfg, name);
  if (out) /* the plan's task count after a key_by is the largest upstream split count */
    out->node->splits = (uint32_t)o.splits;
  return out;
}
