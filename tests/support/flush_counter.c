/* See flush_counter.h. */
#include "flush_counter.h"

#include <stdlib.h>
#include <string.h>

typedef struct fc_state {
  flush_counter_t *fc;
  brook_store_t *store;
  fc_inst_report_t r;
  long since_flush;
  brook_record_t *held; /* buffer mode: copies (malloc'd values) until flush */
  size_t n_held, cap_held;
} fc_state_t;

void flush_counter_init(flush_counter_t *fc) {
  memset(fc, 0, sizeof(*fc));
  uv_mutex_init(&fc->mu);
}

void flush_counter_destroy(flush_counter_t *fc) { uv_mutex_destroy(&fc->mu); }

static brook_err_t on_change(const void *key, size_t key_len, const void *value, size_t value_len,
                             void *opaque) {
  (void)key, (void)key_len, (void)value, (void)value_len;
  fc_state_t *s = opaque;
  s->r.listener_calls++;
  uv_mutex_lock(&s->fc->mu);
  s->fc->listener_calls++;
  uv_mutex_unlock(&s->fc->mu);
  return BROOK_OK;
}

static brook_err_t fc_open(brook_ctx_t *ctx, void *opaque, void **state) {
  fc_state_t *s = calloc(1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->fc = opaque;
  s->r.task = brook_ctx_task(ctx);
  brook_store_opts_t so;
  brook_store_opts_init(&so);
  so.value_size = sizeof(int64_t);
  brook_err_t err = brook_store_open(ctx, "seen", &so, &s->store);
  if (err < 0) {
    free(s);
    return err;
  }
  brook_store_set_listener(s->store, on_change, s);
  *state = s;
  return BROOK_OK;
}

static brook_err_t fc_process(brook_ctx_t *ctx, void *state, const brook_record_t *rec) {
  fc_state_t *s = state;
  void *v;
  brook_err_t err = brook_store_update(s->store, "k", 1, &v, NULL);
  if (err < 0)
    return err;
  int64_t n;
  memcpy(&n, v, sizeof(n));
  n++;
  memcpy(v, &n, sizeof(n));
  if (s->fc->on_record)
    s->fc->on_record(ctx, rec, s->fc->on_record_opaque);
  s->r.records++;
  s->since_flush++;
  uv_mutex_lock(&s->fc->mu);
  s->fc->records++;
  uv_mutex_unlock(&s->fc->mu);
  if (!s->fc->buffer)
    return brook_emit(ctx, rec);
  if (s->n_held == s->cap_held) {
    size_t cap = s->cap_held ? 2 * s->cap_held : 64;
    brook_record_t *h = realloc(s->held, cap * sizeof(*h));
    if (!h)
      return BROOK_ERR_NOMEM;
    s->held = h;
    s->cap_held = cap;
  }
  void *copy = malloc(rec->value_len ? rec->value_len : 1);
  if (!copy)
    return BROOK_ERR_NOMEM;
  memcpy(copy, rec->value, rec->value_len);
  s->held[s->n_held++] = (brook_record_t){.value = copy, .value_len = rec->value_len};
  return BROOK_OK;
}

/* Buffer mode: passes the held records on (copies in the batch arena) and frees them. */
static brook_err_t release_held(brook_ctx_t *ctx, fc_state_t *s) {
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < s->n_held; i++) {
    brook_record_t rec = s->held[i];
    void *v = err >= 0 ? brook_ctx_alloc(ctx, rec.value_len ? rec.value_len : 1) : NULL;
    if (v) {
      memcpy(v, rec.value, rec.value_len);
      rec.value = v;
      err = brook_emit(ctx, &rec);
    } else if (err >= 0) {
      err = BROOK_ERR_NOMEM;
    }
    free((void *)s->held[i].value);
  }
  s->n_held = 0;
  return err;
}

static brook_err_t fc_flush(brook_ctx_t *ctx, void *state) {
  fc_state_t *s = state;
  int dirty = s->since_flush > 0;
  s->since_flush = 0;
  s->r.flushes++;
  s->r.dirty_flushes += dirty;
  uv_mutex_lock(&s->fc->mu);
  s->fc->flushes++;
  s->fc->dirty_flushes += dirty;
  uv_mutex_unlock(&s->fc->mu);
  return release_held(ctx, s);
}

static void fc_close(void *state, void *opaque) {
  (void)opaque;
  fc_state_t *s = state;
  uv_mutex_lock(&s->fc->mu);
  if (s->fc->n_closed < FC_MAX_INST)
    s->fc->closed[s->fc->n_closed++] = s->r;
  uv_mutex_unlock(&s->fc->mu);
  for (size_t i = 0; i < s->n_held; i++) /* a failed run: never flushed */
    free((void *)s->held[i].value);
  free(s->held);
  free(s);
}

const brook_operator_t flush_counter_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "flush_counter",
    .open = fc_open,
    .process = fc_process,
    .flush = fc_flush,
    .close = fc_close,
};
