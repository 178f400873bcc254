/* A brook_allocator_t that fails on demand, for proving that every allocation failure path
 * returns an error and leaks nothing (SQLite's OOM fault simulation):
 *
 *   fail_alloc_t fa = {.fail_at = k, .persistent = 1};
 *   brook_allocator_t a = fa_allocator(&fa);
 *   ... run the scenario with &a ...
 *   assert_int_equal(fa.live, 0);   // nothing leaked
 *   if (!fa.injected) break;        // k is past the scenario's last allocation
 *
 * Allocates through malloc/realloc/free. Not thread-safe: one thread per fail_alloc_t. */
#ifndef BROOK_TEST_FAIL_ALLOC_H
#define BROOK_TEST_FAIL_ALLOC_H

#include <stddef.h>

#include <brook/alloc.h>

typedef struct fail_alloc {
  long attempts, fail_at; /* fail attempt number fail_at (1-based; 0 = never) */
  int persistent;         /* and every later one */
  long injected, live;    /* failures injected; blocks currently allocated */
  long allocs, frees;     /* blocks allocated and freed in all */
} fail_alloc_t;

/* Counts an alloc/realloc attempt; nonzero if this one is to fail (counted in injected). */
int fa_should_fail(fail_alloc_t *fa);

/* The brook_allocator_t functions; opaque is the fail_alloc_t. */
void *fa_alloc(size_t size, void *opaque);
void *fa_realloc(void *ptr, size_t size, void *opaque);
void fa_free(void *ptr, void *opaque);

/* An allocator drawing on `fa`, which must outlive every use of it. */
brook_allocator_t fa_allocator(fail_alloc_t *fa);

#endif
