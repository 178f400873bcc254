/* See broker_proc.h. */
#define _GNU_SOURCE /* pipe2, O_CLOEXEC */
#include "broker_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_MS 15000

#ifndef BROOK_BROKER_PATH
#error "the build defines BROOK_BROKER_PATH (the brook-broker executable)"
#endif

const char *broker_path(void) {
  const char *env = getenv("BROOK_BROKER");
  return env && *env ? env : BROOK_BROKER_PATH;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reaps `pid` if it has exited: its code, or -1 if it still runs (or is not ours). */
static int reap(pid_t pid, int *gone) {
  int status;
  pid_t r;
  do
    r = waitpid(pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  *gone = r == pid || r < 0;
  if (r != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int wait_child(pid_t pid, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  /* A pidfd becomes readable when the child exits: wait on it with the deadline. */
  int pidfd = -1;
#ifdef SYS_pidfd_open
  pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
  for (;;) {
    int gone;
    int code = reap(pid, &gone);
    if (gone) {
      if (pidfd >= 0)
        close(pidfd);
      return code;
    }
    long long left = deadline - now_ms();
    if (left <= 0) {
      if (pidfd >= 0)
        close(pidfd);
      return -1;
    }
    if (pidfd >= 0) {
      struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
      (void)poll(&pfd, 1, (int)left);
    } else { /* kernels without pidfds: re-check the status every 5 ms until the deadline */
      struct timespec step = {0, 5 * 1000 * 1000};
      nanosleep(&step, NULL);
    }
  }
}

int read_line(int fd, char *buf, size_t buf_cap, size_t *used, char *line, size_t cap,
              int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    char *nl = memchr(buf, '\n', *used);
    if (nl) {
      size_t len = (size_t)(nl - buf);
      size_t n = len < cap - 1 ? len : cap - 1;
      memcpy(line, buf, n);
      line[n] = '\0';
      memmove(buf, nl + 1, *used - len - 1);
      *used -= len + 1;
      return 0;
    }
    if (*used == buf_cap)
      return -1; /* a line longer than the buffer */
    long long left = deadline - now_ms();
    if (left <= 0)
      return -1;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    ssize_t n = read(fd, buf + *used, buf_cap - *used);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    *used += (size_t)n;
  }
}

int broker_read_line(broker_proc_t *b, char *line, size_t cap, int timeout_ms) {
  return read_line(b->from_fd, b->buf, sizeof(b->buf), &b->used, line, cap, timeout_ms);
}

int broker_start(broker_proc_t *b, int n_brokers, const char *const *topics,
                 const char *const *extra) {
  memset(b, 0, sizeof(*b));
  b->pid = -1;
  b->to_fd = b->from_fd = -1;
  char nb[16];
  snprintf(nb, sizeof(nb), "%d", n_brokers);
  const char *argv[64];
  int argc = 0;
  argv[argc++] = broker_path();
  argv[argc++] = "--brokers";
  argv[argc++] = nb;
  argv[argc++] = "--control-stdin";
  argv[argc++] = "--quiet";
  for (size_t i = 0; topics && topics[i] && argc < 58; i++) {
    argv[argc++] = "--topic";
    argv[argc++] = topics[i];
  }
  for (size_t i = 0; extra && extra[i] && argc < 63; i++)
    argv[argc++] = extra[i];
  argv[argc] = NULL;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    return -1;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  b->pid = pid;
  b->to_fd = in[1];
  b->from_fd = out[0];
  signal(SIGPIPE, SIG_IGN); /* a dead broker must fail a command, not kill the test */
  char line[sizeof(b->bootstrap) + 16];
  if (broker_read_line(b, line, sizeof(line), DEADLINE_MS) != 0 ||
      strncmp(line, "bootstrap=", 10) != 0) {
    broker_stop(b);
    return -1;
  }
  size_t len = strlen(line + 10);
  if (len >= sizeof(b->bootstrap)) {
    broker_stop(b);
    return -1;
  }
  memcpy(b->bootstrap, line + 10, len + 1);
  return 0;
}

int broker_cmd(broker_proc_t *b, const char *fmt, ...) {
  char cmd[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
  va_end(ap);
  b->reply[0] = '\0';
  if (n < 0 || (size_t)n >= sizeof(cmd) - 1)
    return -1;
  cmd[n++] = '\n';
  for (int off = 0; off < n;) {
    ssize_t w = write(b->to_fd, cmd + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    off += (int)w;
  }
  if (broker_read_line(b, b->reply, sizeof(b->reply), DEADLINE_MS) != 0)
    return -1;
  return strcmp(b->reply, "ok") == 0 ? 0 : -1;
}

int broker_stop(broker_proc_t *b) {
  int code = 0;
  if (b->pid > 0) {
    kill(b->pid, SIGTERM);
    code = wait_child(b->pid, DEADLINE_MS);
    if (code < 0) {
      kill(b->pid, SIGKILL);
      code = wait_child(b->pid, DEADLINE_MS);
    }
    b->pid = -1;
  }
  if (b->to_fd >= 0)
    close(b->to_fd);
  if (b->from_fd >= 0)
    close(b->from_fd);
  b->to_fd = b->from_fd = -1;
  return code;
}
