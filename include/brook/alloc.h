/* Memory allocation hooks. A topology (and every runtime built from it) allocates through
 * the allocator given in its options; the default is malloc/realloc/free. Tests use this to
 * inject allocation failures. There is no process-wide allocator: no global state. */
#ifndef BROOK_ALLOC_H
#define BROOK_ALLOC_H

#include <brook/export.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct brook_allocator {
  /* Like malloc/realloc/free. alloc and realloc return NULL on failure; brook then returns
   * BROOK_ERR_NOMEM from the call that needed the memory. realloc(NULL, n) must act as
   * alloc(n); free(NULL) must be a no-op. Called from the thread of the brook call that
   * allocates: the building thread, the runtime's loop thread, and push-source producer
   * threads (for push-queue chunks), so it must be thread-safe if those differ. */
  void *(*alloc)(size_t size, void *opaque);
  void *(*realloc)(void *ptr, size_t size, void *opaque);
  void (*free)(void *ptr, void *opaque);
  void *opaque;
} brook_allocator_t;

#ifdef __cplusplus
}
#endif
#endif
