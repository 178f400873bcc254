/* Tests of the in-memory state store (brook/state.h, src/state/): semantics, growth and
 * shrinking, iteration with deletion, the change listener, snapshot/restore including
 * hostile snapshots, and allocation failure at every allocation. Random tests compare the
 * store with a brute-force model; bk_store_check() verifies the internal invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/state.h>

#include "core/crc32c.h"
#include "core/hash.h"
#include "state/store.h"
#include "support/fail_alloc.h"
#include "support/write_buf.h"

/* ---- helpers: random numbers, keys ---- */

static uint64_t rnd(uint64_t *st) { /* splitmix64 */
  uint64_t z = (*st += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

#define KEY_MAX 24

/* Key bytes for id: id 0 is the empty key; others start with the id (so they are unique). */
static size_t make_key(uint64_t id, unsigned char *buf) {
  if (id == 0)
    return 0;
  size_t len = 8 + id % 13;
  for (size_t i = 0; i < 8; i++)
    buf[i] = (unsigned char)(id >> (8 * i));
  for (size_t i = 8; i < len; i++)
    buf[i] = (unsigned char)(id * 31 + i);
  return len;
}

static uint64_t key_id(const void *key, size_t klen) {
  uint64_t id = 0;
  for (size_t i = 0; i < 8 && i < klen; i++)
    id |= (uint64_t)((const unsigned char *)key)[i] << (8 * i);
  return id;
}

/* ---- the model: what the store should hold, per key id ---- */

typedef struct model {
  size_t n_ids;
  unsigned char **val;
  size_t *vlen;
  unsigned char *present;
  size_t count;
} model_t;

static void model_init(model_t *m, size_t n_ids) {
  m->n_ids = n_ids;
  m->val = calloc(n_ids, sizeof(*m->val));
  m->vlen = calloc(n_ids, sizeof(*m->vlen));
  m->present = calloc(n_ids, 1);
  m->count = 0;
}

static void model_free(model_t *m) {
  for (size_t i = 0; i < m->n_ids; i++)
    free(m->val[i]);
  free(m->val);
  free(m->vlen);
  free(m->present);
}

static void model_put(model_t *m, uint64_t id, const void *v, size_t vlen) {
  free(m->val[id]);
  m->val[id] = malloc(vlen ? vlen : 1);
  if (vlen)
    memcpy(m->val[id], v, vlen);
  m->vlen[id] = vlen;
  m->count += !m->present[id];
  m->present[id] = 1;
}

static void model_del(model_t *m, uint64_t id) {
  m->count -= m->present[id];
  m->present[id] = 0;
}

/* The store holds exactly the model's content; iteration visits every entry once. */
static void model_check(const model_t *m, const brook_store_t *s) {
  assert_true(bk_store_check(s));
  assert_int_equal(brook_store_count(s), m->count);
  unsigned char key[KEY_MAX];
  for (uint64_t id = 0; id < m->n_ids; id++) {
    const void *v;
    size_t vlen;
    brook_err_t err = brook_store_get(s, key, make_key(id, key), &v, &vlen);
    if (!m->present[id]) {
      assert_int_equal(err, BROOK_ERR_NOT_FOUND);
      continue;
    }
    assert_int_equal(err, BROOK_OK);
    assert_int_equal(vlen, m->vlen[id]);
    if (vlen)
      assert_memory_equal(v, m->val[id], vlen);
    assert_int_equal((uintptr_t)v % 16, 0);
  }
  unsigned char *seen = calloc(m->n_ids, 1);
  size_t cursor = 0, n = 0, klen;
  const void *k;
  while (brook_store_next(s, &cursor, &k, &klen, NULL, NULL)) {
    uint64_t id = key_id(k, klen);
    assert_true(id < m->n_ids && m->present[id] && !seen[id]);
    seen[id] = 1;
    n++;
  }
  assert_int_equal(n, m->count);
  free(seen);
}

static void random_value(uint64_t *st, unsigned char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)rnd(st);
}

/* ---- basic semantics ---- */

static void test_put_get_delete(void **state) {
  (void)state;
  brook_store_t *s;
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  const void *v = (const void *)1;
  size_t vlen = 99;
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_ERR_NOT_FOUND);
  assert_null(v);
  assert_int_equal(vlen, 0);

  assert_int_equal(brook_store_put(s, "a", 1, "hello", 5), BROOK_OK);
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_OK);
  assert_int_equal(vlen, 5);
  assert_memory_equal(v, "hello", 5);
  assert_int_equal((uintptr_t)v % 16, 0);

  /* Same size: replaced in place; then smaller, larger, and a large (>64 KiB) block. */
  assert_int_equal(brook_store_put(s, "a", 1, "world", 5), BROOK_OK);
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_OK);
  assert_memory_equal(v, "world", 5);
  assert_int_equal(brook_store_put(s, "a", 1, "x", 1), BROOK_OK);
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_OK);
  assert_int_equal(vlen, 1);
  assert_memory_equal(v, "x", 1);
  size_t big_len = 200000;
  unsigned char *big = malloc(big_len);
  uint64_t st = 1;
  random_value(&st, big, big_len);
  assert_int_equal(brook_store_put(s, "a", 1, big, big_len), BROOK_OK);
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_OK);
  assert_int_equal(vlen, big_len);
  assert_memory_equal(v, big, big_len);
  assert_int_equal((uintptr_t)v % 16, 0);
  assert_true(brook_store_memory(s) > big_len);
  /* A put whose value points into the store itself. */
  assert_int_equal(brook_store_put(s, "a", 1, (const unsigned char *)v + 10, 100), BROOK_OK);
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_OK);
  assert_memory_equal(v, big + 10, 100);
  assert_int_equal(brook_store_put(s, "a", 1, (const unsigned char *)v + 1, 99), BROOK_OK);
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_OK);
  assert_memory_equal(v, big + 11, 99);
  assert_true(brook_store_memory(s) < big_len);
  free(big);

  /* Zero-length key (NULL or not) and zero-length value. */
  assert_int_equal(brook_store_put(s, NULL, 0, "empty-key", 9), BROOK_OK);
  assert_int_equal(brook_store_get(s, "zzz", 0, &v, &vlen), BROOK_OK);
  assert_memory_equal(v, "empty-key", 9);
  assert_int_equal(brook_store_put(s, "b", 1, NULL, 0), BROOK_OK);
  assert_int_equal(brook_store_get(s, "b", 1, &v, &vlen), BROOK_OK);
  assert_non_null(v);
  assert_int_equal(vlen, 0);
  assert_int_equal(brook_store_get(s, "b", 1, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_store_count(s), 3);
  assert_true(bk_store_check(s));

  assert_int_equal(brook_store_delete(s, "a", 1), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "a", 1), BROOK_ERR_NOT_FOUND);
  assert_int_equal(brook_store_get(s, "a", 1, &v, &vlen), BROOK_ERR_NOT_FOUND);
  assert_int_equal(brook_store_delete(s, NULL, 0), BROOK_OK);
  assert_int_equal(brook_store_count(s), 1);
  brook_store_clear(s);
  assert_int_equal(brook_store_count(s), 0);
  assert_int_equal(brook_store_get(s, "b", 1, &v, &vlen), BROOK_ERR_NOT_FOUND);
  assert_true(bk_store_check(s));
  brook_store_free(s);
  brook_store_free(NULL);
}

