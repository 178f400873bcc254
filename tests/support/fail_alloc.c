/* See fail_alloc.h. */
#include "fail_alloc.h"

#include <stdlib.h>

int fa_should_fail(fail_alloc_t *fa) {
  fa->attempts++;
  if (fa->fail_at &&
      (fa->attempts == fa->fail_at || (fa->persistent && fa->attempts > fa->fail_at))) {
    fa->injected++;
    return 1;
  }
  return 0;
}

void *fa_alloc(size_t size, void *opaque) {
  fail_alloc_t *fa = opaque;
  if (fa_should_fail(fa))
    return NULL;
  void *p = malloc(size);
  fa->live += p != NULL;
  fa->allocs += p != NULL;
  return p;
}

void *fa_realloc(void *ptr, size_t size, void *opaque) {
  fail_alloc_t *fa = opaque;
  if (fa_should_fail(fa))
    return NULL;
  void *p = realloc(ptr, size);
  fa->live += p && !ptr;
  fa->allocs += p && !ptr;
  return p;
}

void fa_free(void *ptr, void *opaque) {
  fail_alloc_t *fa = opaque;
  fa->live -= ptr != NULL;
  fa->frees += ptr != NULL;
  free(ptr);
}

brook_allocator_t fa_allocator(fail_alloc_t *fa) {
  brook_allocator_t a = {fa_alloc, fa_realloc, fa_free, fa};
  return a;
}
