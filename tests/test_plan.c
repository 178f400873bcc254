/* The physical plan (src/plan/): sub-topologies, placement, task counts, exchanges,
 * identities and brook_topology_describe(), checked on example topologies without running
 * them, plus the runtime's per-partition instances the plan decides (against the rule the
 * runtime used before the plan made the decision). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "core/alloc.h"
#include "core/murmur2.h"
#include "fail_alloc.h"
#include "plan/plan.h"

/* ---- callbacks (never run: plans are not executed here) ---- */

static brook_err_t gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)out, (void)ctx, (void)opaque;
  return BROOK_DONE;
}
static int pred_fn(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}
static brook_err_t map_fn(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)ctx, (void)opaque;
  return BROOK_OK;
}
static brook_err_t value_fn(const brook_record_t *rec, const void **value, size_t *value_len,
                            brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)value, (void)value_len, (void)ctx, (void)opaque;
  return BROOK_OK;
}
static brook_err_t peek_fn(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}
static brook_err_t flat_fn(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)rec, (void)ctx, (void)opaque;
  return BROOK_OK;
}
static brook_err_t key_fn(const brook_record_t *rec, const void **key, size_t *key_len,
                          brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value;
  *key_len = rec->value_len;
  return BROOK_OK;
}
static brook_err_t sink_fn(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}
static brook_err_t op_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit(ctx, rec);
}
static brook_err_t op_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx, (void)opaque, (void)state;
  return BROOK_OK;
}
static brook_err_t op_timer(brook_ctx_t *ctx, void *state, const struct brook_timer *timer) {
  (void)ctx, (void)state, (void)timer;
  return BROOK_OK;
}

/* ---- builders ---- */

static brook_topology_t *topo(brook_error_policy_t policy) {
  brook_topology_opts_t o;
  brook_topology_opts_init(&o);
  o.error_policy = policy;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, &o), BROOK_OK);
  return t;
}

static brook_stream_t *kafka_source(brook_topology_t *t, const char *name, const char *topic) {
  const char *const topics[] = {topic, NULL};
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = "127.0.0.1:9";
  so.group_id = "plan-test";
  so.topics = topics;
  brook_stream_t *s = brook_source_kafka(t, name, &so);
  assert_non_null(s);
  return s;
}

static void kafka_sink(brook_stream_t *in, const char *name, const char *topic) {
  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = "127.0.0.1:9";
  ko.topic = topic;
  assert_int_equal(brook_sink_kafka(in, name, &ko), BROOK_OK);
}

static brook_stream_t *named(brook_stream_t *s, const char *name) {
  assert_non_null(brook_stream_set_name(s, name));
  return s;
}

static brook_stream_t *gen(brook_topology_t *t, const char *name) {
  brook_stream_t *s = brook_source_generator(t, name, gen_fn, NULL, NULL);
  assert_non_null(s);
  return s;
}

static brook_stream_t *tumbling(brook_stream_t *in, const char *name) {
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = name;
  brook_aggregator_t count = brook_agg_count();
  brook_window_t win = brook_window_tumbling(60 * BROOK_S);
  brook_stream_t *out = brook_window_aggregate(in, &win, &count, &wo);
  assert_non_null(out);
  return out;
}

static brook_stream_t *count(brook_stream_t *in, const char *name) {
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = name;
  brook_stream_t *out = brook_count(in, &ao);
  assert_non_null(out);
  return out;
}

static void sink(brook_stream_t *in) {
  assert_int_equal(brook_sink_callback(in, sink_fn, NULL, NULL), BROOK_OK);
}

/* describe() into a malloc'd string (sized by a first call). */
static char *describe(brook_topology_t *t) {
  size_t len = 0;
  assert_int_equal(brook_topology_describe(t, NULL, 0, &len), BROOK_OK);
  char *buf = malloc(len + 1);
  assert_non_null(buf);
  size_t again = 0;
  assert_int_equal(brook_topology_describe(t, buf, len + 1, &again), BROOK_OK);
  assert_int_equal(again, len);
  assert_int_equal(strlen(buf), len);
  return buf;
}

static void assert_describes(brook_topology_t *t, const char *golden) {
  char *text = describe(t);
  if (strcmp(text, golden) != 0) {
    fprintf(stderr, "---- got ----\n%s---- want ----\n%s----\n", text, golden);
    free(text);
    fail();
  }
  free(text);
}

/* The plan of `t` (built the way the runtime builds it). */
static void plan_of(brook_topology_t *t, bk_plan_t *p) {
  brook_err_t err = bk_plan_build(p, t);
  if (err)
    fprintf(stderr, "%s\n", brook_topology_last_error(t));
  assert_int_equal(err, BROOK_OK);
}

static const bk_plan_node_t *pnode(const bk_plan_t *p, const brook_topology_t *t,
                                   const char *name) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->order[i]->name, name) == 0)
      return &p->nodes[i];
  (void)t;
  fail_msg("no node '%s'", name);
  return NULL;
}

static size_t ppos(const bk_plan_t *p, const char *name) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->order[i]->name, name) == 0)
      return i;
  fail_msg("no node '%s'", name);
  return 0;
}

/* The rule runtime/task.c applied before the plan decided it: a partitioned source, and an
 * operator with outputs whose inputs all come from per-task nodes other than a re-keying one.
 * The plan's partition_local must give the same instances. */
static void assert_same_as_old_rule(const bk_plan_t *p) {
  int any = 0;
  for (size_t i = 0; i < p->n; i++)
    any |= p->order[i]->kind == BK_NODE_SOURCE && p->order[i]->source_type->partitioned;
  assert_int_equal(p->any_partition_local, any);
  unsigned char *old = calloc(p->n ? p->n : 1, 1);
  for (size_t i = 0; any && i < p->n; i++) {
    const bk_node_t *node = p->order[i];
    int per_task = 0;
    if (node->kind == BK_NODE_SOURCE) {
      per_task = node->source_type->partitioned;
    } else if (node->kind == BK_NODE_OPERATOR && node->n_inputs && node->n_outputs) {
      per_task = 1;
      for (size_t k = 0; k < node->n_inputs && per_task; k++) {
        const bk_node_t *from = node->inputs[k]->node;
        per_task = old[p->pos[from->id]] && !bk_plan_rekeys_node(p, from);
      }
    }
    old[i] = (unsigned char)per_task;
    assert_int_equal(p->nodes[i].partition_local, per_task);
  }
  free(old);
}

/* ---- golden plans of the example topologies ---- */

/* Kafka -> filter -> key_by -> tumbling window -> sink: two sub-topologies and one exchange;
 * the task count after key_by is inherited from the source's partitions (run time). */
