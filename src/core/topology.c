/* Topology building: nodes, streams, names, the sticky build error, reference counting. */
#include "core/topology.h"
#include "core/opts.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

void brook_topology_opts_init_size(brook_topology_opts_t *opts, size_t size) {
  brook_topology_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.error_policy = BROOK_ON_ERROR_FAIL;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t topology_versions[] = {
    BK_OPTS_VERSION(brook_topology_opts_t, error_policy),
};
static const bk_opts_type_t topology_opts_type =
    BK_OPTS_TYPE(brook_topology_opts_t, topology_versions);

brook_err_t brook_topology_new(brook_topology_t **out, const brook_topology_opts_t *opts) {
  if (!out)
    return BROOK_ERR_INVALID_ARG;
  *out = NULL;
  brook_topology_opts_t o;
  brook_topology_opts_init(&o);
  bk_errmsg_t why;
  brook_err_t err = bk_opts_copy(&o, sizeof(o), opts, &topology_opts_type, &why);
  if (!err && (unsigned)o.error_policy > BROOK_ON_ERROR_ROUTE) {
    err = BROOK_ERR_INVALID_ARG;
    bk_errmsg_set(&why, "unknown error_policy %d", (int)o.error_policy);
  }
  const brook_allocator_t *a = o.allocator ? o.allocator : bk_default_allocator();
  if (!err && (!a->alloc || !a->realloc || !a->free)) {
    err = BROOK_ERR_INVALID_ARG;
    bk_errmsg_set(&why, "the allocator needs alloc, realloc and free");
  }
  /* Refused options still give a topology (on malloc), as SQLite's open does: it is the
   * only place the message can live. It holds the error, so it never runs. */
  if (err)
    a = bk_default_allocator();
  brook_topology_t *t = bk_calloc(a, 1, sizeof(*t));
  if (!t)
    return err ? err : BROOK_ERR_NOMEM;
  t->alloc = *a;
  t->error_policy = err ? BROOK_ON_ERROR_FAIL : o.error_policy;
  t->refs = 1;
  if (err)
    bk_topology_fail(t, err, "topology_new: %s", why.text);
  *out = t;
  return err;
}

static void node_free(brook_topology_t *t, bk_node_t *n) {
  const brook_allocator_t *a = &t->alloc;
  if (n->opaque_free)
    n->opaque_free(n->opaque, a);
  if (n->source_type && n->source_type->cfg_free && n->source_cfg)
    n->source_type->cfg_free(n->source_cfg, a);
  bk_free(a, n->wm_opts);
  if (n->config) {
    for (char **c = n->config; *c; c++)
      bk_free(a, *c);
    bk_free(a, n->config);
  }
  for (size_t i = 0; i < n->n_outputs; i++)
    bk_free(a, n->outputs[i].consumers);
  bk_free(a, n->outputs);
  bk_free(a, n->inputs);
  bk_free(a, n->name);
  bk_free(a, n);
}

static void topology_destroy(brook_topology_t *t) {
  for (size_t i = 0; i < t->n_nodes; i++)
    node_free(t, t->nodes[i]);
  brook_allocator_t a = t->alloc;
  bk_free(&a, t->nodes);
  bk_free(&a, t);
}

void bk_topology_ref(brook_topology_t *t) { t->refs++; }

void bk_topology_unref(brook_topology_t *t) {
  if (--t->refs == 0)
    topology_destroy(t);
}

void brook_topology_free(brook_topology_t *t) {
  if (t)
    bk_topology_unref(t);
}

brook_err_t bk_topology_fail(brook_topology_t *t, brook_err_t err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bk_errmsg_vset(&t->msg, fmt, ap);
  va_end(ap);
  if (t->build_err == BROOK_OK) {
    t->build_err = err;
    t->build_msg = t->msg;
  }
  return err;
}

brook_err_t bk_topology_check_open(brook_topology_t *t, const char *what) {
  if (t->frozen) {
    /* Not sticky: the topology itself is fine, the call came too late. */
    bk_errmsg_set(&t->msg, "%s: cannot add to a topology after a runtime was created from it",
                  what);
    return BROOK_ERR_FROZEN;
  }
  return BROOK_OK;
}

brook_err_t brook_topology_set_error_policy(brook_topology_t *t, brook_error_policy_t policy) {
  if (!t)
    return BROOK_ERR_INVALID_ARG;
  brook_err_t err = bk_topology_check_open(t, "set_error_policy");
  if (err)
    return err;
  if ((unsigned)policy > BROOK_ON_ERROR_ROUTE)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "set_error_policy: unknown policy %d",
                            (int)policy);
  t->error_policy = policy;
  return BROOK_OK;
}

