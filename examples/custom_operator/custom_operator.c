/* custom_operator: a heartbeat-absence detector, and the template for an operator of your
 * own (the interface is in custom_operator.h). Copy this file and change the numbered parts:
 *   1. the configuration, read once in open();
 *   2. the state: per-key values in a brook_store (opened in open(), owned by the runtime),
 *      and the few per-instance fields that are not per key;
 *   3. process(): one record in, state updated, timers moved, maybe records out;
 *   4. on_timer(): event-time timers (the watermark reached a time: "nothing came in time")
 *      and processing-time timers (the clock reached a time: periodic work);
 *   5. end_of_input(), close() and the function table.
 *
 * What it does: every device sends heartbeats. A device that sends none for `silence` ms of
 * event time is reported SILENT when the watermark passes that deadline, and BACK when it
 * beats again. Every `report_every` ms of processing time it reports how many devices it
 * tracks and how many are silent. A silent device is forgotten after `forget_after` ms so the
 * state does not grow forever with devices that were scrapped.
 *
 * Why event time for the deadline: heartbeats may arrive late or in bursts (a network outage,
 * a consumer catching up); the watermark says "every heartbeat sent before W has arrived", so
 * a deadline at or before W is a real silence, not a slow pipe. Processing time suits the
 * report: it is about the pipeline now, whatever the data's clock says.
 *
 * Every callback runs on the runtime's loop thread, one at a time: no locking. */
#include "custom_operator.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. configuration ------------------------------------------------------------------- */

#define MAX_CONFIG_MS (365 * 24 * BROOK_H) /* any longer is surely a mistake (a unit slip) */

typedef struct config {
  brook_time_t silence, report_every, forget_after;
} config_t;

/* Reads config `key` (default `dflt`) as ms in min..MAX_CONFIG_MS into *out. On a bad value,
 * explains it with brook_ctx_set_error (the runtime's or driver's start fails with that
 * message) and returns BROOK_ERR_INVALID_ARG. */
static brook_err_t config_ms(brook_ctx_t *ctx, const char *key, brook_time_t dflt, brook_time_t min,
                             brook_time_t *out) {
  const char *text = brook_ctx_config(ctx, key);
  if (!text) {
    *out = dflt;
    return BROOK_OK;
  }
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (*text < '0' || *text > '9' || *end || errno || v < min || v > MAX_CONFIG_MS) {
    brook_ctx_set_error(ctx, "config %s=\"%s\": must be a whole number of ms in %lld..%lld", key,
                        text, (long long)min, (long long)MAX_CONFIG_MS);
    return BROOK_ERR_INVALID_ARG;
  }
  *out = v;
  return BROOK_OK;
}

static brook_err_t config_read(brook_ctx_t *ctx, config_t *c) {
  brook_err_t err;
  if ((err = config_ms(ctx, "silence", 30 * BROOK_S, 1, &c->silence)) != BROOK_OK ||
      (err = config_ms(ctx, "report_every", BROOK_MIN, 0, &c->report_every)) != BROOK_OK ||
      (err = config_ms(ctx, "forget_after", 0, 0, &c->forget_after)) != BROOK_OK)
    return err;
  if (c->forget_after != 0 && c->forget_after <= c->silence) {
    brook_ctx_set_error(ctx, "config forget_after=%lld must be 0 (never) or more than silence=%lld",
                        (long long)c->forget_after, (long long)c->silence);
    return BROOK_ERR_INVALID_ARG;
  }
  return BROOK_OK;
}

/* ---- 2. state --------------------------------------------------------------------------- */

/* One device, the value of the store "devices" (key = the device id). A fixed-size value lets
 * brook_store_update change it in place: no copy per heartbeat. Only plain bytes go into a
 * store (no pointers): it can then be snapshotted and restored, or later changelogged. */
typedef struct device {
  brook_time_t last_seen; /* event time of the newest heartbeat */
  int32_t silent;         /* a SILENT was emitted and no heartbeat came since */
} device_t;

/* The per-instance state, created in open() and freed in close(). Per-key data does NOT go
 * here: it goes into the store, which the runtime owns, sizes and accounts for. */
typedef struct watch {
  config_t cfg;
  brook_store_t *devices;
  uint64_t heartbeats; /* since the last report */
  brook_time_t newest; /* the newest heartbeat's event time, BROOK_TIME_MIN before any */
} watch_t;

/* The timers' tags: one device has up to two event-time timers, told apart by their tag. */
enum { TAG_SILENT = 1, TAG_FORGET = 2 };

/* Event times are user data: near the ends of the range, t + d must not overflow. */
static brook_time_t time_add(brook_time_t t, brook_time_t d) {
  brook_time_t sum;
  return __builtin_add_overflow(t, d, &sum) ? BROOK_TIME_MAX : sum;
}