static void build_kafka_window(brook_topology_t *t) {
  brook_stream_t *tx = kafka_source(t, "payments", "payments");
  brook_stream_t *big = named(brook_filter(tx, pred_fn, NULL), "large");
  brook_stream_t *byc = named(brook_key_by(big, key_fn, NULL), "by_card");
  brook_stream_t *cnt = tumbling(byc, "per_card_1m");
  kafka_sink(named(brook_filter(cnt, pred_fn, NULL), "too_many"), "alerts", "alerts");
}

static void test_kafka_filter_key_by_window(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  build_kafka_window(t);
  assert_describes(t, "brook plan: 2 sub-topologies, 1 exchange\n"
                      "sub-topology 0: tasks=partitions('payments')\n"
                      "  source 'payments' [kafka] per-task splits=partitions\n"
                      "  operator 'large' [filter] per-task <- 'payments'\n"
                      "  operator 'by_card' [key_by] per-task <- 'large' => exchange to "
                      "sub-topology 1\n"
                      "  fused: 'large' -> 'by_card'\n"
                      "sub-topology 1: tasks=partitions('payments')\n"
                      "  exchange from 'by_card': task = murmur2(key) % tasks\n"
                      "  operator 'per_card_1m' [window_tumbling] per-task state=per_card_1m "
                      "<- 'by_card'\n"
                      "  operator 'too_many' [filter] per-task <- 'per_card_1m'\n"
                      "  sink 'alerts' [kafka_sink] per-worker <- 'too_many'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p);
  /* Today's instances: per partition up to key_by, once after it (until exchanges). */
  assert_true(pnode(&p, t, "large")->partition_local);
  assert_true(pnode(&p, t, "by_card")->partition_local);
  assert_false(pnode(&p, t, "per_card_1m")->partition_local);
  assert_int_equal(pnode(&p, t, "per_card_1m")->place, BK_PLACE_TASK);
  assert_int_equal(p.n_exchanges, 1);
  assert_int_equal(p.exchanges[0].from_sub, 0);
  assert_int_equal(p.exchanges[0].to_sub, 1);
  /* Partition counts arrive at run time: both sub-topologies get them. */
  assert_int_equal(p.subs[0].tasks, 0);
  assert_int_equal(p.subs[1].tasks, 0);
  bk_errmsg_t msg;
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "payments"), 12, &msg), BROOK_OK);
  assert_int_equal(p.subs[0].tasks, 12);
  assert_int_equal(p.subs[1].tasks, 12);
  for (int k = 0; k < 100; k++) { /* the exchange target: Kafka's partitioner */
    char key[16];
    int n = snprintf(key, sizeof(key), "card-%d", k);
    assert_int_equal(bk_plan_exchange_task(&p, 1, key, (size_t)n),
                     bk_murmur2_partition(key, (size_t)n, 12));
  }
  /* A count cannot change under a running plan. */
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "payments"), 6, &msg),
                   BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(msg.text, "'payments'"));
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "by_card"), 6, &msg), BROOK_ERR_INVALID_ARG);
  char text[1024];
  bk_plan_describe(&p, text, sizeof(text));
  assert_non_null(strstr(text, "sub-topology 1: tasks=12\n"));
  assert_non_null(strstr(text, "source 'payments' [kafka] per-task splits=12\n"));
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* Two sources merged into one stream: one sub-topology; a push source and a generator have
 * one split each today, so one task; nothing keeps state. */
static void test_two_sources_merged(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *ins[2] = {gen(t, "clicks"), brook_source_push(t, "views", NULL)};
  brook_stream_t *all = named(brook_merge(ins, 2), "all");
  sink(named(brook_map(all, map_fn, NULL), "enrich"));
  assert_describes(t, "brook plan: 1 sub-topology, 0 exchanges\n"
                      "sub-topology 0: tasks=1\n"
                      "  source 'clicks' [generator] per-task splits=1\n"
                      "  source 'views' [push] per-task splits=1\n"
                      "  operator 'all' [merge] per-task <- 'clicks', 'views'\n"
                      "  operator 'enrich' [map] per-task <- 'all'\n"
                      "  sink 'sink#4' [sink] per-worker <- 'enrich'\n"
                      "  fused: 'enrich' -> 'sink#4'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p); /* no partitioned source: everything has one instance */
  assert_false(p.any_partition_local);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* Two Kafka sources merged and a generator merged in after a filter: the merge of the two
 * Kafka streams stays per partition; the one with the generator does not (today's rule). */
static void test_kafka_merges(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *ks[2] = {kafka_source(t, "a", "a"), kafka_source(t, "b", "b")};
  brook_stream_t *ab = named(brook_merge(ks, 2), "ab");
  brook_stream_t *mix[2] = {named(brook_filter(ab, pred_fn, NULL), "f"), gen(t, "g")};
  brook_stream_t *all = named(brook_merge(mix, 2), "all");
  brook_stream_t *c = count(all, "counts");
  sink(c);
  assert_describes(t, "brook plan: 1 sub-topology, 0 exchanges\n"
                      "sub-topology 0: tasks=max(partitions('a'), partitions('b'))\n"
                      "  source 'a' [kafka] per-task splits=partitions\n"
                      "  source 'b' [kafka] per-task splits=partitions\n"
                      "  source 'g' [generator] per-task splits=1\n"
                      "  operator 'ab' [merge] per-task <- 'a', 'b'\n"
                      "  operator 'f' [filter] per-task <- 'ab'\n"
                      "  operator 'all' [merge] per-task <- 'f', 'g'\n"
                      "  operator 'counts' [count] per-task state=counts <- 'all'\n"
                      "  sink 'sink#7' [sink] per-worker <- 'counts'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p);
  assert_true(pnode(&p, t, "f")->partition_local);
  assert_false(pnode(&p, t, "all")->partition_local);
  bk_errmsg_t msg;
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "a"), 4, &msg), BROOK_OK);
  assert_int_equal(p.subs[0].tasks, 0); /* 'b' still unknown */
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "b"), 6, &msg), BROOK_OK);
  assert_int_equal(p.subs[0].tasks, 6);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* Branch: one operator with several outputs; inputs name the port they come from. */
