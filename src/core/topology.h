/* The topology's internal representation: nodes (sources, operators, the error source) and
 * the streams (output ports) that connect them. Built by the public builder functions,
 * checked by validate.c, compiled by plan/. */
#ifndef BROOK_CORE_TOPOLOGY_H
#define BROOK_CORE_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include <brook/operator.h>
#include <brook/topology.h>

#include "core/errmsg.h"

typedef struct bk_node bk_node_t;

typedef enum bk_node_kind {
  BK_NODE_SOURCE,   /* produces records from outside (generator, push, lines, ...) */
  BK_NODE_OPERATOR, /* brook_operator_t with inputs; 0 outputs makes it a sink */
  BK_NODE_ERRORS    /* the error stream: fed by the runtime with failed records */
} bk_node_kind_t;

typedef struct bk_consumer {
  bk_node_t *node;
  size_t input; /* which of node's inputs this is */
} bk_consumer_t;

/* One output port of a node; what users hold as brook_stream_t. */
struct brook_stream {
  bk_node_t *node;
  size_t port;
  bk_consumer_t *consumers;
  size_t n_consumers, cap_consumers;
};

/* A source kind. The runtime layer defines `runtime_vt`; core only stores it. */
typedef struct bk_source_type {
  const char *kind; /* "generator", "push", "lines" */
  const void *runtime_vt;
  void (*cfg_free)(void *cfg, const brook_allocator_t *a);
  /* Input comes in partitions (Kafka): the nodes that keep its partitioning run as one
   * task per partition (runtime/task.h). */
  int partitioned;
  /* Optional (Kafka): the key change at `rekeying`, downstream of `source` (a source of this
   * type), goes through a repartition topic: rewires the topology so that `rekeying` feeds a
   * repartition sink and its consumers read a new source of the topic (kafka/repartition.c).
   * Called by the runtime (runtime/repartition_plan.c) before the topology is frozen.
   * BROOK_OK, or an error with the reason in *why (the topology is then unchanged). */
  brook_err_t (*repartition)(bk_node_t *source, bk_node_t *rekeying, size_t n_workers,
                             bk_errmsg_t *why);
} bk_source_type_t;

/* Whether an operator keeps state (stores or timers), for the plan (plan/placement.c). */
typedef enum bk_stateful {
  BK_STATELESS = 0,       /* built-in operators that keep nothing (map, key_by, sinks, ...) */
  BK_STATEFUL = 1,        /* set by the built-in stateful builders (aggregate, windows, ...) */
  BK_STATE_UNDECLARED = 2 /* custom operators: stateful if they have open() or on_timer */
} bk_stateful_t;

struct bk_node {
  bk_node_kind_t kind;
  size_t id; /* index in topology->nodes */
  char *name;
  int name_generated; /* no name was given: `name` is "<kind>#<id>" */
  brook_topology_t *topo;

  /* BK_NODE_OPERATOR */
  brook_operator_t op;
  void *opaque;                                                  /* passed to op callbacks */
  void (*opaque_free)(void *opaque, const brook_allocator_t *a); /* if the node owns it */
  char **config; /* NULL-terminated key/value pairs */
  brook_stream_t **inputs;
  size_t n_inputs, cap_inputs;
  int is_merge; /* accepts brook_merge_add */
  int rekeys;   /* key_by: an explicit key change, its output always crosses an exchange */
  /* May change the key without saying how (map, flat_map, a custom operator that does not
   * declare the key preserved, brook/operator.h): no exchange of its own, but a stateful node
   * fed by it (no key_by in between) makes the plan repartition its output (plan/rekey.c).
   * The other built-in operators keep the key (0). */
  int key_changing;
  /* A rekeying node: the task count after its exchange (brook_stream_set_partitions);
   * 0 = the default, the largest upstream partition count. */
  uint32_t partitions;
  bk_stateful_t stateful;
  /* A stateful operator whose state has no disk layout: it stays in memory even with
   * state_dir (runtime_new warns; set by its builder, ops/window.c). */
  int state_in_memory;
  /* A sink that must have one instance (a line sink: one file): placed once, not per worker
   * (plan/placement.c). */
  int single_instance;
  /* A sink that runs per task of its input, not per worker (the repartition sink: each
   * upstream task writes its own watermark, kafka/repartition_sink.c). */
  int per_task_sink;
  /* Never looks at event time (the built-in callback operators, ops/fn_op.c): a source that
   * feeds only such nodes skips its per-batch watermark pass (runtime/event_time.c). */
  int time_blind;
  /* A built-in callback operator a runtime may run fused with its neighbours, record by
   * record (runtime/fuse.c): a bk_fuse_kind_t (core/fn_cfg.h), its opaque a bk_fn_cfg_t. */
  int fuse_kind;

