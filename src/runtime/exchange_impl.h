/* The exchanges' internals, shared by exchange.c (the record path) and exchange_setup.c
 * (the tables). Everything in bk_xchg_worker_t is touched by its worker's thread only,
 * except the rings' other ends and `want_space`. */
#ifndef BROOK_RUNTIME_EXCHANGE_IMPL_H
#define BROOK_RUNTIME_EXCHANGE_IMPL_H

#include <stdint.h>

#include "runtime/exchange.h"
#include "runtime/spsc_ring.h"

#define XCHG_RING_CHUNKS 16 /* chunks in flight per pair of workers */
#define XCHG_BACK_CHUNKS 32 /* empty chunks on their way back for reuse */
#define XCHG_CHUNK_BYTES (32 * 1024)
#define XCHG_RUN 256 /* records sorted by destination at a time (route_by_key) */

enum { XC_DATA, XC_WM, XC_END };

typedef struct xchunk xchunk_t;
struct xchunk {
  xchunk_t *next;       /* in the producer's FIFO of chunks waiting for ring space */
  uint32_t x;           /* exchange index */
  int kind;             /* XC_* */
  int errors;           /* records of the error stream (delivered with error_depth > 0) */
  int has_wm;           /* XC_DATA: wm and wm_state follow its records */
  brook_time_t wm;      /* XC_WM, or XC_DATA with has_wm */
  int wm_state;         /* BK_WM_* */
  size_t n, cap;        /* records */
  size_t used, size;    /* bytes in data */
  brook_record_t *recs; /* inside this allocation */
  unsigned char *data;
};

/* route_by_key's work space, one per by-key exchange: delivering this worker's share runs
 * the operators after it, which may route through another exchange. A run of `run` records
 * is sorted into one bucket of record indexes per destination worker. */
typedef struct xscratch {
  size_t run;       /* XCHG_RUN, less with many workers (bucket memory: n_workers * run) */
  uint16_t *bucket; /* [n_workers * run] */
  size_t *count;    /* [n_workers] */
  brook_record_t local[XCHG_RUN];
} xscratch_t;

/* One exchange, the same on every worker. */
typedef struct xdef {
  size_t from_pos, port; /* the node (plan position) and output its records leave by */
  int gather;            /* 1: every record to worker 0 (an input of a once node) */
  uint32_t n_tasks;      /* by key: the target sub-topology's task count */
  uint16_t *task_worker; /* by key: task -> its worker (t % n_workers) */
  size_t *to;            /* the targets it feeds: indexes into the port's `to` */
  size_t n_to;
  xscratch_t *scratch; /* by key */
} xdef_t;

/* How one output port's records are delivered when any of them cross workers. */
typedef struct xroute {
  int routed;
  int key_x;         /* the by-key exchange leaving by it, or -1 */
  uint32_t *gathers; /* gathers leaving by it (one per once target) */
  size_t n_gathers;
  size_t *local; /* targets fed directly on every worker */
  size_t n_local;
} xroute_t;

/* What worker w knows of exchange x from worker s. */
typedef struct xin {
  brook_time_t wm;
  int wm_state;
  int ended;
} xin_t;

/* What worker w sent of exchange x. */
typedef struct xsent {
  brook_time_t wm;
  int wm_state;
  int ended;
} xsent_t;

struct bk_xchg_worker {
  size_t n_x;
  xdef_t *defs;         /* [n_x] */
  xroute_t **routes;    /* plan position -> [n_ports] routes, or NULL: nothing crosses */
  size_t *in_off;       /* plan position -> its inputs' first entry in in_x */
  int *in_x;            /* input -> the exchange feeding it, or -1 */
  bk_spsc_t *in;        /* [n_workers]: from worker s (in[w->index] unused) */
  bk_spsc_t *back;      /* [n_workers]: empty chunks worker s sends back for reuse */
  xchunk_t **filling;   /* [n_x * n_workers]: chunk being filled for (x, worker) */
  xchunk_t **wait_head; /* [n_workers]: FIFO of chunks waiting for ring space */
  xchunk_t **wait_tail;
  unsigned char *wake; /* [n_workers]: got chunks since the last wake-up */
  xin_t *xin;          /* [n_x * n_workers] */
  xsent_t *sent;       /* [n_x] */
  size_t fin_pos;      /* bk_xchg_finish: next plan position */
  int blocked;
  atomic_int want_space; /* set by a blocked producer: consumers wake it after popping */
};

#endif
