/* Window state lives in stores: every window kind, in both emit modes, can be snapshotted
 * through the generic store calls (brook_store_snapshot on each store of the operator
 * instance), restored into a fresh driver's instance (brook_store_restore) and continued,
 * and its output then equals the uninterrupted run's record for record, late stream
 * included. Floating-point sums make the check bitwise: a restore that recomputed running
 * aggregates in another order would differ in the last bits.
 *
 * Also: every change to a window's state reaches a store listener (a replica kept from the
 * listener alone equals the store after every record), a listener set late first receives
 * the whole state, and a corrupt snapshot leaves the window store empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "runtime/runtime_impl.h"
#include "support/driver_helpers.h"
#include "support/state_backend.h"
#include "support/window_pipeline.h"
#include "support/write_buf.h"

#define DELAY 6 /* the watermark's max_delay */

/* ---- reaching the window's instance (tests may use internals) ---- */

static brook_runtime_t *driver_rt(brook_driver_t *d) {
  return *(brook_runtime_t **)(void *)d; /* driver.c: the runtime is the first member */
}

static brook_ctx_t *instance(brook_driver_t *d, const char *node) {
  brook_runtime_t *rt = driver_rt(d);
  for (size_t i = 0; i < rt->plan.n; i++)
    if (strcmp(rt->plan.order[i]->name, node) == 0)
      return bk_inst_at(rt->w0, i, 0);
  fail_msg("no node '%s'", node);
  return NULL;
}

/* ---- snapshots of every store of an instance ---- */

typedef struct checkpoint {
  size_t n;
  char names[4][32];
  buf_t data[4];
} checkpoint_t;

static void checkpoint_take(brook_driver_t *d, const char *node, checkpoint_t *cp) {
  /* On disk a window keeps its changes aside until a commit (its flush) writes them to its
   * stores: commit first, as a changelog would see the state. */
  if (test_state_on_disk())
    assert_int_equal(brook_driver_advance_time(d, 0), BROOK_OK);
  brook_ctx_t *c = instance(d, node);
  memset(cp, 0, sizeof(*cp));
  assert_true(c->n_stores >= 1 && c->n_stores <= 4);
  for (size_t k = 0; k < c->n_stores; k++) {
    snprintf(cp->names[k], sizeof(cp->names[k]), "%s", brook_store_name(c->stores[k]));
    assert_int_equal(brook_store_snapshot(c->stores[k], buf_write, &cp->data[k]), BROOK_OK);
  }
  cp->n = c->n_stores;
}

static void checkpoint_restore(brook_driver_t *d, const char *node, const checkpoint_t *cp) {
  brook_ctx_t *c = instance(d, node);
  assert_int_equal(c->n_stores, cp->n);
  for (size_t k = 0; k < cp->n; k++) {
    assert_string_equal(brook_store_name(c->stores[k]), cp->names[k]);
    assert_int_equal(brook_store_restore(c->stores[k], cp->data[k].p, cp->data[k].len), BROOK_OK);
  }
}

static void checkpoint_free(checkpoint_t *cp) {
  for (size_t k = 0; k < cp->n; k++)
    free(cp->data[k].p);
}

/* ---- the pipeline and the input ---- */

typedef struct spec {
  const char *what;
  brook_window_t win;
  brook_time_t grace;
  brook_emit_mode_t emit;
} spec_t;

static brook_driver_t *pipeline(const spec_t *sp, brook_topology_t **t) {
  assert_int_equal(brook_topology_new(t, NULL), BROOK_OK);
  brook_stream_t *in = bounded_push_source(*t, DELAY);
  brook_window_opts_t o;
  brook_window_opts_init(&o);
  o.emit = sp->emit;
  o.grace = sp->grace;
  o.late = BROOK_LATE_ROUTE;
  o.name = "win";
  brook_aggregator_t sum = brook_agg_sum(NULL, NULL); /* values are native doubles */
  brook_stream_t *w = brook_window_aggregate(in, &sp->win, &sum, &o);
  assert_non_null(w);
  named_sink(w, "out");
  named_sink(brook_window_late(w), "late");
  brook_driver_t *d;
  assert_int_equal(test_driver_new(&d, *t, NULL), BROOK_OK);
  return d;
}

typedef struct input {
  brook_time_t ts;
  uint32_t key;
  double v;
} input_t;

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* n records over a few keys, time moving ~3 ms per record with disorder within the delay,
 * and now and then a record far behind (late, or only in later windows); values are
 * inexact doubles. */
