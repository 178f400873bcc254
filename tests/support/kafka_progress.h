/* Watching a Kafka pipeline from outside while it runs, so a test waits on conditions rather
 * than on time: how much a topic holds (the sum of its high watermarks, or a consumer
 * following it), where its partitions lead, how much input a group has committed, and a
 * producer that keeps adding input in the background (while a broker is down, say) and is
 * flushed later. Plain librdkafka clients that never join a group. Nothing here asserts:
 * failures are return values, so any thread or a child process may use it.
 *
 * With a broker down, librdkafka 2.0.2's watermark and offsets-for-times queries can block
 * far beyond their timeouts (rd_kafka_query_watermark_offsets until the leader is back:
 * librdkafka #2588, fixed in 2.3.0): use kp_tail then, and the queries once all are up. */
#ifndef BROOK_TEST_KAFKA_PROGRESS_H
#define BROOK_TEST_KAFKA_PROGRESS_H

#include <stdint.h>

typedef struct kp_watch kp_watch_t;

/* A watcher on the cluster at `bootstrap`; `group` (may be NULL) is the group whose commits
 * kp_committed_sum reads. NULL if librdkafka refused the configuration. */
kp_watch_t *kp_watch_open(const char *bootstrap, const char *group);
void kp_watch_close(kp_watch_t *w);

/* The sum of the high watermarks of partitions 0..partitions-1 of `topic` (how many records
 * it holds when nothing was deleted; one ListOffsets round trip per broker), or -1 if the
 * brokers did not answer within timeout_ms. */
int64_t kp_high_sum(kp_watch_t *w, const char *topic, int partitions, int timeout_ms);

/* The leader (broker id) of each partition 0..partitions-1 of `topic` into leader[]. 0, or
 * -1 if the metadata did not come within timeout_ms or lacks a partition. */
int kp_leaders(kp_watch_t *w, const char *topic, int partitions, int32_t *leader, int timeout_ms);

/* The sum of the group's committed offsets for partitions 0..partitions-1 of `topic` (a
 * partition without a commit counts 0), or -1 if the coordinator did not answer within
 * timeout_ms. */
int64_t kp_committed_sum(kp_watch_t *w, const char *topic, int partitions, int timeout_ms);

/* A consumer that follows partitions 0..partitions-1 of `topic` from the beginning (explicit
 * assignment, no group) and counts what it has read: the topic's size as far as it has
 * caught up (a lower bound of its size). Unlike the queries above it keeps working while a
 * broker is down: it reads the other brokers' partitions. NULL if librdkafka refused it. */
typedef struct kp_tail kp_tail_t;
kp_tail_t *kp_tail_open(const char *bootstrap, const char *topic, int partitions);
void kp_tail_close(kp_tail_t *t);

/* Reads what has arrived (waiting up to wait_ms for the first message; at most 100000 per
 * call) and returns how many messages have been read in all. */
int64_t kp_tail_count(kp_tail_t *t, int wait_ms);

typedef struct kp_producer kp_producer_t;

/* A producer (acks=all, retries on; `props`: more librdkafka properties, NULL-terminated
 * key/value pairs, may be NULL). NULL if librdkafka refused the configuration. */
kp_producer_t *kp_producer_open(const char *bootstrap, const char *const *props);

/* Queues values "<prefix><i>" with keys "k<i % n_keys>" (as kh_produce writes them) for i in
 * [from, from + n) to `topic` without waiting for acknowledgements. 0, or -1 if librdkafka
 * refused a record for a reason other than a full queue (which it waits out). */
int kp_producer_send(kp_producer_t *p, const char *topic, const char *prefix, int from, int n,
                     int n_keys);

/* Waits up to timeout_ms until every record queued so far is acknowledged or has failed.
 * 0 if all were acknowledged, -1 if some failed or are still pending (see the counters). */
int kp_producer_flush(kp_producer_t *p, int timeout_ms);

/* Records queued, acknowledged and failed so far. */
void kp_producer_counts(const kp_producer_t *p, int64_t *queued, int64_t *acked, int64_t *failed);

void kp_producer_close(kp_producer_t *p);

#endif
