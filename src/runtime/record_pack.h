/* Packing a record with its bytes (key, value, headers and their names) into a byte area,
 * for records that outlive their batch: the push source's queue and the exchanges between
 * workers. The area is 8-byte aligned; each piece starts aligned. The common record (no
 * headers, short key and value) is packed inline with a few moves: exchanges pack every
 * record that crosses workers. */
#ifndef BROOK_RUNTIME_RECORD_PACK_H
#define BROOK_RUNTIME_RECORD_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <brook/record.h>

static inline size_t bk_align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Bytes bk_record_pack needs in the area for `rec`. */
size_t bk_record_packed_size(const brook_record_t *rec);

/* Writes `rec` to *out with its bytes copied to area + *used (which has
 * bk_record_packed_size(rec) bytes of room), and advances *used. */
void bk_record_pack_any(brook_record_t *out, const brook_record_t *rec, unsigned char *area,
                        size_t *used);

/* Copies n bytes (dst has bk_align8(n) bytes of room): up to 16 bytes as two overlapping
 * fixed-size moves, never reading past src + n. */
static inline void bk_pack_bytes(unsigned char *dst, const void *src, size_t n) {
  const unsigned char *s = src;
  if (n >= 8 && n <= 16) {
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    memcpy(dst, &a, 8);
    memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    memcpy(dst, &a, 4);
    memcpy(dst + n - 4, &b, 4);
  } else if (n) {
    memcpy(dst, s, n);
  }
}

/* Bytes bk_record_pack needs for a record without headers. */
static inline size_t bk_record_packed_size_plain(const brook_record_t *rec) {
  return bk_align8(rec->key_len) + bk_align8(rec->value_len);
}

/* bk_record_pack_any, inline for records without headers. */
static inline void bk_record_pack(brook_record_t *out, const brook_record_t *rec,
                                  unsigned char *area, size_t *used) {
  if (__builtin_expect(rec->header_count != 0, 0)) {
    bk_record_pack_any(out, rec, area, used);
    return;
  }
  unsigned char *k = area + *used, *v = k + bk_align8(rec->key_len);
  *out = *rec;
  out->key = rec->key ? k : NULL;
  out->value = rec->value ? v : NULL;
  out->headers = NULL;
  if (rec->key)
    bk_pack_bytes(k, rec->key, rec->key_len);
  if (rec->value)
    bk_pack_bytes(v, rec->value, rec->value_len);
  *used += bk_align8(rec->key_len) + bk_align8(rec->value_len);
}

#endif
