/* brook_topology_describe: the physical plan as stable text (format in
 * include/brook/topology.h). Only what the plan decides is printed (no addresses, no
 * options), so the text changes only when the plan does. */
#include "plan/plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct out {
  char *buf;
  size_t size, len; /* len: the full length, also past what fits */
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = o->len < o->size ? o->size - o->len : 0;
  int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    o->len += (size_t)n;
}

static const char *place_name(bk_placement_t place) {
  switch (place) {
  case BK_PLACE_TASK:
    return "per-task";
  case BK_PLACE_WORKER:
    return "per-worker";
  case BK_PLACE_ONCE:
    return "once";
  }
  return "?";
}

static void put_tasks(out_t *o, const bk_plan_t *p, size_t k) {
  const bk_subtopology_t *s = &p->subs[k];
  int any_task = 0;
  for (size_t i = 0; i < p->n && !any_task; i++)
    any_task = p->nodes[i].sub == k && p->nodes[i].place == BK_PLACE_TASK;
  if (!any_task) {
    put(o, "no tasks");
    return;
  }
  if (s->explicit_by) {
    put(o, "tasks=%u (set on '%s')", (unsigned)s->tasks, s->explicit_by->name);
    return;
  }
  if (s->tasks) {
    put(o, "tasks=%u", (unsigned)s->tasks);
    return;
  }
  /* Not resolved: the largest of what is known and the partitions still to come. */
  uint32_t known = s->fixed;
  size_t unknown = 0;
  for (size_t j = 0; j < s->n_inherit; j++) {
    uint32_t m = p->splits[s->inherit[j]];
    unknown += m == 0;
    known = m > known ? m : known;
  }
  int many = unknown + (known > 1) > 1;
  put(o, "tasks=%s", many ? "max(" : "");
  const char *sep = "";
  if (known > 1) {
    put(o, "%u", (unsigned)known);
    sep = ", ";
  }
  for (size_t j = 0; j < s->n_inherit; j++) {
    if (p->splits[s->inherit[j]] == 0) {
      put(o, "%spartitions('%s')", sep, p->order[s->inherit[j]]->name);
      sep = ", ";
    }
  }
  put(o, "%s", many ? ")" : "");
}

static void put_kind(out_t *o, const bk_node_t *node) {
  switch (node->kind) {
  case BK_NODE_SOURCE:
    put(o, "source '%s' [%s]", node->name, node->source_type->kind);
    break;
  case BK_NODE_ERRORS:
    put(o, "errors '%s' [errors]", node->name);
    break;
  case BK_NODE_OPERATOR:
    put(o, "%s '%s' [%s]", node->n_outputs ? "operator" : "sink", node->name,
        node->op.type_name ? node->op.type_name : "operator");
    break;
  }
}

static void put_node(out_t *o, const bk_plan_t *p, size_t i) {
  const bk_plan_node_t *pn = &p->nodes[i];
  const bk_node_t *node = pn->node;
  put(o, "  ");
  put_kind(o, node);
  put(o, " %s", place_name(pn->place));
  if (node->kind == BK_NODE_SOURCE) {
    if (p->splits[i])
      put(o, " splits=%u", (unsigned)p->splits[i]);
    else
      put(o, " splits=partitions");
    /* An in-process source partitioned by key (brook/source.h): its splits are partitions. */
    if (node->source_type->partitioned && node->splits)
      put(o, " by key: split = murmur2(key) %% splits");
  }
  if (pn->stateful)
    put(o, " state=%s%s", pn->identity, node->name_generated ? " (generated name)" : "");
  for (size_t k = 0; k < node->n_inputs; k++) {
    const brook_stream_t *in = node->inputs[k];
    put(o, "%s'%s'", k ? ", " : " <- ", in->node->name);
    if (in->node->n_outputs > 1)
      put(o, "[%zu]", in->port);
  }
  for (size_t e = 0; pn->rekeys && e < p->n_exchanges; e++) {
    const bk_exchange_t *x = &p->exchanges[e];
    if (x->from != node)
      continue;
    put(o, " => exchange");
    if (node->n_outputs > 1)
      put(o, "[%zu]", x->port);
    put(o, " to sub-topology %zu", x->to_sub);
  }
  put(o, "\n");
}