/* Arms (set = 1) or cancels (set = 0) the device's event-time timers for `last_seen`. A timer
 * is identified by (domain, time, key, tag): cancelling needs the same four values. */
static brook_err_t device_timers(brook_ctx_t *ctx, const watch_t *w, const void *key,
                                 size_t key_len, brook_time_t last_seen, int set) {
  brook_time_t at[2] = {time_add(last_seen, w->cfg.silence),
                        time_add(last_seen, w->cfg.forget_after)};
  uint64_t tags[2] = {TAG_SILENT, TAG_FORGET};
  for (int i = 0; i < (w->cfg.forget_after ? 2 : 1); i++) {
    brook_err_t err = set ? brook_timer_set(ctx, BROOK_EVENT_TIME, at[i], key, key_len, tags[i])
                          : brook_timer_delete(ctx, BROOK_EVENT_TIME, at[i], key, key_len, tags[i]);
    if (err != BROOK_OK && err != BROOK_ERR_NOT_FOUND) /* NOT_FOUND: it has fired already */
      return err;
  }
  return BROOK_OK;
}

/* Emits an event on output 0. `key` may be borrowed for this call only (a timer's key is):
 * emitted bytes must live until the batch is done, so they are copied into batch memory. */
static brook_err_t emit_event(brook_ctx_t *ctx, const void *key, size_t key_len, brook_time_t ts,
                              heartbeat_event_t e) {
  void *k = brook_ctx_alloc(ctx, key_len ? key_len : 1);
  heartbeat_event_t *v = brook_ctx_alloc(ctx, sizeof(*v));
  if (!k || !v)
    return BROOK_ERR_NOMEM;
  memcpy(k, key, key_len);
  *v = e;
  brook_record_t out = {
      .key = k, .key_len = key_len, .value = v, .value_len = sizeof(*v), .timestamp = ts};
  return brook_emit_to(ctx, 0, &out);
}

/* Emits a report on output 1: the store is walked to count the silent devices (an operator
 * may iterate its store between records; order is unspecified). */
static brook_err_t emit_report(brook_ctx_t *ctx, watch_t *w, brook_time_t ts) {
  heartbeat_report_t *r = brook_ctx_alloc(ctx, sizeof(*r));
  if (!r)
    return BROOK_ERR_NOMEM;
  *r = (heartbeat_report_t){.devices = brook_store_count(w->devices),
                            .heartbeats = w->heartbeats,
                            .watermark = brook_ctx_watermark(ctx)};
  size_t cursor = 0, key_len, value_len;
  const void *key, *value;
  while (brook_store_next(w->devices, &cursor, &key, &key_len, &value, &value_len)) {
    device_t d;
    memcpy(&d, value, sizeof(d));
    r->silent += d.silent != 0;
  }
  w->heartbeats = 0;
  brook_record_t out = {.value = r, .value_len = sizeof(*r), .timestamp = ts};
  return brook_emit_to(ctx, 1, &out);
}

/* ---- the callbacks ---------------------------------------------------------------------- */

/* open: once per instance (per task downstream of a Kafka source), before any record. Reads
 * the configuration, opens the stores (only allowed here) and arms the first periodic
 * timer. On failure the runtime does not start; close() is not called, so free what was
 * allocated here (stores belong to the runtime and need no freeing). */
static brook_err_t watch_open(brook_ctx_t *ctx, void *opaque, void **state) {
  (void)opaque; /* the pointer given to brook_operator_add (unused here) */
  config_t cfg;
  brook_err_t err = config_read(ctx, &cfg);
  if (err != BROOK_OK)
    return err;
  watch_t *w = calloc(1, sizeof(*w));
  if (!w)
    return BROOK_ERR_NOMEM;
  w->cfg = cfg;
  w->newest = BROOK_TIME_MIN;
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = sizeof(device_t); /* fixed size: brook_store_update works in place */
  err = brook_store_open(ctx, "devices", &so, &w->devices);
  /* The report timer: processing time, no key (one per instance). */
  if (err == BROOK_OK && cfg.report_every)
    err = brook_timer_set(ctx, BROOK_PROCESSING_TIME,
                          time_add(brook_ctx_now(ctx), cfg.report_every), NULL, 0, 0);
  if (err != BROOK_OK) {
    free(w);
    return err;
  }
  *state = w;
  return BROOK_OK;
}

/* ---- 3. process ---- */

/* process: one heartbeat, borrowed for this call. An error return applies the topology's
 * error policy to this record (fail the run, skip it, or route it to the error stream), so
 * bad input is an error with a message, not a crash and not silently ignored. */
