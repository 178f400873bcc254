/* Tracing records back to the Kafka message they come from, for records that fail: the error
 * stream names their input (brook.source.*). Nothing is looked up for records that pass; each
 * record of a batch only remembers its message, and a record whose message has no headers gets
 * a headers pointer of its own (header_count stays 0) as a tag. Records derived from it keep
 * the tag through map, filter and the like, also when they replace the value, so a failure is
 * traced by that pointer, else by a key or value still pointing into the message. Loop thread. */
#ifndef BROOK_KAFKA_TRACE_H
#define BROOK_KAFKA_TRACE_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include <brook/error.h>
#include <brook/record.h>

#include "core/alloc.h"

typedef struct bk_ktrace_entry {
  const rd_kafka_message_t *msg;
  const brook_header_t *headers; /* the record's headers pointer: &empty if it has none */
  brook_header_t empty;          /* never read (header_count 0): its address is the tag */
} bk_ktrace_entry_t;

/* The records of the batch being read, in order. Zero-initialised; bk_ktrace_free. */
typedef struct bk_ktrace {
  bk_ktrace_entry_t *e;
  size_t n, cap;
} bk_ktrace_t;

/* A new batch of up to `cap` records: forgets the last one and makes room (never grown during
 * a batch: records point into it). BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_ktrace_begin(bk_ktrace_t *t, const brook_allocator_t *a, size_t cap);

/* `rec` (the batch's next record, at most cap of them) comes from `m`, which outlives the
 * batch. Gives a record without headers its tag. */
void bk_ktrace_record(bk_ktrace_t *t, const rd_kafka_message_t *m, brook_record_t *rec);

/* The batch is over: its messages are gone. */
static inline void bk_ktrace_end(bk_ktrace_t *t) { t->n = 0; }

/* The message of this batch that `rec` (a record of it, or derived from one) comes from, or
 * NULL if it cannot tell. */
const rd_kafka_message_t *bk_ktrace_find(const bk_ktrace_t *t, const brook_record_t *rec);

void bk_ktrace_free(bk_ktrace_t *t, const brook_allocator_t *a);

#endif
