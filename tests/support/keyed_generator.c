/* A generator source partitioned by key (keyed_generator.h). */
#include "keyed_generator.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>

#include <cmocka.h>

brook_stream_t *keyed_generator(brook_topology_t *t, brook_generator_fn fn, void *opaque,
                                size_t splits) {
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = splits;
  go.partitioned_by_key = 1;
  brook_stream_t *s = brook_source_generator(t, "gen", fn, opaque, &go);
  assert_non_null(s);
  brook_watermark_opts_t wo;
  brook_watermark_opts_init(&wo);
  wo.kind = BROOK_WATERMARK_MONOTONOUS;
  assert_int_equal(brook_source_set_watermark(s, &wo), BROOK_OK);
  return s;
}

void tumbling_count_to(brook_stream_t *in, const char *name, brook_time_t size, brook_sink_fn fn,
                       void *opaque) {
  brook_aggregator_t count = brook_agg_count();
  brook_window_t tumbling = brook_window_tumbling(size);
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = name;
  brook_stream_t *out = brook_window_aggregate(in, &tumbling, &count, &wo);
  assert_non_null(out);
  assert_int_equal(brook_sink_callback(out, fn, NULL, opaque), BROOK_OK);
}
