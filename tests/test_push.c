/* The push source: concurrent producers (every record exactly once, per-producer order),
 * the queue bounds (BROOK_ERR_FULL, credit, max_bytes, BROOK_ERR_TOO_LARGE), waiting for
 * credit (brook_push_wait, on_credit), ending the source, pushes before start, copying of
 * the caller's bytes, and the attach-mode variants. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <uv.h>

#include "run_helpers.h"
#include "wait.h"

#define WAIT_MS 30000
#define MAX_PRODUCERS 4

/* The value every test pushes: who made it and its number in that producer's sequence. */
typedef struct item {
  uint32_t producer;
  uint32_t pad;
  uint64_t seq;
} item_t;

static brook_err_t push_item(brook_push_source_t *p, uint32_t producer, uint64_t seq) {
  item_t it = {producer, 0, seq};
  brook_record_t rec = {.value = &it, .value_len = sizeof(it)};
  return brook_push(p, &rec);
}

static brook_err_t push_item_wait(brook_push_source_t *p, uint32_t producer, uint64_t seq,
                                  int64_t timeout_ms) {
  item_t it = {producer, 0, seq};
  brook_record_t rec = {.value = &it, .value_len = sizeof(it)};
  return brook_push_wait(p, &rec, timeout_ms);
}

/* A sink checking that each producer's items arrive once and in order. It may run on a
 * thread other than the test's, so it records problems instead of asserting. An optional
 * gate holds the first record until the test opens it (to keep records queued). */
typedef struct order_sink {
  uint64_t next[MAX_PRODUCERS];
  uint64_t count;
  uint64_t bad; /* wrong size, unknown producer, duplicate, gap or reordering */
  int gated;
  wait_counter_t entered, gate;
} order_sink_t;

static void order_sink_init(order_sink_t *s, int gated) {
  memset(s, 0, sizeof(*s));
  s->gated = gated;
  wait_counter_init(&s->entered, 0);
  wait_counter_init(&s->gate, 0);
}

static void order_sink_destroy(order_sink_t *s) {
  wait_counter_destroy(&s->entered);
  wait_counter_destroy(&s->gate);
}

static brook_err_t sink_order(const brook_record_t *rec, void *opaque) {
  order_sink_t *s = opaque;
  if (s->gated && s->count == 0) {
    wait_counter_add(&s->entered, 1);
    wait_counter_wait_ge(&s->gate, 1, WAIT_MS);
  }
  s->count++;
  item_t it;
  if (rec->value_len != sizeof(it)) {
    s->bad++;
    return BROOK_OK;
  }
  memcpy(&it, rec->value, sizeof(it));
  if (it.producer >= MAX_PRODUCERS || it.seq != s->next[it.producer])
    s->bad++;
  else
    s->next[it.producer]++;
  return BROOK_OK;
}

typedef struct done_rec {
  int calls;
  brook_err_t status;
} done_rec_t;

static void on_done(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  (void)rt;
  done_rec_t *d = opaque;
  d->calls++;
  d->status = status;
}

/* push source "in" -> order sink. */
static brook_runtime_t *push_pipeline(const brook_push_opts_t *po, order_sink_t *s, done_rec_t *d) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_stream_t *in = brook_source_push(t, "in", po);
  assert_non_null(in);
  assert_int_equal(brook_sink_callback(in, sink_order, NULL, s), BROOK_OK);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (d) {
    o.on_done = on_done;
    o.on_done_opaque = d;
  }
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_topology_free(t);
  return rt;
}

/* ---- concurrent producers ---- */

#define PER_PRODUCER 25000

typedef struct producer {
  brook_push_source_t *src;
  uint32_t id;
  uint64_t n;
  uint64_t failures;
} producer_t;

static void *produce_thread(void *arg) {
  producer_t *pr = arg;
  for (uint64_t i = 0; i < pr->n; i++)
    if (push_item_wait(pr->src, pr->id, i, WAIT_MS) != BROOK_OK)
      pr->failures++;
  return NULL;
}