static void make_input(input_t *in, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (size_t i = 0; i < n; i++) {
    brook_time_t base = (brook_time_t)i * 3 - 500; /* negative times too */
    in[i].ts = base + (brook_time_t)(rng_next(&s) % DELAY);
    if (rng_next(&s) % 23 == 0)
      in[i].ts = base - 10 - (brook_time_t)(rng_next(&s) % 60);
    in[i].key = (uint32_t)(rng_next(&s) % 7);
    in[i].v = (double)(rng_next(&s) % 1000) / 10.0 + 0.1;
  }
}

static void push(brook_driver_t *d, const input_t *r) {
  brook_record_t rec = {0};
  char key[8];
  snprintf(key, sizeof(key), "k%u", r->key);
  rec.key = key;
  rec.key_len = strlen(key);
  rec.value = &r->v;
  rec.value_len = sizeof(r->v);
  rec.timestamp = r->ts;
  assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
}

/* A cut point where the next record is a new maximum time: a fresh driver's watermark then
 * becomes what the uninterrupted run's is once that record is in. */
static size_t cut_point(const input_t *in, size_t n, uint64_t seed) {
  size_t want = n / 4 + (size_t)(seed * 7919 % (n / 2)), best = 0;
  brook_time_t max = BROOK_TIME_MIN;
  for (size_t i = 0; i < n; i++) {
    if (in[i].ts > max) {
      if (i <= want || !best)
        best = i;
      max = in[i].ts;
    }
  }
  return best;
}

/* ---- comparing outputs ---- */

typedef struct outputs {
  size_t n;
  brook_record_t *r;
  unsigned char **bytes; /* copies of key and value */
} outputs_t;

static void collect(brook_driver_t *d, const char *sink, outputs_t *o) {
  size_t n = brook_driver_output_count(d, sink);
  o->r = realloc(o->r, (o->n + n + 1) * sizeof(*o->r));
  o->bytes = realloc(o->bytes, (o->n + n + 1) * sizeof(*o->bytes));
  for (size_t i = 0; i < n; i++) {
    const brook_record_t *r = brook_driver_output(d, sink, i);
    unsigned char *b = malloc(r->key_len + r->value_len + 1);
    memcpy(b, r->key, r->key_len);
    memcpy(b + r->key_len, r->value, r->value_len);
    o->r[o->n] = *r;
    o->bytes[o->n++] = b;
  }
  brook_driver_clear_output(d, sink);
}

static void outputs_free(outputs_t *o) {
  for (size_t i = 0; i < o->n; i++)
    free(o->bytes[i]);
  free(o->r);
  free(o->bytes);
  memset(o, 0, sizeof(*o));
}

static void assert_same(const outputs_t *a, const outputs_t *b, const char *what, uint64_t seed) {
  if (a->n != b->n)
    fail_msg("%s seed %llu: %zu results uninterrupted, %zu across the restore", what,
             (unsigned long long)seed, a->n, b->n);
  for (size_t i = 0; i < a->n; i++) {
    const brook_record_t *x = &a->r[i], *y = &b->r[i];
    if (x->key_len != y->key_len || x->value_len != y->value_len || x->timestamp != y->timestamp ||
        memcmp(a->bytes[i], b->bytes[i], x->key_len + x->value_len) != 0)
      fail_msg("%s seed %llu: result %zu differs across the restore", what,
               (unsigned long long)seed, i);
  }
}

/* Runs `n` records uninterrupted, and again with a snapshot/restore into a fresh driver at a
 * cut point (or after the last record: the restored driver then only ends the input); both
 * outputs (results and late records) must be equal. */
static void check_restore(const spec_t *sp, uint64_t seed, size_t n, int cut_at_end) {
  input_t *in = calloc(n, sizeof(*in));
  make_input(in, n, seed);
  size_t cut = cut_at_end ? n : cut_point(in, n, seed);
  brook_topology_t *t;
  brook_driver_t *d = pipeline(sp, &t);
  outputs_t want = {0}, want_late = {0}, got = {0}, got_late = {0};
  for (size_t i = 0; i < n; i++)
    push(d, &in[i]);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  collect(d, "out", &want);
  collect(d, "late", &want_late);
  brook_driver_free(d);
  brook_topology_free(t);

  d = pipeline(sp, &t);
  for (size_t i = 0; i < cut; i++)
    push(d, &in[i]);
  collect(d, "out", &got);
  collect(d, "late", &got_late);
  checkpoint_t cp;
  checkpoint_take(d, "win", &cp);
  brook_driver_free(d);
  brook_topology_free(t);

  d = pipeline(sp, &t);
  checkpoint_restore(d, "win", &cp);
  checkpoint_free(&cp);
  for (size_t i = cut; i < n; i++)
    push(d, &in[i]);
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  collect(d, "out", &got);
  collect(d, "late", &got_late);
  brook_driver_free(d);
  brook_topology_free(t);

  assert_true(want.n > 0);
  assert_same(&want, &got, sp->what, seed);
  assert_same(&want_late, &got_late, sp->what, seed);
  outputs_free(&want);
  outputs_free(&want_late);
  outputs_free(&got);
  outputs_free(&got_late);
  free(in);
}

