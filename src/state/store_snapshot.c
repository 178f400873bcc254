/* Snapshot and restore of a state store, of any backend: a versioned, self-checking binary
 * format written from an iterator and read back through the backend's put, so a snapshot of
 * a hash store restores into an ordered store or a user's backend and back.
 *
 *   offset  size  field
 *   0       8     magic "BRKSTATE"
 *   8       4     format version (3)
 *   12      4     flags (0; reserved)
 *   16      8     value_size of the store (0 = variable)
 *   24      8     reserved (0)
 *   32      ...   entries: key length (4), value length (4), key bytes, value bytes
 *   ...     4     end marker 0xffffffff (no key is that long)
 *   ...     8     entry count
 *   len-4   4     CRC32C of bytes [0, len-4)
 *
 * Integers are little-endian. The count comes last because a backend on disk only knows it
 * once it has iterated (version 2 had it in the header and is refused, as is version 1,
 * which checksummed with the hot-path hash). The checksum is CRC32C (core/crc32c.h), named
 * and stable, independent of the hot-path hash. The writer computes it as the bytes go out
 * through its 64 KiB buffer. Restore checks the whole input before replacing anything,
 * reads nothing outside [data, data + len), and says what was wrong in the store's message:
 * a corrupt or truncated snapshot leaves the store empty, never half restored. */
#include <assert.h>
#include <string.h>

#include <brook/store_backend.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "state/store.h"
#include "state/store_iter.h"

#define SNAP_MAGIC "BRKSTATE"
#define SNAP_VERSION 3
#define SNAP_HEADER 32
#define SNAP_END_MARK UINT32_MAX
#define SNAP_END 12 /* the end marker and the count */
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
  brook_store_iter_t *it;
  if ((err = brook_store_iter_all(s, &it)))
    return err;
  snap_writer_t w = {write, opaque, NULL, 0, 0, BROOK_OK};
  if (!(w.buf = bk_malloc(&s->alloc, SNAP_BLOCK))) {
    (void)brook_store_iter_close(it);
    return bk_store_fail(s, BROOK_ERR_NOMEM, "snapshot: out of memory");
  }
  unsigned char hdr[SNAP_HEADER];
  memcpy(hdr, SNAP_MAGIC, 8);
  put_le32(hdr + 8, SNAP_VERSION);
  put_le32(hdr + 12, 0);
  put_le64(hdr + 16, s->value_size);
  put_le64(hdr + 24, 0);
  writer_put(&w, hdr, sizeof(hdr));
  uint64_t n = 0;
  brook_store_entry_t e;
  while (!w.err && brook_store_iter_next(it, &e)) {
    unsigned char eh[SNAP_ENTRY_HEADER];
    put_le32(eh, (uint32_t)e.key_len);
    put_le32(eh + 4, (uint32_t)e.value_len);
    writer_put(&w, eh, sizeof(eh));
    writer_put(&w, e.key, e.key_len);
    writer_put(&w, e.value, e.value_len);
    n++;
  }
  if ((err = brook_store_iter_close(it)) < 0) { /* a backend read error: no snapshot */
    bk_free(&s->alloc, w.buf);
    return err;
  }
  unsigned char end[SNAP_END];
  put_le32(end, SNAP_END_MARK);
  put_le64(end + 4, n);
  writer_put(&w, end, sizeof(end));
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

/* Checks the header, every entry's bounds, the end and the checksum, in that order (so a
 * truncated snapshot is called truncated, not just mismatched); *count gets the entry count.
 * BROOK_OK or BROOK_ERR_CORRUPT with the store's message saying what was wrong. */
