/* What only a store on disk has (the common store suite runs on RocksDB too, as ctest
 * store_backend_rocksdb): state that survives closing and reopening, a flush that is atomic
 * (a process killed after some changes finds exactly its last flush), write-cache behaviour
 * (nothing written before a flush), directories, and its errors.
 *
 * The model is a table of K keys (8-byte big-endian ids, so the store's key order is the id
 * order): what the store holds now, and what its last flush wrote. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "state/store_range.h"
#include "support/rng.h"
#include "tempfiles.h"

#define K 300
#define VMAX 40

typedef struct slot {
  int live;
  size_t len;
  unsigned char v[VMAX];
} slot_t;

typedef struct model {
  slot_t now[K], flushed[K];
} model_t;

static char base_dir[256];

static void make_base_dir(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(base_dir, sizeof(base_dir), "%s/brook_test_rocksdb_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(base_dir));
}

/* Removes base_dir and what is below it (two levels: store databases in it). */
static void remove_base_dir(void) {
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base_dir);
  assert_int_equal(system(cmd), 0);
}

static brook_store_t *open_in(const char *dir, const char *name, size_t value_size,
                              brook_err_t want) {
  brook_rocksdb_opts_t ro;
  brook_rocksdb_opts_init(&ro);
  ro.dir = dir;
  ro.cache_bytes = 4096; /* small: the cache empties after most flushes */
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.backend = brook_store_backend_rocksdb();
  o.backend_opaque = &ro;
  o.value_size = value_size;
  o.name = name;
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, &o, NULL), want);
  return s;
}

static void key_of(unsigned id, unsigned char k[8]) {
  for (int i = 0; i < 8; i++)
    k[i] = (unsigned char)((uint64_t)id >> (8 * (7 - i)));
}

static unsigned id_of(const void *key) {
  const unsigned char *k = key;
  uint64_t id = 0;
  for (int i = 0; i < 8; i++)
    id = id << 8 | k[i];
  return (unsigned)id;
}

static size_t live_count(const slot_t *m) {
  size_t n = 0;
  for (unsigned i = 0; i < K; i++)
    n += m[i].live != 0;
  return n;
}

/* The store holds exactly m: count, every get, and iteration from a random key in order. */
static void check(brook_store_t *s, const slot_t *m, rng_t *r) {
  assert_int_equal(brook_store_count(s), live_count(m));
  for (unsigned i = 0; i < K; i++) {
    unsigned char k[8];
    key_of(i, k);
    const void *v;
    size_t vl;
    brook_err_t err = brook_store_get(s, k, 8, &v, &vl);
    if (!m[i].live) {
      assert_int_equal(err, BROOK_ERR_NOT_FOUND);
      continue;
    }
    assert_int_equal(err, BROOK_OK);
    assert_int_equal(vl, m[i].len);
    if (vl)
      assert_memory_equal(v, m[i].v, vl);
  }
  unsigned from = (unsigned)rng_range(r, 0, K);
  unsigned char lo[8];
  key_of(from, lo);
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_range(s, lo, 8, NULL, 0, &it), BROOK_OK);
  brook_store_entry_t e;
  unsigned want = from;
  while (brook_store_iter_next(it, &e)) {
    while (want < K && !m[want].live)
      want++;
    assert_true(want < K);
    assert_int_equal(e.key_len, 8);
    assert_int_equal(id_of(e.key), want);
    assert_int_equal(e.value_len, m[want].len);
    want++;
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  while (want < K && !m[want].live)
    want++;
  assert_int_equal(want, K);
}