static const spec_t specs[] = {
    {"tumbling",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_TUMBLING, .size = 20},
     0,
     BROOK_EMIT_ON_CLOSE},
    {"tumbling grace",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_TUMBLING, .size = 20},
     15,
     BROOK_EMIT_ON_CLOSE},
    {"tumbling update",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_TUMBLING, .size = 20},
     5,
     BROOK_EMIT_ON_UPDATE},
    {"hopping merged",
     {.struct_size = sizeof(brook_window_t),
      .kind = BROOK_WINDOW_HOPPING,
      .size = 30,
      .advance = 10},
     0,
     BROOK_EMIT_ON_CLOSE},
    {"hopping merged update",
     {.struct_size = sizeof(brook_window_t),
      .kind = BROOK_WINDOW_HOPPING,
      .size = 30,
      .advance = 10},
     12,
     BROOK_EMIT_ON_UPDATE},
    {"hopping rings",
     {.struct_size = sizeof(brook_window_t),
      .kind = BROOK_WINDOW_HOPPING,
      .size = 140,
      .advance = 2},
     0,
     BROOK_EMIT_ON_CLOSE},
    {"hopping rings grace",
     {.struct_size = sizeof(brook_window_t),
      .kind = BROOK_WINDOW_HOPPING,
      .size = 140,
      .advance = 2},
     30,
     BROOK_EMIT_ON_CLOSE},
    {"hopping rings update",
     {.struct_size = sizeof(brook_window_t),
      .kind = BROOK_WINDOW_HOPPING,
      .size = 140,
      .advance = 4},
     9,
     BROOK_EMIT_ON_UPDATE},
    {"sliding",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_SLIDING, .size = 25},
     0,
     BROOK_EMIT_ON_CLOSE},
    {"sliding grace",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_SLIDING, .size = 25},
     20,
     BROOK_EMIT_ON_CLOSE},
    {"sliding update",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_SLIDING, .size = 25},
     7,
     BROOK_EMIT_ON_UPDATE},
    {"session",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_SESSION, .gap = 9},
     0,
     BROOK_EMIT_ON_CLOSE},
    {"session grace",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_SESSION, .gap = 9},
     25,
     BROOK_EMIT_ON_CLOSE},
    {"session update",
     {.struct_size = sizeof(brook_window_t), .kind = BROOK_WINDOW_SESSION, .gap = 9},
     4,
     BROOK_EMIT_ON_UPDATE},
};

static void run_kind(const char *prefix) {
  for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
    if (strncmp(specs[k].what, prefix, strlen(prefix)) != 0)
      continue;
    for (uint64_t seed = 1; seed <= 12; seed++)
      check_restore(&specs[k], seed, 400, 0);
    check_restore(&specs[k], 99, 400, 1);
  }
}

static void test_restore_tumbling(void **state) {
  (void)state;
  run_kind("tumbling");
}

static void test_restore_hopping(void **state) {
  (void)state;
  run_kind("hopping");
}

static void test_restore_sliding(void **state) {
  (void)state;
  run_kind("sliding");
}

static void test_restore_session(void **state) {
  (void)state;
  run_kind("session");
}

/* ---- listeners ---- */

typedef struct replica {
  brook_store_t *s;
  size_t puts, dels;
} replica_t;

static brook_err_t mirror(const void *key, size_t klen, const void *value, size_t vlen,
                          void *opaque) {
  replica_t *r = opaque;
  if (value) {
    r->puts++;
    return brook_store_put(r->s, key, klen, value, vlen);
  }
  r->dels++;
  brook_err_t err = brook_store_delete(r->s, key, klen);
  return err == BROOK_ERR_NOT_FOUND ? BROOK_OK : err;
}

/* The replica holds exactly the store's entries. */
static void assert_replica(brook_store_t *s, replica_t *r) {
  assert_int_equal(brook_store_count(s), brook_store_count(r->s));
  brook_store_iter_t *it;
  assert_int_equal(brook_store_iter_all(s, &it), BROOK_OK);
  brook_store_entry_t e;
  while (brook_store_iter_next(it, &e)) {
    unsigned char copy[16384];
    size_t vlen;
    assert_true(e.value_len <= sizeof(copy));
    assert_int_equal(brook_store_get_copy(r->s, e.key, e.key_len, copy, sizeof(copy), &vlen),
                     BROOK_OK);
    assert_int_equal(vlen, e.value_len);
    assert_memory_equal(copy, e.value, vlen);
  }
  assert_int_equal(brook_store_iter_close(it), BROOK_OK);
}

