/* The store suite, run against the store interface once per backend: the same behaviour
 * through the public brook_store_* calls whatever keeps the bytes, checked against a
 * brute-force model (a sorted array).
 *
 *   test_store_backend [backend]     (default: hash; ctest runs one entry per backend)
 *
 * Backends: "hash" (the built-in default, called directly), "hash_table" (the same hash
 * store reached through a copy of its public table, so through every indirect call),
 * "ordered" (opts.ordered), "user" (a sorted-array backend written below through the public
 * table only: the proof that a user can bring one), "rocksdb" (on disk, behind its write
 * cache; test_store_rocksdb.c adds what only a disk store has). Adding a backend is one row in
 * `backends` and one name in tests/CMakeLists.txt. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "state/store.h" /* bk_store_check: the backend's internal invariants */
#include "support/fail_alloc.h"
#include "support/sorted_store.h"
#include "support/write_buf.h"

/* ---- the backends under test ---- */

typedef struct backend_case {
  const char *name;
  void (*opts)(brook_store_opts_t *o); /* selects the backend */
  int ordered;                         /* range scans available */
  int update;                          /* brook_store_update available */
  int memory_flat;                     /* brook_store_memory stays bounded under churn */
  int slow;                            /* O(n) per put: the big loops run 1/slow of their ops */
} backend_case_t;

static brook_store_backend_t hash_copy; /* a copy: not recognised as the built-in hash store */
static sorted_store_opts_t user_opts;   /* the user backend's knobs (error injection) */

static void opts_hash(brook_store_opts_t *o) { (void)o; }
static void opts_hash_table(brook_store_opts_t *o) {
  hash_copy = *brook_store_backend_hash();
  o->backend = &hash_copy;
}
static void opts_ordered(brook_store_opts_t *o) { o->ordered = 1; }
static void opts_rocksdb(brook_store_opts_t *o) {
  o->backend = brook_store_backend_rocksdb(); /* a temporary directory per store */
}
static void opts_user(brook_store_opts_t *o) {
  o->backend = sorted_store_backend();
  o->backend_opaque = &user_opts;
}

static const backend_case_t backends[] = {
    {"hash", opts_hash, 0, 1, 1, 1},
    {"hash_table", opts_hash_table, 0, 1, 1, 1},
    {"ordered", opts_ordered, 1, 1, 1, 1},
    {"user", opts_user, 1, 0, 1, 8}, /* a sorted array: memmove per put */
    {"rocksdb", opts_rocksdb, 1, 1, 1, 1},
};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

static const backend_case_t *B; /* the backend this run tests */

static brook_store_t *open_store_on(const backend_case_t *b, size_t value_size, const char *name,
                                    const brook_allocator_t *a) {
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = value_size;
  o.name = name;
  b->opts(&o);
  brook_store_t *s = NULL;
  brook_err_t err = brook_store_new(&s, &o, a);
  if (!a)
    assert_int_equal(err, BROOK_OK);
  return err ? NULL : s;
}

static brook_store_t *open_store(size_t value_size) {
  return open_store_on(B, value_size, "under-test", NULL);
}

/* ---- the model: a sorted array of byte entries ---- */

#define KEY_MAX 24
#define VAL_MAX 64

typedef struct mentry {
  unsigned char k[KEY_MAX], v[VAL_MAX];
  size_t kl, vl;
} mentry_t;

typedef struct model {
  mentry_t *e;
  size_t n, cap;
} model_t;

static int key_cmp(const void *a, size_t al, const void *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (al > bl) - (al < bl);
}

/* Index of the first entry >= key. */
static size_t model_lb(const model_t *m, const void *k, size_t kl) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (key_cmp(m->e[mid].k, m->e[mid].kl, k, kl) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static mentry_t *model_find(model_t *m, const void *k, size_t kl) {
  size_t i = model_lb(m, k, kl);
  return i < m->n && key_cmp(m->e[i].k, m->e[i].kl, k, kl) == 0 ? &m->e[i] : NULL;
}

static void model_put(model_t *m, const void *k, size_t kl, const void *v, size_t vl) {
  assert_true(kl <= KEY_MAX && vl <= VAL_MAX);
  mentry_t *e = model_find(m, k, kl);
  if (!e) {
    if (m->n == m->cap) {
      m->cap = m->cap ? 2 * m->cap : 64;
      m->e = realloc(m->e, m->cap * sizeof(*m->e));
    }
    size_t i = model_lb(m, k, kl);
    memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof(*m->e));
    m->n++;
    e = &m->e[i];
    memcpy(e->k, k, kl);
    e->kl = kl;
  }
  if (vl)
    memcpy(e->v, v, vl);
  e->vl = vl;
}

static int model_del(model_t *m, const void *k, size_t kl) {
  mentry_t *e = model_find(m, k, kl);
  if (!e)
    return 0;
  size_t i = (size_t)(e - m->e);
  memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(*m->e));
  m->n--;
  return 1;
}

static void model_free(model_t *m) {
  free(m->e);
  *m = (model_t){0};
}

/* Every model entry is in the store with its value, and nothing else is. */
/* Every model entry is in the store with its value, and the count matches (no iteration:
 * usable when allocations fail). */
