/* The window store backend (state/window_store.h) through the store interface: its logical
 * entries (slices, rings, meta) can be put, read, deleted and listed; iteration lists a
 * table's keys in arrival order; malformed entries are refused; changes made in place are
 * reported at flush (deletions first, each changed entry once); a snapshot restores into a
 * fresh window store exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "state/window_store.h"
#include "state/window_store_backend.h"
#include "support/write_buf.h"

typedef struct fixture {
  brook_aggregator_t agg;
  bk_wstore_t *ws;
  brook_store_t *s;
} fixture_t;

static void open_store(fixture_t *f, size_t meta) {
  f->agg = brook_agg_count();
  bk_wstore_open_args_t args = {&f->agg, meta, &f->ws};
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.backend = bk_wstore_backend();
  o.backend_opaque = &args;
  o.name = "window";
  assert_int_equal(brook_store_new(&f->s, &o, NULL), BROOK_OK);
  assert_non_null(f->ws);
}

/* 'S' key start(8, sortable) */
static size_t slice_key(unsigned char *out, const char *key, int64_t start) {
  size_t n = strlen(key);
  out[0] = 'S';
  memcpy(out + 1, key, n);
  brook_store_time_encode(start, out + 1 + n);
  return n + 9;
}

/* Adds one record of `key` at bucket `start` through the fast path. */
static void add(fixture_t *f, const char *key, int64_t start) {
  int created;
  bk_wbucket_t *b = bk_wstore_bucket_for(f->ws, start, &created);
  assert_non_null(b);
  brook_record_t rec = {.key = key, .key_len = strlen(key), .timestamp = start};
  void *acc;
  assert_int_equal(bk_wstore_bucket_add(f->ws, b, &f->agg, &rec, &acc), BROOK_OK);
}

static int64_t count_of(fixture_t *f, const char *key, int64_t start) {
  unsigned char k[64];
  const void *v;
  size_t vl;
  if (brook_store_get(f->s, k, slice_key(k, key, start), &v, &vl) != BROOK_OK)
    return -1;
  assert_int_equal(vl, sizeof(int64_t));
  int64_t c;
  memcpy(&c, v, sizeof(c));
  return c;
}

static void test_entries(void **state) {
  (void)state;
  fixture_t f;
  open_store(&f, 0);
  add(&f, "b", 100);
  add(&f, "a", 100);
  add(&f, "b", 100);
  add(&f, "c", 0);
  assert_int_equal(brook_store_count(f.s), 3);
  assert_int_equal(count_of(&f, "b", 100), 2);
  assert_int_equal(count_of(&f, "a", 100), 1);
  assert_int_equal(count_of(&f, "a", 0), -1);
  /* Listed by start, then arrival: c@0, b@100, a@100. */
  const char *want[] = {"c", "b", "a"};
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(f.s, &it), BROOK_OK);
  brook_store_entry_t e;
  for (size_t i = 0; i < 3; i++) {
    assert_true(brook_store_iter_next(it, &e));
    assert_int_equal(e.key_len, 10);
    assert_memory_equal((const char *)e.key + 1, want[i], 1);
  }
  assert_false(brook_store_iter_next(it, &e));
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
  /* Put through the interface, delete one of several keys of a table. */
  unsigned char k[64];
  int64_t seven = 7;
  assert_int_equal(brook_store_put(f.s, k, slice_key(k, "z", -5), &seven, 8), BROOK_OK);
  assert_int_equal(count_of(&f, "z", -5), 7);
  assert_int_equal(brook_store_delete(f.s, k, slice_key(k, "b", 100)), BROOK_OK);
  assert_int_equal(count_of(&f, "b", 100), -1);
  assert_int_equal(count_of(&f, "a", 100), 1);
  assert_int_equal(brook_store_delete(f.s, k, slice_key(k, "b", 100)), BROOK_ERR_NOT_FOUND);
  /* The last key of a table: the table goes. */
  assert_int_equal(brook_store_delete(f.s, k, slice_key(k, "c", 0)), BROOK_OK);
  assert_int_equal(f.ws->n_buckets, 2);
  assert_true(bk_wstore_check(f.ws));
  /* Not entries of this store. */
  assert_int_equal(brook_store_put(f.s, "X", 1, &seven, 8), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(f.s, k, slice_key(k, "z", 1), &seven, 4), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(f.s, "Rk", 2, "short", 5), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_store_put(f.s, "M", 1, &seven, 8), BROOK_ERR_INVALID_ARG); /* no meta */
  brook_store_free(f.s);
}

typedef struct seen {
  char log[64][32];
  size_t n;
} seen_t;

static brook_err_t record_change(const void *key, size_t klen, const void *value, size_t vlen,
                                 void *opaque) {
  (void)vlen;
  seen_t *s = opaque;
  const unsigned char *k = key;
  snprintf(s->log[s->n++], sizeof(s->log[0]), "%s %c%.*s", value ? "put" : "del", k[0],
           (int)(klen > 9 ? klen - 9 : 0), (const char *)k + 1);
  return BROOK_OK;
}

