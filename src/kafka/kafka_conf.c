/* Client configuration and secret redaction. See kafka_conf.h. Any thread. */
#include "kafka_conf.h"

#include <stdio.h>
#include <string.h>

#include <brook/kafka.h>
#include <brook/operator.h>

#include "core/alloc.h"

#define REDACTED "[redacted]"

int brook_kafka_property_is_secret(const char *key) {
  if (!key)
    return 0;
  static const char *const exact[] = {"ssl.key.pem", "ssl_key", "sasl.oauthbearer.config", NULL};
  for (size_t i = 0; exact[i]; i++)
    if (strcmp(key, exact[i]) == 0)
      return 1;
  /* By pattern: any password, secret, token or private key, whatever the prefix. */
  static const char *const parts[] = {"password", "secret", "token", "private", "credential", NULL};
  for (size_t i = 0; parts[i]; i++)
    if (strstr(key, parts[i]))
      return 1;
  return 0;
}

brook_err_t bk_kafka_props_copy(const brook_allocator_t *a, const char *const *in, char ***out) {
  *out = NULL;
  if (!in)
    return BROOK_OK;
  size_t n = 0;
  while (in[n]) {
    if (!in[n + 1])
      return BROOK_ERR_INVALID_ARG; /* a key without a value */
    n += 2;
  }
  char **p = bk_calloc(a, n + 1, sizeof(*p));
  if (!p)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!(p[i] = bk_strdup(a, in[i]))) {
      bk_kafka_props_free(a, p);
      return BROOK_ERR_NOMEM;
    }
  }
  *out = p;
  return BROOK_OK;
}

const char *bk_kafka_props_problem(const char *const *props, const char *bootstrap,
                                   bk_errmsg_t *why) {
  int has_bootstrap = bootstrap && *bootstrap;
  for (size_t i = 0; props && props[i]; i += 2) {
    if (!props[i + 1]) {
      bk_errmsg_set(why,
                    "properties: '%s' has no value (a NULL-terminated list of key/value "
                    "pairs)",
                    props[i]);
      return why->text;
    }
    has_bootstrap |= strcmp(props[i], "bootstrap.servers") == 0 && *props[i + 1];
  }
  if (!has_bootstrap)
    return "bootstrap_servers (or the property bootstrap.servers) is required";
  return NULL;
}

void bk_kafka_props_free(const brook_allocator_t *a, char **props) {
  if (!props)
    return;
  for (size_t i = 0; props[i]; i++)
    bk_free(a, props[i]);
  bk_free(a, props);
}

const char *bk_kafka_props_get(char *const *props, const char *key) {
  const char *v = NULL;
  for (size_t i = 0; props && props[i]; i += 2)
    if (strcmp(props[i], key) == 0)
      v = props[i + 1]; /* the last one wins, as in librdkafka */
  return v;
}

static int conf_set(rd_kafka_conf_t *c, const char *key, const char *value, char *why,
                    size_t why_len) {
  char err[512];
  if (rd_kafka_conf_set(c, key, value, err, sizeof(err)) == RD_KAFKA_CONF_OK)
    return 0;
  /* librdkafka's message may quote the value: never let a secret through. */
  if (brook_kafka_property_is_secret(key) || strstr(err, value))
    snprintf(why, why_len, "Kafka property '%s' (value %s) is invalid", key,
             brook_kafka_property_is_secret(key) ? REDACTED : "not shown");
  else
    snprintf(why, why_len, "Kafka property '%s': %s", key, err);
  return -1;
}

brook_err_t bk_kafka_conf_build(const char *const *defaults, const char *bootstrap,
                                char *const *props, rd_kafka_conf_t **out, char *why,
                                size_t why_len) {
  *out = NULL;
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (!c) {
    snprintf(why, why_len, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  int bad = 0;
  for (size_t i = 0; !bad && defaults && defaults[i]; i += 2)
    bad = conf_set(c, defaults[i], defaults[i + 1], why, why_len);
  if (!bad && bootstrap)
    bad = conf_set(c, "bootstrap.servers", bootstrap, why, why_len);
  for (size_t i = 0; !bad && props && props[i]; i += 2)
    bad = conf_set(c, props[i], props[i + 1], why, why_len);
  if (bad) {
    rd_kafka_conf_destroy(c);
    return BROOK_ERR_INVALID_ARG;
  }
  *out = c;
  return BROOK_OK;
}

/* Replaces text[at, at + len) by REDACTED (or cuts the text there if it does not fit). */
static void replace_at(char *text, size_t cap, size_t at, size_t len) {
  size_t rl = strlen(REDACTED), tail = strlen(text + at + len);
  if (at + rl + tail + 1 > cap) {
    text[at] = '\0';
    return;
  }
  memmove(text + at + rl, text + at + len, tail + 1);
  memcpy(text + at, REDACTED, rl);
}

/* Redacts `secret` in text: the whole value, any part of it of 8 bytes or more (clients
 * quote fragments of a bad setting), and a cut-off start of it at the end of the text.
 * O(text x secret): for each text position, the longest run matching the secret anywhere. */
static void redact_one(const char *secret, char *text, size_t cap) {
  size_t sl = strlen(secret);
  size_t need = sl < 8 ? sl : 8;
  for (size_t i = 0; text[i];) {
    size_t best = 0;
    for (size_t j = 0; j + best < sl; j++) {
      size_t k = 0;
      while (text[i + k] && secret[j + k] && text[i + k] == secret[j + k])
        k++;
      if (k > best)
        best = k;
    }
    int at_end = best && !text[i + best] && best >= 4 && best < need;
    if (best >= need || at_end) {
      replace_at(text, cap, i, best);
      i += strlen(REDACTED) <= strlen(text + i) ? strlen(REDACTED) : strlen(text + i);
    } else {
      i++;
    }
  }
}

void bk_kafka_redact(char *const *props, char *text, size_t cap) {
  for (size_t i = 0; props && props[i]; i += 2)
    if (brook_kafka_property_is_secret(props[i]) && *props[i + 1])
      redact_one(props[i + 1], text, cap);
}

void bk_kafka_vmessage(char *msg, size_t cap, char *const *props, const char *who, const char *fmt,
                       va_list ap) {
  int n = snprintf(msg, cap, "%s: ", who);
  if (n > 0 && (size_t)n < cap)
    vsnprintf(msg + n, cap - (size_t)n, fmt, ap);
  bk_kafka_redact(props, msg, cap);
}

int bk_kafka_log_level(int syslog_level) {
  return syslog_level <= 3 ? BROOK_LOG_ERROR : syslog_level <= 4 ? BROOK_LOG_WARN : BROOK_LOG_INFO;
}
