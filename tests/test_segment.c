/* Tests of segments (src/state/segment.h): flat key -> accumulator tables filled, read in
 * insertion order and emptied at once. Covers many keys of mixed lengths, crafted hash
 * collisions, undoing the newest insert (also in probe runs that wrap the index), reset and
 * shrinking, exact memory accounting, allocation failure at every allocation, and accumulator
 * alignment. A random test compares the segment with a brute-force reference; seg_check()
 * verifies the index invariants from the struct's fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "state/segment.h"
#include "support/fail_alloc.h"

/* ---- helpers: random numbers, keys, a counting allocator, the invariant checker ---- */

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
  x += UINT64_C(0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *st) { return mix(*st += 1); }

#define KEY_MAX 100

/* Key bytes for id; distinct ids give distinct keys. Id 0 is the empty key; about half the
 * others are 1..8 bytes (id little-endian, zero padded, never shorter than the id needs),
 * the rest 9..100 bytes (the id's 8 bytes, then filler). */
static size_t make_key(uint64_t id, unsigned char *b) {
  if (id == 0)
    return 0;
  size_t need = 0;
  for (uint64_t v = id; v; v >>= 8)
    need++;
  uint64_t r = mix(id);
  size_t len = r % 2 ? 1 + (r >> 8) % 8 : 9 + (r >> 8) % (KEY_MAX - 8);
  if (len < need)
    len = need;
  for (size_t i = 0; i < len; i++)
    b[i] = i < 8 ? (unsigned char)(id >> (8 * i)) : (unsigned char)(id * 131 + i * 7);
  return len;
}

/* The value tests store in an accumulator for id (never 0, so a zeroed acc is visible). */
static uint64_t value_of(uint64_t id, uint64_t round) { return mix(id ^ (round << 40)) | 1; }

static uint64_t acc_get(const void *acc) {
  uint64_t v;
  memcpy(&v, acc, sizeof(v));
  return v;
}

static void acc_set(void *acc, uint64_t v) { memcpy(acc, &v, sizeof(v)); }

static int is_zero(const void *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (((const unsigned char *)p)[i])
      return 0;
  return 1;
}

/* Tracks the bytes live through it with a 16-byte size header (keeps malloc's alignment). */
typedef struct count_alloc {
  size_t live;
} count_alloc_t;

static size_t ca_size(void *ptr) {
  size_t n = 0;
  if (ptr)
    memcpy(&n, (unsigned char *)ptr - 16, sizeof(n));
  return n;
}

static void *ca_realloc(void *ptr, size_t size, void *opaque) {
  count_alloc_t *ca = opaque;
  size_t old = ca_size(ptr);
  unsigned char *p = realloc(ptr ? (unsigned char *)ptr - 16 : NULL, 16 + size);
  if (!p)
    return NULL;
  memcpy(p, &size, sizeof(size));
  ca->live = ca->live - old + size;
  return p + 16;
}

static void *ca_alloc(size_t size, void *opaque) { return ca_realloc(NULL, size, opaque); }

static void ca_free(void *ptr, void *opaque) {
  count_alloc_t *ca = opaque;
  if (!ptr)
    return;
  ca->live -= ca_size(ptr);
  free((unsigned char *)ptr - 16);
}

/* The segment's invariants, read from its fields: the index has 2 * ecap slots holding each
 * entry number once, every entry is reachable from its home slot without crossing an empty
 * slot, and long keys lie in the used part of the key buffer. */
