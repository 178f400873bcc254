/* Watermark strategies (bounded out-of-orderness, monotonous, custom), idleness and the
 * quiet-stream advance, per split; and the public brook_source_set_watermark. */
#include "time/watermark.h"

#include <string.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "core/topology.h"

/* How often a quiet split's watermark is moved forward while it stays quiet (ms). */
#define BK_QUIET_TICK_MS 100

void brook_watermark_opts_init(brook_watermark_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->struct_size = sizeof(*opts);
}

static const bk_opts_version_t watermark_versions[] = {
    BK_OPTS_VERSION(brook_watermark_opts_t, advance_when_quiet),
};
static const bk_opts_type_t watermark_opts_type =
    BK_OPTS_TYPE(brook_watermark_opts_t, watermark_versions);

const brook_watermark_opts_t *bk_wm_default_opts(void) {
  static const brook_watermark_opts_t defaults = {.struct_size = sizeof(defaults)};
  return &defaults;
}

brook_err_t brook_source_set_watermark(brook_stream_t *source, const brook_watermark_opts_t *opts) {
  if (!source)
    return BROOK_ERR_INVALID_ARG;
  brook_topology_t *t = source->node->topo;
  brook_err_t err = bk_topology_check_open(t, "source_set_watermark");
  if (err)
    return err;
  if (source->node->kind != BK_NODE_SOURCE)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_set_watermark: '%s' is not a source",
                            source->node->name);
  brook_watermark_opts_t o;
  brook_watermark_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &watermark_opts_type, &why))
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_set_watermark: %s", why.text);
  if (o.max_delay < 0 || o.idle_timeout < 0 || o.advance_when_quiet < 0)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "source_set_watermark('%s'): max_delay, idle_timeout and "
                            "advance_when_quiet must be >= 0",
                            source->node->name);
  if (o.kind != BROOK_WATERMARK_BOUNDED && o.kind != BROOK_WATERMARK_MONOTONOUS &&
      o.kind != BROOK_WATERMARK_CUSTOM)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_set_watermark('%s'): unknown kind %d",
                            source->node->name, (int)o.kind);
  if (o.kind == BROOK_WATERMARK_CUSTOM && !o.custom)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "source_set_watermark('%s'): CUSTOM needs a custom callback",
                            source->node->name);
  if (o.kind == BROOK_WATERMARK_MONOTONOUS)
    o.max_delay = 0;
  brook_watermark_opts_t *copy = source->node->wm_opts;
  if (!copy && !(copy = bk_malloc(&t->alloc, sizeof(*copy))))
    return bk_topology_fail(t, BROOK_ERR_NOMEM, "source_set_watermark: out of memory");
  *copy = o;
  source->node->wm_opts = copy;
  return BROOK_OK;
}

void bk_wm_gen_init(bk_wm_gen_t *g, const brook_allocator_t *alloc,
                    const brook_watermark_opts_t *opts) {
  memset(g, 0, sizeof(*g));
  g->alloc = alloc;
  g->opts = opts ? opts : bk_wm_default_opts();
  g->wm = BROOK_TIME_MIN;
}

void bk_wm_gen_start(bk_wm_gen_t *g, brook_time_t now) { g->started = now; }

void bk_wm_gen_free(bk_wm_gen_t *g) {
  bk_free(g->alloc, g->splits);
  g->splits = NULL;
  g->n_splits = g->cap_splits = 0;
}

bk_wm_split_t *bk_wm_split(bk_wm_gen_t *g, size_t split, brook_time_t now) {
  if (split < g->n_splits) {
    bk_wm_split_t *s = &g->splits[split];
    if (!s->present) { /* a number skipped earlier: it starts now */
      s->present = 1;
      s->last_arrival = now;
    }
    return s;
  }
  if (bk_grow(g->alloc, (void **)&g->splits, &g->cap_splits, split + 1, sizeof(*g->splits)))
    return NULL;
  for (size_t i = g->n_splits; i <= split; i++)
    g->splits[i] = (bk_wm_split_t){.max_ts = BROOK_TIME_MIN,
                                   .wm = BROOK_TIME_MIN,
                                   .wm_at_last = BROOK_TIME_MIN,
                                   .last_arrival = now,
                                   .present = i == split};
  g->n_splits = split + 1;
  return &g->splits[split];
}

void bk_wm_split_retire(bk_wm_gen_t *g, size_t split) {
  if (split < g->n_splits) {
    g->splits[split].present = 0;
    g->splits[split].idle = 0;
  }
}

void bk_wm_split_restart(bk_wm_gen_t *g, size_t split, brook_time_t now) {
  if (split < g->n_splits)
    g->splits[split] = (bk_wm_split_t){.max_ts = BROOK_TIME_MIN,
                                       .wm = BROOK_TIME_MIN,
                                       .wm_at_last = BROOK_TIME_MIN,
                                       .last_arrival = now,
                                       .present = 1};
}

