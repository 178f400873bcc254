/* Children running the test executable again. See self_exec.h. */
#define _GNU_SOURCE /* prctl, pipe2 */
#include "self_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker_proc.h" /* wait_child, read_line */

#define MAX_CHILDREN 16

static pid_t live[MAX_CHILDREN]; /* registered children, 0 = free slot; the test's thread */

void self_exec_forget(pid_t pid) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (live[i] == pid)
      live[i] = 0;
}

static pid_t spawn(const char *const *args, int out_fd) {
  static char exe[PATH_MAX];
  if (!exe[0]) {
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(len > 0);
    exe[len] = '\0';
  }
  const char *argv[64] = {exe};
  size_t n = 1;
  while (args[n - 1] && n < 63) {
    argv[n] = args[n - 1];
    n++;
  }
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    sigset_t term;                    /* the mask survives exec: see self_exec.h */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    if (out_fd >= 0)
      dup2(out_fd, STDOUT_FILENO);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (!live[i]) {
      live[i] = pid;
      break;
    }
  return pid;
}

pid_t self_exec_spawn(const char *const *args) { return spawn(args, -1); }

pid_t self_exec_spawn_piped(const char *const *args, int *out_fd) {
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  pid_t pid = spawn(args, fds[1]);
  close(fds[1]);
  *out_fd = fds[0];
  return pid;
}

int child_read_line(child_lines_t *c, char *line, size_t cap, int timeout_ms) {
  return read_line(c->fd, c->buf, sizeof(c->buf), &c->used, line, cap, timeout_ms);
}

int self_exec_end(pid_t pid, int sig, int timeout_ms) {
  kill(pid, sig);
  int code = wait_child(pid, timeout_ms);
  if (code < 0)
    fail_msg("child %d did not exit within %d ms of signal %d", (int)pid, timeout_ms, sig);
  self_exec_forget(pid);
  return code;
}

void self_exec_expect_alive(const pid_t *pids, const char *what) {
  for (size_t i = 0; pids && pids[i]; i++) {
    int code = wait_child(pids[i], 0);
    if (code >= 0) {
      self_exec_forget(pids[i]);
      fail_msg("child %d exited (%d) while waiting for %s", (int)pids[i], code, what);
    }
  }
}

void self_exec_kill_all(void) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (live[i]) {
      kill(live[i], SIGKILL);
      wait_child(live[i], 10000);
      live[i] = 0;
    }
}

struct broker_proc *self_exec_broker;

int self_exec_teardown(void **state) {
  (void)state;
  self_exec_kill_all();
  if (self_exec_broker)
    broker_stop(self_exec_broker);
  self_exec_broker = NULL;
  return 0;
}