static int seg_check(const bk_seg_t *s) {
  if (s->n > s->ecap || s->keys_used > s->keys_cap)
    return 0;
  if (!s->index)
    return s->n == 0 && s->ecap == 0;
  if ((size_t)s->mask + 1 != (size_t)s->ecap * 2)
    return 0;
  unsigned char *seen = calloc((size_t)s->n + 1, 1);
  size_t used = 0;
  int ok = 1;
  for (size_t slot = 0; slot <= s->mask && ok; slot++) {
    uint32_t x = s->index[slot];
    if (!x)
      continue;
    used++;
    ok = x <= s->n && !seen[x];
    if (ok)
      seen[x] = 1;
    for (uint32_t j = bk_seg_at(s, x - 1)->hash & s->mask; j != slot; j = (j + 1) & s->mask)
      ok &= s->index[j] != 0;
  }
  for (size_t i = 0; i < s->n && ok; i++) {
    const bk_seg_entry_t *e = bk_seg_at(s, i);
    ok = e->klen <= 8 || e->k.off + e->klen <= s->keys_used;
  }
  free(seen);
  return ok && used == s->n;
}

/* Asserts that entries 0..n-1 are make_key(0..n-1) with value_of(id, round), in order, that
 * each is found, and that the segment holds exactly them. */
static void check_ids(const bk_seg_t *s, size_t n, uint64_t round) {
  unsigned char k[KEY_MAX];
  assert_int_equal(bk_seg_count(s), n);
  assert_true(seg_check(s));
  for (size_t id = 0; id < n; id++) {
    size_t len = make_key(id, k);
    bk_seg_entry_t *e = bk_seg_at(s, id);
    assert_int_equal(e->klen, len);
    assert_memory_equal(bk_seg_key(s, e), k, len);
    uint64_t h = bk_hash_bytes(k, len);
    assert_int_equal(e->hash, (uint32_t)h);
    assert_ptr_equal(bk_seg_find(s, k, len, h), bk_seg_acc(e));
    assert_int_equal(acc_get(bk_seg_acc(e)), value_of(id, round));
  }
}

/* Inserts make_key(from..to-1), asserting each is new and zeroed, and stores its value. */
static void fill_ids(bk_seg_t *s, size_t from, size_t to, uint64_t round) {
  unsigned char k[KEY_MAX];
  for (size_t id = from; id < to; id++) {
    size_t len = make_key(id, k);
    int created = -1;
    void *acc = bk_seg_upsert(s, k, len, bk_hash_bytes(k, len), &created);
    assert_non_null(acc);
    assert_int_equal(created, 1);
    assert_true(is_zero(acc, s->acc_size));
    acc_set(acc, value_of(id, round));
  }
}

/* ---- basics ---- */

static void test_empty(void **state) {
  (void)state;
  bk_seg_t s;
  bk_seg_init(&s, bk_default_allocator(), 8);
  assert_int_equal(bk_seg_count(&s), 0);
  assert_int_equal(bk_seg_memory(&s), 0);
  assert_null(bk_seg_find(&s, NULL, 0, bk_hash_bytes(NULL, 0)));
  bk_seg_pop(&s); /* no-ops on an empty segment */
  bk_seg_reset(&s);
  assert_int_equal(bk_seg_memory(&s), 0);
  fill_ids(&s, 0, 3, 0);
  bk_seg_free(&s); /* empty and usable again */
  assert_int_equal(bk_seg_memory(&s), 0);
  check_ids(&s, 0, 0);
  fill_ids(&s, 0, 3, 1);
  check_ids(&s, 3, 1);
  for (int i = 0; i < 4; i++)
    bk_seg_pop(&s);
  assert_int_equal(bk_seg_count(&s), 0);
  assert_true(seg_check(&s));
  bk_seg_free(&s);
  bk_seg_free(&s); /* of a freed segment: a no-op */
}

#define MANY 200000