static void four_producers_exactly_once_in_order(void **state) {
  (void)state;
  order_sink_t s;
  order_sink_init(&s, 0);
  done_rec_t d = {0};
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 1000; /* well below the total: producers must wait for credit */
  brook_runtime_t *rt = push_pipeline(&po, &s, &d);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");
  assert_non_null(src);

  runner_t r = {rt, BROOK_OK};
  pthread_t runner, th[MAX_PRODUCERS];
  producer_t pr[MAX_PRODUCERS];
  assert_int_equal(pthread_create(&runner, NULL, run_thread, &r), 0);
  for (uint32_t i = 0; i < MAX_PRODUCERS; i++) {
    pr[i] = (producer_t){src, i, PER_PRODUCER, 0};
    assert_int_equal(pthread_create(&th[i], NULL, produce_thread, &pr[i]), 0);
  }
  for (int i = 0; i < MAX_PRODUCERS; i++)
    pthread_join(th[i], NULL);
  assert_int_equal(brook_push_end(src), BROOK_OK);
  pthread_join(runner, NULL);

  assert_int_equal(r.result, BROOK_OK);
  assert_int_equal(d.calls, 1);
  for (int i = 0; i < MAX_PRODUCERS; i++) {
    assert_int_equal(pr[i].failures, 0);
    assert_int_equal(s.next[i], PER_PRODUCER);
  }
  assert_int_equal(s.bad, 0);
  assert_int_equal(s.count, MAX_PRODUCERS * PER_PRODUCER);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, MAX_PRODUCERS * PER_PRODUCER);
  assert_int_equal(st.records_out, MAX_PRODUCERS * PER_PRODUCER);
  brook_runtime_free(rt);
  order_sink_destroy(&s);
}

/* ---- the record bound, credit and on_credit ---- */

typedef struct credit_rec {
  int calls;
  brook_err_t retry; /* the refused push, retried from on_credit */
  size_t credit_seen;
} credit_rec_t;

static void on_credit(brook_push_source_t *src, void *opaque) {
  credit_rec_t *c = opaque;
  if (c->calls++ == 0) {
    c->credit_seen = brook_push_credit(src);
    c->retry = push_item(src, 0, 100);
    brook_push_end(src);
  }
}

static void full_at_bound_then_on_credit(void **state) {
  (void)state;
  order_sink_t s;
  order_sink_init(&s, 0);
  done_rec_t d = {0};
  credit_rec_t c = {0};
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 100;
  po.on_credit = on_credit;
  po.on_credit_opaque = &c;
  brook_runtime_t *rt = push_pipeline(&po, &s, &d);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");

  /* Not started: nothing drains, so the bound is reached exactly. */
  assert_int_equal(brook_push_credit(src), 100);
  for (uint64_t i = 0; i < 100; i++) {
    assert_int_equal(push_item(src, 0, i), BROOK_OK);
    assert_int_equal(brook_push_credit(src), 100 - i - 1);
  }
  assert_int_equal(push_item(src, 0, 100), BROOK_ERR_FULL);
  assert_int_equal(brook_push_credit(src), 0);
  uint64_t t0 = wait_now_ms();
  assert_int_equal(push_item_wait(src, 0, 100, 50), BROOK_ERR_TIMEOUT);
  assert_true(wait_now_ms() - t0 >= 40);
  assert_int_equal(push_item_wait(src, 0, 100, 0), BROOK_ERR_TIMEOUT);
  assert_int_equal(c.calls, 0);

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* on_credit pushes #100 and ends */
  assert_true(c.calls >= 1);
  assert_true(c.credit_seen > 0);
  assert_int_equal(c.retry, BROOK_OK);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, BROOK_OK);
  assert_int_equal(s.count, 101);
  assert_int_equal(s.next[0], 101);
  assert_int_equal(s.bad, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
  order_sink_destroy(&s);
}

/* ---- the byte bound ---- */

typedef struct bytes_sink {
  uint64_t count, bytes, bad;
} bytes_sink_t;