static void model_check_gets(const model_t *m, brook_store_t *s) {
  assert_int_equal(brook_store_count(s), m->n);
  for (size_t i = 0; i < m->n; i++) {
    const void *v;
    size_t vl;
    assert_int_equal(brook_store_get(s, m->e[i].k, m->e[i].kl, &v, &vl), BROOK_OK);
    assert_int_equal(vl, m->e[i].vl);
    if (vl)
      assert_memory_equal(v, m->e[i].v, vl);
  }
}

static void model_check(const model_t *m, brook_store_t *s) {
  assert_true(bk_store_check(s));
  model_check_gets(m, s);
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  brook_store_entry_t e;
  size_t seen = 0;
  while (brook_store_iter_next(it, &e)) {
    seen++;
    assert_non_null(model_find((model_t *)(uintptr_t)m, e.key, e.key_len));
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_int_equal(seen, m->n);
}

static uint64_t rnd(uint64_t *st) { /* splitmix64 */
  uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Keys of 0..KEY_MAX bytes over a small alphabet, so prefixes and equal keys are common. */
static size_t random_key(uint64_t *st, unsigned char *k) {
  size_t kl = rnd(st) % 6;
  for (size_t i = 0; i < kl; i++)
    k[i] = (unsigned char)("ab\0\xff"[rnd(st) % 4]);
  return kl;
}

/* ---- point operations ---- */

static void test_put_get_delete(void **state) {
  (void)state;
  brook_store_t *s = open_store(0);
  model_t m = {0};
  uint64_t st = 1;
  unsigned char k[KEY_MAX], v[VAL_MAX];
  for (int i = 0; i < 4000; i++) {
    size_t kl = random_key(&st, k);
    if (rnd(&st) % 3 == 0) {
      int had = model_del(&m, k, kl);
      assert_int_equal(brook_store_delete(s, k, kl), had ? BROOK_OK : BROOK_ERR_NOT_FOUND);
    } else {
      size_t vl = rnd(&st) % VAL_MAX;
      for (size_t j = 0; j < vl; j++)
        v[j] = (unsigned char)rnd(&st);
      assert_int_equal(brook_store_put(s, k, kl, v, vl), BROOK_OK);
      model_put(&m, k, kl, v, vl);
    }
    if (i % 500 == 0)
      model_check(&m, s);
  }
  model_check(&m, s);
  /* get_copy: copies out, says the size when the buffer is too small. */
  assert_int_equal(brook_store_put(s, "copy", 4, "0123456789", 10), BROOK_OK);
  char out[16];
  size_t n;
  assert_int_equal(brook_store_get_copy(s, "copy", 4, out, sizeof(out), &n), BROOK_OK);
  assert_int_equal(n, 10);
  assert_memory_equal(out, "0123456789", 10);
  assert_int_equal(brook_store_get_copy(s, "copy", 4, out, 4, &n), BROOK_ERR_TOO_LARGE);
  assert_int_equal(n, 10);
  assert_non_null(strstr(brook_store_last_error(s), "under-test"));
  assert_int_equal(brook_store_get_copy(s, "none", 4, out, sizeof(out), &n), BROOK_ERR_NOT_FOUND);
  /* A value put from a view of the store itself. */
  const void *view;
  size_t vl;
  assert_int_equal(brook_store_get(s, "copy", 4, &view, &vl), BROOK_OK);
  assert_int_equal(brook_store_put(s, "copy2", 5, view, vl), BROOK_OK);
  assert_int_equal(brook_store_get(s, "copy", 4, &view, &vl), BROOK_OK);
  assert_int_equal(brook_store_put(s, "copy", 4, (const char *)view + 2, vl - 2), BROOK_OK);
  assert_int_equal(brook_store_get_copy(s, "copy", 4, out, sizeof(out), &n), BROOK_OK);
  assert_memory_equal(out, "23456789", 8);
  assert_int_equal(brook_store_get_copy(s, "copy2", 5, out, sizeof(out), &n), BROOK_OK);
  assert_memory_equal(out, "0123456789", 10);
  model_free(&m);
  brook_store_free(s);
}

/* Many keys (a tree several levels deep for the ordered store), random puts with values
 * that change size (replacing entries) and deletes that empty whole regions, with the
 * backend's invariants checked on the way, then everything deleted in random order. */
static void test_random_ops_deep(void **state) {
  (void)state;
  brook_store_t *s = open_store(0);
  model_t m = {0};
  uint64_t st = 11;
  const uint64_t space = 20000 / (uint64_t)B->slow;
  unsigned char v[VAL_MAX];
  for (int i = 0; i < 60000 / B->slow; i++) {
    uint64_t id = rnd(&st) % space, k = id * 0x9e3779b97f4a7c15ULL;
    if (i > 30000 / B->slow && id % 3 == 0)
      id %= 100; /* later: mostly a few keys, so regions empty out */
    if (rnd(&st) % 5 < 2) {
      int had = model_del(&m, &k, 8);
      assert_int_equal(brook_store_delete(s, &k, 8), had ? BROOK_OK : BROOK_ERR_NOT_FOUND);
    } else {
      size_t vl = rnd(&st) % VAL_MAX;
      memset(v, (int)(i & 0xff), vl);
      assert_int_equal(brook_store_put(s, &k, 8, v, vl), BROOK_OK);
      model_put(&m, &k, 8, v, vl);
    }
    if (i % 10000 == 9999)
      model_check(&m, s);
  }
  model_check(&m, s);
  while (m.n) {
    size_t i = rnd(&st) % m.n;
    uint64_t k;
    memcpy(&k, m.e[i].k, 8);
    assert_int_equal(brook_store_delete(s, &k, 8), BROOK_OK);
    model_del(&m, &k, 8);
    if (m.n % 2500 == 0)
      model_check(&m, s);
  }
  assert_int_equal(brook_store_count(s), 0);
  assert_true(bk_store_check(s));
  model_free(&m);
  brook_store_free(s);
}

static void test_misuse(void **state) {
  (void)state;
  brook_store_t *s = open_store(8);
  assert_string_equal(brook_store_name(s), "under-test");
  assert_int_equal(brook_store_put(s, "k", 1, "short", 5), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_store_last_error(s), "8-byte values"));
  assert_int_equal(brook_store_put(s, NULL, 1, "12345678", 8), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_get(s, NULL, 1, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_delete(NULL, "k", 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_iter_all(NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_iter_close(NULL), BROOK_OK);
  assert_int_equal(brook_store_put(s, "", 0, "12345678", 8), BROOK_OK); /* empty key is a key */
  const void *v;
  assert_int_equal(brook_store_get(s, NULL, 0, &v, NULL), BROOK_OK);
  brook_store_free(s);
  brook_store_free(NULL);
  /* A bad table is refused. */
  brook_store_backend_t bad = *brook_store_backend_ordered();
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.backend = &bad;
  bad.version = 0;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_ERR_INVALID_ARG);
  bad.version = BROOK_STORE_BACKEND_VERSION + 1;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_ERR_INVALID_ARG);
  bad = *brook_store_backend_ordered();
  bad.iter_seek = NULL;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(s);
}

static brook_err_t count_changes(const void *k, size_t kl, const void *v, size_t vl, void *op) {
  (void)k, (void)kl, (void)v, (void)vl;
  ++*(long *)op;
  return BROOK_OK;
}

static void test_update_in_place(void **state) {
  (void)state;
  brook_store_t *s = open_store(16);
  void *p;
  int created = -1;
  if (!B->update) {
    assert_int_equal(brook_store_update(s, "k", 1, &p, &created), BROOK_ERR_STATE);
    assert_null(p);
    assert_non_null(strstr(brook_store_last_error(s), "in-place"));
    brook_store_free(s);
    return;
  }
  long changes = 0;
  brook_store_set_listener(s, count_changes, &changes);
  for (int round = 0; round < 3; round++) {
    for (uint64_t i = 0; i < 500; i++) {
      uint64_t *c;
      assert_int_equal(brook_store_update(s, &i, 8, (void **)&c, &created), BROOK_OK);
      assert_int_equal(created, round == 0);
      assert_int_equal(c[0], (uint64_t)round);
      c[0]++;
      c[1] = i;
    }
  }
  assert_int_equal(changes, 0); /* reported at flush, once per key */
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  assert_int_equal(changes, 500);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  assert_int_equal(changes, 500);
  for (uint64_t i = 0; i < 500; i++) {
    uint64_t c[2];
    size_t n;
    assert_int_equal(brook_store_get_copy(s, &i, 8, c, sizeof(c), &n), BROOK_OK);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[1], i);
  }
  /* A variable-size store has no update. */
  brook_store_t *var = open_store(0);
  assert_int_equal(brook_store_update(var, "k", 1, &p, NULL), BROOK_ERR_STATE);
  brook_store_free(var);
  brook_store_free(s);
}

typedef struct change_log {
  int n_put, n_del;
  char last_key[KEY_MAX + 1];
} change_log_t;

static brook_err_t log_change(const void *k, size_t kl, const void *v, size_t vl, void *op) {
  change_log_t *c = op;
  (void)vl;
  if (v)
    c->n_put++;
  else
    c->n_del++;
  memcpy(c->last_key, k, kl < KEY_MAX ? kl : KEY_MAX);
  c->last_key[kl < KEY_MAX ? kl : KEY_MAX] = 0;
  return BROOK_OK;
}

static void test_listener(void **state) {
  (void)state;
  brook_store_t *s = open_store(0);
  change_log_t c = {0};
  brook_store_set_listener(s, log_change, &c);
  assert_int_equal(brook_store_put(s, "a", 1, "1", 1), BROOK_OK);
  assert_int_equal(brook_store_put(s, "b", 1, "2", 1), BROOK_OK);
  assert_int_equal(brook_store_put(s, "a", 1, "3", 1), BROOK_OK);
  assert_int_equal(c.n_put, 3);
  assert_string_equal(c.last_key, "a");
  assert_int_equal(brook_store_delete(s, "b", 1), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "b", 1), BROOK_ERR_NOT_FOUND);
  assert_int_equal(c.n_del, 1);
  assert_string_equal(c.last_key, "b");
  /* Deleting through an iterator's entry: the reported key is intact. */
  brook_store_iter_t *it;
  brook_store_entry_t e;
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  assert_true(brook_store_iter_next(it, &e));
  assert_int_equal(brook_store_delete(s, e.key, e.key_len), BROOK_OK);
  assert_string_equal(c.last_key, "a");
  assert_false(brook_store_iter_next(it, &e));
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  for (int i = 0; i < 10; i++)
    assert_int_equal(brook_store_put(s, &i, sizeof(i), "x", 1), BROOK_OK);
  brook_store_clear(s);
  assert_int_equal(c.n_del, 12);
  assert_int_equal(brook_store_count(s), 0);
  brook_store_set_listener(s, NULL, NULL);
  assert_int_equal(brook_store_put(s, "z", 1, "1", 1), BROOK_OK);
  assert_int_equal(c.n_put, 13); /* 3 + 10, nothing after the listener went */
  brook_store_free(s);
}

