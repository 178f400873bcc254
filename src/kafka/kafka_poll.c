/* librdkafka queue -> pipe -> uv_poll. See kafka_poll.h. Loop thread. */
#define _GNU_SOURCE /* pipe2 */
#include "kafka_poll.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"

struct bk_kafka_poller {
  uv_poll_t poll;
  int fds[2]; /* read end (watched), write end (librdkafka writes) */
  rd_kafka_queue_t *q;
  void (*cb)(void *opaque);
  void *opaque;
  bk_worker_t *w;
  const brook_allocator_t *alloc;
};

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  bk_kafka_poller_t *p = h->data;
  char buf[256];
  while (read(p->fds[0], buf, sizeof(buf)) > 0) { /* drain: one wake-up serves them all */
  }
  (void)status; /* on a poll error, serving the queue is still the right thing to do */
  p->cb(p->opaque);
}

brook_err_t bk_kafka_poller_start(bk_worker_t *w, rd_kafka_queue_t *q, void (*cb)(void *opaque),
                                  void *opaque, bk_kafka_poller_t **out, char *why,
                                  size_t why_len) {
  *out = NULL;
  bk_kafka_poller_t *p = bk_calloc(bk_rt_alloc(w), 1, sizeof(*p));
  if (!p) {
    snprintf(why, why_len, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  p->q = q;
  p->cb = cb;
  p->opaque = opaque;
  p->w = w;
  p->alloc = bk_rt_alloc(w);
  if (pipe2(p->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    snprintf(why, why_len, "pipe: %s", strerror(errno));
    bk_free(bk_rt_alloc(w), p);
    return BROOK_ERR_LOOP;
  }
  int rc = uv_poll_init(bk_rt_loop(w), &p->poll, p->fds[0]);
  if (rc) {
    snprintf(why, why_len, "uv_poll_init: %s", uv_strerror(rc));
    close(p->fds[0]);
    close(p->fds[1]);
    bk_free(bk_rt_alloc(w), p);
    return BROOK_ERR_LOOP;
  }
  p->poll.data = p;
  rd_kafka_queue_io_event_enable(q, p->fds[1], "1", 1);
  uv_poll_start(&p->poll, UV_READABLE, on_readable);
  /* librdkafka signals only when the queue goes from empty to non-empty: anything queued
   * before this point would never be signalled. Serve once right away. */
  ssize_t n = write(p->fds[1], "1", 1);
  (void)n; /* a full pipe already holds a wake-up */
  *out = p;
  return BROOK_OK;
}

static void on_closed(uv_handle_t *h) {
  bk_kafka_poller_t *p = h->data;
  bk_worker_t *w = p->w;
  close(p->fds[0]);
  close(p->fds[1]);
  bk_free(p->alloc, p);
  bk_worker_release(w);
}

void bk_kafka_poller_close(bk_kafka_poller_t *p) {
  if (!p)
    return;
  rd_kafka_queue_io_event_enable(p->q, -1, NULL, 0);
  uv_poll_stop(&p->poll);
  bk_worker_hold(p->w);
  uv_close((uv_handle_t *)&p->poll, on_closed);
}

typedef struct destroy_job {
  uv_work_t work;
  rd_kafka_t *rk;
  int flags;
  bk_worker_t *w;
} destroy_job_t;

static void destroy_work(uv_work_t *req) {
  destroy_job_t *j = req->data;
  rd_kafka_destroy_flags(j->rk, j->flags);
}

static void destroy_done(uv_work_t *req, int status) {
  (void)status;
  destroy_job_t *j = req->data;
  bk_worker_t *w = j->w;
  bk_free(bk_rt_alloc(w), j);
  bk_worker_release(w);
}

void bk_kafka_destroy_off_loop(bk_worker_t *w, rd_kafka_t *rk, int flags) {
  destroy_job_t *j = bk_calloc(bk_rt_alloc(w), 1, sizeof(*j));
  if (j) {
    *j = (destroy_job_t){.rk = rk, .flags = flags, .w = w};
    j->work.data = j;
    bk_worker_hold(w);
    if (uv_queue_work(bk_rt_loop(w), &j->work, destroy_work, destroy_done) == 0)
      return;
    bk_worker_release(w);
    bk_free(bk_rt_alloc(w), j);
  }
  rd_kafka_destroy_flags(rk, flags); /* no worker: here, blocking */
}