static void test_many_keys(void **state) {
  (void)state;
  bk_seg_t s;
  bk_seg_init(&s, bk_default_allocator(), 16);
  unsigned char k[KEY_MAX];
  size_t n_short = 0; /* the keys are a mix of short and long ones */
  for (size_t id = 0; id < MANY; id++)
    n_short += make_key(id, k) <= 8;
  assert_true(n_short > MANY / 3 && n_short < MANY * 2 / 3);

  fill_ids(&s, 0, MANY, 7);
  check_ids(&s, MANY, 7);
  for (size_t id = 0; id < MANY; id++) { /* present: found again, not re-created */
    size_t len = make_key(id, k);
    int created = -1;
    void *acc = bk_seg_upsert(&s, k, len, bk_hash_bytes(k, len), &created);
    assert_int_equal(created, 0);
    assert_ptr_equal(acc, bk_seg_acc(bk_seg_at(&s, id)));
    assert_int_equal(acc_get(acc), value_of(id, 7));
  }
  assert_int_equal(bk_seg_count(&s), MANY);
  for (size_t id = MANY; id < MANY + 20000; id++) { /* absent */
    size_t len = make_key(id, k);
    assert_null(bk_seg_find(&s, k, len, bk_hash_bytes(k, len)));
  }
  for (size_t id = 1; id < 5000; id++) { /* a present key with a byte more or less */
    size_t len = make_key(id, k);
    if (len == KEY_MAX || len <= 8)
      continue; /* short keys one byte longer/shorter may be other ids' keys */
    k[len] = 0;
    assert_null(bk_seg_find(&s, k, len + 1, bk_hash_bytes(k, len + 1)));
    assert_null(bk_seg_find(&s, k, len - 1, bk_hash_bytes(k, len - 1)));
  }
  bk_seg_free(&s);
}

/* ---- collisions: crafted hashes ---- */

/* Keys that share their first 8 bytes (or their zero-padded word) but differ in length. */
static const struct {
  const char *b;
  size_t len;
} prefix_keys[] = {
    {"", 0},          {"\0", 1},        {"\0\0\0\0\0\0\0", 7}, {"\0\0\0\0\0\0\0\0", 8},
    {"abc", 3},       {"abc\0", 4},     {"abc\0\0\0\0\0", 8},  {"abc\0\0\0\0\0\0", 9},
    {"abcdefgh", 8},  {"abcdefghi", 9}, {"abcdefghij", 10},    {"abcdefghi\0", 10},
    {"abcdefgh\0", 9}};
#define N_PREFIX (sizeof(prefix_keys) / sizeof(prefix_keys[0]))

/* The real hash, or one hash for all (the top slot of any index, so the run wraps). */
static uint64_t prefix_hash(size_t i, int crafted) {
  return crafted ? 0xFFFFFFFFu : bk_hash_bytes(prefix_keys[i].b, prefix_keys[i].len);
}

static void test_same_prefix_kept_apart(void **state) {
  (void)state;
  for (int crafted = 0; crafted <= 1; crafted++) {
    bk_seg_t s;
    bk_seg_init(&s, bk_default_allocator(), 8);
    for (size_t i = 0; i < N_PREFIX; i++) {
      int created = -1;
      void *acc = bk_seg_upsert(&s, prefix_keys[i].b, prefix_keys[i].len, prefix_hash(i, crafted),
                                &created);
      assert_int_equal(created, 1);
      acc_set(acc, 100 + i);
    }
    assert_int_equal(bk_seg_count(&s), N_PREFIX);
    assert_true(seg_check(&s));
    for (size_t i = 0; i < N_PREFIX; i++) {
      const char *b = prefix_keys[i].b;
      size_t len = prefix_keys[i].len;
      void *acc = bk_seg_find(&s, b, len, prefix_hash(i, crafted));
      assert_non_null(acc);
      assert_int_equal(acc_get(acc), 100 + i);
      bk_seg_entry_t *e = bk_seg_at(&s, i);
      assert_int_equal(e->klen, len);
      assert_memory_equal(bk_seg_key(&s, e), b, len);
    }
    bk_seg_free(&s);
  }
}

