/* Test helpers for pipelines run through the test driver: a named sink the driver captures,
 * and running a scenario in a child process (for cases that used to crash the process). */
#ifndef BROOK_TEST_DRIVER_HELPERS_H
#define BROOK_TEST_DRIVER_HELPERS_H

#include <brook/brook.h>

/* Adds a sink named `name` that drops records (the driver still captures them). Asserts. */
void named_sink(brook_stream_t *in, const char *name);

/* A brook_sink_fn that accepts and ignores every record (safe in a child: no assertions). */
brook_err_t ignore_record(const brook_record_t *rec, void *opaque);

/* Runs fn() in a forked child, so a sanitizer abort fails only the test that asked; returns
 * its exit status (0 = fn returned) or 128 + signal. fn must not use cmocka assertions. */
int run_in_child(void (*fn)(void));

#endif
