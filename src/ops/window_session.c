/* Session windows: per key, records less than `gap` ms apart form a session
 * [first ts, last ts + gap). All state is one ORDERED store, "sessions":
 *
 *   user key || brook_store_time_encode(start)  ->  [int64 end][8 unused][accumulator]
 *
 * so a key's open sessions are a range read by key and time (brook_store_iter_time), in
 * start order; they never overlap, so their ends are in order too. A record overlapping
 * several sessions merges them (aggregator merge) into one entry under the earliest start;
 * a record that grows one session updates its entry in place (brook_store_update). Each
 * session has exactly one pending timer, at end - 1 + grace with the start as its tag (moved
 * when the session grows), so a restored store implies its timers.
 *
 * With state on disk (RocksDB), a closed session leaves a tombstone under its key until a
 * compaction, and a range read from BROOK_TIME_MIN would step over every one of them (the
 * window suite on disk went from seconds to minutes). So on disk each key that had a session
 * closed also has a floor entry, user key || encode(BROOK_TIME_MIN) -> [int64 floor][...]: no
 * open or future session of the key starts before the floor, and reads start there. When
 * session [s, e) closes, the key's other open sessions are later (sessions of a key never
 * overlap, so they close in start order) and a record accepted from then on has t + gap - 1
 * + grace > watermark >= e - 1 + grace, so t > e - gap: the floor becomes e - gap. A
 * record that merges into a session can move its start back below the floor: the floor
 * follows it. (No session starts at BROOK_TIME_MIN: timestamps are limited to +-2^61.) */
#include <string.h>

#include <brook/state.h>

#include "core/alloc.h"
#include "core/context.h"
#include "ops/window_common.h"
#include "state/store.h"

#define SESSION_HDR 16 /* int64 end, then padding: the accumulator stays 16-byte aligned */

/* key || encoded start into w->kbuf; its length, or 0 if out of memory. */
static size_t session_key(bk_win_t *w, const void *key, size_t klen, brook_time_t start) {
  size_t need = klen + BROOK_STORE_TIME_LEN;
  if (!bk_win_kbuf(w, need))
    return 0;
  if (klen)
    memcpy(w->kbuf, key, klen);
  brook_store_time_encode(start, w->kbuf + klen);
  return need;
}

static brook_time_t value_end(const void *v) {
  brook_time_t e;
  memcpy(&e, v, sizeof(e));
  return e;
}

/* The key's floor (see the top) in *from, if it has one. */
static brook_err_t floor_of(bk_win_t *w, const void *key, size_t klen, brook_time_t *from) {
  size_t kl = session_key(w, key, klen, BROOK_TIME_MIN);
  if (!kl)
    return BROOK_ERR_NOMEM;
  const void *v;
  size_t vlen;
  brook_err_t err = brook_store_get(w->slices, w->kbuf, kl, &v, &vlen);
  if (err == BROOK_ERR_NOT_FOUND)
    return BROOK_OK;
  if (err >= 0)
    *from = value_end(v);
  return err;
}

static brook_err_t set_floor(bk_win_t *w, const void *key, size_t klen, brook_time_t nf) {
  size_t kl = session_key(w, key, klen, BROOK_TIME_MIN);
  if (!kl)
    return BROOK_ERR_NOMEM;
  memset(w->acc_tmp, 0, SESSION_HDR + w->acc_size);
  memcpy(w->acc_tmp, &nf, sizeof(nf));
  return brook_store_put(w->slices, w->kbuf, kl, w->acc_tmp, SESSION_HDR + w->acc_size);
}

/* After session [s, e) of `key` closed: the key's floor becomes e - gap (kept if higher). */
static brook_err_t raise_floor(bk_win_t *w, const void *key, size_t klen, brook_time_t e) {
  brook_time_t f = BROOK_TIME_MIN, nf = e - w->cfg->w.gap;
  brook_err_t err = floor_of(w, key, klen, &f);
  return err < 0 || f >= nf ? err : set_floor(w, key, klen, nf);
}

/* The sessions of `key` from `from` on that overlap [t, t + gap), as (start, end) pairs in
 * w->arr_tmp;
 * their number in *n. */