static void test_low32_collisions(void **state) {
  (void)state;
  bk_seg_t s;
  bk_seg_init(&s, bk_default_allocator(), 8);
  unsigned char k[KEY_MAX];
  for (size_t id = 0; id < 600; id++) { /* 3 low-32 values; the high bits differ per key */
    size_t len = make_key(id, k);
    int created = -1;
    void *acc = bk_seg_upsert(&s, k, len, (mix(id) << 32) | (0xFFFFFFF0u + id % 3 * 7), &created);
    acc_set(acc, value_of(id, 0));
    assert_int_equal(created, 1);
  }
  assert_true(seg_check(&s));
  for (size_t id = 0; id < 700; id++) { /* 600..699: absent */
    size_t len = make_key(id, k);
    uint64_t h = (mix(id) << 32) | (0xFFFFFFF0u + id % 3 * 7);
    void *acc = bk_seg_find(&s, k, len, h);
    if (id >= 600) {
      assert_null(acc);
      continue;
    }
    assert_non_null(acc);
    assert_int_equal(acc_get(acc), value_of(id, 0));
    int created = -1;
    assert_ptr_equal(bk_seg_upsert(&s, k, len, h, &created), acc);
    assert_int_equal(created, 0);
  }
  assert_int_equal(bk_seg_count(&s), 600);
  bk_seg_free(&s);
}

/* ---- pop (also checks that pop restores the key buffer and keeps the arrays) ---- */

/* Hashes for the pop test: mostly the top slot of any index (runs wrap), some the slot
 * below, some homes 0 and 1 (inside the wrapped run). */
static uint64_t pop_hash(uint64_t id) {
  return id % 5 < 3 ? 0xFFFFFFFFu : id % 5 == 3 ? 0xFFFFFFFEu : id % 2;
}

static void test_pop_collisions(void **state) {
  (void)state;
  enum { N = 250 };
  bk_seg_t s;
  bk_seg_init(&s, bk_default_allocator(), 24);
  unsigned char k[KEY_MAX];
  for (size_t id = 0; id < N; id++) {
    size_t len = make_key(id, k);
    int created = -1;
    acc_set(bk_seg_upsert(&s, k, len, pop_hash(id), &created), value_of(id, 0));
  }
  for (size_t n = N; n-- > 0;) {
    size_t keys_used = s.keys_used;
    size_t mem = bk_seg_memory(&s);
    bk_seg_pop(&s);
    assert_int_equal(bk_seg_count(&s), n);
    assert_int_equal(bk_seg_memory(&s), mem);
    assert_true(seg_check(&s));
    size_t len = make_key(n, k);
    assert_null(bk_seg_find(&s, k, len, pop_hash(n)));
    assert_int_equal(s.keys_used, len > 8 ? keys_used - len : keys_used);
    for (size_t id = 0; id < n; id++) {
      len = make_key(id, k);
      void *acc = bk_seg_find(&s, k, len, pop_hash(id));
      assert_ptr_equal(acc, bk_seg_acc(bk_seg_at(&s, id)));
      assert_int_equal(acc_get(acc), value_of(id, 0));
    }
    if (n % 50 == 0) { /* reinsert the popped key: new, zeroed, last */
      len = make_key(n, k);
      int created = -1;
      void *acc = bk_seg_upsert(&s, k, len, pop_hash(n), &created);
      assert_int_equal(created, 1);
      assert_true(is_zero(acc, 24));
      acc_set(acc, value_of(n, 0));
      assert_ptr_equal(acc, bk_seg_acc(bk_seg_at(&s, n)));
      bk_seg_pop(&s);
    }
  }
  assert_int_equal(bk_seg_count(&s), 0);
  bk_seg_free(&s);
}

/* ---- random operations against a reference ---- */

/* Hash modes: 0 the real hash; 1 four homes at the top of any index (runs wrap); 2 eight
 * homes at the bottom, high bits kept; 3 one hash for every key. */
static uint64_t mode_hash(int mode, const unsigned char *k, size_t len) {
  uint64_t h = bk_hash_bytes(k, len), high = h & ~UINT64_C(0xFFFFFFFF);
  uint64_t by_mode[4] = {h, high | 0xFFFFFFFCu | (h & 3), high | (h & 7), 0xFFFFFFFFu};
  return by_mode[mode];
}

