/* Structs that cross the ABI by pointer with a size or a version: the window definition
 * (brook_window_t, read by its struct_size like an options struct) and the aggregator table
 * (brook_aggregator_t, copied by its version like the operator table; the built-ins written
 * into the caller's table by the caller's version). A size or version the library does not
 * know is refused with a message naming it, never read as fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "driver_helpers.h"
#include "window_pipeline.h"

static void assert_says(const char *msg, const char *part) {
  if (!msg || !strstr(msg, part))
    fail_msg("message \"%s\" does not say \"%s\"", msg ? msg : "(null)", part);
}

static brook_record_t rec_at(const char *key, brook_time_t ts) {
  brook_record_t r;
  memset(&r, 0, sizeof(r));
  r.key = key;
  r.key_len = strlen(key);
  r.timestamp = ts;
  return r;
}

/* A tumbling count over the window definition `w` as `def` (a caller's struct of any size):
 * three records of "a" in [0, 10), one at 25 closes it. */
static void check_counts(const brook_window_t *def) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = brook_source_push(t, "in", NULL);
  brook_aggregator_t agg = brook_agg_count();
  brook_stream_t *out = brook_window_aggregate(in, def, &agg, NULL);
  assert_non_null(out);
  named_sink(out, "out");
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  const brook_time_t ts[] = {1, 5, 9, 25};
  for (size_t i = 0; i < 4; i++) {
    brook_record_t r = rec_at("a", ts[i]);
    assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  }
  assert_int_equal(brook_driver_output_count(d, "out"), 1);
  brook_window_value_t wv;
  int64_t count;
  char key[8];
  window_count_result(d, 0, &wv, &count, key, sizeof(key));
  assert_int_equal(wv.start, 0);
  assert_int_equal(wv.end, 10);
  assert_int_equal(count, 3);
  brook_driver_free(d);
  brook_topology_free(t);
}

/* The constructors are inline: the struct they build carries this program's sizeof, and
 * the library reads it by that size. */
static void test_window_definition_by_pointer(void **state) {
  (void)state;
  brook_window_t w = brook_window_tumbling(10);
  assert_int_equal(w.struct_size, sizeof(brook_window_t));
  assert_int_equal(w.kind, BROOK_WINDOW_TUMBLING);
  check_counts(&w);

  brook_window_t h = brook_window_hopping(60, 10);
  assert_int_equal(h.kind, BROOK_WINDOW_HOPPING);
  assert_int_equal(h.size, 60);
  assert_int_equal(h.advance, 10);
  brook_window_t s = brook_window_sliding(7);
  assert_int_equal(s.kind, BROOK_WINDOW_SLIDING);
  assert_int_equal(s.size, 7);
  brook_window_t g = brook_window_session(30);
  assert_int_equal(g.kind, BROOK_WINDOW_SESSION);
  assert_int_equal(g.gap, 30);
  assert_int_equal(g.struct_size, sizeof(brook_window_t));
}

/* The definition is read by its struct_size, from a buffer exactly that large (ASan would
 * catch a read past it): the sizes of the layouts this library knows are accepted. Today
 * brook_window_t has had one versioned layout, its current sizeof. */
static void test_window_known_sizes_accepted(void **state) {
  (void)state;
  brook_window_t *w = malloc(sizeof(*w));
  assert_non_null(w);
  *w = brook_window_tumbling(10);
  check_counts(w);
  free(w);
}

static void expect_refused(const brook_window_t *def, const char *says) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = brook_source_push(t, "in", NULL);
  brook_aggregator_t agg = brook_agg_count();
  assert_null(brook_window_aggregate(in, def, &agg, NULL));
  assert_int_equal(brook_topology_error(t), BROOK_ERR_INVALID_ARG);
  assert_says(brook_topology_last_error(t), says);
  brook_topology_free(t);
}

/* Any other struct_size (0, only the kind, a field short, a newer library's, garbage) is
 * refused with a message naming the size, instead of its bytes being read as fields. */
static void test_window_unknown_sizes_refused(void **state) {
  (void)state;
  /* Room past the struct: a library that ignored struct_size would read zeros, not crash. */
  union {
    brook_window_t w;
    unsigned char bytes[sizeof(brook_window_t) + 64];
  } buf;
  const uint32_t sizes[] = {0,
                            4,
                            offsetof(brook_window_t, size),
                            sizeof(brook_window_t) - 8,
                            sizeof(brook_window_t) + 8,
                            sizeof(brook_window_t) + 1,
                            0xdeadbeefu};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    memset(&buf, 0, sizeof(buf));
    buf.w = brook_window_tumbling(10);
    buf.w.struct_size = sizes[i];
    char says[96];
    snprintf(says, sizeof(says), "struct_size %u is not a size of brook_window_t",
             (unsigned)sizes[i]);
    expect_refused(&buf.w, says);
  }
  expect_refused(NULL, "window is NULL");
  brook_window_t bad = brook_window_tumbling(10);
  bad.kind = (brook_window_kind_t)7;
  expect_refused(&bad, "unknown window kind 7");
}

/* ---- aggregators ---- */

/* A table of a version this library does not know is refused, naming the version, by every
 * builder that takes one. */
