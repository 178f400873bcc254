/* Test-only hooks into the runtime (internal: only tests set them; NULL otherwise). They run
 * at points a test must hit exactly, e.g. to kill a process between two writes that a crash
 * could separate. Process-wide, not thread-safe: set before a runtime starts. */
#ifndef BROOK_RUNTIME_TEST_HOOKS_H
#define BROOK_RUNTIME_TEST_HOOKS_H

#include <stddef.h>
#include <stdint.h>

/* After a task's state was written to its task database with `positions` (positions.h
 * encoding) and before the sources commit the offsets of that commit (runtime/task_state.c),
 * on the worker's thread. */
extern void (*bk_test_after_state_write)(int32_t task, const void *positions, size_t len);

#endif
