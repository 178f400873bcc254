/* See driver_helpers.h. */
#include "driver_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static brook_err_t drop_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  (void)ctx, (void)state, (void)rec;
  return BROOK_OK;
}

static const brook_operator_t sink_op = {
    .version = BROOK_OPERATOR_VERSION, .type_name = "sink", .process = drop_process};

void named_sink(brook_stream_t *in, const char *name) {
  assert_non_null(in);
  brook_operator_opts_t o;
  brook_operator_opts_init(&o);
  o.name = name;
  o.n_outputs = 0;
  assert_int_equal(brook_operator_add(&in, 1, &sink_op, NULL, &o, NULL), BROOK_OK);
}

brook_err_t ignore_record(const brook_record_t *rec, void *opaque) {
  (void)rec, (void)opaque;
  return BROOK_OK;
}

int run_in_child(void (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fn();
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
