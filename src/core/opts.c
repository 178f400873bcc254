/* Versioned option structs: finding the caller's version by its struct_size (see opts.h). */
#include "core/opts.h"

#include <assert.h>
#include <string.h>

#ifndef NDEBUG
/* Versions are listed oldest first, each larger than the one before, and copy no more than
 * they are. */
static int opts_type_check(const bk_opts_type_t *type) {
  if (!type->name || !type->versions || type->n_versions == 0)
    return 0;
  for (size_t i = 0; i < type->n_versions; i++) {
    const bk_opts_version_t *v = &type->versions[i];
    if (v->used < sizeof(uint32_t) || v->used > v->size)
      return 0;
    if (i > 0 && v->used <= type->versions[i - 1].size)
      return 0;
  }
  return 1;
}
#endif

const bk_opts_version_t *bk_opts_find(const bk_opts_type_t *type, uint32_t size, bk_errmsg_t *why) {
  assert(opts_type_check(type));
  for (size_t i = 0; i < type->n_versions; i++)
    if (type->versions[i].size == size)
      return &type->versions[i];
  bk_errmsg_set(why, "struct_size %u is not a size of %s", size, type->name);
  return NULL;
}

brook_err_t bk_opts_copy(void *dst, size_t dst_size, const void *src, const bk_opts_type_t *type,
                         bk_errmsg_t *why) {
  /* The newest version is the struct this library was built with: a field appended without
   * its line in the table stops here. */
  assert(type->versions[type->n_versions - 1].size == dst_size);
  (void)dst_size;
  if (!src)
    return BROOK_OK;
  uint32_t size;
  memcpy(&size, src, sizeof(size));
  const bk_opts_version_t *v = bk_opts_find(type, size, why);
  if (!v)
    return BROOK_ERR_INVALID_ARG;
  memcpy(dst, src, v->used);
  return BROOK_OK;
}

void bk_opts_init_sized(void *opts, size_t size, const void *defaults, size_t def_size) {
  if (!opts || size < sizeof(uint32_t))
    return;
  memset(opts, 0, size);
  memcpy(opts, defaults, size < def_size ? size : def_size);
  uint32_t struct_size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
  memcpy(opts, &struct_size, sizeof(struct_size));
}