brook_err_t brook_topology_error(const brook_topology_t *t) {
  return t ? t->build_err : BROOK_ERR_INVALID_ARG;
}

const char *brook_topology_last_error(const brook_topology_t *t) {
  return t ? t->msg.text : "no topology";
}

brook_topology_t *brook_stream_topology(const brook_stream_t *s) {
  return s ? s->node->topo : NULL;
}

bk_node_t *bk_topology_find(const brook_topology_t *t, const char *name) {
  for (size_t i = 0; i < t->n_nodes; i++)
    if (strcmp(t->nodes[i]->name, name) == 0)
      return t->nodes[i];
  return NULL;
}

#define ERRORS_NODE_NAME "errors"

static int name_reserved(bk_node_kind_t kind, const char *name) {
  return kind != BK_NODE_ERRORS && strcmp(name, ERRORS_NODE_NAME) == 0;
}

const char *brook_stream_name(const brook_stream_t *s) { return s ? s->node->name : NULL; }

brook_stream_t *brook_stream_set_name(brook_stream_t *s, const char *name) {
  if (!s)
    return NULL;
  brook_topology_t *t = s->node->topo;
  if (bk_topology_check_open(t, "stream_set_name"))
    return NULL;
  if (!name || !*name) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "stream_set_name: empty name");
    return NULL;
  }
  bk_node_t *other = bk_topology_find(t, name);
  if (other == s->node)
    return s;
  if (name_reserved(s->node->kind, name)) {
    bk_topology_fail(t, BROOK_ERR_DUPLICATE,
                     "stream_set_name: the name '%s' is reserved for the error stream", name);
    return NULL;
  }
  if (other) {
    bk_topology_fail(t, BROOK_ERR_DUPLICATE, "stream_set_name: name '%s' is already taken", name);
    return NULL;
  }
  char *copy = bk_strdup(&t->alloc, name);
  if (!copy) {
    bk_topology_fail(t, BROOK_ERR_NOMEM, "stream_set_name: out of memory");
    return NULL;
  }
  bk_free(&t->alloc, s->node->name);
  s->node->name = copy;
  s->node->name_generated = 0;
  return s;
}

brook_err_t brook_stream_set_partitions(brook_stream_t *s, uint32_t n) {
  if (!s)
    return BROOK_ERR_INVALID_ARG;
  brook_topology_t *t = s->node->topo;
  brook_err_t err = bk_topology_check_open(t, "stream_set_partitions");
  if (err)
    return err;
  if (!s->node->rekeys && !s->node->key_changing)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "stream_set_partitions: '%s' does not change the key; only the "
                            "stream of a key_by (or of a key change repartitioned before "
                            "state) starts new tasks",
                            s->node->name);
  if (n == 0 || n > BROOK_MAX_PARTITIONS)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "stream_set_partitions: '%s': %u partitions, expected 1..%u",
                            s->node->name, (unsigned)n, (unsigned)BROOK_MAX_PARTITIONS);
  s->node->partitions = n;
  return BROOK_OK;
}

