/* brook_xxx_opts_init_size: a program compiled against an older (smaller) or newer (larger)
 * header gets exactly its own struct written, never the library's sizeof. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#define CANARY 0xA5
#define BUF 4096

typedef void (*init_size_fn)(void *opts, size_t size);

typedef struct init_case {
  const char *type;
  size_t size;
  init_size_fn init;
} init_case_t;

#define CASE(type, fn)                                                                             \
  { #type, sizeof(type), (init_size_fn)(void (*)(void))fn }

static const init_case_t cases[] = {
    CASE(brook_topology_opts_t, brook_topology_opts_init_size),
    CASE(brook_runtime_opts_t, brook_runtime_opts_init_size),
    CASE(brook_driver_opts_t, brook_driver_opts_init_size),
    CASE(brook_generator_opts_t, brook_generator_opts_init_size),
    CASE(brook_lines_opts_t, brook_lines_opts_init_size),
    CASE(brook_push_opts_t, brook_push_opts_init_size),
    CASE(brook_callback_sink_opts_t, brook_callback_sink_opts_init_size),
    CASE(brook_line_sink_opts_t, brook_line_sink_opts_init_size),
    CASE(brook_window_opts_t, brook_window_opts_init_size),
    CASE(brook_aggregate_opts_t, brook_aggregate_opts_init_size),
    CASE(brook_kafka_source_opts_t, brook_kafka_source_opts_init_size),
    CASE(brook_kafka_sink_opts_t, brook_kafka_sink_opts_init_size),
    CASE(brook_store_opts_t, brook_store_opts_init_size),
    CASE(brook_watermark_opts_t, brook_watermark_opts_init_size),
    CASE(brook_operator_opts_t, brook_operator_opts_init_size),
};

static uint32_t struct_size_of(const unsigned char *buf) {
  uint32_t v;
  memcpy(&v, buf, sizeof(v));
  return v;
}

/* An older program's struct: only its bytes are written, struct_size says its size, and the
 * defaults it has are the library's. */
static void test_smaller_struct_written_only_to_its_end(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const init_case_t *c = &cases[i];
    unsigned char full[BUF], small[BUF];
    memset(full, CANARY, sizeof(full));
    c->init(full, c->size);
    for (size_t size = sizeof(uint32_t); size < c->size; size += sizeof(uint32_t)) {
      memset(small, CANARY, sizeof(small));
      c->init(small, size);
      if (struct_size_of(small) != size)
        fail_msg("%s: init_size(%zu) set struct_size %u", c->type, size, struct_size_of(small));
      if (memcmp(small + sizeof(uint32_t), full + sizeof(uint32_t), size - sizeof(uint32_t)))
        fail_msg("%s: init_size(%zu) wrote other defaults than the full struct's", c->type, size);
      for (size_t k = size; k < c->size + 64; k++)
        if (small[k] != CANARY)
          fail_msg("%s: init_size(%zu) wrote byte %zu, past the caller's struct", c->type, size, k);
    }
  }
}

/* A newer program's struct: zeros past the library's fields, and struct_size is its size, so
 * the builders refuse it as a size they do not know instead of reading garbage. */
static void test_larger_struct_zeroed_and_refused(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const init_case_t *c = &cases[i];
    unsigned char big[BUF];
    memset(big, CANARY, sizeof(big));
    c->init(big, c->size + 32);
    assert_int_equal(struct_size_of(big), c->size + 32);
    for (size_t k = c->size; k < c->size + 32; k++)
      if (big[k] != 0)
        fail_msg("%s: byte %zu of a larger struct not zeroed", c->type, k);
    assert_int_equal(big[c->size + 32], CANARY);
  }
  brook_topology_t *t = NULL;
  unsigned char big[BUF];
  brook_topology_opts_init_size((brook_topology_opts_t *)big, sizeof(brook_topology_opts_t) + 32);
  assert_int_equal(brook_topology_new(&t, (brook_topology_opts_t *)big), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "is not a size of brook_topology_opts_t"));
  brook_topology_free(t);
}

/* The inline brook_xxx_opts_init is the call programs make: the current size, and the
 * documented defaults. */
static void test_inline_init_sets_current_size_and_defaults(void **state) {
  (void)state;
  brook_kafka_source_opts_t ks;
  brook_kafka_source_opts_init(&ks);
  assert_int_equal(ks.struct_size, sizeof(ks));
  assert_int_equal(ks.commit_interval_ms, 0); /* deprecated: the runtime's commits */
  assert_int_equal(ks.startup_timeout_ms, 30000);
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  assert_int_equal(ro.struct_size, sizeof(ro));
  assert_int_equal(ro.batch_size, 1024);
  assert_int_equal(ro.commit_interval_ms, 1000);       /* README, "Commits" */
  brook_kafka_source_opts_init_size(NULL, sizeof(ks)); /* NULL: nothing, no crash */
  unsigned char tiny[2] = {CANARY, CANARY};
  brook_kafka_source_opts_init_size((brook_kafka_source_opts_t *)(void *)tiny, sizeof(tiny));
  assert_int_equal(tiny[0], CANARY); /* too small to hold struct_size: nothing written */
}

/* The Kafka source's options as a program built before issue 11 has them (no
 * startup_timeout_ms): initialised to their end and accepted as that version. */
static void test_older_kafka_source_version_builds(void **state) {
  (void)state;
  const size_t old = offsetof(brook_kafka_source_opts_t, startup_timeout_ms);
  union {
    brook_kafka_source_opts_t o;
    unsigned char b[BUF];
  } u;
  memset(&u, CANARY, sizeof(u));
  brook_kafka_source_opts_init_size(&u.o, old);
  for (size_t k = old; k < sizeof(u.o); k++)
    assert_int_equal(u.b[k], CANARY);
  u.o.bootstrap_servers = "127.0.0.1:1";
  u.o.group_id = "g";
  static const char *const topics[] = {"t", NULL};
  u.o.topics = topics;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *s = brook_source_kafka(t, "in", &u.o);
  if (!s)
    fail_msg("older source options refused: %s", brook_topology_last_error(t));
  brook_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_smaller_struct_written_only_to_its_end),
      cmocka_unit_test(test_larger_struct_zeroed_and_refused),
      cmocka_unit_test(test_inline_init_sets_current_size_and_defaults),
      cmocka_unit_test(test_older_kafka_source_version_builds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