/* ---- iteration ---- */

static void test_iteration_with_deletes(void **state) {
  (void)state;
  brook_store_t *s = open_store(0);
  const uint64_t n = 3000;
  for (uint64_t i = 0; i < n; i++)
    assert_int_equal(brook_store_put(s, &i, 8, &i, 8), BROOK_OK);
  /* Delete every entry with an odd value as it is seen, and every 7th one ahead of it: every
   * entry still there is seen exactly once. */
  unsigned char *seen = calloc(n, 1);
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  brook_store_entry_t e;
  while (brook_store_iter_next(it, &e)) {
    uint64_t id;
    memcpy(&id, e.key, 8);
    assert_true(id < n);
    assert_int_equal(seen[id], 0);
    seen[id] = 1;
    if (id % 2)
      assert_int_equal(brook_store_delete(s, e.key, e.key_len), BROOK_OK);
    uint64_t ahead = (id + 7) % n;
    if (ahead % 7 == 0 && !seen[ahead] && ahead % 2 == 0)
      (void)brook_store_delete(s, &ahead, 8);
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  size_t visited = 0;
  for (uint64_t i = 0; i < n; i++)
    visited += seen[i];
  assert_true(visited >= n - n / 7 - 1);
  /* The cursor API: the same, on every backend (deleting the entry just returned). */
  size_t cursor = 0, count = 0, deleted = 0, before = brook_store_count(s);
  const void *k;
  size_t kl;
  memset(seen, 0, n);
  while (brook_store_next(s, &cursor, &k, &kl, NULL, NULL)) {
    count++;
    uint64_t id;
    memcpy(&id, k, 8);
    assert_int_equal(id % 2, 0);
    assert_int_equal(seen[id], 0);
    seen[id] = 1;
    if (id % 4 == 0) {
      assert_int_equal(brook_store_delete(s, k, kl), BROOK_OK);
      deleted++;
    }
  }
  assert_int_equal(count, before);
  assert_int_equal(brook_store_count(s), before - deleted);
  free(seen);
  brook_store_free(s);
}

/* ---- ordered scans ---- */

/* The model's entries in [lo, hi) (NULL: unbounded), key order, against the store's. */
static void check_range(brook_store_t *s, const model_t *m, const void *lo, size_t lol,
                        const void *hi, size_t hil) {
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_range(s, lo, lol, hi, hil, &it), BROOK_OK);
  size_t i = lo ? model_lb(m, lo, lol) : 0;
  brook_store_entry_t e;
  while (brook_store_iter_next(it, &e)) {
    assert_true(i < m->n);
    assert_int_equal(key_cmp(e.key, e.key_len, m->e[i].k, m->e[i].kl), 0);
    assert_int_equal(e.value_len, m->e[i].vl);
    i++;
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_true(i == m->n || (hi && key_cmp(m->e[i].k, m->e[i].kl, hi, hil) >= 0));
}

static void test_ordered_ranges(void **state) {
  (void)state;
  brook_store_t *s = open_store(0);
  brook_store_iter_t *it = NULL;
  if (!B->ordered) {
    assert_int_equal(brook_store_iter_range(s, "a", 1, "b", 1, &it), BROOK_ERR_STATE);
    assert_null(it);
    assert_non_null(strstr(brook_store_last_error(s), "ordered"));
    assert_int_equal(brook_store_iter_prefix(s, "a", 1, &it), BROOK_ERR_STATE);
    assert_int_equal(brook_store_iter_time(s, "a", 1, 0, 10, &it), BROOK_ERR_STATE);
    assert_int_equal(brook_store_iter_time_prefixed(s, 0, 10, &it), BROOK_ERR_STATE);
    assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
    assert_int_equal(brook_store_iter_seek(it, "a", 1), BROOK_ERR_STATE);
    assert_int_equal(brook_store_iter_close(it), BROOK_OK);
    brook_store_free(s);
    return;
  }
  model_t m = {0};
  uint64_t st = 7;
  unsigned char k[KEY_MAX], lo[KEY_MAX], hi[KEY_MAX];
  for (int i = 0; i < 600; i++) {
    size_t kl = random_key(&st, k);
    assert_int_equal(brook_store_put(s, k, kl, &i, sizeof(i)), BROOK_OK);
    model_put(&m, k, kl, &i, sizeof(i));
  }
  check_range(s, &m, NULL, 0, NULL, 0);
  for (int i = 0; i < 300; i++) {
    size_t lol = random_key(&st, lo), hil = random_key(&st, hi);
    check_range(s, &m, i % 5 ? lo : NULL, lol, i % 7 ? hi : NULL, hil);
  }
  /* Prefixes, including 0xff bytes (whose successor carries). */
  const char *prefixes[] = {"", "a", "ab", "\xff", "\xff\xff", "b\xff", "zz"};
  for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
    size_t pl = strlen(prefixes[p]);
    assert_int_equal(brook_store_iter_prefix(s, prefixes[p], pl, &it), BROOK_OK);
    size_t want = 0, got = 0;
    for (size_t i = 0; i < m.n; i++)
      want += m.e[i].kl >= pl && memcmp(m.e[i].k, prefixes[p], pl) == 0;
    brook_store_entry_t e, prev = {0};
    while (brook_store_iter_next(it, &e)) {
      assert_true(e.key_len >= pl && memcmp(e.key, prefixes[p], pl) == 0);
      if (got)
        assert_true(key_cmp(prev.key, prev.key_len, e.key, e.key_len) < 0);
      got++;
      prev = e;
      static unsigned char keep[KEY_MAX]; /* views end at the next call: copy for compare */
      memcpy(keep, e.key, e.key_len);
      prev.key = keep;
    }
    assert_int_equal(brook_store_iter_close(it), BROOK_OK);
    assert_int_equal(got, want);
  }
  /* Seek within a range, forward and back. */
  assert_int_equal(brook_store_iter_range(s, "a", 1, "b", 1, &it), BROOK_OK);
  assert_int_equal(brook_store_iter_seek(it, "ab", 2), BROOK_OK);
  brook_store_entry_t e;
  size_t i = model_lb(&m, "ab", 2);
  if (brook_store_iter_next(it, &e))
    assert_int_equal(key_cmp(e.key, e.key_len, m.e[i].k, m.e[i].kl), 0);
  assert_int_equal(brook_store_iter_seek(it, "", 0), BROOK_OK); /* clamped to lo */
  i = model_lb(&m, "a", 1);
  assert_true(brook_store_iter_next(it, &e));
  assert_int_equal(key_cmp(e.key, e.key_len, m.e[i].k, m.e[i].kl), 0);
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  model_free(&m);
  brook_store_free(s);
}

