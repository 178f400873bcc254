/* Key changes before state (brook/stateless.h, "Key changes"): a map that changes the key of
 * records from a source partitioned by key, feeding a window, must give the result key_by
 * gives - one final result per (new key, window), counted over every partition - not one
 * partial result per input partition. map_values keeps the key and so the partitioning: no
 * exchange, the window runs per task, and the results are right too. Checked on 1 and 2
 * workers against a brute-force reference. And the plan's rules (plan/rekey.c): which key
 * changes re-key, shown by brook_topology_describe. */
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

#include "core/alloc.h"
#include "keyed_generator.h"
#include "plan/plan.h"
#include "run_deadline.h"
#include "worker_seen.h"

#define SPLITS 4
#define N_WINDOWS 20
#define WINDOW_MS 100
#define PER_SPLIT ((uint64_t)N_WINDOWS * WINDOW_MS * 5) /* records per split, 5 per ms */

static int own_keys[SPLITS][N_KEYS]; /* per split: the indices of its keys */
static int n_own[SPLITS];

/* ---- the input: split s holds its own keys; the value names another key ---- */

typedef struct gen {
  uint64_t next[SPLITS];
} gen_t;

/* Split s's i-th record: key = its own key number i % n_own[s]; value = key "kNN" with
 * NN = (i * 7 + s * 13) % N_KEYS, which lives in any split; event time i / 5 ms. */
static int value_key(size_t s, uint64_t i) { return (int)((i * 7 + s * 13) % N_KEYS); }

static brook_err_t keyed_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  if (s >= SPLITS)
    return BROOK_ERR_STATE;
  if (g->next[s] == PER_SPLIT)
    return BROOK_DONE;
  uint64_t i = g->next[s]++;
  int k = own_keys[s][i % (uint64_t)n_own[s]];
  out->key = key_names[k];
  out->key_len = strlen(key_names[k]);
  out->value = key_names[value_key(s, i)];
  out->value_len = 3;
  out->timestamp = (brook_time_t)(i / 5);
  return BROOK_OK;
}

/* The reference: per (value's key, window) how many records. */
static int64_t expected[N_KEYS][N_WINDOWS];

static void reference(void) {
  memset(expected, 0, sizeof(expected));
  for (size_t s = 0; s < SPLITS; s++)
    for (uint64_t i = 0; i < PER_SPLIT; i++)
      expected[value_key(s, i)][(i / 5) / WINDOW_MS]++;
}

static void setup_keys(void) {
  worker_keys_init();
  memset(n_own, 0, sizeof(n_own));
  for (int k = 0; k < N_KEYS; k++) {
    uint32_t s = brook_key_split(key_names[k], strlen(key_names[k]), SPLITS);
    own_keys[s][n_own[s]++] = k;
  }
  for (int s = 0; s < SPLITS; s++)
    assert_true(n_own[s] > 0);
  reference();
}

static brook_stream_t *keyed_source(brook_topology_t *t, gen_t *g) {
  memset(g, 0, sizeof(*g));
  return keyed_generator(t, keyed_gen, g, SPLITS);
}

/* ---- the key changes ---- */

static brook_err_t map_key_to_value(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  rec->key = rec->value;
  rec->key_len = rec->value_len;
  return BROOK_OK;
}

/* ---- what the window sink saw: every FINAL result per (key, window) ---- */

typedef struct wseen {
  pthread_mutex_t mu;
  int results[N_KEYS][N_WINDOWS]; /* how many results */
  int64_t last[N_KEYS][N_WINDOWS];
  int bad;
} wseen_t;

static brook_err_t window_sink(const brook_record_t *rec, void *opaque) {
  wseen_t *w = opaque;
  brook_window_value_t wv;
  const void *result;
  int k = key_index(rec->key, rec->key_len);
  if (k < 0 || brook_window_parse(rec, &wv, &result) != BROOK_OK ||
      wv.result_len != sizeof(int64_t) || wv.start % WINDOW_MS ||
      wv.start / WINDOW_MS >= N_WINDOWS || !(wv.flags & BROOK_WINDOW_FINAL))
    return BROOK_ERR_USER;
  int64_t n;
  memcpy(&n, result, sizeof(n));
  pthread_mutex_lock(&w->mu);
  w->results[k][wv.start / WINDOW_MS]++;
  w->last[k][wv.start / WINDOW_MS] = n;
  pthread_mutex_unlock(&w->mu);
  return BROOK_OK;
}

/* Exactly one result per (key, window) that has records, equal to the reference; prints
 * how many results there were and how many were right before failing. */
