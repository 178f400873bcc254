/* Versioned options structs through the public API: every entry point that takes an options
 * struct (and brook_runtime_stats, which fills one) accepts exactly the sizes of the versions
 * of that struct this library knows, and refuses every other struct_size with
 * BROOK_ERR_INVALID_ARG and "struct_size N is not a size of brook_xxx_t", instead of reading
 * the struct's bytes as fields (which used to give unrelated errors, or none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "collect.h"

/* What a call with a given struct_size did. */
typedef struct outcome {
  int refused;     /* the entry point reported a failure */
  brook_err_t err; /* its code (BROOK_ERR_INVALID_ARG for builders returning NULL) */
  char msg[512];   /* the message where the API keeps it */
} outcome_t;

/* Room for the largest struct plus any size a test passes: a library that read past the
 * caller's struct would still stay inside this buffer (the assertions catch it instead). */
typedef union opts_buf {
  brook_topology_opts_t topology;
  brook_runtime_opts_t runtime;
  brook_driver_opts_t driver;
  brook_generator_opts_t generator;
  brook_lines_opts_t lines;
  brook_push_opts_t push;
  brook_line_sink_opts_t line_sink;
  brook_window_opts_t window;
  brook_aggregate_opts_t aggregate;
  brook_kafka_source_opts_t kafka_source;
  brook_kafka_sink_opts_t kafka_sink;
  brook_store_opts_t store;
  brook_watermark_opts_t watermark;
  brook_operator_opts_t operator_opts;
  brook_runtime_stats_t stats;
  brook_callback_sink_opts_t callback_sink;
  unsigned char bytes[8192];
} opts_buf_t;

static const char *const vals[] = {"a", "b"};

static void copy_msg(outcome_t *o, const char *msg) {
  snprintf(o->msg, sizeof(o->msg), "%s", msg ? msg : "");
}

static brook_err_t drop(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}

/* One attempt: a fresh topology with a generator source "g" (`src`), and the options under
 * test in `b`. Every options struct starts with its struct_size, so `size` sets it in any. */
typedef struct attempt {
  opts_buf_t b;
  collect_gen_t g;
  brook_topology_t *t;
  brook_stream_t *src;
} attempt_t;

static void attempt_open(attempt_t *a, int consume_src) {
  memset(&a->b, 0, sizeof(a->b));
  a->t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_init(&a->g, vals, 2);
  a->src = collect_gen_source(a->t, "g", &a->g);
  assert_non_null(a->src);
  if (consume_src)
    assert_int_equal(brook_sink_callback(a->src, drop, NULL, NULL), BROOK_OK);
}

/* Called after the struct's opts_init: overrides its struct_size. Returns the options. */
static void *sized(attempt_t *a, uint32_t size) {
  memcpy(a->b.bytes, &size, sizeof(size));
  return &a->b;
}

/* Records the outcome of a builder returning a code (ret NULL) or a stream (NULL = refused)
 * and frees the topology. */
static void attempt_close(attempt_t *a, outcome_t *o, brook_err_t err, const void *ret,
                          int returns_stream) {
  o->refused = returns_stream ? ret == NULL : err != BROOK_OK;
  o->err = returns_stream ? (o->refused ? brook_topology_error(a->t) : BROOK_OK) : err;
  copy_msg(o, brook_topology_last_error(a->t));
  brook_topology_free(a->t);
}

static void try_topology(uint32_t size, outcome_t *o) {
  attempt_t a;
  memset(&a, 0, sizeof(a));
  brook_topology_opts_init(&a.b.topology);
  brook_topology_t *t = NULL;
  o->err = brook_topology_new(&t, sized(&a, size));
  o->refused = o->err != BROOK_OK;
  /* A refused topology_new hands back a topology that holds the message (SQLite's open). */
  copy_msg(o, t ? brook_topology_last_error(t) : "");
  brook_topology_free(t);
}

