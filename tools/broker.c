/* brook-broker: an embedded Kafka cluster for tests, demos and benchmarks, built on
 * librdkafka's mock cluster (rdkafka_mock.h). It starts N brokers on loopback (random ports),
 * creates the topics it is given, prints (and optionally writes to a file) the bootstrap
 * address, then runs until SIGTERM/SIGINT, or until its control input ends.
 *
 *   brook-broker [--brokers N] [--topic NAME:PARTITIONS]... [--bootstrap-file PATH]
 *                [--control-stdin] [--quiet]
 *
 * Standard output gets one line "bootstrap=<host:port,...>" once the cluster is up (then
 * replies to control commands). With --control-stdin it reads commands, one per line, from
 * standard input, answers each with "ok" or "error: <why>" on standard output, and exits
 * when standard input ends (so a test that dies does not leave a broker behind):
 *
 *   topic NAME PARTITIONS        create a topic
 *   down BROKER | up BROKER      take a broker (1..N) down / bring it back
 *   rtt BROKER MS                delay every response of a broker by MS ms (0: none)
 *   leader TOPIC PARTITION BROKER  make BROKER the partition's leader
 *   coordinator GROUP BROKER     make BROKER the coordinator of consumer group GROUP
 *   error APIKEY ERR [COUNT]     the next COUNT (default 1) requests of protocol API APIKEY
 *                                (0 Produce, 1 Fetch, 8 OffsetCommit, ...) fail with Kafka
 *                                error code ERR (e.g. 6 NOT_LEADER_FOR_PARTITION; -195
 *                                disconnects the client)
 *   clear APIKEY                 forgets pending injected errors of APIKEY
 *   ping                         answers ok (a round trip to synchronise with)
 *   quit                         exits
 *
 * Exit status: 0 after SIGTERM/SIGINT/quit/end of input, 1 if the cluster could not start,
 * 2 on bad arguments.
 *
 * Limits of the mock in librdkafka 2.0.2 (see README, "The embedded broker"): each partition
 * keeps only about 5 MiB (older data is dropped silently), no compaction, no Admin API,
 * consumer-group joins take about 3 s, read_committed is not enforced. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_LINE 1024

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(void) {
  fprintf(stderr, "usage: brook-broker [--brokers N] [--topic NAME:PARTITIONS]... "
                  "[--bootstrap-file PATH] [--control-stdin] [--quiet]\n");
}

/* Parses a decimal integer in [lo, hi]; 0 on success. */
static int parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* Creates "name:partitions". Writes why it failed to `why`. */
static int create_topic(rd_kafka_mock_cluster_t *mc, const char *name, long partitions, char *why,
                        size_t why_len) {
  if (!*name || strlen(name) > 249) {
    snprintf(why, why_len, "bad topic name '%s'", name);
    return -1;
  }
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, (int)partitions, 1);
  if (err) {
    snprintf(why, why_len, "creating topic '%s': %s", name, rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

/* Writes the bootstrap address to `path` atomically (a temporary file, then rename), so a
 * reader polling for the file never sees half of it. */
static int write_bootstrap_file(const char *path, const char *bootstrap) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
    return -1;
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -1;
  int bad = fprintf(f, "%s\n", bootstrap) < 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* Runs one control command; the reply goes to stdout. Returns 1 if it asks to quit. */
static int run_command(rd_kafka_mock_cluster_t *mc, int n_brokers, char *line) {
  char *argv[8];
  int argc = 0;
  for (char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save); tok && argc < 8;
       tok = strtok_r(NULL, " \t\r\n", &save))
    argv[argc++] = tok;
  char why[512] = "";
  long a = 0, b = 0, c = 1;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (argc == 0) {
    return 0; /* blank line: no reply */
  } else if (strcmp(argv[0], "quit") == 0 && argc == 1) {
    printf("ok\n");
    fflush(stdout);
    return 1;
  } else if (strcmp(argv[0], "ping") == 0 && argc == 1) {
  } else if (strcmp(argv[0], "topic") == 0 && argc == 3 && parse_int(argv[2], 1, 100000, &a) == 0) {
    create_topic(mc, argv[1], a, why, sizeof(why));
  } else if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) && argc == 2 &&
             parse_int(argv[1], 1, n_brokers, &a) == 0) {
    err = argv[0][0] == 'd' ? rd_kafka_mock_broker_set_down(mc, (int32_t)a)
                            : rd_kafka_mock_broker_set_up(mc, (int32_t)a);
  } else if (strcmp(argv[0], "rtt") == 0 && argc == 3 &&
             parse_int(argv[1], 1, n_brokers, &a) == 0 && parse_int(argv[2], 0, 3600000, &b) == 0) {
    err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b);
  } else if (strcmp(argv[0], "leader") == 0 && argc == 4 &&
             parse_int(argv[2], 0, 100000, &a) == 0 && parse_int(argv[3], 1, n_brokers, &b) == 0) {
    err = rd_kafka_mock_partition_set_leader(mc, argv[1], (int32_t)a, (int32_t)b);
  } else if (strcmp(argv[0], "coordinator") == 0 && argc == 3 &&
             parse_int(argv[2], 1, n_brokers, &b) == 0) {
    err = rd_kafka_mock_coordinator_set(mc, "group", argv[1], (int32_t)b);
  } else if (strcmp(argv[0], "error") == 0 && (argc == 3 || argc == 4) &&
             parse_int(argv[1], 0, INT16_MAX, &a) == 0 &&
             parse_int(argv[2], -10000, 10000, &b) == 0 &&
             (argc == 3 || parse_int(argv[3], 1, 100000, &c) == 0)) {
    rd_kafka_resp_err_t *errs = malloc((size_t)c * sizeof(*errs));
    if (!errs) {
      snprintf(why, sizeof(why), "out of memory");
    } else {
      for (long i = 0; i < c; i++)
        errs[i] = (rd_kafka_resp_err_t)b;
      rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)c, errs);
      free(errs);
    }
  } else if (strcmp(argv[0], "clear") == 0 && argc == 2 &&
             parse_int(argv[1], 0, INT16_MAX, &a) == 0) {
    rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
  } else {
    snprintf(why, sizeof(why), "unknown command or bad arguments (brokers are 1..%d)", n_brokers);
  }
  if (!*why && err)
    snprintf(why, sizeof(why), "%s", rd_kafka_err2str(err));
  if (*why)
    printf("error: %s\n", why);
  else
    printf("ok\n");
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  long n_brokers = 1;
  const char *bootstrap_file = NULL;
  int control_stdin = 0, quiet = 0;
  /* Topics are created once the cluster exists; remember where they are in argv. */
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--brokers") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 1, 32, &n_brokers) != 0) {
        fprintf(stderr, "brook-broker: --brokers takes 1..32\n");
        return 2;
      }
    } else if (strcmp(arg, "--topic") == 0 && i + 1 < argc) {
      const char *spec = argv[++i], *colon = strrchr(spec, ':');
      long parts;
      if (!colon || colon == spec || parse_int(colon + 1, 1, 100000, &parts) != 0) {
        fprintf(stderr, "brook-broker: --topic takes NAME:PARTITIONS, not '%s'\n", spec);
        return 2;
      }
    } else if (strcmp(arg, "--bootstrap-file") == 0 && i + 1 < argc) {
      bootstrap_file = argv[++i];
    } else if (strcmp(arg, "--control-stdin") == 0) {
      control_stdin = 1;
    } else if (strcmp(arg, "--quiet") == 0) {
      quiet = 1;
    } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      usage();
      return 0;
    } else {
      fprintf(stderr, "brook-broker: unknown or incomplete option '%s'\n", arg);
      usage();
      return 2;
    }
  }

  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The handle only hosts the mock cluster's thread; it never connects anywhere. */
  if (rd_kafka_conf_set(conf, "log_level", quiet ? "0" : "3", errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK) {
    fprintf(stderr, "brook-broker: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return 1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!rk) {
    fprintf(stderr, "brook-broker: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)n_brokers);
  if (!mc) {
    fprintf(stderr, "brook-broker: could not start the mock cluster\n");
    rd_kafka_destroy(rk);
    return 1;
  }
  int status = 0;
  for (int i = 1; i < argc && !status; i++) {
    if (strcmp(argv[i], "--topic") != 0)
      continue;
    char name[256];
    const char *spec = argv[++i], *colon = strrchr(spec, ':');
    size_t len = (size_t)(colon - spec);
    long parts = strtol(colon + 1, NULL, 10);
    if (len >= sizeof(name)) {
      fprintf(stderr, "brook-broker: topic name too long in '%s'\n", spec);
      status = 2;
      break;
    }
    memcpy(name, spec, len);
    name[len] = '\0';
    if (create_topic(mc, name, parts, errstr, sizeof(errstr)) != 0) {
      fprintf(stderr, "brook-broker: %s\n", errstr);
      status = 2;
    }
  }
  const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
  if (!status && bootstrap_file && write_bootstrap_file(bootstrap_file, bootstrap) != 0) {
    fprintf(stderr, "brook-broker: cannot write %s: %s\n", bootstrap_file, strerror(errno));
    status = 1;
  }
  if (status) {
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return status;
  }
  printf("bootstrap=%s\n", bootstrap);
  fflush(stdout);

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* Wait for a signal, a quit command or the end of the control input. poll() returns
   * early with EINTR on a signal; the timeout only bounds the reaction time. */
  char line[MAX_LINE];
  size_t used = 0;
  while (!stop_requested) {
    struct pollfd pfd = {.fd = control_stdin ? STDIN_FILENO : -1, .events = POLLIN};
    int r = poll(&pfd, 1, 500);
    if (r <= 0 || !control_stdin)
      continue;
    ssize_t n = read(STDIN_FILENO, line + used, sizeof(line) - 1 - used);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* the controlling process is gone */
    used += (size_t)n;
    line[used] = '\0';
    char *nl;
    int quit = 0;
    while (!quit && (nl = strchr(line, '\n'))) {
      *nl = '\0';
      size_t consumed = (size_t)(nl - line) + 1;
      quit = run_command(mc, (int)n_brokers, line);
      memmove(line, line + consumed, used - consumed + 1);
      used -= consumed;
    }
    if (quit)
      break;
    if (used == sizeof(line) - 1) { /* a line longer than any command */
      printf("error: line too long\n");
      fflush(stdout);
      used = 0;
    }
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  if (bootstrap_file)
    unlink(bootstrap_file);
  return 0;
}
