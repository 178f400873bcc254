/* The push source: application threads push copies of records into a bounded queue of
 * chunks; the loop thread takes one chunk per batch and passes its records downstream
 * without copying. The bound (records and bytes) is the credit: a push beyond it is refused
 * with BROOK_ERR_FULL, so a fast producer cannot grow memory without limit.
 *
 * Locking: `mu` guards the queue and counters. Producers hold it for one copy; the loop
 * thread holds it once per batch (take a chunk, give it back). */
#include <stdalign.h>
#include <string.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "runtime/record_pack.h"
#include "runtime/runtime_impl.h"
#include "runtime/source_keyed.h"

#define PUSH_CHUNK_BYTES (64 * 1024)
#define PUSH_FREE_CHUNKS 4

typedef struct push_chunk push_chunk_t;
struct push_chunk {
  push_chunk_t *next;
  size_t n, cap;        /* records */
  size_t used, size;    /* bytes in data */
  size_t accounted;     /* bytes counted against max_bytes */
  brook_record_t *recs; /* cap records, inside this allocation */
  unsigned char *data;  /* size bytes, inside this allocation */
};

typedef struct push_cfg {
  brook_push_opts_t opts;
} push_cfg_t;

struct brook_push_source {
  bk_src_t *src;
  brook_runtime_t *rt;
  uv_mutex_t mu;
  uv_cond_t cv;
  push_chunk_t *head, *tail; /* queued, oldest first; producers append to tail */
  push_chunk_t *free_list;
  size_t n_free;
  push_chunk_t *processing;  /* loop thread only */
  size_t q_records, q_bytes; /* queued + processing */
  size_t q_alloc;            /* bytes of the chunks holding them (bounded like q_bytes) */
  size_t max_records, max_bytes;
  size_t chunk_records;
  int ended;   /* brook_push_end */
  int closed;  /* runtime stopping or done */
  int refused; /* a push was refused since credit was last signalled */
  int waiters;
  int task_started; /* partitioned by key: its task was acquired (loop thread only) */
  int task_ended;   /* ... and released once the split ended and was drained */
};

/* A worker's instance of a push source: its splits (split0 + k * stride), one queue each. */
typedef struct push_set {
  brook_push_source_t **h;
  size_t n;
  size_t next;                    /* round robin */
  brook_push_source_t *producing; /* the split whose chunk is being processed */
  int ends_due;                   /* partitioned: a split ended, its task to be released */
} push_set_t;

