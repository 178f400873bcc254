/* pipeline: the fraud_detection topology.
 *
 *   Kafka source "payments"      topic payments, consumer group fraud-detection; values must
 *     |                          be UTF-8, others go to payments.dlq; watermark = newest - 3 s
 *   ---- pipeline_detect: from here to the alerts, testable with the test driver ----
 *   map_values "parse_payment"   CSV -> value = amount in cents (int64_t), key = card id
 *     |                          kept (no repartition); unparsable, amount not in
 *     |                          1..MAX_AMOUNT_CENTS, or keyed by another card -> errors
 *   window_aggregate "per_card_60s_every_10s"   hopping(60 s, 10 s): payments and total
 *     |                          (saturating: a total never wraps)
 *   peek "track_windows"         counts closed windows, notes how far event time has got
 *   filter "suspicious"          at least 6 payments, or at least 2500.00
 *   map "format_alert"           "card-00042 too_many count=9 total=412.50 window=[..,..)"
 *   peek "count_alerts"          counts the alerts and the cards, prints them
 *   ----
 *   Kafka sink "alerts_out"      topic alerts
 *
 *   errors (the error stream) -> Kafka sink "dead_letters_out"   topic payments.dlq
 *
 * Every callback runs on the runtime's loop thread. The test is
 * tests/test_example_fraud_detection.c (ctest -R example_fraud_detection_unit). */
#include "pipeline.h"

#include <inttypes.h>
#include <string.h>

#define WINDOW_SIZE (60 * BROOK_S)
#define WINDOW_ADVANCE (10 * BROOK_S)
/* How far out of order payments may arrive: the generator sends them up to 2 s out of
 * order; 3 s leaves a margin. A payment later than that may miss some of its windows. */
#define MAX_DELAY (3 * BROOK_S)
/* A partition that sends nothing for this long (processing time) stops holding the
 * watermark back, so an empty partition cannot stop every window from closing. */
#define IDLE_PARTITION (30 * BROOK_S)

void pipeline_counts_init(pipeline_counts_t *c) {
  *c = (pipeline_counts_t){.newest_payment = BROOK_TIME_MIN, .closed_up_to = BROOK_TIME_MIN};
}

void pipeline_counts_free(pipeline_counts_t *c) { card_set_free(&c->alerted); }

const char *clock_time(brook_time_t ms, char buf[9]) {
  int64_t s = ms / 1000 % 86400;
  if (s < 0)
    s += 86400;
  snprintf(buf, 9, "%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
  return buf;
}

/* ---- reading payments ---- */

/* The amount field: 1 or more decimal digits (nothing else: no sign, point or space) whose
 * value is in 1..MAX_AMOUNT_CENTS, into *out. Returns NULL on success, else what is wrong. */
static const char *parse_amount(const char *s, size_t len, int64_t *out) {
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return "is not a whole number of cents";
  if (len == 0)
    return "is not a whole number of cents";
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    int d = s[i] - '0';
    if (v > (MAX_AMOUNT_CENTS - d) / 10) /* v * 10 + d would be out of range: stop before */
      return "is out of range: 1.." MAX_AMOUNT_TEXT " cents";
    v = v * 10 + d;
  }
  if (v == 0)
    return "is out of range: 1.." MAX_AMOUNT_TEXT " cents";
  *out = v;
  return NULL;
}