static void test_branch(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = kafka_source(t, "orders", "orders");
  brook_branch_t br[2] = {{pred_fn, NULL}, {pred_fn, NULL}};
  brook_stream_t *outs[2], *rest = NULL;
  assert_int_equal(brook_branch(src, br, 2, outs, &rest), BROOK_OK);
  named(outs[0], "route");
  sink(named(brook_peek(outs[0], peek_fn, NULL), "big"));
  kafka_sink(outs[1], "small_out", "small");
  sink(count(named(brook_key_by(rest, key_fn, NULL), "rekey"), "rest_counts"));
  assert_describes(
      t, "brook plan: 2 sub-topologies, 1 exchange\n"
         "sub-topology 0: tasks=partitions('orders')\n"
         "  source 'orders' [kafka] per-task splits=partitions\n"
         "  operator 'route' [branch] per-task <- 'orders'\n"
         "  operator 'big' [peek] per-task <- 'route'[0]\n"
         "  sink 'small_out' [kafka_sink] per-worker <- 'route'[1]\n"
         "  operator 'rekey' [key_by] per-task <- 'route'[2] => exchange to sub-topology 1\n"
         "  sink 'sink#3' [sink] per-worker <- 'big'\n"
         "  fused: 'big' -> 'sink#3'\n"
         "sub-topology 1: tasks=partitions('orders')\n"
         "  exchange from 'rekey': task = murmur2(key) % tasks\n"
         "  operator 'rest_counts' [count] per-task state=rest_counts <- 'rekey'\n"
         "  sink 'sink#7' [sink] per-worker <- 'rest_counts'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* The error stream (ROUTE): per worker, and so are the stateless nodes it feeds; a stateful
 * node fed by it runs once (no exchange brings its keys together). */
static void test_error_stream(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_ROUTE);
  brook_stream_t *src = kafka_source(t, "in", "in");
  kafka_sink(named(brook_map(src, map_fn, NULL), "parse"), "out", "out");
  brook_stream_t *errs = brook_error_stream(t);
  brook_stream_t *tagged = named(brook_map_values(errs, value_fn, NULL), "tag");
  kafka_sink(tagged, "dlq", "dlq");
  sink(count(tagged, "errors_per_key"));
  assert_describes(t, "brook plan: 2 sub-topologies, 1 exchange\n"
                      "sub-topology 0: tasks=partitions('in')\n"
                      "  source 'in' [kafka] per-task splits=partitions\n"
                      "  operator 'parse' [map] per-task <- 'in'\n"
                      "  sink 'out' [kafka_sink] per-worker <- 'parse'\n"
                      "sub-topology 1: no tasks\n"
                      "  exchange into 'errors_per_key' from 'tag': every record to its one "
                      "instance (worker 0)\n"
                      "  errors 'errors' [errors] per-worker\n"
                      "  operator 'tag' [map_values] per-worker <- 'errors'\n"
                      "  sink 'dlq' [kafka_sink] per-worker <- 'tag'\n"
                      "  operator 'errors_per_key' [count] once state=errors_per_key <- 'tag'\n"
                      "  sink 'sink#7' [sink] per-worker <- 'errors_per_key'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p);
  assert_int_equal(pnode(&p, t, "errors")->place, BK_PLACE_WORKER);
  assert_int_equal(pnode(&p, t, "tag")->place, BK_PLACE_WORKER);
  assert_int_equal(pnode(&p, t, "errors_per_key")->place, BK_PLACE_ONCE);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* No key change at all (push_attach): one sub-topology, no exchange. */
static void test_no_key_by(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *numbers = brook_source_push(t, "numbers", NULL);
  sink(named(brook_map(numbers, map_fn, NULL), "square"));
  assert_describes(t, "brook plan: 1 sub-topology, 0 exchanges\n"
                      "sub-topology 0: tasks=1\n"
                      "  source 'numbers' [push] per-task splits=1\n"
                      "  operator 'square' [map] per-task <- 'numbers'\n"
                      "  sink 'sink#2' [sink] per-worker <- 'square'\n"
                      "  fused: 'square' -> 'sink#2'\n");
  brook_topology_free(t);
}

/* examples/fraud_detection: Kafka -> parse -> hopping window -> peek -> filter -> map ->
 * peek -> Kafka, and the error stream to a dead-letter topic. */
static void test_example_fraud_detection(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_ROUTE);
  brook_stream_t *payments = kafka_source(t, "payments", "payments");
  brook_stream_t *parsed = named(brook_map_values(payments, value_fn, NULL), "parse_payment");
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "per_card_60s_every_10s";
  brook_aggregator_t cnt = brook_agg_count();
  brook_window_t win = brook_window_hopping(60 * BROOK_S, 10 * BROOK_S);
  brook_stream_t *windows = brook_window_aggregate(parsed, &win, &cnt, &wo);
  windows = named(brook_peek(windows, peek_fn, NULL), "track_windows");
  brook_stream_t *alerts = named(brook_filter(windows, pred_fn, NULL), "suspicious");
  alerts = named(brook_map(alerts, map_fn, NULL), "format_alert");
  alerts = named(brook_peek(alerts, peek_fn, NULL), "count_alerts");
  kafka_sink(alerts, "alerts_out", "alerts");
  kafka_sink(brook_error_stream(t), "dead_letters_out", "dlq");
  assert_describes(t,
                   "brook plan: 2 sub-topologies, 0 exchanges\n"
                   "sub-topology 0: tasks=partitions('payments')\n"
                   "  source 'payments' [kafka] per-task splits=partitions\n"
                   "  operator 'parse_payment' [map_values] per-task <- 'payments'\n"
                   "  operator 'per_card_60s_every_10s' [window_hopping] per-task "
                   "state=per_card_60s_every_10s <- 'parse_payment'\n"
                   "  operator 'track_windows' [peek] per-task <- 'per_card_60s_every_10s'\n"
                   "  operator 'suspicious' [filter] per-task <- 'track_windows'\n"
                   "  operator 'format_alert' [map] per-task <- 'suspicious'\n"
                   "  operator 'count_alerts' [peek] per-task <- 'format_alert'\n"
                   "  sink 'alerts_out' [kafka_sink] per-worker <- 'count_alerts'\n"
                   "  fused: 'track_windows' -> 'suspicious' -> 'format_alert' -> 'count_alerts'\n"
                   "sub-topology 1: no tasks\n"
                   "  errors 'errors' [errors] per-worker\n"
                   "  sink 'dead_letters_out' [kafka_sink] per-worker <- 'errors'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p);
  bk_errmsg_t msg;
  assert_int_equal(bk_plan_check_identities(&p, &msg), BROOK_OK);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* examples/sensor_alerts: a generator into a hopping window with late records routed, and a
 * session window, each to callback sinks. */
static void test_example_sensor_alerts(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *readings = gen(t, "sensors");
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "mean_60s_every_10s";
  wo.late = BROOK_LATE_ROUTE;
  brook_aggregator_t cnt = brook_agg_count();
  brook_window_t win = brook_window_hopping(60 * BROOK_S, 10 * BROOK_S);
  brook_stream_t *means = brook_window_aggregate(readings, &win, &cnt, &wo);
  brook_stream_t *late = brook_window_late(means);
  brook_stream_t *alerts =
      named(brook_filter(named(brook_peek(means, peek_fn, NULL), "count_windows"), pred_fn, NULL),
            "over_threshold");
  sink(alerts);
  sink(late);
  brook_window_opts_init(&wo);
  wo.name = "activity_sessions";
  brook_window_t session = brook_window_session(30 * BROOK_S);
  sink(brook_window_aggregate(readings, &session, &cnt, &wo));
  assert_describes(t, "brook plan: 1 sub-topology, 0 exchanges\n"
                      "sub-topology 0: tasks=1\n"
                      "  source 'sensors' [generator] per-task splits=1\n"
                      "  operator 'mean_60s_every_10s' [window_hopping] per-task "
                      "state=mean_60s_every_10s <- 'sensors'\n"
                      "  operator 'activity_sessions' [window_session] per-task "
                      "state=activity_sessions <- 'sensors'\n"
                      "  operator 'count_windows' [peek] per-task <- 'mean_60s_every_10s'[0]\n"
                      "  sink 'sink#5' [sink] per-worker <- 'mean_60s_every_10s'[1]\n"
                      "  sink 'sink#7' [sink] per-worker <- 'activity_sessions'\n"
                      "  operator 'over_threshold' [filter] per-task <- 'count_windows'\n"
                      "  sink 'sink#4' [sink] per-worker <- 'over_threshold'\n"
                      "  fused: 'count_windows' -> 'over_threshold' -> 'sink#4'\n");
  brook_topology_free(t);
}

static const brook_operator_t watch_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "heartbeat_watch",
    .open = op_open,
    .process = op_process,
    .on_timer = op_timer,
};

/* examples/custom_operator: a generator into a custom operator with timers and two outputs. */
static void test_example_custom_operator(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_SKIP);
  brook_stream_t *beats = gen(t, "heartbeats");
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.name = "heartbeat_watch";
  oo.n_outputs = 2;
  brook_stream_t *outs[2];
  assert_int_equal(brook_operator_add(&beats, 1, &watch_op, NULL, &oo, outs), BROOK_OK);
  sink(outs[0]);
  sink(outs[1]);
  assert_describes(t, "brook plan: 1 sub-topology, 0 exchanges\n"
                      "sub-topology 0: tasks=1\n"
                      "  source 'heartbeats' [generator] per-task splits=1\n"
                      "  operator 'heartbeat_watch' [heartbeat_watch] per-task "
                      "state=heartbeat_watch <- 'heartbeats'\n"
                      "  sink 'sink#2' [sink] per-worker <- 'heartbeat_watch'[0]\n"
                      "  sink 'sink#3' [sink] per-worker <- 'heartbeat_watch'[1]\n");
  brook_topology_free(t);
}

/* examples/log_filter: lines -> parse -> filter -> format -> lines, errors to a callback. */
static void test_example_log_filter(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_ROUTE);
  brook_stream_t *lines = brook_source_lines(t, "read", "/dev/null", NULL);
  assert_non_null(lines);
  brook_stream_t *events = named(brook_map(lines, map_fn, NULL), "parse");
  brook_stream_t *slow = named(brook_filter(events, pred_fn, NULL), "slow_warn_error");
  brook_stream_t *text = named(brook_map(slow, map_fn, NULL), "format");
  assert_int_equal(brook_sink_lines(text, "/dev/null", NULL), BROOK_OK);
  sink(brook_error_stream(t));
  /* One split, one task: the gather brings nothing from other workers, but the plan does
   * not depend on that (the line sink's one instance is worker 0's). */
  assert_describes(t, "brook plan: 2 sub-topologies, 1 exchange\n"
                      "sub-topology 0: tasks=1\n"
                      "  exchange into 'sink_lines#4' from 'format': every record to its one "
                      "instance (worker 0)\n"
                      "  source 'read' [lines] per-task splits=1\n"
                      "  operator 'parse' [map] per-task <- 'read'\n"
                      "  operator 'slow_warn_error' [filter] per-task <- 'parse'\n"
                      "  operator 'format' [map] per-task <- 'slow_warn_error'\n"
                      "  sink 'sink_lines#4' [sink_lines] once <- 'format'\n"
                      "  fused: 'parse' -> 'slow_warn_error' -> 'format'\n"
                      "sub-topology 1: no tasks\n"
                      "  errors 'errors' [errors] per-worker\n"
                      "  sink 'sink#6' [sink] per-worker <- 'errors'\n");
  brook_topology_free(t);
}

/* ---- gathers: the inputs of once nodes ---- */

/* A count after a merge of a generator's stream with the error stream's (per worker: every
 * worker has failed records of every group, no key change brings them together) runs once,
 * fed by a gather; the map after it is once too (its input is on worker 0 already: no
 * gather), the callback sink per worker; a line sink runs once. */
static void test_gather_into_once_count(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_ROUTE);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = 4;
  brook_stream_t *a = brook_source_generator(t, "a", gen_fn, NULL, &go);
  brook_stream_t *tag = named(brook_map_values(brook_error_stream(t), value_fn, NULL), "tag");
  brook_stream_t *ins[2] = {a, tag};
  brook_stream_t *m = named(brook_merge(ins, 2), "both");
  brook_stream_t *c = count(m, "per_key");
  brook_stream_t *f = named(brook_map(c, map_fn, NULL), "format");
  sink(f);
  assert_int_equal(brook_sink_lines(f, "/dev/null", NULL), BROOK_OK);
  assert_int_equal(brook_sink_lines(m, "/dev/null", NULL), BROOK_OK);
  assert_describes(t, "brook plan: 1 sub-topology, 2 exchanges\n"
                      "sub-topology 0: tasks=4\n"
                      "  exchange into 'per_key' from 'both': every record to its one instance "
                      "(worker 0)\n"
                      "  exchange into 'sink_lines#8' from 'both': every record to its one "
                      "instance (worker 0)\n"
                      "  source 'a' [generator] per-task splits=4\n"
                      "  errors 'errors' [errors] per-worker\n"
                      "  operator 'tag' [map_values] per-worker <- 'errors'\n"
                      "  operator 'both' [merge] per-worker <- 'a', 'tag'\n"
                      "  operator 'per_key' [count] once state=per_key <- 'both'\n"
                      "  sink 'sink_lines#8' [sink_lines] once <- 'both'\n"
                      "  operator 'format' [map] once <- 'per_key'\n"
                      "  sink 'sink#6' [sink] per-worker <- 'format'\n"
                      "  sink 'sink_lines#7' [sink_lines] once <- 'format'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_int_equal(p.n_gathers, 2); /* format -> its line sink: both on worker 0 */
  assert_int_equal(pnode(&p, t, "format")->place, BK_PLACE_ONCE);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* A line sink after a key change: the key_by's stream feeds a per-task count by key and the
 * once sink by a gather (one output, two exchanges); the count's output reaches a second line
 * sink through a gather out of the count's sub-topology. */
static void test_gather_after_key_change(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = 2;
  brook_stream_t *g = brook_source_generator(t, "gen", gen_fn, NULL, &go);
  brook_stream_t *k = named(brook_key_by(g, key_fn, NULL), "by_user");
  assert_int_equal(brook_sink_lines(k, "/dev/null", NULL), BROOK_OK);
  brook_stream_t *c = count(k, "per_user");
  assert_int_equal(brook_sink_lines(c, "/dev/null", NULL), BROOK_OK);
  assert_describes(t, "brook plan: 2 sub-topologies, 3 exchanges\n"
                      "sub-topology 0: tasks=2\n"
                      "  source 'gen' [generator] per-task splits=2\n"
                      "  operator 'by_user' [key_by] per-task <- 'gen' => exchange to "
                      "sub-topology 1\n"
                      "sub-topology 1: tasks=2\n"
                      "  exchange from 'by_user': task = murmur2(key) % tasks\n"
                      "  exchange into 'sink_lines#2' from 'by_user': every record to its one "
                      "instance (worker 0)\n"
                      "  exchange into 'sink_lines#4' from 'per_user': every record to its one "
                      "instance (worker 0)\n"
                      "  sink 'sink_lines#2' [sink_lines] once <- 'by_user'\n"
                      "  operator 'per_user' [count] per-task state=per_user <- 'by_user'\n"
                      "  sink 'sink_lines#4' [sink_lines] once <- 'per_user'\n");
  brook_topology_free(t);
}

/* Task counts: the default is the largest upstream partition count, across several key
 * changes; brook_stream_set_partitions sets it; counts that cannot hold are refused. */
static void test_partitions(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *a = kafka_source(t, "a", "a");
  brook_stream_t *g = gen(t, "g");
  g->node->splits = 3; /* as a generator with 3 splits will set it (workers) */
  brook_stream_t *ka = named(brook_key_by(a, key_fn, NULL), "ka");
  brook_stream_t *kg = named(brook_key_by(g, key_fn, NULL), "kg");
  brook_stream_t *both[2] = {ka, kg};
  brook_stream_t *m = named(brook_merge(both, 2), "m");
  brook_stream_t *c1 = count(m, "c1");
  brook_stream_t *k2 = named(brook_key_by(c1, key_fn, NULL), "k2");
  sink(count(k2, "c2"));
  assert_describes(t, "brook plan: 4 sub-topologies, 3 exchanges\n"
                      "sub-topology 0: tasks=partitions('a')\n"
                      "  source 'a' [kafka] per-task splits=partitions\n"
                      "  operator 'ka' [key_by] per-task <- 'a' => exchange to sub-topology 2\n"
                      "sub-topology 1: tasks=3\n"
                      "  source 'g' [generator] per-task splits=3\n"
                      "  operator 'kg' [key_by] per-task <- 'g' => exchange to sub-topology 2\n"
                      "sub-topology 2: tasks=max(3, partitions('a'))\n"
                      "  exchange from 'ka': task = murmur2(key) % tasks\n"
                      "  exchange from 'kg': task = murmur2(key) % tasks\n"
                      "  operator 'm' [merge] per-task <- 'ka', 'kg'\n"
                      "  operator 'c1' [count] per-task state=c1 <- 'm'\n"
                      "  operator 'k2' [key_by] per-task <- 'c1' => exchange to sub-topology 3\n"
                      "sub-topology 3: tasks=max(3, partitions('a'))\n"
                      "  exchange from 'k2': task = murmur2(key) % tasks\n"
                      "  operator 'c2' [count] per-task state=c2 <- 'k2'\n"
                      "  sink 'sink#8' [sink] per-worker <- 'c2'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_int_equal(p.n_subs, 4);
  size_t m_sub = pnode(&p, t, "m")->sub, c2_sub = pnode(&p, t, "c2")->sub;
  assert_int_equal(p.subs[m_sub].tasks, 0); /* max(3, partitions of a) */
  bk_errmsg_t msg;
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "a"), 2, &msg), BROOK_OK);
  assert_int_equal(p.subs[m_sub].tasks, 3);
  assert_int_equal(p.subs[c2_sub].tasks, 3);
  bk_plan_free(&p, bk_default_allocator());

  /* Set on the second key change: that sub-topology has 16 tasks whatever comes before. */
  brook_topology_t *t2 = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *s = kafka_source(t2, "s", "s");
  brook_stream_t *k = named(brook_key_by(s, key_fn, NULL), "k");
  assert_int_equal(brook_stream_set_partitions(k, 16), BROOK_OK);
  sink(count(k, "c"));
  assert_describes(t2, "brook plan: 2 sub-topologies, 1 exchange\n"
                       "sub-topology 0: tasks=partitions('s')\n"
                       "  source 's' [kafka] per-task splits=partitions\n"
                       "  operator 'k' [key_by] per-task <- 's' => exchange to sub-topology 1\n"
                       "sub-topology 1: tasks=16 (set on 'k')\n"
                       "  exchange from 'k': task = murmur2(key) % tasks\n"
                       "  operator 'c' [count] per-task state=c <- 'k'\n"
                       "  sink 'sink#3' [sink] per-worker <- 'c'\n");
  plan_of(t2, &p);
  assert_int_equal(p.subs[1].tasks, 16);
  bk_plan_free(&p, bk_default_allocator());
  /* Only a key change starts tasks; counts are 1..BROOK_MAX_PARTITIONS. */
  brook_topology_t *t3 = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *x = gen(t3, "x");
  assert_int_equal(brook_stream_set_partitions(x, 4), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t3), "'x' does not change the key"));
  brook_stream_t *kx = brook_key_by(x, key_fn, NULL);
  assert_int_equal(brook_stream_set_partitions(kx, 0), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_stream_set_partitions(kx, BROOK_MAX_PARTITIONS + 1),
                   BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_stream_set_partitions(NULL, 4), BROOK_ERR_INVALID_ARG);
  brook_topology_free(t3);
  brook_topology_free(t2);
  brook_topology_free(t);
}

