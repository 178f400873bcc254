/* Task states (brook/task.h) with Kafka, on the embedded broker: every change is reported
 * through brook_runtime_opts_t.on_task_state, in order, with its reason, on assignment
 * (CREATED, RESTORING, RUNNING), revocation when a second member joins (SUSPENDED, CLOSED),
 * a stop (SUSPENDED, CLOSED) and a failed run (SUSPENDED, CLOSED without flush). A task opens
 * outside the rebalance callback, yet no record of its partition is processed before it is
 * RUNNING, and every task instance sees its partition's records in order (records waiting in
 * the topic when the partition is assigned are neither lost nor reordered). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <librdkafka/rdkafka.h>

#include "support/bg_run.h"
#include "support/broker_proc.h"
#include "support/collect.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

#define N_PARTS 2
#define MAX_EVENTS 64

typedef struct event {
  int32_t task;
  int old_state, new_state;
  char reason[96];
} event_t;

/* One member: its runtime, the task changes it reported and what its operator saw. All of
 * it is written on the member's loop thread and read by the test under `mu`. */
typedef struct member {
  uv_mutex_t mu;
  event_t ev[MAX_EVENTS];
  int n_ev;
  int state[N_PARTS]; /* the latest reported state per task (-1: none) */
  long last[N_PARTS]; /* the task instance's last input index (-1: none since RUNNING) */
  long records, not_running, out_of_order;
  wait_counter_t seen; /* records processed */
  brook_topology_t *t;
  bg_run_t run;
} member_t;

static void on_task_state(int32_t task, int old_state, int new_state, const char *reason,
                          void *opaque) {
  member_t *m = opaque;
  uv_mutex_lock(&m->mu);
  if (m->n_ev < MAX_EVENTS) {
    event_t *e = &m->ev[m->n_ev++];
    e->task = task;
    e->old_state = old_state;
    e->new_state = new_state;
    snprintf(e->reason, sizeof(e->reason), "%s", reason);
  }
  if (task >= 0 && task < N_PARTS) {
    m->state[task] = new_state;
    if (new_state == BROOK_TASK_RUNNING)
      m->last[task] = -1; /* a new instance */
  }
  uv_mutex_unlock(&m->mu);
}

/* Values are "<partition>:<i>", i increasing per partition; "boom" fails the run. */
static brook_err_t check(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  member_t *m = state;
  char v[32];
  size_t n = rec->value_len < sizeof(v) - 1 ? rec->value_len : sizeof(v) - 1;
  memcpy(v, rec->value, n);
  v[n] = '\0';
  if (strcmp(v, "boom") == 0) {
    brook_ctx_set_error(ctx, "boom");
    return BROOK_ERR_INVALID_ARG;
  }
  int part = -1;
  long i = -1;
  sscanf(v, "%d:%ld", &part, &i);
  int32_t task = brook_ctx_task(ctx);
  uv_mutex_lock(&m->mu);
  if (task < 0 || task >= N_PARTS || task != part || m->state[task] != BROOK_TASK_RUNNING)
    m->not_running++;
  else if (i <= m->last[task])
    m->out_of_order++;
  else
    m->last[task] = i;
  m->records++;
  uv_mutex_unlock(&m->mu);
  wait_counter_add(&m->seen, 1);
  return brook_emit(ctx, rec);
}

static brook_err_t check_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx;
  *state = opaque;
  return BROOK_OK;
}

static const brook_operator_t check_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "check",
    .open = check_open,
    .process = check,
};

static brook_err_t drop(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}

