/* The backend the window suites keep operator state in, so that one suite runs against both:
 * ctest runs each window suite twice, "window_x" in memory and "window_x_rocksdb" with
 * BROOK_TEST_STATE=rocksdb (tests/CMakeLists.txt), where test_driver_new gives the driver
 * state on disk (brook_driver_opts_t.state_on_disk, a temporary directory removed at free)
 * with a tiny write cache, so that commits evict and reads go to RocksDB. */
#ifndef BROOK_TEST_STATE_BACKEND_H
#define BROOK_TEST_STATE_BACKEND_H

#include <brook/brook.h>

/* 1 when BROOK_TEST_STATE=rocksdb. */
int test_state_on_disk(void);

/* brook_driver_new with `opts` (NULL: defaults), plus state on disk when the environment
 * asks for it. */
brook_err_t test_driver_new(brook_driver_t **d, brook_topology_t *t,
                            const brook_driver_opts_t *opts);

#endif
