/* The Kafka layer behind the runtime's task log hooks (runtime/task_log.h; runtime option
 * changelogs): per worker, the changelogs of its tasks, written by the worker's producer and
 * restored by a restore consumer of its own (changelog_tasks.c). A Kafka source with a group
 * attaches it to the worker running its instance; the first one per worker wins and owns it
 * (its close detaches it, after every task of the worker closed). Loop thread. */
#ifndef BROOK_KAFKA_CHANGELOG_TASKS_H
#define BROOK_KAFKA_CHANGELOG_TASKS_H

#include <stdint.h>

#include <brook/error.h>

#include "runtime/services.h"

typedef struct bk_cl_layer bk_cl_layer_t;

/* Attaches the layer to worker w for a source of `group`, connected with bootstrap (may be
 * NULL if props have it) and props (borrowed: they outlive the runtime), whose input topics
 * (NULL-terminated, borrowed) give the changelogs' partition count. *out is the layer if
 * this call attached it (the caller detaches it), else NULL (changelogs are off, the source
 * has no group, or another source attached one). BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_cl_layer_attach(bk_worker_t *w, const char *group, const char *bootstrap,
                               char *const *props, char *const *topics, int64_t timeout_ms,
                               bk_cl_layer_t **out);

/* Frees it (its producer and consumer closed off the loop). NULL: no-op. */
void bk_cl_layer_detach(bk_cl_layer_t *l);

/* Test only (NULL otherwise): the commit `epoch` of task `task` is acknowledged in every
 * changelog, markers included, and its input offsets are not committed yet. */
extern void (*bk_test_after_changelog_acked)(int32_t task, uint64_t epoch);

#endif
