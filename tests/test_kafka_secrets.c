/* Secrets among the Kafka sink's librdkafka properties never reach a log line or an error
 * message: which property names count as secret; configuration errors and librdkafka's
 * warnings with a password set; the sasl.oauthbearer.config that librdkafka itself quotes,
 * whole or in part (in a child process: librdkafka crashes later in that case). Every wait
 * has a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <brook/kafka.h>

#include "broker_proc.h"
#include "child_report.h"
#include "kafka_sink_fixture.h"
#include "log_capture.h"
#include "run_deadline.h"

#define CANARY "CANARY-s3cr3t-42"

/* ---- property names, configuration errors and warnings ---- */

static void assert_no_canary(const char *what, const char *text) {
  if (strstr(text, "CANARY") || strstr(text, "s3cr3t"))
    fail_msg("the secret leaked into %s:\n%s", what, text);
}

static void test_property_is_secret(void **state) {
  (void)state;
  static const char *const secret[] = {"sasl.password",
                                       "ssl.key.password",
                                       "ssl.keystore.password",
                                       "ssl.key.pem",
                                       "sasl.oauthbearer.config",
                                       "sasl.oauthbearer.client.secret",
                                       "my.app.secret",
                                       "schema.registry.basic.auth.user.info.password",
                                       NULL};
  static const char *const plain[] = {"bootstrap.servers",
                                      "sasl.username",
                                      "security.protocol",
                                      "sasl.mechanisms",
                                      "client.id",
                                      "ssl.ca.location",
                                      "ssl.certificate.pem",
                                      "acks",
                                      "linger.ms",
                                      "",
                                      NULL};
  for (size_t i = 0; secret[i]; i++)
    if (!brook_kafka_property_is_secret(secret[i]))
      fail_msg("'%s' should be secret", secret[i]);
  for (size_t i = 0; plain[i]; i++)
    if (brook_kafka_property_is_secret(plain[i]))
      fail_msg("'%s' should not be secret", plain[i]);
  assert_int_equal(brook_kafka_property_is_secret(NULL), 0);
}

/* Configuration errors with a password set: the messages name the property and never show
 * the secret; an unknown secret-looking property has its value redacted. */
static void test_secret_config_errors(void **state) {
  (void)state;
  static const char *const combo[] = {"security.protocol",
                                      "plaintext",
                                      "sasl.username",
                                      "svc",
                                      "sasl.password",
                                      CANARY,
                                      "acks",
                                      "1",
                                      NULL};
  static const char *const unknown_secret[] = {"sasl.password", CANARY, "my.app.secret", CANARY,
                                               NULL};
  /* The keystore path happens to contain the password: it shows up in librdkafka's error. */
  static const char *const bad_secret_value[] = {"security.protocol",
                                                 "ssl",
                                                 "ssl.keystore.password",
                                                 CANARY,
                                                 "ssl.keystore.location",
                                                 "/nonexistent/" CANARY ".p12",
                                                 NULL};
  const char *const *cases[] = {combo, unknown_secret, bad_secret_value};
  const char *needles[] = {"acks", "my.app.secret", "ssl.keystore.location"};
  for (size_t c = 0; c < 3; c++) {
    log_capture_t log;
    log_capture_init(&log);
    char msg[1024];
    brook_err_t err = run_with_props(cases[c], 3, &log, msg, sizeof(msg));
    if (err == BROOK_OK || !strstr(msg, needles[c]))
      fail_msg("case %zu: %s: '%s' should name '%s'", c, brook_errname(err), msg, needles[c]);
    assert_no_canary("the error message", msg);
    assert_no_canary("the log", log_capture_text(&log));
    if (c == 1)
      assert_non_null(strstr(msg, "[redacted]"));
    log_capture_free(&log);
  }
}

/* A sink whose librdkafka properties make librdkafka warn while the producer is created
 * (group.id is a consumer property; sasl.* without a SASL security.protocol), with a
 * password set: the warnings reach the log, the pipeline still delivers everything and
 * finishes, and the password shows nowhere. */
