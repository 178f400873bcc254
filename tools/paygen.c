/* brook-paygen: synthetic card payments for the fraud_detection example, written to a Kafka
 * topic with plain librdkafka (an idempotent producer, acks=all).
 *
 *   brook-paygen --brokers LIST [--topic NAME] [--count N] [--cards N] [--seed S]
 *                [--fraud-cards N] [--fraud-list FILE] [--poison-timestamps 0|1]
 *                [-X KEY=VALUE]...
 *
 * Each message: key = the card id ("card-00042"), value = UTF-8 CSV
 * "card-00042,<amount in cents>,<merchant>,<event time, ms since the epoch>", message
 * timestamp = the same event time. The output is the same for the same options (the seed).
 *
 * Event time follows a simulated clock that starts at 2026-01-01T00:00:00Z and advances 10 ms
 * per message (200,000 messages span 33 minutes 20 s); each payment's event time is the clock
 * minus 0..2000 ms, so the stream is up to 2 s out of order.
 *
 * Normal cards pay 1.00-150.00 every 25-75 s of event time (every --cards x 10 ms on average,
 * 50 s with the defaults): three payments in a minute at most, give or take one, far from
 * the six that make an alert (with fewer than ~2500 cards they pay more often). On --fraud-cards of
 * the cards (which also pay normally), each fraud incident is either a burst of 8-12 small payments
 * within 15 s (card testing) or one payment of 3000.00-9000.00; a fraud card has one incident, a
 * third of them a second one. Incidents happen between 10 s after the start and 75 s before the end
 * of the stream, so a pipeline that stops after reading the whole topic has closed every window
 * that holds fraud. About 1 message in 2000 is malformed: half of them are not valid UTF-8, half
 * are text that is not the CSV above.
 *
 * With --poison-timestamps 1, the payments are preceded by one valid payment at the head of
 * each partition of the topic whose MESSAGE timestamp is odd: INT64_MAX, 2100-01-01, -5 and
 * INT64_MIN in turn (partition p gets the (p mod 4)-th). A consumer that trusts them moves a
 * partition's watermark to the end of time (every later payment late) or to the wall clock.
 *
 * At the end, one line on standard output:
 *   paygen: sent=<n> fraud_cards=<id,id,...> malformed_utf8=<n> malformed_csv=<n> poisoned=<n>
 * (sent counts the poisoned payments too).
 * and with --fraud-list FILE the fraud card ids, one per line, sorted.
 * Exit status: 0 when every message was acknowledged, 1 on a Kafka or I/O error, 2 on bad
 * usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#define BASE_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define SLOT_MS 10                     /* the clock advances this much per message */
#define MAX_JITTER_MS 2000             /* event time = clock - 0..MAX_JITTER_MS */
#define MALFORMED_ONE_IN 2000
#define MAX_CARDS 99999 /* card ids have 5 digits */

/* Fraud incidents, in slots (one slot = one message = SLOT_MS of event time). */
#define FRAUD_FIRST_SLOT 1000 /* not in the first 10 s */
#define BURST_SLOTS 1500      /* a burst spans at most 15 s of the clock (+ jitter) */
/* No incident in the last 75 s: the last window holding a fraud payment (60 s every 10 s)
 * ends within 10 s of it and closes once the watermark (3 s behind the newest event time)
 * passes its end. A pipeline stopped after the last message (rather than at the end of time)
 * has then closed it, with margin. */
#define FRAUD_TAIL_SLOTS 7500

static const char *const merchants[] = {
    "grocery",  "fuel",      "pharmacy", "coffee", "books",   "restaurant",
    "clothing", "transport", "cinema",   "hotel",  "airline", "hardware",
};
static const char *const burst_merchants[] = {"online-games", "gift-cards", "app-store"};
static const char *const large_merchants[] = {"electronics", "jewelry", "luxury-watches"};

/* ---- a seeded random number generator (splitmix64: small, fast, good enough) ---- */

