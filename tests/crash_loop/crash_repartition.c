/* The crash loop's look into the repartition topic. See crash_repartition.h. */
#include "crash_loop/crash_repartition.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka_readback.h"

void cr_read(const cc_check_t *c, const char *bootstrap, const char *topic, cr_report_t *out) {
  memset(out, 0, sizeof(*out));
  const ci_input_t *in = c->in;
  kr_topic_t t;
  memset(&t, 0, sizeof(t));
  char why[512];
  if (kr_read_topic(bootstrap, topic, 120000, &t, why, sizeof(why)) != 0)
    fail_msg("reading %s: %s", topic, why);
  int64_t *per_key = calloc((size_t)in->p.keys + 1, sizeof(int64_t));
  assert_non_null(per_key);
  for (size_t i = 0; i < t.n; i++) {
    const kr_msg_t *m = &t.msgs[i];
    if (kr_header(m, "brook.repartition.watermark", NULL)) {
      out->watermarks++;
      continue;
    }
    out->data++;
    int32_t k = m->key ? ci_key_index(in, m->key, m->key_len) : -1;
    if (k >= 0)
      per_key[k]++;
  }
  int64_t input = 0;
  for (int k = 0; k <= in->p.keys; k++) {
    input += in->count[k];
    out->keys_as_in_topic += c->max[k] == per_key[k];
    out->keys_above_topic += c->max[k] > per_key[k];
    out->keys_below_topic += c->max[k] < per_key[k];
  }
  out->written_again = out->data - input;
  free(per_key);
  kr_topic_free(&t);
}
