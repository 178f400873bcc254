/* pipeline: the fraud_detection topology, from the payments topic to the alerts and
 * dead-letter topics, and the counters its operators keep for the live summary. */
#ifndef FRAUD_DETECTION_PIPELINE_H
#define FRAUD_DETECTION_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include <brook/brook.h>

#include "card_set.h"

/* A window is suspicious with at least this many payments, or at least this total. */
#define TOO_MANY_PAYMENTS 6
#define TOO_LARGE_CENTS INT64_C(250000) /* 2500.00 */
/* A payment's amount must be 1..MAX_AMOUNT_CENTS cents (0.01 .. 9,999,999,999,999,999.99,
 * at most 18 significant digits); any other amount field makes the payment malformed. */
#define MAX_AMOUNT_CENTS INT64_C(999999999999999999)
#define MAX_AMOUNT_TEXT "999999999999999999"

typedef struct pipeline_opts {
  const char *brokers;        /* bootstrap servers: "host:port,..." */
  const char *group;          /* the consumer group (the application id) */
  const char *payments_topic; /* in */
  const char *alerts_topic;   /* out: the alerts */
  const char *dlq_topic;      /* out: payments that could not be read */
  /* librdkafka properties for every client (TLS, SASL, ...): NULL-terminated key, value
   * pairs, or NULL. */
  const char *const *properties;
  FILE *alerts_out; /* each alert is also printed here; NULL: not printed */
} pipeline_opts_t;

/* What the pipeline has seen so far; written by its callbacks on the loop thread, read by
 * the application on the same thread (its timer) or after the runtime has finished. */
typedef struct pipeline_counts {
  brook_time_t newest_payment; /* the largest event time parsed; BROOK_TIME_MIN before any */
  uint64_t windows;            /* windows closed (one per card and window) */
  brook_time_t closed_up_to;   /* the largest end of a closed window; BROOK_TIME_MIN if none */
  uint64_t alerts;             /* alerts handed to the alerts sink */
  card_set_t alerted;          /* the cards they were about */
  int out_of_memory;           /* the card set could not grow: `alerted` is incomplete */
  FILE *alerts_out;            /* from pipeline_opts_t (set by pipeline_build) */
} pipeline_counts_t;

void pipeline_counts_init(pipeline_counts_t *c);
void pipeline_counts_free(pipeline_counts_t *c);

/* Builds the topology into `t`, whose error policy must be BROOK_ON_ERROR_ROUTE (unparsable
 * payments go to the error stream and from there to the dead-letter topic). `opts` is
 * copied where brook copies it; its FILE and `counts` are borrowed and must outlive every
 * runtime built from `t`. Returns BROOK_OK or the first build error (message:
 * brook_topology_last_error(t)). */
brook_err_t pipeline_build(brook_topology_t *t, const pipeline_opts_t *opts,
                           pipeline_counts_t *counts);

/* The detection between the Kafka edges, on any stream of payments (the Kafka source in
 * pipeline_build; a test's source under the test driver): payment text in, event time =
 * the record timestamp; returns the stream of alert texts (key = the card). Payments that
 * cannot be read fail in "parse_payment" and follow the topology's error policy. Errors
 * are recorded in the topology (NULL then). `counts` is borrowed as in pipeline_build. */
brook_stream_t *pipeline_detect(brook_stream_t *payments, pipeline_counts_t *counts);

/* "HH:MM:SS" (UTC) of `ms` into buf[9]. */
const char *clock_time(brook_time_t ms, char buf[9]);

#endif
