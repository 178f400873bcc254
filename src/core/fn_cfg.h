/* The built-in operators that wrap one user callback (ops/fn_op.c: filter, map, map_values, peek,
 * key_by, flat_map, the callback sink) keep it in a bk_fn_cfg_t, the node's opaque. The ones a
 * runtime can run fused with their neighbours, record by record (runtime/fuse.c), say which
 * they are in bk_node_t.fuse_kind; the runtime reads their callback from the bk_fn_cfg_t. */
#ifndef BROOK_CORE_FN_CFG_H
#define BROOK_CORE_FN_CFG_H

typedef void (*bk_any_fn)(void);

typedef struct bk_fn_cfg {
  bk_any_fn fn;  /* cast back to the operator's callback type before calling */
  bk_any_fn fn2; /* a second callback where needed (a sink's flush), else NULL */
  void *opaque;
} bk_fn_cfg_t;

/* bk_node_t.fuse_kind: which callback fn is (brook/stateless.h, brook/sink.h). */
typedef enum bk_fuse_kind {
  BK_FUSE_NONE = 0,   /* not fusable (every other operator, flat_map included) */
  BK_FUSE_FILTER,     /* brook_predicate_fn */
  BK_FUSE_MAP,        /* brook_map_fn */
  BK_FUSE_PEEK,       /* brook_peek_fn */
  BK_FUSE_KEY_BY,     /* brook_key_fn */
  BK_FUSE_MAP_VALUES, /* brook_value_fn */
  BK_FUSE_SINK        /* brook_sink_fn: ends a chain */
} bk_fuse_kind_t;

#endif