static void try_runtime(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_runtime_opts_init(&a.b.runtime);
  brook_runtime_t *rt = NULL;
  brook_err_t err = brook_runtime_new(&rt, a.t, sized(&a, size));
  brook_runtime_free(rt);
  attempt_close(&a, o, err, NULL, 0);
}

static void try_driver(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_driver_opts_init(&a.b.driver);
  brook_driver_t *d = NULL;
  brook_err_t err = brook_driver_new(&d, a.t, sized(&a, size));
  brook_driver_free(d);
  attempt_close(&a, o, err, NULL, 0);
}

static void try_generator(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_generator_opts_init(&a.b.generator);
  attempt_close(&a, o, 0, brook_source_generator(a.t, "gen", collect_gen_fn, &a.g, sized(&a, size)),
                1);
}

static void try_lines(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_lines_opts_init(&a.b.lines);
  attempt_close(&a, o, 0, brook_source_lines(a.t, "lines", "/dev/null", sized(&a, size)), 1);
}

static void try_push(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_push_opts_init(&a.b.push);
  attempt_close(&a, o, 0, brook_source_push(a.t, "push", sized(&a, size)), 1);
}

static void try_line_sink(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 0);
  brook_line_sink_opts_init(&a.b.line_sink);
  attempt_close(&a, o, brook_sink_lines(a.src, "/dev/null", sized(&a, size)), NULL, 0);
}

static void try_window(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 0);
  brook_window_opts_init(&a.b.window);
  brook_aggregator_t count = brook_agg_count();
  brook_window_t w = brook_window_tumbling(BROOK_S);
  attempt_close(&a, o, 0, brook_window_aggregate(a.src, &w, &count, sized(&a, size)), 1);
}

static void try_aggregate(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 0);
  brook_aggregate_opts_init(&a.b.aggregate);
  attempt_close(&a, o, 0, brook_count(a.src, sized(&a, size)), 1);
}

static void try_kafka_source(uint32_t size, outcome_t *o) {
  static const char *const topics[] = {"in", NULL};
  attempt_t a;
  attempt_open(&a, 1);
  brook_kafka_source_opts_init(&a.b.kafka_source);
  a.b.kafka_source.bootstrap_servers = "127.0.0.1:1";
  a.b.kafka_source.group_id = "app";
  a.b.kafka_source.topics = topics;
  attempt_close(&a, o, 0, brook_source_kafka(a.t, "kafka", sized(&a, size)), 1);
}

static void try_kafka_sink(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 0);
  brook_kafka_sink_opts_init(&a.b.kafka_sink);
  a.b.kafka_sink.bootstrap_servers = "127.0.0.1:1";
  a.b.kafka_sink.topic = "out";
  attempt_close(&a, o, brook_sink_kafka(a.src, "to_kafka", sized(&a, size)), NULL, 0);
}

static void try_watermark(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_watermark_opts_init(&a.b.watermark);
  attempt_close(&a, o, brook_source_set_watermark(a.src, sized(&a, size)), NULL, 0);
}

static void try_callback_sink(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 0);
  brook_callback_sink_opts_init(&a.b.callback_sink);
  attempt_close(&a, o, brook_sink_callback_v2(a.src, drop, NULL, NULL, sized(&a, size)), NULL, 0);
}

static brook_err_t pass(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit(ctx, rec);
}

static void try_operator(uint32_t size, outcome_t *o) {
  static const brook_operator_t op = {
      .version = BROOK_OPERATOR_VERSION, .type_name = "pass", .process = pass};
  attempt_t a;
  attempt_open(&a, 0);
  brook_operator_opts_init(&a.b.operator_opts);
  brook_stream_t *outs[4] = {0};
  attempt_close(&a, o, brook_operator_add(&a.src, 1, &op, NULL, sized(&a, size), outs), NULL, 0);
}

