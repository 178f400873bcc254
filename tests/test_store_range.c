/* Range deletion in RocksDB stores (state/store_range.h): the keys of [lo, hi) are gone at
 * once for reads, iteration and the count, whether they were on disk, changed in the write
 * cache or new there; keys put again afterwards live; the deletion is written by the next
 * write (nothing before), survives a reopen, and a store that must report each deletion (a
 * listener) or is not on RocksDB refuses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "state/store_range.h"
#include "tempfiles.h"

static brook_store_t *open_in(const char *dir) {
  brook_rocksdb_opts_t ro;
  brook_rocksdb_opts_init(&ro);
  ro.dir = dir;
  ro.cache_bytes = 4096; /* small: the cache empties after most flushes */
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.backend = brook_store_backend_rocksdb();
  o.backend_opaque = &ro;
  o.name = "range";
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_OK);
  return s;
}

static void put(brook_store_t *s, const char *k, const char *v) {
  assert_int_equal(brook_store_put(s, k, strlen(k), v, strlen(v)), BROOK_OK);
}

/* The store's keys in order, space-separated. */
static void keys_of(brook_store_t *s, char *out, size_t cap) {
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

static int has(brook_store_t *s, const char *k) {
  const void *v;
  size_t vl;
  return brook_store_get(s, k, strlen(k), &v, &vl) == BROOK_OK;
}

static void test_range_deleted(void **state) {
  (void)state;
  char *dir = temp_dir_new("store_range");
  brook_store_t *s = open_in(dir);
  const char *disk[] = {"a1", "a2", "a3", "a5", "b1", "b2", "c"};
  for (size_t i = 0; i < sizeof(disk) / sizeof(disk[0]); i++)
    put(s, disk[i], "old");
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);   /* on disk */
  put(s, "a2", "new");                                        /* changed in the cache */
  put(s, "a4", "new");                                        /* only in the cache */
  assert_int_equal(brook_store_delete(s, "a3", 2), BROOK_OK); /* a tombstone */
  assert_int_equal(brook_store_count(s), 7);
  assert_int_equal(bk_store_delete_range(s, "a", 1, "b", 1), BROOK_OK);
  char ks[128];
  keys_of(s, ks, sizeof(ks));
  assert_string_equal(ks, "b1 b2 c");
  assert_int_equal(brook_store_count(s), 3);
  assert_false(has(s, "a1"));
  assert_false(has(s, "a2"));
  assert_false(has(s, "a4"));
  assert_true(has(s, "b1"));
  put(s, "a5", "again"); /* a new entry after the range's deletion */
  assert_int_equal(brook_store_count(s), 4);
  keys_of(s, ks, sizeof(ks));
  assert_string_equal(ks, "a5 b1 b2 c");
  assert_int_equal(bk_store_delete_range(s, "b2", 2, "c", 1), BROOK_OK);
  assert_int_equal(bk_store_delete_range(s, "z", 1, "a", 1), BROOK_OK); /* empty: nothing */
  brook_store_free(s); /* not written: a reopen finds the last flush */
  s = open_in(dir);
  keys_of(s, ks, sizeof(ks));
  assert_string_equal(ks, "a1 a2 a3 a5 b1 b2 c");
  assert_int_equal(bk_store_delete_range(s, "a", 1, "b", 1), BROOK_OK);
  put(s, "a5", "again");
  assert_int_equal(bk_store_delete_range(s, "b2", 2, "c", 1), BROOK_OK);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  brook_store_free(s);
  s = open_in(dir);
  keys_of(s, ks, sizeof(ks));
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

static brook_err_t listen(const void *key, size_t klen, const void *value, size_t vlen,
                          void *opaque) {
  (void)key, (void)klen, (void)value, (void)vlen, (void)opaque;
  return BROOK_OK;
}

static void test_refused(void **state) {
  (void)state;
  brook_store_t *h = NULL;
  assert_int_equal(brook_store_new(&h, NULL, NULL), BROOK_OK); /* the hash store */
  put(h, "a", "x");
  assert_int_equal(bk_store_delete_range(h, "a", 1, "b", 1), BROOK_ERR_STATE);
  assert_true(has(h, "a"));
  brook_store_free(h);
  char *dir = temp_dir_new("store_range");
  brook_store_t *s = open_in(dir);
  put(s, "a", "x");
  brook_store_set_listener(s, listen, NULL); /* it must see every deletion */
  assert_int_equal(bk_store_delete_range(s, "a", 1, "b", 1), BROOK_ERR_STATE);
  assert_true(has(s, "a"));
  brook_store_set_listener(s, NULL, NULL);
  brook_store_free(s);
  temp_dir_free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_range_deleted),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
