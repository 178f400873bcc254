/* pipeline: the fraud_detection topology.
 *
 *   Kafka source "payments"      topic payments, consumer group fraud-detection; values must
 *     |                          be UTF-8, others go to payments.dlq; watermark = newest - 3 s
 *   map "parse_payment"          CSV -> key = card id, value = amount in cents (int64_t);
 *     |                          unparsable -> the error stream
 *   window_aggregate "per_card_60s_every_10s"   hopping(60 s, 10 s): payments and total
 *   peek "track_windows"         counts closed windows, notes how far event time has got
 *   filter "suspicious"          at least 6 payments, or at least 2500.00
 *   map "format_alert"           "card-00042 too_many count=9 total=412.50 window=[..,..)"
 *   peek "count_alerts"          counts the alerts and the cards, prints them
 *   Kafka sink "alerts_out"      topic alerts
 *
 *   errors (the error stream) -> Kafka sink "dead_letters_out"   topic payments.dlq
 *
 * Every callback runs on the runtime's loop thread. */
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

/* 1 if s[0..len) is valid UTF-8: no stray continuation byte, no truncated or overlong
 * sequence, no surrogate, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    unsigned c = s[i];
    size_t n = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
    if (n == 0 || len - i < n)
      return 0;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t min_of[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += n;
  }
  return 1;
}

/* The source's value deserialiser: BROOK_KAFKA_STRING's check (the value must be UTF-8 text;
 * the source sends anything else to the dead-letter topic), plus a count of what it rejects:
 * brook_runtime_stats has no counter for dead-lettered messages. */
static brook_err_t utf8_text(brook_ctx_t *ctx, const void *in, size_t in_len, const void **out,
                             size_t *out_len, void *opaque) {
  pipeline_counts_t *counts = opaque;
  if (!utf8_valid(in, in_len)) {
    counts->invalid_utf8++;
    brook_ctx_set_error(ctx, "not valid UTF-8 (%zu bytes)", in_len);
    return BROOK_ERR_CORRUPT;
  }
  *out = in;
  *out_len = in_len;
  return BROOK_OK;
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
static brook_err_t parse_payment(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
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
  if (parse_digits(field[1], len[1], &cents) != 0 || cents == 0) {
    brook_ctx_set_error(ctx, "amount '%.*s' is not a positive whole number of cents",
                        (int)(len[1] < 24 ? len[1] : 24), field[1]);
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
  int64_t *amount = brook_ctx_alloc(ctx, sizeof(*amount)); /* lives until the batch is done */
  if (!amount)
    return BROOK_ERR_NOMEM;
  *amount = cents;
  rec->key = field[0]; /* points into the input value: valid for the batch, too */
  rec->key_len = len[0];
  rec->value = amount;
  rec->value_len = sizeof(*amount);
  if (rec->timestamp > counts->newest_payment)
    counts->newest_payment = rec->timestamp;
  return BROOK_OK;
}

/* ---- per card and window: payments and total ---- */

typedef struct card_activity {
  int64_t payments;
  int64_t cents;
} card_activity_t;

static brook_err_t activity_add(void *acc, const brook_record_t *rec,
                                const brook_aggregator_t *agg) {
  (void)agg;
  if (rec->value_len != sizeof(int64_t))
    return BROOK_ERR_INVALID_ARG; /* not from parse_payment: cannot happen */
  int64_t cents;
  memcpy(&cents, rec->value, sizeof(cents));
  card_activity_t *a = acc; /* starts zeroed */
  a->payments++;
  a->cents += cents;
  return BROOK_OK;
}

/* Hopping windows keep a partial aggregate per 10-s slice and merge six of them per window. */
static void activity_merge(void *acc, const void *other, const brook_aggregator_t *agg) {
  (void)agg;
  card_activity_t *a = acc;
  const card_activity_t *o = other;
  a->payments += o->payments;
  a->cents += o->cents;
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
 * the reason being too_many, too_large or too_many,too_large. Key (the card) and timestamp
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
  int n = snprintf(text, size, "%.*s %s count=%" PRId64 " total=%" PRId64 ".%02d window=[%s,%s)",
                   (int)rec->key_len, (const char *)rec->key, reason, a.payments, a.cents / 100,
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
  so.value = (brook_kafka_serde_t){BROOK_KAFKA_CUSTOM, utf8_text, counts};
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

  brook_stream_t *parsed =
      brook_stream_set_name(brook_map(payments, parse_payment, counts), "parse_payment");

  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "per_card_60s_every_10s"; /* emit: on close (the default) */
  brook_stream_t *windows = brook_window_aggregate(
      parsed, brook_window_hopping(WINDOW_SIZE, WINDOW_ADVANCE), &card_activity, &wo);
  windows = brook_stream_set_name(brook_peek(windows, track_windows, counts), "track_windows");

  brook_stream_t *alerts =
      brook_stream_set_name(brook_filter(windows, suspicious, NULL), "suspicious");
  alerts = brook_stream_set_name(brook_map(alerts, format_alert, NULL), "format_alert");
  alerts = brook_stream_set_name(brook_peek(alerts, count_alerts, counts), "count_alerts");

  brook_kafka_sink_opts_t ko;
  brook_kafka_sink_opts_init(&ko);
  ko.bootstrap_servers = opts->brokers;
  ko.properties = opts->properties;
  ko.value.format = BROOK_KAFKA_STRING;
  ko.topic = opts->alerts_topic;
  brook_sink_kafka(alerts, "alerts_out", &ko);

  /* Payments parse_payment rejected, with their brook.error* headers. */
  ko.topic = opts->dlq_topic;
  ko.value.format = BROOK_KAFKA_BYTES; /* as they came */
  brook_sink_kafka(brook_error_stream(t), "dead_letters_out", &ko);

  return brook_topology_validate(t);
}
