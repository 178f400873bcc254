/* The changelog's record layout (changelog_format.h). */
#include "kafka/changelog_format.h"

#include <string.h>

#include "core/crc32c.h"

const char *const bk_changelog_topic_defaults[] = {"cleanup.policy", "compact",
                                                   "min.compaction.lag.ms", "300000", NULL};

const unsigned char bk_cl_prefix[BK_CL_PREFIX_LEN] = {0xff, 0x00, 'b', 'r', 'o', 'o', 'k'};
const unsigned char bk_cl_marker_key[BK_CL_MARKER_KEY_LEN] = {0xff, 0x00, 'b', 'r',
                                                              'o',  'o',  'k', 0x01};

#define SEQ_MASK (((uint64_t)1 << BK_CL_SEQ_BITS) - 1)

uint64_t bk_cl_first_epoch(uint64_t max_seen) {
  if (max_seen >= BK_CL_EPOCH_LIMIT)
    return 0;
  uint64_t inc = (max_seen >> BK_CL_SEQ_BITS) + 1; /* <= 2^39: no overflow */
  uint64_t first = (inc << BK_CL_SEQ_BITS) | 1;
  return first < BK_CL_EPOCH_LIMIT ? first : 0;
}

uint64_t bk_cl_next_epoch(uint64_t e) {
  /* The last sequence of an incarnation moves on to the next one: still greater, and no
   * other writer takes that incarnation once this one's records are visible. */
  if (e >= BK_CL_EPOCH_LIMIT)
    return 0;
  return (e & SEQ_MASK) == SEQ_MASK ? bk_cl_first_epoch(e) : e + 1; /* e + 1 < 2^63 */
}

void bk_cl_key_escape(unsigned char *out, const void *k, size_t len) {
  memcpy(out, k, BK_CL_PREFIX_LEN);
  out[BK_CL_PREFIX_LEN] = 0x00;
  memcpy(out + BK_CL_PREFIX_LEN + 1, (const unsigned char *)k + BK_CL_PREFIX_LEN,
         len - BK_CL_PREFIX_LEN);
}

bk_cl_key_kind_t bk_cl_key_kind(const void *k, size_t len) {
  if (!bk_cl_key_needs_escape(k, len))
    return BK_CL_KEY_PLAIN;
  const unsigned char *p = k;
  if (len == BK_CL_MARKER_KEY_LEN && p[BK_CL_PREFIX_LEN] == 0x01)
    return BK_CL_KEY_MARKER;
  if (len > BK_CL_PREFIX_LEN && p[BK_CL_PREFIX_LEN] == 0x00)
    return BK_CL_KEY_ESCAPED;
  return BK_CL_KEY_BAD;
}

void bk_cl_key_unescape(unsigned char *out, const void *k, size_t len) {
  memcpy(out, k, BK_CL_PREFIX_LEN);
  memcpy(out + BK_CL_PREFIX_LEN, (const unsigned char *)k + BK_CL_PREFIX_LEN + 1,
         len - BK_CL_PREFIX_LEN - 1);
}

void bk_cl_marker_encode(unsigned char *out, uint64_t epoch, uint64_t prev, const void *blob,
                         uint32_t blob_len) {
  memcpy(out, BK_CL_MARKER_MAGIC, 4);
  bk_cl_put_u64(out + 4, epoch);
  bk_cl_put_u64(out + 12, prev);
  bk_cl_put_u32(out + 20, blob_len);
  if (blob_len)
    memcpy(out + 24, blob, blob_len);
  bk_cl_put_u32(out + 24 + blob_len, bk_crc32c(0, out, 24 + (size_t)blob_len));
}

brook_err_t bk_cl_marker_decode(const void *val, size_t len, bk_cl_marker_t *m, const char **why) {
  const unsigned char *p = val;
  if (!p || len < BK_CL_MARKER_OVERHEAD) {
    *why = "marker value shorter than its 28-byte frame";
    return BROOK_ERR_CORRUPT;
  }
  if (memcmp(p, BK_CL_MARKER_MAGIC, 4) != 0) {
    *why = "marker value without its magic";
    return BROOK_ERR_CORRUPT;
  }
  uint32_t blob_len = bk_cl_get_u32(p + 20);
  if ((size_t)blob_len != len - BK_CL_MARKER_OVERHEAD) {
    *why = blob_len > len - BK_CL_MARKER_OVERHEAD ? "marker positions blob truncated"
                                                  : "marker value longer than its blob";
    return BROOK_ERR_CORRUPT;
  }
  if (bk_crc32c(0, p, 24 + (size_t)blob_len) != bk_cl_get_u32(p + 24 + blob_len)) {
    *why = "marker checksum mismatch";
    return BROOK_ERR_CORRUPT;
  }
  m->epoch = bk_cl_get_u64(p + 4);
  m->prev = bk_cl_get_u64(p + 12);
  if (!bk_cl_epoch_valid(m->epoch) || m->prev >= m->epoch) {
    *why = "marker epochs out of order or out of range (prev >= epoch, epoch 0 or >= 2^63)";
    return BROOK_ERR_CORRUPT;
  }
  m->blob = p + 24;
  m->blob_len = blob_len;
  return BROOK_OK;
}
