/* A user's serde for serde tests: "amount=<decimal>" text on the wire <-> a native int64_t in
 * the record. Failures name the field "amount" where the number is bad. With a call log as
 * its opaque, each call appends "amount.read" / "amount.write" to it (to see the order the
 * stages of a chain run in). */
#ifndef BROOK_TEST_SERDE_AMOUNT_H
#define BROOK_TEST_SERDE_AMOUNT_H

#include <brook/brook.h>

typedef struct serde_calls {
  char log[128]; /* "a.read,b.read", ... */
} serde_calls_t;

/* Appends "<what>" to the log (comma-separated). */
void serde_calls_add(serde_calls_t *calls, const char *what);

brook_err_t serde_amount_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                              size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s);
brook_err_t serde_amount_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s);

/* The table, named "amount", logging to `calls` (may be NULL). */
brook_serde_t serde_amount(serde_calls_t *calls);

#endif