static size_t time_key(unsigned char *out, const char *key, int64_t t) {
  size_t kl = strlen(key);
  memcpy(out, key, kl);
  brook_store_time_encode(t, out + kl);
  return kl + BROOK_STORE_TIME_LEN;
}

static void test_time_scans(void **state) {
  (void)state;
  if (!B->ordered)
    skip();
  /* Encoding: byte order is time order, across the sign. */
  const int64_t ts[] = {INT64_MIN, INT64_MIN + 1, -1000, -1, 0, 1, 999, INT64_MAX - 1, INT64_MAX};
  for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
    unsigned char a[8], b[8];
    brook_store_time_encode(ts[i], a);
    assert_true(brook_store_time_decode(a) == ts[i]);
    if (i) {
      brook_store_time_encode(ts[i - 1], b);
      assert_true(memcmp(b, a, 8) < 0);
    }
  }
  /* A session-window layout: key || time, keys that prefix each other. */
  brook_store_t *s = open_store(0);
  const char *keys[] = {"k", "k\x80", "ka", "kk", "l"};
  unsigned char buf[64];
  for (size_t k = 0; k < 5; k++)
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
      assert_int_equal(brook_store_put(s, buf, time_key(buf, keys[k], ts[i]), &ts[i], 8), BROOK_OK);
  /* Also a key of exactly the prefix's length + 8 that is not a time entry of "k" is
   * impossible to tell apart: but shorter and longer keys are skipped. */
  assert_int_equal(brook_store_put(s, "k\x80\x01", 3, "junk", 4), BROOK_OK);
  struct {
    int64_t from, to;
    size_t want_first, want_n; /* indexes into ts */
  } cases[] = {{INT64_MIN, INT64_MAX, 0, 9}, {-1, 1, 3, 2}, {0, INT64_MAX, 4, 5},
               {INT64_MAX, INT64_MAX, 8, 1}, {5, 5, 0, 0},  {-1000, 0, 2, 2}};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    brook_store_iter_t *it;
    assert_int_equal(brook_store_iter_time(s, "k", 1, cases[c].from, cases[c].to, &it), BROOK_OK);
    brook_store_entry_t e;
    size_t n = 0;
    while (brook_store_iter_next(it, &e)) {
      assert_int_equal(e.key_len, 9);
      assert_true(brook_store_entry_time_suffix(&e) == ts[cases[c].want_first + n]);
      n++;
    }
    assert_int_equal(brook_store_iter_close(it), BROOK_OK);
    assert_int_equal(n, cases[c].want_n);
  }
  /* seek_time jumps within the key's entries; delete during a time scan. */
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_time(s, "ka", 2, INT64_MIN, INT64_MAX, &it), BROOK_OK);
  assert_int_equal(brook_store_iter_seek_time(it, 0), BROOK_OK);
  brook_store_entry_t e;
  size_t n = 0;
  while (brook_store_iter_next(it, &e)) {
    assert_true(brook_store_entry_time_suffix(&e) == ts[4 + n]);
    assert_int_equal(brook_store_delete(s, e.key, e.key_len), BROOK_OK);
    n++;
  }
  assert_int_equal(n, 5);
  assert_int_equal(brook_store_iter_seek_time(it, INT64_MIN), BROOK_OK);
  n = 0;
  while (brook_store_iter_next(it, &e))
    n++;
  assert_int_equal(n, 4); /* the negative ones are left */
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  assert_int_equal(brook_store_iter_seek_time(it, 0), BROOK_ERR_STATE);
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  brook_store_free(s);

  /* A timer layout: time || key. The first timer at or after t, and all before a watermark,
   * firing (deleting) them as the scan goes and adding a later one on the way. */
  s = open_store(0);
  for (int64_t t = -50; t < 50; t += 3)
    for (int j = 0; j < 2; j++) {
      brook_store_time_encode(t, buf);
      buf[8] = (unsigned char)j;
      assert_int_equal(brook_store_put(s, buf, 9, "", 0), BROOK_OK);
    }
  assert_int_equal(brook_store_iter_time_prefixed(s, 0, INT64_MAX, &it), BROOK_OK);
  assert_true(brook_store_iter_next(it, &e));
  assert_true(brook_store_entry_time_prefix(&e) == 1); /* -50 + 17 * 3 */
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_int_equal(brook_store_iter_time_prefixed(s, INT64_MIN, 10, &it), BROOK_OK);
  int64_t last = INT64_MIN;
  n = 0;
  while (brook_store_iter_next(it, &e)) {
    int64_t t = brook_store_entry_time_prefix(&e);
    assert_true(t >= last && t < 10);
    last = t;
    assert_int_equal(brook_store_delete(s, e.key, e.key_len), BROOK_OK);
    if (n++ == 0) { /* a timer set while firing, due later: seen in this same scan */
      brook_store_time_encode(5, buf);
      buf[8] = 9;
      assert_int_equal(brook_store_put(s, buf, 9, "", 0), BROOK_OK);
    }
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  assert_int_equal(n, 2 * 20 + 1); /* t = -50 .. 7: 20 times, 2 keys each, plus the new one */
  assert_int_equal(brook_store_count(s), 2 * 34 - 40);
  brook_store_free(s);
}

