/* Serde chains: copying a user's chain of brook_serde_t tables by their versions, running it
 * over a record's bytes, and reporting a stage's failure with its field and reason. See
 * serde.h. */
#include "serde/serde.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The size of each version of brook_serde_t, indexed by version. The table only grows by
 * appending: a new version adds its size here (the last entry is the current sizeof). */
static const size_t serde_table_size[] = {
    0, sizeof(brook_serde_t), /* 1: ... next */
};
_Static_assert(sizeof(serde_table_size) / sizeof(serde_table_size[0]) == BROOK_SERDE_VERSION + 1,
               "a new serde table version needs its size here");

size_t bk_serde_table_size(uint32_t version) {
  if (version < 1 || version > BROOK_SERDE_VERSION)
    return 0;
  return serde_table_size[version];
}

void bk_serde_chain_bytes(bk_serde_chain_t *chain, bk_serde_dir_t dir, const char *which) {
  chain->which = which;
  chain->dir = dir;
  chain->n = 0;
  chain->n_user = 1;
}

const char *bk_serde_chain_init(bk_serde_chain_t *chain, const brook_serde_t *serde,
                                bk_serde_dir_t dir, const char *which, bk_errmsg_t *why) {
  bk_serde_chain_bytes(chain, dir, which);
  if (!serde) {
    bk_errmsg_set(why, "%s: serde is NULL", which);
    return why->text;
  }
  brook_serde_t user[BROOK_SERDE_MAX_CHAIN];
  uint32_t n = 0;
  for (const brook_serde_t *s = serde; s; n++) {
    if (n == BROOK_SERDE_MAX_CHAIN) {
      bk_errmsg_set(why, "%s: a chain of more than %d serdes (or a cycle through next)", which,
                    BROOK_SERDE_MAX_CHAIN);
      return why->text;
    }
    size_t size = bk_serde_table_size(s->version);
    if (!size) {
      bk_errmsg_set(why,
                    "%s: serde table %u of the chain has version %u, not one this library "
                    "knows (1 to %d)",
                    which, n + 1, (unsigned)s->version, BROOK_SERDE_VERSION);
      return why->text;
    }
    memset(&user[n], 0, sizeof(user[n]));
    memcpy(&user[n], s, size);
    user[n].version = BROOK_SERDE_VERSION;
    s = user[n].next;
    user[n].next = NULL; /* the copy is flat: the array holds the order */
    const char *name = user[n].name ? user[n].name : "(unnamed)";
    if (dir == BK_SERDE_READ ? !user[n].deserialize : !user[n].serialize) {
      bk_errmsg_set(why, "%s: serde '%s' (table %u of the chain) has no %s callback", which, name,
                    n + 1, dir == BK_SERDE_READ ? "deserialize" : "serialize");
      return why->text;
    }
    if (!user[n].name)
      user[n].name = "(unnamed)";
  }
  chain->n_user = n;
  /* Reading runs the tables in order, writing in reverse; bytes stages do nothing. */
  for (uint32_t k = 0; k < n; k++) {
    uint32_t i = dir == BK_SERDE_READ ? k : n - 1 - k;
    if (bk_serde_is_bytes(&user[i]))
      continue;
    chain->stage_of[chain->n] = (uint8_t)(i + 1);
    chain->stage[chain->n++] = user[i];
  }
  return NULL;
}

void brook_serde_fail(brook_serde_failure_t *failure, const char *field, const char *fmt, ...) {
  if (!failure)
    return;
  failure->failed = 1;
  failure->has_field = field != NULL;
  if (field)
    snprintf(failure->field, sizeof(failure->field), "%s", field);
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    bk_errmsg_vset(&failure->reason, fmt, ap);
    va_end(ap);
  } else {
    bk_errmsg_set(&failure->reason, "malformed");
  }
}

/* The stage failed with `err`: the context's message says where and why. */
static void report(brook_ctx_t *ctx, const bk_serde_chain_t *chain, uint32_t i,
                   const brook_serde_failure_t *f) {
  char where[48] = "";
  if (chain->n_user > 1)
    snprintf(where, sizeof(where), " (%u of %u)", (unsigned)chain->stage_of[i],
             (unsigned)chain->n_user);
  brook_ctx_set_error(ctx, "%s '%s'%s%s%s%s: %s", chain->which, chain->stage[i].name, where,
                      f->has_field ? ", field '" : "", f->has_field ? f->field : "",
                      f->has_field ? "'" : "", f->reason.text);
}

brook_err_t bk_serde_chain_run(brook_ctx_t *ctx, const bk_serde_chain_t *chain, const void *in,
                               size_t len, const void **out, size_t *out_len,
                               brook_serde_failure_t *failure) {
  const void *p = in;
  size_t n = len;
  for (uint32_t i = 0; i < chain->n; i++) {
    const brook_serde_t *s = &chain->stage[i];
    brook_serde_failure_t local;
    brook_serde_failure_t *f = failure ? failure : &local;
    f->failed = 0;
    const void *o = p;
    size_t ol = n;
    brook_err_t err =
        (chain->dir == BK_SERDE_READ ? s->deserialize : s->serialize)(ctx, p, n, &o, &ol, f, s);
    if (err < 0) {
      if (f->failed)
        report(ctx, chain, i, f);
      return err;
    }
    p = o;
    n = ol;
  }
  *out = p;
  *out_len = n;
  return BROOK_OK;
}

static brook_err_t run_once(brook_ctx_t *ctx, const brook_serde_t *serde, bk_serde_dir_t dir,
                            const void *in, size_t in_len, const void **out, size_t *out_len) {
  if (!ctx || !out || !out_len || (!in && in_len))
    return BROOK_ERR_INVALID_ARG;
  bk_serde_chain_t chain;
  bk_errmsg_t why;
  if (bk_serde_chain_init(&chain, serde, dir, dir == BK_SERDE_READ ? "deserialiser" : "serialiser",
                          &why)) {
    brook_ctx_set_error(ctx, "%s", why.text);
    return BROOK_ERR_INVALID_ARG;
  }
  return bk_serde_chain_run(ctx, &chain, in, in_len, out, out_len, NULL);
}

brook_err_t brook_serde_deserialize(brook_ctx_t *ctx, const brook_serde_t *serde, const void *in,
                                    size_t in_len, const void **out, size_t *out_len) {
  return run_once(ctx, serde, BK_SERDE_READ, in, in_len, out, out_len);
}

brook_err_t brook_serde_serialize(brook_ctx_t *ctx, const brook_serde_t *serde, const void *in,
                                  size_t in_len, const void **out, size_t *out_len) {
  return run_once(ctx, serde, BK_SERDE_WRITE, in, in_len, out, out_len);
}