static brook_err_t overlapping(bk_win_t *w, const void *key, size_t klen, brook_time_t from,
                               brook_time_t t, size_t *n) {
  brook_store_iter_t *it;
  brook_err_t err = brook_store_iter_time(w->slices, key, klen, from, t + w->cfg->w.gap, &it);
  if (err < 0)
    return err;
  brook_store_entry_t e;
  *n = 0;
  while (brook_store_iter_next(it, &e)) {
    brook_time_t end = value_end(e.value);
    if (end <= t)
      continue; /* a session before t, not reaching it */
    int64_t *pairs = bk_win_scratch(w, 2 * (*n + 1));
    if (!pairs) {
      (void)brook_store_iter_close(it);
      return BROOK_ERR_NOMEM;
    }
    pairs[2 * *n] = brook_store_entry_time_suffix(&e);
    pairs[2 * *n + 1] = end;
    ++*n;
  }
  return brook_store_iter_close(it);
}

static brook_err_t emit_session(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec,
                                brook_time_t s, brook_time_t e) {
  size_t kl = session_key(w, rec->key, rec->key_len, s);
  const void *v;
  size_t vlen;
  if (!kl)
    return BROOK_ERR_NOMEM;
  brook_err_t err = brook_store_get(w->slices, w->kbuf, kl, &v, &vlen);
  if (err == BROOK_ERR_NOT_FOUND)
    return BROOK_OK;
  if (err < 0)
    return err;
  return bk_win_emit(ctx, w, rec->key, rec->key_len, s, e, (const unsigned char *)v + SESSION_HDR,
                     0);
}

/* The common case: the record falls into (or extends) one session with the same start. */
static brook_err_t grow(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec, brook_time_t ms,
                        brook_time_t old_end, brook_time_t me) {
  const brook_aggregator_t *agg = &w->cfg->agg;
  size_t kl = session_key(w, rec->key, rec->key_len, ms);
  if (!kl)
    return BROOK_ERR_NOMEM;
  void *v;
  brook_err_t err = brook_store_update(w->slices, w->kbuf, kl, &v, NULL);
  if (err < 0)
    return err;
  if ((err = agg->add((unsigned char *)v + SESSION_HDR, rec, agg)) < 0)
    return err;
  if (me == old_end)
    return BROOK_OK;
  memcpy(v, &me, sizeof(me));
  brook_timer_delete(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, old_end), rec->key, rec->key_len,
                     (uint64_t)ms);
  return brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, me), rec->key, rec->key_len,
                         (uint64_t)ms);
}

/* A new session, or a merge of the n overlapping ones (pairs in w->arr_tmp): everything is
 * folded into a fresh accumulator first, so a refused record changes nothing. */
static brook_err_t merge(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec, size_t n,
                         brook_time_t ms, brook_time_t me) {
  const brook_aggregator_t *agg = &w->cfg->agg;
  const void *key = rec->key;
  size_t klen = rec->key_len;
  unsigned char *nv = w->acc_tmp; /* SESSION_HDR + acc_size bytes */
  memset(nv, 0, SESSION_HDR + w->acc_size);
  memcpy(nv, &me, sizeof(me));
  if (agg->init)
    agg->init(nv + SESSION_HDR, agg);
  brook_err_t err = agg->add(nv + SESSION_HDR, rec, agg);
  if (err < 0)
    return err;
  for (size_t i = 0; i < n; i++) {
    const int64_t *pairs = w->arr_tmp;
    size_t kl = session_key(w, key, klen, pairs[2 * i]);
    const void *v;
    size_t vlen;
    if (!kl)
      return BROOK_ERR_NOMEM;
    if ((err = brook_store_get(w->slices, w->kbuf, kl, &v, &vlen)) < 0)
      return err;
    agg->merge(nv + SESSION_HDR, (const unsigned char *)v + SESSION_HDR, agg);
  }
  for (size_t i = 0; i < n; i++) {
    const int64_t *pairs = w->arr_tmp;
    size_t kl = session_key(w, key, klen, pairs[2 * i]);
    if (!kl)
      return BROOK_ERR_NOMEM;
    brook_timer_delete(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, pairs[2 * i + 1]), key, klen,
                       (uint64_t)pairs[2 * i]);
    if ((err = brook_store_delete(w->slices, w->kbuf, kl)) < 0)
      return err;
  }
  size_t kl = session_key(w, key, klen, ms);
  if (!kl)
    return BROOK_ERR_NOMEM;
  if ((err = brook_store_put(w->slices, w->kbuf, kl, nv, SESSION_HDR + w->acc_size)) < 0)
    return err;
  return brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, me), key, klen, (uint64_t)ms);
}