static void check_windows(const wseen_t *w, const char *what, size_t workers) {
  int results = 0, right = 0, wrong = 0, want = 0;
  char first[160] = "";
  for (int k = 0; k < N_KEYS; k++)
    for (int x = 0; x < N_WINDOWS; x++) {
      want += expected[k][x] > 0;
      results += w->results[k][x];
      int ok = w->results[k][x] == (expected[k][x] > 0) &&
               (!expected[k][x] || w->last[k][x] == expected[k][x]);
      right += ok && expected[k][x] > 0;
      if (!ok && !wrong++)
        snprintf(first, sizeof(first), "key %.7s window %d: %d results, last %lld, expected %lld",
                 key_names[k], x, w->results[k][x], (long long)w->last[k][x],
                 (long long)expected[k][x]);
    }
  if (wrong)
    fail_msg("%s, %zu workers: %d results for %d windows, %d of them right; first: %s", what,
             workers, results, want, right, first);
}

static brook_topology_t *new_topology(void) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  return t;
}

/* Runs `t` to its end on `workers` workers (batches of 256), then frees it; fails the test
 * naming the error if it does not succeed. */
static void run_and_free(brook_topology_t *t, size_t workers) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = workers;
  ro.batch_size = 256;
  brook_runtime_t *rt = NULL;
  if (brook_runtime_new(&rt, t, &ro) != BROOK_OK)
    fail_msg("runtime_new: %s", brook_topology_last_error(t));
  brook_err_t err = run_with_deadline(rt, 60000, NULL);
  if (err != BROOK_OK)
    fail_msg("%zu workers: %s", workers, brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* source -> rekey (map or key_by: key := value) -> tumbling count -> sink. */
static void run_rekeyed(size_t workers, int use_key_by, wseen_t *w) {
  static gen_t g;
  memset(w, 0, sizeof(*w));
  pthread_mutex_init(&w->mu, NULL);
  brook_topology_t *t = new_topology();
  brook_stream_t *s = keyed_source(t, &g);
  s = use_key_by ? brook_key_by(s, key_is_value, NULL) : brook_map(s, map_key_to_value, NULL);
  tumbling_count_to(brook_stream_set_name(s, "rekey"), "per_key_100ms", WINDOW_MS, window_sink, w);
  run_and_free(t, workers);
  pthread_mutex_destroy(&w->mu);
}

static void test_map_changing_key_before_window(void **state) {
  (void)state;
  static wseen_t w;
  size_t ns[] = {1, 2};
  for (size_t i = 0; i < 2; i++) {
    run_rekeyed(ns[i], 1, &w);
    check_windows(&w, "key_by", ns[i]);
    run_rekeyed(ns[i], 0, &w);
    check_windows(&w, "map", ns[i]);
  }
}

/* ---- map_values: the key stays, no exchange, per-task windows are right ---- */

/* The value becomes "kNN" + the record's own key; the window counts by the kept key. */
static brook_err_t tag_value(const brook_record_t *rec, const void **value, size_t *value_len,
                             brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  char *v = brook_ctx_alloc(ctx, rec->value_len + rec->key_len);
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, rec->value, rec->value_len);
  memcpy(v + rec->value_len, rec->key, rec->key_len);
  *value = v;
  *value_len = rec->value_len + rec->key_len;
  return BROOK_OK;
}

/* Counts, per window, the records whose value ends with their key (tag_value ran). */
static brook_err_t tagged_only(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  return rec->value_len == 6 && memcmp((const char *)rec->value + 3, rec->key, 3) == 0;
}

static void test_map_values_keeps_partitioning(void **state) {
  (void)state;
  static gen_t g;
  static wseen_t w;
  size_t ns[] = {1, 2};
  for (size_t i = 0; i < 2; i++) {
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    brook_topology_t *t = new_topology();
    brook_stream_t *s = brook_map_values(keyed_source(t, &g), tag_value, NULL);
    s = brook_filter(brook_stream_set_name(s, "tag"), tagged_only, NULL);
    tumbling_count_to(s, "per_key_100ms", WINDOW_MS, window_sink, &w);
    char text[2048];
    assert_int_equal(brook_topology_describe(t, text, sizeof(text), NULL), BROOK_OK);
    if (!strstr(text, ", 0 exchanges\n") || strstr(text, "repartition"))
      fail_msg("map_values must not repartition:\n%s", text);
    run_and_free(t, ns[i]);
    pthread_mutex_destroy(&w.mu);
    /* Every window of every source key, counted once: compare with a by-key reference. */
    int64_t by_key[N_KEYS][N_WINDOWS];
    memset(by_key, 0, sizeof(by_key));
    for (size_t sp = 0; sp < SPLITS; sp++)
      for (uint64_t r = 0; r < PER_SPLIT; r++)
        by_key[own_keys[sp][r % (uint64_t)n_own[sp]]][(r / 5) / WINDOW_MS]++;
    for (int k = 0; k < N_KEYS; k++)
      for (int x = 0; x < N_WINDOWS; x++)
        if (w.results[k][x] != (by_key[k][x] > 0) || w.last[k][x] != by_key[k][x])
          fail_msg("%zu workers: key %s window %d: %d results, last %lld, expected %lld", ns[i],
                   key_names[k], x, w.results[k][x], (long long)w.last[k][x],
                   (long long)by_key[k][x]);
  }
}

/* Two values per record: its own and "!" + its own; the callback checks that brook_emit_value
 * refuses NULL bytes with a length. */
