/* Test helper for window operators. See window_pipeline.h. */
#include "window_pipeline.h"
#include "support/state_backend.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

#include "driver_helpers.h"

brook_stream_t *bounded_push_source(brook_topology_t *t, brook_time_t max_delay) {
  brook_stream_t *in = brook_source_push(t, "in", NULL);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_BOUNDED;
  wo.max_delay = max_delay;
  assert_int_equal(brook_source_set_watermark(in, &wo), BROOK_OK);
  return in;
}

brook_driver_t *window_count_pipeline(brook_topology_t **t, brook_window_t window,
                                      brook_time_t max_delay, const brook_window_opts_t *opts,
                                      brook_error_policy_t policy) {
  assert_int_equal(brook_topology_new(t, NULL), BROOK_OK);
  assert_int_equal(brook_topology_set_error_policy(*t, policy), BROOK_OK);
  brook_stream_t *in = bounded_push_source(*t, max_delay);
  brook_aggregator_t agg = brook_agg_count();
  brook_stream_t *out = brook_window_aggregate(in, &window, &agg, opts);
  if (!out)
    return NULL;
  named_sink(out, "out");
  brook_driver_t *d = NULL;
  assert_int_equal(test_driver_new(&d, *t, NULL), BROOK_OK);
  return d;
}

void window_count_result(brook_driver_t *d, size_t i, brook_window_value_t *wv, int64_t *count,
                         char *key, size_t key_cap) {
  const brook_record_t *r = brook_driver_output(d, "out", i);
  assert_non_null(r);
  const void *res;
  assert_int_equal(brook_window_parse(r, wv, &res), BROOK_OK);
  assert_int_equal(wv->result_len, sizeof(*count));
  assert_int_equal(r->timestamp, wv->end - 1);
  memcpy(count, res, sizeof(*count));
  assert_true(r->key_len < key_cap);
  if (r->key_len)
    memcpy(key, r->key, r->key_len);
  key[r->key_len] = '\0';
}