static void test_iteration_with_puts(void **state) {
  (void)state;
  if (!B->ordered)
    skip();
  brook_store_t *s = open_store(0);
  for (int i = 10; i < 100; i += 10) {
    unsigned char k = (unsigned char)i;
    assert_int_equal(brook_store_put(s, &k, 1, "", 0), BROOK_OK);
  }
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  brook_store_entry_t e;
  int got[256] = {0};
  while (brook_store_iter_next(it, &e)) {
    unsigned char k = *(const unsigned char *)e.key;
    got[k]++;
    unsigned char behind = (unsigned char)(k - 5), ahead = (unsigned char)(k + 5);
    if (k % 10 == 0) {
      assert_int_equal(brook_store_put(s, &behind, 1, "", 0), BROOK_OK);
      assert_int_equal(brook_store_put(s, &ahead, 1, "", 0), BROOK_OK);
    }
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  for (int k = 0; k < 256; k++) {
    int want = (k % 10 == 0 && k >= 10 && k < 100) || (k % 10 == 5 && k >= 15 && k <= 95);
    assert_int_equal(got[k], want);
  }
  /* Two iterators at once, one deleting what the other is about to visit. */
  brook_store_iter_t *a, *b;
  assert_int_equal(brook_store_iter_all(s, &a), BROOK_OK);
  assert_int_equal(brook_store_iter_all(s, &b), BROOK_OK);
  brook_store_entry_t ea, eb;
  assert_true(brook_store_iter_next(a, &ea));
  assert_true(brook_store_iter_next(b, &eb));
  assert_true(brook_store_iter_next(b, &eb)); /* b on the second key */
  assert_int_equal(brook_store_delete(s, eb.key, eb.key_len), BROOK_OK);
  assert_true(brook_store_iter_next(a, &ea)); /* a skips the deleted second key */
  assert_true(brook_store_iter_next(b, &eb));
  assert_int_equal(key_cmp(ea.key, ea.key_len, eb.key, eb.key_len), 0);
  assert_int_equal(brook_store_iter_close(a), BROOK_OK);
  assert_int_equal(brook_store_iter_close(b), BROOK_OK);
  brook_store_free(s);
}

/* ---- snapshots ---- */

static void fill(brook_store_t *s, model_t *m, uint64_t seed, int n, size_t value_size) {
  uint64_t st = seed;
  unsigned char k[KEY_MAX], v[VAL_MAX];
  for (int i = 0; i < n; i++) {
    size_t kl = 4 + rnd(&st) % 12;
    for (size_t j = 0; j < kl; j++)
      k[j] = (unsigned char)rnd(&st);
    size_t vl = value_size ? value_size : rnd(&st) % VAL_MAX;
    for (size_t j = 0; j < vl; j++)
      v[j] = (unsigned char)rnd(&st);
    assert_int_equal(brook_store_put(s, k, kl, v, vl), BROOK_OK);
    model_put(m, k, kl, v, vl);
  }
}

static void test_snapshot_across_backends(void **state) {
  (void)state;
  for (size_t other = 0; other < N_BACKENDS; other++) {
    for (int dir = 0; dir < 2; dir++) {
      const backend_case_t *from = dir ? &backends[other] : B, *to = dir ? B : &backends[other];
      brook_store_t *a = open_store_on(from, 0, "from", NULL);
      brook_store_t *b = open_store_on(to, 0, "to", NULL);
      model_t m = {0};
      fill(a, &m, 5 + other, 700, 0);
      buf_t snap = {0};
      assert_int_equal(brook_store_snapshot(a, buf_write, &snap), BROOK_OK);
      assert_int_equal(brook_store_put(b, "stale", 5, "x", 1), BROOK_OK);
      change_log_t c = {0};
      brook_store_set_listener(b, log_change, &c);
      assert_int_equal(brook_store_restore(b, snap.p, snap.len), BROOK_OK);
      assert_int_equal(c.n_put + c.n_del, 0); /* a restore is not reported */
      model_check(&m, b);
      /* And the snapshot of the restored store is a snapshot of the same content. */
      buf_t again = {0};
      assert_int_equal(brook_store_snapshot(b, buf_write, &again), BROOK_OK);
      assert_int_equal(again.len, snap.len);
      /* A writer error aborts with that error. */
      buf_t failing = {.fail_at = 1};
      assert_int_equal(brook_store_snapshot(a, buf_write, &failing), BROOK_ERR_IO);
      free(failing.p);
      free(snap.p);
      free(again.p);
      model_free(&m);
      brook_store_free(a);
      brook_store_free(b);
    }
  }
}

/* Restores `len` bytes into a store holding something: expects CORRUPT, an empty store and a
 * message naming it. */
static void expect_corrupt(brook_store_t *t, size_t value_size, const unsigned char *p, size_t len,
                           const char *says) {
  assert_int_equal(brook_store_put(t, "old", 3, "0123456789abcdef", value_size), BROOK_OK);
  unsigned char *copy = malloc(len ? len : 1); /* exactly len bytes, for ASan */
  if (len)
    memcpy(copy, p, len);
  assert_int_equal(brook_store_restore(t, copy, len), BROOK_ERR_CORRUPT);
  free(copy);
  assert_int_equal(brook_store_count(t), 0);
  const void *v;
  assert_int_equal(brook_store_get(t, "old", 3, &v, NULL), BROOK_ERR_NOT_FOUND);
  const char *msg = brook_store_last_error(t);
  assert_non_null(strstr(msg, "store 'target'"));
  if (says && !strstr(msg, says))
    fail_msg("message '%s' does not say '%s'", msg, says);
}

static void test_snapshot_corrupt(void **state) {
  (void)state;
  brook_store_t *s = open_store(8);
  brook_store_t *t = open_store_on(B, 8, "target", NULL);
  model_t m = {0};
  fill(s, &m, 3, 12, 8);
  buf_t snap = {0};
  assert_int_equal(brook_store_snapshot(s, buf_write, &snap), BROOK_OK);
  for (size_t cut = 0; cut < snap.len; cut++)
    expect_corrupt(t, 8, snap.p, cut, cut < 48 ? "truncated" : NULL);
  unsigned char *q = malloc(snap.len);
  for (size_t pos = 0; pos < snap.len; pos++)
    for (int bit = 0; bit < 8; bit++) {
      memcpy(q, snap.p, snap.len);
      q[pos] ^= (unsigned char)(1u << bit);
      expect_corrupt(t, 8, q, snap.len, NULL);
    }
  /* The messages say what was wrong. */
  memcpy(q, snap.p, snap.len);
  q[0] = 'X';
  expect_corrupt(t, 8, q, snap.len, "magic");
  memcpy(q, snap.p, snap.len);
  q[8] = 2;
  expect_corrupt(t, 8, q, snap.len, "version 2");
  memcpy(q, snap.p, snap.len);
  q[snap.len - 1] ^= 1;
  expect_corrupt(t, 8, q, snap.len, "checksum");
  expect_corrupt(t, 8, snap.p, snap.len - 5, "truncated");
  /* Another value_size. */
  brook_store_t *other = open_store_on(B, 16, "target", NULL);
  expect_corrupt(other, 16, snap.p, snap.len, "value_size");
  brook_store_free(other);
  /* And the real thing restores. */
  assert_int_equal(brook_store_restore(t, snap.p, snap.len), BROOK_OK);
  model_check(&m, t);
  /* No restore while an iterator is open. */
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(t, &it), BROOK_OK);
  assert_int_equal(brook_store_restore(t, snap.p, snap.len), BROOK_ERR_STATE);
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  free(q);
  free(snap.p);
  model_free(&m);
  brook_store_free(s);
  brook_store_free(t);
}