static brook_err_t twice(const brook_record_t *rec, brook_values_t *out, brook_ctx_t *ctx,
                         void *opaque) {
  (void)opaque;
  if (brook_emit_value(out, NULL, 1) != BROOK_ERR_INVALID_ARG)
    return BROOK_ERR_STATE;
  char *bang = brook_ctx_alloc(ctx, rec->value_len + 1);
  if (!bang)
    return BROOK_ERR_NOMEM;
  bang[0] = '!';
  memcpy(bang + 1, rec->value, rec->value_len);
  brook_err_t err = brook_emit_value(out, rec->value, rec->value_len);
  return err < 0 ? err : brook_emit_value(out, bang, rec->value_len + 1);
}

/* Emits through ctx: refused, whatever the record carries. */
static brook_err_t emits_directly(const brook_record_t *rec, brook_values_t *out, brook_ctx_t *ctx,
                                  void *opaque) {
  (void)out, (void)opaque;
  return brook_emit(ctx, rec);
}

/* ---- the plan: which key changes re-key ---- */

static brook_err_t keep_key(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}
static int keep_all(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return 1;
}
static brook_err_t flat(const brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  return brook_emit(ctx, rec);
}
static brook_err_t pass(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit_to(ctx, brook_ctx_input(ctx), rec);
}
static brook_err_t no_state(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)ctx, (void)opaque;
  *state = NULL;
  return BROOK_OK;
}
static const brook_operator_t pass_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "pass", .process = pass};
static const brook_operator_t stateful_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "keeper", .open = no_state, .process = pass};

static brook_stream_t *name(brook_stream_t *s, const char *n) {
  assert_non_null(brook_stream_set_name(s, n));
  return s;
}

static brook_stream_t *count_of(brook_stream_t *in, const char *n) {
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = n;
  brook_stream_t *out = brook_count(in, &ao);
  assert_non_null(out);
  return out;
}

static void drop_all(brook_stream_t *in) {
  assert_int_equal(brook_sink_callback(in, keep_key, NULL, NULL), BROOK_OK);
}

/* A custom operator with `n_out` outputs, declaring the key preserved or not. */
static brook_stream_t *custom(brook_stream_t *in, const brook_operator_t *op, int keeps,
                              size_t n_out, brook_stream_t **outs) {
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.key_preserving = keeps;
  oo.n_outputs = n_out;
  brook_stream_t *one = NULL;
  assert_int_equal(brook_operator_add(&in, 1, op, NULL, &oo, outs ? outs : &one), BROOK_OK);
  return outs ? outs[0] : one;
}

static void assert_plan(brook_topology_t *t, const char *golden) {
  char text[4096];
  size_t len = 0;
  assert_int_equal(brook_topology_describe(t, text, sizeof(text), &len), BROOK_OK);
  assert_true(len < sizeof(text));
  if (strcmp(text, golden) != 0)
    fail_msg("---- got ----\n%s---- want ----\n%s----", text, golden);
}

/* The re-keying kind of node `n` in t's plan. */
static bk_rekey_t rekeys_of(brook_topology_t *t, const char *n) {
  bk_plan_t p;
  assert_int_equal(bk_plan_build(&p, t), BROOK_OK);
  bk_rekey_t r = BK_REKEY_NONE;
  int found = 0;
  for (size_t i = 0; i < p.n; i++)
    if (strcmp(p.order[i]->name, n) == 0) {
      r = p.nodes[i].rekeys;
      found = 1;
    }
  bk_plan_free(&p, bk_default_allocator());
  assert_true(found);
  return r;
}

/* Kafka source 'in' reading topic "in". Its broker is never contacted: these tests build
 * plans, create runtimes without running them, or feed the test driver by hand. */
static brook_stream_t *kafka_in(brook_topology_t *t) {
  const char *const topics[] = {"in", NULL};
  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = "127.0.0.1:9";
  so.group_id = "g";
  so.topics = topics;
  brook_stream_t *s = brook_source_kafka(t, "in", &so);
  assert_non_null(s);
  return s;
}

/* What brook_runtime_new says of `t` on 2 workers (the runtime, if made, is freed unrun). */
static brook_err_t runtime_new_on_two_workers(brook_topology_t *t) {
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = 2;
  brook_runtime_t *rt = NULL;
  brook_err_t err = brook_runtime_new(&rt, t, &ro);
  brook_runtime_free(rt);
  return err;
}

/* Kafka -> map -> filter -> window: the map re-keys (automatic), the window runs per task of
 * its own sub-topology, as after key_by. */