  /* BK_NODE_SOURCE */
  const bk_source_type_t *source_type;
  void *source_cfg;
  struct brook_watermark_opts *wm_opts; /* NULL = defaults; owned (brook_source_set_watermark) */
  /* Splits (parallel parts, each a task of its sub-topology) known from the options, set by
   * the source's builder (a generator's or push source's split count); 0 = 1 split, or for a
   * partitioned source: its partitions, known only at run time. */
  uint32_t splits;

  brook_stream_t *outputs;
  size_t n_outputs;
};

struct brook_topology {
  brook_allocator_t alloc;
  brook_error_policy_t error_policy;
  bk_node_t **nodes;
  size_t n_nodes, cap_nodes;
  bk_node_t *errors_node;
  int frozen;
  /* The test driver's runtime keeps exchanges in process (no repartition topics: it feeds
   * every source by hand), like Kafka Streams' TopologyTestDriver. Set around its runtime_new. */
  int in_process_exchanges;
  int refs; /* the user's reference plus one per runtime */
  brook_err_t build_err;
  bk_errmsg_t build_msg; /* message of the first build error */
  bk_errmsg_t msg;       /* most recent error */
};

/* Records a build error (sticky: the first one is kept) and returns `err`. */
brook_err_t bk_topology_fail(brook_topology_t *t, brook_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks a builder's preconditions: t not frozen; returns BROOK_OK or records the error. */
brook_err_t bk_topology_check_open(brook_topology_t *t, const char *what);

/* Adds an operator node. `op` is copied, `opaque` stored (and freed with opaque_free when
 * the topology is freed, if given, also on failure). `config` is copied. */
brook_err_t bk_topology_add_operator(brook_stream_t *const *inputs, size_t n_inputs,
                                     const brook_operator_t *op, void *opaque,
                                     void (*opaque_free)(void *, const brook_allocator_t *),
                                     const char *name, const char *const *config, size_t n_outputs,
                                     brook_stream_t **outputs);

/* Adds a source node with one output. `cfg` is owned by the node from now on (freed with
 * type->cfg_free, also on failure). NULL on error. */
brook_stream_t *bk_topology_add_source(brook_topology_t *t, const bk_source_type_t *type, void *cfg,
                                       const char *name);

/* Connects `in` as a new input of `node`. */
brook_err_t bk_node_add_input(bk_node_t *node, brook_stream_t *in);

/* The node named `name`, or NULL. */
bk_node_t *bk_topology_find(const brook_topology_t *t, const char *name);

/* A problem that does not stop the topology from running, for the runtime to log as a
 * warning (formatted into *buf), or NULL: the error stream is used but the error policy
 * (FAIL or SKIP) never feeds it. */
const char *bk_topology_warning(const brook_topology_t *t, bk_errmsg_t *buf);

/* Nodes in topological order (sources first). `order` must hold n_nodes entries.
 * Returns BROOK_OK, or BROOK_ERR_CYCLE with the message set. */
brook_err_t bk_topology_sort(brook_topology_t *t, bk_node_t **order);

/* Takes / drops a reference (runtimes keep the topology alive). */
void bk_topology_ref(brook_topology_t *t);
void bk_topology_unref(brook_topology_t *t);

#endif
