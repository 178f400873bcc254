/* The embedded broker (tools/broker.c): it starts, creates topics, serves a plain librdkafka
 * producer and consumer across partitions and brokers, obeys its control commands
 * (topic, down/up, rtt, error, clear), and exits cleanly on SIGTERM, on quit and when its
 * control input ends; bad arguments exit with status 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "support/broker_proc.h"
#include "support/kafka_helpers.h"

#define TIMEOUT_MS 30000

/* Partition count of `topic` as the cluster reports it (0 if unknown), and its broker count. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int *brokers) {
  const struct rd_kafka_metadata *md = NULL;
  long long deadline = kh_now_ms() + TIMEOUT_MS;
  while (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (kh_now_ms() > deadline)
      fail_msg("no metadata from the broker");
  }
  int parts = 0;
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
      parts = md->topics[i].partition_cnt;
  if (brokers)
    *brokers = md->broker_cnt;
  rd_kafka_metadata_destroy(md);
  return parts;
}

static void produce_n(rd_kafka_t *p, const char *topic, int from, int n) {
  for (int i = from; i < from + n; i++) {
    char key[32], val[64];
    int kl = snprintf(key, sizeof(key), "k%d", i);
    int vl = snprintf(val, sizeof(val), "value-%d", i);
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                                    RD_KAFKA_V_VALUE(val, (size_t)vl),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 100);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
  }
}

static int delivered_ok, delivered_failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err)
    delivered_failed++;
  else
    delivered_ok++;
}

/* Reads every partition of `topic` from the beginning until `n` distinct values i in
 * [0, n) have arrived (duplicates allowed); fails after the deadline. Returns how many
 * messages came in total. */
static int consume_all(const char *bootstrap, const char *topic, int partitions, int n) {
  rd_kafka_t *c = kh_client(
      RD_KAFKA_CONSUMER, bootstrap,
      (const char *const[]){"group.id", "test_broker", "enable.auto.commit", "false", NULL}, NULL,
      NULL);
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  assert_int_equal(rd_kafka_assign(c, tp), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(tp);
  unsigned char *seen = calloc((size_t)n, 1);
  assert_non_null(seen);
  int distinct = 0, total = 0;
  long long deadline = kh_now_ms() + TIMEOUT_MS;
  int *per_part = calloc((size_t)partitions, sizeof(int));
  assert_non_null(per_part);
  while (distinct < n) {
    if (kh_now_ms() > deadline)
      fail_msg("consumed %d of %d distinct records of '%s'", distinct, n, topic);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
    if (!m)
      continue;
    if (!m->err) {
      int i;
      if (m->len < 64) {
        char v[64];
        memcpy(v, m->payload, m->len);
        v[m->len] = '\0';
        if (sscanf(v, "value-%d", &i) == 1 && i >= 0 && i < n && !seen[i]) {
          seen[i] = 1;
          distinct++;
        }
      }
      per_part[m->partition]++;
      total++;
    }
    rd_kafka_message_destroy(m);
  }
  /* The keyed partitioner spread the records: every partition got some. */
  for (int p = 0; p < partitions; p++)
    assert_true(per_part[p] > 0);
  free(per_part);
  free(seen);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return total;
}

static rd_kafka_t *producer(const char *bootstrap) {
  return kh_client(
      RD_KAFKA_PRODUCER, bootstrap,
      (const char *const[]){"acks", "all", "enable.idempotence", "true", "linger.ms", "5", NULL},
      on_delivery, NULL);
}

static void flush_all(rd_kafka_t *p, int expect) {
  long long deadline = kh_now_ms() + TIMEOUT_MS;
  while (delivered_ok + delivered_failed < expect) {
    if (kh_now_ms() > deadline)
      fail_msg("%d of %d deliveries reported", delivered_ok + delivered_failed, expect);
    rd_kafka_poll(p, 100);
  }
}

/* Three brokers, a 4-partition topic: records produced by a plain producer all come back to a
 * plain consumer, from every partition. */
static void test_round_trip(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 3, (const char *const[]){"orders:4", NULL}, NULL), 0);
  assert_non_null(strchr(b.bootstrap, ','));
  rd_kafka_t *p = producer(b.bootstrap);
  int brokers = 0;
  assert_int_equal(topic_partitions(p, "orders", &brokers), 4);
  assert_int_equal(brokers, 3);
  delivered_ok = delivered_failed = 0;
  produce_n(p, "orders", 0, 2000);
  flush_all(p, 2000);
  assert_int_equal(delivered_ok, 2000);
  assert_int_equal(delivered_failed, 0);
  assert_int_equal(consume_all(b.bootstrap, "orders", 4, 2000), 2000);
  rd_kafka_destroy(p);
  assert_int_equal(broker_stop(&b), 0);
}

