/* Numbered input for Kafka commit tests: values "<partition>:<i>" produced in acknowledged
 * bursts (so input keeps coming for a while under injected broker delay), samples of a
 * group's committed offsets against an output topic's high watermark, and parsing outputs
 * back ("<partition>:<i>", optionally tagged "<tag>:<partition>:<i>" by the member that wrote
 * it). Cmocka assertions. */
#ifndef BROOK_TEST_KAFKA_NUMBERED_H
#define BROOK_TEST_KAFKA_NUMBERED_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* Produces "<p>:<i>" to partition p of `topic` for every p < parts and i in [from, to), in
 * bursts of `burst` per partition that each wait for their acknowledgement. */
void kn_produce(const char *bootstrap, const char *topic, int parts, int from, int to, int burst);

/* The committed offsets of `q`'s group for partitions 0..parts-1 of `in` (0 where none) into
 * committed[], then the high watermark of partition 0 of `out` into *out_high (in that
 * order: every output acknowledged before the commit is below it). */
void kn_sample(rd_kafka_t *q, const char *in, int parts, const char *out, int64_t *committed,
               int64_t *out_high);

/* Parses an output "<p>:<i>" (tag 0) or "<tag>:<p>:<i>" with p < parts and i < per_part;
 * fails the test on anything else. */
void kn_parse(const rd_kafka_message_t *m, int parts, int per_part, char *tag, int *p, int *i);

#endif