/* ---- allocation failures ---- */

static buf_t sweep_snap;
static model_t sweep_model;

/* Every call succeeds or says NOMEM, and the store keeps a consistent content. */
static void scenario(const brook_allocator_t *a) {
  brook_store_t *s = open_store_on(B, 0, "oom", a);
  if (!s)
    return;
  model_t m = {0};
  uint64_t st = 21;
  unsigned char k[KEY_MAX], v[VAL_MAX];
  for (int i = 0; i < 300; i++) {
    size_t kl = 1 + random_key(&st, k), vl = rnd(&st) % VAL_MAX;
    k[0] = (unsigned char)i;
    for (size_t j = 0; j < vl; j++)
      v[j] = (unsigned char)rnd(&st);
    if (i % 4 == 3) {
      brook_err_t err = brook_store_delete(s, k, kl);
      assert_true(err == BROOK_OK || err == BROOK_ERR_NOT_FOUND || err == BROOK_ERR_NOMEM);
      if (err == BROOK_OK)
        model_del(&m, k, kl);
      continue;
    }
    brook_err_t err = brook_store_put(s, k, kl, v, vl);
    if (err == BROOK_OK)
      model_put(&m, k, kl, v, vl);
    else
      assert_int_equal(err, BROOK_ERR_NOMEM); /* and the store is unchanged: checked below */
  }
  /* Iterators and scans may fail to open, never half-work. */
  brook_store_iter_t *it;
  brook_err_t err =
      B->ordered ? brook_store_iter_prefix(s, "\x05", 1, &it) : brook_store_iter_all(s, &it);
  if (err == BROOK_OK) {
    brook_store_entry_t e;
    while (brook_store_iter_next(it, &e))
      ;
    err = brook_store_iter_close(it);
  }
  assert_true(err == BROOK_OK || err == BROOK_ERR_NOMEM);
  model_check_gets(&m, s); /* failed puts and deletes changed nothing */
  buf_t out = {0};
  err = brook_store_snapshot(s, buf_write, &out);
  assert_true(err == BROOK_OK || err == BROOK_ERR_NOMEM);
  free(out.p);
  err = brook_store_restore(s, sweep_snap.p, sweep_snap.len);
  if (err) {
    assert_int_equal(err, BROOK_ERR_NOMEM);
    assert_int_equal(brook_store_count(s), 0); /* never half restored */
  } else {
    model_check_gets(&sweep_model, s);
  }
  model_free(&m);
  brook_store_free(s);
}

