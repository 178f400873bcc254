/* The runtime's life cycle on its own loop (brook_runtime_run): running to completion,
 * stats, state errors, option validation, on_done, the log callback, done/status. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "run_helpers.h"

#include <brook/brook.h>
#include <uv.h>

/* ---- a numbered generator and a sink that checks the sequence ---- */

typedef struct numbers {
  uint64_t next;
  uint64_t done_after; /* return BROOK_DONE once this many were made; 0 = never */
  int fail_at;         /* return BROOK_ERR_USER for record number fail_at - 1; 0 = never */
} numbers_t;

static brook_err_t gen_numbers(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  numbers_t *g = opaque;
  if (g->done_after && g->next >= g->done_after)
    return BROOK_DONE;
  if (g->fail_at && g->next + 1 == (uint64_t)g->fail_at) {
    g->next++;
    return BROOK_ERR_USER;
  }
  char *buf = brook_ctx_alloc(ctx, 24);
  if (!buf)
    return BROOK_ERR_NOMEM;
  int n = snprintf(buf, 24, "%" PRIu64, g->next++);
  out->value = buf;
  out->value_len = (size_t)n;
  return BROOK_OK;
}

typedef struct seq_sink {
  uint64_t count;
  uint64_t expect; /* the next number the sink should see */
  uint64_t out_of_order;
  int64_t fail_at; /* return BROOK_ERR_IO on this record (1-based); 0 = never */
} seq_sink_t;

static uint64_t value_number(const brook_record_t *rec) {
  char buf[32];
  size_t n = rec->value_len < sizeof(buf) - 1 ? rec->value_len : sizeof(buf) - 1;
  memcpy(buf, rec->value, n);
  buf[n] = '\0';
  return strtoull(buf, NULL, 10);
}

static brook_err_t sink_seq(const brook_record_t *rec, void *opaque) {
  seq_sink_t *s = opaque;
  s->count++;
  if (s->fail_at && (int64_t)s->count == s->fail_at)
    return BROOK_ERR_IO;
  uint64_t v = value_number(rec);
  if (v != s->expect)
    s->out_of_order++;
  s->expect = v + 1;
  return BROOK_OK;
}

/* on_done bookkeeping. */
typedef struct done_rec {
  int calls;
  brook_err_t status;
  int done_flag_inside; /* brook_runtime_done() as seen inside the callback */
  brook_runtime_t *rt;
} done_rec_t;

static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  done_rec_t *d = opaque;
  d->calls++;
  d->status = status;
  d->rt = rt;
  d->done_flag_inside = brook_runtime_done(rt);
}

/* generator -> sink with the given generator options; returns the topology. */
static brook_topology_t *gen_to_sink(numbers_t *g, seq_sink_t *s, uint64_t limit) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = limit;
  brook_stream_t *src = brook_source_generator(t, "numbers", gen_numbers, g, &go);
  assert_non_null(src);
  assert_int_equal(brook_sink_callback(src, sink_seq, NULL, s), BROOK_OK);
  return t;
}

static brook_runtime_t *new_runtime(brook_topology_t *t, size_t batch_size, done_rec_t *done) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (batch_size)
    o.batch_size = batch_size;
  if (done) {
    o.on_done = on_done;
    o.on_done_opaque = done;
  }
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  assert_non_null(rt);
  return rt;
}

/* ---- tests ---- */

static void run_generator_with_limit(void **state) {
  (void)state;
  numbers_t g = {0};
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 5000);
  brook_runtime_t *rt = new_runtime(t, 100, NULL);
  brook_topology_free(t); /* the runtime keeps the topology alive */

  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(s.count, 5000);
  assert_int_equal(s.out_of_order, 0);
  assert_int_equal(g.next, 5000); /* the limit stops the generator: no extra calls */
  brook_runtime_stats_t st = get_stats(rt);
  assert_int_equal(st.records_in, 5000);
  assert_int_equal(st.records_out, 5000);
  assert_int_equal(st.records_skipped, 0);
  assert_int_equal(st.records_routed, 0);
  /* 5000 records in batches of at most 100. */
  assert_true(st.batches >= 50 && st.batches <= 51);
  assert_true(st.slices >= 1);
  assert_int_equal(brook_runtime_done(rt), 1);
  assert_int_equal(brook_runtime_status(rt), BROOK_OK);
  assert_string_equal(brook_runtime_last_error(rt), "");
  brook_runtime_free(rt);
}