/* brook_store_open inside open(): the operator's open fails with the store's message. */
static brook_err_t store_open(brook_ctx_t *ctx, void *opaque, void **state) {
  const brook_store_opts_t *so = opaque;
  brook_store_t *st = NULL;
  *state = NULL;
  return brook_store_open(ctx, "kv", so, &st);
}

static void try_store(uint32_t size, outcome_t *o) {
  static const brook_operator_t op = {.version = BROOK_OPERATOR_VERSION,
                                      .type_name = "stateful",
                                      .open = store_open,
                                      .process = pass};
  attempt_t a;
  attempt_open(&a, 0);
  brook_store_opts_init(&a.b.store);
  brook_store_opts_t *so = sized(&a, size);
  assert_int_equal(brook_sink_callback(brook_apply(a.src, &op, so), drop, NULL, NULL), BROOK_OK);
  collect_run_t r;
  o->err = collect_run_batch(a.t, 0, &r);
  o->refused = o->err != BROOK_OK;
  copy_msg(o, r.message);
  brook_topology_free(a.t);

  /* A standalone store has no object to keep a message: the code alone must agree. */
  brook_store_t *alone = NULL;
  assert_int_equal(brook_store_new(&alone, so, NULL),
                   o->refused ? BROOK_ERR_INVALID_ARG : BROOK_OK);
  brook_store_free(alone);
}

static void try_stats(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, a.t, NULL), BROOK_OK);
  o->err = brook_runtime_stats(rt, sized(&a, size));
  o->refused = o->err != BROOK_OK;
  copy_msg(o, brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(a.t);
}

static void try_driver_stats(uint32_t size, outcome_t *o) {
  attempt_t a;
  attempt_open(&a, 1);
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, a.t, NULL), BROOK_OK);
  o->err = brook_driver_stats(d, sized(&a, size));
  o->refused = o->err != BROOK_OK;
  copy_msg(o, brook_driver_last_error(d));
  brook_driver_free(d);
  brook_topology_free(a.t);
}

typedef struct opts_case {
  const char *type; /* the public type name the message must give */
  size_t size;      /* its sizeof in this build */
  void (*attempt)(uint32_t size, outcome_t *o);
} opts_case_t;

