/* Timers as state. An operator instance's pending timers are kept in a store of their own
 * (one per instance), so they are snapshotted, restored and (with a changelog) logged like the
 * rest of its state, and leave and come back with its task. The in-memory timer queues
 * (time/timer_queue.h, one per domain) are the index that fires them, rebuilt from the store
 * on restore.
 *
 * Two ways to keep the store: by default it is brought up to date from the queues whenever it
 * is read (bk_timers_sync, before a snapshot), so setting and firing timers costs what it did
 * before timers were state (writing each change through measured +40% instructions on
 * bench_windows sliding, which sets a timer per record). After bk_timers_keep_synced (for a
 * changelog listener or a durable backend, which must see every change) each new, cancelled
 * and fired timer is written through.
 *
 * Store key: time (8 bytes, brook_store_time_encode: byte order is time order) || domain (1
 * byte) || the timer's key || tag (8 bytes, big-endian); the value is empty. The store is an
 * ordered one, so brook_store_iter_time_prefixed finds the timers due first (the layout the
 * store interface gives timer stores).
 * Loop thread (or the test driver's thread). */
#include "runtime/timers.h"

#include <assert.h>
#include <string.h>

#include "core/alloc.h"
#include "runtime/runtime_impl.h"
#include "state/store.h"
#include "state/task_db.h"
#include "time/timer_queue.h"

#define TK_FIXED 17 /* domain + time + tag */

struct bk_timer_state {
  brook_store_t *store;
  unsigned char *kbuf; /* the encoded store key of the timer at hand */
  size_t kcap;
  int write_through; /* every change goes to the store (bk_timers_keep_synced) */
};

static void put_be64(unsigned char *p, uint64_t v) {
  v = __builtin_bswap64(v); /* little-endian hosts; brook requires one (core/hash.h) */
  memcpy(p, &v, 8);
}

static uint64_t get_be64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

/* Makes ts->kbuf hold at least `need` bytes. 0, or -1 out of memory. */
static int kbuf_fit(const brook_allocator_t *a, bk_timer_state_t *ts, size_t need) {
  if (need <= ts->kcap)
    return 0;
  size_t cap = need < 64 ? 64 : need * 2;
  unsigned char *b = bk_realloc(a, ts->kbuf, cap);
  if (!b)
    return -1;
  ts->kbuf = b;
  ts->kcap = cap;
  return 0;
}

/* Encodes timer `t` into ts->kbuf (which must fit it); returns the length. */
static size_t encode(bk_timer_state_t *ts, const brook_timer_t *t) {
  unsigned char *p = ts->kbuf;
  assert(TK_FIXED + t->key_len <= ts->kcap);
  brook_store_time_encode(t->time, p);
  p[8] = (unsigned char)t->domain;
  if (t->key_len)
    memcpy(p + 9, t->key, t->key_len);
  put_be64(p + 9 + t->key_len, t->tag);
  return TK_FIXED + t->key_len;
}

int bk_timer_key_decode(const void *skey, size_t len, brook_timer_t *out) {
  const unsigned char *p = skey;
  if (len < TK_FIXED || p[8] > BROOK_PROCESSING_TIME)
    return 0;
  out->domain = (brook_time_domain_t)p[8];
  out->time = (brook_time_t)(get_be64(p) ^ (UINT64_C(1) << 63));
  out->key_len = len - TK_FIXED;
  out->key = out->key_len ? p + 9 : NULL;
  out->tag = get_be64(p + 9 + out->key_len);
  return 1;
}

static brook_err_t state_get(brook_ctx_t *ctx, bk_timer_state_t **out) {
  brook_runtime_t *rt = ctx->rt;
  if (!ctx->timer_state) {
    bk_timer_state_t *ts = bk_calloc(&rt->alloc, 1, sizeof(*ts));
    if (!ts)
      return BROOK_ERR_NOMEM;
    brook_store_opts_t want, so; /* ordered: a range scan by domain || time finds the due ones */
    brook_store_opts_init(&want);
    want.ordered = 1;
    char qname[BK_STATE_NAME_MAX]; /* with state on disk: in the task's database */
    brook_err_t err =
        bk_state_store_opts(ctx, BK_TIMER_STORE_NAME, &want, &so, qname, sizeof(qname), NULL);
    if (!err)
      err = bk_store_create(&rt->alloc, &so, qname, &ts->store, NULL);
    if (err < 0) {
      bk_free(&rt->alloc, ts);
      return err;
    }
    ctx->timer_state = ts;
  }
  *out = ctx->timer_state;
  return BROOK_OK;
}

static brook_err_t queue_get(brook_ctx_t *ctx, int domain, bk_timerq_t **out) {
  if (!ctx->timers[domain]) {
    bk_timerq_t *q = bk_malloc(&ctx->rt->alloc, sizeof(*q));
    if (!q)
      return BROOK_ERR_NOMEM;
    bk_timerq_init(q, &ctx->rt->alloc);
    ctx->timers[domain] = q;
  }
  *out = ctx->timers[domain];
  return BROOK_OK;
}

