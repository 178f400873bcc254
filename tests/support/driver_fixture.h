/* The topology and driver a driver test builds, freed by its cmocka teardown even when an
 * assertion failed half-way. */
#ifndef BROOK_TEST_DRIVER_FIXTURE_H
#define BROOK_TEST_DRIVER_FIXTURE_H

#include <brook/brook.h>

typedef struct driver_fixture {
  brook_topology_t *topo;
  brook_driver_t *drv;
} driver_fixture_t;

/* Frees the driver, then the topology (either may be NULL), and clears both. */
void driver_fixture_free(driver_fixture_t *f);

#endif
