/* A store backend written the way a user writes one: only through the public table in
 * <brook/store_backend.h>. Entries live in one sorted array (binary search, memmove on
 * insert), so it is ordered (BROOK_STORE_CAP_ORDERED) but has no in-place update: the store
 * suite runs against it to prove the table is enough to bring a backend, and that the store
 * layer handles what a backend leaves out. Error injection lets tests see a disk-like
 * backend's failures (a read error, an open error) reach the caller with the store's name.
 *
 *   sorted_store_opts_t so = {0};
 *   o.backend = sorted_store_backend();
 *   o.backend_opaque = &so;          // optional; the knobs below, read on every call
 */
#ifndef BROOK_TEST_SORTED_STORE_H
#define BROOK_TEST_SORTED_STORE_H

#include <brook/store_backend.h>

typedef struct sorted_store_opts {
  int fail_reads; /* get, iter_seek and iter_next fail with BROOK_ERR_IO */
  int fail_open;  /* open fails with BROOK_ERR_IO */
} sorted_store_opts_t;

/* The table (static; any thread). */
const brook_store_backend_t *sorted_store_backend(void);

#endif