static void check_listener(const spec_t *sp, size_t set_at) {
  input_t in[300];
  make_input(in, 300, 77);
  brook_topology_t *t;
  brook_driver_t *d = pipeline(sp, &t);
  brook_ctx_t *c = instance(d, "win");
  brook_store_t *s = c->stores[0];
  if (set_at && c->n_stores > 1) { /* on disk ("window" and "window_order"): see the caller */
    brook_driver_free(d);
    brook_topology_free(t);
    return;
  }
  replica_t r = {0};
  assert_int_equal(brook_store_new(&r.s, NULL, NULL), BROOK_OK);
  for (size_t i = 0; i < 300; i++) {
    if (i == set_at)
      brook_store_set_listener(s, mirror, &r);
    push(d, &in[i]);
    if (i >= set_at)
      assert_replica(s, &r);
  }
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  assert_replica(s, &r);
  assert_true(r.puts > 0);
  assert_true(r.dels > 0);
  brook_store_set_listener(s, NULL, NULL);
  brook_store_free(r.s);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_listener_sees_every_change(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
    check_listener(&specs[k], 0);
    /* Set late: the window store's first flush reports its whole state (session windows use
     * an ordered store, and so do tumbling and hopping windows of few slices with state on
     * disk: stores of the task database, whose listeners see only changes from then on;
     * check_listener skips those). */
    if (specs[k].win.kind != BROOK_WINDOW_SESSION)
      check_listener(&specs[k], 150);
  }
}

/* A changelog-style restore: the entries a listener saw, put into a fresh instance, give the
 * same state. */
static void test_restore_from_puts(void **state) {
  (void)state;
  const spec_t *sp = &specs[5]; /* hopping rings: segments, rings and meta */
  input_t in[300];
  make_input(in, 300, 5);
  brook_topology_t *t, *t2;
  brook_driver_t *d = pipeline(sp, &t), *d2 = pipeline(sp, &t2);
  brook_store_t *s = instance(d, "win")->stores[0], *s2 = instance(d2, "win")->stores[0];
  replica_t r = {0};
  assert_int_equal(brook_store_new(&r.s, NULL, NULL), BROOK_OK);
  brook_store_set_listener(s, mirror, &r);
  for (size_t i = 0; i < 200; i++)
    push(d, &in[i]);
  size_t cur = 0;
  const void *k, *v;
  size_t kl, vl;
  while (brook_store_next(r.s, &cur, &k, &kl, &v, &vl))
    assert_int_equal(brook_store_put(s2, k, kl, v, vl), BROOK_OK);
  assert_replica(s2, &r);
  brook_store_set_listener(s, NULL, NULL);
  brook_store_free(r.s);
  brook_driver_free(d);
  brook_driver_free(d2);
  brook_topology_free(t);
  brook_topology_free(t2);
}

/* A damaged snapshot is refused and leaves the window store empty. */
static void test_corrupt_snapshot(void **state) {
  (void)state;
  input_t in[100];
  make_input(in, 100, 3);
  brook_topology_t *t;
  brook_driver_t *d = pipeline(&specs[5], &t);
  for (size_t i = 0; i < 100; i++)
    push(d, &in[i]);
  checkpoint_t cp;
  checkpoint_take(d, "win", &cp);
  brook_store_t *s = instance(d, "win")->stores[0];
  assert_true(brook_store_count(s) > 0);
  cp.data[0].p[cp.data[0].len / 2] ^= 0x40;
  assert_int_equal(brook_store_restore(s, cp.data[0].p, cp.data[0].len), BROOK_ERR_CORRUPT);
  assert_int_equal(brook_store_count(s), 0);
  assert_int_equal(brook_store_restore(s, cp.data[0].p, 20), BROOK_ERR_CORRUPT);
  assert_int_equal(brook_store_count(s), 0);
  checkpoint_free(&cp);
  brook_driver_free(d);
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_restore_tumbling),
      cmocka_unit_test(test_restore_hopping),
      cmocka_unit_test(test_restore_sliding),
      cmocka_unit_test(test_restore_session),
      cmocka_unit_test(test_listener_sees_every_change),
      cmocka_unit_test(test_restore_from_puts),
      cmocka_unit_test(test_corrupt_snapshot),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