static void member_start(member_t *m, const char *bootstrap) {
  memset(m, 0, sizeof(*m));
  uv_mutex_init(&m->mu);
  wait_counter_init(&m->seen, 0);
  for (int p = 0; p < N_PARTS; p++) {
    m->state[p] = -1;
    m->last[p] = -1;
  }
  m->t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = "g-states";
  so.topics = (const char *const[]){"in", NULL};
  so.properties = (const char *const[]){"session.timeout.ms", "6000", NULL};
  brook_stream_t *s = brook_apply(brook_source_kafka(m->t, "in", &so), &check_op, m);
  assert_int_equal(brook_sink_callback(s, drop, NULL, NULL), BROOK_OK);
  brook_runtime_opts_t ro = *kh_rt_opts();
  ro.on_task_state = on_task_state;
  ro.on_task_state_opaque = m;
  assert_int_equal(brook_runtime_new(&m->run.rt, m->t, &ro), BROOK_OK);
  assert_int_equal(pthread_create(&m->run.thread, NULL, bg_run_thread, &m->run), 0);
}

static brook_err_t member_end(member_t *m, int stop) {
  if (stop)
    brook_runtime_stop(m->run.rt);
  pthread_join(m->run.thread, NULL);
  return m->run.result;
}

static void member_free(member_t *m) {
  brook_runtime_free(m->run.rt);
  brook_topology_free(m->t);
  wait_counter_destroy(&m->seen);
  uv_mutex_destroy(&m->mu);
}

static void produce(const char *bootstrap, int from, int to) {
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, bootstrap, NULL, NULL, NULL);
  for (int part = 0; part < N_PARTS; part++)
    for (int i = from; i < to; i++) {
      char v[32];
      int n = snprintf(v, sizeof(v), "%d:%d", part, i);
      assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("in"), RD_KAFKA_V_PARTITION(part),
                                         RD_KAFKA_V_VALUE(v, (size_t)n),
                                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                       0);
    }
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), 0);
  rd_kafka_destroy(p);
}

/* The events of `task` from index `from` on, as "OLD>NEW(reason) ..." into buf. */
static const char *history(member_t *m, int32_t task, int from, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  uv_mutex_lock(&m->mu);
  for (int i = from; i < m->n_ev && used < cap; i++)
    if (m->ev[i].task == task)
      used += (size_t)snprintf(buf + used, cap - used, "%s>%s(%s) ",
                               brook_task_state_name(m->ev[i].old_state),
                               brook_task_state_name(m->ev[i].new_state), m->ev[i].reason);
  uv_mutex_unlock(&m->mu);
  return buf;
}

typedef struct state_is {
  member_t *m;
  int32_t task;
  int state;
} state_is_t;

static int has_state(void *arg) {
  state_is_t *s = arg;
  uv_mutex_lock(&s->m->mu);
  int yes = s->m->state[s->task] == s->state;
  uv_mutex_unlock(&s->m->mu);
  return yes;
}

static int any_running(void *arg) {
  member_t *m = arg;
  int yes = 0;
  uv_mutex_lock(&m->mu);
  for (int p = 0; p < N_PARTS; p++)
    yes |= m->state[p] == BROOK_TASK_RUNNING;
  uv_mutex_unlock(&m->mu);
  return yes;
}

/* Member a's task ta and member c's task tc have both processed input index `last`. */
typedef struct reached {
  member_t *a;
  int32_t ta;
  member_t *c;
  int32_t tc;
  long last;
} reached_t;

static int both_reached(void *arg) {
  reached_t *r = arg;
  uv_mutex_lock(&r->a->mu);
  int yes = r->a->last[r->ta] == r->last;
  uv_mutex_unlock(&r->a->mu);
  uv_mutex_lock(&r->c->mu);
  yes &= r->c->last[r->tc] == r->last;
  uv_mutex_unlock(&r->c->mu);
  return yes;
}

#define OPENED                                                                                     \
  "CREATED>CREATED(partition assigned) CREATED>RESTORING(nothing to restore) "                     \
  "RESTORING>RUNNING(restored) "