/* One random change to store and model (fixed-size values when vs > 0). */
static void random_change(brook_store_t *s, slot_t *m, size_t vs, rng_t *r) {
  unsigned id = (unsigned)rng_range(r, 0, K - 1);
  unsigned char k[8];
  key_of(id, k);
  int op = (int)rng_range(r, 0, 99);
  if (op < 45) { /* put */
    slot_t *x = &m[id];
    x->len = vs ? vs : (size_t)rng_range(r, 0, VMAX);
    for (size_t i = 0; i < x->len; i++)
      x->v[i] = (unsigned char)rng_next(r);
    x->live = 1;
    assert_int_equal(brook_store_put(s, k, 8, x->v, x->len), BROOK_OK);
  } else if (op < 75) { /* delete */
    assert_int_equal(brook_store_delete(s, k, 8), m[id].live ? BROOK_OK : BROOK_ERR_NOT_FOUND);
    m[id].live = 0;
  } else if (op < 99) { /* in-place update (or put for variable sizes) */
    if (!vs)
      return;
    void *p;
    int created;
    assert_int_equal(brook_store_update(s, k, 8, &p, &created), BROOK_OK);
    assert_int_equal(created, !m[id].live);
    if (created)
      for (size_t i = 0; i < vs; i++)
        assert_int_equal(((unsigned char *)p)[i], 0);
    else
      assert_memory_equal(p, m[id].v, vs);
    ((unsigned char *)p)[rng_range(r, 0, (int64_t)vs - 1)] ^= (unsigned char)(rng_next(r) | 1);
    memcpy(m[id].v, p, vs);
    m[id].len = vs;
    m[id].live = 1;
  } else { /* clear, rarely */
    brook_store_clear(s);
    memset(m, 0, K * sizeof(*m));
  }
}

/* Random changes, flushes, and closes without a flush (a restart loses what was not
 * flushed): after every reopen the store is exactly its last flush. */
static void run_reopen_property(size_t vs, uint64_t seed) {
  static model_t md;
  memset(&md, 0, sizeof(md));
  rng_t r = {seed};
  make_base_dir();
  brook_store_t *s = open_in(base_dir, "prop", vs, BROOK_OK);
  for (int step = 0; step < 40; step++) {
    int n = (int)rng_range(&r, 0, 400);
    for (int i = 0; i < n; i++)
      random_change(s, md.now, vs, &r);
    check(s, md.now, &r);
    if (rng_range(&r, 0, 2)) {
      assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
      memcpy(md.flushed, md.now, sizeof(md.now));
      check(s, md.now, &r);
    }
    if (rng_range(&r, 0, 3) == 0) {
      brook_store_free(s); /* no flush: the changes since the last one are gone */
      s = open_in(base_dir, "prop", vs, BROOK_OK);
      memcpy(md.now, md.flushed, sizeof(md.now));
      check(s, md.now, &r);
    }
  }
  brook_store_free(s);
  remove_base_dir();
}

static void test_reopen_property(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 6; seed++) {
    print_message("seed %" PRIu64 "\n", seed);
    run_reopen_property(seed % 2 ? 16 : 0, seed);
  }
}

/* A process killed after a flush and more changes: the next open finds the flush, all of it
 * and nothing after it. */
static void test_killed_process_finds_its_last_flush(void **state) {
  (void)state;
  make_base_dir();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    brook_store_t *s = open_in(base_dir, "killed", 8, BROOK_OK);
    for (uint64_t i = 0; i < 5000; i++)
      if (brook_store_put(s, &i, sizeof(i), &i, sizeof(i)) != BROOK_OK)
        _exit(2);
    if (brook_store_flush_changes(s) != BROOK_OK)
      _exit(3);
    for (uint64_t i = 0; i < 5000; i++) { /* changed, never flushed */
      uint64_t v = i + 1000000;
      if (brook_store_put(s, &i, sizeof(i), &v, sizeof(v)) != BROOK_OK)
        _exit(4);
      if (i % 2 && brook_store_delete(s, &i, sizeof(i)) != BROOK_OK)
        _exit(5);
    }
    for (uint64_t i = 5000; i < 6000; i++)
      (void)brook_store_put(s, &i, sizeof(i), &i, sizeof(i));
    raise(SIGKILL);
    _exit(6);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  brook_store_t *s = open_in(base_dir, "killed", 8, BROOK_OK);
  assert_int_equal(brook_store_count(s), 5000);
  for (uint64_t i = 0; i < 6000; i++) {
    const void *v;
    size_t vl;
    brook_err_t err = brook_store_get(s, &i, sizeof(i), &v, &vl);
    if (i >= 5000) {
      assert_int_equal(err, BROOK_ERR_NOT_FOUND);
      continue;
    }
    assert_int_equal(err, BROOK_OK);
    uint64_t got;
    memcpy(&got, v, sizeof(got));
    assert_int_equal(got, i);
  }
  brook_store_free(s);
  remove_base_dir();
}

