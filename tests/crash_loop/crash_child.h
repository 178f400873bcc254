/* The crash-loop driver's view of one instance of the pipeline (crash_pipeline.h) running as
 * a child process (self_exec.h: this test executable again, mode "--crash-child"): spawning
 * it, reading its report lines (ready, task states, state writes with their positions, open
 * phases), and classifying where a SIGKILL landed. Parent side; cmocka assertions. */
#ifndef BROOK_TEST_CRASH_CHILD_H
#define BROOK_TEST_CRASH_CHILD_H

#include <stdint.h>
#include <sys/types.h>

#include "self_exec.h"

#define CC_MAX_POS 128
#define CC_MAX_PHASES 64

typedef struct crash_pos {
  char topic[200];
  int32_t partition;
  int64_t offset;
  int32_t task;
} crash_pos_t;

typedef struct crash_child {
  char name[8]; /* instance name: "a", "b" */
  pid_t pid;    /* 0: not running */
  child_lines_t out;
  int ready;
  long long ready_at;          /* kh_now_ms() of "ready" */
  int running;                 /* tasks RUNNING */
  crash_pos_t pos[CC_MAX_POS]; /* the last state write's position per (topic, partition) */
  int n_pos;
  struct {
    char name[32];
    int32_t task;
  } open[CC_MAX_PHASES]; /* phases open now ("phase open NAME T" without its close) */
  int n_open;
  int64_t writes; /* state writes reported by this process */
} crash_child_t;

/* Spawns the pipeline: args (NULL-terminated) are crash_pipeline.h's options. */
void crash_child_spawn(crash_child_t *c, const char *name, const char *const *args);

/* Reads the report lines that arrived (waits up to wait_ms for the first). */
void crash_child_drain(crash_child_t *c, int wait_ms);

/* Kills it with `sig` (0: it is expected to die by itself, e.g. armed) and reads its report
 * to the end. Returns its exit code (128 + signal if killed). */
int crash_child_end(crash_child_t *c, int sig, int timeout_ms);

/* 1 if it exited (reaped: pid is 0 then, *code its exit code). */
int crash_child_exited(crash_child_t *c, int *code);

/* After a kill: the positions of its last state writes that are past the group's committed
 * offsets (the kill landed between a state write and its offset commit). Returns how many;
 * `detail` gets the first, e.g. "task 5: in:1 state at 1234, committed 1100". */
int crash_child_ahead_of_commit(const crash_child_t *c, const char *bootstrap, const char *group,
                                char *detail, size_t cap);

#endif