static void test_aggregator_unknown_versions_refused(void **state) {
  (void)state;
  const uint32_t versions[] = {0, BROOK_AGGREGATOR_VERSION + 1, 77};
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
    brook_topology_t *t = NULL;
    assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
    brook_stream_t *in = brook_source_push(t, "in", NULL);
    brook_aggregator_t agg = brook_agg_sum(NULL, NULL);
    agg.version = versions[i];
    char says[96];
    snprintf(says, sizeof(says), "aggregator table version %u is not one this library knows",
             (unsigned)versions[i]);
    assert_null(brook_aggregate(in, &agg, NULL));
    assert_says(brook_topology_last_error(t), says);
    brook_window_t w = brook_window_hopping(20, 10);
    assert_null(brook_window_aggregate(in, &w, &agg, NULL));
    assert_says(brook_topology_last_error(t), says);
    brook_topology_free(t);
  }
}

/* A known version is copied by its size, from a buffer exactly that large (ASan catches a
 * read past it), and the copy is the operator's own: changing the caller's table after the
 * builder returned changes nothing. */
static void test_aggregator_copied_by_version(void **state) {
  (void)state;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = brook_source_push(t, "in", NULL);
  brook_aggregator_t *agg = malloc(sizeof(*agg));
  assert_non_null(agg);
  *agg = brook_agg_count();
  brook_stream_t *out = brook_aggregate(in, agg, NULL);
  assert_non_null(out);
  memset(agg, 0xff, sizeof(*agg)); /* the caller reuses its table */
  free(agg);
  named_sink(out, "out");
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  for (int i = 0; i < 3; i++) {
    brook_record_t r = rec_at("k", i);
    assert_int_equal(brook_driver_push(d, "in", &r), BROOK_OK);
  }
  assert_int_equal(brook_driver_output_count(d, "out"), 3);
  int64_t n;
  const brook_record_t *last = brook_driver_output(d, "out", 2);
  assert_int_equal(last->value_len, sizeof(n));
  memcpy(&n, last->value, sizeof(n));
  assert_int_equal(n, 3);
  brook_driver_free(d);
  brook_topology_free(t);
}

/* The built-ins are written into the caller's table as the caller's version: exactly that
 * version's bytes (nothing past them), marked as that version; an unknown version or kind
 * is refused and the table left untouched. */
static void test_builtin_written_by_version(void **state) {
  (void)state;
  union {
    brook_aggregator_t agg;
    unsigned char bytes[sizeof(brook_aggregator_t) + 32];
  } buf;
  memset(&buf, 0xa5, sizeof(buf));
  assert_int_equal(
      brook_agg_builtin(&buf.agg, BROOK_AGGREGATOR_VERSION, BROOK_AGG_MEAN, NULL, &buf), BROOK_OK);
  assert_int_equal(buf.agg.version, BROOK_AGGREGATOR_VERSION);
  assert_string_equal(buf.agg.name, "mean");
  assert_int_equal(buf.agg.result_size, sizeof(double));
  assert_ptr_equal(buf.agg.number_opaque, &buf);
  for (size_t i = sizeof(brook_aggregator_t); i < sizeof(buf.bytes); i++)
    assert_int_equal(buf.bytes[i], 0xa5);

  const brook_agg_builtin_t kinds[] = {BROOK_AGG_COUNT, BROOK_AGG_SUM,  BROOK_AGG_MIN,
                                       BROOK_AGG_MAX,   BROOK_AGG_MEAN, BROOK_AGG_STATS};
  const char *const names[] = {"count", "sum", "min", "max", "mean", "stats"};
  for (size_t i = 0; i < 6; i++) {
    brook_aggregator_t a;
    assert_int_equal(brook_agg_builtin(&a, BROOK_AGGREGATOR_VERSION, kinds[i], NULL, NULL),
                     BROOK_OK);
    assert_string_equal(a.name, names[i]);
    assert_non_null(a.add);
    assert_non_null(a.merge);
  }
  brook_aggregator_t inl = brook_agg_stats(NULL, NULL);
  assert_string_equal(inl.name, "stats");
  assert_int_equal(inl.result_size, sizeof(brook_agg_stats_t));

  memset(&buf, 0xa5, sizeof(buf));
  assert_int_equal(brook_agg_builtin(&buf.agg, 0, BROOK_AGG_COUNT, NULL, NULL),
                   BROOK_ERR_INVALID_ARG);
  assert_int_equal(
      brook_agg_builtin(&buf.agg, BROOK_AGGREGATOR_VERSION + 1, BROOK_AGG_COUNT, NULL, NULL),
      BROOK_ERR_INVALID_ARG);
  assert_int_equal(
      brook_agg_builtin(&buf.agg, BROOK_AGGREGATOR_VERSION, (brook_agg_builtin_t)42, NULL, NULL),
      BROOK_ERR_INVALID_ARG);
  for (size_t i = 0; i < sizeof(buf.bytes); i++)
    assert_int_equal(buf.bytes[i], 0xa5);
  assert_int_equal(brook_agg_builtin(NULL, BROOK_AGGREGATOR_VERSION, BROOK_AGG_COUNT, NULL, NULL),
                   BROOK_ERR_INVALID_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_window_definition_by_pointer),
      cmocka_unit_test(test_window_known_sizes_accepted),
      cmocka_unit_test(test_window_unknown_sizes_refused),
      cmocka_unit_test(test_aggregator_unknown_versions_refused),
      cmocka_unit_test(test_aggregator_copied_by_version),
      cmocka_unit_test(test_builtin_written_by_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
