/* Wires a librdkafka queue into the runtime's libuv loop without a polling thread:
 * rd_kafka_queue_io_event_enable makes librdkafka write a byte to a pipe whenever the queue
 * goes from empty to non-empty; a uv_poll on the pipe's read end calls `cb` on the loop
 * thread, which then serves the queue (rd_kafka_poll / consumer_poll) until it is empty. */
#ifndef BROOK_KAFKA_POLL_H
#define BROOK_KAFKA_POLL_H

#include <librdkafka/rdkafka.h>

#include <brook/error.h>

#include "runtime/services.h"

typedef struct bk_kafka_poller bk_kafka_poller_t;

/* Starts watching `q` (borrowed; must outlive bk_kafka_poller_close) into *out. Returns
 * BROOK_OK, or BROOK_ERR_NOMEM / BROOK_ERR_LOOP with the reason in why. Loop thread. */
brook_err_t bk_kafka_poller_start(bk_worker_t *w, rd_kafka_queue_t *q, void (*cb)(void *opaque),
                                  void *opaque, bk_kafka_poller_t **out, char *why, size_t why_len);

/* Stops the callbacks at once and closes the handle (asynchronously, holding the runtime
 * until it is closed); the poller frees itself. NULL is a no-op. Loop thread. */
void bk_kafka_poller_close(bk_kafka_poller_t *p);

/* Destroys `rk` (rd_kafka_destroy_flags with `flags`) on a libuv worker thread, because it
 * may block; the runtime is held until it is done. Loop thread. */
void bk_kafka_destroy_off_loop(bk_worker_t *w, rd_kafka_t *rk, int flags);

#endif
