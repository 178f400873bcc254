/* A failed run leaves its consumer group (kafka_leave.c), so that the next run of the
 * application in the same group is not kept waiting for the failed member's session
 * (session.timeout.ms 60 s here) to time out.
 *
 * What is checked: the failed run's consumer sends LeaveGroup and the coordinator answers it
 * (librdkafka's cgrp debug log, captured from the runtime's logger) before the run returns;
 * then a restart in the same group consumes everything within 15 s.
 *
 * The embedded broker (librdkafka 2.0.2's mock) cannot show the difference by timing alone:
 * it times every rebalance, an explicit leave included, by the session timeout of the member
 * that joined last, and expires silent members by that same group-wide value. The group
 * therefore also has a witness, a plain consumer of another topic with a 3 s session that
 * rejoins after every other member: rebalances stay short (or, with the mock's 59 s delay
 * after a leave, the restart would wait anyway), and the restart part is the end-to-end check,
 * while the LeaveGroup answer is what only a leaving member gets.
 *
 * The failures: a malformed record under the FAIL policy (the source fails) and an operator
 * that fails on a record (the pipeline fails). Each time the input holds the record that
 * fails and 20 good ones; the restart skips what fails and must see the 20. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "broker_proc.h"
#include "kafka_helpers.h"
#include "log_capture.h"
#include "run_deadline.h"
#include "wait.h"

#define N_GOOD 20
#define RESTART_MS 15000

static atomic_int n_seen;

/* ---- the witness: a member of the group on another topic, polled on its own thread ---- */

typedef struct witness {
  rd_kafka_t *rk;
  pthread_t tid;
  atomic_int stop;
} witness_t;

static void *witness_main(void *arg) {
  witness_t *w = arg;
  while (!atomic_load(&w->stop)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 50);
    if (m)
      rd_kafka_message_destroy(m);
  }
  return NULL;
}

static void witness_start(witness_t *w, const char *bootstrap, const char *group) {
  memset(w, 0, sizeof(*w));
  w->rk = kh_client(RD_KAFKA_CONSUMER, bootstrap,
                    (const char *const[]){"group.id", group, "partition.assignment.strategy",
                                          "cooperative-sticky", "session.timeout.ms", "3000",
                                          "heartbeat.interval.ms", "300", "enable.auto.commit",
                                          "false", NULL},
                    NULL, NULL);
  rd_kafka_poll_set_consumer(w->rk);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, "other", RD_KAFKA_PARTITION_UA);
  assert_int_equal(rd_kafka_subscribe(w->rk, l), 0);
  rd_kafka_topic_partition_list_destroy(l);
  assert_int_equal(pthread_create(&w->tid, NULL, witness_main, w), 0);
}

/* The witness has its partition (librdkafka assigns it: no rebalance callback). */
static int witness_in(void *arg) {
  rd_kafka_topic_partition_list_t *l = NULL;
  if (rd_kafka_assignment(((witness_t *)arg)->rk, &l) || !l)
    return 0;
  int n = l->cnt;
  rd_kafka_topic_partition_list_destroy(l);
  return n > 0;
}

static void witness_stop(witness_t *w) {
  atomic_store(&w->stop, 1);
  pthread_join(w->tid, NULL);
  rd_kafka_consumer_close(w->rk);
  rd_kafka_destroy(w->rk);
}

static brook_err_t count(const brook_record_t *rec, void *opaque) {
  (void)rec;
  (void)opaque;
  atomic_fetch_add(&n_seen, 1);
  return BROOK_OK;
}

/* Fails on the value "poison" (the operator failure), unless opaque is set. */
static int keep_unless_poison(const brook_record_t *rec, void *opaque) {
  return opaque || rec->value_len != 6 || memcmp(rec->value, "poison", 6) != 0;
}

static brook_err_t fail_on_poison(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  if (opaque || rec->value_len != 6 || memcmp(rec->value, "poison", 6) != 0)
    return BROOK_OK;
  brook_ctx_set_error(ctx, "poison record");
  return BROOK_ERR_USER;
}

static void log_to_stderr(int level, const char *msg, void *opaque) {
  (void)opaque;
  fprintf(stderr, "[%d] %s\n", level, msg);
}

static log_capture_t first_run_log;

static void log_first_run(int level, const char *msg, void *opaque) {
  log_capture_cb(level, msg, &first_run_log);
  if (getenv("BROOK_TEST_LOG"))
    log_to_stderr(level, msg, opaque);
}

typedef enum failure { MALFORMED, OPERATOR } failure_t;

