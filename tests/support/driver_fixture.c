/* See driver_fixture.h. */
#include "driver_fixture.h"

void driver_fixture_free(driver_fixture_t *f) {
  brook_driver_free(f->drv);
  f->drv = NULL;
  brook_topology_free(f->topo);
  f->topo = NULL;
}