static void test_plan_map_filter_window(void **state) {
  (void)state;
  brook_topology_t *t = new_topology();
  brook_stream_t *s = name(brook_map(kafka_in(t), map_key_to_value, NULL), "m");
  s = name(brook_filter(s, keep_all, NULL), "f");
  brook_aggregator_t count = brook_agg_count();
  brook_window_t tumbling = brook_window_tumbling(WINDOW_MS);
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "w";
  drop_all(name(brook_window_aggregate(s, &tumbling, &count, &wo), "w"));
  assert_plan(t, "brook plan: 2 sub-topologies, 1 exchange\n"
                 "sub-topology 0: tasks=partitions('in')\n"
                 "  source 'in' [kafka] per-task splits=partitions\n"
                 "  operator 'm' [map] per-task <- 'in' => exchange to sub-topology 1\n"
                 "sub-topology 1: tasks=partitions('in')\n"
                 "  exchange from 'm': task = murmur2(key) % tasks, repartition (key changed by "
                 "'m', before stateful 'w')\n"
                 "  operator 'f' [filter] per-task <- 'm'\n"
                 "  operator 'w' [window_tumbling] per-task state=w <- 'f'\n"
                 "  sink 'sink#4' [sink] per-worker <- 'w'\n"
                 "with one worker (exchanges stay on it):\n"
                 "  fused: 'm' -> 'f'\n");
  assert_int_equal(rekeys_of(t, "m"), BK_REKEY_AUTO);
  /* With N workers, the automatic repartition after a Kafka source crosses a repartition
   * topic like key_by's: the map feeds the topic, the window reads it. */
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.num_workers = 2;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &ro), BROOK_OK);
  char buf[2048];
  assert_int_equal(brook_topology_describe(t, buf, sizeof(buf), NULL), BROOK_OK);
  assert_non_null(strstr(buf, "m.repartition-source"));
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* What does and does not re-key, one small topology each. */
static void test_plan_rules(void **state) {
  (void)state;
  brook_topology_t *t = new_topology();
  brook_stream_t *src = brook_source_generator(t, "src", keyed_gen, NULL, NULL);
  /* map -> map -> count: only the last key change re-keys. */
  brook_stream_t *m1 = name(brook_map(src, map_key_to_value, NULL), "m1");
  brook_stream_t *m2 = name(brook_map(m1, map_key_to_value, NULL), "m2");
  drop_all(count_of(m2, "c1"));
  /* map -> sink only: no state, no repartition (like Kafka Streams' to()). */
  drop_all(name(brook_map(src, map_key_to_value, NULL), "m_sink"));
  /* map -> key_by -> count: the explicit key change is the only one. */
  brook_stream_t *kb = name(
      brook_key_by(name(brook_map(src, map_key_to_value, NULL), "m_kb"), key_is_value, NULL), "kb");
  drop_all(count_of(kb, "c2"));
  /* map_values, and a custom operator declaring the key kept: nothing. */
  brook_stream_t *mv = name(brook_map_values(src, tag_value, NULL), "mv");
  drop_all(count_of(name(custom(mv, &pass_op, 1, 1, NULL), "kept"), "c3"));
  drop_all(count_of(name(brook_flat_map_values(src, twice, NULL), "fmv"), "c10"));
  /* flat_map, and a custom operator that declares nothing: both may change keys. */
  drop_all(count_of(name(brook_flat_map(src, flat, NULL), "fm"), "c4"));
  drop_all(count_of(name(custom(src, &pass_op, 0, 1, NULL), "undeclared"), "c5"));
  drop_all(count_of(name(brook_apply(src, &pass_op, NULL), "applied"), "c6"));
  /* A stateful custom operator that may change keys re-keys before the count after it, and
   * a count after a count (keys kept) does not. */
  brook_stream_t *keeper = name(custom(count_of(src, "c7"), &stateful_op, 0, 1, NULL), "keeper");
  drop_all(count_of(keeper, "c8"));
  /* merge of a changed and an unchanged stream, then peek: the change re-keys. */
  brook_stream_t *ins[2] = {name(brook_map(src, map_key_to_value, NULL), "m_merge"), src};
  brook_stream_t *mg = name(brook_peek(name(brook_merge(ins, 2), "mg"), keep_key, NULL), "pk");
  drop_all(count_of(mg, "c9"));
  struct {
    const char *node;
    bk_rekey_t want;
  } cases[] = {{"m1", BK_REKEY_NONE},      {"m2", BK_REKEY_AUTO},     {"m_sink", BK_REKEY_NONE},
               {"m_kb", BK_REKEY_NONE},    {"kb", BK_REKEY_EXPLICIT}, {"mv", BK_REKEY_NONE},
               {"kept", BK_REKEY_NONE},    {"fm", BK_REKEY_AUTO},     {"undeclared", BK_REKEY_AUTO},
               {"applied", BK_REKEY_AUTO}, {"c7", BK_REKEY_NONE},     {"keeper", BK_REKEY_AUTO},
               {"m_merge", BK_REKEY_AUTO}, {"fmv", BK_REKEY_NONE},    {"mg", BK_REKEY_NONE},
               {"pk", BK_REKEY_NONE}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    if (rekeys_of(t, cases[i].node) != cases[i].want)
      fail_msg("node '%s': rekeys %d, expected %d", cases[i].node, (int)rekeys_of(t, cases[i].node),
               (int)cases[i].want);
  brook_topology_free(t);
}

/* A key-changing custom operator with two outputs, both read by state: one exchange per
 * output, each named with its port. */
static void test_plan_two_outputs(void **state) {
  (void)state;
  brook_topology_t *t = new_topology();
  brook_stream_t *src = brook_source_generator(t, "src", keyed_gen, NULL, NULL);
  brook_stream_t *outs[2] = {NULL, NULL};
  name(custom(src, &pass_op, 0, 2, outs), "split");
  drop_all(count_of(outs[0], "c0"));
  drop_all(count_of(outs[1], "c1"));
  assert_plan(t, "brook plan: 2 sub-topologies, 2 exchanges\n"
                 "sub-topology 0: tasks=1\n"
                 "  source 'src' [generator] per-task splits=1\n"
                 "  operator 'split' [pass] per-task <- 'src' => exchange[0] to sub-topology 1 "
                 "=> exchange[1] to sub-topology 1\n"
                 "sub-topology 1: tasks=1\n"
                 "  exchange from 'split'[0]: task = murmur2(key) % tasks, repartition (key "
                 "changed by 'split', before stateful 'c0')\n"
                 "  exchange from 'split'[1]: task = murmur2(key) % tasks, repartition (key "
                 "changed by 'split', before stateful 'c0')\n"
                 "  operator 'c0' [count] per-task state=c0 <- 'split'[0]\n"
                 "  operator 'c1' [count] per-task state=c1 <- 'split'[1]\n"
                 "  sink 'sink#3' [sink] per-worker <- 'c0'\n"
                 "  sink 'sink#5' [sink] per-worker <- 'c1'\n");
  brook_topology_free(t);
}

/* Bytes NULL with a length: the record fails like any failed callback (SKIP: counted). */
static brook_err_t bad_value(const brook_record_t *rec, const void **value, size_t *value_len,
                             brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  if (rec->value_len && ((const char *)rec->value)[2] == '7') /* "kN7": a tenth of them */
    *value = NULL;
  *value_len = 5;
  return BROOK_OK;
}

static void test_map_values_null_bytes_fail_the_record(void **state) {
  (void)state;
  for (int fused = 0; fused < 2; fused++) {
    static gen_t g;
    brook_topology_opts_t to;
    brook_topology_opts_init(&to);
    to.error_policy = BROOK_ON_ERROR_SKIP;
    brook_topology_t *t = NULL;
    assert_int_equal(brook_topology_new(&t, &to), BROOK_OK);
    brook_stream_t *s = brook_map_values(keyed_source(t, &g), bad_value, NULL);
    if (!fused) /* two consumers: no line, the operator runs over the batch */
      drop_all(s);
    drop_all(s);
    brook_runtime_t *rt = NULL;
    assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
    assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
    brook_runtime_stats_t st = stats_of(rt);
    uint64_t bad = 0;
    for (size_t sp = 0; sp < SPLITS; sp++)
      for (uint64_t i = 0; i < PER_SPLIT; i++)
        bad += key_names[value_key(sp, i)][2] == '7';
    assert_true(bad > 0);
    assert_int_equal(st.records_skipped, bad);
    brook_runtime_free(rt);
    brook_topology_free(t);
  }
}

/* ---- a map_values callback cannot change the key by emitting ---- */

static int zzz_seen, all_seen; /* what the sink after the sneaky map_values got */

/* Emits a copy of the record with key "zzz" through ctx and returns OK: refused, the record
 * fails (else a record with another key would pass with no repartition). */
static brook_err_t sneaky_value(const brook_record_t *rec, const void **value, size_t *value_len,
                                brook_ctx_t *ctx, void *opaque) {
  (void)value, (void)value_len, (void)opaque;
  brook_record_t r = *rec;
  r.key = "zzz";
  r.key_len = 3;
  (void)brook_emit(ctx, &r);
  return BROOK_OK;
}

static brook_err_t see(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  __atomic_add_fetch(&all_seen, 1, __ATOMIC_RELAXED);
  if (rec->key_len == 3 && memcmp(rec->key, "zzz", 3) == 0)
    __atomic_add_fetch(&zzz_seen, 1, __ATOMIC_RELAXED);
  return BROOK_OK;
}

static brook_err_t same_value(const brook_record_t *rec, brook_values_t *out, brook_ctx_t *ctx,
                              void *opaque) {
  (void)ctx, (void)opaque;
  return brook_emit_value(out, rec->value, rec->value_len);
}

/* Fused (generator -> map_values -> callback sink, one line) and not (after flat_map_values,
 * with two consumers), under SKIP (every record skipped, nothing out) and FAIL (the run fails
 * saying why), as for map's callback. */
static void test_map_values_emit_fails_the_record(void **state) {
  (void)state;
  for (int run = 0; run < 4; run++) {
    int fused = run & 1, skip = run < 2;
    static gen_t g;
    zzz_seen = all_seen = 0;
    brook_topology_opts_t to;
    brook_topology_opts_init(&to);
    to.error_policy = skip ? BROOK_ON_ERROR_SKIP : BROOK_ON_ERROR_FAIL;
    brook_topology_t *t = NULL;
    assert_int_equal(brook_topology_new(&t, &to), BROOK_OK);
    brook_stream_t *s = keyed_source(t, &g);
    if (!fused)
      s = brook_flat_map_values(s, same_value, NULL);
    s = name(brook_map_values(s, sneaky_value, NULL), "mv");
    assert_int_equal(brook_sink_callback(s, see, NULL, NULL), BROOK_OK);
    if (!fused)
      drop_all(s);
    char text[1024];
    assert_int_equal(brook_topology_describe(t, text, sizeof(text), NULL), BROOK_OK);
    if (!strstr(text, "'mv' -> ") != !fused)
      fail_msg("map_values %s be in a fused line:\n%s", fused ? "must" : "must not", text);
    brook_runtime_t *rt = NULL;
    assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
    brook_err_t err = run_with_deadline(rt, 60000, NULL);
    brook_runtime_stats_t st = stats_of(rt);
    if (skip && (err != BROOK_OK || st.records_skipped != SPLITS * PER_SPLIT || all_seen))
      fail_msg("%s, SKIP: run %d (%s), %llu skipped of %llu, the sink saw %d (%d with key zzz)",
               fused ? "fused" : "unfused", err, err ? brook_runtime_last_error(rt) : "",
               (unsigned long long)st.records_skipped, (unsigned long long)(SPLITS * PER_SPLIT),
               all_seen, zzz_seen);
    if (!skip && (err != BROOK_ERR_STATE || all_seen ||
                  !strstr(brook_runtime_last_error(rt), "map_values callback must not emit")))
      fail_msg("%s, FAIL: run %d (%s), the sink saw %d (%d with key zzz)",
               fused ? "fused" : "unfused", err, brook_runtime_last_error(rt), all_seen, zzz_seen);
    brook_runtime_free(rt);
    brook_topology_free(t);
  }
}

/* ---- a key change on two outputs: one exchange per output, on 1 and 2 workers ---- */

/* Key := value; records whose new key has an even number go to output 0, others to 1. */
static brook_err_t split_rekey(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  brook_record_t out = *rec;
  out.key = rec->value;
  out.key_len = rec->value_len;
  return brook_emit_to(ctx, (size_t)(key_index(out.key, out.key_len) & 1), &out);
}

static const brook_operator_t split_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "split", .process = split_rekey};

