/* Helpers for the changelog tests against the embedded broker (test_changelog_kafka.c,
 * test_changelog_task.c): a changelog producer, writers started with their first commit, puts
 * and commits that serve the producer, restores run to their end in steps into brook stores,
 * and delivery reports held back (a producer whose reports arrive as events the test hands
 * over itself). Against cl_broker (cl_setup starts it). Test thread only. */
#ifndef BROOK_TEST_CHANGELOG_KIT_H
#define BROOK_TEST_CHANGELOG_KIT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <brook/state.h>

#include "core/errmsg.h"
#include "kafka/changelog_restore.h"
#include "kafka/changelog_writer.h"
#include "support/broker_proc.h"

/* The changelog topic of the tests (pre-created by their broker). */
#define CL_TOPIC "app-node-store-changelog"

/* The embedded broker of a test group, with CL_TOPIC (16 partitions): cl_setup and
 * cl_teardown are the group's cmocka setup and teardown. */
extern broker_proc_t cl_broker;
int cl_setup(void **state);
int cl_teardown(void **state);

typedef struct cl_restore_run {
  bk_changelog_restore_result_t res;
  char positions[64];
  brook_err_t err;
  bk_errmsg_t why;
  size_t max_step; /* the most records one step read */
  size_t steps;
} cl_restore_run_t;
typedef struct cl_held {
  rd_kafka_event_t *ev[256];
  size_t n_ev, n_msgs;
} cl_held_t;

rd_kafka_t *cl_changelog_producer(void);
bk_changelog_writer_t *cl_writer_unstarted(rd_kafka_t *p, int32_t part, uint64_t first,
                                           uint64_t committed);
uint64_t cl_start(bk_changelog_writer_t *w, rd_kafka_t *p, const char *positions);
bk_changelog_writer_t *cl_writer(rd_kafka_t *p, int32_t part, uint64_t first, uint64_t committed);
void cl_put(bk_changelog_writer_t *w, rd_kafka_t *p, const char *k, const char *v);
uint64_t cl_commit(bk_changelog_writer_t *w, const char *positions);
void cl_drain(rd_kafka_t *p, bk_changelog_writer_t *w);
brook_err_t cl_apply_store(const void *key, size_t klen, const void *value, size_t vlen,
                           void *opaque);
brook_err_t cl_lookup_store(const void *key, size_t klen, const void **value, size_t *vlen,
                            void *opaque);
void cl_one_key(size_t i, const void **key, size_t *klen, void *opaque);
brook_err_t cl_missing(const void *key, size_t klen, const void **value, size_t *vlen,
                       void *opaque);
void cl_tail_key(size_t i, const void **key, size_t *klen, void *opaque);
brook_store_t *cl_new_store(void);
cl_restore_run_t cl_restore_with(const bk_changelog_restore_opts_t *o, size_t step,
                                 bk_changelog_restore_t **keep);
cl_restore_run_t cl_restore(rd_kafka_t *c, int32_t part, int64_t start, uint64_t known,
                            brook_store_t *s, size_t step, bk_changelog_restore_t **keep);
rd_kafka_t *cl_restore_consumer(void);
void cl_assert_value(brook_store_t *s, const char *k, const char *want);
rd_kafka_t *cl_held_producer(void);
void cl_hold_reports(rd_kafka_t *p, cl_held_t *h, size_t n);
void cl_release_reports(cl_held_t *h);
void cl_serve_until_idle(rd_kafka_t *p, bk_changelog_writer_t *w);

#endif
