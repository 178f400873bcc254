/* A task's event time kept with its state across restarts and hand-overs (task_event_time.c).
 * Worker thread. */
#ifndef BROOK_RUNTIME_TASK_EVENT_TIME_H
#define BROOK_RUNTIME_TASK_EVENT_TIME_H

#include <brook/error.h>

typedef struct bk_worker bk_worker_t;
typedef struct bk_task bk_task_t;

/* At the worker's start: its commits store the watermarks of its tasks' stateful instances
 * with their positions, when state outlives the run (state_dir or changelogs). BROOK_OK or
 * BROOK_ERR_NOMEM. */
brook_err_t bk_task_event_time_start(bk_worker_t *w);

/* As task `t` starts running with its state restored: each stateful instance starts from its
 * stored watermark (none stored: it stays where it is). */
void bk_task_event_time_restore(bk_worker_t *w, bk_task_t *t);

#endif
