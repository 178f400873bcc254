/* Child processes that run the test executable itself again, in a mode its main() picks by
 * the first argument: for scenarios that need a separate process (killed with SIGKILL,
 * stopped with a signal, several members of a consumer group). exec rather than a bare fork:
 * once librdkafka (or any library with threads and locks) has run in the parent, a forked
 * child must not use it. Children die with the test process (PR_SET_PDEATHSIG), and a
 * registry lets a cmocka teardown kill what a failed test left running. Parent side:
 * cmocka assertions. */
#ifndef BROOK_TEST_SELF_EXEC_H
#define BROOK_TEST_SELF_EXEC_H

#include <sys/types.h>

/* Starts this executable with arguments `args` (NULL-terminated; args[0] is argv[1] of the
 * child, typically the mode) and registers the child. Asserts it could fork. The child
 * starts with SIGTERM blocked: its main unblocks it once its handler is in place, and a
 * SIGTERM sent earlier then reaches the handler instead of killing the child. */
pid_t self_exec_spawn(const char *const *args);

/* self_exec_spawn with the child's standard output on a pipe: *out_fd gets the read end
 * (close-on-exec; the caller closes it once done with the child). For children that report
 * progress as lines (child_lines_t below). */
pid_t self_exec_spawn_piped(const char *const *args, int *out_fd);

/* Reading a child's output line by line with a deadline. */
typedef struct child_lines {
  int fd;
  char buf[4096];
  size_t used;
} child_lines_t;

/* Reads the next line (without its newline) into line[cap] within timeout_ms. 0, or -1 on
 * timeout or end of output (the child exited). See read_line (broker_proc.h). */
int child_read_line(child_lines_t *c, char *line, size_t cap, int timeout_ms);

/* Sends `sig` to the child and waits up to timeout_ms for it to exit; returns its exit code
 * (128 + signal if killed by one) and forgets it. Fails the test if it does not exit. */
int self_exec_end(pid_t pid, int sig, int timeout_ms);

/* Forgets a child the caller has reaped itself (wait_child). */
void self_exec_forget(pid_t pid);

/* Fails the test if one of `pids` (0-terminated, may be NULL) has exited (it is reaped and
 * forgotten); `what` names what the test was waiting for. */
void self_exec_expect_alive(const pid_t *pids, const char *what);

/* Kills (SIGKILL) and reaps every registered child still running. For teardowns. */
void self_exec_kill_all(void);

/* The broker a test runs its children against (set by the test, may be NULL). */
struct broker_proc;
extern struct broker_proc *self_exec_broker;

/* A cmocka teardown for such tests: self_exec_kill_all, then stops self_exec_broker (if set)
 * and clears it. */
int self_exec_teardown(void **state);

#endif