#define U_MAX 240

typedef struct ref {
  uint64_t id[U_MAX], val[U_MAX]; /* the segment's entries in insertion order */
  size_t n;
  size_t pos[U_MAX]; /* by id: position + 1, or 0 if absent */
} ref_t;

static void ref_check(const bk_seg_t *s, const ref_t *r, size_t u, int mode) {
  unsigned char k[KEY_MAX];
  assert_int_equal(bk_seg_count(s), r->n);
  assert_true(seg_check(s));
  for (size_t i = 0; i < r->n; i++) {
    size_t len = make_key(r->id[i], k);
    bk_seg_entry_t *e = bk_seg_at(s, i);
    assert_int_equal(e->klen, len);
    assert_memory_equal(bk_seg_key(s, e), k, len);
    assert_int_equal(acc_get(bk_seg_acc(e)), r->val[i]);
  }
  for (size_t id = 0; id < u; id++) {
    size_t len = make_key(id, k);
    void *acc = bk_seg_find(s, k, len, mode_hash(mode, k, len));
    if (r->pos[id])
      assert_ptr_equal(acc, bk_seg_acc(bk_seg_at(s, r->pos[id] - 1)));
    else
      assert_null(acc);
  }
}

static void test_random_vs_reference(void **state) {
  (void)state;
  unsigned char k[KEY_MAX];
  for (uint64_t seed = 1; seed <= 200; seed++) {
    uint64_t st = seed;
    int mode = (int)(seed % 4);
    size_t u = 2 + rnd(&st) % (U_MAX - 2);
    size_t acc_size = 8 + rnd(&st) % 3 * 12; /* 8, 20, 32 */
    bk_seg_t s;
    bk_seg_init(&s, bk_default_allocator(), acc_size);
    ref_t r;
    memset(&r, 0, sizeof(r));
    uint64_t next_val = seed << 32;
    for (int op = 0; op < 1500; op++) {
      uint64_t x = rnd(&st) % 200;
      uint64_t id = rnd(&st) % u;
      size_t len = make_key(id, k);
      uint64_t h = mode_hash(mode, k, len);
      if (x < 90) { /* upsert */
        int created = -1;
        void *acc = bk_seg_upsert(&s, k, len, h, &created);
        assert_non_null(acc);
        assert_int_equal(created, r.pos[id] == 0);
        if (created) {
          assert_true(is_zero(acc, acc_size));
          memset(acc, 0xC3, acc_size); /* dirty it all: a later insert here must zero it */
          r.id[r.n] = id;
          r.val[r.n] = ++next_val;
          r.pos[id] = ++r.n;
          acc_set(acc, next_val);
        } else {
          assert_int_equal(acc_get(acc), r.val[r.pos[id] - 1]);
        }
        assert_ptr_equal(acc, bk_seg_acc(bk_seg_at(&s, r.pos[id] - 1)));
      } else if (x < 160) { /* find */
        void *acc = bk_seg_find(&s, k, len, h);
        if (r.pos[id]) {
          assert_non_null(acc);
          assert_int_equal(acc_get(acc), r.val[r.pos[id] - 1]);
        } else {
          assert_null(acc);
        }
      } else if (x < 198) { /* pop */
        bk_seg_pop(&s);
        if (r.n)
          r.pos[r.id[--r.n]] = 0;
      } else { /* reset */
        bk_seg_reset(&s);
        memset(&r, 0, sizeof(r));
      }
      assert_int_equal(bk_seg_count(&s), r.n);
      if (op % 16 == 0)
        ref_check(&s, &r, u, mode);
    }
    ref_check(&s, &r, u, mode);
    bk_seg_free(&s);
  }
}

/* ---- reset, shrinking and memory ---- */

