/* Versioned option structs: every public options struct starts with `uint32_t struct_size`.
 *
 * A struct only ever grows by appending fields. Each layout it has had is a VERSION, and a
 * caller passes the sizeof of the version it was compiled against (its opts_init sets it).
 * The library accepts exactly those sizes: fields an older caller does not know keep their
 * defaults, and any other struct_size (0, a few bytes, a size between two versions, a newer
 * library's, garbage) is refused with BROOK_ERR_INVALID_ARG and
 * "struct_size N is not a size of brook_xxx_t", instead of its bytes being read as fields.
 *
 * Each struct has one table of its versions, next to its opts_init, oldest first, each
 * version named by its last field:
 *
 *   static const bk_opts_version_t push_versions[] = {
 *       BK_OPTS_VERSION(brook_push_opts_t, on_credit_opaque), // first version
 *   };
 *   static const bk_opts_type_t push_opts_type = BK_OPTS_TYPE(brook_push_opts_t, push_versions);
 *
 * Appending a field adds ONE line naming the new last field. A table whose last line is not
 * the struct's current sizeof fails an assertion on its first use in a debug build (every
 * test), and in any build refuses callers of the current size, so it cannot go unnoticed.
 *
 * brook has had no release yet (0.1.0 is the first): the versions listed are the layouts
 * that existed on main, read off `git log -p include/brook/`. Every options struct kept its
 * first layout; only brook_runtime_stats_t (filled by the library, same rules) grew. */
#ifndef BROOK_CORE_OPTS_H
#define BROOK_CORE_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>

#include "core/errmsg.h"

typedef struct bk_opts_version {
  uint32_t size; /* sizeof this version: the struct_size its callers pass */
  uint32_t used; /* where its last field ends: the bytes copied (not the tail padding, which
                    a newer version may use for a field the caller never set) */
} bk_opts_version_t;

typedef struct bk_opts_type {
  const char *name; /* the public type name, for messages */
  const bk_opts_version_t *versions;
  size_t n_versions;
} bk_opts_type_t;

#define BK_OPTS_END_(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))
/* The version of `type` whose last field is `last`. Its sizeof is the end of that field
 * rounded up to the struct's alignment: appending never lowers the alignment, and every
 * options struct already holds a pointer or 64-bit field, so it is the same for all. */
#define BK_OPTS_VERSION(type, last)                                                                \
  {                                                                                                \
    (uint32_t)((BK_OPTS_END_(type, last) + _Alignof(type) - 1) / _Alignof(type) * _Alignof(type)), \
        (uint32_t)BK_OPTS_END_(type, last)                                                         \
  }
#define BK_OPTS_TYPE(type, versions)                                                               \
  { #type, versions, sizeof(versions) / sizeof(versions[0]) }

/* The version of `type` with sizeof `size`, or NULL with `why` saying
 * "struct_size N is not a size of brook_xxx_t". */
/* The body of every brook_xxx_opts_init_size: writes the library's `defaults` (def_size
 * bytes, struct_size = def_size) into the caller's struct of `size` bytes, the size of the
 * version the caller was compiled with. An older, smaller struct gets only its own bytes; a
 * newer, larger one gets zeros past the library's fields. struct_size becomes `size` either
 * way, so bk_opts_copy later accepts it only if it is a version this library knows. Nothing is
 * written if opts is NULL or too small to hold struct_size. */
void bk_opts_init_sized(void *opts, size_t size, const void *defaults, size_t def_size);

const bk_opts_version_t *bk_opts_find(const bk_opts_type_t *type, uint32_t size, bk_errmsg_t *why);

/* Copies the caller's `src` (NULL: keep the defaults) over the defaults in `dst`, a
 * `dst_size`-byte struct of `type`, as far as the caller's version goes. Returns BROOK_OK, or
 * BROOK_ERR_INVALID_ARG with `why` set (dst untouched) if src's struct_size is no version of
 * `type`. */
brook_err_t bk_opts_copy(void *dst, size_t dst_size, const void *src, const bk_opts_type_t *type,
                         bk_errmsg_t *why);

#endif
