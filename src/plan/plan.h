/* The physical plan: a validated topology compiled for execution.
 *
 * Order: nodes in topological order; every stream becomes a port with direct-call targets,
 * so a linear chain of operators runs as nested direct calls over one batch (fusion).
 *
 * Re-keying nodes (rekey.c): a node whose outputs cross an exchange, nodes[].rekeys != 0.
 * Either explicit (BK_REKEY_EXPLICIT: key_by, always), or automatic (BK_REKEY_AUTO): a node
 * that may change the key (bk_node_t.key_changing: map, flat_map, a custom operator not
 * declared key_preserving) whose output reaches a stateful node with outputs (not a sink:
 * sinks run per worker, a repartition cannot help them) through key-preserving
 * stateless nodes only (filter, peek, branch, merge, map_values; no key_by, no other key
 * change, no stateful node in between): Kafka Streams' keyChangingOperation /
 * repartitionRequired. The automatic one is placed at the LAST key change before the
 * stateful node (map1 -> map2 -> window repartitions after map2), on every path (a merge of
 * two changed streams repartitions both). Everything below treats the two kinds alike:
 * later mechanisms (the in-process exchange, repartition topics) must test nodes[].rekeys
 * (or walk plan.exchanges), never key_by or bk_node_t.rekeys, which is only the explicit
 * kind. nodes[].rekey_for names the stateful node that made an automatic one necessary.
 *
 * Sub-topologies (subtopology.c): the topology cut at every key change. Each output port of a
 * re-keying node is an EXCHANGE (plan.exchanges, one per port with consumers): its records
 * go to the task that owns murmur2(key) % tasks of the sub-topology it feeds
 * (core/murmur2.h), so after it keyed state is partitioned again. Everything connected
 * without crossing an exchange is one sub-topology (like Kafka Streams' sub-topologies
 * between repartition topics).
 *
 * Tasks (tasks.c): a sub-topology runs as `tasks` parallel tasks. Its count: the count set on
 * an exchange into it (brook_stream_set_partitions), else the largest of its sources' splits
 * and of the task counts of the sub-topologies that feed it through exchanges. A Kafka
 * source's partition count is known only at run time: the count is then "inherit from
 * source X", resolved with bk_plan_resolve_source.
 *
 * Fused lines (fusion.c): chains of built-in callback operators that run record by record
 * inside a batch (runtime/fuse.c), decided from the topology: once for exchanges that cross
 * workers (a line ends at a re-keying node) and once for a runtime of one worker (it goes on
 * past it).
 *
 * Placement (placement.c): each node runs per task (once per task of its sub-topology: its
 * own instance, state and timers), per worker (each worker owns an instance: sinks, the
 * error stream and the stateless nodes fed only by them) or once per runtime (a stateful node
 * whose keys arrive on every worker with no key change to bring them together, and a sink
 * that must be one, such as a line sink writing one file). A once node runs on worker 0; its
 * inputs from other placements are gathers (bk_gather_t) that bring every worker's records
 * there.
 *
 * Today's runtime creates per-task instances only for the tasks of a partitioned source
 * (Kafka, or a generator or push source partitioned by key, whose split k is task k):
 * `partition_local` marks the nodes that see one input partition's records (runtime/task.c).
 * Until exchanges are wired, the nodes after an exchange run once in-process. */
#ifndef BROOK_PLAN_PLAN_H
#define BROOK_PLAN_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/topology.h"

typedef enum bk_placement {
  BK_PLACE_TASK = 0,   /* one instance per task of the node's sub-topology */
  BK_PLACE_WORKER = 1, /* one instance per worker */
  BK_PLACE_ONCE = 2    /* one instance per runtime */
} bk_placement_t;

/* nodes[].rekeys: whether (and why) a node's outputs cross an exchange (see the top). */
typedef enum bk_rekey {
  BK_REKEY_NONE = 0,
  BK_REKEY_EXPLICIT = 1, /* key_by */
  BK_REKEY_AUTO = 2      /* a key change feeding a stateful node: automatic repartition */
} bk_rekey_t;

