/* Test helpers: collecting sink, string-array generator, run-to-completion (see collect.h). */
#include "collect.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- the collecting sink ---- */

static char *copy_bytes(const void *p, size_t n) {
  if (!p)
    return NULL;
  char *d = malloc(n + 1);
  assert_non_null(d);
  if (n)
    memcpy(d, p, n);
  d[n] = '\0';
  return d;
}

void collect_init(collect_t *c) { memset(c, 0, sizeof(*c)); }

void collect_clear(collect_t *c) {
  for (size_t i = 0; i < c->n; i++) {
    collect_rec_t *r = &c->recs[i];
    free(r->key);
    free(r->value);
    for (size_t h = 0; h < r->header_count; h++) {
      free(r->headers[h].name);
      free(r->headers[h].value);
    }
    free(r->headers);
  }
  c->n = 0;
  c->calls = 0;
  c->flushes = 0;
}

void collect_free(collect_t *c) {
  collect_clear(c);
  free(c->recs);
  c->recs = NULL;
  c->cap = 0;
}

void collect_append(collect_t *c, const brook_record_t *rec) {
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 16;
    c->recs = realloc(c->recs, c->cap * sizeof(*c->recs));
    assert_non_null(c->recs);
  }
  collect_rec_t *r = &c->recs[c->n++];
  memset(r, 0, sizeof(*r));
  r->key = copy_bytes(rec->key, rec->key_len);
  r->key_len = rec->key_len;
  r->value = copy_bytes(rec->value, rec->value_len);
  r->value_len = rec->value_len;
  r->timestamp = rec->timestamp;
  if (rec->header_count) {
    r->headers = calloc(rec->header_count, sizeof(*r->headers));
    assert_non_null(r->headers);
    r->header_count = rec->header_count;
    for (size_t h = 0; h < rec->header_count; h++) {
      r->headers[h].name = copy_bytes(rec->headers[h].name, strlen(rec->headers[h].name));
      r->headers[h].value = copy_bytes(rec->headers[h].value, rec->headers[h].value_len);
      r->headers[h].value_len = rec->headers[h].value_len;
    }
  }
}

brook_err_t collect_sink_fn(const brook_record_t *rec, void *opaque) {
  collect_t *c = opaque;
  c->calls++;
  if (c->fail_value && rec->value && rec->value_len == strlen(c->fail_value) &&
      memcmp(rec->value, c->fail_value, rec->value_len) == 0)
    return c->fail_err;
  collect_append(c, rec);
  return BROOK_OK;
}

brook_err_t collect_flush_fn(void *opaque) {
  collect_t *c = opaque;
  c->flushes++;
  return BROOK_OK;
}

brook_err_t collect_sink(brook_stream_t *in, collect_t *c) {
  return brook_sink_callback(in, collect_sink_fn, collect_flush_fn, c);
}

const char *collect_value(const collect_t *c, size_t i) {
  assert_true(i < c->n);
  return c->recs[i].value ? c->recs[i].value : "";
}

const char *collect_key(const collect_t *c, size_t i) {
  assert_true(i < c->n);
  return c->recs[i].key ? c->recs[i].key : "";
}

const char *collect_header(const collect_t *c, size_t i, const char *name) {
  assert_true(i < c->n);
  const collect_rec_t *r = &c->recs[i];
  for (size_t h = 0; h < r->header_count; h++)
    if (strcmp(r->headers[h].name, name) == 0)
      return r->headers[h].value ? r->headers[h].value : "";
  return NULL;
}

void collect_assert_values(const collect_t *c, const char *const *expected, size_t n) {
  size_t common = c->n < n ? c->n : n;
  for (size_t i = 0; i < common; i++) {
    if (strcmp(collect_value(c, i), expected[i]) != 0)
      fail_msg("record %zu: got '%s', expected '%s'", i, collect_value(c, i), expected[i]);
  }
  if (c->n != n)
    fail_msg("got %zu records, expected %zu (first missing/extra: '%s')", c->n, n,
             c->n < n ? expected[c->n] : collect_value(c, n));
}

size_t collect_find(const collect_t *c, const char *value, size_t from) {
  for (size_t i = from; i < c->n; i++)
    if (strcmp(collect_value(c, i), value) == 0)
      return i;
  return (size_t)-1;
}

