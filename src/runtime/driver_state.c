/* The test driver's state on disk (brook_driver_opts_t.state_on_disk): one RocksDB task
 * database for the operators of the driver's unpartitioned pipeline (the worker's own
 * instances), opened before they open, committed every DRIVER_COMMIT_RECORDS records pushed
 * and at every clock move (operators flush first, as at a runtime's commit), closed after
 * them. It lets the window, store and property suites
 * run unchanged against the disk backend, and a test "restart" a pipeline on its state.
 * The driver's thread. */
#include "core/alloc.h"
#include "runtime/driver_impl.h"
#include "state/task_db.h"

#define DRIVER_COMMIT_RECORDS 64

brook_err_t bk_driver_state_open(brook_driver_t *d, const brook_driver_opts_t *o) {
  if (!o->state_on_disk)
    return BROOK_OK;
  brook_runtime_t *rt = d->rt;
  brook_rocksdb_opts_t ro;
  brook_rocksdb_opts_init(&ro);
  if (o->state_cache_bytes)
    ro.cache_bytes = o->state_cache_bytes;
  bk_errmsg_t why;
  brook_err_t err = bk_task_db_open(&d->db, o->state_dir, "driver", &ro, &d->alloc, &why);
  if (err < 0) {
    bk_errmsg_set(&rt->msg, "driver_new: the state on disk: %s", why.text);
    return err;
  }
  for (size_t i = 0; i < rt->plan.n; i++)
    rt->w0->insts[i].task_db = d->db;
  return BROOK_OK;
}

brook_err_t bk_driver_state_commit(brook_driver_t *d, size_t pushed) {
  brook_runtime_t *rt = d->rt;
  if (!d->db || rt->status != BROOK_OK)
    return rt->status;
  d->uncommitted += pushed;
  if (pushed && d->uncommitted < DRIVER_COMMIT_RECORDS)
    return BROOK_OK;
  d->uncommitted = 0;
  /* As a runtime's commit: operators flush (write what they keep aside), then the state. */
  bk_for_each_operator(rt->w0, bk_call_flush);
  if (rt->status != BROOK_OK || bk_driver_settle(d) < 0)
    return rt->status;
  bk_errmsg_t why;
  brook_err_t err = bk_task_db_commit(d->db, NULL, 0, &why);
  if (err < 0)
    bk_runtime_fail(rt, err, "driver: commit of the state on disk: %s", why.text);
  return rt->status;
}

void bk_driver_state_close(brook_driver_t *d) {
  bk_task_db_close(d->db); /* after the operators' stores */
  d->db = NULL;
}