typedef struct bk_plan_node {
  bk_node_t *node;
  size_t sub; /* its sub-topology */
  bk_placement_t place;
  int stateful;               /* keeps stores or timers: needs a stable identity (rekey.c) */
  bk_rekey_t rekeys;          /* its outputs cross an exchange (rekey.c) */
  const bk_node_t *rekey_for; /* BK_REKEY_AUTO: the (first) stateful node that needs it */
  int partition_local; /* per task, and fed only by partitioned sources without an exchange */
  char *identity;      /* stateful nodes: the escaped name (identity.c); else NULL */
  /* fusion.c: the length of the fused line the node heads (0: none, it is inside one or not
   * fusable; 1: a line of one, fused only with a generator in front), where a re-keying node's
   * exchange crosses to other workers; fuse_len_local: where exchanges stay on one worker. */
  unsigned char fuse_len, fuse_len_local;
} bk_plan_node_t;

typedef struct bk_subtopology {
  /* Task count: `fixed` if `explicit_by` set it, else max(fixed, splits of each source in
   * inherit[0..n_inherit)), where fixed is the largest split count known from options. */
  uint32_t fixed;
  const bk_node_t *explicit_by; /* the re-keying node whose stream set the count, or NULL */
  size_t *inherit;              /* plan positions of sources counted only at run time */
  size_t n_inherit;
  uint32_t tasks; /* the resolved count, 0 while a source in inherit is unresolved */
  size_t n_nodes;
} bk_subtopology_t;

typedef struct bk_exchange {
  const bk_node_t *from; /* the re-keying node whose output crosses it */
  size_t port;           /* which output of `from` (key_by and map have one: 0) */
  size_t from_sub, to_sub;
  bk_rekey_t kind; /* BK_REKEY_EXPLICIT (key_by) or BK_REKEY_AUTO (plan.nodes[].rekey_for) */
} bk_exchange_t;

/* A gather: an input of a node placed once (placement.c) that is not itself fed from a once
 * node. With N workers its records come from every worker's instance of `from`, so they are
 * exchanged to the node's one instance, on worker 0: an exchange with one target task
 * (runtime/exchange.c). Nodes fed only by once nodes need none: their records already are on
 * worker 0. */
typedef struct bk_gather {
  const bk_node_t *from; /* the upstream node (any placement but once, or a re-keying node) */
  size_t port;           /* its output */
  const bk_node_t *to;   /* the node placed once */
  size_t input;          /* which of to's inputs */
} bk_gather_t;

typedef struct bk_plan {
  bk_node_t **order; /* all nodes, sources first, every node after its inputs */
  size_t n;
  size_t *pos; /* node id -> index in order */
  size_t n_sources;
  bk_plan_node_t *nodes; /* indexed like order */
  uint32_t *splits;      /* indexed like order: a source's split count, 0 = not known yet */
  bk_subtopology_t *subs;
  size_t n_subs;
  bk_exchange_t *exchanges;
  size_t n_exchanges;
  bk_gather_t *gathers; /* subtopology.c, after placement */
  size_t n_gathers;
  int any_partition_local;
  int any_fusable; /* some node heads a fused line */
} bk_plan_t;

#define BK_FUSE_MAX 16 /* operators in one fused line; a longer chain is cut into several */

/* Validates `t` and compiles it. On error the topology's message says why. */
brook_err_t bk_plan_build(bk_plan_t *plan, brook_topology_t *t);
void bk_plan_free(bk_plan_t *plan, const brook_allocator_t *a);

/* ---- steps of bk_plan_build, one file each (the plan's order and pos are set) ---- */

/* rekey.c: nodes[].stateful, rekeys, rekey_for. BROOK_ERR_INVALID_ARG for a partition count
 * set on a key change that is not repartitioned (it would be ignored), or NOMEM. */
