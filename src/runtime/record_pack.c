/* Packing records with their bytes (record_pack.h). */
#include "runtime/record_pack.h"

#include <string.h>

size_t bk_record_packed_size(const brook_record_t *rec) {
  size_t n = bk_align8(rec->key_len) + bk_align8(rec->value_len);
  if (rec->header_count) {
    n += rec->header_count * sizeof(brook_header_t);
    for (size_t i = 0; i < rec->header_count; i++)
      n += bk_align8(strlen(rec->headers[i].name) + 1) + bk_align8(rec->headers[i].value_len);
  }
  return n;
}

static void *copy(unsigned char *area, size_t *used, const void *src, size_t n) {
  unsigned char *dst = area + *used;
  bk_pack_bytes(dst, src, n);
  *used += bk_align8(n);
  return dst;
}

void bk_record_pack_any(brook_record_t *out, const brook_record_t *rec, unsigned char *area,
                        size_t *used) {
  *out = *rec;
  out->key = rec->key ? copy(area, used, rec->key, rec->key_len) : NULL;
  out->value = rec->value ? copy(area, used, rec->value, rec->value_len) : NULL;
  out->headers = NULL;
  if (!rec->header_count)
    return;
  brook_header_t *h = (brook_header_t *)(area + *used);
  *used += rec->header_count * sizeof(*h);
  for (size_t i = 0; i < rec->header_count; i++) {
    h[i].name = copy(area, used, rec->headers[i].name, strlen(rec->headers[i].name) + 1);
    h[i].value = rec->headers[i].value
                     ? copy(area, used, rec->headers[i].value, rec->headers[i].value_len)
                     : NULL;
    h[i].value_len = rec->headers[i].value_len;
  }
  out->headers = h;
}
