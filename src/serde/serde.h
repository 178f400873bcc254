/* Serde chains (brook/serde.h) as sources and sinks keep them: a user's chain of tables,
 * each copied by its version and checked once when the topology is built, flattened into an
 * array so that a record runs through it with no pointer chasing and no checks. Pure
 * pass-through stages (bytes) are dropped, so the default costs nothing per record.
 * Used by the Kafka source and sink; any source or sink with wire bytes can use it. */
#ifndef BROOK_SERDE_SERDE_H
#define BROOK_SERDE_SERDE_H

#include <stddef.h>
#include <stdint.h>

#include <brook/serde.h>

#include "core/errmsg.h"

/* Which way a chain runs. */
typedef enum bk_serde_dir {
  BK_SERDE_READ,  /* deserialize: wire -> record, first table first */
  BK_SERDE_WRITE, /* serialize: record -> wire, last table first */
} bk_serde_dir_t;

typedef struct bk_serde_chain {
  const char *which; /* e.g. "value deserialiser", for messages (static string) */
  bk_serde_dir_t dir;
  uint32_t n;      /* stages that do something (bytes stages dropped) */
  uint32_t n_user; /* tables in the user's chain, for messages */
  /* In the order they run; stage_of[i]: its position (1-based) in the user's chain. */
  brook_serde_t stage[BROOK_SERDE_MAX_CHAIN];
  uint8_t stage_of[BROOK_SERDE_MAX_CHAIN];
} bk_serde_chain_t;

/* Why a stage failed (the public brook_serde_failure_t). */
struct brook_serde_failure {
  int failed;      /* brook_serde_fail was called */
  int has_field;   /* field[] names the field */
  char field[128]; /* truncated if longer */
  bk_errmsg_t reason;
};

/* Copies the chain starting at `serde` into *chain, each table by its version, for running
 * `dir`. NULL if it can run, else what is wrong (formatted into *why, prefixed by `which`):
 * a NULL serde, an unknown version (named), a stage without the callback `dir` needs, more
 * than BROOK_SERDE_MAX_CHAIN tables (or a cycle). */
const char *bk_serde_chain_init(bk_serde_chain_t *chain, const brook_serde_t *serde,
                                bk_serde_dir_t dir, const char *which, bk_errmsg_t *why);

/* The identity chain (bytes). */
void bk_serde_chain_bytes(bk_serde_chain_t *chain, bk_serde_dir_t dir, const char *which);

/* Runs the chain over in[0..len). BROOK_OK with *out / *out_len, or the failing stage's code
 * with the context's message set to "<which> '<name>'[ (stage i of n)][, field 'f']:
 * <reason>" when the stage said why (else the callback's own brook_ctx_set_error, if any).
 * `failure` (may be NULL) receives the failing stage's field and reason. Hot path: no
 * allocation of its own. */
brook_err_t bk_serde_chain_run(brook_ctx_t *ctx, const bk_serde_chain_t *chain, const void *in,
                               size_t len, const void **out, size_t *out_len,
                               brook_serde_failure_t *failure);

/* Whether the chain does nothing (every stage was bytes): callers may skip it. */
static inline int bk_serde_chain_is_identity(const bk_serde_chain_t *chain) {
  return chain->n == 0;
}

/* The size of table version `version` of brook_serde_t, or 0 if unknown. */
size_t bk_serde_table_size(uint32_t version);

/* Whether `serde` is the built-in bytes table (a copy of it). */
int bk_serde_is_bytes(const brook_serde_t *serde);

/* Whether s[0..len) is valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF); if not,
 * *bad (may be NULL) is the offset of the first byte of the first invalid sequence. */
int bk_utf8_valid(const unsigned char *s, size_t len, size_t *bad);

#endif
