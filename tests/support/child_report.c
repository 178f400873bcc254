/* Forked scenarios reporting through a pipe. See child_report.h. */
#define _GNU_SOURCE /* pipe2 */
#include "child_report.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "broker_proc.h"

void child_write(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    len -= (size_t)w;
  }
}

void child_puts(int fd, const char *s) { child_write(fd, s, strlen(s)); }

static int64_t now_ms(void) { return (int64_t)(uv_hrtime() / 1000000u); }

int child_report(void (*fn)(int fd, void *arg), void *arg, int timeout_ms, char **report) {
  *report = NULL;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    close(fds[0]);
    fn(fds[1], arg);
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  if (!buf)
    abort();
  int64_t deadline = now_ms() + timeout_ms;
  int timed_out = 0;
  for (;;) { /* read until the child closes its end (exit) or the deadline */
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue; /* the deadline check above ends it */
    if (len + 4096 + 1 > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf)
        abort();
    }
    ssize_t n = read(fds[0], buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  close(fds[0]);
  buf[len] = '\0';
  *report = buf;
  int code = timed_out ? -1 : wait_child(pid, 5000);
  if (code < 0) {
    kill(pid, SIGKILL);
    wait_child(pid, 5000);
    return -1;
  }
  return code;
}
