/* log_filter: a first example (the flagship is fraud_detection). Reads an application log, keeps
 * the slow WARN and ERROR lines, reformats them and writes them out; malformed lines go to the
 * error stream, where they are counted (and a few kept to show), so nothing is lost silently.
 *
 *   log_filter INPUT OUTPUT [--min-latency MS]      (INPUT/OUTPUT may be "-": stdin/stdout)
 *
 * Input lines look like
 *   2026-11-24T10:00:00.123Z ERROR billing upstream timeout latency_ms=1234
 * and come out as
 *   10:00:00.123 ERROR [billing] 1234ms upstream timeout
 *
 * The pipeline:
 *
 *   lines(INPUT) -> parse (map) -> slow_warn_error (filter) -> format (map) -> lines(OUTPUT)
 *   error stream -> malformed (callback sink)
 *
 * "parse" turns the text into a native struct (struct log_event) allocated with
 * brook_ctx_alloc: inside a process, records carry native values and nothing is
 * re-serialised between operators. Ctrl-C stops the pipeline safely: what was read is
 * processed and written before the program exits. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <brook/brook.h>
#include <uv.h>

/* ---- the native value the parse step produces ------------------------------------------ */

typedef enum log_level { LEVEL_DEBUG, LEVEL_INFO, LEVEL_WARN, LEVEL_ERROR } log_level_t;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* One parsed log line. The text fields point into the input line, which stays valid until
 * the batch has passed through the whole pipeline (see record.h), so nothing is copied. */
typedef struct log_event {
  log_level_t level;
  const char *service;
  size_t service_len;
  const char *message;
  size_t message_len;
  uint32_t latency_ms;
} log_event_t;

/* ---- parsing ------------------------------------------------------------------------- */

/* Reads exactly `n` decimal digits at *p; -1 if they are not all digits. */
static int read_digits(const char **p, const char *end, int n) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (*p >= end || **p < '0' || **p > '9')
      return -1;
    v = v * 10 + (**p - '0');
  }
  return v;
}

static int expect_char(const char **p, const char *end, char c) {
  if (*p >= end || **p != c)
    return 0;
  (*p)++;
  return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil):
 * portable, no timegm() or TZ needed. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (the whole token) into ms since the epoch, brook's
 * timestamp unit (timestamp.h). Returns 0 on success. */
static int parse_iso8601_ms(const char *s, size_t len, brook_time_t *out) {
  const char *p = s, *end = s + len;
  int y = read_digits(&p, end, 4);
  if (y < 0 || !expect_char(&p, end, '-'))
    return -1;
  int mo = read_digits(&p, end, 2);
  if (mo < 1 || mo > 12 || !expect_char(&p, end, '-'))
    return -1;
  int d = read_digits(&p, end, 2);
  if (d < 1 || d > 31 || !expect_char(&p, end, 'T'))
    return -1;
  int h = read_digits(&p, end, 2);
  if (h < 0 || h > 23 || !expect_char(&p, end, ':'))
    return -1;
  int mi = read_digits(&p, end, 2);
  if (mi < 0 || mi > 59 || !expect_char(&p, end, ':'))
    return -1;
  int sec = read_digits(&p, end, 2);
  if (sec < 0 || sec > 60) /* 60: a leap second, folded into the next minute */
    return -1;
  int ms = 0;
  if (p < end && *p == '.') { /* fraction: keep milliseconds, ignore finer digits */
    p++;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      if (digits < 3)
        ms = ms * 10 + (*p - '0');
      digits++;
      p++;
    }
    if (digits == 0)
      return -1;
    for (; digits < 3; digits++)
      ms *= 10;
  }
  if (!expect_char(&p, end, 'Z') || p != end)
    return -1;
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  *out = secs * BROOK_S + ms;
  return 0;
}

/* The next token of [*p, end) (tokens are separated by spaces): sets *tok and *tok_len and
 * moves *p past it. Returns 0 if there is no token left. */
