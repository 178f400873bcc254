/* Setting up a worker's exchanges from the plan (exchange_impl.h): one definition per
 * by-key exchange (plan.exchanges) and per gather (plan.gathers), the routes of the ports
 * they leave by, the exchange feeding each input, the rings; and freeing them. */
#include <string.h>

#include "core/alloc.h"
#include "runtime/exchange_impl.h"

/* The task count behind a by-key exchange: its target sub-topology's, or one task per worker
 * while the count is unresolved (a source that learns its partitions at run time; those
 * cannot feed a key change with N workers in this version, runtime.c). */
static uint32_t exchange_tasks(const bk_plan_t *plan, const bk_exchange_t *e, size_t n_workers) {
  uint32_t n = plan->subs[e->to_sub].tasks;
  return n ? n : (uint32_t)n_workers;
}

/* 1 if consumer `c` of (from, port) is fed by a gather rather than the by-key exchange. */
static int gathered(const bk_plan_t *plan, const bk_node_t *from, size_t port,
                    const bk_consumer_t *c) {
  for (size_t g = 0; g < plan->n_gathers; g++) {
    const bk_gather_t *ga = &plan->gathers[g];
    if (ga->from == from && ga->port == port && ga->to == c->node && ga->input == c->input)
      return 1;
  }
  return 0;
}

/* Fills def d's targets: the consumers of its port that it feeds. */
static brook_err_t def_targets(const bk_plan_t *plan, const brook_allocator_t *a, xdef_t *d,
                               const bk_gather_t *g) {
  const brook_stream_t *s = &plan->order[d->from_pos]->outputs[d->port];
  if (!(d->to = bk_calloc(a, s->n_consumers ? s->n_consumers : 1, sizeof(*d->to))))
    return BROOK_ERR_NOMEM;
  for (size_t k = 0; k < s->n_consumers; k++) {
    const bk_consumer_t *c = &s->consumers[k];
    int mine = g ? c->node == g->to && c->input == g->input : !gathered(plan, s->node, d->port, c);
    if (mine)
      d->to[d->n_to++] = k;
  }
  return BROOK_OK;
}

static brook_err_t build_defs(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  const brook_allocator_t *a = &rt->alloc;
  const bk_plan_t *plan = &rt->plan;
  bk_xchg_worker_t *x = w->xchg;
  size_t nw = rt->n_workers;
  for (size_t e = 0; e < plan->n_exchanges; e++) {
    xdef_t *d = &x->defs[e];
    d->from_pos = plan->pos[plan->exchanges[e].from->id];
    d->port = plan->exchanges[e].port;
    d->n_tasks = exchange_tasks(plan, &plan->exchanges[e], nw);
    d->task_worker = bk_calloc(a, d->n_tasks, sizeof(*d->task_worker));
    d->scratch = bk_calloc(a, 1, sizeof(*d->scratch));
    if (!d->task_worker || !d->scratch)
      return BROOK_ERR_NOMEM;
    size_t run = 4096 / nw; /* at most 8 KiB of buckets */
    d->scratch->run = run > XCHG_RUN ? XCHG_RUN : run < 16 ? 16 : run;
    d->scratch->count = bk_calloc(a, nw, sizeof(size_t));
    d->scratch->bucket = bk_calloc(a, nw * d->scratch->run, sizeof(uint16_t));
    if (!d->scratch->count || !d->scratch->bucket || def_targets(plan, a, d, NULL))
      return BROOK_ERR_NOMEM;
    for (uint32_t t = 0; t < d->n_tasks; t++) /* a task's worker does not depend on keys */
      d->task_worker[t] = (uint16_t)(t % nw);
  }
  for (size_t g = 0; g < plan->n_gathers; g++) {
    xdef_t *d = &x->defs[plan->n_exchanges + g];
    d->from_pos = plan->pos[plan->gathers[g].from->id];
    d->port = plan->gathers[g].port;
    d->gather = 1;
    if (def_targets(plan, a, d, &plan->gathers[g]))
      return BROOK_ERR_NOMEM;
  }
  return BROOK_OK;
}

