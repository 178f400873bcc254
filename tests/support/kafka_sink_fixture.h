/* The fixture the Kafka sink tests share (test_kafka_sink.c, test_kafka_sink_delivery.c,
 * test_kafka_secrets.c): a broker, a topology and a runtime made in one call, sink options
 * with bounded deliveries, a generator of plain numbered records, running with a deadline
 * and reading a topic back to check what arrived. Cmocka assertions: test thread only. */
#ifndef BROOK_TEST_KAFKA_SINK_FIXTURE_H
#define BROOK_TEST_KAFKA_SINK_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <brook/brook.h>
#include <brook/kafka.h>

#include "broker_proc.h"
#include "kafka_readback.h"
#include "log_capture.h"

/* The deadline of every Kafka wait (a run, a read back, a push). */
#define WAIT_MS 30000
/* Record i's timestamp is TS_BASE + i. */
#define TS_BASE ((brook_time_t)1700000000000)

/* A new runtime for t: its log to `log` (may be NULL), batch_size unless 0. Fails the test
 * with the topology's message if it cannot be made. */
brook_runtime_t *new_runtime(brook_topology_t *t, log_capture_t *log, size_t batch_size);

/* A new topology with the given error policy (asserts): collect_topology by the name these
 * tests use. */
brook_topology_t *new_topology(brook_error_policy_t policy);

/* Sink options for `topic` (may be NULL) at `bootstrap` (may be NULL), with librdkafka
 * properties that bound every delivery (message.timeout.ms 20 s) so a record nobody
 * acknowledges fails the run instead of hanging it. */
brook_kafka_sink_opts_t sink_opts(const char *bootstrap, const char *topic);

/* Runs rt to the end (asserting the status) and returns its stats; frees rt. The run's
 * message goes to msg[msg_len] and its duration to *elapsed_ms when they are not NULL. */
brook_runtime_stats_t run_expect(brook_runtime_t *rt, brook_err_t expect, char *msg, size_t msg_len,
                                 uint64_t *elapsed_ms);

/* Reads all of `topic` into *out (the caller frees it with kr_topic_free); fails the test
 * if that does not complete within WAIT_MS. */
void read_topic(const broker_proc_t *b, const char *topic, kr_topic_t *out);

/* Starts n brokers with `topics` ("name:partitions", NULL-terminated) (asserts). */
void start_broker(broker_proc_t *b, int n, const char *const *topics);

/* "value-<i>" (len bytes) -> i, or -1. */
int value_index(const char *v, size_t len);

/* Reads `topic` and checks it holds records "value-0" .. "value-<n-1>" exactly once each. */
void expect_exactly_once(broker_proc_t *b, const char *topic, int n);

/* A string formatted into ctx memory (at most 63 characters); its length goes to *len.
 * NULL if the allocation failed. */
char *ctx_strf(brook_ctx_t *ctx, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The state of gen_plain (and of the tests' own numbered generators): n records, the next
 * one to produce. */
typedef struct counter_gen {
  int n, next;
} counter_gen_t;

/* A brook_generator_fn over a counter_gen_t: record i has key "k<i>", value "value-<i>"
 * and timestamp TS_BASE + i. No assertions (safe in a child process). */
brook_err_t gen_plain(brook_record_t *out, brook_ctx_t *ctx, void *opaque);

/* Builds a generator -> Kafka sink pipeline with `props` (to 127.0.0.1:9, where nothing
 * listens) and runs it; returns the status, with the run's or the topology's message. */
brook_err_t run_with_props(const char *const *props, int n_records, log_capture_t *log, char *msg,
                           size_t msg_len);

#endif