/* Control commands take effect: a topic created at run time exists; injected Produce errors
 * are retried by the idempotent producer and nothing is lost; a broker taken down and brought
 * back up, and a slow broker, still deliver everything; bad commands are refused. */
static void test_control(void **state) {
  (void)state;
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 3, NULL, NULL), 0);
  assert_int_equal(broker_cmd(&b, "ping"), 0);
  assert_int_equal(broker_cmd(&b, "topic late 3"), 0);
  rd_kafka_t *p = producer(b.bootstrap);
  assert_int_equal(topic_partitions(p, "late", NULL), 3);
  delivered_ok = delivered_failed = 0;

  /* 6 = NOT_LEADER_OR_FOLLOWER: retriable. */
  assert_int_equal(broker_cmd(&b, "error 0 6 3"), 0);
  produce_n(p, "late", 0, 300);
  flush_all(p, 300);
  assert_int_equal(delivered_failed, 0);

  assert_int_equal(broker_cmd(&b, "rtt 2 200"), 0);
  produce_n(p, "late", 300, 300);
  flush_all(p, 600);
  assert_int_equal(broker_cmd(&b, "rtt 2 0"), 0);

  assert_int_equal(broker_cmd(&b, "down 1"), 0);
  produce_n(p, "late", 600, 300); /* some partitions' leader is away: queued, retried */
  assert_int_equal(broker_cmd(&b, "up 1"), 0);
  flush_all(p, 900);
  assert_int_equal(delivered_ok, 900);
  assert_int_equal(delivered_failed, 0);
  assert_true(consume_all(b.bootstrap, "late", 3, 900) >= 900);

  assert_int_equal(broker_cmd(&b, "error 1 6 2"), 0);
  assert_int_equal(broker_cmd(&b, "clear 1"), 0);
  assert_int_equal(broker_cmd(&b, "down 4"), -1); /* brokers are 1..3 */
  assert_non_null(strstr(b.reply, "error:"));
  assert_int_equal(broker_cmd(&b, "rtt 1"), -1);
  assert_int_equal(broker_cmd(&b, "topic x 0"), -1);
  assert_int_equal(broker_cmd(&b, "launch rockets"), -1);
  assert_int_equal(broker_cmd(&b, "ping"), 0); /* still serving */
  rd_kafka_destroy(p);
  assert_int_equal(broker_cmd(&b, "quit"), 0);
  assert_int_equal(broker_stop(&b), 0);
}

/* --bootstrap-file gets the same address (written atomically), and is removed at exit;
 * the end of the control input stops the broker. */
static void test_bootstrap_file_and_eof(void **state) {
  (void)state;
  char path[256];
  snprintf(path, sizeof(path), "/tmp/brook-broker-test-%ld.addr", (long)getpid());
  unlink(path);
  broker_proc_t b;
  assert_int_equal(broker_start(&b, 1, (const char *const[]){"t:1", NULL},
                                (const char *const[]){"--bootstrap-file", path, NULL}),
                   0);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[1024] = "";
  assert_non_null(fgets(line, sizeof(line), f));
  fclose(f);
  line[strcspn(line, "\n")] = '\0';
  assert_string_equal(line, b.bootstrap);
  close(b.to_fd); /* the controlling side goes away */
  b.to_fd = -1;
  assert_int_equal(wait_child(b.pid, TIMEOUT_MS), 0);
  b.pid = -1;
  broker_stop(&b);
  struct stat st;
  assert_int_not_equal(stat(path, &st), 0);
}

/* Runs brook-broker with `args` and returns its exit status. */
static int run_broker(const char *const *args) {
  const char *argv[16] = {broker_path()};
  int n = 1;
  for (size_t i = 0; args[i] && n < 15; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    freopen("/dev/null", "r", stdin);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return wait_child(pid, TIMEOUT_MS);
}

static void test_bad_arguments(void **state) {
  (void)state;
  assert_int_equal(run_broker((const char *const[]){"--brokers", "0", NULL}), 2);
  assert_int_equal(run_broker((const char *const[]){"--brokers", "x", NULL}), 2);
  assert_int_equal(run_broker((const char *const[]){"--topic", "nopartitions", NULL}), 2);
  assert_int_equal(run_broker((const char *const[]){"--topic", "t:0", NULL}), 2);
  assert_int_equal(run_broker((const char *const[]){"--topic", ":3", NULL}), 2);
  assert_int_equal(run_broker((const char *const[]){"--frobnicate", NULL}), 2);
  assert_int_equal(run_broker((const char *const[]){"--brokers", NULL}), 2);
  assert_int_equal(
      run_broker((const char *const[]){"--bootstrap-file", "/nonexistent-dir/x/addr", NULL}), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_control),
      cmocka_unit_test(test_bootstrap_file_and_eof),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