brook_store_t *bk_timers_store(const brook_ctx_t *ctx) {
  return ctx->timer_state ? ctx->timer_state->store : NULL;
}

/* Write-through: removes a timer the queue no longer holds from the store. The key buffer
 * already fits it (sized when the timer was written or the queues rebuilt), so this cannot
 * fail for memory. */
static void forget(brook_ctx_t *ctx, const brook_timer_t *t) {
  bk_timer_state_t *ts = ctx->timer_state;
  size_t n = encode(ts, t);
  brook_err_t err = brook_store_delete(ts->store, ts->kbuf, n);
  assert(err != BROOK_ERR_NOT_FOUND); /* the store holds every queued timer */
  (void)err;                          /* a listener's failure: the deletion itself is done */
}

int bk_timer_pop(brook_ctx_t *ctx, brook_time_domain_t domain, brook_time_t upto,
                 brook_timer_t *out) {
  bk_timerq_t *q = ctx->timers[domain];
  if (!q || !bk_timerq_pop(q, upto, out))
    return 0;
  out->domain = domain;
  if (ctx->timer_state && ctx->timer_state->write_through)
    forget(ctx, out);
  return 1;
}

brook_err_t bk_timers_sync(brook_ctx_t *ctx) {
  if (ctx->timer_state && ctx->timer_state->write_through)
    return BROOK_OK;
  if (!ctx->timers[0] && !ctx->timers[1] && !ctx->timer_state)
    return BROOK_OK; /* never used: no store */
  bk_timer_state_t *ts;
  brook_err_t err = state_get(ctx, &ts);
  if (err < 0)
    return err;
  (void)bk_store_empty(ts->store);
  for (int d = 0; d < 2 && err >= 0; d++) {
    const bk_timerq_t *q = ctx->timers[d];
    for (size_t i = 0; q && i < bk_timerq_count(q) && err >= 0; i++) {
      brook_timer_t t;
      bk_timerq_at(q, i, &t);
      t.domain = (brook_time_domain_t)d;
      if (kbuf_fit(&ctx->rt->alloc, ts, TK_FIXED + t.key_len) < 0)
        err = BROOK_ERR_NOMEM;
      else
        err = brook_store_put(ts->store, ts->kbuf, encode(ts, &t), NULL, 0);
    }
  }
  if (err < 0)
    (void)bk_store_empty(ts->store);
  return err;
}

brook_err_t bk_timers_keep_synced(brook_ctx_t *ctx) {
  bk_timer_state_t *ts;
  brook_err_t err = state_get(ctx, &ts);
  if (err >= 0 && (err = bk_timers_sync(ctx)) >= 0)
    ts->write_through = 1;
  return err;
}

brook_err_t bk_timers_rebuild(brook_ctx_t *ctx) {
  brook_runtime_t *rt = ctx->rt;
  bk_timerq_t fresh[2];
  bk_timerq_init(&fresh[0], &rt->alloc);
  bk_timerq_init(&fresh[1], &rt->alloc);
  bk_timer_state_t *ts = ctx->timer_state;
  brook_store_iter_t *it = NULL;
  brook_err_t err = ts ? brook_store_iter_all(ts->store, &it) : BROOK_OK;
  brook_store_entry_t e;
  while (it && err >= 0 && brook_store_iter_next(it, &e)) {
    brook_timer_t t;
    if (!bk_timer_key_decode(e.key, e.key_len, &t) || e.value_len)
      err = BROOK_ERR_CORRUPT;
    else if ((err = bk_timerq_add(&fresh[t.domain], t.time, t.key, t.key_len, t.tag)) >= 0 &&
             kbuf_fit(&rt->alloc, ts, e.key_len) < 0) /* forget() must not allocate */
      err = BROOK_ERR_NOMEM;
  }
  brook_err_t cerr = brook_store_iter_close(it); /* a read error ends the iteration */
  if (err >= 0)
    err = cerr;
  for (int d = 0; d < 2 && err >= 0; d++) {
    bk_timerq_t *q;
    if (fresh[d].n)
      err = queue_get(ctx, d, &q);
  }
  if (err < 0) {
    bk_timerq_free(&fresh[0]);
    bk_timerq_free(&fresh[1]);
    return err;
  }
  for (int d = 0; d < 2; d++) { /* cannot fail from here on */
    if (!ctx->timers[d]) {
      bk_timerq_free(&fresh[d]);
      continue;
    }
    bk_timerq_free(ctx->timers[d]);
    *ctx->timers[d] = fresh[d];
  }
  return BROOK_OK;
}

