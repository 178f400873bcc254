/* A task's state on disk through the commits (runtime option state_dir; positions.h for the
 * sources' side). At a commit's begin (commit.c), once every operator and store has flushed,
 * each task's state is exactly the input processed so far: its task database collects every
 * store's changes with the positions of that input (prepare). The commit then waits for the
 * outputs derived from that input to be acknowledged, processing on meanwhile, and writes the
 * collected batch once they are (write), before the sources commit their offsets. So the
 * state on disk always covers exactly the input up to its positions (a restart resumes the
 * input there: exactly-once state), and those positions only become the restart point once
 * the outputs before them are acknowledged (at-least-once output). A revocation does the same
 * for its tasks at its own point (bk_task_commit_state). Worker thread. */
#include <stdio.h>

#include "runtime/positions.h"
#include "runtime/runtime_impl.h"
#include "runtime/task_log.h"
#include "runtime/test_hooks.h"
#include "state/task_db.h"

void (*bk_test_after_state_write)(int32_t task, const void *positions, size_t len) = NULL;

brook_err_t bk_positions_register(bk_worker_t *w, bk_positions_fn fn, void *opaque) {
  bk_commit_t *c = &w->commit;
  if (bk_grow(&w->rt->alloc, (void **)&c->positions, &c->cap_positions, c->n_positions + 1,
              sizeof(*c->positions)))
    return BROOK_ERR_NOMEM;
  c->positions[c->n_positions++] = (bk_positions_src_t){fn, opaque};
  return BROOK_OK;
}

/* Where a task's input resumes: with changelogs, the positions of the marker its restore
 * rolled forward to (task_restore.c); they are never behind the task database's, which is
 * written only after that marker was acknowledged (commit.c), so when both exist the
 * changelog's are the newer. Else the task database's. */
int bk_task_stored_position(bk_worker_t *w, int32_t task, const char *topic, int32_t partition,
                            int64_t *offset) {
  bk_task_t *t = bk_task_find(w, task);
  const void *data = NULL;
  size_t len = 0;
  if (t && t->log && w->log_vt && (data = w->log_vt->positions(t->log, &len)) != NULL)
    return bk_positions_find(data, len, topic, partition, offset); /* checked by the layer */
  if (!t || !t->db || bk_task_db_positions(t->db, &data, &len) != BROOK_OK)
    return 0;
  return bk_positions_find(data, len, topic, partition, offset); /* checked at open */
}

/* The task's stored positions, whole: from the same place as bk_task_stored_position. */
int bk_task_stored_positions(bk_worker_t *w, int32_t task, const void **data, size_t *len) {
  bk_task_t *t = bk_task_find(w, task);
  if (t && t->log && w->log_vt && (*data = w->log_vt->positions(t->log, len)) != NULL)
    return 1;
  return t && t->db && bk_task_db_positions(t->db, data, len) == BROOK_OK;
}

brook_err_t bk_task_positions(bk_worker_t *w, bk_task_t *t, const void **data, size_t *len) {
  bk_commit_t *c = &w->commit;
  bk_positions_t *p = &c->pos_buf;
  if (!p->alloc)
    bk_positions_init(p, &w->rt->alloc);
  bk_positions_reset(p);
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < c->n_positions && err == BROOK_OK; i++)
    err = c->positions[i].fn(c->positions[i].opaque, t->id, p);
  if (err == BROOK_OK && t->log && w->log_vt && w->log_vt->positions_add)
    err = w->log_vt->positions_add(t->log, p);
  *data = bk_positions_data(p, len);
  return err;
}

/* Collects the task's state and positions for a write (prepare). */
static brook_err_t prepare(bk_worker_t *w, bk_task_t *t) {
  const void *data;
  size_t len;
  brook_err_t err = bk_task_positions(w, t, &data, &len);
  char name[32];
  bk_task_name(w->rt, t, name, sizeof(name));
  bk_errmsg_t why;
  if (err == BROOK_OK && (err = bk_task_db_prepare(t->db, data, len, &why)) == BROOK_OK)
    return BROOK_OK;
  bk_runtime_fail(w->rt, err, "runtime: collecting the state of task %s for a commit: %s", name,
                  err == BROOK_ERR_NOMEM ? "out of memory" : brook_strerror(err));
  return err;
}

/* Writes what prepare collected. */
static brook_err_t write(bk_worker_t *w, bk_task_t *t) {
  bk_task_db_written_t wr = {0, 0};
  bk_errmsg_t why;
  brook_err_t err = bk_task_db_write(t->db, &wr, &why);
  if (err == BROOK_ERR_IO || err == BROOK_ERR_STATE) {
    char name[32];
    bk_task_name(w->rt, t, name, sizeof(name));
    bk_runtime_fail(w->rt, err, "runtime: writing the state of task %s: %s", name, why.text);
    return err;
  }
  w->stats.state_writes++;
  w->stats.state_bytes_written += wr.bytes;
  w->stats.state_entries_written += wr.entries;
  const void *pos;
  size_t len;
  if (bk_test_after_state_write && bk_task_db_positions(t->db, &pos, &len) == BROOK_OK)
    bk_test_after_state_write(t->id, pos, len);
  return BROOK_OK; /* NOMEM settling: written; the cache stays correct, only bigger */
}

void bk_tasks_state_prepare(bk_worker_t *w) {
  for (size_t i = 0; i < w->n_tasks && bk_runtime_status(w->rt) == BROOK_OK; i++)
    if (w->tasks[i]->db)
      (void)prepare(w, w->tasks[i]);
}

int bk_tasks_state_write(bk_worker_t *w) {
  int n = 0;
  for (size_t i = 0; i < w->n_tasks && bk_runtime_status(w->rt) == BROOK_OK; i++) {
    bk_task_t *t = w->tasks[i];
    if (t->db && bk_task_db_prepared(t->db) && write(w, t) == BROOK_OK)
      n++;
  }
  return n;
}

brook_err_t bk_task_commit_state(bk_worker_t *w, int32_t task) {
  bk_task_t *t = bk_task_find(w, task);
  if (!t || !t->db || bk_runtime_status(w->rt) != BROOK_OK)
    return BROOK_OK;
  brook_err_t err = prepare(w, t);
  if (err == BROOK_OK && (err = write(w, t)) == BROOK_OK)
    w->stats.state_commits++;
  return err;
}

void bk_tasks_state_free(bk_worker_t *w) {
  bk_commit_t *c = &w->commit;
  bk_positions_free(&c->pos_buf);
  bk_free(&w->rt->alloc, c->positions);
  c->positions = NULL;
  c->n_positions = c->cap_positions = 0;
}
