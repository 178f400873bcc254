/* Internal allocation through the topology's brook_allocator_t. */
#ifndef BROOK_CORE_ALLOC_H
#define BROOK_CORE_ALLOC_H

#include <stddef.h>

#include <brook/alloc.h>

/* The default allocator (malloc/realloc/free). */
const brook_allocator_t *bk_default_allocator(void);

void *bk_malloc(const brook_allocator_t *a, size_t size);
void *bk_calloc(const brook_allocator_t *a, size_t n, size_t size);
void *bk_realloc(const brook_allocator_t *a, void *ptr, size_t size);
void bk_free(const brook_allocator_t *a, void *ptr);
char *bk_strdup(const brook_allocator_t *a, const char *s);

/* Grows *arr (elements of `elem` bytes) so that it holds at least `need` elements, doubling.
 * Returns 0, or -1 on allocation failure or overflow (*arr unchanged). */
int bk_grow(const brook_allocator_t *a, void **arr, size_t *cap, size_t need, size_t elem);

#endif