static brook_err_t snap_validate(const brook_store_t *s, const unsigned char *p, size_t len,
                                 size_t *count) {
  const size_t min = SNAP_HEADER + SNAP_END + SNAP_TRAILER;
  if (!p || len < min)
    return bk_store_fail(s, BROOK_ERR_CORRUPT,
                         "snapshot truncated: %zu bytes, a snapshot has at least %zu", len, min);
  if (memcmp(p, SNAP_MAGIC, 8))
    return bk_store_fail(s, BROOK_ERR_CORRUPT, "not a snapshot (bad magic)");
  uint32_t version = get_le32(p + 8);
  if (version != SNAP_VERSION)
    return bk_store_fail(s, BROOK_ERR_CORRUPT,
                         "snapshot format version %u; this library reads version %u", version,
                         SNAP_VERSION);
  if (get_le32(p + 12) != 0 || get_le64(p + 24) != 0)
    return bk_store_fail(s, BROOK_ERR_CORRUPT, "snapshot header has unknown flags set");
  uint64_t vsize = get_le64(p + 16);
  if (vsize != s->value_size)
    return bk_store_fail(s, BROOK_ERR_CORRUPT,
                         "snapshot of a store with value_size %llu, this store has value_size %zu",
                         (unsigned long long)vsize, s->value_size);
  size_t end = len - SNAP_TRAILER, pos = SNAP_HEADER;
  uint64_t n = 0;
  for (;;) {
    if (end - pos < 4)
      return bk_store_fail(s, BROOK_ERR_CORRUPT,
                           "snapshot truncated: entry %llu's header runs past the end",
                           (unsigned long long)n);
    size_t klen = get_le32(p + pos);
    if (klen == SNAP_END_MARK)
      break;
    if (end - pos < SNAP_ENTRY_HEADER)
      return bk_store_fail(s, BROOK_ERR_CORRUPT,
                           "snapshot truncated: entry %llu's header runs past the end",
                           (unsigned long long)n);
    size_t vlen = get_le32(p + pos + 4);
    pos += SNAP_ENTRY_HEADER;
    if (!bk_store_lens_ok(klen, vlen))
      return bk_store_fail(s, BROOK_ERR_CORRUPT,
                           "snapshot entry %llu: key of %zu or value of %zu bytes is too long",
                           (unsigned long long)n, klen, vlen);
    if (klen > end - pos || vlen > end - pos - klen)
      return bk_store_fail(s, BROOK_ERR_CORRUPT,
                           "snapshot truncated: entry %llu (key %zu, value %zu bytes) runs past "
                           "the end",
                           (unsigned long long)n, klen, vlen);
    if (s->value_size && vlen != s->value_size)
      return bk_store_fail(s, BROOK_ERR_CORRUPT,
                           "snapshot entry %llu has a %zu-byte value in a store of %zu-byte values",
                           (unsigned long long)n, vlen, s->value_size);
    pos += klen + vlen;
    n++;
  }
  if (end - pos != SNAP_END)
    return bk_store_fail(s, BROOK_ERR_CORRUPT,
                         end - pos < SNAP_END ? "snapshot truncated: the entry count is missing"
                                              : "snapshot has %zu stray bytes after its entries",
                         end - pos - SNAP_END);
  uint64_t stored = get_le64(p + pos + 4);
  if (stored != n)
    return bk_store_fail(s, BROOK_ERR_CORRUPT, "snapshot says %llu entries but holds %llu",
                         (unsigned long long)stored, (unsigned long long)n);
  uint32_t sum = bk_crc32c(0, p, end), want = get_le32(p + end);
  if (sum != want)
    return bk_store_fail(s, BROOK_ERR_CORRUPT,
                         "snapshot checksum mismatch (CRC32C stored %08x, computed %08x)", want,
                         sum);
  *count = (size_t)n;
  return BROOK_OK;
}

brook_err_t bk_store_empty(brook_store_t *s) {
  if (!s->be) {
    bk_hash_reset(s, 0);
    return BROOK_OK;
  }
  s->gen++;
  uint32_t seq = s->err_seq;
  brook_err_t err = s->be->clear(s->be_state);
  if (err < 0 && seq == s->err_seq)
    bk_store_fail(s, err, "restore: backend '%s' could not clear the store: %s",
                  s->be->name ? s->be->name : "?", brook_strerror(err));
  return err;
}

/* Inserts the n validated entries into the empty store. */
static brook_err_t snap_load(brook_store_t *s, const unsigned char *p, size_t n) {
  uint32_t seq = s->err_seq;
  brook_err_t err = s->be ? BROOK_OK : bk_hash_reserve(s, n);
  size_t pos = SNAP_HEADER;
  for (size_t i = 0; i < n && !err; i++) {
    size_t klen = get_le32(p + pos), vlen = get_le32(p + pos + 4);
    const unsigned char *key = p + pos + SNAP_ENTRY_HEADER;
    if (!s->be) {
      err = bk_hash_insert_new(s, key, klen, bk_hash_bytes(key, klen), key + klen, vlen);
      if (err == BROOK_ERR_DUPLICATE) /* a well-formed snapshot never repeats a key */
        return bk_store_fail(s, BROOK_ERR_CORRUPT, "snapshot entry %zu repeats a key", i);
    } else {
      s->gen++;
      err = s->be->put(s->be_state, key, klen, key + klen, vlen);
    }
    pos += SNAP_ENTRY_HEADER + klen + vlen;
  }
  if (err == BROOK_ERR_NOMEM)
    return bk_store_fail(s, err, "restore: out of memory after %zu entries", brook_store_count(s));
  if (err < 0) {
    if (seq == s->err_seq)
      bk_store_fail(s, err, "restore: the backend refused an entry: %s", brook_strerror(err));
    return err;
  }
  /* A backend overwrites a repeated key: the count tells. */
  if (s->be && s->be->count(s->be_state) != n)
    return bk_store_fail(s, BROOK_ERR_CORRUPT, "snapshot repeats keys (%zu entries, %zu keys)", n,
                         s->be->count(s->be_state));
  return BROOK_OK;
}

brook_err_t brook_store_restore(brook_store_t *s, const void *data, size_t len) {
  if (!s || (!data && len))
    return BROOK_ERR_INVALID_ARG;
  if (bk_store_iters_settle(s))
    return bk_store_fail(s, BROOK_ERR_STATE, "restore with an iterator open");
  const unsigned char *p = data;
  size_t n = 0;
  brook_err_t err = snap_validate(s, p, len, &n);
  brook_err_t cleared = bk_store_empty(s);
  if (!err)
    err = cleared;
  if (!err)
    err = snap_load(s, p, n);
  if (err && !cleared)
    (void)bk_store_empty(s);
  assert(bk_store_check(s)); /* O(n), like the restore itself */
  return err;
}
