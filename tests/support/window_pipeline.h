/* Test helper for window operators: a push source "in" with a bounded watermark -> a count
 * window -> sink "out", run by the test driver, and reading its results. */
#ifndef BROOK_TEST_WINDOW_PIPELINE_H
#define BROOK_TEST_WINDOW_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include <brook/brook.h>

/* A push source "in" in t with a bounded watermark (max_delay). Asserts on failure. */
brook_stream_t *bounded_push_source(brook_topology_t *t, brook_time_t max_delay);

/* Builds "in" (watermark max_delay) -> brook_window_aggregate(window, count, opts (may be
 * NULL)) -> "out" in a new topology *t with error policy `policy`, and a driver for it.
 * Returns the driver, or NULL if the builder refused the window (brook_topology_last_error
 * says why; the caller frees *t). Asserts on any other failure. */
brook_driver_t *window_count_pipeline(brook_topology_t **t, brook_window_t window,
                                      brook_time_t max_delay, const brook_window_opts_t *opts,
                                      brook_error_policy_t policy);

/* Result i of sink "out": its window header, count and key (NUL-terminated into key[key_cap]).
 * Asserts that it is a well-formed count result. */
void window_count_result(brook_driver_t *d, size_t i, brook_window_value_t *wv, int64_t *count,
                         char *key, size_t key_cap);

#endif