static void test_reset(void **state) {
  (void)state;
  unsigned char k[KEY_MAX];
  count_alloc_t ca = {0};
  brook_allocator_t a = {ca_alloc, ca_realloc, ca_free, &ca};
  bk_seg_t s;
  bk_seg_init(&s, &a, 16);
  fill_ids(&s, 0, 100000, 0);
  size_t big = bk_seg_memory(&s);
  bk_seg_reset(&s); /* the last use needed it all: kept */
  assert_int_equal(bk_seg_memory(&s), big);
  fill_ids(&s, 0, 100, 1);
  bk_seg_reset(&s); /* the last use needed a sliver: shrunk */
  size_t small = bk_seg_memory(&s);
  assert_true(small < big / 64);
  assert_int_equal(ca.live, small);

  size_t full = 0, empty = 0;
  for (uint64_t round = 0; round < 50; round++) { /* cycles of one size: reusable, flat */
    fill_ids(&s, 0, 3000, round);                 /* the same keys: created and zeroed again */
    check_ids(&s, 3000, round);
    if (round == 0)
      full = bk_seg_memory(&s);
    assert_int_equal(bk_seg_memory(&s), full);
    assert_int_equal(ca.live, full);
    bk_seg_reset(&s);
    if (round == 0)
      empty = bk_seg_memory(&s);
    assert_int_equal(bk_seg_count(&s), 0);
    assert_true(seg_check(&s));
    for (size_t id = 0; id < 3000; id += 1 + round) { /* nothing is found */
      size_t len = make_key(id, k);
      assert_null(bk_seg_find(&s, k, len, bk_hash_bytes(k, len)));
    }
    assert_int_equal(bk_seg_memory(&s), empty);
    assert_int_equal(ca.live, empty);
  }
  assert_true(empty >= full / 2); /* a steady size is not shrunk and regrown */
  bk_seg_free(&s);
  assert_int_equal(ca.live, 0);
}

static void test_memory_exact(void **state) {
  (void)state;
  size_t acc_sizes[] = {0, 8, 40};
  unsigned char k[KEY_MAX];
  for (size_t t = 0; t < 3; t++) {
    count_alloc_t ca = {0};
    brook_allocator_t a = {ca_alloc, ca_realloc, ca_free, &ca};
    bk_seg_t s;
    bk_seg_init(&s, &a, acc_sizes[t]);
    assert_int_equal(bk_seg_memory(&s), 0);
    uint64_t st = t + 1;
    size_t n = 0;
    for (int op = 0; op < 30000; op++) {
      uint64_t x = rnd(&st) % 1000;
      if (x < 700) {
        size_t len = make_key(n, k);
        int created = -1;
        assert_non_null(bk_seg_upsert(&s, k, len, bk_hash_bytes(k, len), &created));
        assert_int_equal(created, 1);
        n++;
      } else if (x < 995) {
        bk_seg_pop(&s);
        n -= n > 0;
      } else {
        bk_seg_reset(&s);
        n = 0;
      }
      assert_int_equal(bk_seg_memory(&s), ca.live);
    }
    assert_true(bk_seg_memory(&s) > 0);
    bk_seg_free(&s);
    assert_int_equal(bk_seg_memory(&s), 0);
    assert_int_equal(ca.live, 0);
  }
}

/* ---- allocation failure ---- */

/* Inserts make_key(from..to-1). When an upsert fails, asserts the segment unchanged and
 * retries: a one-shot failure is over, a persistent one fails again before allocations are
 * let succeed. Returns the failed upserts. */
