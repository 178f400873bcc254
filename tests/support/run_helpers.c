/* Helpers for tests that drive a runtime (see run_helpers.h). */
#include "run_helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

void *run_thread(void *arg) {
  runner_t *r = arg;
  r->result = brook_runtime_run(r->rt);
  return NULL;
}

brook_runtime_stats_t get_stats(brook_runtime_t *rt) {
  brook_runtime_stats_t st;
  memset(&st, 0, sizeof(st));
  st.struct_size = sizeof(st);
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  return st;
}
