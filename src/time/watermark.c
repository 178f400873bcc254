/* Watermark strategies (bounded out-of-orderness, monotonous, custom), idleness and the
 * quiet-stream advance, per split; and the public brook_source_set_watermark. */
#include "time/watermark.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "core/topology.h"
#include "time/time_arith.h"

/* How often a quiet split's watermark is moved forward while it stays quiet (ms). */
#define BK_QUIET_TICK_MS 100

void brook_watermark_opts_init_size(brook_watermark_opts_t *opts, size_t size) {
  brook_watermark_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t watermark_versions[] = {
    BK_OPTS_VERSION(brook_watermark_opts_t, advance_when_quiet),
    BK_OPTS_VERSION(brook_watermark_opts_t, ts_max_ahead), /* issue 11: timestamp bounds */
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
  if (o.max_delay < 0 || o.idle_timeout < 0 || o.advance_when_quiet < 0 || o.ts_max_ahead < 0)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "source_set_watermark('%s'): max_delay, idle_timeout, "
                            "advance_when_quiet and ts_max_ahead must be >= 0",
                            source->node->name);
  if (o.ts_bounds != BROOK_TS_BOUNDS_AUTO && o.ts_bounds != BROOK_TS_BOUNDS_ON &&
      o.ts_bounds != BROOK_TS_BOUNDS_OFF)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                            "source_set_watermark('%s'): unknown ts_bounds %d", source->node->name,
                            (int)o.ts_bounds);
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
  g->track = -1;
  bk_wm_bounds_set(g, 0);
}

void bk_wm_bounds_set(bk_wm_gen_t *g, int strict) {
  const brook_watermark_opts_t *o = g->opts;
  int on = o->ts_bounds == BROOK_TS_BOUNDS_ON || (strict && o->ts_bounds == BROOK_TS_BOUNDS_AUTO);
  g->check_min = on && o->ts_min != BROOK_TIME_MIN;
  g->ts_min = o->ts_min;
  g->ts_max_ahead = o->ts_max_ahead > 0 ? o->ts_max_ahead : BROOK_TS_MAX_AHEAD_DEFAULT;
  g->check_ahead = o->ts_bounds != BROOK_TS_BOUNDS_OFF && (o->ts_max_ahead > 0 || (on && strict));
}

/* "24 h", "90 s" or "1500 ms". */
static void format_duration(char *buf, size_t cap, brook_time_t ms) {
  if (ms % BROOK_H == 0)
    snprintf(buf, cap, "%lld h", (long long)(ms / BROOK_H));
  else if (ms % BROOK_S == 0)
    snprintf(buf, cap, "%lld s", (long long)(ms / BROOK_S));
  else
    snprintf(buf, cap, "%lld ms", (long long)ms);
}

brook_err_t bk_wm_check_ts(const bk_wm_gen_t *g, brook_time_t ts, brook_time_t now, char *why,
                           size_t cap) {
  if (g->check_min && ts < g->ts_min) {
    if (g->ts_min == 0)
      snprintf(why, cap, "timestamp %lld is negative", (long long)ts);
    else
      snprintf(why, cap, "timestamp %lld is below the smallest accepted %lld", (long long)ts,
               (long long)g->ts_min);
    return BROOK_ERR_CORRUPT;
  }
  if (g->check_ahead && ts > bk_time_add_sat(now, g->ts_max_ahead)) {
    char d[32];
    format_duration(d, sizeof(d), g->ts_max_ahead);
    snprintf(why, cap, "timestamp %lld is more than %s ahead of processing time %lld",
             (long long)ts, d, (long long)now);
    return BROOK_ERR_CORRUPT;
  }
  return BROOK_OK;
}

int bk_wm_note_behind(bk_wm_gen_t *g, bk_wm_split_t *s, size_t n, brook_time_t now,
                      uint64_t *count) {
  if (bk_time_sub_sat(now, s->behind_since) >= BROOK_LATE_WARN_PERIOD || now < s->behind_since) {
    s->behind_since = now; /* a new period */
    s->behind_n = 0;
  }
  s->behind_n += n;
  if (s->behind_n < BROOK_LATE_WARN_RECORDS ||
      (g->warned && bk_time_sub_sat(now, g->warned_at) < BROOK_LATE_WARN_PERIOD &&
       now >= g->warned_at))
    return 0;
  *count = s->behind_n;
  g->warned = 1;
  g->warned_at = now;
  s->behind_n = 0; /* the next warning needs a new mass */
  s->behind_since = now;
  return 1;
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
      own = bk_time_sub_sat(bk_time_sub_sat(mx, o->max_delay), 1);
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
    /* A wall clock stepped back makes this negative: not quiet then. */
    brook_time_t quiet_for = bk_time_sub_sat(now, s->last_arrival);
    if (o->idle_timeout > 0 && quiet_for >= o->idle_timeout)
      s->idle = 1;
    if (o->advance_when_quiet > 0 && quiet_for >= o->advance_when_quiet &&
        s->wm_at_last != BROOK_TIME_MIN) {
      brook_time_t w = bk_time_add_sat(s->wm_at_last, quiet_for);
      if (w > s->wm)
        s->wm = w;
    }
  }
  if (!any && o->idle_timeout > 0 && bk_time_sub_sat(now, g->started) >= o->idle_timeout)
    g->idle = 1; /* never had a record: holds nothing back after the timeout */
}

int bk_wm_split_state(const bk_wm_gen_t *g, const bk_wm_split_t *s) {
  if (!s->idle)
    return BK_WM_ACTIVE;
  /* Quiet advance needs a record to start from. */
  return g->opts->advance_when_quiet > 0 && s->wm_at_last != BROOK_TIME_MIN ? BK_WM_IDLE_MOVING
                                                                            : BK_WM_IDLE;
}

int bk_wm_combine(bk_wm_gen_t *g) {
  brook_time_t old = g->wm;
  int old_idle = g->idle;
  if (g->ended) {
    g->wm = BROOK_TIME_MAX;
    g->idle = BK_WM_ACTIVE;
  } else {
    bk_wm_fold_t f = bk_wm_fold_new();
    int present = 0;
    for (size_t i = 0; i < g->n_splits; i++) {
      if (!g->splits[i].present)
        continue;
      present = 1;
      bk_wm_fold_add(&f, g->splits[i].wm, bk_wm_split_state(g, &g->splits[i]));
    }
    /* No split yet: idle only once bk_wm_tick found it silent for idle_timeout. All splits
     * idle: stop holding others back, and move only with the quiet advance. */
    if (present)
      g->idle = bk_wm_fold_state(&f);
    if (f.rank && f.wm > g->wm)
      g->wm = f.wm;
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
      brook_time_t t = bk_time_add_sat(s->last_arrival, o->idle_timeout);
      next = t < next ? t : next;
    }
    if (o->advance_when_quiet > 0 && s->wm_at_last != BROOK_TIME_MIN) {
      brook_time_t t = bk_time_add_sat(s->last_arrival, o->advance_when_quiet);
      if (t <= now)
        t = bk_time_add_sat(now, BK_QUIET_TICK_MS); /* quiet already: keep moving forward */
      next = t < next ? t : next;
    }
  }
  if (!any && o->idle_timeout > 0 && !g->idle) {
    brook_time_t t = bk_time_add_sat(g->started, o->idle_timeout);
    next = t < next ? t : next;
  }
  return next;
}
