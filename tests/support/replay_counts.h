/* Counts per key read back from a Kafka output topic, for the tests whose pipelines count
 * keys "k0" .. "k9" through a repartition topic and are killed and restarted
 * (test_kafka_repartition_replay.c): each key's highest count seen (counts only grow: one past
 * the reference is a record counted twice; a repeated count is at-least-once output,
 * allowed). Uses cmocka to fail. */
#ifndef BROOK_TEST_REPLAY_COUNTS_H
#define BROOK_TEST_REPLAY_COUNTS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "self_exec.h"

#define KC_KEYS 10

/* The n of key "k<n>" (not NUL-terminated), or -1 if it is no such key. */
int rc_key_index(const void *key, size_t len);

typedef struct rc_maxes {
  int64_t max[KC_KEYS];
} rc_maxes_t;

/* A kh_read callback (opaque: a rc_maxes_t): takes an output record (key "k<n>", value an
 * int64_t count); fails the test on any other record. */
void rc_on_out(const rd_kafka_message_t *m, void *opaque);

/* Reads `r` until every key's count reached `want`, at most `timeout_ms`. */
void rc_read_until(rd_kafka_t *r, rc_maxes_t *x, int64_t want, int timeout_ms);

/* Fails the test unless every key's count is exactly `want`, naming the key and whether
 * records were counted twice or are missing. */
void rc_expect_exact(const rc_maxes_t *x, int64_t want);

/* The child's reports (pc_report_running, and "written <n>" per task state write): waits for
 * its n-th state write of this run, or until tasks 0 .. n_tasks - 1 all said RUNNING; fails
 * the test after timeout_ms without it. */
void rc_wait_written(child_lines_t *out, int n, int timeout_ms);
void rc_wait_running(child_lines_t *out, int n_tasks, int timeout_ms);

#endif