brook_err_t bk_plan_rekeys(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg);
/* subtopology.c: nodes[].sub, subs, exchanges. */
brook_err_t bk_plan_subtopologies(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg);
/* placement.c: nodes[].place, partition_local. */
void bk_plan_place(bk_plan_t *p);
/* subtopology.c, after placement: gathers. */
brook_err_t bk_plan_gathers(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg);
/* tasks.c: splits and the subs' task counts; an error if counts set on exchanges into one
 * sub-topology disagree. */
brook_err_t bk_plan_tasks(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg);
/* identity.c: nodes[].identity for stateful nodes. */
brook_err_t bk_plan_identities(bk_plan_t *p, const brook_allocator_t *a, bk_errmsg_t *msg);
/* fusion.c: nodes[].fuse_len and fuse_len_local, any_fusable. Fails only for memory. */
brook_err_t bk_plan_fuse(bk_plan_t *p, const brook_allocator_t *a);

/* ---- using a plan ---- */

/* 1 if `n`'s outputs cross an exchange (explicit or automatic re-keying, see the top). */
static inline int bk_plan_rekeys_node(const bk_plan_t *p, const bk_node_t *n) {
  return p->nodes[p->pos[n->id]].rekeys != BK_REKEY_NONE;
}

/* The node a fused line goes on to after `n`, or NULL if a line ends at `n` (fusion.c);
 * `local_exchanges`: exchanges stay on one worker. */
const bk_node_t *bk_plan_fused_next(const bk_plan_t *p, const bk_node_t *n, int local_exchanges);

/* The split count of the source at plan position `i` became known (a Kafka source learnt its
 * topics' partition counts: pass the largest): resolves the task counts that inherit it.
 * BROOK_ERR_INVALID_ARG (message in *msg) if `i` is no source, `n` is 0, the source's count
 * was known and differs, or a sub-topology whose count was set explicitly would get a
 * source with more partitions than it has tasks (its partitions must map one to one). */
brook_err_t bk_plan_resolve_source(bk_plan_t *p, size_t i, uint32_t n, bk_errmsg_t *msg);

/* The exchange target of `key` in sub-topology `sub`: murmur2(key) % tasks. Requires the
 * count to be resolved (tasks > 0). */
uint32_t bk_plan_exchange_task(const bk_plan_t *p, size_t sub, const void *key, size_t key_len);

/* Once state is persisted, every stateful node must have a name the user gave it: state
 * directories and changelog topics are named from identities, and a generated name
 * ("window_tumbling#3") changes when the topology changes, orphaning the state. The same
 * holds for a node whose records cross a repartition topic (the topic is named from it). Returns
 * BROOK_OK, or BROOK_ERR_INVALID_ARG naming the first offending node and how to name it, or
 * an identity longer than BK_IDENTITY_MAX. */
brook_err_t bk_plan_check_identities(const bk_plan_t *p, bk_errmsg_t *msg);

/* Longest identity: a changelog topic "<application>-<identity>-changelog" must stay within
 * Kafka's 249 characters. */
#define BK_IDENTITY_MAX 200

/* The identity of a node named `name`: filesystem- and Kafka-topic-safe. Bytes
 * [A-Za-z0-9_-] are kept; every other byte, '.' included, becomes '.' and two lowercase hex
 * digits ("window#3" -> "window.233"), so the mapping is one to one (names are unique, so
 * identities are) and never yields "." or "..". Writes at most `size` bytes with a NUL,
 * returns the full length without it (like snprintf). */
size_t bk_identity_escape(const char *name, char *out, size_t size);

/* The physical plan as text (describe.c; the format is in include/brook/topology.h). Writes
 * at most `size` bytes with a NUL; returns the full length without it. */
size_t bk_plan_describe(const bk_plan_t *p, char *buf, size_t size);

#endif
