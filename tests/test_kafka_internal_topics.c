/* Internal topics: their names (src/kafka/internal_topic_names.c) and making sure they exist
 * with the right partition count before anything is produced (src/kafka/internal_topics.c),
 * against the embedded broker. The broker (librdkafka 2.0.2's mock cluster) has no admin
 * API: it cannot create topics through CreateTopics, so creation is tested for its clear
 * error here, and the topics brook needs are pre-created with the broker's topic command, as
 * the Kafka tests of later steps do. Creation on a real cluster: README, "The embedded
 * broker". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#include "kafka/internal_topic_names.h"
#include "kafka/internal_topics.h"
#include "support/broker_proc.h"
#include "support/kafka_helpers.h"
#include "support/wait.h"

static void test_names(void **state) {
  (void)state;
  char name[BK_TOPIC_NAME_MAX + 1];
  bk_errmsg_t why;
  assert_int_equal(bk_changelog_topic(name, sizeof(name), "fraud", "per-card", "window", &why),
                   BROOK_OK);
  assert_string_equal(name, "fraud-per-card-window-changelog");
  assert_int_equal(bk_repartition_topic(name, sizeof(name), "fraud", "by-card", &why), BROOK_OK);
  assert_string_equal(name, "fraud-by-card-repartition");

  assert_int_equal(bk_changelog_topic(name, sizeof(name), "fraud", "per card", "w", &why),
                   BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(why.text, "the node 'per card' has the character ' '"));
  assert_int_equal(bk_repartition_topic(name, sizeof(name), "", "n", &why), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(why.text, "application id is empty"));
  char long_node[240];
  memset(long_node, 'n', sizeof(long_node) - 1);
  long_node[sizeof(long_node) - 1] = '\0';
  assert_int_equal(bk_changelog_topic(name, sizeof(name), "app", long_node, "store", &why),
                   BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(why.text, "more than Kafka's 249"));
}

static const char *const changelog_configs[] = {"cleanup.policy", "compact", NULL};

static void test_existing_missing_and_mismatched(void **state) {
  (void)state;
  broker_proc_t b;
  const char *const topics[] = {"app-count-counts-changelog:4", "app-win-window-changelog:2", NULL};
  assert_int_equal(broker_start(&b, 1, topics, NULL), 0);
  rd_kafka_t *rk = kh_client(RD_KAFKA_PRODUCER, b.bootstrap, NULL, NULL, NULL);
  assert_non_null(rk);
  bk_errmsg_t why;

  /* Both exist with the counts needed. */
  bk_topic_spec_t ok[] = {{"app-count-counts-changelog", 4, -1, changelog_configs},
                          {"app-win-window-changelog", 2, -1, changelog_configs}};
  assert_int_equal(bk_kafka_ensure_topics(rk, ok, 2, 10000, &why), BROOK_OK);

  /* One has 2 partitions where 8 are needed: an error naming it and both counts. */
  bk_topic_spec_t bad[] = {{"app-count-counts-changelog", 4, -1, changelog_configs},
                           {"app-win-window-changelog", 8, -1, changelog_configs}};
  assert_int_equal(bk_kafka_ensure_topics(rk, bad, 2, 10000, &why), BROOK_ERR_KAFKA);
  assert_non_null(strstr(why.text, "'app-win-window-changelog' has 2 partitions, brook needs 8"));

  /* A missing one: the embedded broker cannot create it (its admin requests wait for a
   * controller it does not have, until the time-out), and the error says so with the topic
   * and what to do; a real cluster creates it. */
  bk_topic_spec_t missing[] = {{"app-new-store-changelog", 3, -1, changelog_configs}};
  uint64_t t0 = wait_now_ms();
  brook_err_t err = bk_kafka_ensure_topics(rk, missing, 1, 3000, &why);
  print_message("missing topic: %s (%s) after %llu ms\n", brook_errname(err), why.text,
                (unsigned long long)(wait_now_ms() - t0));
  assert_int_equal(err, BROOK_ERR_KAFKA);
  assert_non_null(strstr(why.text, "app-new-store-changelog"));
  assert_non_null(strstr(why.text, "create it by hand"));

  /* Pre-created with the broker's command (as tests do), it passes. */
  assert_int_equal(broker_cmd(&b, "topic app-new-store-changelog 3"), 0);
  assert_int_equal(bk_kafka_ensure_topics(rk, missing, 1, 10000, &why), BROOK_OK);
  rd_kafka_destroy(rk);
  assert_int_equal(broker_stop(&b), 0);
}

/* No answer (the only broker down): a time-out within the bound, not a hang. */
static void test_unreachable_cluster_times_out(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, NULL, NULL), 0);
  rd_kafka_t *rk = kh_client(RD_KAFKA_PRODUCER, b.bootstrap, NULL, NULL, NULL);
  assert_int_equal(broker_cmd(&b, "down 1"), 0);
  bk_topic_spec_t spec[] = {{"t-changelog", 1, -1, NULL}};
  bk_errmsg_t why;
  uint64_t t0 = wait_now_ms();
  brook_err_t err = bk_kafka_ensure_topics(rk, spec, 1, 2000, &why);
  uint64_t took = wait_now_ms() - t0;
  print_message("down: %s (%s) after %llu ms\n", brook_errname(err), why.text,
                (unsigned long long)took);
  assert_true(err == BROOK_ERR_TIMEOUT || err == BROOK_ERR_KAFKA);
  assert_true(took < 10000);
  rd_kafka_destroy(rk);
  assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_existing_missing_and_mismatched),
      cmocka_unit_test(test_unreachable_cluster_times_out),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