static void test_two_outputs_repartitioned(void **state) {
  (void)state;
  int64_t want[N_KEYS] = {0};
  for (size_t sp = 0; sp < SPLITS; sp++)
    for (uint64_t i = 0; i < PER_SPLIT; i++)
      want[value_key(sp, i)]++;
  size_t ns[] = {1, 2};
  for (size_t i = 0; i < 2; i++) {
    static gen_t g;
    static seen_t seen[2];
    brook_topology_t *t = new_topology();
    brook_stream_t *src = keyed_source(t, &g);
    brook_operator_opts_t oo;
    brook_operator_opts_init(&oo);
    oo.n_outputs = 2;
    brook_stream_t *outs[2] = {NULL, NULL};
    assert_int_equal(brook_operator_add(&src, 1, &split_op, NULL, &oo, outs), BROOK_OK);
    for (int o = 0; o < 2; o++) {
      seen_init(&seen[o]);
      assert_int_equal(brook_sink_callback(brook_count(outs[o], NULL), count_sink, NULL, &seen[o]),
                       BROOK_OK);
    }
    run_and_free(t, ns[i]);
    for (int k = 0; k < N_KEYS; k++) {
      /* The final count of each key is the whole count, on its own output only. */
      if (seen[k & 1].count[k] != want[k] || seen[!(k & 1)].count[k] != 0)
        fail_msg("%zu workers: key %s counted %lld on output %d, %lld on the other; expected "
                 "%lld",
                 ns[i], key_names[k], (long long)seen[k & 1].count[k], k & 1,
                 (long long)seen[!(k & 1)].count[k], (long long)want[k]);
    }
  }
}

