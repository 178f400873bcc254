/* Store iterators: every range (all, [lo, hi), prefix, key || time, time || key) becomes
 * byte bounds [lo, hi) plus a key-length filter, walked with the backend's seek/next.
 *
 * Changes during an iteration: on an ordered backend the iterator keeps a copy of the key it
 * returned last (the entry's key handed out IS that copy, so deleting it through the store is
 * safe), and when the store's change counter moved since, it re-seeks to the first key after
 * that copy instead of trusting the backend's position. A backend with
 * BROOK_STORE_CAP_STABLE_ITER keeps its position valid itself; the hash store walks its slots
 * with a cursor that deletions never disturb (store.h).
 *
 * Iterators are pooled per store: closing one keeps its buffers for the next, so a scan per
 * record (session windows, timers) allocates nothing once warm. Runs on the store's thread. */
#include <string.h>

#include <brook/store_backend.h>

#include "core/alloc.h"
#include "state/store.h"
#include "state/store_iter.h"

typedef enum { POS_START, POS_SEEK, POS_AT, POS_DONE } iter_pos_t;
typedef enum { KIND_ALL, KIND_RANGE, KIND_TIME, KIND_TIME_PREFIXED } iter_kind_t;

typedef struct iter_buf {
  unsigned char *p;
  size_t len, cap;
} iter_buf_t;

struct brook_store_iter {
  brook_store_t *s;
  bk_store_iter_t *next; /* in s->iters */
  int open;
  iter_kind_t kind;
  iter_pos_t pos;
  void *bit; /* the backend's iterator while open */
  iter_buf_t lo, hi, cur;
  int has_lo, has_hi;
  size_t exact_len; /* KIND_TIME: only keys of this length */
  size_t min_len;   /* KIND_TIME_PREFIXED: only keys at least this long */
  size_t key_len;   /* KIND_TIME: the key before the time */
  uint64_t gen;     /* s->gen when cur was read */
  size_t cursor;    /* the hash store's slot cursor */
  brook_err_t err;
};

static int buf_set(brook_store_t *s, iter_buf_t *b, const void *a, size_t alen, const void *c,
                   size_t clen) {
  size_t need = alen + clen;
  if (need > b->cap) {
    void *p = b->p;
    size_t cap = b->cap;
    if (need < 32)
      need = 32;
    if (bk_grow(&s->alloc, &p, &cap, need, 1))
      return -1;
    b->p = p;
    b->cap = cap;
  }
  if (alen)
    memcpy(b->p, a, alen);
  if (clen)
    memcpy(b->p + alen, c, clen);
  b->len = alen + clen;
  return 0;
}

/* The smallest key greater than every key starting with b's bytes: b with trailing 0xff
 * bytes dropped and the last byte incremented. Returns 0 if there is none (all 0xff). */
static int prefix_successor(iter_buf_t *b) {
  while (b->len && b->p[b->len - 1] == 0xff)
    b->len--;
  if (!b->len)
    return 0;
  b->p[b->len - 1]++;
  return 1;
}

static const char *be_name(const brook_store_t *s) {
  return s->be && s->be->name ? s->be->name : "hash";
}

/* ---- open / close ---- */

static brook_err_t iter_get(brook_store_t *s, iter_kind_t kind, brook_store_iter_t **out) {
  if (kind != KIND_ALL && !(s->be && (s->be->caps & BROOK_STORE_CAP_ORDERED)))
    return bk_store_fail(s, BROOK_ERR_STATE,
                         "range scans need an ordered store (backend '%s' is not ordered; "
                         "open the store with opts.ordered = 1)",
                         be_name(s));
  bk_store_iter_t *it = s->iters;
  while (it && it->open)
    it = it->next;
  if (!it) {
    if (!(it = bk_malloc(&s->alloc, sizeof(*it))))
      return bk_store_fail(s, BROOK_ERR_NOMEM, "out of memory for an iterator");
    memset(it, 0, sizeof(*it));
    it->s = s;
    it->next = s->iters;
    s->iters = it;
  }
  it->kind = kind;
  it->pos = POS_START;
  it->has_lo = it->has_hi = 0;
  it->lo.len = it->hi.len = it->cur.len = 0;
  it->exact_len = it->min_len = it->key_len = 0;
  it->cursor = 0;
  it->err = BROOK_OK;
  it->bit = NULL;
  if (s->be) {
    uint32_t seq = s->err_seq;
    brook_err_t err = s->be->iter_open(s->be_state, &it->bit);
    if (err < 0) {
      it->bit = NULL;
      if (seq == s->err_seq)
        bk_store_fail(s, err, "backend '%s': iter_open failed: %s", be_name(s),
                      brook_strerror(err));
      return err;
    }
  }
  it->open = 1;
  s->n_iters_open++;
  *out = it;
  return BROOK_OK;
}

