/* Names of internal topics (internal_topic_names.h). */
#include "kafka/internal_topic_names.h"

#include <stdio.h>
#include <string.h>

static int legal(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

/* BROOK_OK if `part` (what = "application id", "node", "store") can be part of a name. */
static brook_err_t check_part(const char *what, const char *part, bk_errmsg_t *why) {
  if (!part || !*part) {
    bk_errmsg_set(why, "internal topic name: the %s is empty", what);
    return BROOK_ERR_INVALID_ARG;
  }
  for (const char *p = part; *p; p++)
    if (!legal(*p)) {
      bk_errmsg_set(why,
                    "internal topic name: the %s '%s' has the character '%c' (0x%02x); Kafka "
                    "topic names allow only letters, digits, '.', '_' and '-': rename it",
                    what, part, *p >= 0x20 && *p < 0x7f ? *p : '?', (unsigned char)*p);
      return BROOK_ERR_INVALID_ARG;
    }
  return BROOK_OK;
}

static brook_err_t finish(char *out, size_t cap, int n, bk_errmsg_t *why) {
  if (n < 0 || (size_t)n >= cap || n > BK_TOPIC_NAME_MAX) {
    bk_errmsg_set(why,
                  "internal topic name: '%.60s...' would have %d characters, more than Kafka's "
                  "%d: use a shorter application id, node or store name",
                  out, n, BK_TOPIC_NAME_MAX);
    return BROOK_ERR_INVALID_ARG;
  }
  return BROOK_OK;
}

brook_err_t bk_changelog_topic(char *out, size_t cap, const char *group, const char *node,
                               const char *store, bk_errmsg_t *why) {
  brook_err_t err;
  if ((err = check_part("application id", group, why)) || (err = check_part("node", node, why)) ||
      (err = check_part("store", store, why)))
    return err;
  return finish(out, cap, snprintf(out, cap, "%s-%s-%s-changelog", group, node, store), why);
}

brook_err_t bk_repartition_topic(char *out, size_t cap, const char *group, const char *node,
                                 bk_errmsg_t *why) {
  brook_err_t err;
  if ((err = check_part("application id", group, why)) || (err = check_part("node", node, why)))
    return err;
  return finish(out, cap, snprintf(out, cap, "%s-%s-repartition", group, node), why);
}
