/* The Kafka source's options and builder: brook_kafka_source_opts_init, the checks that name
 * each mistake when the topology is built (not when it runs), and the source's own copy of
 * the options (bk_ksrc_cfg_t), registered with the source's runtime side (kafka_source.c).
 * Runs where the topology is built. */
#include "kafka/kafka_source_impl.h"
#include "kafka/repartition.h"

#include <string.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_serde.h"

void brook_kafka_source_opts_init_size(brook_kafka_source_opts_t *opts, size_t size) {
  brook_kafka_source_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.max_in_flight = 100000;
  d.startup_timeout_ms = 30000;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static const bk_opts_version_t kafka_source_versions[] = {
    BK_OPTS_VERSION(brook_kafka_source_opts_t, max_in_flight),
    BK_OPTS_VERSION(brook_kafka_source_opts_t, startup_timeout_ms), /* issue 11 */
    BK_OPTS_VERSION(brook_kafka_source_opts_t, value_serde),        /* issue 12 */
    BK_OPTS_VERSION(brook_kafka_source_opts_t, revoke_timeout_ms),  /* issue 12: revocations */
};
static const bk_opts_type_t kafka_source_opts_type =
    BK_OPTS_TYPE(brook_kafka_source_opts_t, kafka_source_versions);

static void cfg_free(void *p, const brook_allocator_t *a) {
  bk_ksrc_cfg_t *c = p;
  if (!c)
    return;
  bk_free(a, c->bootstrap);
  bk_free(a, c->group);
  bk_free(a, c->dlq);
  bk_kafka_props_free(a, c->topics);
  for (size_t i = 0; c->parts && i < c->o.n_partitions; i++)
    bk_free(a, (char *)(uintptr_t)c->parts[i].topic);
  bk_free(a, c->parts);
  bk_kafka_props_free(a, c->props);
  bk_free(a, c);
}

static const bk_source_type_t kafka_type = {"kafka", &bk_ksrc_vt, cfg_free, 1, bk_krp_rewrite};

/* Copies a NULL-terminated string list (non-empty strings). */
static brook_err_t copy_list(const brook_allocator_t *a, const char *const *in, char ***out) {
  size_t n = 0;
  while (in[n]) {
    if (!*in[n])
      return BROOK_ERR_INVALID_ARG;
    n++;
  }
  if (!n)
    return BROOK_ERR_INVALID_ARG;
  char **l = bk_calloc(a, n + 1, sizeof(*l));
  if (!l)
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    if (!(l[i] = bk_strdup(a, in[i]))) {
      bk_kafka_props_free(a, l);
      return BROOK_ERR_NOMEM;
    }
  *out = l;
  return BROOK_OK;
}

brook_stream_t *brook_source_kafka(brook_topology_t *t, const char *name,
                                   const brook_kafka_source_opts_t *opts) {
  if (!t)
    return NULL;
  brook_kafka_source_opts_t o;
  brook_kafka_source_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &kafka_source_opts_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_kafka: %s", why.text);
    return NULL;
  }
  const char *problem = NULL;
  bk_serde_chain_t chain; /* checks the serdes; the source's own are built below */
  if (!name)
    problem = "a name is required";
  else if (!o.group_id || !*o.group_id)
    problem = "group_id (the application id) is required";
  else if (!o.topics && !o.partitions)
    problem = "topics (a subscription) or partitions (an explicit assignment) is required";
  else if (o.topics && o.partitions)
    problem = "give either topics (a subscription) or partitions (an explicit assignment), "
              "not both";
  else if (o.partitions && !o.n_partitions)
    problem = "n_partitions is 0";
  else if (bk_kafka_serde_chain(&chain, &o.key, o.key_serde, BK_SERDE_READ, "key deserialiser",
                                &why) ||
           bk_kafka_serde_chain(&chain, &o.value, o.value_serde, BK_SERDE_READ,
                                "value deserialiser", &why))
    problem = why.text;
  else if (o.on_malformed == BROOK_KAFKA_MALFORMED_DEAD_LETTER && !o.dead_letter_topic)
    problem = "on_malformed DEAD_LETTER needs dead_letter_topic";
  else if (o.on_malformed > BROOK_KAFKA_MALFORMED_DEAD_LETTER)
    problem = "unknown on_malformed";
  else if (o.max_in_flight == 0)
    problem = "max_in_flight must be > 0";
  else if (o.startup_timeout_ms < 0)
    problem = "startup_timeout_ms must be >= 0 (0: no limit)";
  else if (o.revoke_timeout_ms < 0)
    problem = "revoke_timeout_ms must be >= 0 (0: half of max.poll.interval.ms)";
  for (size_t i = 0; !problem && o.partitions && i < o.n_partitions; i++)
    if (!o.partitions[i].topic || !*o.partitions[i].topic || o.partitions[i].partition < 0) {
      bk_errmsg_set(&why, "partitions[%zu] has no topic or a negative partition number", i);
      problem = why.text;
    }
  if (!problem && o.topics && !o.topics[0])
    problem = "topics is empty (a NULL-terminated list of names)";
  for (size_t i = 0; !problem && o.topics && o.topics[i]; i++)
    if (!*o.topics[i]) {
      bk_errmsg_set(&why, "topics[%zu] is an empty name", i);
      problem = why.text;
    }
  if (!problem)
    problem = bk_kafka_props_problem(o.properties, o.bootstrap_servers, &why);
  if (problem) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_kafka: %s", problem);
    return NULL;
  }
  const brook_allocator_t *a = &t->alloc;
  bk_ksrc_cfg_t *c = bk_calloc(a, 1, sizeof(*c));
  brook_err_t err = c ? BROOK_OK : BROOK_ERR_NOMEM;
  if (c) {
    c->o = o;
    /* Checked above: these cannot fail. A CUSTOM format's chain calls through c->o. */
    bk_kafka_serde_chain(&c->key_serde, &c->o.key, o.key_serde, BK_SERDE_READ, "key deserialiser",
                         &why);
    bk_kafka_serde_chain(&c->value_serde, &c->o.value, o.value_serde, BK_SERDE_READ,
                         "value deserialiser", &why);
    c->o.key_serde = c->o.value_serde = NULL; /* the chains above replace the user's tables */
    if ((o.bootstrap_servers && !(c->bootstrap = bk_strdup(a, o.bootstrap_servers))) ||
        !(c->group = bk_strdup(a, o.group_id)) ||
        (o.dead_letter_topic && !(c->dlq = bk_strdup(a, o.dead_letter_topic))))
      err = BROOK_ERR_NOMEM;
    if (err == BROOK_OK)
      err = bk_kafka_props_copy(a, o.properties, &c->props);
    if (err == BROOK_OK && o.topics)
      err = copy_list(a, o.topics, &c->topics);
    if (err == BROOK_OK && o.partitions) {
      c->o.n_partitions = 0; /* counts the copies, for cfg_free */
      if (!(c->parts = bk_calloc(a, o.n_partitions, sizeof(*c->parts))))
        err = BROOK_ERR_NOMEM;
      for (size_t i = 0; err == BROOK_OK && i < o.n_partitions; i++) {
        c->parts[i] = o.partitions[i];
        if (!(c->parts[i].topic = bk_strdup(a, o.partitions[i].topic)))
          err = BROOK_ERR_NOMEM;
        else
          c->o.n_partitions++;
      }
    }
  }
  if (err < 0) { /* the lists were checked above: only memory can fail here */
    cfg_free(c, a);
    bk_topology_fail(t, err, "source_kafka: %s", brook_strerror(err));
    return NULL;
  }
  c->o.bootstrap_servers = c->o.group_id = c->o.dead_letter_topic = NULL;
  c->o.topics = NULL;
  c->o.partitions = NULL;
  c->o.properties = NULL;
  return bk_topology_add_source(t, &kafka_type, c, name);
}