static brook_err_t sink_bytes(const brook_record_t *rec, void *opaque) {
  bytes_sink_t *s = opaque;
  s->count++;
  s->bytes += rec->value_len;
  for (size_t i = 0; i < rec->value_len; i++)
    if (((const unsigned char *)rec->value)[i] != (unsigned char)(s->count & 0xff))
      s->bad++;
  return BROOK_OK;
}

static void max_bytes_bounds_the_queue(void **state) {
  (void)state;
  bytes_sink_t bs = {0};
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_bytes = 1024;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(brook_sink_callback(brook_source_push(t, "in", &po), sink_bytes, NULL, &bs),
                   BROOK_OK);
  done_rec_t d = {0};
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.on_done = on_done;
  o.on_done_opaque = &d;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_topology_free(t);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");

  /* A record that alone exceeds max_bytes can never be queued (key and headers count). */
  unsigned char big[2000];
  memset(big, 0, sizeof(big));
  brook_record_t rec = {.value = big, .value_len = sizeof(big)};
  assert_int_equal(brook_push(src, &rec), BROOK_ERR_TOO_LARGE);
  assert_int_equal(brook_push_wait(src, &rec, 10), BROOK_ERR_TOO_LARGE);
  rec = (brook_record_t){.key = big, .key_len = 600, .value = big, .value_len = 600};
  assert_int_equal(brook_push(src, &rec), BROOK_ERR_TOO_LARGE);
  brook_header_t h = {"h", big, 1100};
  rec = (brook_record_t){.value = big, .value_len = 1, .headers = &h, .header_count = 1};
  assert_int_equal(brook_push(src, &rec), BROOK_ERR_TOO_LARGE);

  /* 100-byte records fill the byte bound long before the default record bound. */
  unsigned char v[100];
  uint64_t accepted = 0;
  brook_err_t err;
  for (;;) {
    memset(v, (int)((accepted + 1) & 0xff), sizeof(v)); /* the sink checks the fill byte */
    rec = (brook_record_t){.value = v, .value_len = sizeof(v)};
    if ((err = brook_push(src, &rec)) != BROOK_OK)
      break;
    accepted++;
    assert_true(accepted <= 10);
  }
  assert_int_equal(err, BROOK_ERR_FULL);
  assert_true(accepted >= 5);
  assert_true(accepted * sizeof(v) <= po.max_bytes);
  assert_int_equal(brook_push_wait(src, &rec, 20), BROOK_ERR_TIMEOUT);

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_push_end(src), BROOK_OK);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(d.calls, 1);
  assert_int_equal(bs.count, accepted);
  assert_int_equal(bs.bytes, accepted * sizeof(v));
  assert_int_equal(bs.bad, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
}

/* ---- brook_push_wait blocks until the loop drains ---- */

typedef struct waiter {
  brook_push_source_t *src;
  uint64_t seq;
  brook_err_t result;
  wait_counter_t finished;
} waiter_t;

static void *wait_push_thread(void *arg) {
  waiter_t *w = arg;
  w->result = push_item_wait(w->src, 0, w->seq, WAIT_MS);
  wait_counter_add(&w->finished, 1);
  return NULL;
}

