/* A store's changelog options (store_changelog.h). */
#include "state/store_changelog.h"

#include <string.h>

#include "core/alloc.h"
#include "state/store.h"

brook_err_t bk_store_changelog_init(brook_store_t *s, const brook_store_opts_t *o,
                                    bk_errmsg_t *why) {
  s->changelog_disabled = o->changelog_disabled != 0;
  s->changelog_configs = NULL;
  const char *const *in = o->changelog_configs;
  if (!in)
    return BROOK_OK;
  /* One block: the pointer array, then the strings. */
  size_t n = 0, bytes = 0;
  for (; in[n]; n++)
    bytes += strlen(in[n]) + 1;
  if (n % 2) {
    bk_errmsg_set(why, "changelog_configs: '%s' has no value (name, value pairs, then NULL)",
                  in[n - 1]);
    return BROOK_ERR_INVALID_ARG;
  }
  for (size_t i = 0; i < n; i += 2)
    if (!*in[i]) {
      bk_errmsg_set(why, "changelog_configs: an empty config name");
      return BROOK_ERR_INVALID_ARG;
    }
  char **copy = bk_malloc(&s->alloc, (n + 1) * sizeof(char *) + bytes);
  if (!copy) {
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  char *p = (char *)(copy + n + 1);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(in[i]) + 1;
    memcpy(p, in[i], len);
    copy[i] = p;
    p += len;
  }
  copy[n] = NULL;
  s->changelog_configs = copy;
  return BROOK_OK;
}

void bk_store_changelog_fini(brook_store_t *s) {
  bk_free(&s->alloc, s->changelog_configs);
  s->changelog_configs = NULL;
}

int bk_store_logged(const brook_store_t *s) { return !s->changelog_disabled; }

const char *const *bk_store_changelog_configs(const brook_store_t *s) {
  return (const char *const *)s->changelog_configs;
}