/* The routes of every port an exchange leaves by, and the exchange feeding each input. */
static brook_err_t build_routes(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  const brook_allocator_t *a = &rt->alloc;
  const bk_plan_t *plan = &rt->plan;
  bk_xchg_worker_t *x = w->xchg;
  size_t n_in = 0;
  for (size_t i = 0; i < plan->n; i++) {
    x->in_off[i] = n_in;
    n_in += plan->order[i]->n_inputs;
  }
  if (!(x->in_x = bk_calloc(a, n_in ? n_in : 1, sizeof(*x->in_x))))
    return BROOK_ERR_NOMEM;
  for (size_t k = 0; k < n_in; k++)
    x->in_x[k] = -1;
  for (size_t xi = 0; xi < x->n_x; xi++) {
    const xdef_t *d = &x->defs[xi];
    const bk_node_t *from = plan->order[d->from_pos];
    xroute_t **r = &x->routes[d->from_pos];
    if (!*r && !(*r = bk_calloc(a, from->n_outputs, sizeof(**r))))
      return BROOK_ERR_NOMEM;
    xroute_t *route = &(*r)[d->port];
    if (!route->routed) {
      route->routed = 1;
      route->key_x = -1;
      size_t n = from->outputs[d->port].n_consumers;
      route->gathers = bk_calloc(a, n ? n : 1, sizeof(*route->gathers));
      route->local = bk_calloc(a, n ? n : 1, sizeof(*route->local));
      if (!route->gathers || !route->local)
        return BROOK_ERR_NOMEM;
    }
    if (d->gather)
      route->gathers[route->n_gathers++] = (uint32_t)xi;
    else if (d->n_to) /* consumers all once nodes: nothing goes by key */
      route->key_x = (int)xi;
    const brook_stream_t *s = &from->outputs[d->port];
    for (size_t j = 0; j < d->n_to; j++) {
      const bk_consumer_t *c = &s->consumers[d->to[j]];
      x->in_x[x->in_off[plan->pos[c->node->id]] + c->input] = (int)xi;
    }
  }
  /* What no exchange takes is delivered directly: a port's other consumers. */
  for (size_t i = 0; i < plan->n; i++) {
    for (size_t p = 0; x->routes[i] && p < plan->order[i]->n_outputs; p++) {
      xroute_t *route = &x->routes[i][p];
      const brook_stream_t *s = &plan->order[i]->outputs[p];
      for (size_t k = 0; route->routed && k < s->n_consumers; k++)
        if (x->in_x[x->in_off[plan->pos[s->consumers[k].node->id]] + s->consumers[k].input] < 0)
          route->local[route->n_local++] = k;
    }
  }
  return BROOK_OK;
}