static void run_generator_until_done(void **state) {
  (void)state;
  numbers_t g = {.done_after = 777};
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 0);
  brook_runtime_t *rt = new_runtime(t, 64, NULL);
  brook_topology_free(t);

  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(s.count, 777);
  assert_int_equal(s.out_of_order, 0);
  brook_runtime_stats_t st = get_stats(rt);
  assert_int_equal(st.records_in, 777);
  assert_int_equal(st.records_out, 777);
  assert_true(st.batches >= 13); /* ceil(777 / 64) */
  brook_runtime_free(rt);
}

static void run_empty_generator(void **state) {
  (void)state;
  numbers_t g = {.next = 1, .done_after = 1}; /* exhausted: the first call says BROOK_DONE */
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 0);
  done_rec_t d = {0};
  brook_runtime_t *rt = new_runtime(t, 0, &d);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(s.count, 0);
  assert_int_equal(get_stats(rt).records_out, 0);
  assert_int_equal(d.calls, 1);
  brook_runtime_free(rt);
}

static void run_twice_is_state_error(void **state) {
  (void)state;
  numbers_t g = {0};
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 10);
  brook_runtime_t *rt = new_runtime(t, 0, NULL);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(brook_runtime_run(rt), BROOK_ERR_STATE);
  assert_true(strlen(brook_runtime_last_error(rt)) > 0);
  assert_int_equal(s.count, 10); /* nothing ran the second time */

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_ERR_STATE);
  assert_int_equal(uv_loop_close(&loop), 0); /* the refused start left nothing on the loop */
  brook_runtime_free(rt);
}

static void free_null_and_null_args(void **state) {
  (void)state;
  brook_runtime_free(NULL);
  brook_runtime_stop(NULL);
  assert_int_equal(brook_runtime_run(NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_runtime_done(NULL), 0);
  assert_int_equal(brook_runtime_status(NULL), BROOK_ERR_INVALID_ARG);
  assert_non_null(brook_runtime_last_error(NULL));
  assert_null(brook_runtime_push_source(NULL, "x"));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(NULL, &st), BROOK_ERR_INVALID_ARG);
}

static void opts_validation(void **state) {
  (void)state;
  numbers_t g = {0};
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 10);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  assert_int_equal(o.struct_size, sizeof(o));
  assert_int_equal(o.batch_size, 1024);
  assert_int_equal(o.slice_us, 1000);
  assert_null(o.on_done);
  assert_null(o.log);

  brook_runtime_t *rt = (brook_runtime_t *)&o; /* must be reset to NULL on failure */
  o.batch_size = 0;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  assert_non_null(strstr(brook_topology_last_error(t), "batch_size"));

  brook_runtime_opts_init(&o);
  o.struct_size = 0;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  brook_runtime_opts_init(&o);
  o.struct_size = sizeof(o) + 8; /* from a newer ABI we do not know */
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_runtime_new(NULL, t, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_runtime_new(&rt, NULL, NULL), BROOK_ERR_INVALID_ARG);
  assert_null(rt);

  /* A shorter struct that was never a version of brook_runtime_opts_t is refused, not read
   * as its first fields (test_opts_size covers every options struct). */
  brook_runtime_opts_init(&o);
  o.struct_size = offsetof(brook_runtime_opts_t, slice_us);
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  assert_non_null(strstr(brook_topology_last_error(t), "is not a size of brook_runtime_opts_t"));
  brook_runtime_opts_init(&o);
  o.batch_size = 3;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(s.count, 10);
  assert_true(get_stats(rt).batches >= 4); /* batch_size 3 was taken */
  brook_runtime_free(rt);

  /* NULL opts = defaults. A topology can build several runtimes. */
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_runtime_free(rt); /* never started: freed at once */
  brook_topology_free(t);
}

