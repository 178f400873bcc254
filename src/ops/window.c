/* The public window API: options, the brook_window_aggregate builder (reads the window
 * definition by its struct_size and the aggregator by its version, validates, and picks the
 * operator for the window kind), the late side stream and the result parser. The window
 * constructors are inline in window.h. */
#include <string.h>

#include <brook/window.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "core/topology.h"
#include "ops/aggregator.h"
#include "ops/window_common.h"

void brook_window_opts_init_size(brook_window_opts_t *opts, size_t size) {
  brook_window_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t window_versions[] = {
    BK_OPTS_VERSION(brook_window_opts_t, late),
};
static const bk_opts_type_t window_opts_type = BK_OPTS_TYPE(brook_window_opts_t, window_versions);

/* The layouts brook_window_t has had (core/opts.h), read like an options struct: a caller's
 * definition is copied by its struct_size, later fields keep their zero defaults. It was a
 * plain value without struct_size (passed by value) before it became versioned. */
static const bk_opts_version_t window_def_versions[] = {
    BK_OPTS_VERSION(brook_window_t, gap),
};
static const bk_opts_type_t window_def_type = BK_OPTS_TYPE(brook_window_t, window_def_versions);

static brook_time_t gcd(brook_time_t a, brook_time_t b) {
  while (b) {
    brook_time_t r = a % b;
    a = b;
    b = r;
  }
  return a;
}

static void cfg_free(void *cfg, const brook_allocator_t *a) { bk_free(a, cfg); }

brook_stream_t *brook_window_aggregate(brook_stream_t *in, const brook_window_t *def,
                                       const brook_aggregator_t *agg,
                                       const brook_window_opts_t *opts) {
  if (!in)
    return NULL;
  brook_topology_t *t = in->node->topo;
  bk_errmsg_t why;
  brook_window_t window;
  memset(&window, 0, sizeof(window));
  window.struct_size = sizeof(window);
  if (!def) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "window_aggregate: window is NULL");
    return NULL;
  }
  if (bk_opts_copy(&window, sizeof(window), def, &window_def_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "window_aggregate: %s", why.text);
    return NULL;
  }
  static const char *const kinds[] = {"window_tumbling", "window_hopping", "window_sliding",
                                      "window_session"};
  if ((unsigned)window.kind > BROOK_WINDOW_SESSION) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "window_aggregate: unknown window kind %d",
                     (int)window.kind);
    return NULL;
  }
  const char *what = kinds[window.kind];
  brook_window_opts_t o;
  brook_window_opts_init(&o);
  if (bk_opts_copy(&o, sizeof(o), opts, &window_opts_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "%s: %s", what, why.text);
    return NULL;
  }
  brook_aggregator_t agg_copy; /* by its version: an older caller's table is smaller */
  bk_errmsg_t agg_why;
  const char *problem = bk_aggregator_copy(&agg_copy, agg, &agg_why);
  if (!problem && window.kind != BROOK_WINDOW_TUMBLING && !agg_copy.merge)
    problem = "hopping, sliding and session windows need an aggregator with merge";
  if (!problem && window.kind == BROOK_WINDOW_SESSION && window.gap <= 0)
    problem = "session gap must be > 0";
  if (!problem && window.kind != BROOK_WINDOW_SESSION && window.size <= 0)
    problem = "window size must be > 0";
  if (!problem && window.kind == BROOK_WINDOW_HOPPING &&
      (window.advance <= 0 || window.advance > window.size))
    problem = "hopping advance must be in 1..size";
  if (!problem && window.kind == BROOK_WINDOW_HOPPING &&
      (window.size - 1) / window.advance + 1 > BROOK_WINDOW_MAX_HOPS) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                     "%s: size %lld / advance %lld puts each record in %lld windows; at most "
                     "BROOK_WINDOW_MAX_HOPS (%d) are allowed (use a larger advance)",
                     what, (long long)window.size, (long long)window.advance,
                     (long long)((window.size - 1) / window.advance + 1), BROOK_WINDOW_MAX_HOPS);
    return NULL;
  }
  if (!problem && o.grace < 0)
    problem = "grace must be >= 0";
  if (!problem && (window.size > BK_WIN_TIME_LIMIT || window.advance > BK_WIN_TIME_LIMIT ||
                   window.gap > BK_WIN_TIME_LIMIT || o.grace > BK_WIN_TIME_LIMIT))
    problem = "size, advance, gap and grace must be <= 2^61 ms";
  if (!problem && o.emit != BROOK_EMIT_ON_CLOSE && o.emit != BROOK_EMIT_ON_UPDATE)
    problem = "unknown emit mode";
  if (!problem && o.late != BROOK_LATE_DROP && o.late != BROOK_LATE_ROUTE)
    problem = "unknown late policy";
  if (problem) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "%s: %s", what, problem);
    return NULL;
  }
  bk_win_cfg_t *cfg = bk_calloc(&t->alloc, 1, sizeof(*cfg));
  if (!cfg) {
    bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", what);
    return NULL;
  }
  cfg->w = window;
  if (window.kind == BROOK_WINDOW_TUMBLING)
    cfg->w.advance = window.size;
  cfg->grace = o.grace;
  cfg->emit = o.emit;
  cfg->late = o.late;
  cfg->agg = agg_copy;
  cfg->slice = window.kind == BROOK_WINDOW_HOPPING ? gcd(window.size, window.advance) : 0;
  static const brook_operator_t *const ops[] = {&bk_window_tumbling_op, &bk_window_hopping_op,
                                                &bk_window_sliding_op, &bk_window_session_op};
  brook_stream_t *outs[2] = {NULL, NULL};
  size_t n_out = o.late == BROOK_LATE_ROUTE ? 2 : 1;
  if (bk_topology_add_operator(&in, 1, ops[window.kind], cfg, cfg_free, o.name, NULL, n_out, outs) <
      0)
    return NULL;
  outs[0]->node->stateful = BK_STATEFUL; /* its stores need a stable identity */
  /* Sliding windows and hopping ones of many slices keep their rings in memory (README
   * "Windows on disk"); sessions, tumbling and merged hopping windows have a disk layout. */
  outs[0]->node->state_in_memory = window.kind != BROOK_WINDOW_SESSION && !bk_win_on_disk(cfg);
  return outs[0];
}

brook_stream_t *brook_window_late(brook_stream_t *windowed) {
  if (!windowed)
    return NULL;
  bk_node_t *n = windowed->node;
  int is_window = n->kind == BK_NODE_OPERATOR && (n->op.process == bk_window_tumbling_op.process ||
                                                  n->op.process == bk_window_hopping_op.process ||
                                                  n->op.process == bk_window_sliding_op.process ||
                                                  n->op.process == bk_window_session_op.process);
  if (!is_window || n->n_outputs < 2) {
    bk_topology_fail(n->topo, BROOK_ERR_INVALID_ARG,
                     "window_late: '%s' is not a window operator with late = BROOK_LATE_ROUTE",
                     n->name);
    return NULL;
  }
  return &n->outputs[1];
}

brook_err_t brook_window_parse(const brook_record_t *rec, brook_window_value_t *out,
                               const void **result) {
  brook_window_value_t v;
  if (!rec || !rec->value || rec->value_len < sizeof(v))
    return BROOK_ERR_INVALID_ARG;
  memcpy(&v, rec->value, sizeof(v));
  if (rec->value_len != sizeof(v) + v.result_len || v.end < v.start)
    return BROOK_ERR_INVALID_ARG;
  if (out)
    *out = v;
  if (result)
    *result = (const unsigned char *)rec->value + sizeof(v);
  return BROOK_OK;
}