typedef struct rng {
  uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r) {
  uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (the modulo bias is negligible for the small n used here). */
static uint64_t rng_below(rng_t *r, uint64_t n) { return rng_next(r) % n; }

/* Uniform in [lo, hi]. */
static int64_t rng_range(rng_t *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)rng_below(r, (uint64_t)(hi - lo + 1));
}

/* ---- normal traffic: a min-heap of cards by the slot their next payment is due ---- */

typedef struct due {
  uint64_t slot;
  uint32_t card;
} due_t;

static int due_before(const due_t *a, const due_t *b) {
  return a->slot < b->slot || (a->slot == b->slot && a->card < b->card);
}

static void heap_sift_down(due_t *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && due_before(&h[l], &h[m]))
      m = l;
    if (l + 1 < n && due_before(&h[l + 1], &h[m]))
      m = l + 1;
    if (m == i)
      return;
    due_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* ---- fraud: payments planned at given slots ---- */

typedef struct fraud_payment {
  uint64_t slot;
  uint32_t card;
  uint32_t seq; /* order of planning: a tie-break that keeps the sort deterministic */
  int64_t cents;
  const char *merchant;
} fraud_payment_t;

static int fraud_payment_cmp(const void *a, const void *b) {
  const fraud_payment_t *x = a, *y = b;
  if (x->slot != y->slot)
    return x->slot < y->slot ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct plan {
  uint32_t *fraud_cards; /* sorted */
  uint32_t n_fraud_cards;
  fraud_payment_t *fraud; /* sorted by slot */
  size_t n_fraud, cap_fraud;
} plan_t;

static int plan_add(plan_t *p, uint64_t slot, uint32_t card, int64_t cents, const char *merchant) {
  if (p->n_fraud == p->cap_fraud) {
    size_t cap = p->cap_fraud ? 2 * p->cap_fraud : 256;
    fraud_payment_t *f = realloc(p->fraud, cap * sizeof(*f));
    if (!f)
      return -1;
    p->fraud = f;
    p->cap_fraud = cap;
  }
  p->fraud[p->n_fraud] = (fraud_payment_t){slot, card, (uint32_t)p->n_fraud, cents, merchant};
  p->n_fraud++;
  return 0;
}

/* Picks the fraud cards and plans their incidents in slots [first, last). */
static int plan_fraud(plan_t *p, rng_t *r, uint32_t cards, uint32_t n_fraud_cards, uint64_t first,
                      uint64_t last) {
  uint32_t *all = malloc((size_t)cards * sizeof(*all));
  p->fraud_cards = malloc(((size_t)n_fraud_cards + 1) * sizeof(*p->fraud_cards));
  if (!all || !p->fraud_cards) {
    free(all);
    return -1;
  }
  for (uint32_t i = 0; i < cards; i++)
    all[i] = i;
  for (uint32_t i = 0; i < n_fraud_cards; i++) { /* a partial Fisher-Yates shuffle */
    uint32_t j = i + (uint32_t)rng_below(r, cards - i), t = all[i];
    all[i] = all[j];
    all[j] = t;
    p->fraud_cards[i] = all[i];
  }
  free(all);
  p->n_fraud_cards = n_fraud_cards;
  qsort(p->fraud_cards, n_fraud_cards, sizeof(*p->fraud_cards), u32_cmp);

  for (uint32_t i = 0; i < n_fraud_cards; i++) {
    int incidents = rng_below(r, 3) == 0 ? 2 : 1;
    for (int k = 0; k < incidents; k++) {
      uint64_t start = first + rng_below(r, last - first);
      if (rng_below(r, 2) == 0) { /* a burst of small payments */
        int n = (int)rng_range(r, 8, 12);
        const char *m = burst_merchants[rng_below(r, 3)];
        for (int b = 0; b < n; b++)
          if (plan_add(p, start + rng_below(r, BURST_SLOTS), p->fraud_cards[i],
                       rng_range(r, 100, 2000), m))
            return -1;
      } else if (plan_add(p, start, p->fraud_cards[i], rng_range(r, 300000, 900000),
                          large_merchants[rng_below(r, 3)])) {
        return -1;
      }
    }
  }
  if (p->n_fraud) /* with --fraud-cards 0, p->fraud is NULL: qsort(NULL, 0) is undefined */
    qsort(p->fraud, p->n_fraud, sizeof(*p->fraud), fraud_payment_cmp);
  return 0;
}

/* ---- malformed messages ---- */

/* Writes a malformed value for `card` at `event_ms` into buf; returns its length. Even
 * kinds are not valid UTF-8, odd ones are valid text that is not a payment. */
static size_t malformed_value(char *buf, size_t size, int kind, const char *card,
                              int64_t event_ms) {
  int n = 0;
  switch (kind) {
  case 0: /* a Latin-1 byte where UTF-8 was expected: "cafe" with an e-acute */
    n = snprintf(buf, size, "%s,450,caf\xe9,%" PRId64, card, event_ms);
    break;
  case 1:
    n = snprintf(buf, size, "oops");
    break;
  case 2: /* binary garbage */
    n = snprintf(buf, size, "%s,\xff\xfe\x80,grocery,%" PRId64, card, event_ms);
    break;
  case 3: /* a field missing */
    n = snprintf(buf, size, "%s,1250,grocery", card);
    break;
  case 4: /* a truncated multi-byte sequence at the end */
    n = snprintf(buf, size, "%s,990,bakery \xe2\x82", card);
    break;
  default: /* an amount that is not a whole number of cents */
    n = snprintf(buf, size, "%s,12.50,coffee,%" PRId64, card, event_ms);
    break;
  }
  return (size_t)n;
}

/* ---- the producer ---- */

typedef struct delivery {
  uint64_t acked, failed;
  char first_error[256];
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  delivery_t *d = opaque;
  if (!m->err) {
    d->acked++;
    return;
  }
  if (d->failed++ == 0)
    snprintf(d->first_error, sizeof(d->first_error), "%s", rd_kafka_err2str(m->err));
}

/* A producer for `brokers` with the settings above, then `extra` (NULL-terminated key, value
 * pairs from -X) on top. */
static rd_kafka_t *producer_new(const char *brokers, char *const *extra, delivery_t *d) {
  static const char *const props[][2] = {
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"partitioner", "murmur2_random"}, /* the Java client's, like brook's Kafka sinks */
      /* Small batches, as a producer sending payments as they happen would make. It also
       * matters to a consumer reading the topic afterwards from the embedded broker, which
       * returns one batch per partition per fetch: the partitions then arrive interleaved
       * rather than one after the other. */
      {"linger.ms", "20"},
      {"batch.num.messages", "100"},
      {"message.timeout.ms", "60000"},
  };
  char why[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof(why)) != RD_KAFKA_CONF_OK)
    goto fail;
  for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
    if (rd_kafka_conf_set(conf, props[i][0], props[i][1], why, sizeof(why)) != RD_KAFKA_CONF_OK)
      goto fail;
  for (size_t i = 0; extra[i]; i += 2)
    if (rd_kafka_conf_set(conf, extra[i], extra[i + 1], why, sizeof(why)) != RD_KAFKA_CONF_OK)
      goto fail;
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, d);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
  if (rk)
    return rk;