static void stats_struct_size(void **state) {
  (void)state;
  numbers_t g = {0};
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 42);
  brook_runtime_t *rt = new_runtime(t, 0, NULL);
  brook_topology_free(t);
  brook_runtime_stats_t st;
  memset(&st, 0, sizeof(st));
  st.struct_size = 0;
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_ERR_INVALID_ARG);
  st.struct_size = sizeof(st) + 8;
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_ERR_INVALID_ARG);
  st = get_stats(rt);
  assert_int_equal(st.records_in, 0); /* not run yet */
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);

  /* The first version of the struct ended after `slices`: nothing past it is written. */
  brook_runtime_stats_t small;
  memset(&small, 0xab, sizeof(small));
  small.struct_size = offsetof(brook_runtime_stats_t, timers_fired);
  assert_int_equal(brook_runtime_stats(rt, &small), BROOK_OK);
  assert_int_equal(small.records_in, 42);
  assert_int_equal(small.records_out, 42);
  assert_int_equal(small.timers_fired, 0xababababababababull);
  /* A size that was never a version (no version ended after records_out) is refused. */
  small.struct_size = offsetof(brook_runtime_stats_t, records_skipped);
  assert_int_equal(brook_runtime_stats(rt, &small), BROOK_ERR_INVALID_ARG);
  brook_runtime_free(rt);
}

static void dangling_and_build_errors(void **state) {
  (void)state;
  numbers_t g = {0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_non_null(brook_source_generator(t, "alone", gen_numbers, &g, NULL));
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_ERR_DANGLING);
  assert_null(rt);
  assert_true(strlen(brook_topology_last_error(t)) > 0);
  brook_topology_free(t);

  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_null(brook_source_generator(t, "bad", NULL, NULL, NULL)); /* a build error */
  assert_int_not_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  assert_null(rt);
  brook_topology_free(t);
}

static void on_done_once_in_run_mode(void **state) {
  (void)state;
  numbers_t g = {0};
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 300);
  done_rec_t d = {0};
  brook_runtime_t *rt = new_runtime(t, 0, &d);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_done(rt), 0);
  assert_int_equal(brook_runtime_status(rt), BROOK_OK);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, BROOK_OK);
  assert_ptr_equal(d.rt, rt);
  assert_int_equal(d.done_flag_inside, 1);
  assert_int_equal(s.count, 300); /* everything was delivered before on_done */
  brook_runtime_free(rt);
  assert_int_equal(d.calls, 1); /* free calls nothing */
}

static void sink_failure_fails_run(void **state) {
  (void)state;
  numbers_t g = {0};
  seq_sink_t s = {.fail_at = 50};
  brook_topology_t *t = gen_to_sink(&g, &s, 0); /* unbounded: only the failure ends it */
  done_rec_t d = {0};
  brook_runtime_t *rt = new_runtime(t, 16, &d);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_run(rt), BROOK_ERR_IO);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, BROOK_ERR_IO);
  assert_int_equal(brook_runtime_status(rt), BROOK_ERR_IO);
  assert_int_equal(brook_runtime_done(rt), 1);
  assert_int_equal(s.count, 50); /* nothing after the failing record */
  assert_true(strlen(brook_runtime_last_error(rt)) > 0);
  brook_runtime_free(rt);
}

static void generator_failure_and_skip_policy(void **state) {
  (void)state;
  /* Default policy: the generator's error fails the pipeline. */
  numbers_t g = {.fail_at = 10};
  seq_sink_t s = {0};
  brook_topology_t *t = gen_to_sink(&g, &s, 100);
  brook_runtime_t *rt = new_runtime(t, 0, NULL);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_run(rt), BROOK_ERR_USER);
  assert_int_equal(brook_runtime_status(rt), BROOK_ERR_USER);
  assert_non_null(strstr(brook_runtime_last_error(rt), "numbers"));
  brook_runtime_free(rt);

  /* SKIP: the failed record is counted and dropped; the rest arrive. */
  numbers_t g2 = {.fail_at = 10, .done_after = 100};
  seq_sink_t s2 = {0};
  t = gen_to_sink(&g2, &s2, 0);
  assert_int_equal(brook_topology_set_error_policy(t, BROOK_ON_ERROR_SKIP), BROOK_OK);
  rt = new_runtime(t, 0, NULL);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  brook_runtime_stats_t st = get_stats(rt);
  assert_int_equal(st.records_skipped, 1);
  assert_int_equal(st.records_out, 99);
  assert_int_equal(s2.count, 99);
  assert_int_equal(s2.out_of_order, 1); /* the gap where number 9 was skipped */
  brook_runtime_free(rt);
}

/* runtime.h: "The runtime may be freed from inside this callback." In run mode too: the
 * runtime and its own loop must not be touched once on_done has freed it. Runs in a child
 * process so a crash (use after free under ASan) is reported as this test's failure
 * instead of killing the others. */
