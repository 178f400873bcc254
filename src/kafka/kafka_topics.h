/* Subscribed topics that do not exist. librdkafka 2.0.2 says nothing about them: the source
 * would wait forever without a word. A watch asks the cluster, on a worker thread and through
 * the consumer itself, which topics exist, and looks for each subscribed one (regular
 * expressions aside): first after BK_TOPIC_CHECK_MS, then at that interval while one is
 * missing. A missing topic gets a warning naming it (once), the source keeps waiting (the
 * consumer picks the topic up by itself once it is created), and its creation is logged.
 * Loop thread. */
#ifndef BROOK_KAFKA_TOPICS_H
#define BROOK_KAFKA_TOPICS_H

#include <librdkafka/rdkafka.h>

#include "runtime/services.h"

#define BK_TOPIC_CHECK_MS 3000

typedef struct bk_topic_watch bk_topic_watch_t;

/* Logs `msg` at `level` on behalf of the watch's owner. */
typedef void (*bk_topic_log_fn)(void *opaque, int level, const char *msg);

/* Watches the literal names of `topics` (NULL-terminated, borrowed until the end of the watch)
 * through consumer `rk`. *out is NULL if there is nothing to watch. Returns BROOK_OK or
 * BROOK_ERR_NOMEM. */
brook_err_t bk_topic_watch_begin(bk_worker_t *w, rd_kafka_t *rk, char *const *topics,
                                 bk_topic_log_fn log, void *opaque, bk_topic_watch_t **out);

/* Asks the cluster again now, if the last answer found no subscribed topic (unless a
 * question is on its way). */
void bk_topic_watch_ask_now(bk_topic_watch_t *w);

/* Whether an answer that came at or after `since_ms` (bk_wallclock_ms) found none of the
 * subscribed topics (and none is a regular expression): the consumer then has nothing to
 * join the group for (librdkafka sends no JoinGroup without a matching topic). NULL: 0. */
int bk_topic_watch_none_since(const bk_topic_watch_t *w, int64_t since_ms);

/* Ends the watch and hands it `rk` to destroy (rd_kafka_destroy_flags with `flags`, off the
 * loop) once no question to the cluster still uses it. With tw NULL, rk is destroyed at once
 * (off the loop). */
void bk_topic_watch_end(bk_topic_watch_t *tw, bk_worker_t *w, rd_kafka_t *rk, int flags);

#endif