static void test_flush_reports_in_place_changes(void **state) {
  (void)state;
  fixture_t f;
  open_store(&f, 0);
  add(&f, "a", 0); /* before any listener: not tracked */
  seen_t seen = {0};
  brook_store_set_listener(f.s, record_change, &seen);
  assert_true(bk_store_has_pending_changes(f.s));
  assert_int_equal(brook_store_flush_changes(f.s), BROOK_OK);
  assert_int_equal(seen.n, 1); /* the first flush with a listener: the whole state */
  assert_string_equal(seen.log[0], "put Sa");
  seen.n = 0;
  assert_false(bk_store_has_pending_changes(f.s));
  add(&f, "b", 0);
  add(&f, "b", 0);
  add(&f, "a", 10);
  add(&f, "b", 0);
  assert_int_equal(brook_store_flush_changes(f.s), BROOK_OK);
  assert_int_equal(seen.n, 2); /* each changed entry once */
  assert_string_equal(seen.log[0], "put Sb");
  assert_string_equal(seen.log[1], "put Sa");
  seen.n = 0;
  add(&f, "c", 0);
  bk_wstore_buckets_drop_before(f.ws, 5); /* a and b and c of start 0 go */
  add(&f, "a", 10);
  assert_int_equal(brook_store_flush_changes(f.s), BROOK_OK);
  assert_int_equal(seen.n, 4); /* deletions first, c not reported as a put */
  assert_string_equal(seen.log[0], "del Sa");
  assert_string_equal(seen.log[1], "del Sb");
  assert_string_equal(seen.log[2], "del Sc");
  assert_string_equal(seen.log[3], "put Sa");
  /* Without a listener, nothing is tracked. */
  brook_store_set_listener(f.s, NULL, NULL);
  assert_int_equal(brook_store_flush_changes(f.s), BROOK_OK);
  add(&f, "d", 10);
  assert_int_equal(f.ws->buckets[0].n_dirty, 0);
  brook_store_free(f.s);
}

static void test_snapshot_round_trip(void **state) {
  (void)state;
  fixture_t f, g;
  open_store(&f, 32);
  open_store(&g, 32);
  for (int i = 0; i < 500; i++) {
    char key[16];
    snprintf(key, sizeof(key), "key%d", i * 7 % 61);
    add(&f, key, (i % 5) * 100);
  }
  f.ws->meta[3] = 9; /* an operator's scalar */
  /* a ring of two slices for one key */
  int created;
  brook_err_t err;
  bk_wkey_t *k =
      bk_wstore_key_get(f.ws, "ring-key", 8, bk_hash_bytes("ring-key", 8), &created, &err);
  assert_non_null(k);
  assert_non_null(bk_ring_insert(&f.ws->rc, &k->ring, 0, 10, 1, 0));
  assert_non_null(bk_ring_insert(&f.ws->rc, &k->ring, 1, 20, 2, 0));
  buf_t snap = {0};
  assert_int_equal(brook_store_snapshot(f.s, buf_write, &snap), BROOK_OK);
  assert_int_equal(brook_store_restore(g.s, snap.p, snap.len), BROOK_OK);
  assert_int_equal(brook_store_count(g.s), brook_store_count(f.s));
  assert_int_equal(g.ws->meta[3], 9);
  assert_true(g.ws->gen != 0); /* the operator notices and rebuilds */
  assert_true(bk_wstore_check(g.ws));
  /* Same tables, same arrival order, same ring. */
  assert_int_equal(g.ws->n_buckets, f.ws->n_buckets);
  for (size_t b = 0; b < f.ws->n_buckets; b++) {
    bk_seg_t *x = &f.ws->buckets[b].seg, *y = &g.ws->buckets[b].seg;
    assert_int_equal(bk_seg_count(x), bk_seg_count(y));
    for (size_t i = 0; i < bk_seg_count(x); i++) {
      bk_seg_entry_t *ex = bk_seg_at(x, i), *ey = bk_seg_at(y, i);
      assert_int_equal(ex->klen, ey->klen);
      assert_memory_equal(bk_seg_key(x, ex), bk_seg_key(y, ey), ex->klen);
      assert_memory_equal(bk_seg_acc(ex), bk_seg_acc(ey), 8);
    }
  }
  bk_wkey_t *k2 = bk_wstore_key_find(g.ws, "ring-key", 8, bk_hash_bytes("ring-key", 8));
  assert_non_null(k2);
  assert_int_equal(k2->ring.n, 2);
  assert_int_equal(bk_ring_start(&g.ws->rc, &k2->ring, 1), 20);
  assert_int_equal(bk_ring_seq(&g.ws->rc, &k2->ring, 1), 2);
  free(snap.p);
  brook_store_free(f.s);
  brook_store_free(g.s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_entries),
      cmocka_unit_test(test_flush_reports_in_place_changes),
      cmocka_unit_test(test_snapshot_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
