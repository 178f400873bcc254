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

/* A topology with one generator source "g"; *src is its stream. */
static brook_topology_t *with_source(brook_stream_t **src, collect_gen_t *g) {
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  collect_gen_init(g, vals, 2);
  *src = collect_gen_source(t, "g", g);
  assert_non_null(*src);
  return t;
}

/* Records the outcome of a builder that returns a stream (NULL = refused). */
static void builder_outcome(outcome_t *o, brook_topology_t *t, const void *ret) {
  o->refused = ret == NULL;
  o->err = o->refused ? brook_topology_error(t) : BROOK_OK;
  copy_msg(o, brook_topology_last_error(t));
}

/* Records the outcome of a builder that returns a code. */
static void code_outcome(outcome_t *o, brook_topology_t *t, brook_err_t err) {
  o->refused = err != BROOK_OK;
  o->err = err;
  copy_msg(o, brook_topology_last_error(t));
}

static void try_topology(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  brook_topology_opts_init(&b.topology);
  b.topology.struct_size = size;
  brook_topology_t *t = NULL;
  o->err = brook_topology_new(&t, &b.topology);
  o->refused = o->err != BROOK_OK;
  /* A refused topology_new hands back a topology that holds the message (SQLite's open). */
  copy_msg(o, t ? brook_topology_last_error(t) : "");
  brook_topology_free(t);
}

static void try_runtime(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  assert_int_equal(brook_sink_callback(s, drop, NULL, NULL), BROOK_OK);
  brook_runtime_opts_init(&b.runtime);
  b.runtime.struct_size = size;
  brook_runtime_t *rt = NULL;
  code_outcome(o, t, brook_runtime_new(&rt, t, &b.runtime));
  brook_runtime_free(rt);
  brook_topology_free(t);
}

static void try_driver(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  assert_int_equal(brook_sink_callback(s, drop, NULL, NULL), BROOK_OK);
  brook_driver_opts_init(&b.driver);
  b.driver.struct_size = size;
  brook_driver_t *d = NULL;
  code_outcome(o, t, brook_driver_new(&d, t, &b.driver));
  brook_driver_free(d);
  brook_topology_free(t);
}

static void try_generator(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  collect_gen_init(&g, vals, 2);
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_generator_opts_init(&b.generator);
  b.generator.struct_size = size;
  builder_outcome(o, t, brook_source_generator(t, "gen", collect_gen_fn, &g, &b.generator));
  brook_topology_free(t);
}

static void try_lines(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_lines_opts_init(&b.lines);
  b.lines.struct_size = size;
  builder_outcome(o, t, brook_source_lines(t, "lines", "/dev/null", &b.lines));
  brook_topology_free(t);
}

static void try_push(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_push_opts_init(&b.push);
  b.push.struct_size = size;
  builder_outcome(o, t, brook_source_push(t, "push", &b.push));
  brook_topology_free(t);
}

static void try_line_sink(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  brook_line_sink_opts_init(&b.line_sink);
  b.line_sink.struct_size = size;
  code_outcome(o, t, brook_sink_lines(s, "/dev/null", &b.line_sink));
  brook_topology_free(t);
}

static void try_window(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  brook_window_opts_init(&b.window);
  b.window.struct_size = size;
  brook_aggregator_t count = brook_agg_count();
  builder_outcome(o, t,
                  brook_window_aggregate(s, brook_window_tumbling(BROOK_S), &count, &b.window));
  brook_topology_free(t);
}

static void try_aggregate(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  brook_aggregate_opts_init(&b.aggregate);
  b.aggregate.struct_size = size;
  builder_outcome(o, t, brook_count(s, &b.aggregate));
  brook_topology_free(t);
}

static void try_kafka_source(uint32_t size, outcome_t *o) {
  static const char *const topics[] = {"in", NULL};
  opts_buf_t b = {0};
  brook_topology_t *t = collect_topology(BROOK_ON_ERROR_FAIL);
  brook_kafka_source_opts_init(&b.kafka_source);
  b.kafka_source.struct_size = size;
  b.kafka_source.bootstrap_servers = "127.0.0.1:1";
  b.kafka_source.group_id = "app";
  b.kafka_source.topics = topics;
  builder_outcome(o, t, brook_source_kafka(t, "kafka", &b.kafka_source));
  brook_topology_free(t);
}

