/* Window operators at the edges of time (issue 11 E, window part): records at INT64_MIN,
 * INT64_MAX, next to them, at the +-2^61 ms limit windows support and around zero, for
 * every window kind, with the largest sizes, gaps and grace the builder accepts. Records
 * outside +-2^61 are failed through the error policy (window.h), never wrapped; those inside
 * land in exactly the windows a brute-force reference computes with 128-bit arithmetic; and
 * UBSan stays silent (the test build runs with -fsanitize=undefined, halting on error). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/window_pipeline.h"

#define LIMIT ((brook_time_t)1 << 61)

__extension__ typedef __int128 i128; /* exact reference arithmetic */

typedef struct win {
  char key;
  brook_time_t start, end;
  int64_t count;
} win_t;

typedef struct recs {
  char key[16];
  brook_time_t ts[16];
  size_t n;
} recs_t;

static int win_cmp(const void *pa, const void *pb) {
  const win_t *a = pa, *b = pb;
  if (a->key != b->key)
    return a->key < b->key ? -1 : 1;
  if (a->start != b->start)
    return a->start < b->start ? -1 : 1;
  return a->end < b->end ? -1 : a->end > b->end;
}

static i128 floor_to(i128 t, i128 step) {
  i128 r = t % step;
  return r < 0 ? t - r - step : t - r;
}

static int64_t count_in(const recs_t *r, char key, i128 start, i128 end) {
  int64_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    n += r->key[i] == key && r->ts[i] >= start && r->ts[i] < end;
  return n;
}

static void add_win(win_t *out, size_t *n, size_t cap, char key, i128 start, i128 end,
                    int64_t count) {
  assert_true(start >= INT64_MIN && end <= INT64_MAX); /* every window is representable */
  for (size_t i = 0; i < *n; i++)
    if (out[i].key == key && out[i].start == (brook_time_t)start && out[i].end == (brook_time_t)end)
      return;
  assert_true(*n < cap);
  out[(*n)++] = (win_t){key, (brook_time_t)start, (brook_time_t)end, count};
}

/* The reference: the windows of the valid records, with their counts. */
static size_t expected(brook_window_t w, const recs_t *r, win_t *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++) {
    i128 t = r->ts[i];
    char k = r->key[i];
    switch (w.kind) {
    case BROOK_WINDOW_TUMBLING:
    case BROOK_WINDOW_HOPPING: {
      i128 adv = w.kind == BROOK_WINDOW_TUMBLING ? w.size : w.advance;
      for (i128 ws = floor_to(t, adv); ws > t - w.size; ws -= adv)
        add_win(out, &n, cap, k, ws, ws + w.size, count_in(r, k, ws, ws + w.size));
      break;
    }
    case BROOK_WINDOW_SLIDING:
      add_win(out, &n, cap, k, t - w.size + 1, t + 1, count_in(r, k, t - w.size + 1, t + 1));
      break;
    case BROOK_WINDOW_SESSION: { /* the key's records in time order (as pushed), chained */
      i128 s = 0, e = 0;
      int open = 0;
      for (size_t j = 0; j < r->n; j++) {
        if (r->key[j] != k)
          continue;
        if (open && r->ts[j] < e) {
          e = r->ts[j] + (i128)w.gap > e ? r->ts[j] + (i128)w.gap : e;
          continue;
        }
        if (open && t >= s && t < e)
          break;
        s = r->ts[j];
        e = s + w.gap;
        open = 1;
      }
      add_win(out, &n, cap, k, s, e, count_in(r, k, s, e));
      break;
    }
    }
  }
  qsort(out, n, sizeof(*out), win_cmp);
  return n;
}