/* A partition count on a key change: it sets the automatic repartition's task count, and is
 * refused where no repartition happens (rather than ignored). */
static void test_partitions_of_a_key_change(void **state) {
  (void)state;
  brook_topology_t *t = new_topology();
  brook_stream_t *src = brook_source_generator(t, "src", keyed_gen, NULL, NULL);
  brook_stream_t *m = name(brook_map(src, map_key_to_value, NULL), "m");
  assert_int_equal(brook_stream_set_partitions(m, 8), BROOK_OK);
  drop_all(count_of(m, "c"));
  assert_plan(t, "brook plan: 2 sub-topologies, 1 exchange\n"
                 "sub-topology 0: tasks=1\n"
                 "  source 'src' [generator] per-task splits=1\n"
                 "  operator 'm' [map] per-task <- 'src' => exchange to sub-topology 1\n"
                 "sub-topology 1: tasks=8 (set on 'm')\n"
                 "  exchange from 'm': task = murmur2(key) % tasks, repartition (key changed by "
                 "'m', before stateful 'c')\n"
                 "  operator 'c' [count] per-task state=c <- 'm'\n"
                 "  sink 'sink#3' [sink] per-worker <- 'c'\n");
  /* Not on a stream whose key cannot change. */
  brook_stream_t *f = name(brook_filter(m, keep_all, NULL), "f");
  assert_int_equal(brook_stream_set_partitions(f, 4), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "'f' does not change the key"));
  brook_topology_free(t);
  /* A map read by no state: no repartition, so its count is refused when the plan is built. */
  t = new_topology();
  src = brook_source_generator(t, "src", keyed_gen, NULL, NULL);
  m = name(brook_map(src, map_key_to_value, NULL), "m");
  assert_int_equal(brook_stream_set_partitions(m, 8), BROOK_OK);
  drop_all(m);
  char text[512];
  assert_int_equal(brook_topology_describe(t, text, sizeof(text), NULL), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "'m' changes the key but no stateful"));
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_ERR_INVALID_ARG);
  brook_topology_free(t);
}

