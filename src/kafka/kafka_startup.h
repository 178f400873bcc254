/* The start-up of a Kafka client (a source's consumer, a sink's producer): until the client
 * has heard from the cluster (a metadata answer from any broker), the connection failures
 * librdkafka reports are kept per broker; if the start-up timeout passes first, the run fails
 * with BROOK_ERR_TIMEOUT and a message that names every broker and why it could not be
 * reached (librdkafka alone would retry and warn every second forever). While it waits, each
 * broker's failure is logged once, not at every retry. Loop thread. */
#ifndef BROOK_KAFKA_STARTUP_H
#define BROOK_KAFKA_STARTUP_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "runtime/services.h"

typedef struct bk_kafka_startup bk_kafka_startup_t;

/* Watches `rk` (borrowed: end the watch before destroying it) for `who` (message prefix, e.g.
 * "Kafka sink 'out'"), whose configuration is `bootstrap` (may be NULL) and `props`
 * (borrowed, for the bootstrap list and redaction). timeout_ms 0: no time limit (failures are
 * still logged once each). Returns BROOK_OK or BROOK_ERR_NOMEM. */
brook_err_t bk_kafka_startup_begin(bk_worker_t *w, rd_kafka_t *rk, const char *who,
                                   const char *bootstrap, char *const *props, int64_t timeout_ms,
                                   bk_kafka_startup_t **out);

/* An error from the client's error callback (fac NULL), or a line of its log callback (err 0,
 * its facility). Returns 1 if the caller should not log it: during the start-up, a broker's
 * connection failure logged before, and librdkafka's own log of each failed connection
 * attempt (facility FAIL; the error callback reports the same). NULL s: 0. */
int bk_kafka_startup_note(bk_kafka_startup_t *s, int err, const char *fac, const char *reason);

/* Ends the watch (closes its timer; the memory goes with it). NULL is a no-op. */
void bk_kafka_startup_end(bk_kafka_startup_t *s);

#endif
