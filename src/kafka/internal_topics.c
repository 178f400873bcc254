/* Creating and checking internal topics (internal_topics.h). */
#include "kafka/internal_topics.h"

#include <string.h>

#include <uv.h>

#define POLL_MS 100 /* between metadata questions while a new topic propagates */

static int64_t now_ms(void) { return (int64_t)(uv_hrtime() / 1000000u); }

static int left_ms(int64_t deadline) {
  int64_t left = deadline - now_ms();
  return left > 0 ? (int)left : 0;
}

/* The partition count the cluster reports for `name` in md: > 0, 0 (absent), or -1 (an
 * error other than "unknown topic": *err set). */
static int partitions_of(const struct rd_kafka_metadata *md, const char *name,
                         rd_kafka_resp_err_t *err) {
  for (int i = 0; i < md->topic_cnt; i++) {
    const struct rd_kafka_metadata_topic *t = &md->topics[i];
    if (strcmp(t->topic, name) != 0)
      continue;
    if (t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
      return 0;
    if (t->err) {
      *err = t->err;
      return -1;
    }
    return t->partition_cnt;
  }
  return 0;
}

/* Metadata of every topic (no auto-creation). */
static brook_err_t ask(rd_kafka_t *rk, const struct rd_kafka_metadata **md, int64_t deadline,
                       bk_errmsg_t *why) {
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, md, left_ms(deadline));
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
    return BROOK_OK;
  bk_errmsg_set(why, "internal topics: the cluster did not list its topics: %s",
                rd_kafka_err2str(err));
  return err == RD_KAFKA_RESP_ERR__TIMED_OUT ? BROOK_ERR_TIMEOUT : BROOK_ERR_KAFKA;
}

/* Checks what exists; marks missing[i]. BROOK_OK or an error naming the topic. */
static brook_err_t check(rd_kafka_t *rk, const bk_topic_spec_t *specs, size_t n,
                         unsigned char *missing, size_t *n_missing, int64_t deadline,
                         bk_errmsg_t *why) {
  const struct rd_kafka_metadata *md;
  brook_err_t err = ask(rk, &md, deadline, why);
  if (err)
    return err;
  *n_missing = 0;
  for (size_t i = 0; i < n && !err; i++) {
    rd_kafka_resp_err_t terr = RD_KAFKA_RESP_ERR_NO_ERROR;
    int have = partitions_of(md, specs[i].name, &terr);
    missing[i] = have == 0;
    *n_missing += have == 0;
    if (have < 0) {
      bk_errmsg_set(why, "internal topic '%s': the cluster reports %s", specs[i].name,
                    rd_kafka_err2str(terr));
      err = BROOK_ERR_KAFKA;
    } else if (have > 0 && have != specs[i].partitions) {
      bk_errmsg_set(why,
                    "internal topic '%s' has %d partitions, brook needs %d (one per task of its "
                    "sub-topology, like the input): a changelog or repartition topic with another "
                    "count would mix tasks' data. Delete it (its state is rebuilt from the input) "
                    "or give the application another id",
                    specs[i].name, have, specs[i].partitions);
      err = BROOK_ERR_KAFKA;
    }
  }
  rd_kafka_metadata_destroy(md);
  return err;
}

static brook_err_t create(rd_kafka_t *rk, const bk_topic_spec_t *specs, size_t n,
                          const unsigned char *missing, int64_t deadline, bk_errmsg_t *why) {
  rd_kafka_NewTopic_t *nt[64];
  const char *first = NULL; /* the first topic asked for, for messages */
  size_t k = 0;
  brook_err_t err = BROOK_OK;
  char errstr[256];
  for (size_t i = 0; i < n && k < sizeof(nt) / sizeof(nt[0]); i++) {
    if (!missing[i])
      continue;
    if (!(nt[k] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions, specs[i].replication,
                                        errstr, sizeof(errstr)))) {
      bk_errmsg_set(why, "internal topic '%s': %s", specs[i].name, errstr);
      err = BROOK_ERR_KAFKA;
      break;
    }
    if (!first)
      first = specs[i].name;
    for (const char *const *c = specs[i].configs; c && c[0] && c[1]; c += 2)
      rd_kafka_NewTopic_set_config(nt[k], c[0], c[1]);
    k++;
  }
  rd_kafka_queue_t *q = err ? NULL : rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *ao =
      q ? rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS) : NULL;
  if (!err && (!q || !ao)) {
    bk_errmsg_set(why, "internal topics: out of memory");
    err = BROOK_ERR_NOMEM;
  }
  if (!err) {
    rd_kafka_AdminOptions_set_request_timeout(ao, left_ms(deadline), errstr, sizeof(errstr));
    rd_kafka_AdminOptions_set_operation_timeout(ao, left_ms(deadline), errstr, sizeof(errstr));
    rd_kafka_CreateTopics(rk, nt, k, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left_ms(deadline) + 1000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (!ev) {
      bk_errmsg_set(why, "internal topics: no answer to creating them within the time-out");
      err = BROOK_ERR_TIMEOUT;
    } else if (rd_kafka_event_error(ev)) {
      bk_errmsg_set(why,
                    "internal topics: the cluster refused to create %zu topic(s) starting with "
                    "'%s': %s; create it by hand (partitions as the input, "
                    "cleanup.policy=compact for changelogs)",
                    k, first ? first : "?", rd_kafka_event_error_string(ev));
      err = BROOK_ERR_KAFKA;
    } else if (res) {
      size_t cnt = 0;
      const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
      for (size_t i = 0; i < cnt && !err; i++) {
        rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(tr[i]);
        if (terr && terr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          const char *msg = rd_kafka_topic_result_error_string(tr[i]);
          bk_errmsg_set(why,
                        "internal topic '%s': the cluster refused to create it: %s; create it "
                        "by hand (partitions as the input, cleanup.policy=compact for a "
                        "changelog)",
                        rd_kafka_topic_result_name(tr[i]), msg ? msg : rd_kafka_err2str(terr));
          err = BROOK_ERR_KAFKA;
        }
      }
    }
    if (ev)
      rd_kafka_event_destroy(ev);
  }
  if (ao)
    rd_kafka_AdminOptions_destroy(ao);
  if (q)
    rd_kafka_queue_destroy(q);
  for (size_t i = 0; i < k; i++)
    rd_kafka_NewTopic_destroy(nt[i]);
  return err;
}

brook_err_t bk_kafka_ensure_topics(rd_kafka_t *rk, const bk_topic_spec_t *specs, size_t n,
                                   int timeout_ms, bk_errmsg_t *why) {
  int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  unsigned char missing[64];
  if (n > sizeof(missing)) {
    bk_errmsg_set(why, "internal topics: %zu at once, at most %zu", n, sizeof(missing));
    return BROOK_ERR_INVALID_ARG;
  }
  size_t n_missing = 0;
  brook_err_t err = check(rk, specs, n, missing, &n_missing, deadline, why);
  if (err || !n_missing)
    return err;
  if ((err = create(rk, specs, n, missing, deadline, why)) != BROOK_OK)
    return err;
  /* Created (or created meanwhile by another instance): wait until the cluster lists them,
   * then check their counts (another instance may have created one differently). */
  for (;;) {
    if ((err = check(rk, specs, n, missing, &n_missing, deadline, why)) || !n_missing)
      return err;
    if (!left_ms(deadline)) {
      bk_errmsg_set(why, "internal topics: %zu created topic(s) not listed by the cluster yet",
                    n_missing);
      return BROOK_ERR_TIMEOUT;
    }
    uv_sleep(POLL_MS); /* a libuv work thread: waiting for the cluster's metadata */
  }
}
