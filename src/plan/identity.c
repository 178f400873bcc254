/* Stable identities of stateful nodes: derived from the names users give them, so state
 * directories and changelog topics (issue 13) are found again after the topology changes or
 * is rebuilt. The escaping (see plan.h) makes any name a valid file name and Kafka topic
 * name component ([a-zA-Z0-9._-]). */
#include "plan/plan.h"

#include <string.h>

#include "core/alloc.h"

static int kept(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

size_t bk_identity_escape(const char *name, char *out, size_t size) {
  static const char hex[] = "0123456789abcdef";
  size_t len = 0;
  for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
    char esc[3] = {(char)*c, 0, 0};
    size_t n = 1;
    if (!kept(*c)) {
      esc[0] = '.';
      esc[1] = hex[*c >> 4];
      esc[2] = hex[*c & 15];
      n = 3;
    }
    for (size_t k = 0; k < n; k++, len++)
      if (len + 1 < size)
        out[len] = esc[k];
  }
  if (size)
    out[len < size ? len : size - 1] = '\0';
  return len;
}

brook_err_t bk_plan_identities(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg) {
  for (size_t i = 0; i < p->n; i++) {
    bk_plan_node_t *pn = &p->nodes[i];
    if (!pn->stateful)
      continue;
    size_t len = bk_identity_escape(pn->node->name, NULL, 0);
    if (!(pn->identity = bk_malloc(a, len + 1))) {
      bk_errmsg_set(msg, "runtime: out of memory compiling the topology");
      return BROOK_ERR_NOMEM;
    }
    bk_identity_escape(pn->node->name, pn->identity, len + 1);
  }
  return BROOK_OK;
}

/* How a user names each kind of stateful node. */
static const char *how_to_name(const bk_node_t *node) {
  if (node->stateful == BK_STATE_UNDECLARED)
    return "brook_operator_opts_t.name, or brook_stream_set_name() on its output";
  if (node->op.type_name && strncmp(node->op.type_name, "window", 6) == 0)
    return "brook_window_opts_t.name, or brook_stream_set_name() on its output";
  return "brook_aggregate_opts_t.name, or brook_stream_set_name() on its output";
}

brook_err_t bk_plan_check_identities(const bk_plan_t *p, bk_errmsg_t *msg) {
  for (size_t i = 0; i < p->n; i++) {
    const bk_plan_node_t *pn = &p->nodes[i];
    /* A repartition topic is named from the node whose records it carries: a generated name
     * would send a restarted, changed topology to another topic, leaving records behind. */
    const bk_node_t *into =
        pn->node->per_task_sink && pn->node->n_inputs ? pn->node->inputs[0]->node : NULL;
    if (into && into->name_generated) {
      bk_errmsg_set(msg,
                    "'%s' changes the key before a repartition topic but has no name: the "
                    "topic is named from it, and a generated name changes when the topology "
                    "does; name it with brook_stream_set_name() on its output",
                    into->name);
      return BROOK_ERR_INVALID_ARG;
    }
    if (!pn->stateful)
      continue;
    if (pn->node->name_generated) {
      bk_errmsg_set(msg,
                    "'%s' keeps state but has no name: persisted state is found again by "
                    "name, and a generated name changes when the topology does; name it with "
                    "%s",
                    pn->node->name, how_to_name(pn->node));
      return BROOK_ERR_INVALID_ARG;
    }
    size_t len = strlen(pn->identity);
    if (len > BK_IDENTITY_MAX) {
      bk_errmsg_set(msg,
                    "'%.64s...' keeps state and its identity (the escaped name) is %zu "
                    "characters, more than %d: changelog topics are named from it; choose a "
                    "shorter name",
                    pn->node->name, len, BK_IDENTITY_MAX);
      return BROOK_ERR_INVALID_ARG;
    }
  }
  return BROOK_OK;
}