static void push_wait_gets_credit_when_sink_drains(void **state) {
  (void)state;
  order_sink_t s;
  order_sink_init(&s, 1); /* the first record holds the loop thread in the sink */
  done_rec_t d = {0};
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 10;
  brook_runtime_t *rt = push_pipeline(&po, &s, &d);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");
  runner_t r = {rt, BROOK_OK};
  pthread_t runner;
  assert_int_equal(pthread_create(&runner, NULL, run_thread, &r), 0);

  uint64_t seq = 0;
  assert_int_equal(push_item(src, 0, seq++), BROOK_OK);
  assert_true(wait_counter_wait_ge(&s.entered, 1, WAIT_MS));
  /* Fill the bound (whether the record inside the sink still counts is not specified). */
  brook_err_t err;
  while ((err = push_item(src, 0, seq)) == BROOK_OK && seq < 100)
    seq++;
  assert_int_equal(err, BROOK_ERR_FULL);
  assert_true(seq >= 10 && seq <= 11);
  assert_int_equal(brook_push_credit(src), 0);
  assert_int_equal(push_item_wait(src, 0, seq, 30), BROOK_ERR_TIMEOUT);

  waiter_t w = {.src = src, .seq = seq};
  wait_counter_init(&w.finished, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, wait_push_thread, &w), 0);
  wait_counter_add(&s.gate, 1); /* the sink finishes: credit comes back */
  assert_true(wait_counter_wait_ge(&w.finished, 1, WAIT_MS));
  pthread_join(th, NULL);
  assert_int_equal(w.result, BROOK_OK);
  seq++;
  assert_int_equal(brook_push_end(src), BROOK_OK);
  assert_int_equal(brook_push_end(src), BROOK_OK); /* idempotent */
  assert_int_equal(push_item(src, 0, seq), BROOK_ERR_STOPPED);
  assert_int_equal(push_item_wait(src, 0, seq, 10), BROOK_ERR_STOPPED);
  pthread_join(runner, NULL);
  assert_int_equal(r.result, BROOK_OK);
  assert_int_equal(d.calls, 1);
  assert_int_equal(s.count, seq);
  assert_int_equal(s.next[0], seq);
  assert_int_equal(s.bad, 0);
  brook_runtime_free(rt);
  wait_counter_destroy(&w.finished);
  order_sink_destroy(&s);
}

/* ---- ending, pushes before start ---- */

static void pushes_before_start_and_push_end(void **state) {
  (void)state;
  order_sink_t s;
  order_sink_init(&s, 0);
  done_rec_t d = {0};
  brook_runtime_t *rt = push_pipeline(NULL, &s, &d);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");
  assert_non_null(src);
  assert_null(brook_runtime_push_source(rt, "nope"));
  assert_null(brook_runtime_push_source(rt, NULL));
  assert_int_equal(brook_push_credit(src), 65536); /* the default bound */
  for (uint64_t i = 0; i < 3000; i++)
    assert_int_equal(push_item(src, 1, i), BROOK_OK);
  assert_int_equal(brook_push_end(src), BROOK_OK);
  assert_int_equal(push_item(src, 1, 3000), BROOK_ERR_STOPPED);
  assert_int_equal(brook_push_credit(src), 0);
  /* An ended source ends the runtime once its queue is drained. */
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(d.calls, 1);
  assert_int_equal(s.count, 3000);
  assert_int_equal(s.next[1], 3000);
  assert_int_equal(s.bad, 0);
  brook_runtime_free(rt);
  order_sink_destroy(&s);
}