static void test_allocation_failure(void **state) {
  (void)state;
  brook_store_t *s = open_store(0);
  fill(s, &sweep_model, 77, 400, 0);
  assert_int_equal(brook_store_snapshot(s, buf_write, &sweep_snap), BROOK_OK);
  brook_store_free(s);
  for (int persistent = 0; persistent < 2; persistent++) {
    for (long k = 1;; k++) {
      fail_alloc_t fa = {.fail_at = k, .persistent = persistent};
      brook_allocator_t a = fa_allocator(&fa);
      scenario(&a);
      assert_int_equal(fa.live, 0);
      if (!fa.injected)
        break;
    }
  }
  free(sweep_snap.p);
  model_free(&sweep_model);
}

/* ---- memory ---- */

static void test_memory_flat_under_churn(void **state) {
  (void)state;
  if (!B->memory_flat)
    skip();
  brook_store_t *s = open_store(0);
  uint64_t next = 0, oldest = 0;
  const uint64_t live = 5000 / (uint64_t)B->slow;
  size_t after_first = 0;
  for (int round = 0; round < 8; round++) {
    for (uint64_t i = 0; i < 20000 / (uint64_t)B->slow; i++) {
      assert_int_equal(brook_store_put(s, &next, 8, &next, 8), BROOK_OK);
      next++;
      if (next - oldest > live) {
        assert_int_equal(brook_store_delete(s, &oldest, 8), BROOK_OK);
        oldest++;
      }
    }
    /* A scan per round, as a window or timer store does: the pool keeps it allocation-free. */
    brook_store_iter_t *it;
    assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
    brook_store_entry_t e;
    size_t n = 0;
    while (brook_store_iter_next(it, &e))
      n++;
    assert_int_equal(brook_store_iter_close(it), BROOK_OK);
    assert_int_equal(n, live);
    size_t mem = brook_store_memory(s);
    if (round == 0)
      after_first = mem;
    else if (mem > after_first + after_first / 10)
      fail_msg("round %d: %zu bytes, %zu after the first round", round, mem, after_first);
  }
  /* Emptied out: the memory comes back (all but bookkeeping). */
  for (; oldest < next; oldest++)
    assert_int_equal(brook_store_delete(s, &oldest, 8), BROOK_OK);
  assert_true(brook_store_memory(s) < after_first / 4);
  brook_store_free(s);
}