/* The application: "in" (UTF-8 strings) -> [map that fails on "poison"] -> count. The first
 * run fails as `how` says; the restart (`restart` set) skips malformed records and filters
 * the poison out. */
static brook_runtime_t *app(const char *bootstrap, failure_t how, int restart,
                            brook_topology_t **t_out) {
  brook_topology_t *t;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = how == MALFORMED ? "leave-malformed" : "leave-operator";
  so.topics = (const char *const[]){"in", NULL};
  so.value.format = BROOK_KAFKA_STRING;
  so.on_malformed = restart ? BROOK_KAFKA_MALFORMED_SKIP : BROOK_KAFKA_MALFORMED_FAIL;
  so.properties =
      (const char *const[]){"session.timeout.ms", "60000", restart ? NULL : "debug", "cgrp", NULL};
  brook_stream_t *s = brook_source_kafka(t, "in", &so);
  if (how == OPERATOR)
    s = brook_map(brook_filter(s, keep_unless_poison, (void *)(uintptr_t)!restart), fail_on_poison,
                  (void *)(uintptr_t)restart);
  assert_int_equal(brook_sink_callback(s, count, NULL, NULL), BROOK_OK);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  /* The first run must commit nothing before it fails: the restart is expected to read every
   * good record, and a periodic commit of the partition without the bad record (due after
   * commit_interval_ms, which a loaded machine can reach before the bad record's batch)
   * would rightly skip that partition's records on restart. */
  if (!restart)
    ro.commit_interval_ms = 3600 * 1000;
  if (!restart)
    ro.log = log_first_run;
  else if (getenv("BROOK_TEST_LOG"))
    ro.log = log_to_stderr;
  brook_runtime_t *rt;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  *t_out = t;
  return rt;
}

static int all_good_seen(void *arg) {
  (void)arg;
  return atomic_load(&n_seen) >= N_GOOD;
}

static void failed_run_then_restart(failure_t how) {
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:2", "other:1", NULL}, NULL), 0);
  witness_t w;
  witness_start(&w, b.bootstrap, how == MALFORMED ? "leave-malformed" : "leave-operator");
  assert_true(wait_until(witness_in, &w, 30000));
  if (how == MALFORMED)
    kh_produce_raw(b.bootstrap, "in", "k", 1, "\xff\xfe", 2); /* not UTF-8 */
  else
    kh_produce_raw(b.bootstrap, "in", "k", 1, "poison", 6);
  kh_produce(b.bootstrap, "in", "value-", 0, N_GOOD, 7);

  brook_topology_t *t;
  log_capture_init(&first_run_log);
  brook_runtime_t *rt = app(b.bootstrap, how, 0, &t);
  uint64_t failed_ms = 0;
  brook_err_t err = run_with_deadline(rt, 30000, &failed_ms);
  assert_true(err < 0);
  printf("  the first run failed after %llu ms: %s\n", (unsigned long long)failed_ms,
         brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  int left = strstr(log_capture_text(&first_run_log), "LeaveGroup response received") != NULL;
  log_capture_free(&first_run_log);
  if (!left)
    fail_msg("the failed run ended without leaving the group (no LeaveGroup answered)");

  atomic_store(&n_seen, 0);
  rt = app(b.bootstrap, how, 1, &t);
  bg_run_t r;
  bg_run_start(&r, rt);
  int ok = wait_until(all_good_seen, NULL, RESTART_MS);
  uint64_t took = wait_now_ms() - r.started_ms;
  brook_runtime_stop(rt);
  /* A restart stopped before its first assignment finishes joining first (kafka_group.h): with
   * the failed member still in the group, that takes its whole session. */
  assert_int_equal(bg_run_finish(&r, 90000), BROOK_OK);
  if (!ok)
    fail_msg("the restart consumed %d of %d records within %d ms: the failed run did not leave "
             "the group",
             atomic_load(&n_seen), N_GOOD, RESTART_MS);
  printf("  the restart consumed all %d good records after %llu ms\n", N_GOOD,
         (unsigned long long)took);
  brook_runtime_free(rt);
  brook_topology_free(t);
  witness_stop(&w);
  assert_int_equal(broker_stop(&b), 0);
}

static void test_malformed_record_run_leaves(void **state) {
  (void)state;
  failed_run_then_restart(MALFORMED);
}

static void test_operator_failure_run_leaves(void **state) {
  (void)state;
  failed_run_then_restart(OPERATOR);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_malformed_record_run_leaves),
      cmocka_unit_test(test_operator_failure_run_leaves),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