static void test_misuse(void **state) {
  (void)state;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = 8;
  brook_store_t *fixed, *var;
  assert_int_equal(brook_store_new(NULL, &o, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_new(&fixed, &o, NULL), BROOK_OK);
  assert_int_equal(brook_store_new(&var, NULL, NULL), BROOK_OK);
  brook_store_opts_t bad = o;
  bad.struct_size = sizeof(bad) + 8;
  brook_store_t *x = (brook_store_t *)1;
  assert_int_equal(brook_store_new(&x, &bad, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(x);

  const void *v;
  size_t vlen;
  void *pv;
  assert_int_equal(brook_store_get(NULL, "a", 1, &v, &vlen), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_get(var, NULL, 1, &v, &vlen), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(NULL, "a", 1, "v", 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(var, NULL, 1, "v", 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(var, "a", 1, NULL, 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(fixed, "a", 1, "1234567", 7), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(fixed, "a", 1, "123456789", 9), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(fixed, "a", 1, "12345678", 8), BROOK_OK);
  assert_int_equal(brook_store_delete(NULL, "a", 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_delete(var, NULL, 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_update(var, "a", 1, &pv, NULL), BROOK_ERR_STATE);
  assert_null(pv);
  assert_int_equal(brook_store_update(NULL, "a", 1, &pv, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_update(fixed, NULL, 1, &pv, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_update(fixed, "a", 1, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(bk_store_upsert(var, "a", 1, bk_hash_bytes("a", 1), &pv, NULL), BROOK_ERR_STATE);
  assert_int_equal(brook_store_count(NULL), 0);
  assert_int_equal(brook_store_memory(NULL), 0);
  size_t cursor = 0;
  assert_int_equal(brook_store_next(NULL, &cursor, NULL, NULL, NULL, NULL), 0);
  assert_int_equal(brook_store_next(var, NULL, NULL, NULL, NULL, NULL), 0);
  assert_int_equal(brook_store_flush_changes(NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_snapshot(NULL, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_snapshot(var, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_restore(NULL, "x", 1), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_restore(var, NULL, 1), BROOK_ERR_INVALID_ARG);
  brook_store_clear(NULL);
  brook_store_set_listener(NULL, NULL, NULL);
  bk_store_prefetch(var, 1); /* no table yet */
  bk_store_prefetch_entry(var, 1);
  assert_int_equal(brook_store_count(fixed), 1);
  assert_true(bk_store_check(fixed) && bk_store_check(var));
  brook_store_free(fixed);
  brook_store_free(var);
}

static void test_update_in_place(void **state) {
  (void)state;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = 24;
  brook_store_t *s;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_OK);
  void *p0;
  int created = -1;
  assert_int_equal(brook_store_update(s, "k", 1, &p0, &created), BROOK_OK);
  assert_int_equal(created, 1);
  assert_int_equal((uintptr_t)p0 % 16, 0);
  static const unsigned char zero[24];
  assert_memory_equal(p0, zero, 24);
  ((uint64_t *)p0)[0] = 41;
  /* Pointers stay valid while the table grows under them. */
  for (uint64_t i = 0; i < 5000; i++) {
    void *p;
    uint64_t key = i + 1000;
    assert_int_equal(brook_store_update(s, &key, sizeof(key), &p, NULL), BROOK_OK);
    ((uint64_t *)p)[1] = i;
  }
  void *p1;
  assert_int_equal(brook_store_update(s, "k", 1, &p1, &created), BROOK_OK);
  assert_int_equal(created, 0);
  assert_ptr_equal(p0, p1);
  assert_int_equal(((uint64_t *)p1)[0], 41);
  ((uint64_t *)p1)[0]++;
  const void *v;
  size_t vlen;
  assert_int_equal(brook_store_get(s, "k", 1, &v, &vlen), BROOK_OK);
  assert_int_equal(vlen, 24);
  assert_int_equal(((const uint64_t *)v)[0], 42);
  for (uint64_t i = 0; i < 5000; i++) {
    uint64_t key = i + 1000;
    size_t len;
    const uint64_t *w = bk_store_find(s, &key, sizeof(key), bk_hash_bytes(&key, 8), &len);
    assert_non_null(w);
    assert_int_equal(len, 24);
    assert_int_equal(w[1], i);
  }
  uint64_t absent = 7;
  assert_null(bk_store_find(s, &absent, 8, bk_hash_bytes(&absent, 8), NULL));
  for (uint64_t key = 990; key < 1010; key++) { /* the batch hints are harmless */
    bk_store_prefetch(s, bk_hash_bytes(&key, 8));
    bk_store_prefetch_entry(s, bk_hash_bytes(&key, 8));
  }
  assert_int_equal(bk_store_remove(s, "k", 1, bk_hash_bytes("k", 1)), BROOK_OK);
  assert_int_equal(bk_store_remove(s, "k", 1, bk_hash_bytes("k", 1)), BROOK_ERR_NOT_FOUND);
  assert_true(bk_store_check(s));
  assert_false(bk_store_has_pending_changes(s)); /* no listener: nothing tracked */
  brook_store_free(s);
}

static void test_named_store(void **state) {
  (void)state;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.expected_entries = 1000;
  char name[] = "counts";
  brook_store_t *s;
  assert_int_equal(bk_store_create(NULL, &o, name, &s, NULL), BROOK_OK);
  name[0] = 'X';
  assert_string_equal(bk_store_name(s), "counts");
  size_t m0 = brook_store_memory(s);
  assert_true(m0 >= 1000 * sizeof(bk_slot_t));
  /* expected_entries is a floor: filling and emptying the store keeps that table. */
  for (uint64_t i = 0; i < 1000; i++)
    assert_int_equal(brook_store_put(s, &i, 8, &i, 8), BROOK_OK);
  for (uint64_t i = 0; i < 1000; i++)
    assert_int_equal(brook_store_delete(s, &i, 8), BROOK_OK);
  assert_int_equal(s->cap, 2048);
  bk_store_destroy(s);
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  assert_string_equal(bk_store_name(s), "store"); /* a standalone store's default name */
  brook_store_free(s);
}

/* ---- growth, shrinking, memory ---- */

static void test_million_entries(void **state) {
  (void)state;
  const uint64_t n = 1000000;
  brook_store_t *s;
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  size_t m_empty = brook_store_memory(s);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t v = i * 3 + 1;
    assert_int_equal(brook_store_put(s, &i, sizeof(i), &v, sizeof(v)), BROOK_OK);
  }
  assert_int_equal(brook_store_count(s), n);
  size_t m_full = brook_store_memory(s);
  assert_true(m_full > n * 48);
  assert_true(m_full < n * 100);
  assert_true(bk_store_check(s));
  for (uint64_t i = 0; i < n; i++) {
    const void *v;
    size_t vlen;
    assert_int_equal(brook_store_get(s, &i, sizeof(i), &v, &vlen), BROOK_OK);
    assert_int_equal(vlen, 8);
    assert_int_equal(*(const uint64_t *)v, i * 3 + 1);
  }
  /* Delete all but a few, in a scattered order; then an insert shrinks the table. */
  for (uint64_t i = 0; i < n; i++) {
    uint64_t k = (i * 7919) % n;
    if (k >= 10)
      assert_int_equal(brook_store_delete(s, &k, sizeof(k)), BROOK_OK);
  }
  assert_int_equal(brook_store_count(s), 10);
  uint64_t k = n;
  assert_int_equal(brook_store_put(s, &k, 8, &k, 8), BROOK_OK);
  assert_true(bk_store_check(s));
  assert_true(brook_store_memory(s) < 512 * 1024);
  for (uint64_t i = 0; i <= 10; i++) {
    uint64_t key = i < 10 ? i : n;
    assert_int_equal(brook_store_delete(s, &key, 8), BROOK_OK);
  }
  assert_int_equal(brook_store_count(s), 0);
  size_t m_after = brook_store_memory(s);
  /* What stays: one empty chunk kept for reuse and the slab's chunk table (48 bytes per
   * 64 KiB chunk at the peak). */
  assert_true(m_after < m_empty + 64 * 1024 + 64 * 1024);
  assert_true(m_after < m_full / 500);
  assert_true(bk_store_check(s));
  brook_store_free(s);
}

/* A listener that counts its calls in *(long *)opaque. */
static brook_err_t count_calls(const void *key, size_t klen, const void *value, size_t vlen,
                               void *opaque) {
  (void)key, (void)klen, (void)value, (void)vlen;
  ++*(long *)opaque;
  return BROOK_OK;
}

/* A byte-counting allocator: each block carries its size in a 16-byte header, so `live` is
 * exactly what the store holds from its allocator at any moment. */
typedef struct count_alloc {
  size_t live;
  long calls; /* alloc and realloc calls */
} count_alloc_t;

#define CA_HDR 16

static void *ca_alloc(size_t size, void *opaque) {
  unsigned char *p = malloc(CA_HDR + size);
  if (!p)
    return NULL;
  memcpy(p, &size, sizeof(size));
  ((count_alloc_t *)opaque)->live += size;
  ((count_alloc_t *)opaque)->calls++;
  return p + CA_HDR;
}

static void ca_free(void *ptr, void *opaque) {
  if (!ptr)
    return;
  unsigned char *p = (unsigned char *)ptr - CA_HDR;
  size_t size;
  memcpy(&size, p, sizeof(size));
  ((count_alloc_t *)opaque)->live -= size;
  free(p);
}

static void *ca_realloc(void *ptr, size_t size, void *opaque) {
  void *n = ca_alloc(size, opaque);
  if (n && ptr) {
    size_t old;
    memcpy(&old, (unsigned char *)ptr - CA_HDR, sizeof(old));
    memcpy(n, ptr, old < size ? old : size);
    ca_free(ptr, opaque);
  }
  return n;
}

static brook_allocator_t ca_allocator(count_alloc_t *ca) {
  return (brook_allocator_t){ca_alloc, ca_realloc, ca_free, ca};
}

/* brook_store_memory is what the store really holds from its allocator. */
static void assert_memory_honest(const brook_store_t *s, const count_alloc_t *ca) {
  assert_int_equal(brook_store_memory(s), ca->live);
}

/* A store is paid for per partition task and per operator: one with a handful of keys must
 * cost about what they need, not a 64 KiB slab chunk per size class. */
static void test_small_store_memory(void **state) {
  (void)state;
  count_alloc_t ca = {0};
  brook_allocator_t a = ca_allocator(&ca);
  brook_store_t *s;

  /* Variable-size values, as brook_store_put gives them. */
  assert_int_equal(brook_store_new(&s, NULL, &a), BROOK_OK);
  assert_memory_honest(s, &ca);
  size_t empty = brook_store_memory(s);
  printf("empty store: %zu bytes\n", empty);
  assert_true(empty <= 1024);
  static const char *const keys[] = {"card-00001", "card-00002", "card-00003"};
  for (uint64_t i = 0; i < 3; i++)
    assert_int_equal(brook_store_put(s, keys[i], strlen(keys[i]), &i, sizeof(i)), BROOK_OK);
  assert_memory_honest(s, &ca);
  printf("3 keys (put): %zu bytes\n", brook_store_memory(s));
  assert_true(brook_store_memory(s) <= 4096);
  /* Three keys in three size classes still fit. */
  unsigned char val[200] = {0};
  assert_int_equal(brook_store_put(s, keys[1], strlen(keys[1]), val, 100), BROOK_OK);
  assert_int_equal(brook_store_put(s, keys[2], strlen(keys[2]), val, 200), BROOK_OK);
  assert_memory_honest(s, &ca);
  printf("3 keys, 3 size classes: %zu bytes\n", brook_store_memory(s));
  assert_true(brook_store_memory(s) <= 4096);
  brook_store_free(s);
  assert_int_equal(ca.live, 0);

  /* A named store with fixed-size values updated in place and a change listener, as an
   * operator's store in a task (brook_store_open). */
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = 16;
  assert_int_equal(bk_store_create(&a, &o, "aggregate", &s, NULL), BROOK_OK);
  assert_memory_honest(s, &ca);
  assert_true(brook_store_memory(s) <= 1024);
  long calls = 0;
  brook_store_set_listener(s, count_calls, &calls);
  for (uint64_t i = 0; i < 3; i++) {
    void *v;
    assert_int_equal(brook_store_update(s, keys[i], strlen(keys[i]), &v, NULL), BROOK_OK);
    memcpy(v, &i, sizeof(i));
  }
  assert_memory_honest(s, &ca);
  printf("3 keys (update, listener): %zu bytes\n", brook_store_memory(s));
  assert_true(brook_store_memory(s) <= 4096);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  assert_int_equal(calls, 3);
  bk_store_destroy(s);
  assert_int_equal(ca.live, 0);
}

/* Growing from small: the accounting stays exact at every size, through growth, deletion,
 * clearing and regrowth; the slack stays bounded (memory is at most about twice what a store
 * of that many entries needs at its peak size), and growth stays amortised O(1): about one
 * allocation per 64 KiB of entries, plus a logarithmic number for the table and small
 * chunks. */
static void test_memory_growth_accounting(void **state) {
  (void)state;
  count_alloc_t ca = {0};
  brook_allocator_t a = ca_allocator(&ca);
  brook_store_t *s;
  assert_int_equal(brook_store_new(&s, NULL, &a), BROOK_OK);
  unsigned char key[KEY_MAX], val[300];
  uint64_t st = 5;
  for (int round = 0; round < 2; round++) {
    long calls0 = ca.calls;
    for (uint64_t id = 1; id <= 50000; id++) {
      size_t vl = rnd(&st) % 64;
      random_value(&st, val, vl);
      assert_int_equal(brook_store_put(s, key, make_key(id, key), val, vl), BROOK_OK);
      if ((id & (id - 1)) == 0) /* powers of two */
        assert_memory_honest(s, &ca);
    }
    assert_memory_honest(s, &ca);
    /* 50,000 entries of 16 + 16..32 key + 0..63 value bytes (about 80 on average) and a
     * 131,072-slot table: far below twice that. */
    assert_true(brook_store_memory(s) < 2 * (50000 * 80 + 131072 * sizeof(bk_slot_t)));
    long calls = ca.calls - calls0;
    printf("round %d: 50000 keys, %zu bytes, %ld allocations\n", round, brook_store_memory(s),
           calls);
    assert_true(calls < (long)(brook_store_memory(s) / 65536) + 150);
    for (uint64_t id = 1; id <= 50000; id += 2)
      assert_int_equal(brook_store_delete(s, key, make_key(id, key)), BROOK_OK);
    assert_memory_honest(s, &ca);
    brook_store_clear(s);
    assert_memory_honest(s, &ca);
    assert_true(bk_store_check(s));
  }
  brook_store_free(s);
  assert_int_equal(ca.live, 0);
}

/* Insert/delete cycles and random steady churn: memory does not creep up. */
static void test_memory_flat_under_churn(void **state) {
  (void)state;
  brook_store_t *s;
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  unsigned char key[KEY_MAX], val[300];
  size_t peak1 = 0, low1 = 0;
  for (int cycle = 0; cycle < 8; cycle++) {
    uint64_t st = 42;
    for (uint64_t id = 1; id <= 20000; id++) {
      size_t vl = rnd(&st) % 200;
      random_value(&st, val, vl);
      assert_int_equal(brook_store_put(s, key, make_key(id, key), val, vl), BROOK_OK);
    }
    size_t peak = brook_store_memory(s);
    for (uint64_t id = 20000; id >= 1; id--)
      assert_int_equal(brook_store_delete(s, key, make_key(id, key)), BROOK_OK);
    size_t low = brook_store_memory(s);
    assert_true(low < 16 * 1024); /* emptied after a burst: table and chunks released */
    if (cycle == 1) {
      peak1 = peak;
      low1 = low;
    } else if (cycle > 1) {
      assert_int_equal(peak, peak1);
      assert_int_equal(low, low1);
    }
  }
  assert_true(bk_store_check(s));

  /* Random churn around 5,000 live keys out of 10,000. */
  model_t m;
  model_init(&m, 10001);
  uint64_t st = 7;
  size_t ref_mem = 0;
  for (long op = 0; op < 400000; op++) {
    uint64_t id = 1 + rnd(&st) % 10000;
    if (rnd(&st) % 2) {
      size_t vl = rnd(&st) % 300;
      random_value(&st, val, vl);
      assert_int_equal(brook_store_put(s, key, make_key(id, key), val, vl), BROOK_OK);
      model_put(&m, id, val, vl);
    } else {
      brook_err_t err = brook_store_delete(s, key, make_key(id, key));
      assert_int_equal(err, m.present[id] ? BROOK_OK : BROOK_ERR_NOT_FOUND);
      model_del(&m, id);
    }
    if (op == 100000)
      ref_mem = brook_store_memory(s);
    if (op > 100000 && op % 1000 == 0)
      assert_true(brook_store_memory(s) <= ref_mem + ref_mem / 5);
  }
  model_check(&m, s);
  model_free(&m);
  brook_store_free(s);
}

/* ---- iteration ---- */

/* Iterates the store, deleting each returned entry with probability del_pct%: every entry
 * present at the start is visited exactly once. */
static void iterate_deleting(brook_store_t *s, model_t *m, uint64_t *st, unsigned del_pct) {
  unsigned char *seen = calloc(m->n_ids, 1);
  size_t cursor = 0, klen, vlen, n = 0, expected = m->count;
  const void *k, *v;
  while (brook_store_next(s, &cursor, &k, &klen, &v, &vlen)) {
    uint64_t id = key_id(k, klen);
    assert_true(id < m->n_ids && m->present[id] && !seen[id]);
    assert_int_equal(vlen, m->vlen[id]);
    seen[id] = 1;
    n++;
    if (rnd(st) % 100 < del_pct) {
      unsigned char key[KEY_MAX];
      assert_int_equal(brook_store_delete(s, key, make_key(id, key)), BROOK_OK);
      model_del(m, id);
    }
  }
  assert_int_equal(n, expected);
  assert_int_equal(brook_store_next(s, &cursor, &k, &klen, &v, &vlen), 0);
  free(seen);
  model_check(m, s);
}

static void test_iteration_with_deletion(void **state) {
  (void)state;
  static const size_t sizes[] = {0, 1, 5, 11, 12, 50, 300, 3000, 20000};
  unsigned char key[KEY_MAX], val[64];
  for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
    for (uint64_t seed = 1; seed <= 4; seed++) {
      uint64_t st = seed * 1000 + si;
      brook_store_t *s;
      assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
      model_t m;
      model_init(&m, 4 * sizes[si] + 2);
      /* Insert, then delete some, so the table has tombstones too. */
      while (m.count < sizes[si] + sizes[si] / 3) {
        uint64_t id = rnd(&st) % m.n_ids;
        size_t vl = rnd(&st) % 64;
        random_value(&st, val, vl);
        assert_int_equal(brook_store_put(s, key, make_key(id, key), val, vl), BROOK_OK);
        model_put(&m, id, val, vl);
      }
      for (uint64_t id = 0; id < m.n_ids && m.count > sizes[si]; id++) {
        if (m.present[id] && rnd(&st) % 2) {
          assert_int_equal(brook_store_delete(s, key, make_key(id, key)), BROOK_OK);
          model_del(&m, id);
        }
      }
      iterate_deleting(s, &m, &st, 0);
      iterate_deleting(s, &m, &st, 50);
      iterate_deleting(s, &m, &st, 100);
      assert_int_equal(brook_store_count(s), 0);
      model_free(&m);
      brook_store_free(s);
    }
  }
}

/* Keys whose home slot is the last of a 16-slot table: their cluster wraps around. */
static void test_iteration_wraps_around(void **state) {
  (void)state;
  for (unsigned del_pct = 0; del_pct <= 100; del_pct += 50) {
    brook_store_t *s;
    assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
    model_t m;
    model_init(&m, 100000);
    unsigned char key[KEY_MAX];
    uint64_t st = del_pct + 3;
    for (uint64_t id = 1; id < m.n_ids && m.count < 10; id++) {
      size_t klen = make_key(id, key);
      uint64_t home = bk_hash_bytes(key, klen) & 15;
      if (home == 15 || (home == 14 && m.count % 3 == 0)) {
        assert_int_equal(brook_store_put(s, key, klen, &id, sizeof(id)), BROOK_OK);
        model_put(&m, id, &id, sizeof(id));
      }
    }
    assert_int_equal(s->cap, 16);
    assert_non_null(s->slots[0].e); /* the cluster really wraps */
    assert_non_null(s->slots[15].e);
    iterate_deleting(s, &m, &st, del_pct);
    iterate_deleting(s, &m, &st, 100);
    model_free(&m);
    brook_store_free(s);
  }
}

/* ---- the change listener ---- */

typedef struct event {
  char key[16];
  char val[16]; /* "" and deleted = 1 for a deletion */
  int deleted;
} event_t;

typedef struct recorder {
  event_t ev[64];
  size_t n;
  brook_err_t fail_with;
} recorder_t;

static brook_err_t record(const void *key, size_t klen, const void *value, size_t vlen,
                          void *opaque) {
  recorder_t *r = opaque;
  assert_true(r->n < 64 && klen < 16 && vlen < 16);
  event_t *e = &r->ev[r->n++];
  memset(e, 0, sizeof(*e));
  memcpy(e->key, key, klen);
  e->deleted = value == NULL;
  if (value)
    memcpy(e->val, value, vlen);
  return r->fail_with;
}

static void expect_events(recorder_t *r, const char *const *want) {
  size_t n = 0;
  for (; want[n]; n++) {
    char buf[40];
    assert_true(n < r->n);
    snprintf(buf, sizeof(buf), r->ev[n].deleted ? "-%s" : "%s=%s", r->ev[n].key, r->ev[n].val);
    assert_string_equal(buf, want[n]);
  }
  assert_int_equal(r->n, n);
  r->n = 0;
}

static void upd(brook_store_t *s, const char *key, char c) {
  char *p;
  assert_int_equal(brook_store_update(s, key, strlen(key), (void **)&p, NULL), BROOK_OK);
  p[0] = c;
}

static void test_listener(void **state) {
  (void)state;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = 1;
  brook_store_t *s;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_OK);
  recorder_t r = {.n = 0};
  brook_store_set_listener(s, record, &r);

  assert_int_equal(brook_store_put(s, "a", 1, "1", 1), BROOK_OK);
  assert_int_equal(brook_store_put(s, "a", 1, "2", 1), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "a", 1), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "a", 1), BROOK_ERR_NOT_FOUND);
  expect_events(&r, (const char *const[]){"a=1", "a=2", "-a", NULL});

  /* Updates are coalesced and reported at flush, in first-update order. */
  upd(s, "b", '1');
  upd(s, "c", '1');
  upd(s, "b", '2');
  upd(s, "b", '3');
  assert_true(bk_store_has_pending_changes(s));
  expect_events(&r, (const char *const[]){NULL});
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  expect_events(&r, (const char *const[]){"b=3", "c=1", NULL});
  assert_false(bk_store_has_pending_changes(s));
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  expect_events(&r, (const char *const[]){NULL});

  /* A put on a dirty entry is reported at once and clears the dirty mark; deleting a dirty
   * entry reports the deletion only. */
  upd(s, "b", '4');
  upd(s, "c", '2');
  upd(s, "d", '1');
  assert_int_equal(brook_store_put(s, "b", 1, "5", 1), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "c", 1), BROOK_OK);
  expect_events(&r, (const char *const[]){"b=5", "-c", NULL});
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  expect_events(&r, (const char *const[]){"d=1", NULL});

  /* Listener errors come back from the call; the change is applied anyway. */
  r.fail_with = BROOK_ERR_USER;
  assert_int_equal(brook_store_put(s, "e", 1, "1", 1), BROOK_ERR_USER);
  assert_int_equal(brook_store_get(s, "e", 1, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "e", 1), BROOK_ERR_USER);
  assert_int_equal(brook_store_get(s, "e", 1, NULL, NULL), BROOK_ERR_NOT_FOUND);
  upd(s, "f", '1');
  upd(s, "g", '1');
  assert_int_equal(brook_store_flush_changes(s), BROOK_ERR_USER);
  expect_events(&r, (const char *const[]){"e=1", "-e", "f=1", "g=1", NULL});
  assert_false(bk_store_has_pending_changes(s));
  r.fail_with = BROOK_OK;

  /* Snapshot flushes first; restore reports nothing; clear reports every deletion. */
  upd(s, "b", '6');
  buf_t snap = {0};
  assert_int_equal(brook_store_snapshot(s, buf_write, &snap), BROOK_OK);
  expect_events(&r, (const char *const[]){"b=6", NULL});
  assert_int_equal(brook_store_put(s, "z", 1, "1", 1), BROOK_OK);
  upd(s, "b", '9');
  r.n = 0;
  assert_int_equal(brook_store_restore(s, snap.p, snap.len), BROOK_OK);
  assert_false(bk_store_has_pending_changes(s)); /* restore forgets pending changes */
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  expect_events(&r, (const char *const[]){NULL});
  assert_int_equal(brook_store_get(s, "z", 1, NULL, NULL), BROOK_ERR_NOT_FOUND);
  const void *v;
  assert_int_equal(brook_store_get(s, "b", 1, &v, NULL), BROOK_OK);
  assert_memory_equal(v, "6", 1);
  free(snap.p);
  brook_store_set_listener(s, NULL, NULL);
  upd(s, "b", '7'); /* no listener: not tracked */
  assert_false(bk_store_has_pending_changes(s));
  brook_store_set_listener(s, record, &r);
  brook_store_clear(s);
  assert_int_equal(r.n, 4); /* b d f g, in table order */
  for (size_t i = 0; i < r.n; i++)
    assert_true(r.ev[i].deleted);
  r.n = 0;
  assert_int_equal(brook_store_count(s), 0);
  brook_store_free(s);
}

/* ---- snapshot and restore ---- */

/* Fills s (and m) with about n random entries; values are value_size bytes, or random
 * lengths with now and then one bigger than a snapshot block. */
static void fill_random(brook_store_t *s, model_t *m, uint64_t *st, size_t n, size_t value_size) {
  static unsigned char val[150000];
  unsigned char key[KEY_MAX];
  for (size_t i = 0; i < n; i++) {
    uint64_t id = rnd(st) % m->n_ids;
    size_t vl = value_size ? value_size : rnd(st) % 50;
    if (!value_size && rnd(st) % 1000 == 0)
      vl = 65536 + rnd(st) % 80000;
    random_value(st, val, vl);
    assert_int_equal(brook_store_put(s, key, make_key(id, key), val, vl), BROOK_OK);
    model_put(m, id, val, vl);
  }
}

static void test_snapshot_round_trip(void **state) {
  (void)state;
  static const size_t vsizes[] = {0, 8, 40};
  static const size_t counts[] = {0, 1, 100, 5000};
  for (size_t vi = 0; vi < 3; vi++) {
    for (size_t ci = 0; ci < 4; ci++) {
      for (uint64_t seed = 1; seed <= 3; seed++) {
        brook_store_opts_t o;
        brook_store_opts_init(&o);
        o.value_size = vsizes[vi];
        brook_store_t *a, *b;
        assert_int_equal(brook_store_new(&a, &o, NULL), BROOK_OK);
        assert_int_equal(brook_store_new(&b, &o, NULL), BROOK_OK);
        model_t m, other;
        model_init(&m, 2 * counts[ci] + 1);
        model_init(&other, 1000);
        uint64_t st = seed * 77 + ci * 5 + vi;
        fill_random(a, &m, &st, counts[ci], vsizes[vi]);
        if (seed == 3 && !vsizes[vi]) { /* big values cross block boundaries */
          static unsigned char big[200000];
          random_value(&st, big, sizeof(big));
          unsigned char key[KEY_MAX];
          assert_int_equal(brook_store_put(a, key, make_key(0, key), big, sizeof(big)), BROOK_OK);
          model_put(&m, 0, big, sizeof(big));
        }
        fill_random(b, &other, &st, 300, vsizes[vi]); /* replaced by the restore */
        buf_t snap = {0};
        assert_int_equal(brook_store_snapshot(a, buf_write, &snap), BROOK_OK);
        assert_int_equal(brook_store_restore(b, snap.p, snap.len), BROOK_OK);
        model_check(&m, b);
        model_check(&m, a); /* the snapshot changed nothing */
        /* A write error aborts the snapshot and is returned. */
        for (int fail_at = 1; fail_at <= 2; fail_at++) {
          buf_t failing = {.fail_at = fail_at};
          brook_err_t err = brook_store_snapshot(a, buf_write, &failing);
          assert_int_equal(err, failing.calls >= fail_at ? BROOK_ERR_IO : BROOK_OK);
          free(failing.p);
        }
        free(snap.p);
        model_free(&m);
        model_free(&other);
        brook_store_free(a);
        brook_store_free(b);
      }
    }
  }
}

#define SNAP_TRAILER 4 /* the CRC32C (store_snapshot.c) */
#define SNAP_END 12    /* the end marker and the entry count, before it */

/* Recomputes a snapshot's checksum (the format's CRC32C, see store_snapshot.c) after
 * tampering. */
static void reseal(unsigned char *p, size_t len) {
  size_t n = len - SNAP_TRAILER;
  uint32_t c = bk_crc32c(0, p, n);
  for (int i = 0; i < 4; i++)
    p[n + i] = (unsigned char)(c >> (8 * i));
}

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* Restores `len` bytes into s after giving it some content: expects `want`, and an empty,
 * consistent store unless the restore succeeded. */
static void restore_expect(brook_store_t *s, const unsigned char *p, size_t len, brook_err_t want) {
  size_t vs = s->value_size ? s->value_size : 8;
  assert_int_equal(brook_store_put(s, "old", 3, "0123456789abcdef", vs), BROOK_OK);
  unsigned char *copy = malloc(len ? len : 1); /* exactly len bytes, for ASan */
  if (len)
    memcpy(copy, p, len);
  brook_err_t err = brook_store_restore(s, copy, len);
  free(copy);
  if (want != BROOK_OK || err != BROOK_OK) {
    assert_int_equal(err, want);
    assert_int_equal(brook_store_count(s), 0);
  }
  assert_true(bk_store_check(s));
}

static void test_snapshot_corrupt(void **state) {
  (void)state;
  brook_store_t *s, *t;
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  assert_int_equal(brook_store_new(&t, NULL, NULL), BROOK_OK);
  model_t m;
  model_init(&m, 40);
  uint64_t st = 99;
  fill_random(s, &m, &st, 15, 0);
  assert_int_equal(brook_store_put(s, NULL, 0, NULL, 0), BROOK_OK);
  model_put(&m, 0, NULL, 0);
  buf_t snap = {0};
  assert_int_equal(brook_store_snapshot(s, buf_write, &snap), BROOK_OK);
  const unsigned char *p = snap.p;
  size_t len = snap.len;

  restore_expect(t, p, len, BROOK_OK);
  model_check(&m, t);
  for (size_t cut = 0; cut < len; cut++)
    restore_expect(t, p, cut, BROOK_ERR_CORRUPT);
  unsigned char *q = malloc(len);
  for (size_t pos = 0; pos < len; pos++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(q, p, len);
      q[pos] ^= (unsigned char)(1u << bit);
      restore_expect(t, q, len, BROOK_ERR_CORRUPT);
    }
  }
  /* Well-sealed but malformed: bad version, flags, counts, lengths. */
  const uint32_t n = (uint32_t)m.count;
  const size_t cnt = len - SNAP_TRAILER - 8; /* the entry count, after the end marker */
  const struct {
    size_t off;
    uint32_t val;
  } edits[] = {{8, 1},           {8, 2},
               {8, 4},           {12, 1},
               {24, 1},          {cnt, n + 1},
               {cnt, n - 1},     {cnt, 0},
               {cnt + 4, 1},     {cnt - 4, 0},
               {28, 1},          {32, UINT32_MAX},
               {36, UINT32_MAX}, {36, UINT32_MAX - 40},
               {32, 1000}};
  for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
    memcpy(q, p, len);
    put32(q + edits[i].off, edits[i].val);
    reseal(q, len);
    restore_expect(t, q, len, BROOK_ERR_CORRUPT);
  }
  /* A duplicate key: the header and first entry, then the first entry again, the end. */
  size_t e1 = 32 + 8 + p[32] + ((size_t)p[33] << 8) + p[36] + ((size_t)p[37] << 8);
  size_t dlen = e1 + (e1 - 32) + SNAP_END + SNAP_TRAILER;
  unsigned char *d = calloc(1, dlen);
  memcpy(d, p, e1);
  memcpy(d + e1, p + 32, e1 - 32);
  put32(d + dlen - SNAP_TRAILER - SNAP_END, UINT32_MAX);
  put32(d + dlen - SNAP_TRAILER - 8, 2);
  reseal(d, dlen);
  restore_expect(t, d, dlen, BROOK_ERR_CORRUPT);
  assert_non_null(strstr(brook_store_last_error(t), "repeats a key"));
  /* Only the first entry: fine. */
  put32(d + e1, UINT32_MAX);
  put32(d + e1 + 4, 1);
  put32(d + e1 + 8, 0);
  reseal(d, e1 + SNAP_END + SNAP_TRAILER);
  restore_expect(t, d, e1 + SNAP_END + SNAP_TRAILER, BROOK_OK);
  assert_int_equal(brook_store_count(t), 1);
  free(d);

  /* Random tampering, resealed: restore succeeds or reports CORRUPT, never worse. */
  for (int i = 0; i < 3000; i++) {
    memcpy(q, p, len);
    for (uint64_t n = 1 + rnd(&st) % 3; n > 0; n--) {
      size_t pos = rnd(&st) % (len - SNAP_TRAILER);
      if (rnd(&st) % 2)
        q[pos] = (unsigned char)rnd(&st);
      else if (pos + 4 <= len - SNAP_TRAILER)
        put32(q + pos, (uint32_t)(rnd(&st) % 64));
    }
    reseal(q, len);
    assert_int_equal(brook_store_put(t, "old", 3, "x", 1), BROOK_OK);
    brook_err_t err = brook_store_restore(t, q, len);
    assert_true(err == BROOK_OK || err == BROOK_ERR_CORRUPT);
    assert_true(bk_store_check(t));
  }
  free(q);

  /* value_size must match. */
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = 8;
  brook_store_t *f8, *f16;
  assert_int_equal(brook_store_new(&f8, &o, NULL), BROOK_OK);
  o.value_size = 16;
  assert_int_equal(brook_store_new(&f16, &o, NULL), BROOK_OK);
  restore_expect(f8, p, len, BROOK_ERR_CORRUPT);
  buf_t fsnap = {0};
  assert_int_equal(brook_store_put(f8, "k", 1, "12345678", 8), BROOK_OK);
  assert_int_equal(brook_store_snapshot(f8, buf_write, &fsnap), BROOK_OK);
  restore_expect(f16, fsnap.p, fsnap.len, BROOK_ERR_CORRUPT);
  restore_expect(t, fsnap.p, fsnap.len, BROOK_ERR_CORRUPT);
  restore_expect(f8, fsnap.p, fsnap.len, BROOK_OK);
  assert_int_equal(brook_store_count(f8), 1);
  /* An empty store's snapshot; no data at all. */
  brook_store_clear(f8);
  free(fsnap.p);
  fsnap = (buf_t){0};
  assert_int_equal(brook_store_snapshot(f8, buf_write, &fsnap), BROOK_OK);
  assert_int_equal(fsnap.len, 32 + SNAP_END + SNAP_TRAILER); /* header, end, checksum */
  restore_expect(f8, fsnap.p, fsnap.len, BROOK_OK);
  assert_int_equal(brook_store_count(f8), 0);
  assert_int_equal(brook_store_restore(f8, NULL, 0), BROOK_ERR_CORRUPT);
  free(fsnap.p);
  brook_store_free(f8);
  brook_store_free(f16);
  free(snap.p);
  model_free(&m);
  brook_store_free(s);
  brook_store_free(t);
}

/* ---- allocation failure ---- */

typedef void (*scenario_fn)(const brook_allocator_t *a);

/* Runs the scenario with the k-th allocation failing (once, or from then on), for every k
 * until a run sees no failure; nothing may leak. */
static void sweep(scenario_fn fn) {
  for (int persistent = 0; persistent <= 1; persistent++) {
    for (long k = 1;; k++) {
      fail_alloc_t fa = {.fail_at = k, .persistent = persistent};
      brook_allocator_t a = fa_allocator(&fa);
      fn(&a);
      assert_int_equal(fa.live, 0);
      if (!fa.injected)
        break;
      assert_true(k < 100000);
    }
  }
}

static void scenario_create(const brook_allocator_t *a) {
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.expected_entries = 100;
  brook_store_t *s = (brook_store_t *)1;
  brook_err_t err = bk_store_create(a, &o, "name", &s, NULL);
  if (err) {
    assert_int_equal(err, BROOK_ERR_NOMEM);
    assert_null(s);
    return;
  }
  assert_string_equal(bk_store_name(s), "name");
  assert_true(bk_store_check(s));
  bk_store_destroy(s);
}

static void scenario_put(const brook_allocator_t *a) {
  brook_store_t *s;
  if (brook_store_new(&s, NULL, a))
    return;
  long calls = 0;
  brook_store_set_listener(s, count_calls, &calls);
  model_t m;
  model_init(&m, 150);
  uint64_t st = 5;
  static unsigned char val[70000];
  unsigned char key[KEY_MAX];
  for (int i = 0; i < 500; i++) {
    uint64_t id = rnd(&st) % 150;
    size_t klen = make_key(id, key);
    long before = calls;
    if (i % 5 == 4) {
      brook_err_t err = brook_store_delete(s, key, klen);
      assert_int_equal(err, m.present[id] ? BROOK_OK : BROOK_ERR_NOT_FOUND);
      model_del(&m, id);
      continue;
    }
    size_t vl = i % 41 == 0 ? sizeof(val) - i : rnd(&st) % 100;
    random_value(&st, val, vl);
    brook_err_t err = brook_store_put(s, key, klen, val, vl);
    if (err == BROOK_OK) {
      model_put(&m, id, val, vl);
      assert_int_equal(calls, before + 1);
    } else {
      assert_int_equal(err, BROOK_ERR_NOMEM);
      assert_int_equal(calls, before);
      assert_true(bk_store_check(s));
    }
  }
  model_check(&m, s);
  model_free(&m);
  brook_store_free(s);
}

static void scenario_update(const brook_allocator_t *a) {
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.value_size = 16;
  brook_store_t *s;
  if (brook_store_new(&s, &o, a))
    return;
  long calls = 0;
  brook_store_set_listener(s, count_calls, &calls);
  model_t m;
  model_init(&m, 300);
  unsigned char key[KEY_MAX];
  for (uint64_t i = 0; i < 1200; i++) {
    uint64_t id = (i * 7) % 300;
    size_t klen = make_key(id, key);
    uint64_t *v;
    int created;
    brook_err_t err = brook_store_update(s, key, klen, (void **)&v, &created);
    if (err) {
      assert_int_equal(err, BROOK_ERR_NOMEM);
      assert_null(v);
      assert_true(bk_store_check(s));
      continue;
    }
    assert_int_equal(created, !m.present[id]);
    uint64_t nv[2] = {(m.present[id] ? ((const uint64_t *)m.val[id])[0] : 0) + 1, id};
    assert_int_equal(v[0], nv[0] - 1);
    memcpy(v, nv, 16);
    model_put(&m, id, nv, 16);
    if (i % 100 == 99)
      assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  }
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  model_check(&m, s);
  model_free(&m);
  brook_store_free(s);
}

static buf_t restore_snap;
static model_t restore_model;

static void scenario_restore(const brook_allocator_t *a) {
  brook_store_t *s;
  if (brook_store_new(&s, NULL, a))
    return;
  for (uint64_t i = 0; i < 5; i++)
    if (brook_store_put(s, &i, 8, "x", 1) != BROOK_OK)
      break;
  brook_err_t err = brook_store_restore(s, restore_snap.p, restore_snap.len);
  if (err) {
    assert_int_equal(err, BROOK_ERR_NOMEM);
    assert_int_equal(brook_store_count(s), 0);
    assert_true(bk_store_check(s));
  } else {
    model_check(&restore_model, s);
  }
  /* A snapshot needs a buffer: it may fail too, and then changes nothing. */
  buf_t out = {0};
  err = brook_store_snapshot(s, buf_write, &out);
  assert_true(err == BROOK_OK || err == BROOK_ERR_NOMEM);
  free(out.p);
  brook_store_free(s);
}

static void test_allocation_failure(void **state) {
  (void)state;
  sweep(scenario_create);
  sweep(scenario_put);
  sweep(scenario_update);
  brook_store_t *s;
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  model_init(&restore_model, 3000);
  uint64_t st = 11;
  fill_random(s, &restore_model, &st, 2000, 0);
  assert_int_equal(brook_store_snapshot(s, buf_write, &restore_snap), BROOK_OK);
  brook_store_free(s);
  sweep(scenario_restore);
  model_free(&restore_model);
  free(restore_snap.p);
}

/* ---- the hash ---- */

static void test_hash(void **state) {
  (void)state;
  /* Every length gives a different hash, even for all-zero bytes. */
  static const unsigned char zeros[64];
  for (size_t i = 0; i <= 64; i++)
    for (size_t j = 0; j < i; j++)
      assert_true(bk_hash_bytes(zeros, i) != bk_hash_bytes(zeros, j));
  /* Sequential integers spread evenly over the low bits the table uses. */
  unsigned buckets[1024] = {0};
  for (uint64_t i = 0; i < 65536; i++)
    buckets[bk_hash_bytes(&i, sizeof(i)) & 1023]++;
  for (size_t b = 0; b < 1024; b++)
    assert_true(buckets[b] > 25 && buckets[b] < 110);
  /* Avalanche: flipping one input bit flips about half the output bits. */
  uint64_t st = 3;
  for (size_t len = 1; len <= 40; len += 3) {
    unsigned char k[40];
    double flips = 0;
    int trials = 0;
    for (int t = 0; t < 50; t++) {
      random_value(&st, k, len);
      uint64_t h = bk_hash_bytes(k, len);
      for (size_t bit = 0; bit < len * 8; bit++) {
        k[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        flips += __builtin_popcountll(h ^ bk_hash_bytes(k, len));
        k[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        trials++;
      }
    }
    assert_true(flips / trials > 31 && flips / trials < 33);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_get_delete),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_update_in_place),
      cmocka_unit_test(test_named_store),
      cmocka_unit_test(test_million_entries),
      cmocka_unit_test(test_memory_flat_under_churn),
      cmocka_unit_test(test_small_store_memory),
      cmocka_unit_test(test_memory_growth_accounting),
      cmocka_unit_test(test_iteration_with_deletion),
      cmocka_unit_test(test_iteration_wraps_around),
      cmocka_unit_test(test_listener),
      cmocka_unit_test(test_snapshot_round_trip),
      cmocka_unit_test(test_snapshot_corrupt),
      cmocka_unit_test(test_allocation_failure),
      cmocka_unit_test(test_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