static brook_time_t sat_sub(brook_time_t a, brook_time_t b) {
  return a < BROOK_TIME_MIN + b ? BROOK_TIME_MIN : a - b; /* b >= 0 */
}

static brook_time_t sat_add(brook_time_t a, brook_time_t b) {
  return a > BROOK_TIME_MAX - b ? BROOK_TIME_MAX : a + b; /* b >= 0 */
}

void bk_wm_observe(bk_wm_gen_t *g, bk_wm_split_t *s, size_t split, const brook_record_t *recs,
                   size_t n, brook_time_t now) {
  if (n == 0)
    return;
  const brook_watermark_opts_t *o = g->opts;
  /* `own` is the strategy's watermark from records alone: the quiet advance starts from it,
   * not from a watermark an earlier quiet period already moved. */
  brook_time_t own = s->wm_at_last;
  if (o->kind == BROOK_WATERMARK_CUSTOM) {
    for (size_t i = 0; i < n; i++) {
      brook_time_t w = o->custom(&recs[i], split, own > s->wm ? own : s->wm, o->custom_opaque);
      own = w > own ? w : own;
      if (recs[i].timestamp > s->max_ts)
        s->max_ts = recs[i].timestamp;
    }
  } else {
    brook_time_t mx = s->max_ts;
    for (size_t i = 0; i < n; i++)
      mx = recs[i].timestamp > mx ? recs[i].timestamp : mx;
    s->max_ts = mx;
    if (mx != BROOK_TIME_MIN)
      own = sat_sub(sat_sub(mx, o->max_delay), 1);
  }
  if (own > s->wm)
    s->wm = own;
  s->wm_at_last = own;
  s->last_arrival = now;
  s->idle = 0;
}

void bk_wm_tick(bk_wm_gen_t *g, brook_time_t now) {
  const brook_watermark_opts_t *o = g->opts;
  int any = 0;
  for (size_t i = 0; i < g->n_splits; i++) {
    bk_wm_split_t *s = &g->splits[i];
    if (!s->present)
      continue;
    any = 1;
    brook_time_t quiet_for = now - s->last_arrival;
    if (o->idle_timeout > 0 && quiet_for >= o->idle_timeout)
      s->idle = 1;
    if (o->advance_when_quiet > 0 && quiet_for >= o->advance_when_quiet &&
        s->wm_at_last != BROOK_TIME_MIN) {
      brook_time_t w = sat_add(s->wm_at_last, quiet_for);
      if (w > s->wm)
        s->wm = w;
    }
  }
  if (!any && o->idle_timeout > 0 && now - g->started >= o->idle_timeout)
    g->idle = 1; /* never had a record: holds nothing back after the timeout */
}

int bk_wm_combine(bk_wm_gen_t *g) {
  brook_time_t old = g->wm;
  int old_idle = g->idle;
  if (g->ended) {
    g->wm = BROOK_TIME_MAX;
    g->idle = 0;
  } else {
    brook_time_t m = BROOK_TIME_MAX;
    int active = 0, present = 0;
    for (size_t i = 0; i < g->n_splits; i++) {
      if (!g->splits[i].present)
        continue;
      present = 1;
      if (g->splits[i].idle)
        continue;
      active = 1;
      if (g->splits[i].wm < m)
        m = g->splits[i].wm;
    }
    /* No split yet: idle only once bk_wm_tick found it silent for idle_timeout. All splits
     * idle: keep the watermark, stop holding others back. */
    if (present)
      g->idle = !active;
    if (active && m > g->wm)
      g->wm = m;
  }
  return g->wm != old || g->idle != old_idle;
}

brook_time_t bk_wm_next_tick(const bk_wm_gen_t *g, brook_time_t now) {
  const brook_watermark_opts_t *o = g->opts;
  brook_time_t next = BROOK_TIME_MAX;
  if (g->ended || (o->idle_timeout <= 0 && o->advance_when_quiet <= 0))
    return next;
  int any = 0;
  for (size_t i = 0; i < g->n_splits; i++) {
    const bk_wm_split_t *s = &g->splits[i];
    if (!s->present)
      continue;
    any = 1;
    if (o->idle_timeout > 0 && !s->idle) {
      brook_time_t t = sat_add(s->last_arrival, o->idle_timeout);
      next = t < next ? t : next;
    }
    if (o->advance_when_quiet > 0 && s->wm_at_last != BROOK_TIME_MIN) {
      brook_time_t t = sat_add(s->last_arrival, o->advance_when_quiet);
      if (t <= now)
        t = now + BK_QUIET_TICK_MS; /* quiet already: keep moving forward */
      next = t < next ? t : next;
    }
  }
  if (!any && o->idle_timeout > 0 && !g->idle) {
    brook_time_t t = sat_add(g->started, o->idle_timeout);
    next = t < next ? t : next;
  }
  return next;
}