/* ---- the string-array generator ---- */

void collect_gen_init(collect_gen_t *g, const char *const *values, size_t n) {
  memset(g, 0, sizeof(*g));
  g->values = values;
  g->n = n;
  g->ts_base = 1000;
}

void collect_gen_reset(collect_gen_t *g) {
  g->next = 0;
  g->calls = 0;
}

static const void *gen_bytes(brook_ctx_t *ctx, const collect_gen_t *g, const char *s, int *nomem) {
  if (!g->copy)
    return s;
  size_t n = strlen(s);
  char *d = brook_ctx_alloc(ctx, n ? n : 1);
  if (!d) {
    *nomem = 1;
    return NULL;
  }
  memcpy(d, s, n);
  return d;
}

brook_err_t collect_gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  collect_gen_t *g = opaque;
  g->calls++;
  if (g->next >= g->n)
    return BROOK_DONE;
  size_t i = g->next++;
  int nomem = 0;
  const char *v = g->values[i];
  if (v) {
    out->value = gen_bytes(ctx, g, v, &nomem);
    out->value_len = strlen(v);
  }
  const char *k = g->keys ? g->keys[i] : NULL;
  if (k) {
    out->key = gen_bytes(ctx, g, k, &nomem);
    out->key_len = strlen(k);
  }
  if (nomem)
    return BROOK_ERR_NOMEM;
  out->timestamp = g->ts_base + (brook_time_t)i;
  out->headers = g->headers;
  out->header_count = g->header_count;
  if (g->fail_err && i == g->fail_index)
    return g->fail_err;
  return BROOK_OK;
}

brook_stream_t *collect_gen_source(brook_topology_t *t, const char *name, collect_gen_t *g) {
  return brook_source_generator(t, name, collect_gen_fn, g, NULL);
}

/* ---- running ---- */

brook_err_t collect_run_topology(brook_topology_t *t, const brook_runtime_opts_t *opts,
                                 collect_prepare_fn prepare, void *opaque, collect_run_t *res) {
  memset(res, 0, sizeof(*res));
  res->stats.struct_size = sizeof(res->stats);
  brook_runtime_t *rt = NULL;
  res->new_status = brook_runtime_new(&rt, t, opts);
  if (res->new_status != BROOK_OK) {
    assert_null(rt);
    res->status = res->new_status;
    snprintf(res->message, sizeof(res->message), "%s", brook_topology_last_error(t));
    return res->status;
  }
  assert_non_null(rt);
  brook_err_t err = prepare ? prepare(rt, opaque) : BROOK_OK;
  if (err == BROOK_OK)
    err = brook_runtime_run(rt);
  res->status = err;
  res->done = brook_runtime_done(rt);
  snprintf(res->message, sizeof(res->message), "%s", brook_runtime_last_error(rt));
  assert_int_equal(brook_runtime_stats(rt, &res->stats), BROOK_OK);
  brook_runtime_free(rt);
  return err;
}

brook_err_t collect_run_batch(brook_topology_t *t, size_t batch_size, collect_run_t *res) {
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (batch_size)
    o.batch_size = batch_size;
  return collect_run_topology(t, &o, NULL, NULL, res);
}

brook_topology_t *collect_topology(brook_error_policy_t policy) {
  brook_topology_opts_t o;
  brook_topology_opts_init(&o);
  o.error_policy = policy;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, &o), BROOK_OK);
  assert_non_null(t);
  return t;
}

/* ---- owned strings ---- */

typedef struct owned_str {
  struct owned_str *next;
  char text[];
} owned_str_t;

static owned_str_t *owned_strings;

const char *collect_strf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  assert_true(n >= 0);
  owned_str_t *s = malloc(sizeof(*s) + (size_t)n + 1);
  assert_non_null(s);
  va_start(ap, fmt);
  vsnprintf(s->text, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s->next = owned_strings;
  owned_strings = s;
  return s->text;
}

void collect_strings_free(void) {
  while (owned_strings) {
    owned_str_t *s = owned_strings;
    owned_strings = s->next;
    free(s);
  }
}