static void iter_release(bk_store_iter_t *it) {
  brook_store_t *s = it->s;
  if (it->bit)
    s->be->iter_close(it->bit);
  it->bit = NULL;
  it->open = 0;
  s->n_iters_open--;
}

brook_err_t brook_store_iter_close(brook_store_iter_t *it) {
  if (!it || !it->open)
    return BROOK_OK;
  brook_err_t err = it->err;
  iter_release(it);
  return err;
}

void bk_store_iters_free(brook_store_t *s) {
  bk_store_iter_t *it = s->iters;
  while (it) {
    bk_store_iter_t *next = it->next;
    if (it->open)
      iter_release(it);
    bk_free(&s->alloc, it->lo.p);
    bk_free(&s->alloc, it->hi.p);
    bk_free(&s->alloc, it->cur.p);
    bk_free(&s->alloc, it);
    it = next;
  }
  s->iters = NULL;
  s->cursor_it = NULL;
  s->n_iters_open = 0;
}

size_t bk_store_iters_memory(const brook_store_t *s) {
  size_t n = 0;
  for (const bk_store_iter_t *it = s->iters; it; it = it->next)
    n += sizeof(*it) + it->lo.cap + it->hi.cap + it->cur.cap;
  return n;
}

size_t bk_store_iters_settle(brook_store_t *s) {
  if (s->cursor_it) {
    (void)brook_store_iter_close(s->cursor_it);
    s->cursor_it = NULL;
  }
  return s->n_iters_open;
}

/* ---- the ranges ---- */

brook_err_t brook_store_iter_all(brook_store_t *s, brook_store_iter_t **out) {
  if (out)
    *out = NULL;
  if (!s || !out)
    return BROOK_ERR_INVALID_ARG;
  return iter_get(s, KIND_ALL, out);
}

/* Sets the bounds of a fresh iterator; closes it on NOMEM. */
static brook_err_t iter_bounds(brook_store_iter_t *it, const void *lo_a, size_t lo_alen,
                               const void *lo_b, size_t lo_blen, int has_lo, const void *hi_a,
                               size_t hi_alen, const void *hi_b, size_t hi_blen, int has_hi) {
  brook_store_t *s = it->s;
  if ((has_lo && buf_set(s, &it->lo, lo_a, lo_alen, lo_b, lo_blen)) ||
      (has_hi && buf_set(s, &it->hi, hi_a, hi_alen, hi_b, hi_blen))) {
    iter_release(it);
    return bk_store_fail(s, BROOK_ERR_NOMEM, "out of memory for an iterator's bounds");
  }
  it->has_lo = has_lo;
  it->has_hi = has_hi;
  return BROOK_OK;
}

brook_err_t brook_store_iter_range(brook_store_t *s, const void *lo, size_t lo_len, const void *hi,
                                   size_t hi_len, brook_store_iter_t **out) {
  if (out)
    *out = NULL;
  if (!s || !out)
    return BROOK_ERR_INVALID_ARG;
  brook_store_iter_t *it;
  brook_err_t err = iter_get(s, KIND_RANGE, &it);
  if (err)
    return err;
  if ((err = iter_bounds(it, lo, lo ? lo_len : 0, NULL, 0, lo != NULL, hi, hi ? hi_len : 0, NULL, 0,
                         hi != NULL)))
    return err;
  *out = it;
  return BROOK_OK;
}

brook_err_t brook_store_iter_prefix(brook_store_t *s, const void *prefix, size_t prefix_len,
                                    brook_store_iter_t **out) {
  if (out)
    *out = NULL;
  if (!s || !out || (!prefix && prefix_len))
    return BROOK_ERR_INVALID_ARG;
  brook_store_iter_t *it;
  brook_err_t err = iter_get(s, KIND_RANGE, &it);
  if (err)
    return err;
  if ((err = iter_bounds(it, prefix, prefix_len, NULL, 0, 1, prefix, prefix_len, NULL, 0, 1)))
    return err;
  it->has_hi = prefix_successor(&it->hi);
  *out = it;
  return BROOK_OK;
}

