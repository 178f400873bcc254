/* The rewrite that puts a repartition topic where a Kafka pipeline changes the key
 * (kafka/repartition.h): the topic's name and partition count, its creation or check, and
 * the new source and sink wired in place of the exchange. Runs in brook_runtime_new (the
 * application's thread, before any loop), with blocking calls to the cluster. */
#include "kafka/repartition.h"

#include <stdio.h>
#include <string.h>

#include <brook/kafka.h>

#include "core/alloc.h"
#include "kafka/internal_topic_names.h"
#include "kafka/internal_topics.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_source_impl.h"
#include "plan/plan.h"

#define METADATA_TIMEOUT_DEFAULT_MS 10000

/* The largest partition count of the upstream source's topics, from the cluster's metadata
 * (an explicit assignment: of the topics it names). > 0, or an error with *why set. */
static brook_err_t upstream_partitions(rd_kafka_t *rk, const bk_ksrc_cfg_t *cfg, int timeout_ms,
                                       int32_t *out, bk_errmsg_t *why) {
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t kerr = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
  if (kerr) {
    bk_errmsg_set(why, "the cluster did not list its topics: %s", rd_kafka_err2str(kerr));
    return kerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? BROOK_ERR_TIMEOUT : BROOK_ERR_KAFKA;
  }
  size_t n = cfg->topics ? 0 : cfg->o.n_partitions;
  while (cfg->topics && cfg->topics[n])
    n++;
  int32_t most = 0;
  brook_err_t err = BROOK_OK;
  for (size_t i = 0; i < n && !err; i++) {
    const char *name = cfg->topics ? cfg->topics[i] : cfg->parts[i].topic;
    int found = 0;
    for (int k = 0; k < md->topic_cnt && !found; k++) {
      const struct rd_kafka_metadata_topic *t = &md->topics[k];
      if (strcmp(t->topic, name) != 0 || t->err || t->partition_cnt <= 0)
        continue;
      found = 1;
      most = t->partition_cnt > most ? t->partition_cnt : most;
    }
    if (!found) {
      bk_errmsg_set(why,
                    "input topic '%s' is not listed by the cluster: its partition count sets the "
                    "repartition topic's (create it first, or set the count with "
                    "brook_stream_set_partitions)",
                    name);
      err = BROOK_ERR_KAFKA;
    }
  }
  rd_kafka_metadata_destroy(md);
  *out = most;
  return err;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk, (void)level, (void)fac, (void)buf;
}

brook_err_t bk_krp_resolve(bk_krp_topic_t *tp, bk_errmsg_t *why) {
  uv_mutex_lock(&tp->mu);
  if (tp->resolved) {
    uv_mutex_unlock(&tp->mu);
    return BROOK_OK;
  }
  const bk_ksrc_cfg_t *cfg = tp->upstream;
  char errstr[512];
  rd_kafka_conf_t *conf;
  brook_err_t err = BROOK_OK;
  rd_kafka_t *rk = NULL;
  if (bk_kafka_conf_build(NULL, cfg->bootstrap, cfg->props, &conf, errstr, sizeof(errstr))) {
    bk_errmsg_set(why, "%s", errstr);
    err = BROOK_ERR_INVALID_ARG;
  } else {
    rd_kafka_conf_set_log_cb(conf, quiet_log); /* the source's consumer properties warn */
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
      rd_kafka_conf_destroy(conf);
      bk_errmsg_set(why, "a client to ask the cluster: %s", errstr);
      bk_kafka_redact(cfg->props, why->text, sizeof(why->text));
      err = BROOK_ERR_KAFKA;
    }
  }
  int timeout = cfg->o.startup_timeout_ms > 0 && cfg->o.startup_timeout_ms < INT32_MAX
                    ? (int)cfg->o.startup_timeout_ms
                    : METADATA_TIMEOUT_DEFAULT_MS;
  int32_t up = 0;
  if (!err)
    err = upstream_partitions(rk, cfg, timeout, &up, why);
  if (!err) {
    int32_t partitions = tp->explicit_n ? (int32_t)tp->explicit_n : up;
    bk_topic_spec_t spec = {tp->name, partitions, -1, NULL};
    bk_errmsg_t twhy;
    if ((err = bk_kafka_ensure_topics(rk, &spec, 1, timeout, &twhy))) {
      bk_errmsg_set(why, "repartition topic '%s' (%d partitions) is not usable: %s", tp->name,
                    (int)partitions, twhy.text);
    } else {
      tp->partitions = partitions;
      tp->n_upstream = (uint32_t)up;
      tp->resolved = 1;
    }
  }
  if (rk)
    rd_kafka_destroy(rk);
  uv_mutex_unlock(&tp->mu);
  return err;
}

void bk_krp_topic_free(bk_krp_topic_t *tp, const brook_allocator_t *a) {
  if (!tp)
    return;
  uv_mutex_destroy(&tp->mu);
  bk_free(a, tp->name);
  bk_free(a, tp);
}

/* The reader of the topic: a Kafka source in the upstream's group, with its connection,
 * whose watermark only watermark records move. */
