/* Running a scenario in a forked child that reports back through a pipe: for cases that may
 * hang or crash the process (a third-party library's own bugs included), so the test that
 * asked fails with a clear reason and the rest of the file still runs. */
#ifndef BROOK_TEST_CHILD_REPORT_H
#define BROOK_TEST_CHILD_REPORT_H

#include <stddef.h>

/* Writes `len` bytes to fd (retrying short writes). For use in the child. */
void child_write(int fd, const void *buf, size_t len);
/* Writes a NUL-terminated string to fd. */
void child_puts(int fd, const char *s);

/* Runs fn(fd, arg) in a forked child, which writes its report to fd and returns (the child
 * then exits with status 0 without running exit handlers). The parent reads the report
 * while it waits up to timeout_ms. Returns the child's exit code (128 + signal if killed by
 * a signal), or -1 if it did not finish in time (it is then killed). *report gets the
 * report, NUL-terminated (malloc'd; the caller frees it). fn must not use cmocka
 * assertions. */
int child_report(void (*fn)(int fd, void *arg), void *arg, int timeout_ms, char **report);

#endif
