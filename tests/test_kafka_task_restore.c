/* RESTORING (brook/task.h, runtime/task.c): a task's state is restored after its operators
 * opened (their stores exist) and before it runs. Nothing persists locally yet, so the
 * runtime's restorer hook (bk_tasks_set_restorer, what the test driver's snapshots and the
 * changelog restore plug into) is what fills it: here it writes into the task's store, and
 * the task's operator sees that state once RUNNING; a restorer that fails fails the run with
 * the partition named, and the task closes without running. Kafka (embedded broker) with an
 * explicit assignment, so the task opens when the run starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "runtime/runtime_impl.h" /* bk_tasks_set_restorer and the task's instances */
#include "support/broker_proc.h"
#include "support/collect.h"
#include "support/kafka_helpers.h"

typedef struct seen {
  char events[512];
  int restorer_calls;
  int restorer_saw_restoring, restorer_saw_open;
  int64_t first_value; /* the store's value when the first record arrived (-1: none) */
  brook_err_t fail_with;
} seen_t;

static void on_task_state(int32_t task, int old_state, int new_state, const char *reason,
                          void *opaque) {
  seen_t *s = opaque;
  size_t n = strlen(s->events);
  snprintf(s->events + n, sizeof(s->events) - n, "%d:%s>%s(%s) ", (int)task,
           brook_task_state_name(old_state), brook_task_state_name(new_state), reason);
}

/* The operator: reads the value its store was restored with at its first record. */
typedef struct op_state {
  seen_t *seen;
  brook_store_t *store;
} op_state_t;

static op_state_t the_op;

static brook_err_t op_open(brook_ctx_t *ctx, void *opaque, void **state) {
  the_op.seen = opaque;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = sizeof(int64_t);
  brook_err_t err = brook_store_open(ctx, "total", &so, &the_op.store);
  *state = &the_op;
  return err;
}

static brook_err_t op_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  op_state_t *o = state;
  if (o->seen->first_value < 0) {
    const void *v;
    size_t len;
    o->seen->first_value = 0;
    if (brook_store_get(o->store, "n", 1, &v, &len) == BROOK_OK && len == sizeof(int64_t))
      memcpy(&o->seen->first_value, v, sizeof(int64_t));
  }
  return brook_emit(ctx, rec);
}

static const brook_operator_t restored_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "restored",
    .open = op_open,
    .process = op_process,
};

/* The restorer: the task is RESTORING, its operators are open; it writes n = 41. */
static brook_err_t restore(brook_runtime_t *rt, bk_task_t *t, void *opaque) {
  seen_t *s = opaque;
  s->restorer_calls++;
  s->restorer_saw_restoring =
      bk_task_state(rt->w0, t->id) == -1 && t->state == BROOK_TASK_RESTORING;
  for (size_t i = 0; i < rt->plan.n; i++) {
    brook_ctx_t *c = &t->insts[i];
    if (!c->node || c->node->kind != BK_NODE_OPERATOR || c->n_stores != 1)
      continue;
    s->restorer_saw_open = c->opened;
    if (s->fail_with)
      return s->fail_with;
    int64_t v = 41;
    return brook_store_put(c->stores[0], "n", 1, &v, sizeof(v));
  }
  return BROOK_ERR_NOT_FOUND;
}

static brook_err_t drop(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}

static brook_err_t run_once(const char *bootstrap, seen_t *s, int stop_after_first) {
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = bootstrap;
  so.group_id = "g-restore";
  static const brook_kafka_partition_t parts[] = {{"in", 0, BROOK_KAFKA_OFFSET_BEGINNING}};
  so.partitions = parts;
  so.n_partitions = 1;
  brook_stream_t *out = brook_apply(brook_source_kafka(t, "in", &so), &restored_op, s);
  assert_int_equal(brook_sink_callback(out, drop, NULL, NULL), BROOK_OK);
  brook_runtime_opts_t ro = *kh_rt_opts();
  ro.on_task_state = on_task_state;
  ro.on_task_state_opaque = s;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  bk_tasks_set_restorer(rt, restore, s);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  brook_err_t err = brook_runtime_start(rt, &loop);
  assert_int_equal(err, BROOK_OK);
  if (stop_after_first) {
    while (s->first_value < 0 && !brook_runtime_done(rt) && uv_run(&loop, UV_RUN_ONCE)) {
    }
    brook_runtime_stop(rt);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  err = brook_runtime_status(rt);
  if (err != BROOK_OK)
    snprintf(s->events + strlen(s->events), sizeof(s->events) - strlen(s->events), "| %s",
             brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_topology_free(t);
  return err;
}

static void test_restore(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"in:1", NULL}, NULL), 0);
  kh_produce(b.bootstrap, "in", "v", 0, 5, 1);

  seen_t ok = {.first_value = -1};
  assert_int_equal(run_once(b.bootstrap, &ok, 1), BROOK_OK);
  assert_int_equal(ok.restorer_calls, 1);
  assert_true(ok.restorer_saw_restoring); /* RESTORING, not yet a running task */
  assert_true(ok.restorer_saw_open);      /* its operators' stores exist */
  assert_int_equal(ok.first_value, 41);   /* the task ran on the restored state */
  assert_string_equal(ok.events, "0:CREATED>CREATED(partition assigned) "
                                 "0:CREATED>RESTORING(restoring its state) "
                                 "0:RESTORING>RUNNING(restored) "
                                 "0:RUNNING>SUSPENDED(stopped) "
                                 "0:SUSPENDED>CLOSED(closed) ");

  seen_t bad = {.first_value = -1, .fail_with = BROOK_ERR_CORRUPT};
  assert_int_equal(run_once(b.bootstrap, &bad, 0), BROOK_ERR_CORRUPT);
  assert_int_equal(bad.first_value, -1); /* nothing ran */
  assert_non_null(strstr(bad.events, "0:CREATED>RESTORING(restoring its state) "
                                     "0:RESTORING>CLOSED(failed to open or restore) "));
  assert_non_null(strstr(bad.events, "restoring the task of partition 0 failed"));
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_restore),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