/* Nothing reaches the disk before a flush: a second store on a copy of the directory taken
 * before the flush sees nothing; listeners see in-place updates once, at the flush. */
static brook_err_t count_calls(const void *key, size_t key_len, const void *value, size_t value_len,
                               void *opaque) {
  (void)key, (void)key_len, (void)value, (void)value_len;
  ++*(int *)opaque;
  return BROOK_OK;
}

static void test_writes_wait_for_the_flush(void **state) {
  (void)state;
  make_base_dir();
  brook_store_t *s = open_in(base_dir, "cache", 8, BROOK_OK);
  int calls = 0;
  brook_store_set_listener(s, count_calls, &calls);
  for (uint64_t i = 0; i < 100; i++) {
    void *p;
    int created;
    assert_int_equal(brook_store_update(s, &i, sizeof(i), &p, &created), BROOK_OK);
    memcpy(p, &i, sizeof(i));
    assert_int_equal(brook_store_update(s, &i, sizeof(i), &p, &created), BROOK_OK);
    assert_int_equal(created, 0);
  }
  assert_int_equal(calls, 0);
  /* Another handle on the same database is refused (RocksDB's lock), with the path. */
  brook_store_t *twin = open_in(base_dir, "cache", 8, BROOK_ERR_IO);
  assert_null(twin);
  brook_store_free(s); /* no flush */
  s = open_in(base_dir, "cache", 8, BROOK_OK);
  assert_int_equal(brook_store_count(s), 0);
  brook_store_set_listener(s, count_calls, &calls);
  for (uint64_t i = 0; i < 100; i++) {
    void *p;
    int created;
    assert_int_equal(brook_store_update(s, &i, sizeof(i), &p, &created), BROOK_OK);
    assert_int_equal(created, 1);
    memcpy(p, &i, sizeof(i));
  }
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  assert_int_equal(calls, 100); /* each key once */
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  assert_int_equal(calls, 100);
  brook_store_free(s);
  remove_base_dir();
}

/* Clear is a change like any other: undone by a restart before the flush, on disk after. */
static void test_clear_is_committed_by_the_flush(void **state) {
  (void)state;
  make_base_dir();
  brook_store_t *s = open_in(base_dir, "clear", 0, BROOK_OK);
  for (uint64_t i = 0; i < 1000; i++)
    assert_int_equal(brook_store_put(s, &i, sizeof(i), "v", 1), BROOK_OK);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  brook_store_clear(s);
  assert_int_equal(brook_store_count(s), 0);
  uint64_t k = 7;
  assert_int_equal(brook_store_put(s, &k, sizeof(k), "w", 1), BROOK_OK);
  brook_store_free(s);
  s = open_in(base_dir, "clear", 0, BROOK_OK);
  assert_int_equal(brook_store_count(s), 1000);
  brook_store_clear(s);
  assert_int_equal(brook_store_put(s, &k, sizeof(k), "w", 1), BROOK_OK);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  brook_store_free(s);
  s = open_in(base_dir, "clear", 0, BROOK_OK);
  assert_int_equal(brook_store_count(s), 1);
  const void *v;
  size_t vl;
  assert_int_equal(brook_store_get(s, &k, sizeof(k), &v, &vl), BROOK_OK);
  assert_int_equal(vl, 1);
  assert_memory_equal(v, "w", 1);
  brook_store_free(s);
  remove_base_dir();
}

/* Without a directory a store gets a temporary one, removed when it closes. Store names with
 * any characters become directory names that stay inside the directory given. */