brook_err_t bk_timers_reopen(brook_ctx_t *ctx) {
  if (!ctx->task_db || ctx->timer_state)
    return BROOK_OK;
  brook_store_opts_t want, so;
  brook_store_opts_init(&want);
  want.ordered = 1;
  char qname[BK_STATE_NAME_MAX];
  brook_err_t err =
      bk_state_store_opts(ctx, BK_TIMER_STORE_NAME, &want, &so, qname, sizeof(qname), NULL);
  if (err < 0 || !bk_task_db_has_store(ctx->task_db, qname))
    return err < 0 ? err : BROOK_OK;
  bk_timer_state_t *ts;
  if ((err = state_get(ctx, &ts)) < 0 || (err = bk_timers_rebuild(ctx)) < 0)
    return err;
  ts->write_through = 1; /* the store has them all: every change from now on goes there */
  return BROOK_OK;
}

brook_err_t bk_timers_snapshot(brook_ctx_t *ctx, brook_write_fn write, void *opaque) {
  brook_err_t err = bk_timers_sync(ctx);
  bk_timer_state_t *ts;
  if (err >= 0 && (err = state_get(ctx, &ts)) >= 0)
    err = brook_store_snapshot(ts->store, write, opaque);
  return err;
}

brook_err_t bk_timers_restore(brook_ctx_t *ctx, const void *data, size_t len) {
  bk_timer_state_t *ts;
  brook_err_t err = state_get(ctx, &ts);
  if (err >= 0 && (err = brook_store_restore(ts->store, data, len)) >= 0 &&
      (err = bk_timers_rebuild(ctx)) < 0)
    (void)bk_store_empty(ts->store);
  return err;
}

void bk_time_free_ctx(brook_runtime_t *rt, brook_ctx_t *c) {
  for (int d = 0; d < 2; d++) {
    if (c->timers[d]) {
      bk_timerq_free(c->timers[d]);
      bk_free(&rt->alloc, c->timers[d]);
      c->timers[d] = NULL;
    }
  }
  bk_timer_state_t *ts = c->timer_state;
  if (ts) {
    bk_store_destroy(ts->store);
    bk_free(&rt->alloc, ts->kbuf);
    bk_free(&rt->alloc, ts);
    c->timer_state = NULL;
  }
}

/* ---- the operator context's timer API ---- */

static int domain_ok(brook_time_domain_t domain) {
  return domain == BROOK_EVENT_TIME || domain == BROOK_PROCESSING_TIME;
}

brook_err_t brook_timer_set(brook_ctx_t *ctx, brook_time_domain_t domain, brook_time_t time,
                            const void *key, size_t key_len, uint64_t tag) {
  if (!ctx || (!key && key_len) || !domain_ok(domain))
    return BROOK_ERR_INVALID_ARG;
  if (ctx->node->kind != BK_NODE_OPERATOR || !ctx->node->op.on_timer) {
    brook_ctx_set_error(ctx, "brook_timer_set: operator '%s' has no on_timer callback",
                        ctx->node->name);
    return BROOK_ERR_STATE;
  }
  bk_timerq_t *q;
  brook_err_t err;
  /* With state on disk, timers are state its commits write: every change goes through. */
  if (ctx->task_db && (!ctx->timer_state || !ctx->timer_state->write_through) &&
      (err = bk_timers_keep_synced(ctx)) < 0)
    return err;
  if ((err = queue_get(ctx, domain, &q)) < 0)
    return err;
  if ((err = bk_timerq_add(q, time, key, key_len, tag)) <= 0)
    return err; /* 0: pending already */
  bk_timer_state_t *ts = ctx->timer_state;
  if (!ts || !ts->write_through)
    return BROOK_OK;
  brook_timer_t t = {domain, time, key, key_len, tag};
  if (kbuf_fit(&ctx->rt->alloc, ts, TK_FIXED + key_len) < 0)
    err = BROOK_ERR_NOMEM;
  else
    err = brook_store_put(ts->store, ts->kbuf, encode(ts, &t), NULL, 0);
  if (err < 0) { /* the queue and the store stay the same set of timers */
    (void)bk_timerq_remove(q, time, key, key_len, tag);
    return err;
  }
  return BROOK_OK;
}

brook_err_t brook_timer_delete(brook_ctx_t *ctx, brook_time_domain_t domain, brook_time_t time,
                               const void *key, size_t key_len, uint64_t tag) {
  if (!ctx || (!key && key_len) || !domain_ok(domain))
    return BROOK_ERR_INVALID_ARG;
  bk_timerq_t *q = ctx->timers[domain];
  if (!q || !bk_timerq_remove(q, time, key, key_len, tag))
    return BROOK_ERR_NOT_FOUND;
  if (ctx->timer_state && ctx->timer_state->write_through) {
    brook_timer_t t = {domain, time, key, key_len, tag};
    forget(ctx, &t);
  }
  return BROOK_OK;
}

size_t brook_timer_count(const brook_ctx_t *ctx, brook_time_domain_t domain) {
  if (!ctx || !domain_ok(domain) || !ctx->timers[domain])
    return 0;
  return bk_timerq_count(ctx->timers[domain]);
}