brook_err_t brook_store_iter_time(brook_store_t *s, const void *key, size_t key_len, int64_t from,
                                  int64_t to, brook_store_iter_t **out) {
  if (out)
    *out = NULL;
  if (!s || !out || (!key && key_len) || key_len > BK_STORE_MAX_LEN)
    return BROOK_ERR_INVALID_ARG;
  brook_store_iter_t *it;
  brook_err_t err = iter_get(s, KIND_TIME, &it);
  if (err)
    return err;
  unsigned char a[BROOK_STORE_TIME_LEN], b[BROOK_STORE_TIME_LEN];
  brook_store_time_encode(from, a);
  brook_store_time_encode(to, b);
  int unbounded = to == INT64_MAX;
  if ((err = iter_bounds(it, key, key_len, a, sizeof(a), 1, key, key_len, unbounded ? NULL : b,
                         unbounded ? 0 : sizeof(b), 1)))
    return err;
  if (unbounded)
    it->has_hi = prefix_successor(&it->hi);
  it->exact_len = key_len + BROOK_STORE_TIME_LEN;
  it->key_len = key_len;
  *out = it;
  return BROOK_OK;
}

brook_err_t brook_store_iter_time_prefixed(brook_store_t *s, int64_t from, int64_t to,
                                           brook_store_iter_t **out) {
  if (out)
    *out = NULL;
  if (!s || !out)
    return BROOK_ERR_INVALID_ARG;
  brook_store_iter_t *it;
  brook_err_t err = iter_get(s, KIND_TIME_PREFIXED, &it);
  if (err)
    return err;
  unsigned char a[BROOK_STORE_TIME_LEN], b[BROOK_STORE_TIME_LEN];
  brook_store_time_encode(from, a);
  brook_store_time_encode(to, b);
  if ((err = iter_bounds(it, a, sizeof(a), NULL, 0, 1, b, sizeof(b), NULL, 0, to != INT64_MAX)))
    return err;
  it->min_len = BROOK_STORE_TIME_LEN;
  *out = it;
  return BROOK_OK;
}

/* ---- moving ---- */

brook_err_t brook_store_iter_seek(brook_store_iter_t *it, const void *key, size_t key_len) {
  if (!it || !it->open || (!key && key_len))
    return BROOK_ERR_INVALID_ARG;
  brook_store_t *s = it->s;
  if (it->kind == KIND_ALL && !(s->be && (s->be->caps & BROOK_STORE_CAP_ORDERED)))
    return bk_store_fail(s, BROOK_ERR_STATE, "seek needs an ordered store (backend '%s')",
                         be_name(s));
  if (it->has_lo && bk_key_cmp(key, key_len, it->lo.p, it->lo.len) < 0) {
    key = it->lo.p; /* never before the range */
    key_len = it->lo.len;
  }
  if (buf_set(s, &it->cur, key, key_len, NULL, 0))
    return bk_store_fail(s, BROOK_ERR_NOMEM, "out of memory for an iterator's key");
  it->pos = POS_SEEK;
  it->err = BROOK_OK;
  return BROOK_OK;
}

brook_err_t brook_store_iter_seek_time(brook_store_iter_t *it, int64_t t) {
  if (!it || !it->open)
    return BROOK_ERR_INVALID_ARG;
  unsigned char enc[BROOK_STORE_TIME_LEN];
  brook_store_time_encode(t, enc);
  if (it->kind == KIND_TIME_PREFIXED)
    return brook_store_iter_seek(it, enc, sizeof(enc));
  if (it->kind != KIND_TIME)
    return bk_store_fail(it->s, BROOK_ERR_STATE,
                         "seek_time needs an iterator from iter_time or iter_time_prefixed");
  /* key || enc(t): lo holds the key followed by the lower bound's time. */
  unsigned char *key = it->lo.p;
  brook_store_t *s = it->s;
  if (buf_set(s, &it->cur, key, it->key_len, enc, sizeof(enc)))
    return bk_store_fail(s, BROOK_ERR_NOMEM, "out of memory for an iterator's key");
  if (bk_key_cmp(it->cur.p, it->cur.len, it->lo.p, it->lo.len) < 0 &&
      buf_set(s, &it->cur, it->lo.p, it->lo.len, NULL, 0))
    return bk_store_fail(s, BROOK_ERR_NOMEM, "out of memory for an iterator's key");
  it->pos = POS_SEEK;
  it->err = BROOK_OK;
  return BROOK_OK;
}

static int iter_stop(brook_store_iter_t *it, brook_err_t err, uint32_t seq) {
  it->pos = POS_DONE;
  if (err < 0 && err != BROOK_ERR_NOT_FOUND && !it->err) {
    brook_store_t *s = it->s;
    it->err = err;
    if (seq == s->err_seq)
      bk_store_fail(s, err, "iteration failed: %s", brook_strerror(err));
  }
  return 0;
}