static void test_directories(void **state) {
  (void)state;
  make_base_dir();
  char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
  setenv("TMPDIR", base_dir, 1);
  brook_store_t *s = open_in(NULL, "tmp", 0, BROOK_OK);
  assert_int_equal(brook_store_put(s, "k", 1, "v", 1), BROOK_OK);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  brook_store_free(s);
  if (old) {
    setenv("TMPDIR", old, 1);
    free(old);
  } else {
    unsetenv("TMPDIR");
  }
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", base_dir);
  assert_int_equal(system(cmd), 0); /* nothing left */

  s = open_in(base_dir, "../a/b c", 0, BROOK_OK);
  brook_store_free(s);
  snprintf(cmd, sizeof(cmd), "test -d '%s/_._a_b_c'", base_dir);
  assert_int_equal(system(cmd), 0);

  /* A directory that cannot be created: a file is in the way. */
  char file[400];
  snprintf(file, sizeof(file), "%s/file", base_dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  char below[500];
  snprintf(below, sizeof(below), "%s/sub", file);
  assert_null(open_in(below, "x", 0, BROOK_ERR_IO));
  remove_base_dir();
}

static void test_bad_options(void **state) {
  (void)state;
  brook_rocksdb_opts_t ro;
  brook_rocksdb_opts_init(&ro);
  ro.struct_size = 3;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.backend = brook_store_backend_rocksdb();
  o.backend_opaque = &ro;
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(s);
}

/* After flushes, memory is the cache bound plus RocksDB's, not the number of keys. */
static void test_memory_bounded_by_cache(void **state) {
  (void)state;
  make_base_dir();
  brook_store_t *s = open_in(base_dir, "mem", 0, BROOK_OK);
  unsigned char v[100];
  memset(v, 'x', sizeof(v));
  size_t peak = 0;
  for (uint64_t i = 0; i < 200000; i++) {
    assert_int_equal(brook_store_put(s, &i, sizeof(i), v, sizeof(v)), BROOK_OK);
    if (i % 5000 == 4999) {
      assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
      size_t m = brook_store_memory(s);
      peak = m > peak ? m : peak;
    }
  }
  assert_int_equal(brook_store_count(s), 200000);
  /* 200,000 entries of 108 bytes are 21.6 MB; memtables (8 MiB each, at most two) and
   * block cache (8 MiB) bound what stays. */
  print_message("peak memory after flushes: %zu bytes\n", peak);
  assert_true(peak < (size_t)20 << 20);
  brook_store_free(s);
  remove_base_dir();
}

/* ---- range deletion (state/store_range.h) ----
 * The keys of [lo, hi) are gone at once for reads, iteration and the count, whether they were
 * on disk, changed in the write cache or new there; keys put again afterwards live; the
 * deletion is written by the next write (nothing before), survives a reopen, and a store that
 * must report each deletion (a listener) or is not on RocksDB refuses it. */

static void put_str(brook_store_t *s, const char *k, const char *v) {
  assert_int_equal(brook_store_put(s, k, strlen(k), v, strlen(v)), BROOK_OK);
}

/* The store's keys in order, space-separated. */
static void keys_str(brook_store_t *s, char *out, size_t cap) {
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  brook_store_entry_t e;
  size_t at = 0;
  out[0] = 0;
  while (brook_store_iter_next(it, &e))
    at += (size_t)snprintf(out + at, cap - at, "%s%.*s", at ? " " : "", (int)e.key_len,
                           (const char *)e.key);
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
}

static int has_key(brook_store_t *s, const char *k) {
  const void *v;
  size_t vl;
  return brook_store_get(s, k, strlen(k), &v, &vl) == BROOK_OK;
}

static void test_range_deleted(void **state) {
  (void)state;
  char *dir = temp_dir_new("store_range");
  brook_store_t *s = open_in(dir, "range", 0, BROOK_OK);
  const char *disk[] = {"a1", "a2", "a3", "a5", "b1", "b2", "c"};
  for (size_t i = 0; i < sizeof(disk) / sizeof(disk[0]); i++)
    put_str(s, disk[i], "old");
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);   /* on disk */
  put_str(s, "a2", "new");                                    /* changed in the cache */
  put_str(s, "a4", "new");                                    /* only in the cache */
  assert_int_equal(brook_store_delete(s, "a3", 2), BROOK_OK); /* a tombstone */
  assert_int_equal(brook_store_count(s), 7);
  assert_int_equal(bk_store_delete_range(s, "a", 1, "b", 1), BROOK_OK);
  char ks[128];
  keys_str(s, ks, sizeof(ks));
  assert_string_equal(ks, "b1 b2 c");
  assert_int_equal(brook_store_count(s), 3);
  assert_false(has_key(s, "a1"));
  assert_false(has_key(s, "a2"));
  assert_false(has_key(s, "a4"));
  assert_true(has_key(s, "b1"));
  put_str(s, "a5", "again"); /* a new entry after the range's deletion */
  assert_int_equal(brook_store_count(s), 4);
  keys_str(s, ks, sizeof(ks));
  assert_string_equal(ks, "a5 b1 b2 c");
  assert_int_equal(bk_store_delete_range(s, "b2", 2, "c", 1), BROOK_OK);
  assert_int_equal(bk_store_delete_range(s, "z", 1, "a", 1), BROOK_OK); /* empty: nothing */
  brook_store_free(s); /* not written: a reopen finds the last flush */
  s = open_in(dir, "range", 0, BROOK_OK);
  keys_str(s, ks, sizeof(ks));
  assert_string_equal(ks, "a1 a2 a3 a5 b1 b2 c");
  assert_int_equal(bk_store_delete_range(s, "a", 1, "b", 1), BROOK_OK);
  put_str(s, "a5", "again");
  assert_int_equal(bk_store_delete_range(s, "b2", 2, "c", 1), BROOK_OK);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  brook_store_free(s);
  s = open_in(dir, "range", 0, BROOK_OK);
  keys_str(s, ks, sizeof(ks));
  assert_string_equal(ks, "a5 b1 c");
  assert_int_equal(brook_store_count(s), 3);
  const void *v;
  size_t vl;
  assert_int_equal(brook_store_get(s, "a5", 2, &v, &vl), BROOK_OK);
  assert_int_equal(vl, 5);
  assert_memory_equal(v, "again", 5);
  brook_store_free(s);
  temp_dir_free(dir);
}