static void test_task_states(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:2", NULL}, NULL), 0);
  produce(b.bootstrap, 0, 300); /* waiting when the partitions are assigned */
  static member_t a, c;
  member_start(&a, b.bootstrap);
  assert_true(wait_counter_wait_ge(&a.seen, 2 * 300, 60000));
  char h[1024];
  for (int32_t p = 0; p < N_PARTS; p++)
    assert_string_equal(history(&a, p, 0, h, sizeof(h)), OPENED);

  /* A second member: one partition moves to it, its task suspends and closes in A and opens
   * in C. */
  int a_events = a.n_ev;
  member_start(&c, b.bootstrap);
  assert_true(wait_until(any_running, &c, 60000));
  int32_t moved = -1;
  for (int32_t p = 0; p < N_PARTS && moved < 0; p++) {
    state_is_t s = {&c, p, BROOK_TASK_RUNNING};
    if (has_state(&s))
      moved = p;
  }
  assert_true(moved >= 0);
  state_is_t closed = {&a, moved, BROOK_TASK_CLOSED};
  assert_true(wait_until(has_state, &closed, 30000));
  assert_string_equal(history(&a, moved, a_events, h, sizeof(h)),
                      "RUNNING>SUSPENDED(partition revoked) SUSPENDED>CLOSED(closed) ");
  assert_string_equal(history(&c, moved, 0, h, sizeof(h)), OPENED);
  int32_t kept = 1 - moved;
  state_is_t running = {&a, kept, BROOK_TASK_RUNNING};
  assert_true(has_state(&running));

  /* New input reaches both members' tasks. */
  produce(b.bootstrap, 300, 400);
  reached_t r = {&a, kept, &c, moved, 399};
  assert_true(wait_until(both_reached, &r, 60000));

  /* A stops: its task suspends and closes (the stop's reason). */
  a_events = a.n_ev;
  assert_int_equal(member_end(&a, 1), BROOK_OK);
  assert_string_equal(history(&a, kept, a_events, h, sizeof(h)),
                      "RUNNING>SUSPENDED(stopped (leaving the group)) SUSPENDED>CLOSED(closed) ");
  /* C takes the partition over; then a bad record fails C's run: its tasks suspend and close
   * without flush. */
  state_is_t c_kept = {&c, kept, BROOK_TASK_RUNNING};
  assert_true(wait_until(has_state, &c_kept, 60000));
  int c_events = c.n_ev;
  rd_kafka_t *p = kh_client(RD_KAFKA_PRODUCER, b.bootstrap, NULL, NULL, NULL);
  assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("in"), RD_KAFKA_V_PARTITION(kept),
                                     RD_KAFKA_V_VALUE("boom", 4), RD_KAFKA_V_END),
                   0);
  assert_int_equal(rd_kafka_flush(p, KH_TIMEOUT_MS), 0);
  rd_kafka_destroy(p);
  assert_int_equal(member_end(&c, 0), BROOK_ERR_INVALID_ARG);
  for (int32_t t = 0; t < N_PARTS; t++)
    assert_string_equal(history(&c, t, c_events, h, sizeof(h)),
                        "RUNNING>SUSPENDED(the run failed (closed without flush or commit)) "
                        "SUSPENDED>CLOSED(closed) ");

  /* No record ran in a task that was not RUNNING; each instance saw its partition in order. */
  assert_int_equal(a.not_running, 0);
  assert_int_equal(c.not_running, 0);
  assert_int_equal(a.out_of_order, 0);
  assert_int_equal(c.out_of_order, 0);
  member_free(&a);
  member_free(&c);
  assert_int_equal(broker_stop(&b), 0);
}

static void test_state_names(void **state) {
  (void)state;
  assert_string_equal(brook_task_state_name(BROOK_TASK_CREATED), "CREATED");
  assert_string_equal(brook_task_state_name(BROOK_TASK_RESTORING), "RESTORING");
  assert_string_equal(brook_task_state_name(BROOK_TASK_RUNNING), "RUNNING");
  assert_string_equal(brook_task_state_name(BROOK_TASK_SUSPENDED), "SUSPENDED");
  assert_string_equal(brook_task_state_name(BROOK_TASK_CLOSED), "CLOSED");
  assert_string_equal(brook_task_state_name(42), "UNKNOWN");
  assert_string_equal(brook_task_state_name(-1), "UNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_names),
      cmocka_unit_test(test_task_states),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
