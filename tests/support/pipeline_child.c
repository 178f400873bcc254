/* Child-process pipeline pieces. See pipeline_child.h. */
#include "pipeline_child.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static brook_runtime_t *volatile stop_target;
static volatile sig_atomic_t stop_requested;

brook_err_t pc_tag_value(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  const char *tag = opaque;
  size_t tl = strlen(tag);
  char *v = brook_ctx_alloc(ctx, tl + 1 + rec->value_len);
  if (!v)
    return BROOK_ERR_NOMEM;
  memcpy(v, tag, tl);
  v[tl] = ':';
  if (rec->value_len)
    memcpy(v + tl + 1, rec->value, rec->value_len);
  rec->value = v;
  rec->value_len += tl + 1;
  return BROOK_OK;
}

static void on_sigterm(int sig) {
  (void)sig;
  stop_requested = 1;
  brook_runtime_stop(stop_target); /* async-signal-safe; NULL (not built yet) is a no-op */
}

void pc_handle_sigterm(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &term, NULL);
}

void pc_set_runtime(brook_runtime_t *rt) {
  stop_target = rt;
  if (rt && stop_requested) /* it came before the runtime was set */
    brook_runtime_stop(rt);
}

void pc_report_running(int32_t task, int old_state, int new_state, const char *reason,
                       void *opaque) {
  (void)old_state, (void)reason, (void)opaque;
  if (new_state == BROOK_TASK_RUNNING) {
    printf("running %d\n", (int)task);
    fflush(stdout);
  }
}