/* Key changes merged into one sub-topology must agree on their counts; a source in a
 * sub-topology with a set count must fit in it. */
static void test_partitions_conflict(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *k1 = named(brook_key_by(gen(t, "g1"), key_fn, NULL), "k1");
  brook_stream_t *k2 = named(brook_key_by(gen(t, "g2"), key_fn, NULL), "k2");
  assert_int_equal(brook_stream_set_partitions(k1, 4), BROOK_OK);
  assert_int_equal(brook_stream_set_partitions(k2, 8), BROOK_OK);
  brook_stream_t *both[2] = {k1, k2};
  sink(count(brook_merge(both, 2), "c"));
  size_t len = 0;
  assert_int_equal(brook_topology_describe(t, NULL, 0, &len), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "'k1' (4 partitions) and 'k2' (8"));
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  brook_topology_free(t);

  /* A generator with 8 splits merged after a key change set to 4. */
  t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *g = gen(t, "wide");
  g->node->splits = 8;
  brook_stream_t *k = named(brook_key_by(gen(t, "g"), key_fn, NULL), "k");
  assert_int_equal(brook_stream_set_partitions(k, 4), BROOK_OK);
  brook_stream_t *ins[2] = {k, g};
  sink(brook_merge(ins, 2));
  assert_int_equal(brook_topology_describe(t, NULL, 0, &len), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "'wide' has 8 splits"));
  brook_topology_free(t);

  /* A Kafka source there is checked when its partitions are known. */
  t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *kk = named(brook_key_by(gen(t, "g"), key_fn, NULL), "k");
  assert_int_equal(brook_stream_set_partitions(kk, 4), BROOK_OK);
  brook_stream_t *ins2[2] = {kk, kafka_source(t, "topic", "topic")};
  sink(named(brook_merge(ins2, 2), "m"));
  bk_plan_t p;
  plan_of(t, &p);
  bk_errmsg_t msg;
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "topic"), 6, &msg), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(msg.text, "'topic' has 6 splits"));
  assert_int_equal(bk_plan_resolve_source(&p, ppos(&p, "topic"), 4, &msg), BROOK_OK);
  assert_int_equal(p.subs[pnode(&p, t, "m")->sub].tasks, 4);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* A key_by merged back with its own input: the sub-topology feeds itself. */
