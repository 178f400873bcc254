/* Pieces shared by the Kafka tests whose pipelines run as child processes (self_exec.h): the
 * map that tags each value ("<tag>:<value>", so the output says which process wrote it), and
 * the child's SIGTERM handling (the handler stops the runtime; a SIGTERM that comes before the
 * runtime exists stops it as soon as it does). No cmocka: children use it. */
#ifndef BROOK_TEST_PIPELINE_CHILD_H
#define BROOK_TEST_PIPELINE_CHILD_H

#include <brook/brook.h>

/* A brook_map_fn: value -> "<opaque as a string>:<value>" (arena memory). */
brook_err_t pc_tag_value(brook_record_t *rec, brook_ctx_t *ctx, void *opaque);

/* Installs the SIGTERM handler and unblocks SIGTERM (blocked by self_exec_spawn until now). */
void pc_handle_sigterm(void);

/* The runtime a SIGTERM stops (NULL once it is freed); stops it at once if one came already. */
void pc_set_runtime(brook_runtime_t *rt);

/* An on_task_state callback: prints "running <task id>" on stdout (flushed) when a task
 * becomes RUNNING, for the test reading the child's output. */
void pc_report_running(int32_t task, int old_state, int new_state, const char *reason,
                       void *opaque);

#endif
