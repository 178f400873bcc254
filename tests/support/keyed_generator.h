/* A generator source partitioned by key (brook/source.h, partitioned_by_key) with monotonous
 * watermarks: runs like a Kafka topic keyed by its producer, and a tumbling count after it,
 * for the tests of per-task state and of key changes (test_keyed_splits, test_key_change). */
#ifndef BROOK_TEST_KEYED_GENERATOR_H
#define BROOK_TEST_KEYED_GENERATOR_H

#include <stddef.h>

#include <brook/brook.h>

/* Adds the source "gen" to `t`: `splits` splits, split k making only keys with
 * brook_key_split(key, splits) == k (fn's job). Fails the test (cmocka) on error. */
brook_stream_t *keyed_generator(brook_topology_t *t, brook_generator_fn fn, void *opaque,
                                size_t splits);

/* A tumbling window of `size` named `name` counting records per key after `in`, its results
 * to the callback sink (fn, opaque). Fails the test (cmocka) on error. */
void tumbling_count_to(brook_stream_t *in, const char *name, brook_time_t size, brook_sink_fn fn,
                       void *opaque);

#endif
