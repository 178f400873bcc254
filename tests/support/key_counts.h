/* Helpers of the Kafka tests that count records per key "k<n>" and check, from an output
 * topic of counts, that state survived restarts exactly (test_kafka_state_dir.c,
 * test_kafka_changelog_*.c): the key's index, the highest count seen per key (counts only grow:
 * past the reference is a record counted twice; below it at the end, records missing from the
 * state), and the pipeline children that report "running <task>" lines. Test thread only. */
#ifndef BROOK_TEST_KEY_COUNTS_H
#define BROOK_TEST_KEY_COUNTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include "self_exec.h"

#define KC_MAX_KEYS 64

/* The n of key "k<n>" (at most 6 digits, below `n_keys`), or -1. */
int kc_key_index(const void *key, size_t len, int n_keys);

/* One message (value "v") to topic/partition with an explicit timestamp (ms); waits for its
 * acknowledgement. */
void kc_produce_at(const char *bootstrap, const char *topic, int32_t partition, const char *key,
                   int64_t ts);

/* A logger (brook_log_cb) to stderr, `opaque` a tag string. */
void kc_log_to_stderr(int level, const char *msg, void *opaque);

/* The highest count seen per key in an output topic of 8-byte counts keyed "k<n>". */
typedef struct kc_maxes {
  int n_keys; /* set by the caller (<= KC_MAX_KEYS) */
  int64_t max[KC_MAX_KEYS];
} kc_maxes_t;

/* kh_read's callback over such a topic (opaque: the kc_maxes_t); fails the test on a record
 * that is no count of a known key. */
void kc_on_out(const rd_kafka_message_t *m, void *opaque);
/* Whether every key reached `want`. */
int kc_reached(const kc_maxes_t *x, int64_t want);
/* Fails the test naming the first key whose highest count is not exactly `want`. */
void kc_expect_max(const kc_maxes_t *x, int64_t want);

/* A brook_task_state_cb for a pipeline child: prints "running <task>" (flushed) when a task
 * runs. */
void kc_report_running(int32_t task, int old, int state, const char *reason, void *opaque);

/* A pipeline child whose stdout reports lines. */
typedef struct kc_child {
  pid_t pid;
  child_lines_t out;
} kc_child_t;

/* Waits (timeout_ms per line) until the child reported `n` "running <task>" lines; with
 * `distinct`, n different tasks among 0 .. n - 1. */
void kc_wait_running(kc_child_t *c, int n, int distinct, int timeout_ms);
/* self_exec_end, then closes the child's pipe. */
int kc_end_child(kc_child_t *c, int sig, int timeout_ms);

#endif
