/* Event time comes back with a task's state (runtime/task_event_time.c): a window that closed
 * and fired before a restart stays closed after it. Run 1 puts one record of key k0 into the
 * window [T0, T0 + 1 s) and moves event time past its end + grace: the window fires with
 * count 1, and the run stops (its final commit stores the state, the input positions and the
 * watermarks). Run 2, a fresh runtime, restores the task (from its changelogs, or from its
 * state directory) and reads a record of k0 inside that window, late now, then one far ahead:
 * the late record is dropped and counted, and the window does not fire again. Before event
 * time came back, run 2's watermark started over, the late record reopened the window and it
 * fired a second time with a partial count of 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/kafka_helpers.h"
#include "support/key_counts.h"
#include "support/tempfiles.h"
#include "support/wait.h"

#define WIN_MS 1000
#define GRACE_MS 500
#define T0 INT64_C(1700000000000) /* a window start */

static broker_proc_t broker;

typedef struct seen {
  atomic_int in;      /* records read */
  atomic_int results; /* window results of key k0 */
  atomic_llong last_count, last_start;
} seen_t;

/* A map_values (a map could change the key: it would repartition). */
static brook_err_t count_in(const brook_record_t *rec, const void **value, size_t *value_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  *value = rec->value;
  *value_len = rec->value_len;
  atomic_fetch_add(&((seen_t *)opaque)->in, 1);
  return BROOK_OK;
}

static brook_err_t on_window(const brook_record_t *rec, void *opaque) {
  seen_t *s = opaque;
  brook_window_value_t wv;
  const void *res = NULL;
  if (brook_window_parse(rec, &wv, &res) != BROOK_OK || wv.result_len != sizeof(int64_t))
    return BROOK_ERR_USER;
  if (kc_key_index(rec->key, rec->key_len, 1) != 0)
    return BROOK_OK; /* "z": only moves event time */
  int64_t c;
  memcpy(&c, res, sizeof(c));
  atomic_store(&s->last_count, c);
  atomic_store(&s->last_start, wv.start);
  atomic_fetch_add(&s->results, 1);
  return BROOK_OK;
}

static int reached(void *arg) {
  const atomic_int *counter = ((void **)arg)[0];
  return atomic_load(counter) >= *(const int *)((void **)arg)[1];
}

/* Runs the window pipeline until `counter` reaches `want`, stops it, and returns its stats. */
static brook_runtime_stats_t run(const char *group, const char *state_dir, seen_t *s,
                                 atomic_int *counter, int want) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = broker.bootstrap;
  so.group_id = group;
  so.topics = (const char *const[]){"evt", NULL};
  /* The mock lets a join wait session.timeout.ms - 1 s for the members of the last run. */
  so.properties =
      (const char *const[]){"session.timeout.ms", "3000", "heartbeat.interval.ms", "300", NULL};
  brook_stream_t *in = brook_map_values(brook_source_kafka(t, "evt", &so), count_in, s);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(WIN_MS);
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.grace = GRACE_MS;
  wo.name = "windows";
  assert_int_equal(
      brook_sink_callback(brook_window_aggregate(in, &win, &count, &wo), on_window, NULL, s),
      BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.commit_interval_ms = 100;
  ro.state_dir = state_dir;
  ro.changelogs = state_dir == NULL;
  bg_run_t r;
  bg_start_opts(&r, t, &ro);
  void *arg[2] = {counter, &want};
  if (!wait_until(reached, arg, KH_TIMEOUT_MS))
    fail_msg("run of group %s: %d of %d", group, atomic_load(counter), want);
  if (bg_stop(&r) != BROOK_OK)
    fail_msg("run of group %s failed: %s", group, brook_runtime_last_error(r.rt));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(r.rt, &st), BROOK_OK);
  brook_runtime_free(r.rt);
  brook_topology_free(t);
  return st;
}

static void closed_window_stays_closed(const char *group, const char *state_dir) {
  kc_produce_at(broker.bootstrap, "evt", 0, "k0", T0 + 100);
  kc_produce_at(broker.bootstrap, "evt", 0, "z", T0 + WIN_MS + GRACE_MS + 1000);
  seen_t s1 = {0};
  run(group, state_dir, &s1, &s1.results, 1);
  assert_int_equal(atomic_load(&s1.results), 1);
  assert_int_equal(atomic_load(&s1.last_count), 1);
  assert_int_equal(atomic_load(&s1.last_start), T0);

  kc_produce_at(broker.bootstrap, "evt", 0, "k0", T0 + 200); /* the window closed: late */
  kc_produce_at(broker.bootstrap, "evt", 0, "z", T0 + 10 * WIN_MS);
  seen_t s2 = {0};
  brook_runtime_stats_t st = run(group, state_dir, &s2, &s2.in, 2);
  print_message("%s: run 2 read %d records, %llu late, %d results of k0 (count %lld)\n", group,
                atomic_load(&s2.in), (unsigned long long)st.records_late, atomic_load(&s2.results),
                (long long)atomic_load(&s2.last_count));
  assert_int_equal(atomic_load(&s2.in), 2); /* resumed after run 1's input */
  assert_int_equal(atomic_load(&s2.results), 0);
  assert_int_equal(st.records_late, 1);
}

static void test_from_changelogs(void **state) {
  (void)state;
  closed_window_stays_closed("evt-log", NULL);
}

static void test_from_state_dir(void **state) {
  (void)state;
  char *dir = temp_dir_new("evt");
  closed_window_stays_closed("evt-disk", dir);
  temp_dir_free(dir);
}

static int setup(void **state) {
  (void)state;
  const char *const topics[] = {"evt:1", "evt-log-windows-window-changelog:1",
                                "evt-log-windows-timers-changelog:1", NULL};
  return broker_start(&broker, 1, topics, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return broker_stop(&broker) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_from_changelogs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_from_state_dir, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