fail:
  rd_kafka_conf_destroy(conf);
  fprintf(stderr, "brook-paygen: Kafka producer: %s\n", why);
  return NULL;
}

/* Queues one message; waits (serving delivery reports) while librdkafka's queue is full. */
static int produce(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                   size_t value_len, int64_t ts) {
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
    if (!err)
      return 0;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      fprintf(stderr, "brook-paygen: producing to '%s': %s\n", topic, rd_kafka_err2str(err));
      return -1;
    }
    rd_kafka_poll(rk, 100);
  }
}

/* The partitions of `topic` (waits up to 10 s for its metadata); -1 on failure (said why). */
static int topic_partitions(rd_kafka_t *rk, const char *topic) {
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err =
      rkt ? rd_kafka_metadata(rk, 0, rkt, &md, 10000) : RD_KAFKA_RESP_ERR__INVALID_ARG;
  int n = -1;
  if (!err && md->topic_cnt == 1 && !md->topics[0].err)
    n = md->topics[0].partition_cnt;
  else
    fprintf(stderr, "brook-paygen: no metadata for topic '%s': %s\n", topic,
            rd_kafka_err2str(err             ? err
                             : md->topic_cnt ? md->topics[0].err
                                             : err));
  if (md)
    rd_kafka_metadata_destroy(md);
  if (rkt)
    rd_kafka_topic_destroy(rkt);
  return n;
}

