/* pipeline: the sensor_alerts topology.
 *
 *   generator "readings"            (event time from the value; watermark = max - 5 s)
 *     |-> window_aggregate "mean_60s_every_10s"   hopping(60 s, 10 s), mean, grace 5 s
 *     |     |-> peek "count_windows" -> filter "over_threshold" -> sink: ALERT lines
 *     |     '-> late side output (readings whose windows had all closed) -> sink: LATE lines
 *     '-> window_aggregate "activity_sessions"    session(gap 30 s), count, grace 5 s
 *           '-> sink: SESSION lines / counts      (late readings dropped, in stats)
 *
 * Both window operators read the same source stream: a stream may have many consumers. */
#include "pipeline.h"

#include <inttypes.h>
#include <string.h>

#include "sensors.h"

void pipeline_opts_init(pipeline_opts_t *opts) {
  *opts = (pipeline_opts_t){
      .threshold = 80.0,
      .max_delay = 5 * BROOK_S,
      .grace = 5 * BROOK_S,
      .window = 60 * BROOK_S,
      .hop = 10 * BROOK_S,
      .session_gap = 30 * BROOK_S,
  };
}

const char *clock_time(brook_time_t ms, char buf[9]) {
  int64_t s = ms / 1000 % 86400;
  if (s < 0)
    s += 86400;
  snprintf(buf, 9, "%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
  return buf;
}

/* A window result of an aggregator whose result is one value of `size` bytes. */
static brook_err_t window_result(const brook_record_t *rec, brook_window_value_t *wv, void *out,
                                 size_t size) {
  const void *result;
  if (brook_window_parse(rec, wv, &result) != BROOK_OK || wv->result_len != size)
    return BROOK_ERR_USER;
  memcpy(out, result, size);
  return BROOK_OK;
}

/* ---- branch 1: hopping-window means, alerts, late readings ---- */

static brook_err_t count_window(const brook_record_t *rec, void *opaque) {
  pipeline_results_t *res = opaque;
  (void)rec;
  res->windows++;
  return BROOK_OK;
}

static int over_threshold(const brook_record_t *rec, void *opaque) {
  const pipeline_opts_t *opts = opaque;
  brook_window_value_t wv;
  double mean;
  brook_err_t err = window_result(rec, &wv, &mean, sizeof(mean));
  if (err != BROOK_OK)
    return err;
  return mean > opts->threshold;
}

static brook_err_t print_alert(const brook_record_t *rec, void *opaque) {
  pipeline_results_t *res = opaque;
  brook_window_value_t wv;
  double mean;
  brook_err_t err = window_result(rec, &wv, &mean, sizeof(mean));
  if (err != BROOK_OK)
    return err;
  char from[9], to[9];
  fprintf(res->out, "ALERT %.*s mean %.1f in [%s, %s)\n", (int)rec->key_len, (const char *)rec->key,
          mean, clock_time(wv.start, from), clock_time(wv.end, to));
  res->alerts++;
  return BROOK_OK;
}

static brook_err_t print_late(const brook_record_t *rec, void *opaque) {
  pipeline_results_t *res = opaque;
  double celsius;
  brook_err_t err = reading_celsius(rec, &celsius, NULL);
  if (err != BROOK_OK)
    return err;
  char at[9];
  fprintf(res->out, "LATE %.*s %.1f C measured at %s, after its windows closed\n",
          (int)rec->key_len, (const char *)rec->key, celsius, clock_time(rec->timestamp, at));
  res->late++;
  return BROOK_OK;
}

/* ---- branch 2: activity sessions ---- */

static brook_err_t print_session(const brook_record_t *rec, void *opaque) {
  pipeline_results_t *res = opaque;
  brook_window_value_t wv;
  int64_t count;
  brook_err_t err = window_result(rec, &wv, &count, sizeof(count));
  if (err != BROOK_OK)
    return err;
  if (res->print_sessions) {
    char from[9], to[9];
    fprintf(res->out, "SESSION %.*s [%s, %s) %" PRId64 " reading%s\n", (int)rec->key_len,
            (const char *)rec->key, clock_time(wv.start, from), clock_time(wv.end, to), count,
            count == 1 ? "" : "s");
  }
  res->sessions++;
  res->session_readings += (uint64_t)count;
  return BROOK_OK;
}

brook_err_t pipeline_build(brook_topology_t *t, brook_stream_t *readings,
                           const pipeline_opts_t *opts, pipeline_results_t *res) {
  /* Event time comes from the value; readings may arrive up to max_delay out of order. */
  brook_watermark_opts_t wm;
  brook_watermark_opts_init(&wm);
  wm.kind = BROOK_WATERMARK_BOUNDED;
  wm.max_delay = opts->max_delay;
  wm.timestamp = reading_time;
  if (brook_source_set_watermark(readings, &wm) != BROOK_OK)
    return brook_topology_error(t);

  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "mean_60s_every_10s";
  wo.grace = opts->grace;
  wo.late = BROOK_LATE_ROUTE;
  brook_aggregator_t mean = brook_agg_mean(reading_celsius, NULL);
  brook_window_t hopping = brook_window_hopping(opts->window, opts->hop);
  brook_stream_t *means = brook_window_aggregate(readings, &hopping, &mean, &wo);
  /* Builders given NULL return NULL and every error is recorded in the topology (the sinks'
   * too), so the whole graph is checked once, at the end. */
  brook_stream_t *late = brook_window_late(means);
  brook_stream_t *alerts = brook_stream_set_name(
      brook_filter(brook_stream_set_name(brook_peek(means, count_window, res), "count_windows"),
                   over_threshold, (void *)opts),
      "over_threshold");
  if (alerts)
    brook_sink_callback(alerts, print_alert, NULL, res);
  if (late)
    brook_sink_callback(late, print_late, NULL, res);

  brook_window_opts_init(&wo);
  wo.name = "activity_sessions";
  wo.grace = opts->grace;
  brook_aggregator_t count = brook_agg_count();
  brook_window_t session = brook_window_session(opts->session_gap);
  brook_stream_t *sessions = brook_window_aggregate(readings, &session, &count, &wo);
  if (sessions)
    brook_sink_callback(sessions, print_session, NULL, res);
  return brook_topology_error(t);
}
