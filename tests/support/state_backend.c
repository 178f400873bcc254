/* The window suites' state backend. See state_backend.h. */
#include "state_backend.h"

#include <stdlib.h>
#include <string.h>

#define DISK_CACHE_BYTES 4096 /* tiny: every commit evicts, reads go to RocksDB */

int test_state_on_disk(void) {
  const char *v = getenv("BROOK_TEST_STATE");
  return v && strcmp(v, "rocksdb") == 0;
}

brook_err_t test_driver_new(brook_driver_t **d, brook_topology_t *t,
                            const brook_driver_opts_t *opts) {
  brook_driver_opts_t o;
  brook_driver_opts_init(&o);
  if (opts)
    o = *opts;
  if (test_state_on_disk() && !o.state_on_disk) {
    o.state_on_disk = 1;
    o.state_cache_bytes = DISK_CACHE_BYTES;
  }
  return brook_driver_new(d, t, &o);
}