static void try_kafka_sink(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  brook_kafka_sink_opts_init(&b.kafka_sink);
  b.kafka_sink.struct_size = size;
  b.kafka_sink.bootstrap_servers = "127.0.0.1:1";
  b.kafka_sink.topic = "out";
  code_outcome(o, t, brook_sink_kafka(s, "to_kafka", &b.kafka_sink));
  brook_topology_free(t);
}

static void try_watermark(uint32_t size, outcome_t *o) {
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  brook_watermark_opts_init(&b.watermark);
  b.watermark.struct_size = size;
  code_outcome(o, t, brook_source_set_watermark(s, &b.watermark));
  brook_topology_free(t);
}

static brook_err_t pass(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)state;
  return brook_emit(ctx, rec);
}

static void try_operator(uint32_t size, outcome_t *o) {
  static const brook_operator_t op = {
      .version = BROOK_OPERATOR_VERSION, .type_name = "pass", .process = pass};
  opts_buf_t b = {0};
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  brook_operator_opts_init(&b.operator_opts);
  b.operator_opts.struct_size = size;
  brook_stream_t *outs[4] = {0};
  code_outcome(o, t, brook_operator_add(&s, 1, &op, NULL, &b.operator_opts, outs));
  brook_topology_free(t);
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
  opts_buf_t b = {0};
  brook_store_opts_init(&b.store);
  b.store.struct_size = size;
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  brook_stream_t *out = brook_apply(s, &op, &b.store);
  assert_int_equal(brook_sink_callback(out, drop, NULL, NULL), BROOK_OK);
  collect_run_t r;
  o->err = collect_run_batch(t, 0, &r);
  o->refused = o->err != BROOK_OK;
  copy_msg(o, r.message);
  brook_topology_free(t);

  /* A standalone store has no object to keep a message: the code alone must agree. */
  brook_store_t *alone = NULL;
  brook_err_t err = brook_store_new(&alone, &b.store, NULL);
  assert_int_equal(err, o->refused ? BROOK_ERR_INVALID_ARG : BROOK_OK);
  brook_store_free(alone);
}

static void try_stats(uint32_t size, outcome_t *o) {
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  assert_int_equal(brook_sink_callback(s, drop, NULL, NULL), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  opts_buf_t b = {0};
  b.stats.struct_size = size;
  o->err = brook_runtime_stats(rt, &b.stats);
  o->refused = o->err != BROOK_OK;
  copy_msg(o, brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
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
};

/* Sizes of brook_runtime_stats_t's earlier versions: it grew by appending counters (the
 * struct every other test fills with its current size). */
static const uint32_t stats_old_sizes[] = {offsetof(brook_runtime_stats_t, timers_fired),
                                           offsetof(brook_runtime_stats_t, state_bytes),
                                           offsetof(brook_runtime_stats_t, records_dead_lettered),
                                           offsetof(brook_runtime_stats_t, tasks_opened)};

static int is_old_stats_size(const opts_case_t *c, uint32_t size) {
  if (c->attempt != try_stats)
    return 0;
  for (size_t i = 0; i < sizeof(stats_old_sizes) / sizeof(stats_old_sizes[0]); i++)
    if (size == stats_old_sizes[i])
      return 1;
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
      if (sizes[k] == sz || is_old_stats_size(c, sizes[k]))
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
  collect_gen_t g;
  brook_stream_t *s;
  brook_topology_t *t = with_source(&s, &g);
  assert_int_equal(brook_sink_callback(s, drop, NULL, NULL), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
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
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_current_size_accepted),
      cmocka_unit_test(test_wrong_sizes_refused_naming_size_and_type),
      cmocka_unit_test(test_stats_old_versions_filled_up_to_their_end),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  collect_strings_free();
  return rc;
}