/* One valid payment at the head of every partition, with a poisoned message timestamp (see
 * the top of this file). Returns how many were queued, or -1. */
static int produce_poisoned(rd_kafka_t *rk, const char *topic, uint32_t cards) {
  static const int64_t poison[] = {INT64_MAX, INT64_C(4102444800000) /* 2100-01-01 */, -5,
                                   INT64_MIN};
  int n = topic_partitions(rk, topic);
  for (int p = 0; p < n; p++) {
    char key[16], value[128];
    snprintf(key, sizeof(key), "card-%05" PRIu32, (uint32_t)p % cards);
    int len = snprintf(value, sizeof(value), "%s,100,grocery,%" PRId64, key, BASE_MS);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE(value, (size_t)len), RD_KAFKA_V_TIMESTAMP(poison[p % 4]), RD_KAFKA_V_END);
    if (err) {
      fprintf(stderr, "brook-paygen: producing to '%s' [%d]: %s\n", topic, p,
              rd_kafka_err2str(err));
      return -1;
    }
  }
  /* Acknowledged before any other payment is sent: they are the partitions' heads. */
  if (n > 0 && rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fprintf(stderr, "brook-paygen: the poisoned payments were not acknowledged\n");
    return -1;
  }
  return n;
}

/* ---- options ---- */

#define MAX_PROPERTIES 32 /* -X options */

typedef struct opts {
  const char *brokers, *topic, *fraud_list;
  uint64_t count, seed;
  uint32_t cards, fraud_cards;
  int poison;                          /* --poison-timestamps 1 */
  char *props[2 * MAX_PROPERTIES + 1]; /* -X key, value pairs (in argv), NULL-terminated */
  size_t n_props;
} opts_t;

/* Prints the usage to `f` and returns `status`. */
static int usage(FILE *f, int status) {
  fprintf(f, "usage: brook-paygen --brokers LIST [--topic NAME] [--count N] [--cards N]\n"
             "                    [--seed S] [--fraud-cards N] [--fraud-list FILE]\n"
             "                    [--poison-timestamps 0|1]\n"
             "                    [-X KEY=VALUE]...  (librdkafka properties)\n"
             "  defaults: --topic payments --count 200000 --cards 5000 --seed 42 "
             "--fraud-cards 25\n");
  return status;
}

