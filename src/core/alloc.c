/* Allocation through a user-supplied (or the default) allocator, plus small helpers. */
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *default_alloc(size_t size, void *opaque) {
  (void)opaque;
  return malloc(size);
}

static void *default_realloc(void *ptr, size_t size, void *opaque) {
  (void)opaque;
  return realloc(ptr, size);
}

static void default_free(void *ptr, void *opaque) {
  (void)opaque;
  free(ptr);
}

static const brook_allocator_t default_allocator = {default_alloc, default_realloc, default_free,
                                                    NULL};

const brook_allocator_t *bk_default_allocator(void) { return &default_allocator; }

void *bk_malloc(const brook_allocator_t *a, size_t size) {
  return a->alloc(size ? size : 1, a->opaque);
}

void *bk_calloc(const brook_allocator_t *a, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size)
    return NULL;
  size_t bytes = n * size;
  void *p = bk_malloc(a, bytes);
  if (p && bytes)
    memset(p, 0, bytes);
  return p;
}

void *bk_realloc(const brook_allocator_t *a, void *ptr, size_t size) {
  return a->realloc(ptr, size ? size : 1, a->opaque);
}

void bk_free(const brook_allocator_t *a, void *ptr) {
  if (ptr)
    a->free(ptr, a->opaque);
}

char *bk_strdup(const brook_allocator_t *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = bk_malloc(a, n);
  if (d)
    memcpy(d, s, n);
  return d;
}

int bk_grow(const brook_allocator_t *a, void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 0;
  size_t ncap = *cap ? *cap : 4;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2 / elem)
      return -1;
    ncap *= 2;
  }
  void *p = bk_realloc(a, *arr, ncap * elem);
  if (!p)
    return -1;
  *arr = p;
  *cap = ncap;
  return 0;
}
