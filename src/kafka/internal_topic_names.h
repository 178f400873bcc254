/* Names of brook's internal topics, derived from the application id (the consumer group)
 * and the stable identity of a node (plan/identity.c), as Kafka Streams derives its own:
 *
 *   <group>-<node>-<store>-changelog   a store's changelog (one partition per task)
 *   <group>-<node>-repartition         the records a key change sends to other tasks
 *
 * Kafka allows letters, digits, '.', '_' and '-' in a topic name, at most 249 characters;
 * a name that would break either rule is an error naming the part at fault, never silently
 * rewritten (two nodes must never end up sharing a topic). */
#ifndef BROOK_KAFKA_INTERNAL_TOPIC_NAMES_H
#define BROOK_KAFKA_INTERNAL_TOPIC_NAMES_H

#include <stddef.h>

#include <brook/error.h>

#include "core/errmsg.h"

#define BK_TOPIC_NAME_MAX 249

/* Writes the changelog topic of store `store` of node `node` into out[cap] (cap >
 * BK_TOPIC_NAME_MAX is always enough). BROOK_OK, or BROOK_ERR_INVALID_ARG with *why saying
 * which part has which character, or that the name is too long. */
brook_err_t bk_changelog_topic(char *out, size_t cap, const char *group, const char *node,
                               const char *store, bk_errmsg_t *why);

/* The repartition topic of the key change at node `node`; errors as above. */
brook_err_t bk_repartition_topic(char *out, size_t cap, const char *group, const char *node,
                                 bk_errmsg_t *why);

#endif