/* The next entry of the hash store (no bounds: full iteration only). */
static int iter_next_hash(brook_store_iter_t *it, brook_store_entry_t *e) {
  if (it->pos == POS_DONE)
    return 0;
  it->pos = POS_AT;
  if (!bk_hash_next(it->s, &it->cursor, &e->key, &e->key_len, &e->value, &e->value_len))
    return iter_stop(it, BROOK_OK, 0);
  return 1;
}

/* One step of the backend: to the first entry at/after where the iterator stands. */
static brook_err_t iter_step(brook_store_iter_t *it, brook_store_entry_t *e) {
  brook_store_t *s = it->s;
  const brook_store_backend_t *be = s->be;
  int stable = (be->caps & BROOK_STORE_CAP_STABLE_ITER) != 0;
  switch (it->pos) {
  case POS_START:
    return be->iter_seek(it->bit, it->has_lo ? it->lo.p : NULL, it->has_lo ? it->lo.len : 0, e);
  case POS_SEEK:
    return be->iter_seek(it->bit, it->cur.p, it->cur.len, e);
  case POS_AT:
    if (stable || it->gen == s->gen)
      return be->iter_next(it->bit, e);
    if (!(be->caps & BROOK_STORE_CAP_ORDERED))
      return bk_store_fail(s, BROOK_ERR_STATE,
                           "the store changed during an iteration, which backend '%s' (unordered, "
                           "no stable iterators) cannot continue",
                           be_name(s));
    { /* re-seek after the key returned last */
      brook_err_t err = be->iter_seek(it->bit, it->cur.p, it->cur.len, e);
      if (err == BROOK_OK && bk_key_cmp(e->key, e->key_len, it->cur.p, it->cur.len) == 0)
        err = be->iter_next(it->bit, e);
      return err;
    }
  case POS_DONE:
    break;
  }
  return BROOK_ERR_NOT_FOUND;
}

int brook_store_iter_next(brook_store_iter_t *it, brook_store_entry_t *entry) {
  if (!it || !it->open || !entry)
    return 0;
  brook_store_t *s = it->s;
  if (!s->be)
    return iter_next_hash(it, entry);
  int stable = (s->be->caps & BROOK_STORE_CAP_STABLE_ITER) != 0;
  for (;;) {
    if (it->pos == POS_DONE)
      return 0;
    brook_store_entry_t e;
    uint32_t seq = s->err_seq;
    brook_err_t err = iter_step(it, &e);
    if (err != BROOK_OK)
      return iter_stop(it, err, seq);
    if (it->has_hi && bk_key_cmp(e.key, e.key_len, it->hi.p, it->hi.len) >= 0)
      return iter_stop(it, BROOK_OK, seq);
    it->pos = POS_AT;
    it->gen = s->gen;
    if (!stable) {
      /* The copy that lets the store change under the iterator, and the key handed out. */
      if (buf_set(s, &it->cur, e.key, e.key_len, NULL, 0))
        return iter_stop(it, BROOK_ERR_NOMEM, seq);
      e.key = it->cur.p;
    }
    if ((it->exact_len && e.key_len != it->exact_len) || e.key_len < it->min_len)
      continue;
    *entry = e;
    return 1;
  }
}

/* ---- brook_store_next on a backend ---- */

int bk_store_cursor_next(brook_store_t *s, size_t *cursor, const void **key, size_t *key_len,
                         const void **value, size_t *value_len) {
  if (*cursor == SIZE_MAX)
    return 0;
  if (!s->cursor_it || *cursor != s->cursor_pos) {
    bk_store_iters_settle(s);
    if (brook_store_iter_all(s, &s->cursor_it)) {
      s->cursor_it = NULL;
      *cursor = SIZE_MAX;
      return 0;
    }
    s->cursor_pos = 0;
    brook_store_entry_t skip;
    while (s->cursor_pos < *cursor && brook_store_iter_next(s->cursor_it, &skip))
      s->cursor_pos++;
  }
  brook_store_entry_t e;
  if (!brook_store_iter_next(s->cursor_it, &e)) {
    bk_store_iters_settle(s);
    *cursor = SIZE_MAX;
    return 0;
  }
  *cursor = ++s->cursor_pos;
  if (key)
    *key = e.key;
  if (key_len)
    *key_len = e.key_len;
  if (value)
    *value = e.value;
  if (value_len)
    *value_len = e.value_len;
  return 1;
}
