/* The operator context and its output ports: the interface between operators (built-in or
 * user-written) and the runtime that drives them. Built-in operators use the inline emit
 * fast path below. Core declares nothing the runtime implements: what operators need from
 * the runtime (delivery, counters, the run's state) comes through the services table the
 * runtime puts in every context (bk_ctx_services_t). */
#ifndef BROOK_CORE_CONTEXT_H
#define BROOK_CORE_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include <brook/operator.h>

#include "core/errmsg.h"
#include "core/topology.h"

typedef struct bk_src bk_src_t;
typedef struct brook_runtime brook_runtime_t;
typedef struct bk_port bk_port_t;

/* The runtime's services to operators, filled by the runtime (runtime/worker.c). Every
 * function runs on the thread of the context's worker. */
typedef struct bk_ctx_services {
  /* Delivers a port's buffered records to its targets and empties it. */
  brook_err_t (*deliver)(brook_ctx_t *from, bk_port_t *p);
  /* Delivers every non-empty port of `ctx`. */
  brook_err_t (*flush_ports)(brook_ctx_t *ctx);
  /* Counts `n` late records dropped by a window operator (stats.records_late). */
  void (*count_late)(brook_ctx_t *ctx, size_t n);
  /* 1 once the run has failed (any worker): a failure coming back up is not the caller's. */
  int (*run_failed)(const brook_ctx_t *ctx);
  /* bk_emit_batch_owned and bk_ctx_routes_failures below. */
  brook_err_t (*emit_batch_owned)(brook_ctx_t *ctx, size_t port, brook_record_t *recs, size_t n);
  int (*routes_failures)(const brook_ctx_t *ctx);
} bk_ctx_services_t;

typedef struct bk_target {
  brook_ctx_t *ctx;
  size_t input;
} bk_target_t;

/* An output port: records emitted but not yet delivered, and where they go. Invariant:
 * n < cap between calls (a full buffer is delivered at once). */
struct bk_port {
  brook_record_t *buf;
  size_t n, cap;
  bk_target_t *to;
  size_t n_to;
};

/* One node's instance in one runtime; the context operators see. */
struct brook_ctx {
  brook_runtime_t *rt;
  struct bk_worker *w;          /* the worker this instance runs on */
  const bk_ctx_services_t *svc; /* the runtime's services (never NULL) */
  bk_node_t *node;
  void *state;
  int opened;
  bk_port_t *ports;
  size_t n_ports;
  size_t input;      /* input of the batch being processed */
  int input_owned;   /* ... lies in a buffer nothing reads after this operator: it may rewrite
                        the records in place and pass them on with bk_emit_batch_owned */
  int no_emit;       /* a map/key_by callback is running: emitting is a misuse */
  int emit_misused;  /* ... and it tried */
  bk_src_t *src;     /* for sources */
  int32_t task;      /* the input partition this instance serves; -1: the process-wide one */
  int has_error_msg; /* brook_ctx_set_error was called since the last failure */
  bk_errmsg_t error_msg;

  /* Event time (runtime/event_time.c). */
  brook_time_t wm;                    /* input watermark: minimum over non-idle inputs */
  int wm_idle;                        /* every input is idle: this node does not hold back others */
  struct bk_timerq *timers[2];        /* pending timers by brook_time_domain_t; NULL until used */
  struct bk_timer_state *timer_state; /* the same timers as state (runtime/timers.c) */

  /* Keyed state (runtime/context_state.c): stores opened in open(), freed after close(). */
  int in_open;
  struct brook_store **stores;
  size_t n_stores, cap_stores;
  /* The task's database when state is on disk (runtime/task.c), else NULL: stores opened with
   * the default backend live there (context_state.c). */
  struct bk_task_db *task_db;
  /* Built-in operators with state outside stores report its bytes (stats.state_bytes). */
  size_t (*state_memory)(const void *state);
};

static inline void bk_ctx_count_late(brook_ctx_t *ctx, size_t n) { ctx->svc->count_late(ctx, n); }

/* Delivers what `ctx` has buffered in its ports. */
static inline brook_err_t bk_ctx_flush(brook_ctx_t *ctx) { return ctx->svc->flush_ports(ctx); }

static inline int bk_ctx_run_failed(const brook_ctx_t *ctx) { return ctx->svc->run_failed(ctx); }

/* Emits records [0, n) of the batch being processed, rewritten in place (input_owned set;
 * `recs` is that batch): they go on without a copy, owned by the next operator if it is the
 * only one. Order is kept with what was emitted one by one before. */
static inline brook_err_t bk_emit_batch_owned(brook_ctx_t *ctx, size_t port, brook_record_t *recs,
                                              size_t n) {
  return ctx->svc->emit_batch_owned(ctx, port, recs, n);
}

/* 1 if a record failed now goes to the error stream, which must get the input record as it
 * came (an operator rewriting records in place keeps a copy then). */
static inline int bk_ctx_routes_failures(const brook_ctx_t *ctx) {
  return ctx->svc->routes_failures(ctx);
}

/* Fast emit for built-in operators: the next free slot of output `port` (valid port
 * required), to be filled and then committed with bk_emit_commit. */
static inline brook_record_t *bk_emit_slot(brook_ctx_t *ctx, size_t port) {
  bk_port_t *p = &ctx->ports[port];
  return &p->buf[p->n];
}

static inline brook_err_t bk_emit_commit(brook_ctx_t *ctx, size_t port) {
  bk_port_t *p = &ctx->ports[port];
  if (++p->n == p->cap)
    return ctx->svc->deliver(ctx, p);
  return BROOK_OK;
}

/* Emits a copy of `rec` on output `port` (valid port required). */
static inline brook_err_t bk_emit_fast(brook_ctx_t *ctx, size_t port, const brook_record_t *rec) {
  *bk_emit_slot(ctx, port) = *rec;
  return bk_emit_commit(ctx, port);
}

#endif
