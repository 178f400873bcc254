/* The window store's backend table (window_store_backend.c): a window operator opens its
 * state with brook_store_open(ctx, name, opts with backend = bk_wstore_backend() and
 * backend_opaque = a bk_wstore_open_args_t), and gets the store's layouts back through
 * args.out for its fast path. */
#ifndef BROOK_STATE_WINDOW_STORE_BACKEND_H
#define BROOK_STATE_WINDOW_STORE_BACKEND_H

#include <brook/state.h>

#include "state/window_store.h"

typedef struct bk_wstore_open_args {
  const brook_aggregator_t *agg; /* must outlive the store */
  size_t meta_size;              /* <= BK_WSTORE_META_MAX */
  bk_wstore_t **out;             /* receives the store's layouts */
} bk_wstore_open_args_t;

/* The table. Static; any thread. */
const brook_store_backend_t *bk_wstore_backend(void);

#endif