static void invalid_pushes(void **state) {
  (void)state;
  order_sink_t s;
  order_sink_init(&s, 0);
  brook_runtime_t *rt = push_pipeline(NULL, &s, NULL);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");
  brook_record_t ok = {.value = "x", .value_len = 1};
  assert_int_equal(brook_push(NULL, &ok), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push(src, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push_wait(NULL, &ok, 0), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push_end(NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push_credit(NULL), 0);
  brook_record_t bad = {.value = NULL, .value_len = 5};
  assert_int_equal(brook_push(src, &bad), BROOK_ERR_INVALID_ARG);
  bad = (brook_record_t){.key = NULL, .key_len = 3};
  assert_int_equal(brook_push(src, &bad), BROOK_ERR_INVALID_ARG);
  bad = (brook_record_t){.headers = NULL, .header_count = 1};
  assert_int_equal(brook_push(src, &bad), BROOK_ERR_INVALID_ARG);
  brook_header_t h = {NULL, "v", 1};
  bad = (brook_record_t){.headers = &h, .header_count = 1};
  assert_int_equal(brook_push(src, &bad), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_push_credit(src), 65536); /* nothing was queued */
  brook_runtime_free(rt); /* never started, records never pushed: nothing leaks */
  order_sink_destroy(&s);

  /* A push source needs a name, and bounds > 0. */
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_null(brook_source_push(t, NULL, NULL));
  brook_topology_free(t);
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 0;
  assert_null(brook_source_push(t, "in", &po));
  assert_int_not_equal(brook_topology_error(t), BROOK_OK);
  brook_topology_free(t);
}

/* ---- the caller's bytes are copied ---- */

typedef struct seen_rec {
  int key_null;
  char key[16], value[16], h1_name[16], h1_value[16], h2_name[16];
  size_t key_len, value_len, header_count, h1_value_len, h2_value_len;
  brook_time_t ts;
} seen_rec_t;

typedef struct copy_sink {
  int count;
  seen_rec_t seen[2];
} copy_sink_t;

static void copy_bytes(char *dst, size_t cap, const void *src, size_t len) {
  if (src && len < cap)
    memcpy(dst, src, len);
}

static brook_err_t sink_copy(const brook_record_t *rec, void *opaque) {
  copy_sink_t *c = opaque;
  if (c->count >= 2)
    return BROOK_ERR_USER;
  seen_rec_t *r = &c->seen[c->count++];
  r->ts = rec->timestamp;
  r->key_null = rec->key == NULL;
  r->key_len = rec->key_len;
  copy_bytes(r->key, sizeof(r->key), rec->key, rec->key_len);
  r->value_len = rec->value_len;
  copy_bytes(r->value, sizeof(r->value), rec->value, rec->value_len);
  r->header_count = rec->header_count;
  if (rec->header_count == 2) {
    snprintf(r->h1_name, sizeof(r->h1_name), "%s", rec->headers[0].name);
    r->h1_value_len = rec->headers[0].value_len;
    copy_bytes(r->h1_value, sizeof(r->h1_value), rec->headers[0].value, rec->headers[0].value_len);
    snprintf(r->h2_name, sizeof(r->h2_name), "%s", rec->headers[1].name);
    r->h2_value_len = rec->headers[1].value_len;
  }
  return BROOK_OK;
}

static void push_copies_key_value_and_headers(void **state) {
  (void)state;
  copy_sink_t c;
  memset(&c, 0, sizeof(c));
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(brook_sink_callback(brook_source_push(t, "in", NULL), sink_copy, NULL, &c),
                   BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_topology_free(t);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");

  char key[] = "key-1", value[] = "value-1", hname[] = "trace", hvalue[] = "abc", h2name[] = "e";
  brook_header_t hs[2] = {{hname, hvalue, 3}, {h2name, NULL, 0}};
  brook_record_t rec = {.key = key,
                        .key_len = 5,
                        .value = value,
                        .value_len = 7,
                        .timestamp = 1234567,
                        .headers = hs,
                        .header_count = 2};
  assert_int_equal(brook_push(src, &rec), BROOK_OK);
  /* The caller reuses every buffer at once. */
  memset(key, 'X', 5);
  memset(value, 'Y', 7);
  memset(hname, 'Z', 5);
  memset(hvalue, 'W', 3);
  memset(h2name, 'V', 1);
  hs[0] = (brook_header_t){"junk", "junk", 4};
  hs[1] = (brook_header_t){"junk", "junk", 4};
  brook_record_t nokey = {.value = value, .value_len = 0}; /* no key, an empty value */
  assert_int_equal(brook_push(src, &nokey), BROOK_OK);
  assert_int_equal(brook_push_end(src), BROOK_OK);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);

  assert_int_equal(c.count, 2);
  seen_rec_t *r = &c.seen[0];
  assert_false(r->key_null);
  assert_int_equal(r->key_len, 5);
  assert_memory_equal(r->key, "key-1", 5);
  assert_int_equal(r->value_len, 7);
  assert_memory_equal(r->value, "value-1", 7);
  assert_int_equal(r->ts, 1234567);
  assert_int_equal(r->header_count, 2);
  assert_string_equal(r->h1_name, "trace");
  assert_int_equal(r->h1_value_len, 3);
  assert_memory_equal(r->h1_value, "abc", 3);
  assert_string_equal(r->h2_name, "e");
  assert_int_equal(r->h2_value_len, 0);
  r = &c.seen[1];
  assert_true(r->key_null);
  assert_int_equal(r->key_len, 0);
  assert_int_equal(r->value_len, 0);
  assert_int_equal(r->header_count, 0);
  brook_runtime_free(rt);
}

/* ---- attach mode: the loop in this thread, the producer on another ---- */

static void *produce_then_end(void *arg) {
  producer_t *pr = arg;
  for (uint64_t i = 0; i < pr->n; i++)
    if (push_item_wait(pr->src, pr->id, i, WAIT_MS) != BROOK_OK)
      pr->failures++;
  brook_push_end(pr->src);
  return NULL;
}

static void attach_mode_producer_thread(void **state) {
  (void)state;
  order_sink_t s;
  order_sink_init(&s, 0);
  done_rec_t d = {0};
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 256;
  brook_runtime_t *rt = push_pipeline(&po, &s, &d);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  producer_t pr = {src, 2, 50000, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, produce_then_end, &pr), 0);
  /* The runtime's handles keep the loop alive until the ended source is drained. */
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  pthread_join(th, NULL);
  assert_int_equal(pr.failures, 0);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, BROOK_OK);
  assert_int_equal(s.count, 50000);
  assert_int_equal(s.next[2], 50000);
  assert_int_equal(s.bad, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
  order_sink_destroy(&s);
}

/* A producer on the runtime's own loop cannot wait: it pushes until BROOK_ERR_FULL, pauses,
 * and on_credit resumes it. */
typedef struct loop_producer {
  uv_idle_t idle;
  brook_push_source_t *src;
  uint64_t next, total;
  int pauses, resumes;
} loop_producer_t;

static void on_producer_idle(uv_idle_t *h) {
  loop_producer_t *lp = h->data;
  while (lp->next < lp->total) {
    brook_err_t err = push_item(lp->src, 3, lp->next);
    if (err == BROOK_ERR_FULL) {
      lp->pauses++;
      uv_idle_stop(h);
      return;
    }
    assert_int_equal(err, BROOK_OK);
    lp->next++;
  }
  assert_int_equal(brook_push_end(lp->src), BROOK_OK);
  uv_close((uv_handle_t *)h, NULL);
}

static void resume_producer(brook_push_source_t *src, void *opaque) {
  loop_producer_t *lp = opaque;
  assert_ptr_equal(src, lp->src);
  if (lp->next < lp->total && !uv_is_closing((uv_handle_t *)&lp->idle)) {
    lp->resumes++;
    uv_idle_start(&lp->idle, on_producer_idle);
  }
}

static void same_loop_producer_resumed_by_on_credit(void **state) {
  (void)state;
  order_sink_t s;
  order_sink_init(&s, 0);
  done_rec_t d = {0};
  loop_producer_t lp = {.total = 20000};
  brook_push_opts_t po;
  brook_push_opts_init(&po);
  po.max_records = 500;
  po.on_credit = resume_producer;
  po.on_credit_opaque = &lp;
  brook_runtime_t *rt = push_pipeline(&po, &s, &d);
  lp.src = brook_runtime_push_source(rt, "in");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_idle_init(&loop, &lp.idle), 0);
  lp.idle.data = &lp;
  assert_int_equal(uv_idle_start(&lp.idle, on_producer_idle), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(lp.next, 20000);
  assert_true(lp.pauses >= 1);
  assert_int_equal(lp.resumes, lp.pauses); /* every pause was ended by on_credit */
  assert_int_equal(d.calls, 1);
  assert_int_equal(s.count, 20000);
  assert_int_equal(s.next[3], 20000);
  assert_int_equal(s.bad, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
  order_sink_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(four_producers_exactly_once_in_order),
      cmocka_unit_test(full_at_bound_then_on_credit),
      cmocka_unit_test(max_bytes_bounds_the_queue),
      cmocka_unit_test(push_wait_gets_credit_when_sink_drains),
      cmocka_unit_test(pushes_before_start_and_push_end),
      cmocka_unit_test(invalid_pushes),
      cmocka_unit_test(push_copies_key_value_and_headers),
      cmocka_unit_test(attach_mode_producer_thread),
      cmocka_unit_test(same_loop_producer_resumed_by_on_credit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