/* Creates a node with `n_outputs` ports and a unique name; NULL (error recorded) on failure. */
static bk_node_t *node_new(brook_topology_t *t, bk_node_kind_t kind, const char *name,
                           const char *kind_name, size_t n_outputs, brook_err_t *err) {
  const brook_allocator_t *a = &t->alloc;
  if (name && name_reserved(kind, name)) {
    *err = bk_topology_fail(t, BROOK_ERR_DUPLICATE,
                            "%s: the name '%s' is reserved for the error stream", kind_name, name);
    return NULL;
  }
  if (name && bk_topology_find(t, name)) {
    *err =
        bk_topology_fail(t, BROOK_ERR_DUPLICATE, "%s: name '%s' is already taken", kind_name, name);
    return NULL;
  }
  if (bk_grow(a, (void **)&t->nodes, &t->cap_nodes, t->n_nodes + 1, sizeof(*t->nodes)))
    goto nomem;
  bk_node_t *n = bk_calloc(a, 1, sizeof(*n));
  if (!n)
    goto nomem;
  n->kind = kind;
  n->id = t->n_nodes;
  n->topo = t;
  if (name) {
    n->name = bk_strdup(a, name);
  } else {
    char buf[96];
    snprintf(buf, sizeof(buf), "%s#%zu", kind_name, t->n_nodes);
    n->name = bk_strdup(a, buf);
    n->name_generated = 1;
  }
  n->outputs = n_outputs ? bk_calloc(a, n_outputs, sizeof(*n->outputs)) : NULL;
  if (!n->name || (n_outputs && !n->outputs)) {
    bk_free(a, n->outputs);
    bk_free(a, n->name);
    bk_free(a, n);
    goto nomem;
  }
  n->n_outputs = n_outputs;
  for (size_t i = 0; i < n_outputs; i++) {
    n->outputs[i].node = n;
    n->outputs[i].port = i;
  }
  t->nodes[t->n_nodes++] = n;
  return n;
nomem:
  *err = bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", kind_name);
  return NULL;
}

brook_err_t bk_node_add_input(bk_node_t *node, brook_stream_t *in) {
  brook_topology_t *t = node->topo;
  const brook_allocator_t *a = &t->alloc;
  if (in->node->topo != t)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "%s: input stream '%s' belongs to another topology", node->name,
                            in->node->name);
  if (bk_grow(a, (void **)&node->inputs, &node->cap_inputs, node->n_inputs + 1,
              sizeof(*node->inputs)) ||
      bk_grow(a, (void **)&in->consumers, &in->cap_consumers, in->n_consumers + 1,
              sizeof(*in->consumers)))
    return bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", node->name);
  in->consumers[in->n_consumers].node = node;
  in->consumers[in->n_consumers].input = node->n_inputs;
  in->n_consumers++;
  node->inputs[node->n_inputs++] = in;
  return BROOK_OK;
}

static char **config_copy(const brook_allocator_t *a, const char *const *config, int *failed) {
  *failed = 0;
  if (!config)
    return NULL;
  size_t n = 0;
  while (config[n])
    n++;
  char **c = bk_calloc(a, n + 1, sizeof(*c));
  if (!c)
    goto fail;
  for (size_t i = 0; i < n; i++) {
    if (!(c[i] = bk_strdup(a, config[i]))) {
      for (size_t j = 0; j < i; j++)
        bk_free(a, c[j]);
      bk_free(a, c);
      goto fail;
    }
  }
  return c;
fail:
  *failed = 1;
  return NULL;
}

/* The size of each version of brook_operator_t: the table only grows by appending. */
static const size_t op_table_size[] = {
    [1] = offsetof(brook_operator_t, on_timer),
    [2] = sizeof(brook_operator_t),
};
_Static_assert(sizeof(op_table_size) / sizeof(op_table_size[0]) == BROOK_OPERATOR_VERSION + 1,
               "a new operator table version needs its size here");

