/* The Kafka (de)serialisers as serde chains: the key_serde / value_serde tables of the
 * options, or the deprecated formats mapped onto the built-in serdes. See kafka_serde.h. */
#include "kafka/kafka_serde.h"

/* A deprecated BROOK_KAFKA_CUSTOM callback as a serde stage (opaque: the options' own
 * brook_kafka_serde_t). Its errors keep the callback's own brook_ctx_set_error message. */
static brook_err_t custom_call(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  (void)f;
  const brook_kafka_serde_t *legacy = s->opaque;
  return legacy->fn(ctx, in, len, out, out_len, legacy->opaque);
}

static const char *legacy_chain(bk_serde_chain_t *chain, const brook_kafka_serde_t *legacy,
                                bk_serde_dir_t dir, const char *which, bk_errmsg_t *why) {
  brook_serde_t s;
  switch (legacy->format) {
  case BROOK_KAFKA_BYTES:
    bk_serde_chain_bytes(chain, dir, which);
    return NULL;
  case BROOK_KAFKA_STRING: /* checked UTF-8 when read; written as is, as it always was */
    brook_serde_builtin(&s, BROOK_SERDE_VERSION,
                        dir == BK_SERDE_READ ? BROOK_SERDE_UTF8 : BROOK_SERDE_BYTES);
    break;
  case BROOK_KAFKA_INT64:
    brook_serde_builtin(&s, BROOK_SERDE_VERSION, BROOK_SERDE_INT64);
    break;
  case BROOK_KAFKA_CUSTOM:
    if (!legacy->fn) {
      bk_errmsg_set(why, "%s: format CUSTOM needs fn", which);
      return why->text;
    }
    s = (brook_serde_t){.version = BROOK_SERDE_VERSION,
                        .name = "custom",
                        .deserialize = custom_call,
                        .serialize = custom_call,
                        .opaque = (void *)legacy};
    break;
  default:
    bk_errmsg_set(why, "%s: unknown format %d", which, (int)legacy->format);
    return why->text;
  }
  return bk_serde_chain_init(chain, &s, dir, which, why);
}

const char *bk_kafka_serde_chain(bk_serde_chain_t *chain, const brook_kafka_serde_t *legacy,
                                 const brook_serde_t *serde, bk_serde_dir_t dir, const char *which,
                                 bk_errmsg_t *why) {
  if (!serde)
    return legacy_chain(chain, legacy, dir, which, why);
  if (legacy->format != BROOK_KAFKA_BYTES || legacy->fn) {
    bk_errmsg_set(why,
                  "%s: both a serde table and the deprecated format (%d) are set; set only "
                  "the table",
                  which, (int)legacy->format);
    return why->text;
  }
  return bk_serde_chain_init(chain, serde, dir, which, why);
}
