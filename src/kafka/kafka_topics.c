/* Missing subscribed topics. See kafka_topics.h. Loop thread, except ask_cluster (a libuv
 * worker thread), which only reads the topic names and writes `state`. */
#include "kafka_topics.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "kafka/kafka_poll.h"

#define ASK_TIMEOUT_MS 2000 /* one metadata question; a stop may wait this long */

enum { T_UNKNOWN = 0, T_EXISTS, T_MISSING };

struct bk_topic_watch {
  uv_timer_t timer;
  uv_work_t work;
  bk_worker_t *w;
  rd_kafka_t *rk;
  char *const *topics;
  size_t n;
  unsigned char *state;  /* per topic: T_* from the last answer */
  unsigned char *warned; /* per topic: its absence was logged */
  bk_topic_log_fn log;
  void *opaque;
  int asking;          /* a question is on a worker thread */
  int answered;        /* the last question got an answer */
  int none_exist;      /* the last answer found no subscribed topic */
  int64_t answered_ms; /* when it came (0: none yet) */
  int ended;           /* bk_topic_watch_end ran: destroy rk and free once the question is done */
  int destroy_flags;
  int timer_closed;
};

/* One metadata question for all topics: one for a single topic would make a broker that
 * auto-creates topics (auto.create.topics.enable, or an old Metadata version) create it. */
static void ask_cluster(uv_work_t *w) { /* a worker thread */
  bk_topic_watch_t *tw = w->data;
  const struct rd_kafka_metadata *md = NULL;
  tw->answered = !rd_kafka_metadata(tw->rk, 1, NULL, &md, ASK_TIMEOUT_MS) && md;
  if (!tw->answered)
    return; /* ask again later */
  for (size_t i = 0; i < tw->n; i++) {
    if (tw->state[i] == T_EXISTS)
      continue;
    tw->state[i] = T_MISSING;
    for (int j = 0; j < md->topic_cnt; j++)
      if (strcmp(md->topics[j].topic, tw->topics[i]) == 0 && !md->topics[j].err &&
          md->topics[j].partition_cnt > 0)
        tw->state[i] = T_EXISTS;
  }
  rd_kafka_metadata_destroy(md);
}

static void watch_free(bk_topic_watch_t *tw) {
  bk_worker_t *w = tw->w;
  if (tw->rk)
    bk_kafka_destroy_off_loop(w, tw->rk, tw->destroy_flags);
  bk_free(bk_rt_alloc(w), tw->state);
  bk_free(bk_rt_alloc(w), tw->warned);
  bk_free(bk_rt_alloc(w), tw);
  bk_worker_release(w); /* the watch's own hold */
}

static void on_timer_closed(uv_handle_t *h) {
  bk_topic_watch_t *tw = h->data;
  tw->timer_closed = 1;
  if (!tw->asking)
    watch_free(tw);
}

static void on_tick(uv_timer_t *h);

static void on_answer(uv_work_t *w, int status) {
  (void)status;
  bk_topic_watch_t *tw = w->data;
  tw->asking = 0;
  if (tw->ended) {
    if (tw->timer_closed)
      watch_free(tw);
    return;
  }
  int missing = 0, found = 0;
  char msg[512];
  for (size_t i = 0; i < tw->n; i++) {
    if (tw->state[i] == T_MISSING && !tw->warned[i]) {
      tw->warned[i] = 1;
      snprintf(msg, sizeof(msg),
               "subscribed topic '%s' does not exist; waiting for it to be created (nothing is "
               "read from it until then)",
               tw->topics[i]);
      tw->log(tw->opaque, BROOK_LOG_WARN, msg);
    } else if (tw->state[i] == T_EXISTS && tw->warned[i] == 1) {
      tw->warned[i] = 2;
      snprintf(msg, sizeof(msg), "subscribed topic '%s' exists now", tw->topics[i]);
      tw->log(tw->opaque, BROOK_LOG_INFO, msg);
    }
    missing |= tw->state[i] != T_EXISTS;
    found |= tw->state[i] != T_MISSING;
  }
  if (tw->answered) {
    tw->none_exist = !found;
    tw->answered_ms = bk_wallclock_ms();
  }
  if (missing) /* ask again: the topic may be created later */
    uv_timer_start(&tw->timer, on_tick, BK_TOPIC_CHECK_MS, 0);
}

static void on_tick(uv_timer_t *h) {
  bk_topic_watch_t *tw = h->data;
  if (tw->asking || tw->ended)
    return;
  tw->asking = 1;
  tw->work.data = tw;
  if (uv_queue_work(bk_rt_loop(tw->w), &tw->work, ask_cluster, on_answer) != 0)
    tw->asking = 0;
}

void bk_topic_watch_ask_now(bk_topic_watch_t *tw) {
  if (!tw || tw->asking || tw->ended || !tw->none_exist)
    return; /* topics were found: asking again would not change the answer that matters */
  uv_timer_stop(&tw->timer);
  on_tick(&tw->timer);
}

int bk_topic_watch_none_since(const bk_topic_watch_t *tw, int64_t since_ms) {
  return tw && tw->answered_ms >= since_ms && tw->none_exist;
}

brook_err_t bk_topic_watch_begin(bk_worker_t *w, rd_kafka_t *rk, char *const *topics,
                                 bk_topic_log_fn log, void *opaque, bk_topic_watch_t **out) {
  *out = NULL;
  size_t n = 0;
  for (size_t i = 0; topics && topics[i]; i++)
    n++;
  if (!n)
    return BROOK_OK;
  bk_topic_watch_t *tw = bk_calloc(bk_rt_alloc(w), 1, sizeof(*tw));
  if (!tw)
    return BROOK_ERR_NOMEM;
  tw->state = bk_calloc(bk_rt_alloc(w), n, 1);
  tw->warned = bk_calloc(bk_rt_alloc(w), n, 1);
  if (!tw->state || !tw->warned) {
    bk_free(bk_rt_alloc(w), tw->state);
    bk_free(bk_rt_alloc(w), tw->warned);
    bk_free(bk_rt_alloc(w), tw);
    return BROOK_ERR_NOMEM;
  }
  *tw = (bk_topic_watch_t){.w = w,
                           .rk = rk,
                           .topics = topics,
                           .n = n,
                           .state = tw->state,
                           .warned = tw->warned,
                           .log = log,
                           .opaque = opaque};
  for (size_t i = 0; i < n; i++)
    if (topics[i][0] == '^')
      tw->state[i] = T_EXISTS; /* a regular expression: nothing to ask */
  bk_worker_hold(w);           /* until the watch is freed */
  uv_timer_init(bk_rt_loop(w), &tw->timer);
  tw->timer.data = tw;
  uv_timer_start(&tw->timer, on_tick, BK_TOPIC_CHECK_MS, 0);
  *out = tw;
  return BROOK_OK;
}

void bk_topic_watch_end(bk_topic_watch_t *tw, bk_worker_t *w, rd_kafka_t *rk, int flags) {
  if (!tw) {
    if (rk)
      bk_kafka_destroy_off_loop(w, rk, flags);
    return;
  }
  /* Not written again: a question on a worker thread may be reading it right now. */
  assert(tw->rk == rk);
  (void)rk;
  tw->ended = 1;
  tw->destroy_flags = flags;
  uv_timer_stop(&tw->timer);
  uv_close((uv_handle_t *)&tw->timer, on_timer_closed);
}
