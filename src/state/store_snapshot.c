/* Snapshot and restore of a state store: a versioned, self-checking binary format.
 *
 *   offset  size  field
 *   0       8     magic "BRKSTATE"
 *   8       4     format version (1)
 *   12      4     flags (0; reserved)
 *   16      8     value_size of the store (0 = variable)
 *   24      8     entry count
 *   32      ...   entries: key length (4), value length (4), key bytes, value bytes
 *   len-8   8     checksum of bytes [0, len-8)
 *
 * Integers are little-endian. The checksum chains bk_hash_bytes over consecutive 64 KiB
 * blocks (h = mix64(h ^ hash(block))): a change confined to one 8-byte word is always
 * caught, anything else with probability 1 - 2^-64, and the writer can compute it block by
 * block through its 64 KiB buffer. Restore checks the whole input before building anything
 * and reads nothing outside [data, data + len). */
#include <assert.h>
#include <string.h>

#include "core/alloc.h"
#include "state/store.h"

#define SNAP_MAGIC "BRKSTATE"
#define SNAP_VERSION 1
#define SNAP_HEADER 32
#define SNAP_TRAILER 8
#define SNAP_ENTRY_HEADER 8
#define SNAP_BLOCK ((size_t)64 * 1024)
#define SNAP_SEED UINT64_C(0x62726F6F6B736E70) /* "brooksnp" */

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

static uint64_t sum_block(uint64_t h, const unsigned char *p, size_t n) {
  return bk_hash_mix64(h ^ bk_hash_bytes(p, n));
}

static uint64_t checksum(const unsigned char *p, size_t n) {
  uint64_t h = SNAP_SEED;
  for (size_t off = 0; off < n; off += SNAP_BLOCK)
    h = sum_block(h, p + off, n - off < SNAP_BLOCK ? n - off : SNAP_BLOCK);
  return h;
}

/* ---- snapshot ---- */

/* Buffers output into SNAP_BLOCK pieces, checksumming each full block as it goes out. */
typedef struct snap_writer {
  brook_write_fn write;
  void *opaque;
  unsigned char *buf;
  size_t used;
  uint64_t sum;
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
      w->sum = sum_block(w->sum, w->buf, w->used);
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
  snap_writer_t w = {write, opaque, NULL, 0, SNAP_SEED, BROOK_OK};
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
    w.sum = sum_block(w.sum, w.buf, w.used);
  unsigned char trailer[SNAP_TRAILER];
  put_le64(trailer, w.sum);
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
  if (checksum(p, end) != get_le64(p + end))
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