static void test_config_warnings(void **state) {
  (void)state;
  static const char *const props[] = {"message.timeout.ms",
                                      "20000",
                                      "group.id",
                                      "not-for-producers",
                                      "security.protocol",
                                      "plaintext",
                                      "sasl.mechanisms",
                                      "PLAIN",
                                      "sasl.username",
                                      "svc",
                                      "sasl.password",
                                      CANARY,
                                      NULL};
  broker_proc_t b;
  start_broker(&b, 1, (const char *const[]){"warned:2", NULL});
  log_capture_t log;
  log_capture_init(&log);
  brook_topology_t *t = new_topology(BROOK_ON_ERROR_FAIL);
  counter_gen_t g = {20, 0};
  brook_stream_t *s = brook_source_generator(t, "gen", gen_plain, &g, NULL);
  brook_kafka_sink_opts_t o = sink_opts(b.bootstrap, "warned");
  o.properties = props;
  assert_int_equal(brook_sink_kafka(s, "warned_sink", &o), BROOK_OK);
  brook_runtime_t *rt = new_runtime(t, &log, 0);
  brook_err_t err = run_with_deadline(rt, 10000, NULL);
  if (err != BROOK_OK)
    fail_msg("run: %s: %s", brook_errname(err), brook_runtime_last_error(rt));
  assert_no_canary("the error message", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  assert_no_canary("the log", log_capture_text(&log));
  assert_non_null(strstr(log_capture_text(&log), "group.id"));
  assert_non_null(strstr(log_capture_text(&log), "sasl"));
  log_capture_free(&log);
  expect_exactly_once(&b, "warned", 20);
  assert_int_equal(broker_stop(&b), 0);
}

/* ---- secrets librdkafka itself quotes (OAUTHBEARER) ----
 * librdkafka 2.0.2 reports a bad sasl.oauthbearer.config with an error that quotes the
 * value from the first unrecognised item on (cut at its own buffer size). Its builtin
 * token refresher also crashes the process ~10 s later (a NULL queue in its retry timer),
 * so these runs happen in a child that the test kills after 8 s. */

typedef struct oauth_sink {
  const char *name;
  const char *config; /* sasl.oauthbearer.config */
} oauth_sink_t;

typedef struct oauth_scenario {
  const oauth_sink_t *sinks;
  size_t n;
  int debug_conf;   /* librdkafka's configuration dump on */
  int password_too; /* sasl.password = the secret as well (its value is then redacted
                       wherever it appears, which would hide a partial quote) */
} oauth_scenario_t;

/* Runs in the child: one generator -> Kafka sink per entry, nothing can connect without a
 * token, so every record times out after 2 s. Reports "log: <line>" per log line as it
 * comes, then "status: <code name>" and "message: <last error>". No cmocka here. */
static void oauth_log_line(int level, const char *msg, void *opaque) {
  (void)level;
  int fd = *(int *)opaque;
  child_puts(fd, "log: ");
  child_puts(fd, msg);
  child_puts(fd, "\n");
}

static void oauth_child(int fd, void *arg) {
  const oauth_scenario_t *sc = arg;
  brook_topology_t *t = NULL;
  if (brook_topology_new(&t, NULL) != BROOK_OK)
    return;
  counter_gen_t gens[4];
  for (size_t i = 0; i < sc->n && i < 4; i++) {
    const char *props[] = {"security.protocol",
                           "sasl_plaintext",
                           "sasl.mechanisms",
                           "OAUTHBEARER",
                           "enable.sasl.oauthbearer.unsecure.jwt",
                           "true",
                           "sasl.oauthbearer.config",
                           sc->sinks[i].config,
                           "message.timeout.ms",
                           "2000",
                           sc->debug_conf ? "debug" : "client.id",
                           sc->debug_conf ? "conf" : "brook-test",
                           sc->password_too ? "sasl.password" : NULL,
                           CANARY,
                           NULL};
    gens[i] = (counter_gen_t){2, 0};
    char gname[32];
    snprintf(gname, sizeof(gname), "gen%zu", i);
    brook_stream_t *s = brook_source_generator(t, gname, gen_plain, &gens[i], NULL);
    brook_kafka_sink_opts_t o;
    brook_kafka_sink_opts_init(&o);
    o.bootstrap_servers = "127.0.0.1:9";
    o.topic = "t";
    o.properties = props;
    brook_sink_kafka(s, sc->sinks[i].name, &o);
  }
  brook_runtime_opts_t ro;
  brook_runtime_opts_init(&ro);
  ro.log = oauth_log_line;
  ro.log_opaque = &fd;
  brook_runtime_t *rt = NULL;
  brook_err_t err = brook_runtime_new(&rt, t, &ro);
  const char *msg = brook_topology_last_error(t);
  if (err == BROOK_OK) {
    err = brook_runtime_run(rt);
    msg = brook_runtime_last_error(rt);
  }
  char line[1200];
  snprintf(line, sizeof(line), "status: %s\nmessage: %s\n", brook_errname(err), msg);
  child_puts(fd, line);
  brook_runtime_free(rt);
  brook_topology_free(t);
}

/* Runs the scenario in a child; fails the test if it did not report a finished run. */
static char *run_oauth_scenario(const oauth_scenario_t *sc) {
  char *report = NULL;
  int code = child_report(oauth_child, (void *)sc, 8000, &report);
  if (code != 0 || !strstr(report, "status: ")) {
    print_error("what the child reported:\n%s\n", report);
    free(report);
    fail_msg("the pipeline %s (exit code %d)",
             code < 0 ? "did not finish within 8 s" : "did not finish normally", code);
  }
  return report;
}

/* Checks a child's report: every needle is in it and the secret is not; frees it. */
static void check_report(char *report, const char *const *needles) {
  const char *missing = NULL;
  for (size_t i = 0; needles[i] && !missing; i++)
    if (!strstr(report, needles[i]))
      missing = needles[i];
  int leaked = strstr(report, "CANARY") || strstr(report, "s3cr3t");
  if (missing || leaked) {
    print_error("what the child reported:\n%s\n", report);
    free(report);
    if (leaked)
      fail_msg("the secret leaked into the log or the error message (above)");
    fail_msg("'%s' is not in the report", missing);
  }
  free(report);
}

/* The whole value quoted, with librdkafka's configuration dump on and a password set: the
 * run fails (no token, so no delivery) and "[redacted]" stands where the secret would be. */
static void test_secret_runtime_logs(void **state) {
  (void)state;
  static const oauth_sink_t sinks[] = {{"whole_echo", CANARY " principal=svc"}};
  oauth_scenario_t sc = {sinks, 1, 1, 1};
  check_report(run_oauth_scenario(&sc),
               (const char *const[]){"status: BROOK_ERR_KAFKA", "OAUTHBEARER", "[redacted]", NULL});
}

/* Only PART of the secret quoted: what follows an unrecognised item ("lifeSecond" for
 * "lifeSeconds"), and a long value cut short by librdkafka's buffer. Brook must not pass
 * the secret on in either case. */
static void test_secret_partial_echo(void **state) {
  (void)state;
  char longcfg[1200];
  int n = snprintf(longcfg, sizeof(longcfg), "%s principal=svc extension_pad=", CANARY);
  memset(longcfg + n, 'x', sizeof(longcfg) - (size_t)n - 1);
  longcfg[sizeof(longcfg) - 1] = '\0';
  const oauth_sink_t sinks[] = {
      {"suffix_echo", "principal=svc lifeSecond=60 extension_apikey=" CANARY},
      {"cut_echo", longcfg}};
  oauth_scenario_t sc = {sinks, 2, 0, 0};
  check_report(run_oauth_scenario(&sc),
               (const char *const[]){"status: BROOK_ERR_KAFKA", "'suffix_echo': _AUTHENTICATION",
                                     "'cut_echo': _AUTHENTICATION", NULL});
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_property_is_secret),  cmocka_unit_test(test_secret_config_errors),
      cmocka_unit_test(test_config_warnings),     cmocka_unit_test(test_secret_runtime_logs),
      cmocka_unit_test(test_secret_partial_echo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