#define CASE(type, fn)                                                                             \
  { #type, sizeof(type), fn }

static const opts_case_t cases[] = {
    CASE(brook_topology_opts_t, try_topology),
    CASE(brook_runtime_opts_t, try_runtime),
    CASE(brook_driver_opts_t, try_driver),
    CASE(brook_generator_opts_t, try_generator),
    CASE(brook_lines_opts_t, try_lines),
    CASE(brook_push_opts_t, try_push),
    CASE(brook_line_sink_opts_t, try_line_sink),
    CASE(brook_window_opts_t, try_window),
    CASE(brook_aggregate_opts_t, try_aggregate),
    CASE(brook_kafka_source_opts_t, try_kafka_source),
    CASE(brook_kafka_sink_opts_t, try_kafka_sink),
    CASE(brook_store_opts_t, try_store),
    CASE(brook_watermark_opts_t, try_watermark),
    CASE(brook_operator_opts_t, try_operator),
    CASE(brook_runtime_stats_t, try_stats),
    CASE(brook_runtime_stats_t, try_driver_stats),
    CASE(brook_callback_sink_opts_t, try_callback_sink),
};

/* Sizes of earlier versions of the structs that grew by appending fields (every other test
 * fills them with their current size): these are accepted, so no "wrong size" case uses them. */
static const uint32_t stats_old_sizes[] = {
    offsetof(brook_runtime_stats_t, timers_fired),
    offsetof(brook_runtime_stats_t, state_bytes),
    offsetof(brook_runtime_stats_t, records_dead_lettered),
    offsetof(brook_runtime_stats_t, tasks_opened),
    offsetof(brook_runtime_stats_t, records_out_of_bounds),
    offsetof(brook_runtime_stats_t, commits),
    offsetof(brook_runtime_stats_t, revocations),
    offsetof(brook_runtime_stats_t, state_commits),
    offsetof(brook_runtime_stats_t, changelog_records),
    offsetof(brook_runtime_stats_t, repartition_replays_dropped)};
static const uint32_t kafka_source_old_sizes[] = {
    offsetof(brook_kafka_source_opts_t, startup_timeout_ms),
    offsetof(brook_kafka_source_opts_t, key_serde),
    offsetof(brook_kafka_source_opts_t, revoke_timeout_ms)};
static const uint32_t kafka_sink_old_sizes[] = {
    offsetof(brook_kafka_sink_opts_t, startup_timeout_ms),
    offsetof(brook_kafka_sink_opts_t, key_serde)};
static const uint32_t store_old_sizes[] = {offsetof(brook_store_opts_t, ordered),
                                           offsetof(brook_store_opts_t, changelog_disabled)};
static const uint32_t watermark_old_sizes[] = {offsetof(brook_watermark_opts_t, ts_bounds)};
static const uint32_t runtime_old_sizes[] = {
    offsetof(brook_runtime_opts_t, num_workers), offsetof(brook_runtime_opts_t, commit_interval_ms),
    offsetof(brook_runtime_opts_t, state_dir), offsetof(brook_runtime_opts_t, changelogs)};
static const uint32_t generator_old_sizes[] = {
    offsetof(brook_generator_opts_t, splits), offsetof(brook_generator_opts_t, partitioned_by_key)};
static const uint32_t push_old_sizes[] = {offsetof(brook_push_opts_t, splits),
                                          offsetof(brook_push_opts_t, partitioned_by_key)};
static const uint32_t operator_old_sizes[] = {offsetof(brook_operator_opts_t, key_preserving)};

static int in_sizes(const uint32_t *sizes, size_t n, uint32_t size) {
  for (size_t i = 0; i < n; i++)
    if (size == sizes[i])
      return 1;
  return 0;
}

#define IN_SIZES(arr, size) in_sizes((arr), sizeof(arr) / sizeof((arr)[0]), (size))

static int is_old_size(const opts_case_t *c, uint32_t size) {
  if (c->attempt == try_stats || c->attempt == try_driver_stats)
    return IN_SIZES(stats_old_sizes, size);
  if (c->attempt == try_kafka_source)
    return IN_SIZES(kafka_source_old_sizes, size);
  if (c->attempt == try_runtime)
    return IN_SIZES(runtime_old_sizes, size);
  if (c->attempt == try_kafka_sink)
    return IN_SIZES(kafka_sink_old_sizes, size);
  if (c->attempt == try_watermark)
    return IN_SIZES(watermark_old_sizes, size);
  if (c->attempt == try_store)
    return IN_SIZES(store_old_sizes, size);
  if (c->attempt == try_generator)
    return IN_SIZES(generator_old_sizes, size);
  if (c->attempt == try_push)
    return IN_SIZES(push_old_sizes, size);
  if (c->attempt == try_operator)
    return IN_SIZES(operator_old_sizes, size);
  return 0;
}

static void test_current_size_accepted(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    outcome_t o = {0};
    cases[i].attempt((uint32_t)cases[i].size, &o);
    if (o.refused)
      fail_msg("%s with its own sizeof %zu refused: %s (%s)", cases[i].type, cases[i].size, o.msg,
               brook_errname(o.err));
  }
}

