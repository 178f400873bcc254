/* When a group consumer may leave its group. librdkafka before 2.3.0 (Debian ships 2.0.2)
 * aborts the process when a cooperative-sticky consumer is destroyed after a JoinGroup
 * response and before its first assignment: the assignor's state is created by the first
 * SyncGroup only, and rd_kafka_sticky_assignor_state_destroy asserts it (librdkafka #4312,
 * fixed by #4381). The consumer cannot tell whether a JoinGroup answer is on its way (one
 * that arrives before the close is processed still counts), so a consumer that has never been
 * assigned, and may have joined, finishes its join first: its first assignment (possibly
 * empty) creates the state, and the close that follows revokes it. */
#ifndef BROOK_KAFKA_GROUP_H
#define BROOK_KAFKA_GROUP_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* librdkafka's internal destroy flag (rdkafka_int.h, 0x4 in every release up to 2.3.0 and
 * since): returns without joining the client's threads or freeing it, so the assignor state
 * is never destroyed and the abort above cannot happen. Only for a member abandoned in the
 * middle of a join on an affected version (kafka_leave.c); the client's memory is leaked. */
#define BK_KAFKA_DESTROY_F_IMMEDIATE 0x4

/* Whether the librdkafka this process runs (checked at run time, not at build time) has the
 * abort above. Any thread. */
int bk_kafka_join_abort_bug(void);

/* How long a consumer that must finish its join before leaving waits for its first assignment:
 * its max.poll.interval.ms, the rebalance timeout the brokers give a join (a join usually ends
 * within seconds, but a SyncGroup refused because the group rebalanced again starts it over).
 * Any thread. */
int64_t bk_kafka_join_wait_ms(rd_kafka_t *rk);

/* Whether the client has heard from the cluster (a metadata answer: cluster or controller id
 * known). Until then it cannot have joined a group. Never blocks. Any thread. */
int bk_kafka_cluster_seen(rd_kafka_t *rk);

#endif