/* A whole number of 1..18 decimal digits into *out; 0 on success. */
static int parse_digits(const char *s, size_t len, int64_t *out) {
  if (len == 0 || len > 18)
    return -1;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* "card-00042,1250,grocery,1767225600123" -> key "card-00042", value (int64_t)1250.
 * The event time is the message timestamp (the watermark is computed from it at the
 * source); the CSV's copy is only checked. A failure names what is wrong: the error stream
 * carries the text in the "brook.error.message" header to the dead-letter topic. */
static brook_err_t parse_payment(const brook_record_t *rec, const void **value, size_t *value_len,
                                 brook_ctx_t *ctx, void *opaque) {
  pipeline_counts_t *counts = opaque;
  if (rec->value_len == 0) {
    brook_ctx_set_error(ctx, "empty value");
    return BROOK_ERR_USER;
  }
  const char *p = rec->value, *end = p + rec->value_len;
  size_t commas = 0;
  for (const char *c = p; c < end; c++)
    commas += *c == ',';
  if (commas != 3) {
    brook_ctx_set_error(ctx,
                        "expected 4 comma-separated fields (card,cents,merchant,time_ms), "
                        "got %zu",
                        commas + 1);
    return BROOK_ERR_USER;
  }
  const char *field[4];
  size_t len[4];
  for (int i = 0; i < 4; i++) {
    const char *comma = i < 3 ? memchr(p, ',', (size_t)(end - p)) : end;
    field[i] = p;
    len[i] = (size_t)(comma - p);
    p = comma + (i < 3);
  }
  if (len[0] == 0 || len[0] > 32) {
    brook_ctx_set_error(ctx, "the card id must have 1..32 characters, not %zu", len[0]);
    return BROOK_ERR_USER;
  }
  for (size_t i = 0; i < len[0]; i++)
    if (field[0][i] <= ' ' || field[0][i] > '~') {
      brook_ctx_set_error(ctx, "the card id has a character that is not printable ASCII");
      return BROOK_ERR_USER;
    }
  int64_t cents, event_ms;
  const char *bad_amount = parse_amount(field[1], len[1], &cents);
  if (bad_amount) {
    brook_ctx_set_error(ctx, "amount '%.*s' %s", (int)(len[1] < 24 ? len[1] : 24), field[1],
                        bad_amount);
    return BROOK_ERR_USER;
  }
  if (len[2] == 0) {
    brook_ctx_set_error(ctx, "the merchant is empty");
    return BROOK_ERR_USER;
  }
  if (parse_digits(field[3], len[3], &event_ms) != 0) {
    brook_ctx_set_error(ctx, "event time '%.*s' is not a number of ms since the epoch",
                        (int)(len[3] < 24 ? len[3] : 24), field[3]);
    return BROOK_ERR_USER;
  }
  /* The key stays the message key, which must be the card id: the topic is partitioned by
   * card (paygen keys every payment by it), so each partition's task sees whole cards and
   * its windows are right, with no repartition (map_values cannot change the key). A payment
   * keyed otherwise sits in some other card's partition: a dead letter, never a window
   * counted apart. (A pipeline whose topic is keyed by something else would use brook_map
   * to set the key - brook then repartitions before the window - or brook_key_by.) */
  if (rec->key_len != len[0] || memcmp(rec->key, field[0], len[0]) != 0) {
    brook_ctx_set_error(ctx,
                        "the message key is not the card id '%.*s' (the topic must be "
                        "keyed by card)",
                        (int)len[0], field[0]);
    return BROOK_ERR_USER;
  }
  int64_t *amount = brook_ctx_alloc(ctx, sizeof(*amount)); /* lives until the batch is done */
  if (!amount)
    return BROOK_ERR_NOMEM;
  *amount = cents;
  *value = amount;
  *value_len = sizeof(*amount);
  if (rec->timestamp > counts->newest_payment)
    counts->newest_payment = rec->timestamp;
  return BROOK_OK;
}

/* ---- per card and window: payments and total ---- */

/* Both counts saturate at INT64_MAX instead of wrapping: a window's total can exceed what an
 * int64_t holds (ten payments of MAX_AMOUNT_CENTS do), and a wrapped total would be negative
 * and hide the window from the too_large check. A saturated total is a lower bound, and the
 * alert says so ("total>=..."). */
typedef struct card_activity {
  int64_t payments;
  int64_t cents;
} card_activity_t;

/* a + b for a, b >= 0, or INT64_MAX if the sum does not fit. */
static int64_t add_saturating(int64_t a, int64_t b) {
  int64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

static brook_err_t activity_add(void *acc, const brook_record_t *rec,
                                const brook_aggregator_t *agg) {
  (void)agg;
  if (rec->value_len != sizeof(int64_t))
    return BROOK_ERR_INVALID_ARG; /* not from parse_payment: cannot happen */
  int64_t cents;
  memcpy(&cents, rec->value, sizeof(cents));
  card_activity_t *a = acc; /* starts zeroed */
  a->payments = add_saturating(a->payments, 1);
  a->cents = add_saturating(a->cents, cents);
  return BROOK_OK;
}

/* Hopping windows keep a partial aggregate per 10-s slice and merge six of them per window. */
static void activity_merge(void *acc, const void *other, const brook_aggregator_t *agg) {
  (void)agg;
  card_activity_t *a = acc;
  const card_activity_t *o = other;
  a->payments = add_saturating(a->payments, o->payments);
  a->cents = add_saturating(a->cents, o->cents);
}

static const brook_aggregator_t card_activity = {
    .version = BROOK_AGGREGATOR_VERSION,
    .name = "card_activity",
    .acc_size = sizeof(card_activity_t), /* no result(): the accumulator is the result */
    .add = activity_add,
    .merge = activity_merge,
};

/* A window result: the window and the card's activity in it. */
static int window_activity(const brook_record_t *rec, brook_window_value_t *w, card_activity_t *a) {
  const void *result;
  if (brook_window_parse(rec, w, &result) != BROOK_OK || w->result_len != sizeof(*a))
    return -1;
  memcpy(a, result, sizeof(*a));
  return 0;
}

static brook_err_t track_windows(const brook_record_t *rec, void *opaque) {
  pipeline_counts_t *counts = opaque;
  brook_window_value_t w;
  if (brook_window_parse(rec, &w, NULL) == BROOK_OK && w.end > counts->closed_up_to)
    counts->closed_up_to = w.end;
  counts->windows++;
  return BROOK_OK;
}

/* ---- alerts ---- */

static int suspicious(const brook_record_t *rec, void *opaque) {
  (void)opaque;
  brook_window_value_t w;
  card_activity_t a;
  if (window_activity(rec, &w, &a) != 0)
    return BROOK_ERR_INVALID_ARG;
  return a.payments >= TOO_MANY_PAYMENTS || a.cents >= TOO_LARGE_CENTS;
}

/* The alert text: "card-00042 too_many count=9 total=412.50 window=[00:12:10,00:13:10)",
 * the reason being too_many, too_large or too_many,too_large; a saturated total reads
 * "total>=92233720368547758.07" (see card_activity_t). Key (the card) and timestamp
 * (the window's last millisecond) stay. */
static brook_err_t format_alert(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  (void)opaque;
  brook_window_value_t w;
  card_activity_t a;
  if (window_activity(rec, &w, &a) != 0)
    return BROOK_ERR_INVALID_ARG;
  int many = a.payments >= TOO_MANY_PAYMENTS, large = a.cents >= TOO_LARGE_CENTS;
  const char *reason = many && large ? "too_many,too_large" : many ? "too_many" : "too_large";
  char from[9], to[9];
  size_t size = rec->key_len + 128;
  char *text = brook_ctx_alloc(ctx, size); /* lives until the batch is done */
  if (!text)
    return BROOK_ERR_NOMEM;
  const char *total = a.cents == INT64_MAX ? "total>=" : "total=";
  int n =
      snprintf(text, size, "%.*s %s count=%" PRId64 " %s%" PRId64 ".%02d window=[%s,%s)",
               (int)rec->key_len, (const char *)rec->key, reason, a.payments, total, a.cents / 100,
               (int)(a.cents % 100), clock_time(w.start, from), clock_time(w.end, to));
  rec->value = text;
  rec->value_len = (size_t)n;
  return BROOK_OK;
}

static brook_err_t count_alerts(const brook_record_t *rec, void *opaque) {
  pipeline_counts_t *counts = opaque;
  counts->alerts++;
  if (card_set_add(&counts->alerted, rec->key, rec->key_len) != 0)
    counts->out_of_memory = 1; /* reported in the summary; the alert itself still goes out */
  if (counts->alerts_out)
    fprintf(counts->alerts_out, "ALERT %.*s\n", (int)rec->value_len, (const char *)rec->value);
  return BROOK_OK;
}

/* ---- the topology ---- */

brook_stream_t *pipeline_detect(brook_stream_t *payments, pipeline_counts_t *counts) {
  brook_stream_t *parsed =
      brook_stream_set_name(brook_map_values(payments, parse_payment, counts), "parse_payment");

  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "per_card_60s_every_10s"; /* emit: on close (the default) */
  brook_window_t win = brook_window_hopping(WINDOW_SIZE, WINDOW_ADVANCE);
  brook_stream_t *windows = brook_window_aggregate(parsed, &win, &card_activity, &wo);
  windows = brook_stream_set_name(brook_peek(windows, track_windows, counts), "track_windows");

  brook_stream_t *alerts =
      brook_stream_set_name(brook_filter(windows, suspicious, NULL), "suspicious");
  alerts = brook_stream_set_name(brook_map(alerts, format_alert, NULL), "format_alert");
  alerts = brook_stream_set_name(brook_peek(alerts, count_alerts, counts), "count_alerts");

  return alerts;
}

brook_err_t pipeline_build(brook_topology_t *t, const pipeline_opts_t *opts,
                           pipeline_counts_t *counts) {
  counts->alerts_out = opts->alerts_out;
  const char *const topics[] = {opts->payments_topic, NULL};

  brook_kafka_source_opts_t so;
  brook_kafka_source_opts_init(&so);
  so.bootstrap_servers = opts->brokers;
  so.group_id = opts->group;
  so.topics = topics; /* copied */
  so.properties = opts->properties;
  /* Values must be UTF-8 text; the source sends anything else to the dead-letter topic with
   * its coordinates and counts it (brook_runtime_stats: records_dead_lettered). The serde
   * tables are copied by the builders. */
  brook_serde_t utf8 = brook_serde_utf8();
  so.value_serde = &utf8;
  so.on_malformed = BROOK_KAFKA_MALFORMED_DEAD_LETTER;
  so.dead_letter_topic = opts->dlq_topic;
  brook_stream_t *payments = brook_source_kafka(t, "payments", &so);

  /* Event time: the message timestamp (the generator sets it to the payment's time). */
  brook_watermark_opts_t wm;
  brook_watermark_opts_init(&wm);
  wm.kind = BROOK_WATERMARK_BOUNDED;
  wm.max_delay = MAX_DELAY;
  wm.idle_timeout = IDLE_PARTITION;
  brook_source_set_watermark(payments, &wm); /* an error is recorded in the topology */

  brook_stream_t *alerts = pipeline_detect(payments, counts);

  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = opts->brokers;
  ko.properties = opts->properties;
  ko.value_serde = &utf8; /* alerts are text */
  ko.topic = opts->alerts_topic;
  brook_sink_kafka(alerts, "alerts_out", &ko);

  /* Payments parse_payment rejected, with their brook.error* headers. */
  ko.topic = opts->dlq_topic;
  ko.value_serde = NULL; /* bytes, as they came */
  brook_sink_kafka(brook_error_stream(t), "dead_letters_out", &ko);

  return brook_topology_validate(t);
}
