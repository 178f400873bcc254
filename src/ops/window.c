/* The public window API: window definitions, options, the brook_window_aggregate builder
 * (validates and picks the operator for the window kind), the late side stream and the
 * result parser. */
#include <string.h>

#include <brook/window.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "core/topology.h"
#include "ops/aggregator.h"
#include "ops/window_common.h"

brook_window_t brook_window_tumbling(brook_time_t size) {
  return (brook_window_t){.kind = BROOK_WINDOW_TUMBLING, .size = size, .advance = size};
}

brook_window_t brook_window_hopping(brook_time_t size, brook_time_t advance) {
  return (brook_window_t){.kind = BROOK_WINDOW_HOPPING, .size = size, .advance = advance};
}

brook_window_t brook_window_sliding(brook_time_t size) {
  return (brook_window_t){.kind = BROOK_WINDOW_SLIDING, .size = size};
}

brook_window_t brook_window_session(brook_time_t gap) {
  return (brook_window_t){.kind = BROOK_WINDOW_SESSION, .gap = gap};
}

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

static brook_time_t gcd(brook_time_t a, brook_time_t b) {
  while (b) {
    brook_time_t r = a % b;
    a = b;
    b = r;
  }
  return a;
}

static void cfg_free(void *cfg, const brook_allocator_t *a) { bk_free(a, cfg); }

/* Checks an aggregator's table; returns NULL or what is wrong. */
#define BK_STR_(x) #x
#define BK_STR(x) BK_STR_(x)

const char *bk_aggregator_problem(const brook_aggregator_t *agg) {
  if (!agg)
    return "aggregator is NULL";
  if (agg->version < 1 || agg->version > BROOK_AGGREGATOR_VERSION)
    return "aggregator table version is not one this library knows (1 to " BK_STR(
        BROOK_AGGREGATOR_VERSION) ")";
  if (!agg->add)
    return "aggregator has no add callback";
  if (agg->acc_size == 0 || agg->acc_size > 65536)
    return "aggregator acc_size must be 1..65536";
  if (agg->result && agg->result_size > 65536)
    return "aggregator result_size must be <= 65536";
  return NULL;
}

brook_stream_t *brook_window_aggregate(brook_stream_t *in, brook_window_t window,
                                       const brook_aggregator_t *agg,
                                       const brook_window_opts_t *opts) {
  if (!in)
    return NULL;
  brook_topology_t *t = in->node->topo;
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
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &window_opts_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "%s: %s", what, why.text);
    return NULL;
  }
  const char *problem = bk_aggregator_problem(agg);
  if (!problem && window.kind != BROOK_WINDOW_TUMBLING && !agg->merge)
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
  cfg->agg = *agg;
  cfg->slice = window.kind == BROOK_WINDOW_HOPPING ? gcd(window.size, window.advance) : 0;
  static const brook_operator_t *const ops[] = {&bk_window_tumbling_op, &bk_window_hopping_op,
                                                &bk_window_sliding_op, &bk_window_session_op};
  brook_stream_t *outs[2] = {NULL, NULL};
  size_t n_out = o.late == BROOK_LATE_ROUTE ? 2 : 1;
  if (bk_topology_add_operator(&in, 1, ops[window.kind], cfg, cfg_free, o.name, NULL, n_out, outs) <
      0)
    return NULL;
  outs[0]->node->stateful = BK_STATEFUL; /* its stores need a stable identity */
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
