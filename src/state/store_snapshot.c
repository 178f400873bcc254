/* Snapshot and restore of a state store: a versioned, self-checking binary format.
 *
 *   offset  size  field
 *   0       8     magic "BRKSTATE"
 *   8       4     format version (2)
 *   12      4     flags (0; reserved)
 *   16      8     value_size of the store (0 = variable)
 *   24      8     entry count
 *   32      ...   entries: key length (4), value length (4), key bytes, value bytes
 *   len-4   4     CRC32C of bytes [0, len-4)
 *
 * Integers are little-endian. The checksum is CRC32C (core/crc32c.h), named and stable,
 * independent of the hot-path hash, which may change between releases (version 1 used it and
 * is refused). The writer computes it as the bytes go out through its 64 KiB buffer. Restore
 * checks the whole input before building anything and reads nothing outside
 * [data, data + len). */
#include <assert.h>
#include <string.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "state/store.h"

#define SNAP_MAGIC "BRKSTATE"
#define SNAP_VERSION 2
#define SNAP_HEADER 32
#define SNAP_TRAILER 4
#define SNAP_ENTRY_HEADER 8
#define SNAP_BLOCK ((size_t)64 * 1024)

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static uint64_t get_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* ---- snapshot ---- */

/* Buffers output into SNAP_BLOCK pieces, checksumming each block as it goes out. */
typedef struct snap_writer {
  brook_write_fn write;
  void *opaque;
  unsigned char *buf;
  size_t used;
  uint32_t sum;    /* CRC32C of everything emitted so far */
  brook_err_t err; /* the first write error; later output is dropped */
} snap_writer_t;

static void writer_emit(snap_writer_t *w) {
  if (!w->err && w->used)
    w->err = w->write(w->buf, w->used, w->opaque);
  w->used = 0;
}

static void writer_put(snap_writer_t *w, const void *data, size_t n) {
  const unsigned char *p = data;
  while (n && !w->err) {
    size_t k = SNAP_BLOCK - w->used < n ? SNAP_BLOCK - w->used : n;
    memcpy(w->buf + w->used, p, k);
    w->used += k;
    p += k;
    n -= k;
    if (w->used == SNAP_BLOCK) {
      w->sum = bk_crc32c(w->sum, w->buf, w->used);
      writer_emit(w);
    }
  }
}

brook_err_t brook_store_snapshot(brook_store_t *s, brook_write_fn write, void *opaque) {
  if (!s || !write)
    return BROOK_ERR_INVALID_ARG;
  /* The changelog must have seen every change the snapshot contains. */
  brook_err_t err = brook_store_flush_changes(s);
  if (err)
    return err;
  snap_writer_t w = {write, opaque, NULL, 0, 0, BROOK_OK};
  if (!(w.buf = bk_malloc(&s->alloc, SNAP_BLOCK)))
    return BROOK_ERR_NOMEM;
  unsigned char hdr[SNAP_HEADER];
  memcpy(hdr, SNAP_MAGIC, 8);
  put_le32(hdr + 8, SNAP_VERSION);
  put_le32(hdr + 12, 0);
  put_le64(hdr + 16, s->value_size);
  put_le64(hdr + 24, s->count);
  writer_put(&w, hdr, sizeof(hdr));
  for (size_t i = 0; i < s->cap && !w.err; i++) {
    const bk_entry_t *e = s->slots[i].e;
    if (!e)
      continue;
    unsigned char eh[SNAP_ENTRY_HEADER];
    put_le32(eh, e->klen);
    put_le32(eh + 4, e->vlen);
    writer_put(&w, eh, sizeof(eh));
    writer_put(&w, bk_entry_key(e), e->klen);
    writer_put(&w, bk_entry_value(e), e->vlen);
  }
  if (w.used) /* the last, partial block */
    w.sum = bk_crc32c(w.sum, w.buf, w.used);
  unsigned char trailer[SNAP_TRAILER];
  put_le32(trailer, w.sum);
  if (w.used + SNAP_TRAILER > SNAP_BLOCK)
    writer_emit(&w);
  memcpy(w.buf + w.used, trailer, SNAP_TRAILER);
  w.used += SNAP_TRAILER;
  writer_emit(&w);
  bk_free(&s->alloc, w.buf);
  return w.err;
}

/* ---- restore ---- */

/* Checks the header, the checksum and every entry's bounds; *count gets the entry count. */
static brook_err_t snap_validate(const unsigned char *p, size_t len, size_t value_size,
                                 size_t *count) {
  if (len < SNAP_HEADER + SNAP_TRAILER || memcmp(p, SNAP_MAGIC, 8) ||
      get_le32(p + 8) != SNAP_VERSION || get_le32(p + 12) != 0 || get_le64(p + 16) != value_size)
    return BROOK_ERR_CORRUPT;
  size_t end = len - SNAP_TRAILER;
  if (bk_crc32c(0, p, end) != get_le32(p + end))
    return BROOK_ERR_CORRUPT;
  uint64_t n = get_le64(p + 24);
  if (n > (end - SNAP_HEADER) / SNAP_ENTRY_HEADER)
    return BROOK_ERR_CORRUPT;
  size_t pos = SNAP_HEADER;
  for (uint64_t i = 0; i < n; i++) {
    if (end - pos < SNAP_ENTRY_HEADER)
      return BROOK_ERR_CORRUPT;
    size_t klen = get_le32(p + pos), vlen = get_le32(p + pos + 4);
    pos += SNAP_ENTRY_HEADER;
    if (!bk_store_lens_ok(klen, vlen) || (value_size && vlen != value_size) || klen > end - pos ||
        vlen > end - pos - klen)
      return BROOK_ERR_CORRUPT;
    pos += klen + vlen;
  }
  if (pos != end)
    return BROOK_ERR_CORRUPT;
  *count = (size_t)n;
  return BROOK_OK;
}

brook_err_t brook_store_restore(brook_store_t *s, const void *data, size_t len) {
  if (!s || (!data && len))
    return BROOK_ERR_INVALID_ARG;
  const unsigned char *p = data;
  size_t n = 0;
  brook_err_t err = p ? snap_validate(p, len, s->value_size, &n) : BROOK_ERR_CORRUPT;
  bk_store_reset(s, 0);
  if (!err)
    err = bk_store_reserve(s, n);
  size_t pos = SNAP_HEADER;
  for (size_t i = 0; i < n && !err; i++) {
    size_t klen = get_le32(p + pos), vlen = get_le32(p + pos + 4);
    const unsigned char *key = p + pos + SNAP_ENTRY_HEADER;
    err = bk_store_insert_new(s, key, klen, bk_hash_bytes(key, klen), key + klen, vlen);
    if (err == BROOK_ERR_DUPLICATE) /* a well-formed snapshot never repeats a key */
      err = BROOK_ERR_CORRUPT;
    pos += SNAP_ENTRY_HEADER + klen + vlen;
  }
  if (err)
    bk_store_reset(s, 0);
  assert(bk_store_check(s)); /* O(n), like the restore itself */
  return err;
}