/* After a restore: each session's timer (the store holds exactly the open sessions). */
brook_err_t bk_win_session_rebuild(brook_ctx_t *ctx, bk_win_t *w) {
  brook_store_iter_t *it;
  brook_err_t err = brook_store_iter_all(w->slices, &it);
  if (err < 0)
    return err;
  brook_store_entry_t e;
  while (err >= 0 && brook_store_iter_next(it, &e)) {
    if (e.key_len < BROOK_STORE_TIME_LEN || brook_store_entry_time_suffix(&e) == BROOK_TIME_MIN)
      continue; /* not a session: a key's floor */
    err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_win_fire_time(w, value_end(e.value)), e.key,
                          e.key_len - BROOK_STORE_TIME_LEN,
                          (uint64_t)brook_store_entry_time_suffix(&e));
  }
  brook_err_t cerr = brook_store_iter_close(it);
  if (err < 0)
    return err;
  if (cerr < 0)
    return cerr;
  w->slices_gen = bk_win_store_gen(w->slices);
  return BROOK_OK;
}

static brook_err_t session_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  if (bk_win_check_time(ctx, rec) < 0)
    return BROOK_ERR_INVALID_ARG;
  bk_win_t *w = state;
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_session_rebuild(ctx, w)) < 0)
    return err;
  brook_time_t t = rec->timestamp, gap = w->cfg->w.gap;
  size_t n;
  brook_time_t floor = BROOK_TIME_MIN;
  if ((w->floors && (err = floor_of(w, rec->key, rec->key_len, &floor)) < 0) ||
      (err = overlapping(w, rec->key, rec->key_len, floor, t, &n)) < 0)
    return err;
  const int64_t *pairs = w->arr_tmp;
  brook_time_t ms = t, me = t + gap;
  for (size_t i = 0; i < n; i++) {
    ms = pairs[2 * i] < ms ? pairs[2 * i] : ms;
    me = pairs[2 * i + 1] > me ? pairs[2 * i + 1] : me;
  }
  if (n == 0 && bk_win_closed(w, me, ctx->wm))
    return bk_win_late(ctx, w, rec);
  if (n == 1 && pairs[0] == ms)
    err = grow(ctx, w, rec, ms, pairs[1], me);
  else
    err = merge(ctx, w, rec, n, ms, me);
  if (err >= 0 && floor != BROOK_TIME_MIN && ms < floor) /* a session grown backwards */
    err = set_floor(w, rec->key, rec->key_len, ms);
  w->slices_gen = bk_win_store_gen(w->slices);
  if (err < 0)
    return err;
  if (w->cfg->emit == BROOK_EMIT_ON_UPDATE)
    return emit_session(ctx, w, rec, ms, me);
  return BROOK_OK;
}

static brook_err_t session_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *tm) {
  bk_win_t *w = state;
  brook_err_t err;
  if (bk_win_restored(w) && (err = bk_win_session_rebuild(ctx, w)) < 0)
    return err;
  brook_time_t s = (brook_time_t)tm->tag;
  size_t kl = session_key(w, tm->key, tm->key_len, s);
  const void *v;
  size_t vlen;
  if (!kl)
    return BROOK_ERR_NOMEM;
  if ((err = brook_store_get(w->slices, w->kbuf, kl, &v, &vlen)) == BROOK_ERR_NOT_FOUND)
    return BROOK_OK;
  if (err < 0)
    return err;
  if ((err = bk_win_emit_copy(ctx, w, tm->key, tm->key_len, s, value_end(v),
                              (const unsigned char *)v + SESSION_HDR, 1)) < 0)
    return err;
  brook_time_t end = value_end(v);
  err = brook_store_delete(w->slices, w->kbuf, kl);
  if (err >= 0 && w->floors)
    err = raise_floor(w, tm->key, tm->key_len, end);
  w->slices_gen = bk_win_store_gen(w->slices);
  return err;
}

static brook_err_t session_open(brook_ctx_t *ctx, void *opaque, void **state) {
  brook_err_t err = bk_win_open(ctx, opaque, state);
  if (err < 0)
    return err;
  bk_win_t *w = *state;
  w->floors = ctx->task_db != NULL; /* state on disk: see the top */
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = SESSION_HDR + w->acc_size;
  so.ordered = 1;
  bk_free(w->alloc, w->acc_tmp); /* the merge scratch holds a whole value */
  if (!(w->acc_tmp = bk_calloc(w->alloc, 1, so.value_size)) ||
      (err = brook_store_open(ctx, "sessions", &so, &w->slices)) < 0) {
    bk_win_close(w, opaque);
    return err < 0 ? err : BROOK_ERR_NOMEM;
  }
  w->slices_gen = bk_win_store_gen(w->slices);
  return BROOK_OK;
}

const brook_operator_t bk_window_session_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "window_session",
    .open = session_open,
    .process = session_process,
    .close = bk_win_close,
    .on_timer = session_on_timer,
    .on_watermark = bk_win_on_watermark,
};