static void test_self_exchange(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = kafka_source(t, "in", "in");
  brook_stream_t *k = named(brook_key_by(src, key_fn, NULL), "k");
  brook_stream_t *ins[2] = {k, src};
  sink(count(named(brook_merge(ins, 2), "m"), "c"));
  assert_describes(t, "brook plan: 1 sub-topology, 1 exchange\n"
                      "sub-topology 0: tasks=partitions('in')\n"
                      "  exchange from 'k': task = murmur2(key) % tasks\n"
                      "  source 'in' [kafka] per-task splits=partitions\n"
                      "  operator 'k' [key_by] per-task <- 'in' => exchange to sub-topology 0\n"
                      "  operator 'm' [merge] per-task <- 'k', 'in'\n"
                      "  operator 'c' [count] per-task state=c <- 'm'\n"
                      "  sink 'sink#4' [sink] per-worker <- 'c'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p);
  assert_int_equal(p.n_subs, 1);
  assert_false(pnode(&p, t, "m")->partition_local); /* an exchange feeds it */
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* Identities: escaped names, one to one, made only of [A-Za-z0-9._-], never "." or "..". */
static void test_identity_escape(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(bk_identity_escape("per_card-1m", out, sizeof(out)), 11);
  assert_string_equal(out, "per_card-1m");
  assert_int_equal(bk_identity_escape("window_tumbling#3", out, sizeof(out)), 19);
  assert_string_equal(out, "window_tumbling.233");
  bk_identity_escape("a.b/c d", out, sizeof(out));
  assert_string_equal(out, "a.2eb.2fc.20d");
  bk_identity_escape("..", out, sizeof(out));
  assert_string_equal(out, ".2e.2e");
  bk_identity_escape("caf\xc3\xa9", out, sizeof(out));
  assert_string_equal(out, "caf.c3.a9");
  /* Truncation like snprintf: the full length, a NUL within size. */
  assert_int_equal(bk_identity_escape("a#b", out, 3), 5);
  assert_string_equal(out, "a.");
  assert_int_equal(bk_identity_escape("abc", NULL, 0), 3);
  /* One to one and safe, on random names. */
  unsigned seed = 7;
  for (int round = 0; round < 2000; round++) {
    char a[9], b[9], ea[32], eb[32];
    size_t la = 1 + (size_t)rand_r(&seed) % 8, lb = 1 + (size_t)rand_r(&seed) % 8;
    for (size_t i = 0; i < la; i++)
      a[i] = (char)(1 + rand_r(&seed) % 255);
    for (size_t i = 0; i < lb; i++)
      b[i] = (char)(rand_r(&seed) % 3 == 0 ? '.' : 'a' + rand_r(&seed) % 3);
    a[la] = b[lb] = '\0';
    bk_identity_escape(a, ea, sizeof(ea));
    bk_identity_escape(b, eb, sizeof(eb));
    assert_int_equal(strcmp(a, b) == 0, strcmp(ea, eb) == 0);
    for (const char *c = ea; *c; c++)
      assert_non_null(
          strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c));
    assert_true(strcmp(ea, ".") != 0 && strcmp(ea, "..") != 0);
  }
}

static const brook_operator_t plain_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "plain",
    .process = op_process,
};

