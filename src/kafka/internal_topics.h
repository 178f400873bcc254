/* Making sure brook's internal topics (changelogs, repartition topics) exist as brook needs
 * them before anything is produced to them: partition counts that match the input, and the
 * configs brook asks for (cleanup.policy=compact for a changelog, replication and
 * min.insync.replicas from the options). Missing topics are created with the admin API;
 * existing ones are checked, and a partition-count mismatch is an error naming the topic
 * (a changelog with the wrong count would put a task's state in another task's partition).
 *
 * Blocking calls to the cluster: run it on a libuv work thread or at start-up, never on a
 * worker's loop. */
#ifndef BROOK_KAFKA_INTERNAL_TOPICS_H
#define BROOK_KAFKA_INTERNAL_TOPICS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <brook/error.h>

#include "core/errmsg.h"

typedef struct bk_topic_spec {
  const char *name;
  int partitions;             /* the count it must have (> 0) */
  int replication;            /* replication factor for a new topic; -1: the broker's default */
  const char *const *configs; /* name, value pairs for a new topic, NULL-terminated; or NULL */
} bk_topic_spec_t;

/* Ensures every topic of specs[n]: asks the cluster which exist, creates the missing ones
 * (their configs set), waits until the cluster reports them, and checks every partition
 * count. BROOK_OK; BROOK_ERR_KAFKA with *why naming the topic (a partition count that does
 * not match, a creation the cluster refused with its reason, and what to do); or
 * BROOK_ERR_TIMEOUT if the cluster did not answer within timeout_ms. `rk` is any client
 * connected to the cluster (a producer). */
brook_err_t bk_kafka_ensure_topics(rd_kafka_t *rk, const bk_topic_spec_t *specs, size_t n,
                                   int timeout_ms, bk_errmsg_t *why);

#endif
