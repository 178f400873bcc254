/* Timers as state (timers.c): each operator instance's pending timers are kept in a store of
 * their own, indexed for firing by the in-memory timer queues in ctx->timers. Loop thread. */
#ifndef BROOK_RUNTIME_TIMERS_H
#define BROOK_RUNTIME_TIMERS_H

#include <brook/state.h>
#include <brook/time.h>

#include "core/context.h"

/* The name of every instance's timer store (it is not among the operator's own stores: a
 * checkpoint keeps it in a section of its own, so it never clashes with a user's store). */
#define BK_TIMER_STORE_NAME "timers"

typedef struct bk_timer_state bk_timer_state_t;

/* The instance's timer store, or NULL if it never set a timer. */
brook_store_t *bk_timers_store(const brook_ctx_t *ctx);

/* Pops the earliest timer of `domain` due at or before `upto` into *out (key valid until the
 * next timer call on this instance) and removes it from the store. 1 if one was popped. */
int bk_timer_pop(brook_ctx_t *ctx, brook_time_domain_t domain, brook_time_t upto,
                 brook_timer_t *out);

/* Rebuilds the instance's timer queues from its timer store (after the store was restored).
 * BROOK_OK, BROOK_ERR_CORRUPT (an entry that is no timer) or BROOK_ERR_NOMEM; on failure
 * the queues are unchanged. */
brook_err_t bk_timers_rebuild(brook_ctx_t *ctx);

/* With state on disk (ctx->task_db): if the task database has this instance's timer store,
 * opens it and rebuilds the queues from it (task open, before the operator opens); every later
 * change is written through. Without one, or without a task database: nothing. BROOK_OK,
 * BROOK_ERR_CORRUPT, BROOK_ERR_IO or BROOK_ERR_NOMEM. */
brook_err_t bk_timers_reopen(brook_ctx_t *ctx);

/* Brings the timer store up to date with the queues (by default it is written only when read,
 * see timers.c). BROOK_OK or BROOK_ERR_NOMEM (the store is then left empty). */
brook_err_t bk_timers_sync(brook_ctx_t *ctx);

/* Syncs the store, then writes every later change through (a changelog listener or a durable
 * backend must see each change). BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_timers_keep_synced(brook_ctx_t *ctx);

/* Writes the instance's timers as a store snapshot (state.h format; empty if it has none). */
brook_err_t bk_timers_snapshot(brook_ctx_t *ctx, brook_write_fn write, void *opaque);

/* Replaces the instance's timers by those of a snapshot from bk_timers_snapshot: restores the
 * timer store and rebuilds the queues. BROOK_OK, BROOK_ERR_CORRUPT or BROOK_ERR_NOMEM; on
 * failure the queues are unchanged and the store is empty. */
brook_err_t bk_timers_restore(brook_ctx_t *ctx, const void *data, size_t len);

/* Decodes a timer store key into *out (key points into `skey`). 1, or 0 if malformed. */
int bk_timer_key_decode(const void *skey, size_t len, brook_timer_t *out);

#endif