void brook_push_opts_init_size(brook_push_opts_t *opts, size_t size) {
  brook_push_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.max_records = 65536;
  d.max_bytes = 16u << 20;
  d.splits = 1;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

/* Bytes for records' data in a new chunk: enough for a batch of ~64-byte records, at most
 * PUSH_CHUNK_BYTES, or a whole large record. */
static size_t chunk_data_size(const brook_push_source_t *p, size_t need) {
  size_t size = p->chunk_records * 64;
  if (size > PUSH_CHUNK_BYTES)
    size = PUSH_CHUNK_BYTES;
  return need > size ? need : size;
}

/* What a chunk with `data` bytes of record data costs in memory. */
static size_t chunk_alloc_size(const brook_push_source_t *p, size_t data) {
  return bk_align8(sizeof(push_chunk_t)) + p->chunk_records * sizeof(brook_record_t) +
         chunk_data_size(p, data);
}

static push_chunk_t *chunk_get(brook_push_source_t *p, size_t need) {
  if (p->free_list && p->free_list->size >= need) {
    push_chunk_t *c = p->free_list;
    p->free_list = c->next;
    p->n_free--;
    c->next = NULL;
    c->n = c->used = c->accounted = 0;
    return c;
  }
  size_t size = chunk_data_size(p, need);
  size_t head = bk_align8(sizeof(push_chunk_t));
  size_t recs = p->chunk_records * sizeof(brook_record_t);
  push_chunk_t *c = bk_malloc(&p->rt->alloc, head + recs + size);
  if (!c)
    return NULL;
  memset(c, 0, sizeof(*c));
  c->cap = p->chunk_records;
  c->size = size;
  c->recs = (brook_record_t *)((unsigned char *)c + head);
  c->data = (unsigned char *)c->recs + recs;
  return c;
}

static void chunk_put(brook_push_source_t *p, push_chunk_t *c) {
  if (p->n_free < PUSH_FREE_CHUNKS && c->size == chunk_data_size(p, 0)) {
    c->next = p->free_list;
    p->free_list = c;
    p->n_free++;
  } else {
    bk_free(&p->rt->alloc, c);
  }
}

/* Copies rec into chunk c, which has room for it. */
static void chunk_append(push_chunk_t *c, const brook_record_t *rec, size_t need) {
  bk_record_pack(&c->recs[c->n++], rec, c->data, &c->used);
  c->accounted += need;
}

static int record_valid(const brook_record_t *rec) {
  if ((!rec->key && rec->key_len) || (!rec->value && rec->value_len) ||
      (!rec->headers && rec->header_count))
    return 0;
  for (size_t i = 0; i < rec->header_count; i++)
    if (!rec->headers[i].name || (!rec->headers[i].value && rec->headers[i].value_len))
      return 0;
  return 1;
}

/* Tries to queue rec; caller holds mu. */
static brook_err_t push_locked(brook_push_source_t *p, const brook_record_t *rec, size_t need,
                               int *wake) {
  if (p->ended || p->closed || atomic_load(&p->rt->stop_flag))
    return BROOK_ERR_STOPPED; /* refused from the moment brook_runtime_stop returns */
  if (p->q_records + 1 > p->max_records || p->q_bytes + need > p->max_bytes) {
    p->refused = 1;
    return BROOK_ERR_FULL;
  }
  push_chunk_t *c = p->tail;
  if (!c || c->n == c->cap || c->size - c->used < need) {
    /* The chunks themselves count against max_bytes, so small batches of tiny records cannot
     * hold more memory than the bound (one chunk is always allowed). */
    if (p->q_alloc && p->q_alloc + chunk_alloc_size(p, need) > p->max_bytes) {
      p->refused = 1;
      return BROOK_ERR_FULL;
    }
    if (!(c = chunk_get(p, need)))
      return BROOK_ERR_NOMEM;
    p->q_alloc += chunk_alloc_size(p, c->size);
    if (p->tail)
      p->tail->next = c;
    else
      p->head = c;
    p->tail = c;
  }
  *wake = p->head == c && c->n == 0; /* the loop may be idle: tell it */
  chunk_append(c, rec, need);
  p->q_records++;
  p->q_bytes += need;
  return BROOK_OK;
}

static brook_err_t push_check(brook_push_source_t *p, const brook_record_t *rec, size_t *need) {
  if (!p || !rec || !record_valid(rec))
    return BROOK_ERR_INVALID_ARG;
  *need = bk_record_packed_size(rec);
  if (*need > p->max_bytes)
    return BROOK_ERR_TOO_LARGE;
  return BROOK_OK;
}

brook_err_t brook_push(brook_push_source_t *p, const brook_record_t *rec) {
  size_t need;
  brook_err_t err = push_check(p, rec, &need);
  if (err)
    return err;
  int wake = 0;
  uv_mutex_lock(&p->mu);
  err = push_locked(p, rec, need, &wake);
  if (wake) /* under the lock: the loop cannot finish and free meanwhile */
    bk_worker_wake(p->src->w);
  uv_mutex_unlock(&p->mu);
  return err;
}

brook_err_t brook_push_wait(brook_push_source_t *p, const brook_record_t *rec, int64_t timeout_ms) {
  size_t need;
  brook_err_t err = push_check(p, rec, &need);
  if (err)
    return err;
  /* A deadline past what uint64_t nanoseconds hold (about 584 years) is no deadline: without
   * this check the multiplication wrapped, and INT64_MAX meant "time out at once". */
  uint64_t start = uv_hrtime();
  int forever = timeout_ms < 0 || (uint64_t)timeout_ms > (UINT64_MAX - start) / 1000000u;
  uint64_t deadline = forever ? 0 : start + (uint64_t)timeout_ms * 1000000u;
  int wake = 0;
  uv_mutex_lock(&p->mu);
  while ((err = push_locked(p, rec, need, &wake)) == BROOK_ERR_FULL) {
    p->waiters++;
    if (forever) {
      uv_cond_wait(&p->cv, &p->mu);
    } else {
      uint64_t now = uv_hrtime();
      if (now >= deadline || uv_cond_timedwait(&p->cv, &p->mu, deadline - now) != 0) {
        p->waiters--;
        err = BROOK_ERR_TIMEOUT;
        break;
      }
    }
    p->waiters--;
  }
  if (wake)
    bk_worker_wake(p->src->w);
  uv_mutex_unlock(&p->mu);
  return err;
}

size_t brook_push_credit(brook_push_source_t *p) {
  if (!p)
    return 0;
  uv_mutex_lock(&p->mu);
  size_t credit = 0;
  if (!p->ended && !p->closed && !atomic_load(&p->rt->stop_flag) && p->q_bytes < p->max_bytes)
    credit = p->max_records - p->q_records;
  uv_mutex_unlock(&p->mu);
  return credit;
}

brook_err_t brook_push_end(brook_push_source_t *p) {
  if (!p)
    return BROOK_ERR_INVALID_ARG;
  uv_mutex_lock(&p->mu);
  p->ended = 1;
  uv_cond_broadcast(&p->cv);
  bk_worker_wake(p->src->w);
  uv_mutex_unlock(&p->mu);
  return BROOK_OK;
}

/* ---- the loop side ---- */

static void handle_free(const brook_allocator_t *a, brook_push_source_t *p);

static brook_push_source_t *handle_new(bk_src_t *src) {
  const push_cfg_t *cfg = src->cfg;
  brook_push_source_t *p = bk_calloc(&src->rt->alloc, 1, sizeof(*p));
  if (!p)
    return NULL;
  p->src = src;
  p->rt = src->rt;
  p->max_records = cfg->opts.max_records;
  p->max_bytes = cfg->opts.max_bytes;
  p->chunk_records = src->rt->opts.batch_size;
  if (uv_mutex_init(&p->mu)) {
    bk_free(&src->rt->alloc, p);
    return NULL;
  }
  if (uv_cond_init(&p->cv)) {
    uv_mutex_destroy(&p->mu);
    bk_free(&src->rt->alloc, p);
    return NULL;
  }
  return p;
}

static size_t push_split_count(const void *cfg) { return ((const push_cfg_t *)cfg)->opts.splits; }

static brook_err_t push_create(bk_src_t *src) {
  const push_cfg_t *cfg = src->cfg;
  const brook_allocator_t *a = &src->rt->alloc;
  push_set_t *set = bk_calloc(a, 1, sizeof(*set));
  if (!set)
    return BROOK_ERR_NOMEM;
  size_t n = (cfg->opts.splits - src->split0 + src->split_stride - 1) / src->split_stride;
  if (!(set->h = bk_calloc(a, n, sizeof(*set->h)))) {
    bk_free(a, set);
    return BROOK_ERR_NOMEM;
  }
  for (; set->n < n; set->n++) {
    if (!(set->h[set->n] = handle_new(src))) {
      for (size_t k = 0; k < set->n; k++)
        handle_free(a, set->h[k]);
      bk_free(a, set->h);
      bk_free(a, set);
      return BROOK_ERR_NOMEM;
    }
  }
  src->impl = set;
  return BROOK_OK;
}

static brook_err_t push_start(bk_src_t *src) {
  (void)src;
  return BROOK_OK;
}

/* A split with something to do: queued records, or its end to report. */
static int handle_ready(brook_push_source_t *p) {
  uv_mutex_lock(&p->mu);
  int ready = p->head || p->ended || p->closed;
  uv_mutex_unlock(&p->mu);
  return ready;
}

static void push_on_wake(bk_src_t *src) {
  push_set_t *set = src->impl;
  for (size_t k = 0; k < set->n; k++)
    if (handle_ready(set->h[k])) {
      bk_sched_ready(src);
      return;
    }
}

/* Takes the oldest chunk of split p; *finished = none and the split has ended. */
static push_chunk_t *handle_take(brook_push_source_t *p, int *finished) {
  uv_mutex_lock(&p->mu);
  push_chunk_t *c = p->head;
  if (c) {
    p->head = c->next;
    if (!p->head)
      p->tail = NULL;
    c->next = NULL;
  }
  *finished = !c && (p->ended || p->closed);
  uv_mutex_unlock(&p->mu);
  return c;
}

/* Partitioned by key: the split's task starts with its first chunk, and the chunk's records
 * are verified (compacted in place) and delivered in the task (source_keyed.h). */
static brook_err_t push_keyed_chunk(bk_src_t *src, brook_push_source_t *p, brook_record_t *recs,
                                    size_t *n) {
  size_t split = src->split0 + src->cur_split * src->split_stride;
  if (!p->task_started) {
    p->task_started = 1; /* a failed start fails the run: not retried */
    brook_err_t err = bk_keyed_split_start(src, src->cur_split, split);
    if (err < 0) {
      *n = 0;
      return err;
    }
  }
  return bk_keyed_batch(src, split, recs, n);
}

static brook_err_t push_produce(bk_src_t *src) {
  push_set_t *set = src->impl;
  size_t finished = 0;
  for (size_t i = 0; i < set->n; i++) {
    size_t k = (set->next + i) % set->n;
    brook_push_source_t *p = set->h[k];
    int done;
    push_chunk_t *c = handle_take(p, &done);
    finished += (size_t)done;
    set->ends_due |= done && p->task_started && !p->task_ended;
    if (!c)
      continue;
    set->next = (k + 1) % set->n;
    set->producing = p;
    p->processing = c;
    src->cur_split = k;
    size_t n = c->n; /* the chunk's count stays: batch_done returns its credit */
    brook_err_t err = BROOK_OK;
    if (((const push_cfg_t *)src->cfg)->opts.partitioned_by_key)
      err = push_keyed_chunk(src, p, c->recs, &n);
    brook_err_t eerr = n ? bk_src_emit_array(src, c->recs, n) : BROOK_OK;
    return err < 0 ? err : eerr;
  }
  if (finished == set->n)
    return BROOK_DONE; /* every split ended and is drained */
  src->ready = 0;
  return BROOK_OK;
}

/* After the batch: the tasks of splits that ended and were drained are released
 * (source_keyed.h). */
static void push_keyed_ends(bk_src_t *src, push_set_t *set) {
  set->ends_due = 0;
  for (size_t k = 0; k < set->n; k++) {
    brook_push_source_t *p = set->h[k];
    int done;
    if (!p->task_started || p->task_ended)
      continue;
    uv_mutex_lock(&p->mu);
    done = !p->head && (p->ended || p->closed);
    uv_mutex_unlock(&p->mu);
    if (!done)
      continue;
    p->task_ended = 1;
    bk_keyed_split_end(src, k, src->split0 + k * src->split_stride);
  }
}

static void push_batch_done(bk_src_t *src) {
  push_set_t *set = src->impl;
  if (set->ends_due)
    push_keyed_ends(src, set);
  brook_push_source_t *p = set->producing;
  push_chunk_t *c = p ? p->processing : NULL;
  if (!c)
    return;
  p->processing = NULL;
  set->producing = NULL;
  uv_mutex_lock(&p->mu);
  p->q_records -= c->n;
  p->q_bytes -= c->accounted;
  p->q_alloc -= chunk_alloc_size(p, c->size);
  chunk_put(p, c);
  int credit = p->refused;
  p->refused = 0;
  if (p->waiters)
    uv_cond_broadcast(&p->cv);
  uv_mutex_unlock(&p->mu);
  src->ready = 0;
  for (size_t k = 0; k < set->n && !src->ready; k++)
    src->ready = handle_ready(set->h[k]);
  const push_cfg_t *cfg = src->cfg;
  if (credit && cfg->opts.on_credit)
    cfg->opts.on_credit(p, cfg->opts.on_credit_opaque);
}

static void push_close_for_pushes(brook_push_source_t *p) {
  uv_mutex_lock(&p->mu);
  p->closed = 1;
  uv_cond_broadcast(&p->cv);
  uv_mutex_unlock(&p->mu);
}

static void push_close(bk_src_t *src) {
  push_set_t *set = src->impl;
  for (size_t k = 0; k < set->n; k++)
    push_close_for_pushes(set->h[k]);
}

static void push_stop(bk_src_t *src) {
  push_close(src);
  bk_sched_ready(src); /* drain what is queued, then end */
}

static void handle_free(const brook_allocator_t *a, brook_push_source_t *p) {
  push_chunk_t *lists[] = {p->head, p->free_list, p->processing};
  for (size_t i = 0; i < 3; i++) {
    while (lists[i]) {
      push_chunk_t *c = lists[i];
      lists[i] = c->next;
      bk_free(a, c);
    }
  }
  uv_mutex_lock(&p->mu); /* a producer still inside a push call leaves it first */
  uv_mutex_unlock(&p->mu);
  uv_cond_destroy(&p->cv);
  uv_mutex_destroy(&p->mu);
  bk_free(a, p);
}

static void push_destroy(bk_src_t *src) {
  push_set_t *set = src->impl;
  const brook_allocator_t *a = &src->rt->alloc;
  for (size_t k = 0; k < set->n; k++)
    handle_free(a, set->h[k]);
  bk_free(a, set->h);
  bk_free(a, set);
}

static const bk_source_vt_t push_vt = {
    .create = push_create,
    .start = push_start,
    .on_wake = push_on_wake,
    .produce = push_produce,
    .batch_done = push_batch_done,
    .stop = push_stop,
    .close = push_close,
    .destroy = push_destroy,
    .split_count = push_split_count,
};

static void push_cfg_free(void *cfg, const brook_allocator_t *a) { bk_free(a, cfg); }

static const bk_source_type_t push_type = {"push", &push_vt, push_cfg_free, 0, NULL};
/* partitioned_by_key: a partitioned source, like Kafka's (plan/placement.c). */
static const bk_source_type_t push_keyed_type = {"push", &push_vt, push_cfg_free, 1, NULL};

static const bk_opts_version_t push_versions[] = {
    BK_OPTS_VERSION(brook_push_opts_t, on_credit_opaque),
    BK_OPTS_VERSION(brook_push_opts_t, splits),             /* issue 12 */
    BK_OPTS_VERSION(brook_push_opts_t, partitioned_by_key), /* issue 12: keyed splits */
};
static const bk_opts_type_t push_opts_type = BK_OPTS_TYPE(brook_push_opts_t, push_versions);

brook_stream_t *brook_source_push(brook_topology_t *t, const char *name,
                                  const brook_push_opts_t *opts) {
  if (!t)
    return NULL;
  brook_push_opts_t o;
  brook_push_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &push_opts_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_push: %s", why.text);
    return NULL;
  }
  if (!name || !*name) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_push: a name is required");
    return NULL;
  }
  if (o.splits == 0 || o.splits > 65536) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_push '%s': splits must be 1..65536, got %zu",
                     name, o.splits);
    return NULL;
  }
  if (o.max_records == 0 || o.max_bytes == 0) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_push '%s': %s must be > 0", name,
                     o.max_records == 0 ? "max_records" : "max_bytes");
    return NULL;
  }
  push_cfg_t *cfg = bk_malloc(&t->alloc, sizeof(*cfg));
  if (!cfg) {
    bk_topology_fail(t, BROOK_ERR_NOMEM, "source_push: out of memory");
    return NULL;
  }
  cfg->opts = o;
  brook_stream_t *out =
      bk_topology_add_source(t, o.partitioned_by_key ? &push_keyed_type : &push_type, cfg, name);
  if (out) /* the plan's task count after a key_by is the largest upstream split count */
    out->node->splits = (uint32_t)(o.splits ? o.splits : 1);
  return out;
}

brook_push_source_t *brook_runtime_push_source_split(brook_runtime_t *rt, const char *name,
                                                     size_t split) {
  if (!rt || !name)
    return NULL;
  bk_worker_t *w = &rt->workers[split % rt->n_workers];
  for (size_t i = 0; i < w->n_sources; i++) {
    bk_src_t *src = &w->sources[i];
    const bk_source_type_t *type = src->ctx->node->source_type;
    if ((type != &push_type && type != &push_keyed_type) || strcmp(src->ctx->node->name, name) != 0)
      continue;
    if (split >= src->n_splits)
      return NULL;
    push_set_t *set = src->impl;
    return set->h[split / rt->n_workers];
  }
  return NULL;
}

brook_push_source_t *brook_runtime_push_source(brook_runtime_t *rt, const char *name) {
  return brook_runtime_push_source_split(rt, name, 0);
}