static brook_err_t ignore_change(const void *key, size_t klen, const void *value, size_t vlen,
                                 void *opaque) {
  (void)key, (void)klen, (void)value, (void)vlen, (void)opaque;
  return BROOK_OK;
}

static void test_range_refused(void **state) {
  (void)state;
  brook_store_t *h = NULL;
  assert_int_equal(brook_store_new(&h, NULL, NULL), BROOK_OK); /* the hash store */
  put_str(h, "a", "x");
  assert_int_equal(bk_store_delete_range(h, "a", 1, "b", 1), BROOK_ERR_STATE);
  assert_true(has_key(h, "a"));
  brook_store_free(h);
  char *dir = temp_dir_new("store_range");
  brook_store_t *s = open_in(dir, "range", 0, BROOK_OK);
  put_str(s, "a", "x");
  brook_store_set_listener(s, ignore_change, NULL); /* it must see every deletion */
  assert_int_equal(bk_store_delete_range(s, "a", 1, "b", 1), BROOK_ERR_STATE);
  assert_true(has_key(s, "a"));
  brook_store_set_listener(s, NULL, NULL);
  brook_store_free(s);
  temp_dir_free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reopen_property),
      cmocka_unit_test(test_killed_process_finds_its_last_flush),
      cmocka_unit_test(test_writes_wait_for_the_flush),
      cmocka_unit_test(test_clear_is_committed_by_the_flush),
      cmocka_unit_test(test_directories),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_memory_bounded_by_cache),
      cmocka_unit_test(test_range_deleted),
      cmocka_unit_test(test_range_refused),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