/* Parses an unsigned decimal in [lo, hi]; 0 on success. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  if (!s || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* 0: run, 1: --help, -1: bad usage (said why on stderr). */
static int parse_opts(int argc, char **argv, opts_t *o) {
  *o = (opts_t){.topic = "payments", .count = 200000, .cards = 5000, .seed = 42, .fraud_cards = 25};
  for (int i = 1; i < argc; i += 2) { /* every option takes a value */
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return 1;
    if (strcmp(a, "--brokers") == 0 && v && *v) {
      o->brokers = v;
    } else if (strcmp(a, "--topic") == 0 && v && *v) {
      o->topic = v;
    } else if (strcmp(a, "--fraud-list") == 0 && v && *v) {
      o->fraud_list = v;
    } else if (strcmp(a, "-X") == 0 && v && o->n_props < MAX_PROPERTIES) {
      char *kv = argv[i + 1], *eq = strchr(kv, '=');
      if (!eq || eq == kv) {
        fprintf(stderr, "brook-paygen: -X takes KEY=VALUE, not '%s'\n", kv);
        return -1;
      }
      *eq = '\0'; /* key and value in place */
      o->props[2 * o->n_props] = kv;
      o->props[2 * o->n_props + 1] = eq + 1;
      o->n_props++;
    } else if (strcmp(a, "--count") == 0 && parse_u64(v, 1, UINT64_C(1) << 40, &n) == 0) {
      o->count = n;
    } else if (strcmp(a, "--cards") == 0 && parse_u64(v, 1, MAX_CARDS, &n) == 0) {
      o->cards = (uint32_t)n;
    } else if (strcmp(a, "--seed") == 0 && parse_u64(v, 0, UINT64_MAX, &n) == 0) {
      o->seed = n;
    } else if (strcmp(a, "--poison-timestamps") == 0 && parse_u64(v, 0, 1, &n) == 0) {
      o->poison = (int)n;
    } else if (strcmp(a, "--fraud-cards") == 0 && parse_u64(v, 0, MAX_CARDS, &n) == 0) {
      o->fraud_cards = (uint32_t)n;
    } else {
      fprintf(stderr, "brook-paygen: bad or incomplete option '%s'\n", a);
      return -1;
    }
  }
  if (!o->brokers) {
    fprintf(stderr, "brook-paygen: --brokers is required\n");
    return -1;
  }
  if (o->fraud_cards > o->cards) {
    fprintf(stderr, "brook-paygen: --fraud-cards %" PRIu32 " is more than --cards %" PRIu32 "\n",
            o->fraud_cards, o->cards);
    return -1;
  }
  /* Room for the incidents between the first 10 s and the last 75 s; and the fraud payments
   * (at most 24 per card) no more than a quarter of the stream. */
  uint64_t need = FRAUD_FIRST_SLOT + BURST_SLOTS + FRAUD_TAIL_SLOTS + 1;
  if (o->fraud_cards > 0 && (o->count < need || o->count / 4 < 24 * (uint64_t)o->fraud_cards)) {
    fprintf(stderr,
            "brook-paygen: --count %" PRIu64 " is too small for %" PRIu32
            " fraud cards: it needs at least %" PRIu64 " messages (or --fraud-cards 0)\n",
            o->count, o->fraud_cards,
            need > 96 * (uint64_t)o->fraud_cards ? need : 96 * (uint64_t)o->fraud_cards);
    return -1;
  }
  return 0;
}

static int write_fraud_list(const char *path, const plan_t *p) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "brook-paygen: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int bad = 0;
  for (uint32_t i = 0; i < p->n_fraud_cards; i++)
    bad |= fprintf(f, "card-%05" PRIu32 "\n", p->fraud_cards[i]) < 0;
  bad |= fclose(f) != 0;
  if (bad)
    fprintf(stderr, "brook-paygen: writing %s failed\n", path);
  return bad ? -1 : 0;
}