static long fill_failing(bk_seg_t *s, fail_alloc_t *fa, size_t from, size_t to) {
  unsigned char k[KEY_MAX];
  long failures = 0;
  for (size_t id = from; id < to; id++) {
    size_t len = make_key(id, k);
    uint64_t h = bk_hash_bytes(k, len);
    int created = -1;
    void *acc = bk_seg_upsert(s, k, len, h, &created);
    if (!acc) {
      failures++;
      assert_true(fa->injected > 0);
      check_ids(s, id, 0);
      assert_null(bk_seg_find(s, k, len, h));
      if (fa->persistent) { /* fails again, still unchanged; then allocations succeed */
        assert_null(bk_seg_upsert(s, k, len, h, &created));
        check_ids(s, id, 0);
        fa->fail_at = 0;
      }
      acc = bk_seg_upsert(s, k, len, h, &created); /* a one-shot failure is over */
      assert_non_null(acc);
    }
    assert_int_equal(created, 1);
    assert_true(is_zero(acc, s->acc_size));
    acc_set(acc, value_of(id, 0));
  }
  return failures;
}

static void test_allocation_failure(void **state) {
  (void)state;
  long attempts = 0;
  for (int persistent = 0; persistent <= 1; persistent++) {
    for (long at = 1;; at++) {
      fail_alloc_t fa = {.fail_at = at, .persistent = persistent};
      brook_allocator_t a = fa_allocator(&fa);
      bk_seg_t s;
      bk_seg_init(&s, &a, 8);
      long failures = fill_failing(&s, &fa, 0, 1000);
      check_ids(&s, 1000, 0);
      bk_seg_reset(&s);
      failures += fill_failing(&s, &fa, 0, 10);
      bk_seg_reset(&s); /* shrinks: may fail, then keeps the arrays */
      assert_int_equal(bk_seg_count(&s), 0);
      assert_true(seg_check(&s));
      failures += fill_failing(&s, &fa, 0, 300);
      check_ids(&s, 300, 0);
      bk_seg_free(&s);
      assert_int_equal(fa.live, 0);
      if (!fa.injected) {
        attempts = fa.attempts;
        break;
      }
      assert_true(failures <= fa.injected);
      assert_true(at < 1000);
    }
  }
  assert_true(attempts > 20); /* the sweep did reach many allocations */
}

/* ---- alignment ---- */

static void test_acc_alignment(void **state) {
  (void)state;
  size_t sizes[] = {0, 1, 8, 16, 24, 40};
  unsigned char k[KEY_MAX];
  for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
    size_t as = sizes[t];
    bk_seg_t s;
    bk_seg_init(&s, bk_default_allocator(), as);
    for (int round = 0; round < 2; round++) { /* the second reuses the dirtied entries */
      for (size_t id = 0; id < 2000; id++) {
        size_t len = make_key(id, k);
        int created;
        unsigned char *acc = bk_seg_upsert(&s, k, len, bk_hash_bytes(k, len), &created);
        assert_int_equal((uintptr_t)acc % 16, 0);
        assert_true(is_zero(acc, as));
        memset(acc, 0xA5, as); /* fill the whole acc: must not touch other entries */
      }
      for (size_t id = 0; id < 2000; id++) {
        size_t len = make_key(id, k);
        bk_seg_entry_t *e = bk_seg_at(&s, id);
        unsigned char *acc = bk_seg_acc(e);
        assert_int_equal((uintptr_t)acc % 16, 0);
        assert_ptr_equal(acc, (unsigned char *)e + 16);
        assert_int_equal(e->klen, len);
        assert_memory_equal(bk_seg_key(&s, e), k, len);
        assert_ptr_equal(bk_seg_find(&s, k, len, bk_hash_bytes(k, len)), acc);
        for (size_t i = 0; i < as; i++)
          assert_int_equal(acc[i], 0xA5);
      }
      assert_true(seg_check(&s));
      bk_seg_reset(&s);
    }
    bk_seg_free(&s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_many_keys),
      cmocka_unit_test(test_same_prefix_kept_apart),
      cmocka_unit_test(test_low32_collisions),
      cmocka_unit_test(test_pop_collisions),
      cmocka_unit_test(test_random_vs_reference),
      cmocka_unit_test(test_reset),
      cmocka_unit_test(test_memory_exact),
      cmocka_unit_test(test_allocation_failure),
      cmocka_unit_test(test_acc_alignment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