/* bk_plan_check_identities refuses `t` with a message containing `what` and `how`. */
static void assert_identity_refused(brook_topology_t *t, const char *what, const char *how) {
  bk_plan_t p;
  plan_of(t, &p);
  bk_errmsg_t msg;
  assert_int_equal(bk_plan_check_identities(&p, &msg), BROOK_ERR_INVALID_ARG);
  bk_plan_free(&p, bk_default_allocator());
  if (!strstr(msg.text, what) || !strstr(msg.text, how))
    fail_msg("%s", msg.text);
}

/* A custom operator after `in` that declares the key preserved (no repartition after it). */
static brook_stream_t *apply_keeping_key(brook_stream_t *in, const brook_operator_t *op) {
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.key_preserving = 1;
  brook_stream_t *out = NULL;
  assert_int_equal(brook_operator_add(&in, 1, op, NULL, &oo, &out), BROOK_OK);
  return out;
}

/* Which nodes are stateful, and the check persisted state will run: a stateful node with a
 * generated name is refused with a message naming it and saying how to name it. */
static void test_identity_check(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *src = gen(t, "src");
  brook_stream_t *k = named(brook_key_by(src, key_fn, NULL), "k");
  brook_aggregator_t cnt = brook_agg_count();
  brook_window_t win = brook_window_tumbling(BROOK_S);
  brook_stream_t *w = brook_window_aggregate(k, &win, &cnt, NULL);
  brook_stream_t *plain = apply_keeping_key(w, &plain_op);     /* no open, no timers */
  brook_stream_t *watch = apply_keeping_key(plain, &watch_op); /* may keep state */
  brook_stream_t *d = brook_dedupe(watch, BROOK_S, NULL);
  sink(d);
  assert_describes(t, "brook plan: 2 sub-topologies, 1 exchange\n"
                      "sub-topology 0: tasks=1\n"
                      "  source 'src' [generator] per-task splits=1\n"
                      "  operator 'k' [key_by] per-task <- 'src' => exchange to sub-topology 1\n"
                      "sub-topology 1: tasks=1\n"
                      "  exchange from 'k': task = murmur2(key) % tasks\n"
                      "  operator 'window_tumbling#2' [window_tumbling] per-task "
                      "state=window_tumbling.232 (generated name) <- 'k'\n"
                      "  operator 'plain#3' [plain] per-task <- 'window_tumbling#2'\n"
                      "  operator 'heartbeat_watch#4' [heartbeat_watch] per-task "
                      "state=heartbeat_watch.234 (generated name) <- 'plain#3'\n"
                      "  operator 'dedupe#5' [dedupe] per-task state=dedupe.235 (generated name) "
                      "<- 'heartbeat_watch#4'\n"
                      "  sink 'sink#6' [sink] per-worker <- 'dedupe#5'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_true(pnode(&p, t, "window_tumbling#2")->stateful);
  assert_false(pnode(&p, t, "plain#3")->stateful);
  assert_true(pnode(&p, t, "heartbeat_watch#4")->stateful);
  assert_true(pnode(&p, t, "dedupe#5")->stateful);
  assert_false(pnode(&p, t, "k")->stateful);
  bk_plan_free(&p, bk_default_allocator());
  assert_identity_refused(t, "'window_tumbling#2' keeps state but has no name",
                          "brook_window_opts_t.name");
  /* Named one by one (brook_stream_set_name counts as a given name), the check passes. */
  named(w, "per_second");
  assert_identity_refused(t, "'heartbeat_watch#4'", "brook_operator_opts_t.name");
  named(watch, "watch");
  assert_identity_refused(t, "'dedupe#5'", "brook_aggregate_opts_t.name");
  bk_errmsg_t msg;
  named(d, "first seen/key");
  plan_of(t, &p);
  assert_int_equal(bk_plan_check_identities(&p, &msg), BROOK_OK);
  assert_string_equal(pnode(&p, t, "first seen/key")->identity, "first.20seen.2fkey");
  bk_plan_free(&p, bk_default_allocator());
  /* A name whose identity would not fit in a changelog topic name. */
  char longname[120];
  memset(longname, '#', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  named(d, longname);
  plan_of(t, &p);
  assert_int_equal(bk_plan_check_identities(&p, &msg), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(msg.text, "357 characters"));
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* describe(): snprintf-like lengths and truncation, no freezing, errors. */
static void test_describe_api(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  build_kafka_window(t);
  char *full = describe(t);
  size_t n = strlen(full), len = 0;
  char small[16];
  memset(small, 'x', sizeof(small));
  assert_int_equal(brook_topology_describe(t, small, sizeof(small), &len), BROOK_OK);
  assert_int_equal(len, n);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  assert_memory_equal(small, full, sizeof(small) - 1);
  assert_int_equal(brook_topology_describe(t, small, sizeof(small), NULL), BROOK_OK);
  assert_int_equal(brook_topology_describe(NULL, small, sizeof(small), &len),
                   BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_topology_describe(t, NULL, 4, &len), BROOK_ERR_INVALID_ARG);
  /* Not frozen: building goes on, and the plan follows. */
  assert_non_null(brook_error_stream(t));
  brook_stream_t *more = gen(t, "late_source");
  assert_non_null(more);
  assert_int_equal(brook_topology_describe(t, NULL, 0, &len), BROOK_ERR_DANGLING);
  assert_non_null(strstr(brook_topology_last_error(t), "not consumed"));
  sink(more);
  sink(brook_error_stream(t));
  char *again = describe(t);
  assert_non_null(strstr(again, "errors 'errors' [errors] per-worker\n"));
  assert_non_null(strstr(again, "source 'late_source' [generator] per-task splits=1\n"));
  free(again);
  free(full);
  /* A runtime built from it runs the same plan (and freezes it). */
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  assert_null(brook_stream_set_name(more, "other"));
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* Every allocation the plan makes can fail: describe() says BROOK_ERR_NOMEM, frees all it
 * took, and the next call succeeds with the same text. */
static void test_describe_out_of_memory(void **state) {
  (void)state;
  fail_alloc_t fa = {0};
  brook_allocator_t a = fa_allocator(&fa);
  brook_topology_opts_t o;
  brook_topology_opts_init(&o);
  o.allocator = &a;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, &o), BROOK_OK);
  build_kafka_window(t);
  brook_stream_t *k = named(brook_key_by(gen(t, "g"), key_fn, NULL), "k");
  sink(count(k, "c"));
  char *want = describe(t);
  long before = fa.live;
  int failures = 0;
  for (long n = 1;; n++) {
    fa.attempts = 0;
    fa.injected = 0;
    fa.fail_at = n;
    fa.persistent = 1;
    char buf[2048];
    size_t len = 0;
    brook_err_t err = brook_topology_describe(t, buf, sizeof(buf), &len);
    fa.fail_at = 0;
    assert_int_equal(fa.live, before);
    if (!fa.injected) {
      assert_int_equal(err, BROOK_OK);
      assert_string_equal(buf, want);
      break;
    }
    assert_int_equal(err, BROOK_ERR_NOMEM);
    assert_non_null(strstr(brook_topology_last_error(t), "out of memory"));
    failures++;
  }
  assert_true(failures >= 8); /* order, pos, nodes, splits, union-find, subs, ... */
  free(want);
  brook_topology_free(t);
  assert_int_equal(fa.live, 0);
}

/* Splits partitioned by key (partitioned_by_key): the generator is a partitioned source like
 * Kafka, its split count known from options; what follows it up to the key change runs per
 * task with no exchange. The push source the same, fed into a key change: an exchange to a
 * sub-topology with as many tasks as it has splits. A generator with plain splits is not
 * partitioned: its window has one instance per worker (no partition_local). */
static void test_partitioned_by_key(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = 4;
  go.partitioned_by_key = 1;
  brook_stream_t *clicks = brook_source_generator(t, "clicks", gen_fn, NULL, &go);
  assert_non_null(clicks);
  sink(tumbling(named(brook_filter(clicks, pred_fn, NULL), "bots_out"), "clicks_per_user_1m"));
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.splits = 8;
  po.partitioned_by_key = 1;
  brook_stream_t *orders = brook_source_push(t, "orders", &po);
  assert_non_null(orders);
  brook_stream_t *byp = named(brook_key_by(orders, key_fn, NULL), "by_product");
  sink(count(byp, "orders_per_product"));
  go.partitioned_by_key = 0;
  brook_stream_t *plain = brook_source_generator(t, "plain", gen_fn, NULL, &go);
  sink(tumbling(plain, "plain_1m"));
  assert_describes(
      t, "brook plan: 4 sub-topologies, 1 exchange\n"
         "sub-topology 0: tasks=4\n"
         "  source 'clicks' [generator] per-task splits=4 by key: split = murmur2(key) % splits\n"
         "  operator 'bots_out' [filter] per-task <- 'clicks'\n"
         "  operator 'clicks_per_user_1m' [window_tumbling] per-task state=clicks_per_user_1m "
         "<- 'bots_out'\n"
         "  sink 'sink#3' [sink] per-worker <- 'clicks_per_user_1m'\n"
         "sub-topology 1: tasks=8\n"
         "  source 'orders' [push] per-task splits=8 by key: split = murmur2(key) % splits\n"
         "  operator 'by_product' [key_by] per-task <- 'orders' => exchange to sub-topology 3\n"
         "sub-topology 2: tasks=4\n"
         "  source 'plain' [generator] per-task splits=4\n"
         "  operator 'plain_1m' [window_tumbling] per-task state=plain_1m <- 'plain'\n"
         "  sink 'sink#10' [sink] per-worker <- 'plain_1m'\n"
         "sub-topology 3: tasks=8\n"
         "  exchange from 'by_product': task = murmur2(key) % tasks\n"
         "  operator 'orders_per_product' [count] per-task state=orders_per_product <- "
         "'by_product'\n"
         "  sink 'sink#7' [sink] per-worker <- 'orders_per_product'\n");
  bk_plan_t p;
  plan_of(t, &p);
  assert_same_as_old_rule(&p);
  assert_true(pnode(&p, t, "clicks")->partition_local);
  assert_true(pnode(&p, t, "bots_out")->partition_local);
  assert_true(pnode(&p, t, "clicks_per_user_1m")->partition_local);
  assert_false(pnode(&p, t, "sink#3")->partition_local); /* sinks: per worker */
  assert_true(pnode(&p, t, "by_product")->partition_local);
  assert_false(pnode(&p, t, "orders_per_product")->partition_local); /* after the exchange */
  assert_false(pnode(&p, t, "plain")->partition_local);
  assert_false(pnode(&p, t, "plain_1m")->partition_local);
  /* Known from options: nothing to resolve at run time. */
  assert_int_equal(p.subs[0].tasks, 4);
  assert_int_equal(p.subs[1].tasks, 8);
  assert_int_equal(p.subs[2].tasks, 4);
  assert_int_equal(p.subs[3].tasks, 8); /* after the exchange: the push source's splits */
  assert_int_equal(p.n_exchanges, 1);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

/* Fused lines: where a line ends, and key_by, whose exchange ends a line unless a runtime of
 * one worker keeps it on that worker (the last section of the text). */
static void test_fused_lines(void **state) {
  (void)state;
  brook_topology_t *t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *f = named(brook_filter(gen(t, "g"), pred_fn, NULL), "f");
  brook_stream_t *k = named(brook_key_by(f, key_fn, NULL), "k");
  sink(named(brook_map(k, map_fn, NULL), "m"));
  assert_describes(t, "brook plan: 2 sub-topologies, 1 exchange\n"
                      "sub-topology 0: tasks=1\n"
                      "  source 'g' [generator] per-task splits=1\n"
                      "  operator 'f' [filter] per-task <- 'g'\n"
                      "  operator 'k' [key_by] per-task <- 'f' => exchange to sub-topology 1\n"
                      "  fused: 'f' -> 'k'\n"
                      "sub-topology 1: tasks=1\n"
                      "  exchange from 'k': task = murmur2(key) % tasks\n"
                      "  operator 'm' [map] per-task <- 'k'\n"
                      "  sink 'sink#4' [sink] per-worker <- 'm'\n"
                      "  fused: 'm' -> 'sink#4'\n"
                      "with one worker (exchanges stay on it):\n"
                      "  fused: 'f' -> 'k' -> 'm' -> 'sink#4'\n");
  brook_topology_free(t);

  /* Fan-out, flat_map and a line longer than BK_FUSE_MAX. */
  t = topo(BROOK_ON_ERROR_FAIL);
  brook_stream_t *x = named(brook_map(gen(t, "h"), map_fn, NULL), "x");
  sink(x); /* x has two consumers: its line is x alone */
  brook_stream_t *s = named(brook_peek(x, peek_fn, NULL), "p");
  for (int i = 0; i < BK_FUSE_MAX + 1; i++)
    s = brook_map(s, map_fn, NULL);
  s = named(brook_flat_map(s, flat_fn, NULL), "fm");
  sink(named(brook_filter(s, pred_fn, NULL), "y"));
  bk_plan_t p;
  plan_of(t, &p);
  assert_int_equal(pnode(&p, t, "x")->fuse_len, 1);
  assert_int_equal(pnode(&p, t, "p")->fuse_len, BK_FUSE_MAX);
  size_t n_heads = 0, fused = 0;
  for (size_t i = 0; i < p.n; i++) {
    n_heads += p.nodes[i].fuse_len > 0;
    fused += p.nodes[i].fuse_len;
    assert_int_equal(p.nodes[i].fuse_len, p.nodes[i].fuse_len_local); /* no key_by */
  }
  /* x; the sink after x; p + 15 maps; the last 2 maps; y + its sink. fm is not fusable. */
  assert_int_equal(n_heads, 5);
  assert_int_equal(fused, 1 + 1 + BK_FUSE_MAX + 2 + 2);
  assert_int_equal(pnode(&p, t, "fm")->fuse_len, 0);
  assert_int_equal(pnode(&p, t, "y")->fuse_len, 2);
  bk_plan_free(&p, bk_default_allocator());
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kafka_filter_key_by_window),
      cmocka_unit_test(test_two_sources_merged),
      cmocka_unit_test(test_kafka_merges),
      cmocka_unit_test(test_branch),
      cmocka_unit_test(test_error_stream),
      cmocka_unit_test(test_no_key_by),
      cmocka_unit_test(test_partitioned_by_key),
      cmocka_unit_test(test_example_fraud_detection),
      cmocka_unit_test(test_example_sensor_alerts),
      cmocka_unit_test(test_example_custom_operator),
      cmocka_unit_test(test_example_log_filter),
      cmocka_unit_test(test_partitions),
      cmocka_unit_test(test_partitions_conflict),
      cmocka_unit_test(test_self_exchange),
      cmocka_unit_test(test_identity_escape),
      cmocka_unit_test(test_identity_check),
      cmocka_unit_test(test_gather_into_once_count),
      cmocka_unit_test(test_gather_after_key_change),
      cmocka_unit_test(test_describe_api),
      cmocka_unit_test(test_describe_out_of_memory),
      cmocka_unit_test(test_fused_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