static brook_stream_t *add_reader(brook_topology_t *t, const bk_ksrc_cfg_t *cfg, const char *name,
                                  bk_krp_topic_t *topic) {
  const char *topics[] = {topic->name, NULL};
  brook_kafka_source_opts_t o;
  brook_kafka_source_opts_init(&o);
  o.bootstrap_servers = cfg->bootstrap;
  o.group_id = cfg->group;
  o.topics = topics;
  /* The reader keeps up with its writers in the same process: its fetches often find nothing
   * new, and a broker that does not answer a waiting fetch when data comes (the embedded one)
   * holds it for fetch.wait.max.ms. The upstream source's properties come after: they win. */
  size_t n = 0;
  while (cfg->props && cfg->props[n])
    n++;
  const char **props = bk_malloc(&t->alloc, (n + 3) * sizeof(*props));
  if (!props) {
    bk_topology_fail(t, BROOK_ERR_NOMEM, "%s: out of memory", name);
    return NULL;
  }
  props[0] = "fetch.wait.max.ms";
  props[1] = BK_KRP_FETCH_WAIT_MS;
  for (size_t i = 0; i < n; i++)
    props[2 + i] = cfg->props[i];
  props[n + 2] = NULL;
  o.properties = props;
  o.max_in_flight = cfg->o.max_in_flight;
  o.startup_timeout_ms = cfg->o.startup_timeout_ms;
  o.revoke_timeout_ms = cfg->o.revoke_timeout_ms;
  brook_stream_t *s = brook_source_kafka(t, name, &o); /* copies the properties */
  bk_free(&t->alloc, props);
  if (!s)
    return NULL;
  ((bk_ksrc_cfg_t *)s->node->source_cfg)->rp = topic;
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_CUSTOM;
  wo.custom = bk_krp_keep_watermark;
  wo.ts_bounds = BROOK_TS_BOUNDS_OFF; /* the upstream source checked its event times */
  return brook_source_set_watermark(s, &wo) == BROOK_OK ? s : NULL;
}

/* Moves the consumers of `from` (saved in `c[n]`) to stream `to`. */
static brook_err_t move_consumers(const brook_allocator_t *a, const bk_consumer_t *c, size_t n,
                                  brook_stream_t *from, brook_stream_t *to) {
  if (bk_grow(a, (void **)&to->consumers, &to->cap_consumers, to->n_consumers + n,
              sizeof(*to->consumers)))
    return BROOK_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    bk_node_t *node = c[i].node;
    for (size_t k = 0; k < node->n_inputs; k++)
      if (k == c[i].input && node->inputs[k] == from)
        node->inputs[k] = to;
    to->consumers[to->n_consumers++] = c[i];
  }
  return BROOK_OK;
}

brook_err_t bk_krp_rewrite(bk_node_t *source, bk_node_t *rekeying, size_t n_workers,
                           bk_errmsg_t *why) {
  (void)n_workers; /* each worker writes and reads the topic with its own clients */
  brook_topology_t *t = rekeying->topo;
  const brook_allocator_t *a = &t->alloc;
  const bk_ksrc_cfg_t *cfg = source->source_cfg;
  for (size_t i = 0; cfg->topics && cfg->topics[i]; i++)
    if (cfg->topics[i][0] == '^') {
      bk_errmsg_set(why,
                    "Kafka source '%s' subscribes to a pattern ('%s'): a repartition topic needs "
                    "the input topics by name (its watermark waits for every upstream task, one "
                    "per input partition)",
                    source->name, cfg->topics[i]);
      return BROOK_ERR_INVALID_ARG;
    }
  char identity[BK_IDENTITY_MAX + 64], topic[BK_TOPIC_NAME_MAX + 1];
  if (bk_identity_escape(rekeying->name, identity, sizeof(identity)) >= sizeof(identity)) {
    bk_errmsg_set(why, "the node's name is too long for a topic name");
    return BROOK_ERR_INVALID_ARG;
  }
  brook_err_t err = bk_repartition_topic(topic, sizeof(topic), cfg->group, identity, why);
  if (err)
    return err;
  bk_krp_topic_t *tp = bk_calloc(a, 1, sizeof(*tp));
  if (!tp || !(tp->name = bk_strdup(a, topic)) || uv_mutex_init(&tp->mu)) {
    if (tp)
      bk_free(a, tp->name);
    bk_free(a, tp);
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  tp->upstream = cfg;
  tp->explicit_n = rekeying->partitions;

  char src_name[512], sink_name[512];
  snprintf(src_name, sizeof(src_name), "%s.repartition-source", rekeying->name);
  snprintf(sink_name, sizeof(sink_name), "%s.repartition-sink", rekeying->name);
  brook_stream_t *out = &rekeying->outputs[0];
  brook_stream_t *reader = add_reader(t, cfg, src_name, tp);
  if (!reader) {
    bk_krp_topic_free(tp, a);
    bk_errmsg_set(why, "%s", t->build_msg.text[0] ? t->build_msg.text : t->msg.text);
    return t->build_err ? t->build_err : BROOK_ERR_INVALID_ARG;
  }
  /* R's consumers move to the reader; R feeds the sink instead (which owns the topic). */
  bk_consumer_t *saved = out->consumers;
  size_t n_saved = out->n_consumers;
  out->consumers = NULL;
  out->n_consumers = out->cap_consumers = 0;
  if ((err = bk_krp_sink_add(out, sink_name, tp)) ||
      (err = move_consumers(a, saved, n_saved, out, reader))) {
    ((bk_ksrc_cfg_t *)reader->node->source_cfg)->rp = NULL;
    bk_errmsg_set(why, "%s", t->build_msg.text[0] ? t->build_msg.text : brook_strerror(err));
    bk_free(a, saved);
    return err;
  }
  bk_free(a, saved);
  rekeying->rekeys = 0; /* its records leave through the topic, not an exchange */
  return BROOK_OK;
}