brook_err_t bk_xchg_worker_init(bk_worker_t *w) {
  brook_runtime_t *rt = w->rt;
  const brook_allocator_t *a = &rt->alloc;
  const bk_plan_t *plan = &rt->plan;
  size_t nw = rt->n_workers, n_x = plan->n_exchanges + plan->n_gathers;
  if (nw == 1 || n_x == 0)
    return BROOK_OK;
  bk_xchg_worker_t *x = bk_calloc(a, 1, sizeof(*x));
  if (!x)
    return BROOK_ERR_NOMEM;
  w->xchg = x;
  x->n_x = n_x;
  x->defs = bk_calloc(a, n_x, sizeof(*x->defs));
  x->routes = bk_calloc(a, plan->n, sizeof(*x->routes));
  x->in_off = bk_calloc(a, plan->n, sizeof(*x->in_off));
  x->in = bk_calloc(a, nw, sizeof(*x->in));
  x->back = bk_calloc(a, nw, sizeof(*x->back));
  x->filling = bk_calloc(a, n_x * nw, sizeof(*x->filling));
  x->wait_head = bk_calloc(a, nw, sizeof(*x->wait_head));
  x->wait_tail = bk_calloc(a, nw, sizeof(*x->wait_tail));
  x->wake = bk_calloc(a, nw, sizeof(*x->wake));
  x->xin = bk_calloc(a, n_x * nw, sizeof(*x->xin));
  x->sent = bk_calloc(a, n_x, sizeof(*x->sent));
  atomic_init(&x->want_space, 0);
  if (!x->defs || !x->routes || !x->in_off || !x->in || !x->back || !x->filling || !x->wait_head ||
      !x->wait_tail || !x->wake || !x->xin || !x->sent)
    return BROOK_ERR_NOMEM;
  brook_err_t err;
  if ((err = build_defs(w)) || (err = build_routes(w)))
    return err;
  for (size_t k = 0; k < n_x * nw; k++)
    x->xin[k] = (xin_t){BROOK_TIME_MIN, BK_WM_ACTIVE, 0};
  for (size_t k = 0; k < n_x; k++)
    x->sent[k] = (xsent_t){BROOK_TIME_MIN, BK_WM_ACTIVE, 0};
  for (size_t s = 0; s < nw; s++)
    if (s != w->index && (bk_spsc_init(&x->in[s], a, XCHG_RING_CHUNKS) ||
                          bk_spsc_init(&x->back[s], a, XCHG_BACK_CHUNKS)))
      return BROOK_ERR_NOMEM;
  return BROOK_OK;
}

static void free_tables(bk_xchg_worker_t *x, const bk_plan_t *plan, const brook_allocator_t *a) {
  for (size_t xi = 0; x->defs && xi < x->n_x; xi++) {
    xdef_t *d = &x->defs[xi];
    bk_free(a, d->task_worker);
    bk_free(a, d->to);
    if (d->scratch) {
      bk_free(a, d->scratch->count);
      bk_free(a, d->scratch->bucket);
      bk_free(a, d->scratch);
    }
  }
  for (size_t i = 0; x->routes && i < plan->n; i++) {
    for (size_t p = 0; x->routes[i] && p < plan->order[i]->n_outputs; p++) {
      bk_free(a, x->routes[i][p].gathers);
      bk_free(a, x->routes[i][p].local);
    }
    bk_free(a, x->routes[i]);
  }
  bk_free(a, x->defs);
  bk_free(a, x->routes);
  bk_free(a, x->in_off);
  bk_free(a, x->in_x);
}

void bk_xchg_worker_free(bk_worker_t *w) {
  bk_xchg_worker_t *x = w->xchg;
  if (!x)
    return;
  const brook_allocator_t *a = &w->rt->alloc;
  size_t nw = w->rt->n_workers;
  bk_spsc_t *rings[2] = {x->in, x->back};
  for (size_t r = 0; r < 2; r++) {
    for (size_t s = 0; rings[r] && s < nw; s++) {
      if (!rings[r][s].slots)
        continue;
      void *c;
      while ((c = bk_spsc_pop(&rings[r][s])))
        bk_free(a, c);
      bk_spsc_free(&rings[r][s], a);
    }
  }
  for (size_t k = 0; x->filling && k < x->n_x * nw; k++)
    bk_free(a, x->filling[k]);
  for (size_t to = 0; x->wait_head && to < nw; to++) {
    while (x->wait_head[to]) {
      xchunk_t *c = x->wait_head[to];
      x->wait_head[to] = c->next;
      bk_free(a, c);
    }
  }
  free_tables(x, &w->rt->plan, a);
  bk_free(a, x->in);
  bk_free(a, x->back);
  bk_free(a, x->filling);
  bk_free(a, x->wait_head);
  bk_free(a, x->wait_tail);
  bk_free(a, x->wake);
  bk_free(a, x->xin);
  bk_free(a, x->sent);
  bk_free(a, x);
  w->xchg = NULL;
}