static brook_err_t watch_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  watch_t *w = state;
  if (rec->key_len == 0) {
    brook_ctx_set_error(ctx, "a heartbeat needs the device id as its key");
    return BROOK_ERR_INVALID_ARG;
  }
  w->heartbeats++;
  if (rec->timestamp > w->newest)
    w->newest = rec->timestamp;
  device_t *d;
  int created;
  brook_err_t err = brook_store_update(w->devices, rec->key, rec->key_len, (void **)&d, &created);
  if (err != BROOK_OK)
    return err;
  if (!created && rec->timestamp <= d->last_seen)
    return BROOK_OK; /* out of order or a duplicate: the newest heartbeat already counts */

  /* `d` points into the store until the next call on it: read and write it first. */
  device_t before = *d;
  d->last_seen = rec->timestamp;
  d->silent = 0;
  if (!created && (err = device_timers(ctx, w, rec->key, rec->key_len, before.last_seen, 0)) < 0)
    return err;
  if ((err = device_timers(ctx, w, rec->key, rec->key_len, rec->timestamp, 1)) < 0)
    return err;
  if (!created && before.silent) {
    heartbeat_event_t back = {HEARTBEAT_BACK, before.last_seen, rec->timestamp - before.last_seen};
    return emit_event(ctx, rec->key, rec->key_len, rec->timestamp, back);
  }
  return BROOK_OK;
}

/* ---- 4. timers ---- */

/* A device's deadline: SILENT, or time to forget it. */
static brook_err_t device_deadline(brook_ctx_t *ctx, watch_t *w, const brook_timer_t *t) {
  /* At the end of a bounded input the watermark jumps to the end of time and every pending
   * event-time timer fires. A deadline that no heartbeat has passed yet (in event time) is
   * then not a silence: the input ended, not the device, so say nothing. Deadlines that the
   * data did pass still count. (An operator whose timers mean "emit what you have", like a
   * window, would emit everything here instead.) */
  if (brook_ctx_watermark(ctx) == BROOK_TIME_MAX && t->time > w->newest)
    return BROOK_OK;
  const void *value;
  size_t value_len;
  if (brook_store_get(w->devices, t->key, t->key_len, &value, &value_len) != BROOK_OK)
    return BROOK_OK; /* forgotten already */
  if (t->tag == TAG_FORGET) {
    brook_store_delete(w->devices, t->key, t->key_len); /* present: found just above */
    return BROOK_OK;
  }
  /* Present, so this changes it in place (no copy, no new key). */
  device_t *d;
  brook_err_t err = brook_store_update(w->devices, t->key, t->key_len, (void **)&d, NULL);
  if (err != BROOK_OK)
    return err;
  if (d->silent)
    return BROOK_OK;
  d->silent = 1;
  heartbeat_event_t silent = {HEARTBEAT_SILENT, d->last_seen, w->cfg.silence};
  return emit_event(ctx, t->key, t->key_len, t->time, silent);
}

/* The periodic report, then the next one. The next time is computed from the due time, not
 * from "now + period", so reports do not drift; a clock that jumped over several periods
 * (a stalled loop, a suspended laptop) gives one report, not a burst of stale ones. */
static brook_err_t periodic_report(brook_ctx_t *ctx, watch_t *w, const brook_timer_t *t) {
  brook_err_t err = emit_report(ctx, w, t->time);
  if (err != BROOK_OK)
    return err;
  brook_time_t now = brook_ctx_now(ctx), next = time_add(t->time, w->cfg.report_every);
  if (next <= now)
    next = time_add(now - (now - t->time) % w->cfg.report_every, w->cfg.report_every);
  return brook_timer_set(ctx, BROOK_PROCESSING_TIME, next, NULL, 0, 0);
}

/* on_timer: a timer set with brook_timer_set is due. Its key is borrowed for the call.
 * Records emitted here go downstream before the watermark that fired the timer. An error
 * return fails the run (there is no input record to apply a policy to). */
static brook_err_t watch_on_timer(brook_ctx_t *ctx, void *state, const brook_timer_t *t) {
  watch_t *w = state;
  return t->domain == BROOK_EVENT_TIME ? device_deadline(ctx, w, t) : periodic_report(ctx, w, t);
}

/* ---- 5. the end, and the function table ---- */

/* end_of_input: every input has ended (not after brook_runtime_stop). A last report. */
static brook_err_t watch_end_of_input(brook_ctx_t *ctx, void *state) {
  return emit_report(ctx, state, brook_ctx_now(ctx));
}

/* close: once per successful open(), also after a failure. The stores are the runtime's. */
static void watch_close(void *state, void *opaque) {
  (void)opaque;
  free(state);
}

/* Start with the version; callbacks left out stay NULL. on_timer is what allows timers. */
const brook_operator_t heartbeat_watch_operator = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "heartbeat_watch",
    .open = watch_open,
    .process = watch_process,
    .end_of_input = watch_end_of_input,
    .close = watch_close,
    .on_timer = watch_on_timer,
};