/* The fused line headed by plan position i, `len` operators long. */
static void put_line(out_t *o, const bk_plan_t *p, size_t i, size_t len, int local_exchanges) {
  put(o, "  fused:");
  const bk_node_t *n = p->order[i];
  for (size_t k = 0; k < len && n; k++, n = bk_plan_fused_next(p, n, local_exchanges))
    put(o, "%s'%s'", k ? " -> " : " ", n->name);
  put(o, "\n");
}

/* Lines that a runtime of one worker fuses past a re-keying node (its exchange stays on it). */
static void put_local_lines(out_t *o, const bk_plan_t *p) {
  int any = 0;
  for (size_t i = 0; i < p->n; i++) {
    const bk_plan_node_t *pn = &p->nodes[i];
    if (pn->fuse_len_local < 2 || pn->fuse_len_local == pn->fuse_len)
      continue;
    if (!any)
      put(o, "with one worker (exchanges stay on it):\n");
    any = 1;
    put_line(o, p, i, pn->fuse_len_local, 1);
  }
}

/* An exchange by key into its sub-topology; an automatic one says which key change made it
 * and which stateful node reads it. */
static void put_exchange(out_t *o, const bk_plan_t *p, const bk_exchange_t *x) {
  put(o, "  exchange from '%s'", x->from->name);
  if (x->from->n_outputs > 1)
    put(o, "[%zu]", x->port);
  put(o, ": task = murmur2(key) %% tasks");
  if (x->kind == BK_REKEY_AUTO)
    put(o, ", repartition (key changed by '%s', before stateful '%s')", x->from->name,
        p->nodes[p->pos[x->from->id]].rekey_for->name);
  put(o, "\n");
}

/* A gather: one target task, the once node's instance on worker 0. */
static void put_gather(out_t *o, const bk_gather_t *g) {
  put(o, "  exchange into '%s' from '%s'", g->to->name, g->from->name);
  if (g->from->n_outputs > 1)
    put(o, "[%zu]", g->port);
  put(o, ": every record to its one instance (worker 0)\n");
}

size_t bk_plan_describe(const bk_plan_t *p, char *buf, size_t size) {
  out_t o = {buf, size, 0};
  size_t n_x = p->n_exchanges + p->n_gathers;
  put(&o, "brook plan: %zu sub-topolog%s, %zu exchange%s\n", p->n_subs,
      p->n_subs == 1 ? "y" : "ies", n_x, n_x == 1 ? "" : "s");
  for (size_t k = 0; k < p->n_subs; k++) {
    put(&o, "sub-topology %zu: ", k);
    put_tasks(&o, p, k);
    put(&o, "\n");
    for (size_t e = 0; e < p->n_exchanges; e++)
      if (p->exchanges[e].to_sub == k)
        put_exchange(&o, p, &p->exchanges[e]);
    for (size_t g = 0; g < p->n_gathers; g++)
      if (p->nodes[p->pos[p->gathers[g].to->id]].sub == k)
        put_gather(&o, &p->gathers[g]);
    for (size_t i = 0; i < p->n; i++)
      if (p->nodes[i].sub == k)
        put_node(&o, p, i);
    for (size_t i = 0; i < p->n; i++)
      if (p->nodes[i].sub == k && p->nodes[i].fuse_len > 1)
        put_line(&o, p, i, p->nodes[i].fuse_len, 0);
  }
  put_local_lines(&o, p);
  if (size)
    buf[o.len < size ? o.len : size - 1] = '\0';
  return o.len;
}

brook_err_t brook_topology_describe(brook_topology_t *t, char *buf, size_t size, size_t *len) {
  if (len)
    *len = 0;
  if (!t || (!buf && size))
    return BROOK_ERR_INVALID_ARG;
  bk_plan_t plan;
  brook_err_t err = bk_plan_build(&plan, t);
  if (err)
    return err;
  size_t n = bk_plan_describe(&plan, buf, size);
  bk_plan_free(&plan, &t->alloc);
  if (len)
    *len = n;
  return BROOK_OK;
}
