/* Tests that need Kafka start their own brook-broker (tools/broker.c, librdkafka's mock
 * cluster) as a child process on random loopback ports, talk to it through its control
 * channel (stdin/stdout) and stop it. Every wait has a deadline; nothing sleeps and hopes. */
#ifndef BROOK_TEST_BROKER_PROC_H
#define BROOK_TEST_BROKER_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct broker_proc {
  pid_t pid;
  int to_fd;            /* the broker's stdin: commands */
  int from_fd;          /* the broker's stdout: the bootstrap line, then replies */
  char bootstrap[1024]; /* "host:port,..." */
  char reply[512];      /* the last reply line */
  char buf[4096];       /* output read but not consumed yet */
  size_t used;
} broker_proc_t;

/* The brook-broker executable (set by the build). */
const char *broker_path(void);

/* Starts brook-broker --brokers n_brokers --control-stdin --quiet, with one --topic per
 * entry of `topics` ("name:partitions", NULL-terminated; may be NULL) and any `extra`
 * arguments (NULL-terminated; may be NULL), and waits up to 15 s for its bootstrap line.
 * Returns 0, or -1 (the process is reaped). */
int broker_start(broker_proc_t *b, int n_brokers, const char *const *topics,
                 const char *const *extra);

/* Sends one command line and waits up to 15 s for the reply. Returns 0 if it was "ok", else
 * -1 (b->reply holds what came back, or is empty on timeout/EOF). */
int broker_cmd(broker_proc_t *b, const char *fmt, ...);

/* Reads the next line of `fd` (without its newline) into line[cap] within timeout_ms, keeping
 * what was read past it in buf[buf_cap] (*used bytes) for the next call. 0, or -1 on timeout,
 * end of output, or a line longer than buf. */
int read_line(int fd, char *buf, size_t buf_cap, size_t *used, char *line, size_t cap,
              int timeout_ms);

/* Reads one line of the broker's output into `line` within timeout_ms; 0, or -1 on
 * timeout/EOF. */
int broker_read_line(broker_proc_t *b, char *line, size_t cap, int timeout_ms);

/* Stops the broker (SIGTERM, then SIGKILL after 15 s) and returns its wait status as an exit
 * code (0..255), or 128 + signal if it was killed. Idempotent. */
int broker_stop(broker_proc_t *b);

/* Waits up to timeout_ms for child `pid` to exit; its exit code (128 + signal if killed by a
 * signal), or -1 on timeout (the child is left running). */
int wait_child(pid_t pid, int timeout_ms);

#endif