/* Pushes the extreme records through `w` (grace `grace`) and checks the windows. */
static void check(brook_window_t w, brook_time_t grace) {
  static const brook_time_t bad[] = {INT64_MIN, INT64_MIN + 1, -LIMIT,
                                     LIMIT,     INT64_MAX - 1, INT64_MAX};
  recs_t good = {.n = 7};
  const char keys[] = "aabcddd";
  const brook_time_t ts[] = {-LIMIT + 1, -LIMIT + 2, -1, 0, LIMIT - 3, LIMIT - 2, LIMIT - 1};
  memcpy(good.key, keys, 7);
  memcpy(good.ts, ts, sizeof(ts));

  brook_window_opts_t o;
  brook_window_opts_init(&o);
  o.grace = grace;
  brook_topology_t *t;
  brook_driver_t *d = window_count_pipeline(&t, w, 0, &o, BROOK_ON_ERROR_SKIP);
  if (!d)
    fail_msg("builder: %s", brook_topology_last_error(t));
  /* The too-old ones first (they must not hold anything back), the too-new ones last. */
  for (size_t i = 0; i < 3; i++) {
    brook_record_t rec = {.key = "x", .key_len = 1, .timestamp = bad[i]};
    assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
  }
  for (size_t i = 0; i < good.n; i++) {
    brook_record_t rec = {.key = &good.key[i], .key_len = 1, .timestamp = good.ts[i]};
    assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
  }
  for (size_t i = 3; i < 6; i++) {
    brook_record_t rec = {.key = "x", .key_len = 1, .timestamp = bad[i]};
    assert_int_equal(brook_driver_push(d, "in", &rec), BROOK_OK);
  }
  assert_int_equal(brook_driver_end(d), BROOK_OK);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_driver_stats(d, &st), BROOK_OK);
  assert_int_equal(st.records_skipped, 6);
  assert_int_equal(st.records_late, 0);

  size_t cap = 4096, n_exp;
  win_t *exp = calloc(cap, sizeof(*exp)), *got = calloc(cap, sizeof(*got));
  assert_non_null(exp);
  assert_non_null(got);
  n_exp = expected(w, &good, exp, cap);
  size_t n_got = brook_driver_output_count(d, "out");
  assert_true(n_got <= cap);
  for (size_t i = 0; i < n_got; i++) {
    brook_window_value_t wv;
    char key[4];
    window_count_result(d, i, &wv, &got[i].count, key, sizeof(key));
    assert_int_equal(strlen(key), 1);
    got[i].key = key[0];
    got[i].start = wv.start;
    got[i].end = wv.end;
  }
  qsort(got, n_got, sizeof(*got), win_cmp);
  for (size_t i = 0; i < n_exp || i < n_got; i++) {
    if (i < n_exp && i < n_got && !win_cmp(&exp[i], &got[i]) && exp[i].count == got[i].count)
      continue;
    fail_msg("kind %d size %lld: window %zu: expected %c [%lld, %lld) count %lld, got %c [%lld, "
             "%lld) count %lld (%zu expected, %zu got)",
             (int)w.kind, (long long)w.size, i, i < n_exp ? exp[i].key : '-',
             i < n_exp ? (long long)exp[i].start : 0, i < n_exp ? (long long)exp[i].end : 0,
             i < n_exp ? (long long)exp[i].count : 0, i < n_got ? got[i].key : '-',
             i < n_got ? (long long)got[i].start : 0, i < n_got ? (long long)got[i].end : 0,
             i < n_got ? (long long)got[i].count : 0, n_exp, n_got);
  }
  free(exp);
  free(got);
  brook_driver_free(d);
  brook_topology_free(t);
}

static void test_tumbling(void **state) {
  (void)state;
  check(brook_window_tumbling(1000), 0);
  check(brook_window_tumbling(LIMIT), 0); /* the largest size */
  check(brook_window_tumbling(3), LIMIT); /* the largest grace */
  check(brook_window_tumbling(LIMIT), LIMIT);
}

static void test_hopping(void **state) {
  (void)state;
  check(brook_window_hopping(1000, 250), 0);
  check(brook_window_hopping(LIMIT, LIMIT / 2), 0);
  check(brook_window_hopping(LIMIT, LIMIT / 4), LIMIT);
  check(brook_window_hopping(7, 3), LIMIT);
}

static void test_hopping_rings(void **state) { /* more than 64 slices per window */
  (void)state;
  check(brook_window_hopping(LIMIT, LIMIT / 128 * 3), 0); /* 128 slices, 43 windows each */
  check(brook_window_hopping(LIMIT, LIMIT / 128 * 127), LIMIT);
}

static void test_sliding(void **state) {
  (void)state;
  check(brook_window_sliding(1000), 0);
  check(brook_window_sliding(LIMIT), 0);
  check(brook_window_sliding(2), LIMIT);
  check(brook_window_sliding(LIMIT), LIMIT);
}

static void test_session(void **state) {
  (void)state;
  check(brook_window_session(1000), 0);
  check(brook_window_session(LIMIT), 0);
  check(brook_window_session(2), LIMIT);
  check(brook_window_session(LIMIT), LIMIT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tumbling),      cmocka_unit_test(test_hopping),
      cmocka_unit_test(test_hopping_rings), cmocka_unit_test(test_sliding),
      cmocka_unit_test(test_session),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
