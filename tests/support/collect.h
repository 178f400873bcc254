/* Test helpers: a collecting sink that copies every record it receives into memory the test
 * owns (so assertions can run after the runtime is gone), a generator that produces records
 * from an array of strings, and a helper that runs a topology to completion. */
#ifndef BROOK_TEST_COLLECT_H
#define BROOK_TEST_COLLECT_H

#include <stddef.h>

#include <brook/brook.h>

/* ---- the collecting sink ---- */

typedef struct collect_header {
  char *name;
  char *value; /* NUL-terminated copy (value_len bytes + '\0'); NULL if the header's was NULL */
  size_t value_len;
} collect_header_t;

typedef struct collect_rec {
  char *key; /* NUL-terminated copy, NULL if the record had no key */
  size_t key_len;
  char *value; /* NUL-terminated copy, NULL if the record's value was NULL */
  size_t value_len;
  brook_time_t timestamp;
  collect_header_t *headers;
  size_t header_count;
} collect_rec_t;

typedef struct collect {
  collect_rec_t *recs;
  size_t n, cap;
  size_t calls;   /* sink callback invocations, including failed ones */
  size_t flushes; /* flush callback invocations */
  /* Optional failure injection: a record whose value equals fail_value is not stored and the
   * sink returns fail_err for it. */
  const char *fail_value;
  brook_err_t fail_err;
} collect_t;

void collect_init(collect_t *c);
void collect_free(collect_t *c);
/* Forgets the collected records (keeps the failure settings). */
void collect_clear(collect_t *c);

/* The brook_sink_fn / brook_sink_flush_fn pair; `opaque` is a collect_t. */
brook_err_t collect_sink_fn(const brook_record_t *rec, void *opaque);
brook_err_t collect_flush_fn(void *opaque);

/* Adds a callback sink collecting `in` into `c`. */
brook_err_t collect_sink(brook_stream_t *in, collect_t *c);

/* Appends a copy of `rec` (used by the sink; also handy for peek callbacks). */
void collect_append(collect_t *c, const brook_record_t *rec);

/* The i-th record's value / key as a C string ("" for NULL). */
const char *collect_value(const collect_t *c, size_t i);
const char *collect_key(const collect_t *c, size_t i);
/* The first header `name` of record i as a C string, or NULL if it has none. */
const char *collect_header(const collect_t *c, size_t i, const char *name);

/* Asserts (cmocka) that the collected values are exactly `expected[0..n)`, in order. */
void collect_assert_values(const collect_t *c, const char *const *expected, size_t n);
/* Index of the first record with that value at or after `from`, or (size_t)-1. */
size_t collect_find(const collect_t *c, const char *value, size_t from);

/* ---- a generator over an array of strings ---- */

typedef struct collect_gen {
  const char *const *values; /* record i's value */
  const char *const *keys;   /* NULL, or record i's key (an entry may be NULL) */
  size_t n;
  size_t next;                   /* next index to produce */
  brook_time_t ts_base;          /* record i gets timestamp ts_base + i */
  int copy;                      /* copy bytes into brook_ctx_alloc() memory instead of pointing */
  const brook_header_t *headers; /* attached to every record (borrowed) */
  size_t header_count;
  /* Optional failure injection: producing index fail_index (when fail_err != 0) fills the
   * record and returns fail_err; the index is consumed, so the next call goes on. */
  size_t fail_index;
  brook_err_t fail_err;
  size_t calls; /* callback invocations */
} collect_gen_t;

void collect_gen_init(collect_gen_t *g, const char *const *values, size_t n);
/* Rewinds to the first record (for a second runtime over the same topology). */
void collect_gen_reset(collect_gen_t *g);
brook_err_t collect_gen_fn(brook_record_t *out, brook_ctx_t *ctx, void *opaque);
/* Adds a generator source over `g`. */
brook_stream_t *collect_gen_source(brook_topology_t *t, const char *name, collect_gen_t *g);

/* ---- running a topology ---- */

typedef struct collect_run {
  brook_err_t new_status; /* from brook_runtime_new */
  brook_err_t status;     /* from brook_runtime_run (new_status if the runtime was not made) */
  brook_runtime_stats_t stats;
  char message[512]; /* brook_runtime_last_error, or the topology's if new failed */
  int done;          /* brook_runtime_done after the run */
} collect_run_t;

/* Called between brook_runtime_new and brook_runtime_run (to push into push sources). A
 * non-OK return skips the run and becomes the status. */
typedef brook_err_t (*collect_prepare_fn)(brook_runtime_t *rt, void *opaque);

/* Creates a runtime for `t` (opts may be NULL), optionally calls `prepare`, runs it to
 * completion, copies the status, stats and message into *res, frees the runtime. Returns the
 * final status. */
brook_err_t collect_run_topology(brook_topology_t *t, const brook_runtime_opts_t *opts,
                                 collect_prepare_fn prepare, void *opaque, collect_run_t *res);

/* Shorthand: default options except batch_size (0 = default). */
brook_err_t collect_run_batch(brook_topology_t *t, size_t batch_size, collect_run_t *res);

/* A new topology with the given error policy (asserts success). */
brook_topology_t *collect_topology(brook_error_policy_t policy);

/* A string that lives until collect_strings_free() (or process exit): for building test data
 * such as "v17" without managing buffers. printf-style. */
const char *collect_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void collect_strings_free(void);

#endif