static int next_token(const char **p, const char *end, const char **tok, size_t *tok_len) {
  while (*p < end && **p == ' ')
    (*p)++;
  const char *start = *p;
  while (*p < end && **p != ' ')
    (*p)++;
  *tok = start;
  *tok_len = (size_t)(*p - start);
  return *tok_len > 0;
}

static int parse_level(const char *s, size_t len, log_level_t *out) {
  for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
    if (strlen(level_names[i]) == len && memcmp(level_names[i], s, len) == 0) {
      *out = (log_level_t)i;
      return 0;
    }
  }
  return -1;
}

/* "latency_ms=NN" -> NN. */
static int parse_latency(const char *s, size_t len, uint32_t *out) {
  static const char prefix[] = "latency_ms=";
  const size_t plen = sizeof(prefix) - 1;
  if (len <= plen || len > plen + 9 || memcmp(s, prefix, plen) != 0)
    return -1;
  uint32_t v = 0;
  for (size_t i = plen; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  *out = v;
  return 0;
}

/* map "parse": a text line -> a record whose value is a log_event_t, key = service and
 * timestamp = the line's own time (event time), not the time it was read. A line that does
 * not parse returns an error: the topology's error policy (ROUTE, set in main) sends it to
 * the error stream and the pipeline carries on. Runs on the loop thread. */
static brook_err_t parse_line(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  const char *p = rec->value, *end = p + rec->value_len;
  const char *ts, *level, *service, *last;
  size_t ts_len, level_len, service_len, last_len;
  log_event_t ev;
  brook_time_t when;
  if (!next_token(&p, end, &ts, &ts_len) || parse_iso8601_ms(ts, ts_len, &when) != 0 ||
      !next_token(&p, end, &level, &level_len) || parse_level(level, level_len, &ev.level) != 0 ||
      !next_token(&p, end, &service, &service_len))
    return BROOK_ERR_USER;
  /* The last token is latency_ms=NN; everything between the service and it is the message. */
  while (end > p && end[-1] == ' ')
    end--;
  last = end;
  while (last > p && last[-1] != ' ')
    last--;
  last_len = (size_t)(end - last);
  if (parse_latency(last, last_len, &ev.latency_ms) != 0)
    return BROOK_ERR_USER;
  const char *msg_end = last;
  while (p < msg_end && *p == ' ')
    p++;
  while (msg_end > p && msg_end[-1] == ' ')
    msg_end--;
  ev.service = service;
  ev.service_len = service_len;
  ev.message = p;
  ev.message_len = (size_t)(msg_end - p);

  /* The struct lives in the batch arena: freed by brook once the batch is done. */
  log_event_t *value = brook_ctx_alloc(ctx, sizeof(*value));
  if (!value)
    return BROOK_ERR_NOMEM;
  *value = ev;
  rec->value = value;
  rec->value_len = sizeof(*value);
  rec->key = service;
  rec->key_len = service_len;
  rec->timestamp = when;
  return BROOK_OK;
}

/* ---- filtering and formatting ---------------------------------------------------------- */

typedef struct filter_conf {
  uint32_t min_latency_ms;
  uint64_t matched; /* only touched on the loop thread */
} filter_conf_t;

/* filter "slow_warn_error": WARN or ERROR, and at least min_latency_ms. */
static int is_slow_warn_or_error(const brook_record_t *rec, void *opaque) {
  filter_conf_t *conf = opaque;
  const log_event_t *ev = rec->value;
  int keep = ev->level >= LEVEL_WARN && ev->latency_ms >= conf->min_latency_ms;
  conf->matched += (uint64_t)keep;
  return keep;
}

/* map "format": log_event_t -> "HH:MM:SS.mmm LEVEL [service] NNNms message" (UTC). */
static brook_err_t format_line(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  const log_event_t *ev = rec->value;
  int64_t ms_of_day = rec->timestamp % (24 * BROOK_H);
  if (ms_of_day < 0)
    ms_of_day += 24 * BROOK_H;
  size_t cap = 64 + ev->service_len + ev->message_len;
  char *out = brook_ctx_alloc(ctx, cap);
  if (!out)
    return BROOK_ERR_NOMEM;
  int n = snprintf(out, cap, "%02d:%02d:%02d.%03d %-5s [%.*s] %" PRIu32 "ms%s%.*s",
                   (int)(ms_of_day / BROOK_H), (int)(ms_of_day / BROOK_MIN % 60),
                   (int)(ms_of_day / BROOK_S % 60), (int)(ms_of_day % BROOK_S),
                   level_names[ev->level], (int)ev->service_len, ev->service, ev->latency_ms,
                   ev->message_len ? " " : "", (int)ev->message_len, ev->message);
  if (n < 0 || (size_t)n >= cap)
    return BROOK_ERR_TOO_LARGE;
  rec->value = out; /* the line sink writes value + '\n' */
  rec->value_len = (size_t)n;
  return BROOK_OK;
}

/* ---- the error stream: count malformed lines, keep the first few ---------------------- */

#define KEEP_EXAMPLES 3

typedef struct malformed {
  uint64_t count;
  size_t kept;
  char line[KEEP_EXAMPLES][96];
  char why[KEEP_EXAMPLES][96];
} malformed_t;

/* Copies at most dst_size-1 bytes of a (not NUL-terminated) value into dst. */
static void copy_text(char *dst, size_t dst_size, const void *src, size_t len) {
  if (len >= dst_size)
    len = dst_size - 1;
  if (len)
    memcpy(dst, src, len);
  dst[len] = '\0';
}

/* Callback sink on brook_error_stream(). The record is the failed input (the raw line) plus
 * the headers brook.error, brook.error.operator and brook.error.message. It is borrowed for
 * this call, so what we keep we copy. Runs on the loop thread. */
static brook_err_t on_malformed(const brook_record_t *rec, void *opaque) {
  malformed_t *m = opaque;
  m->count++;
  if (m->kept == KEEP_EXAMPLES)
    return BROOK_OK;
  char line[sizeof(m->line[0])];
  copy_text(line, sizeof(line), rec->value, rec->value_len);
  for (size_t i = 0; i < m->kept; i++)
    if (strcmp(m->line[i], line) == 0)
      return BROOK_OK; /* keep distinct examples only */
  const brook_header_t *err = brook_record_header(rec, "brook.error");
  const brook_header_t *op = brook_record_header(rec, "brook.error.operator");
  char e[40] = "?", o[40] = "?";
  if (err)
    copy_text(e, sizeof(e), err->value, err->value_len);
  if (op)
    copy_text(o, sizeof(o), op->value, op->value_len);
  memcpy(m->line[m->kept], line, sizeof(line));
  snprintf(m->why[m->kept], sizeof(m->why[0]), "%s in '%s'", e, o);
  m->kept++;
  return BROOK_OK;
}

/* ---- Ctrl-C: a safe stop ------------------------------------------------------------- */

static brook_runtime_t *volatile running_rt;
static volatile sig_atomic_t interrupted;

/* brook_runtime_stop is async-signal-safe: the runtime stops reading, finishes what it has
 * accepted, flushes the output and returns from brook_runtime_run. */
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
  brook_runtime_stop(running_rt);
}