/* ---- a user backend's errors ---- */

static void test_backend_errors(void **state) {
  (void)state;
  if (strcmp(B->name, "user") != 0)
    skip();
  brook_store_t *s = open_store(0);
  for (int i = 0; i < 20; i++)
    assert_int_equal(brook_store_put(s, &i, sizeof(i), &i, sizeof(i)), BROOK_OK);
  user_opts.fail_reads = 1;
  const void *v;
  int k = 3;
  assert_int_equal(brook_store_get(s, &k, sizeof(k), &v, NULL), BROOK_ERR_IO);
  assert_non_null(strstr(brook_store_last_error(s), "store 'under-test'"));
  assert_non_null(strstr(brook_store_last_error(s), "injected read error"));
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  brook_store_entry_t e;
  assert_false(brook_store_iter_next(it, &e));
  assert_int_equal(brook_store_iter_close(it), BROOK_ERR_IO);
  buf_t snap = {0};
  assert_int_equal(brook_store_snapshot(s, buf_write, &snap), BROOK_ERR_IO);
  free(snap.p);
  user_opts.fail_reads = 0;
  user_opts.fail_open = 1;
  brook_store_t *t = NULL;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  opts_user(&o);
  assert_int_equal(brook_store_new(&t, &o, NULL), BROOK_ERR_IO);
  assert_null(t);
  user_opts.fail_open = 0;
  brook_store_free(s);
}

int main(int argc, char **argv) {
  const char *want = argc > 1 ? argv[1] : "hash";
  for (size_t i = 0; i < N_BACKENDS; i++)
    if (strcmp(backends[i].name, want) == 0)
      B = &backends[i];
  if (!B) {
    fprintf(stderr, "test_store_backend: no backend '%s'\n", want);
    return 2;
  }
  printf("store backend: %s\n", B->name);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_get_delete),
      cmocka_unit_test(test_random_ops_deep),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_update_in_place),
      cmocka_unit_test(test_listener),
      cmocka_unit_test(test_iteration_with_deletes),
      cmocka_unit_test(test_ordered_ranges),
      cmocka_unit_test(test_time_scans),
      cmocka_unit_test(test_iteration_with_puts),
      cmocka_unit_test(test_snapshot_across_backends),
      cmocka_unit_test(test_snapshot_corrupt),
      cmocka_unit_test(test_allocation_failure),
      cmocka_unit_test(test_memory_flat_under_churn),
      cmocka_unit_test(test_backend_errors),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests_name(B->name, tests, NULL, NULL);
}