/* A program built against the header before issue 11 passes the older sizes: still accepted. */
static void test_older_versions_accepted(void **state) {
  (void)state;
  static const struct {
    void (*attempt)(uint32_t, outcome_t *);
    uint32_t size;
  } olds[] = {{try_kafka_source, offsetof(brook_kafka_source_opts_t, startup_timeout_ms)},
              {try_kafka_sink, offsetof(brook_kafka_sink_opts_t, startup_timeout_ms)},
              {try_watermark, offsetof(brook_watermark_opts_t, ts_bounds)},
              {try_runtime, offsetof(brook_runtime_opts_t, num_workers)},
              {try_runtime, offsetof(brook_runtime_opts_t, commit_interval_ms)},
              {try_runtime, offsetof(brook_runtime_opts_t, state_dir)},
              {try_runtime, offsetof(brook_runtime_opts_t, changelogs)},
              {try_store, offsetof(brook_store_opts_t, ordered)},
              {try_store, offsetof(brook_store_opts_t, changelog_disabled)},
              {try_generator, offsetof(brook_generator_opts_t, splits)},
              {try_generator, offsetof(brook_generator_opts_t, partitioned_by_key)},
              {try_push, offsetof(brook_push_opts_t, splits)},
              {try_push, offsetof(brook_push_opts_t, partitioned_by_key)}};
  for (size_t i = 0; i < sizeof(olds) / sizeof(olds[0]); i++) {
    outcome_t o = {0};
    olds[i].attempt(olds[i].size, &o);
    if (o.refused)
      fail_msg("older size %u refused: %s (%s)", olds[i].size, o.msg, brook_errname(o.err));
  }
}

/* Every size that is no version of the struct: 0, smaller than the size field itself, a
 * few fields, in the middle, one byte short or over, a newer library's, garbage. */
static void test_wrong_sizes_refused_naming_size_and_type(void **state) {
  (void)state;
  size_t wrong = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const opts_case_t *c = &cases[i];
    const uint32_t sz = (uint32_t)c->size;
    const uint32_t sizes[] = {0,      1,       3,      4,      8,         12,
                              24,     sz / 2,  sz - 8, sz - 4, sz - 1,    sz + 1,
                              sz + 8, sz + 64, 4096,   65536,  UINT32_MAX};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
      if (sizes[k] == sz || is_old_size(c, sizes[k]))
        continue; /* a real version */
      outcome_t o = {0};
      c->attempt(sizes[k], &o);
      char want[160];
      snprintf(want, sizeof(want), "struct_size %u is not a size of %s", sizes[k], c->type);
      if (!o.refused || o.err != BROOK_ERR_INVALID_ARG || !strstr(o.msg, want)) {
        print_message("%s (sizeof %u) with struct_size %u: %s, %s; message \"%s\"\n", c->type, sz,
                      sizes[k], o.refused ? "refused" : "ACCEPTED", brook_errname(o.err), o.msg);
        wrong++;
      }
    }
  }
  if (wrong)
    fail_msg("%zu calls with a wrong struct_size were not refused as such", wrong);
}

/* An older caller's stats struct gets exactly its own fields: nothing past its end is
 * written, and every counter it has is filled. */
static void test_stats_old_versions_filled_up_to_their_end(void **state) {
  (void)state;
  attempt_t a;
  attempt_open(&a, 1);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, a.t, NULL), BROOK_OK);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  for (size_t i = 0; i < sizeof(stats_old_sizes) / sizeof(stats_old_sizes[0]); i++) {
    opts_buf_t b;
    memset(&b, 0xab, sizeof(b));
    b.stats.struct_size = stats_old_sizes[i];
    assert_int_equal(brook_runtime_stats(rt, &b.stats), BROOK_OK);
    assert_int_equal(b.stats.struct_size, stats_old_sizes[i]);
    assert_int_equal(b.stats.records_in, 2);
    assert_int_equal(b.stats.records_out, 2);
    assert_int_equal(b.stats.records_skipped, 0);
    for (size_t k = stats_old_sizes[i]; k < sizeof(b.bytes); k++)
      if (b.bytes[k] != 0xab)
        fail_msg("stats of size %u wrote byte %zu", stats_old_sizes[i], k);
  }
  brook_runtime_free(rt);
  brook_topology_free(a.t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_current_size_accepted),
      cmocka_unit_test(test_older_versions_accepted),
      cmocka_unit_test(test_wrong_sizes_refused_naming_size_and_type),
      cmocka_unit_test(test_stats_old_versions_filled_up_to_their_end),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