/* What is wrong with an operator's table and outputs, or NULL. Formats into *buf. */
static const char *operator_problem(const brook_operator_t *op, size_t n_outputs,
                                    brook_stream_t **outputs, bk_errmsg_t *buf) {
  if (!op)
    return "the operator table is NULL";
  if (op->version < 1 || op->version > BROOK_OPERATOR_VERSION) {
    bk_errmsg_set(buf, "operator table version %u is not one this library knows (1 to %d)",
                  op->version, BROOK_OPERATOR_VERSION);
    return buf->text;
  }
  if (!op->process && !op->process_batch)
    return "a process or process_batch callback is required";
  if (n_outputs > BROOK_OPERATOR_MAX_OUTPUTS) {
    bk_errmsg_set(buf, "n_outputs %zu is more than BROOK_OPERATOR_MAX_OUTPUTS (%d)", n_outputs,
                  BROOK_OPERATOR_MAX_OUTPUTS);
    return buf->text;
  }
  if (n_outputs && !outputs) {
    bk_errmsg_set(buf, "outputs array is NULL for %zu outputs", n_outputs);
    return buf->text;
  }
  return NULL;
}

brook_err_t bk_topology_add_operator(brook_stream_t *const *inputs, size_t n_inputs,
                                     const brook_operator_t *op, void *opaque,
                                     void (*opaque_free)(void *, const brook_allocator_t *),
                                     const char *name, const char *const *config, size_t n_outputs,
                                     brook_stream_t **outputs) {
  brook_topology_t *t = NULL;
  for (size_t i = 0; i < n_inputs && !t; i++)
    t = inputs[i] ? inputs[i]->node->topo : NULL;
  const char *what = op && op->type_name ? op->type_name : "operator";
  brook_err_t err = BROOK_ERR_INVALID_ARG;
  bk_errmsg_t why;
  if (!t) /* no usable input: nowhere to record the error (an upstream call already did) */
    goto fail_untracked;
  for (size_t i = 0; i < n_inputs; i++) {
    if (!inputs[i]) {
      err = bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "%s: input %zu is NULL", what, i);
      goto fail_untracked;
    }
  }
  if ((err = bk_topology_check_open(t, what)))
    goto fail_untracked;
  const char *problem = operator_problem(op, n_outputs, outputs, &why);
  if (problem) {
    err = bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "%s: %s", what, problem);
    goto fail_untracked;
  }
  bk_node_t *n = node_new(t, BK_NODE_OPERATOR, name, what, n_outputs, &err);
  if (!n)
    goto fail_untracked;
  /* From here the node owns opaque: freeing the topology frees it. */
  /* An older table ends early: copy only what the caller's struct has. */
  memset(&n->op, 0, sizeof(n->op));
  memcpy(&n->op, op, op_table_size[op->version]);
  n->op.version = BROOK_OPERATOR_VERSION;
  n->opaque = opaque;
  n->opaque_free = opaque_free;
  int failed;
  n->config = config_copy(&t->alloc, config, &failed);
  if (failed)
    return bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", what);
  for (size_t i = 0; i < n_inputs; i++)
    if ((err = bk_node_add_input(n, inputs[i])))
      return err;
  for (size_t i = 0; i < n_outputs; i++)
    outputs[i] = &n->outputs[i];
  return BROOK_OK;
fail_untracked:
  if (opaque_free)
    opaque_free(opaque, t ? &t->alloc : bk_default_allocator());
  return err;
}

brook_stream_t *bk_topology_add_source(brook_topology_t *t, const bk_source_type_t *type, void *cfg,
                                       const char *name) {
  bk_node_t *n = NULL;
  brook_err_t err;
  if (!bk_topology_check_open(t, type->kind))
    n = node_new(t, BK_NODE_SOURCE, name, type->kind, 1, &err);
  if (!n) {
    if (cfg && type->cfg_free)
      type->cfg_free(cfg, &t->alloc);
    return NULL;
  }
  n->source_type = type;
  n->source_cfg = cfg;
  return &n->outputs[0];
}

brook_stream_t *brook_error_stream(brook_topology_t *t) {
  if (!t)
    return NULL;
  if (t->errors_node)
    return &t->errors_node->outputs[0];
  if (bk_topology_check_open(t, "error_stream"))
    return NULL;
  brook_err_t err;
  bk_node_t *n = node_new(t, BK_NODE_ERRORS, ERRORS_NODE_NAME, "errors", 1, &err);
  if (!n)
    return NULL;
  t->errors_node = n;
  return &n->outputs[0];
}