/* ---- a custom sink after a key change: no repartition ---- */

static int sink_records; /* what the counting sink got, over every worker */

static brook_err_t count_into_sink(brook_ctx_t *ctx, void *st, const brook_record_t *rec) {
  (void)ctx, (void)st, (void)rec;
  __atomic_add_fetch(&sink_records, 1, __ATOMIC_RELAXED);
  return BROOK_OK;
}

/* A user sink (no outputs) that opens a connection in open(), as a database sink does. */
static const brook_operator_t db_sink_op = {.version = BROOK_OPERATOR_VERSION,
                                            .type_name = "db_sink",
                                            .open = no_state,
                                            .process = count_into_sink};

/* Adds the custom sink after `in`, named `n` (NULL: a generated name). */
static void db_sink(brook_stream_t *in, const char *n) {
  brook_operator_opts_t oo;
  brook_operator_opts_init(&oo);
  oo.n_outputs = 0;
  oo.name = n;
  assert_int_equal(brook_operator_add(&in, 1, &db_sink_op, NULL, &oo, NULL), BROOK_OK);
}

/* A sink runs once per worker, never per task, so a repartition before it cannot help it: a
 * custom sink with open() after a map causes none (as a callback sink does), and a Kafka
 * source feeding it runs on 2 workers. The sink still keeps state for its identity: with a
 * generated name it is refused once state is on disk. */
static void test_custom_sink_after_key_change(void **state) {
  (void)state;
  brook_topology_t *t = new_topology();
  db_sink(name(brook_map(kafka_in(t), map_key_to_value, NULL), "m"), "db");
  assert_plan(t, "brook plan: 1 sub-topology, 0 exchanges\n"
                 "sub-topology 0: tasks=partitions('in')\n"
                 "  source 'in' [kafka] per-task splits=partitions\n"
                 "  operator 'm' [map] per-task <- 'in'\n"
                 "  sink 'db' [db_sink] per-worker state=db <- 'm'\n");
  assert_int_equal(rekeys_of(t, "m"), BK_REKEY_NONE);
  if (runtime_new_on_two_workers(t) != BROOK_OK)
    fail_msg("runtime_new, 2 workers: %s", brook_topology_last_error(t));
  brook_topology_free(t);
  /* Unnamed, its state could not be found again. */
  t = new_topology();
  brook_stream_t *src = brook_source_generator(t, "src", keyed_gen, NULL, NULL);
  db_sink(name(brook_map(src, map_key_to_value, NULL), "m"), NULL);
  bk_plan_t p;
  assert_int_equal(bk_plan_build(&p, t), BROOK_OK);
  bk_errmsg_t msg;
  assert_int_equal(bk_plan_check_identities(&p, &msg), BROOK_ERR_INVALID_ARG);
  bk_plan_free(&p, bk_default_allocator());
  if (!strstr(msg.text, "keeps state but has no name"))
    fail_msg("%s", msg.text);
  brook_topology_free(t);

  /* Run: every record reaches the sink once, on 1 and 2 workers. */
  for (size_t workers = 1; workers <= 2; workers++) {
    static gen_t g;
    sink_records = 0;
    t = new_topology();
    db_sink(name(brook_map(keyed_source(t, &g), map_key_to_value, NULL), "m"), "db");
    run_and_free(t, workers);
    if ((uint64_t)sink_records != SPLITS * PER_SPLIT)
      fail_msg("%zu workers: the sink got %d records of %llu", workers, sink_records,
               (unsigned long long)(SPLITS * PER_SPLIT));
  }
}

/* ---- the test driver: partitions of a Kafka source, a key change before a count ---- */

/* Kafka "in" -> `change` (map: key := value, or map_values keeping the key) -> count "c". */
static brook_driver_t *count_driver(brook_topology_t **t, int map) {
  *t = new_topology();
  brook_stream_t *s = kafka_in(*t);
  s = map ? brook_map(s, map_key_to_value, NULL) : brook_map_values(s, tag_value, NULL);
  drop_all(count_of(name(s, "change"), "c"));
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, *t, NULL), BROOK_OK);
  return d;
}

