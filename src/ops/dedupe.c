/* Dedupe per key within an event-time horizon: the first record of a key passes and opens a
 * horizon; records of the key less than `horizon` ms away from it (after or before) are
 * dropped. State expires by an event-time timer at the end of the horizon, so memory follows
 * the keys seen recently, not all keys. Timestamps may be anywhere in the int64_t range: the
 * distance to the first record is measured exactly and the expiry time saturates at
 * BROOK_TIME_MAX (such a key's state then lasts until the end of input). */
#include <string.h>

#include <brook/aggregate.h>
#include <brook/state.h>
#include <brook/time.h>

#include "core/context.h"
#include "core/topology.h"
#include "ops/keyed_add.h"
#include "state/store.h"
#include "time/time_arith.h"

static brook_err_t dedupe_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)opaque;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = sizeof(brook_time_t); /* the first record's timestamp */
  brook_store_t *s;
  brook_err_t err = brook_store_open(ctx, "dedupe", &so, &s);
  *state = s;
  return err;
}

static brook_err_t dedupe_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  brook_store_t *s = state;
  brook_time_t horizon = *(const brook_time_t *)ctx->node->opaque;
  uint64_t h = bk_hash_bytes(rec->key, rec->key_len);
  void *v;
  int created;
  brook_err_t err = bk_store_upsert(s, rec->key, rec->key_len, h, &v, &created);
  if (err < 0)
    return err;
  if (!created) {
    brook_time_t first;
    memcpy(&first, v, sizeof(first));
    if (bk_time_within(rec->timestamp, first, horizon))
      return BROOK_OK; /* a duplicate inside the horizon */
    if (rec->timestamp < first)
      return bk_emit_fast(ctx, 0, rec); /* far older: passes; the later horizon stays open */
  }
  memcpy(v, &rec->timestamp, sizeof(rec->timestamp));
  if ((err = brook_timer_set(ctx, BROOK_EVENT_TIME, bk_time_add_sat(rec->timestamp, horizon - 1),
                             rec->key, rec->key_len, (uint64_t)rec->timestamp)) < 0)
    return err;
  return bk_emit_fast(ctx, 0, rec);
}

static brook_err_t dedupe_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  (void)ctx;
  brook_store_t *s = state;
  uint64_t h = bk_hash_bytes(t->key, t->key_len);
  const void *v = bk_store_find(s, t->key, t->key_len, h, NULL);
  brook_time_t first;
  if (v && (memcpy(&first, v, sizeof(first)), first == (brook_time_t)t->tag))
    return bk_store_remove(s, t->key, t->key_len, h); /* else a newer horizon replaced it */
  return BROOK_OK;
}

static const brook_operator_t dedupe_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "dedupe",
    .open = dedupe_open,
    .process = dedupe_process,
    .on_timer = dedupe_on_timer,
};

brook_stream_t *brook_dedupe(brook_stream_t *in, brook_time_t horizon,
                             const brook_aggregate_opts_t *opts) {
  return bk_keyed_add(in, &dedupe_op, &horizon, sizeof(horizon), opts,
                      horizon > 0 ? NULL : "horizon must be > 0");
}