int main(int argc, char **argv) {
  opts_t o;
  int args = parse_opts(argc, argv, &o);
  if (args != 0)
    return args > 0 ? usage(stdout, 0) : usage(stderr, 2);

  rng_t rng = {o.seed};
  plan_t plan = {0};
  due_t *heap = malloc((size_t)o.cards * sizeof(*heap));
  if (!heap || plan_fraud(&plan, &rng, o.cards, o.fraud_cards, FRAUD_FIRST_SLOT,
                          o.count - FRAUD_TAIL_SLOTS - BURST_SLOTS) != 0) {
    fprintf(stderr, "brook-paygen: out of memory\n");
    free(heap);
    free(plan.fraud_cards);
    free(plan.fraud);
    return 1;
  }
  /* Steady state from the start: first payments spread over one mean gap. */
  for (uint32_t c = 0; c < o.cards; c++)
    heap[c] = (due_t){rng_below(&rng, o.cards), c};
  for (size_t i = o.cards / 2; i-- > 0;)
    heap_sift_down(heap, o.cards, i);

  delivery_t d = {0};
  rd_kafka_t *rk = producer_new(o.brokers, o.props, &d);
  int status = rk ? 0 : 1;
  uint64_t malformed_utf8 = 0, malformed_csv = 0, sent = 0, poisoned = 0;
  if (!status && o.poison) {
    int n = produce_poisoned(rk, o.topic, o.cards);
    if (n < 0)
      status = 1;
    else
      poisoned = sent = (uint64_t)n;
  }
  size_t next_fraud = 0;
  for (uint64_t slot = 0; !status && slot < o.count; slot++) {
    int64_t event_ms = BASE_MS + (int64_t)slot * SLOT_MS - rng_range(&rng, 0, MAX_JITTER_MS);
    char key[16], value[128];
    size_t len;
    if (rng_below(&rng, MALFORMED_ONE_IN) == 0) {
      snprintf(key, sizeof(key), "card-%05" PRIu64, rng_below(&rng, o.cards));
      int kind = (int)rng_below(&rng, 6);
      len = malformed_value(value, sizeof(value), kind, key, event_ms);
      if (kind % 2 == 0)
        malformed_utf8++;
      else
        malformed_csv++;
    } else if (next_fraud < plan.n_fraud && plan.fraud[next_fraud].slot <= slot) {
      const fraud_payment_t *f = &plan.fraud[next_fraud++];
      snprintf(key, sizeof(key), "card-%05" PRIu32, f->card);
      len = (size_t)snprintf(value, sizeof(value), "%s,%" PRId64 ",%s,%" PRId64, key, f->cents,
                             f->merchant, event_ms);
    } else {
      /* The card due first pays; its next payment is due 0.5-1.5 mean gaps later. With one
       * payment per slot on average, a mean gap of `cards` slots keeps the pace. */
      due_t *top = &heap[0];
      snprintf(key, sizeof(key), "card-%05" PRIu32, top->card);
      len = (size_t)snprintf(
          value, sizeof(value), "%s,%" PRId64 ",%s,%" PRId64, key, rng_range(&rng, 100, 15000),
          merchants[rng_below(&rng, sizeof(merchants) / sizeof(merchants[0]))], event_ms);
      top->slot += o.cards / 2 + rng_below(&rng, o.cards + 1);
      heap_sift_down(heap, o.cards, 0);
    }
    if (produce(rk, o.topic, key, value, len, event_ms) != 0)
      status = 1;
    else
      sent++;
    if (sent % 1024 == 0)
      rd_kafka_poll(rk, 0); /* serve delivery reports */
  }
  if (!status && next_fraud < plan.n_fraud) { /* cannot happen with the slot limits above */
    fprintf(stderr, "brook-paygen: %zu fraud payments did not fit\n", plan.n_fraud - next_fraud);
    status = 1;
  }
  if (rk) {
    rd_kafka_resp_err_t err = rd_kafka_flush(rk, 120000);
    if (err || d.failed || d.acked != sent) {
      fprintf(stderr, "brook-paygen: %" PRIu64 " of %" PRIu64 " messages not delivered: %s\n",
              sent - d.acked, sent, d.failed ? d.first_error : rd_kafka_err2str(err));
      status = 1;
    }
    rd_kafka_destroy(rk);
  }
  if (!status) {
    printf("paygen: sent=%" PRIu64 " fraud_cards=", sent);
    for (uint32_t i = 0; i < plan.n_fraud_cards; i++)
      printf("%scard-%05" PRIu32, i ? "," : "", plan.fraud_cards[i]);
    printf(" malformed_utf8=%" PRIu64 " malformed_csv=%" PRIu64 " poisoned=%" PRIu64 "\n",
           malformed_utf8, malformed_csv, poisoned);
    if (o.fraud_list && write_fraud_list(o.fraud_list, &plan) != 0)
      status = 1;
  }
  free(heap);
  free(plan.fraud_cards);
  free(plan.fraud);
  return status;
}