static void on_log(int level, const char *msg, void *opaque) {
  (void)opaque;
  fprintf(stderr, "log_filter: brook[%d]: %s\n", level, msg);
}

/* ---- main ---------------------------------------------------------------------------- */

static int usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s INPUT OUTPUT [--min-latency MS]\n"
          "  Keeps WARN/ERROR log lines with latency_ms >= MS (default 500), reformatted.\n"
          "  INPUT and OUTPUT may be \"-\" for standard input/output.\n",
          argv0);
  return 2;
}

static int parse_ms(const char *s, uint32_t *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || s[0] == '-' || v > UINT32_MAX)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

int main(int argc, char **argv) {
  const char *input = NULL, *output = NULL;
  filter_conf_t conf = {.min_latency_ms = 500};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--min-latency") == 0 && i + 1 < argc) {
      if (parse_ms(argv[++i], &conf.min_latency_ms) != 0)
        return usage(argv[0]);
    } else if (strncmp(argv[i], "--min-latency=", 14) == 0) {
      if (parse_ms(argv[i] + 14, &conf.min_latency_ms) != 0)
        return usage(argv[0]);
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(argv[0]);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return usage(argv[0]);
    } else if (!input) {
      input = argv[i];
    } else if (!output) {
      output = argv[i];
    } else {
      return usage(argv[0]);
    }
  }
  if (!input || !output)
    return usage(argv[0]);

  /* Build the topology. Builders return NULL on error and pass NULL along, so the whole
   * chain is checked once, by brook_runtime_new. */
  brook_topology_opts_t topts;
  brook_topology_opts_init(&topts);
  topts.error_policy = BROOK_ON_ERROR_ROUTE; /* a bad line goes to the error stream */
  brook_topology_t *t = NULL;
  brook_err_t err = brook_topology_new(&t, &topts);
  if (err != BROOK_OK) {
    fprintf(stderr, "log_filter: %s\n", brook_strerror(err));
    return 1;
  }
  malformed_t malformed = {0};
  brook_stream_t *lines = brook_source_lines(t, "read", input, NULL);
  brook_stream_t *events = brook_stream_set_name(brook_map(lines, parse_line, NULL), "parse");
  brook_stream_t *slow =
      brook_stream_set_name(brook_filter(events, is_slow_warn_or_error, &conf), "slow_warn_error");
  brook_stream_t *text = brook_stream_set_name(brook_map(slow, format_line, NULL), "format");
  brook_sink_lines(text, output, NULL);
  brook_sink_callback(brook_error_stream(t), on_malformed, NULL, &malformed);

  brook_runtime_opts_t ropts;
  brook_runtime_opts_init(&ropts);
  ropts.log = on_log;
  brook_runtime_t *rt = NULL;
  if ((err = brook_runtime_new(&rt, t, &ropts)) != BROOK_OK) {
    fprintf(stderr, "log_filter: cannot build the pipeline: %s\n", brook_topology_last_error(t));
    brook_topology_free(t);
    return 1;
  }
  brook_topology_free(t); /* the runtime keeps what it needs */

  running_rt = rt;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills the program the usual way */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);

  uint64_t start_ns = uv_hrtime();
  err = brook_runtime_run(rt); /* until the input ends or Ctrl-C */
  uint64_t elapsed_ns = uv_hrtime() - start_ns;

  signal(SIGINT, SIG_DFL);
  running_rt = NULL;

  brook_runtime_stats_t stats = {.struct_size = sizeof(stats)};
  brook_runtime_stats(rt, &stats);
  if (err != BROOK_OK) {
    fprintf(stderr, "log_filter: failed: %s\n", brook_runtime_last_error(rt));
    brook_runtime_free(rt);
    return 1;
  }

  /* records_out counts deliveries to sinks; sinks fed by the error stream are not counted. */
  uint64_t written = stats.records_out;
  double secs = (double)elapsed_ns / 1e9;
  fprintf(stderr, "log_filter: %s\n",
          interrupted ? "interrupted (Ctrl-C), stopped cleanly" : "done");
  fprintf(stderr, "  lines read:  %" PRIu64 "\n", stats.records_in);
  fprintf(stderr, "  matched:     %" PRIu64 " (WARN/ERROR with latency_ms >= %" PRIu32 ")\n",
          conf.matched, conf.min_latency_ms);
  fprintf(stderr, "  written:     %" PRIu64 " to %s\n", written,
          strcmp(output, "-") == 0 ? "standard output" : output);
  fprintf(stderr, "  malformed:   %" PRIu64 "%s\n", malformed.count,
          malformed.count ? " (sent to the error stream), e.g." : "");
  for (size_t i = 0; i < malformed.kept; i++)
    fprintf(stderr, "               \"%s\"  [%s]\n", malformed.line[i], malformed.why[i]);
  fprintf(stderr, "  elapsed:     %.3f s, %.0f lines/s\n", secs,
          secs > 0 ? (double)stats.records_in / secs : 0.0);

  brook_runtime_free(rt);
  return interrupted ? 130 : 0;
}