static void free_in_on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  (void)status;
  int *calls = opaque;
  (*calls)++;
  brook_runtime_free(rt);
}

static void free_inside_on_done_in_run_mode(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    numbers_t g = {0};
    seq_sink_t s = {0};
    brook_topology_t *t = NULL;
    brook_generator_opts_t go;
    brook_generator_opts_init(&go);
    go.limit = 100;
    if (brook_topology_new(&t, NULL) ||
        brook_sink_callback(brook_source_generator(t, "numbers", gen_numbers, &g, &go), sink_seq,
                            NULL, &s))
      _exit(10);
    int calls = 0;
    brook_runtime_opts_t o;
    brook_runtime_opts_init(&o);
    o.on_done = free_in_on_done;
    o.on_done_opaque = &calls;
    brook_runtime_t *rt = NULL;
    if (brook_runtime_new(&rt, t, &o))
      _exit(11);
    brook_topology_free(t);
    brook_err_t err = brook_runtime_run(rt); /* rt is gone when this returns */
    _exit(err == BROOK_OK && calls == 1 && s.count == 100 ? 0 : 12);
  }
  int wstatus = 0;
  assert_int_equal(waitpid(pid, &wstatus, 0), pid);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
    fail_msg("freeing the runtime inside on_done during brook_runtime_run crashed or failed "
             "(%s %d)",
             WIFEXITED(wstatus) ? "exit" : "signal",
             WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus));
}

/* ---- the log callback ---- */

typedef struct log_rec {
  int calls;
  int level;
  char msg[256];
} log_rec_t;

static void log_cb(int level, const char *msg, void *opaque) {
  log_rec_t *l = opaque;
  l->calls++;
  l->level = level;
  snprintf(l->msg, sizeof(l->msg), "%s", msg);
}

static brook_err_t map_logs_first(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  int *seen = opaque;
  if ((*seen)++ == 0)
    brook_ctx_log(ctx, BROOK_LOG_WARN, "first value %.*s", (int)rec->value_len,
                  (const char *)rec->value);
  return BROOK_OK;
}

static brook_runtime_t *logging_runtime(numbers_t *g, seq_sink_t *s, int *seen, log_rec_t *l) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.limit = 5;
  brook_stream_t *m =
      brook_map(brook_source_generator(t, "numbers", gen_numbers, g, &go), map_logs_first, seen);
  assert_non_null(brook_stream_set_name(m, "logger"));
  assert_int_equal(brook_sink_callback(m, sink_seq, NULL, s), BROOK_OK);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (l) {
    o.log = log_cb;
    o.log_opaque = l;
  }
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_topology_free(t);
  return rt;
}

static void log_callback_receives_messages(void **state) {
  (void)state;
  numbers_t g = {0};
  seq_sink_t s = {0};
  int seen = 0;
  log_rec_t l = {0};
  brook_runtime_t *rt = logging_runtime(&g, &s, &seen, &l);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(l.calls, 1);
  assert_int_equal(l.level, BROOK_LOG_WARN);
  assert_non_null(strstr(l.msg, "first value 0"));
  assert_non_null(strstr(l.msg, "logger")); /* names the operator that logged */
  assert_int_equal(s.count, 5);
  brook_runtime_free(rt);

  /* Without a log callback brook_ctx_log does nothing (and never prints). */
  numbers_t g2 = {0};
  seq_sink_t s2 = {0};
  int seen2 = 0;
  rt = logging_runtime(&g2, &s2, &seen2, NULL);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(s2.count, 5);
  brook_runtime_free(rt);
  brook_ctx_log(NULL, BROOK_LOG_INFO, "no context"); /* no-op */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(run_generator_with_limit),
      cmocka_unit_test(run_generator_until_done),
      cmocka_unit_test(run_empty_generator),
      cmocka_unit_test(run_twice_is_state_error),
      cmocka_unit_test(free_null_and_null_args),
      cmocka_unit_test(opts_validation),
      cmocka_unit_test(stats_struct_size),
      cmocka_unit_test(dangling_and_build_errors),
      cmocka_unit_test(on_done_once_in_run_mode),
      cmocka_unit_test(sink_failure_fails_run),
      cmocka_unit_test(generator_failure_and_skip_policy),
      cmocka_unit_test(log_callback_receives_messages),
      cmocka_unit_test(free_inside_on_done_in_run_mode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