/* The latest count the sink after "c" got for `key`, or -1. */
static int64_t last_count(brook_driver_t *d, const char *key) {
  const char *sink = brook_driver_sink_name(d, "c", 0, 0);
  assert_non_null(sink);
  int64_t last = -1;
  for (size_t i = 0; i < brook_driver_output_count(d, sink); i++) {
    const brook_record_t *r = brook_driver_output(d, sink, i);
    if (r->key_len == strlen(key) && memcmp(r->key, key, r->key_len) == 0 &&
        r->value_len == sizeof(int64_t))
      memcpy(&last, r->value, sizeof(last));
  }
  return last;
}

/* Three partitions each send one record whose value is "k05": after a map setting the key to
 * the value, one count of 3 for k05 (not three counts of 1, one per partition task); after
 * map_values each source key keeps its own count of 1, per task. */
static void test_driver_partitions_key_change(void **state) {
  (void)state;
  static const char *const keys[3] = {"k01", "k02", "k03"};
  for (int map = 0; map < 2; map++) {
    brook_topology_t *t = NULL;
    brook_driver_t *d = count_driver(&t, map);
    for (size_t p = 0; p < 3; p++) {
      brook_record_t rec = {.key = keys[p],
                            .key_len = 3,
                            .value = "k05",
                            .value_len = 3,
                            .timestamp = (brook_time_t)p};
      assert_int_equal(brook_driver_push_split(d, "in", p, &rec), BROOK_OK);
    }
    assert_int_equal(brook_driver_end(d), BROOK_OK);
    if (map) {
      assert_int_equal(last_count(d, "k05"), 3);
    } else {
      for (size_t p = 0; p < 3; p++)
        assert_int_equal(last_count(d, keys[p]), 1);
      assert_int_equal(last_count(d, "k05"), -1);
    }
    brook_driver_free(d);
    brook_topology_free(t);
  }
}

/* ---- flat_map_values: values multiply, the key stays ---- */

static void test_flat_map_values(void **state) {
  (void)state;
  static gen_t g;
  static wseen_t w;
  memset(&w, 0, sizeof(w));
  pthread_mutex_init(&w.mu, NULL);
  brook_topology_t *t = new_topology();
  brook_stream_t *s = name(brook_flat_map_values(keyed_source(t, &g), twice, NULL), "twice");
  tumbling_count_to(s, "per_key_100ms", WINDOW_MS, window_sink, &w);
  char text[2048];
  assert_int_equal(brook_topology_describe(t, text, sizeof(text), NULL), BROOK_OK);
  if (!strstr(text, ", 0 exchanges\n"))
    fail_msg("flat_map_values must not repartition:\n%s", text);
  run_and_free(t, 2);
  pthread_mutex_destroy(&w.mu);
  int64_t by_key[N_KEYS][N_WINDOWS];
  memset(by_key, 0, sizeof(by_key));
  for (size_t sp = 0; sp < SPLITS; sp++)
    for (uint64_t r = 0; r < PER_SPLIT; r++)
      by_key[own_keys[sp][r % (uint64_t)n_own[sp]]][(r / 5) / WINDOW_MS] += 2;
  for (int k = 0; k < N_KEYS; k++)
    for (int x = 0; x < N_WINDOWS; x++)
      if (w.results[k][x] != (by_key[k][x] > 0) || w.last[k][x] != by_key[k][x])
        fail_msg("key %s window %d: %d results, last %lld, expected %lld", key_names[k], x,
                 w.results[k][x], (long long)w.last[k][x], (long long)by_key[k][x]);

  /* brook_emit on ctx inside the callback fails the record (SKIP: counted, nothing out). */
  brook_topology_opts_t to;
  brook_topology_opts_init(&to);
  to.error_policy = BROOK_ON_ERROR_SKIP;
  assert_int_equal(brook_topology_new(&t, &to), BROOK_OK);
  drop_all(brook_flat_map_values(keyed_source(t, &g), emits_directly, NULL));
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  assert_int_equal(run_with_deadline(rt, 60000, NULL), BROOK_OK);
  brook_runtime_stats_t st = stats_of(rt);
  assert_int_equal(st.records_skipped, SPLITS * PER_SPLIT);
  assert_int_equal(st.records_out, 0);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

int main(void) {
  setup_keys();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_changing_key_before_window),
      cmocka_unit_test(test_map_values_keeps_partitioning),
      cmocka_unit_test(test_map_values_null_bytes_fail_the_record),
      cmocka_unit_test(test_map_values_emit_fails_the_record),
      cmocka_unit_test(test_two_outputs_repartitioned),
      cmocka_unit_test(test_plan_map_filter_window),
      cmocka_unit_test(test_plan_rules),
      cmocka_unit_test(test_plan_two_outputs),
      cmocka_unit_test(test_partitions_of_a_key_change),
      cmocka_unit_test(test_custom_sink_after_key_change),
      cmocka_unit_test(test_driver_partitions_key_change),
      cmocka_unit_test(test_flat_map_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
