/* Start-up of a Kafka client: reachability within a timeout. See kafka_startup.h. Loop
 * thread. */
#include "kafka_startup.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "kafka/kafka_conf.h"
#include "kafka/kafka_group.h"

#define CHECK_MS 100   /* how often the start-up looks for the cluster's answer */
#define MAX_BROKERS 16 /* brokers whose last failure is kept */
#define REASON_LEN 240

typedef struct broker_failure {
  char name[96]; /* librdkafka's broker name, e.g. "127.0.0.1:1/bootstrap" */
  char reason[REASON_LEN];
} broker_failure_t;

struct bk_kafka_startup {
  uv_timer_t timer;
  bk_worker_t *w;
  rd_kafka_t *rk;
  char who[160];
  char bootstrap[512];
  char *const *props;
  int64_t timeout_ms, started_ms;
  int up; /* the cluster answered */
  broker_failure_t failed[MAX_BROKERS];
  size_t n_failed;
};

static void on_closed(uv_handle_t *h) {
  bk_kafka_startup_t *s = h->data;
  bk_worker_t *w = s->w;
  bk_free(bk_rt_alloc(w), s);
  bk_worker_release(w);
}

void bk_kafka_startup_end(bk_kafka_startup_t *s) {
  if (!s)
    return;
  uv_timer_stop(&s->timer);
  bk_worker_hold(s->w);
  uv_close((uv_handle_t *)&s->timer, on_closed);
}

/* "no broker reachable within N ms (bootstrap.servers X): <name>: <reason>; ..." */
static void fail_startup(bk_kafka_startup_t *s) {
  char msg[4096];
  int n = snprintf(msg, sizeof(msg),
                   "no broker reachable within %lld ms (bootstrap.servers %s; the source and "
                   "sink option startup_timeout_ms sets this limit)",
                   (long long)s->timeout_ms, s->bootstrap);
  for (size_t i = 0; i < s->n_failed && n > 0 && (size_t)n < sizeof(msg); i++)
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s %s", i ? ";" : ":", s->failed[i].reason);
  if (!s->n_failed && n > 0 && (size_t)n < sizeof(msg))
    snprintf(msg + n, sizeof(msg) - (size_t)n, ": no connection attempt has failed either");
  char out[4096 + 200];
  snprintf(out, sizeof(out), "%s: %s", s->who, msg);
  bk_kafka_redact(s->props, out, sizeof(out));
  bk_wk_fail(s->w, BROOK_ERR_TIMEOUT, "%s", out);
  bk_worker_poke(s->w);
}

static void on_check(uv_timer_t *h) {
  bk_kafka_startup_t *s = h->data;
  if (s->up)
    return;
  if (bk_kafka_cluster_seen(s->rk)) {
    s->up = 1;
    uv_timer_stop(&s->timer);
    return;
  }
  if (s->timeout_ms > 0 && bk_wallclock_ms() - s->started_ms >= s->timeout_ms) {
    uv_timer_stop(&s->timer);
    if (bk_rt_status(s->w) == BROOK_OK)
      fail_startup(s);
  }
}

brook_err_t bk_kafka_startup_begin(bk_worker_t *w, rd_kafka_t *rk, const char *who,
                                   const char *bootstrap, char *const *props, int64_t timeout_ms,
                                   bk_kafka_startup_t **out) {
  *out = NULL;
  bk_kafka_startup_t *s = bk_calloc(bk_rt_alloc(w), 1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->w = w;
  s->rk = rk;
  s->props = props;
  s->timeout_ms = timeout_ms;
  s->started_ms = bk_wallclock_ms();
  snprintf(s->who, sizeof(s->who), "%s", who);
  const char *bs = bootstrap ? bootstrap : bk_kafka_props_get(props, "bootstrap.servers");
  snprintf(s->bootstrap, sizeof(s->bootstrap), "%s", bs ? bs : "(none)");
  uv_timer_init(bk_rt_loop(w), &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, on_check, CHECK_MS, CHECK_MS);
  *out = s;
  return BROOK_OK;
}

int bk_kafka_startup_note(bk_kafka_startup_t *s, int err, const char *fac, const char *reason) {
  if (!s || s->up || !reason)
    return 0;
  if (fac)
    return strcmp(fac, "FAIL") == 0;
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    return 1; /* says nothing the per-broker failures do not */
  if (err != RD_KAFKA_RESP_ERR__TRANSPORT && err != RD_KAFKA_RESP_ERR__RESOLVE &&
      err != RD_KAFKA_RESP_ERR__AUTHENTICATION && err != RD_KAFKA_RESP_ERR__SSL)
    return 0;
  /* "<broker name>: <why>": one entry per broker, its latest failure. */
  const char *colon = strstr(reason, ": ");
  size_t nl = colon ? (size_t)(colon - reason) : 0;
  if (!nl || nl >= sizeof(s->failed[0].name))
    return 0;
  size_t i = 0;
  while (i < s->n_failed &&
         (strncmp(s->failed[i].name, reason, nl) != 0 || s->failed[i].name[nl] != '\0'))
    i++;
  int seen = i < s->n_failed;
  if (!seen) {
    if (s->n_failed == MAX_BROKERS)
      return 0;
    memcpy(s->failed[i].name, reason, nl);
    s->failed[i].name[nl] = '\0';
    s->n_failed++;
  }
  snprintf(s->failed[i].reason, sizeof(s->failed[i].reason), "%s", reason);
  return seen;
}
