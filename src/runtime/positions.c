/* The positions encoding (positions.h): what a task's state covers of its input, stored in
 * its task database with the state. Versioned and checked on read: a database written by a
 * later version, or damaged, fails clearly (naming the task directory) instead of resuming
 * the input at a wrong offset. */
#include "runtime/positions.h"

#include <string.h>

#define HEADER 5 /* version, count */
#define FIXED 14 /* topic length, partition, offset */

static void put_be(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

void bk_positions_init(bk_positions_t *p, const brook_allocator_t *alloc) {
  *p = (bk_positions_t){.alloc = alloc ? alloc : bk_default_allocator()};
}

void bk_positions_reset(bk_positions_t *p) { p->len = 0; }

static int fit(bk_positions_t *p, size_t need) {
  if (need <= p->cap)
    return 0;
  size_t cap = p->cap ? p->cap : 64;
  while (cap < need)
    cap *= 2;
  unsigned char *b = bk_realloc(p->alloc, p->buf, cap);
  if (!b)
    return -1;
  p->buf = b;
  p->cap = cap;
  return 0;
}

static int header(bk_positions_t *p) {
  if (p->len)
    return 0;
  if (fit(p, HEADER))
    return -1;
  p->buf[0] = BK_POSITIONS_VERSION;
  put_be(p->buf + 1, 0, 4);
  p->len = HEADER;
  return 0;
}

brook_err_t bk_positions_add(bk_positions_t *p, const char *topic, int32_t partition,
                             int64_t offset) {
  return bk_positions_add_named(p, topic, strlen(topic), partition, offset);
}

brook_err_t bk_positions_add_named(bk_positions_t *p, const void *topic, size_t tl,
                                   int32_t partition, int64_t offset) {
  if (tl > UINT16_MAX || !tl || offset < 0)
    return BROOK_ERR_INVALID_ARG;
  if (header(p) || fit(p, p->len + FIXED + tl))
    return BROOK_ERR_NOMEM;
  unsigned char *e = p->buf + p->len;
  put_be(e, tl, 2);
  memcpy(e + 2, topic, tl);
  put_be(e + 2 + tl, (uint32_t)partition, 4);
  put_be(e + 6 + tl, (uint64_t)offset, 8);
  p->len += FIXED + tl;
  put_be(p->buf + 1, get_be(p->buf + 1, 4) + 1, 4);
  return BROOK_OK;
}

const void *bk_positions_data(bk_positions_t *p, size_t *len) {
  static const unsigned char empty[HEADER] = {BK_POSITIONS_VERSION, 0, 0, 0, 0};
  if (!p->len && header(p)) { /* out of memory: the empty list needs no buffer */
    *len = HEADER;
    return empty;
  }
  *len = p->len;
  return p->buf;
}

void bk_positions_free(bk_positions_t *p) {
  bk_free(p->alloc, p->buf);
  p->buf = NULL;
  p->len = p->cap = 0;
}

brook_err_t bk_positions_check(const void *data, size_t len, const char *where, bk_errmsg_t *why) {
  const unsigned char *d = data;
  if (len < HEADER) {
    bk_errmsg_set(why, "task state %s: its input positions have %zu bytes (truncated)", where, len);
    return BROOK_ERR_CORRUPT;
  }
  if (d[0] != BK_POSITIONS_VERSION) {
    bk_errmsg_set(why, "task state %s: input positions of version %u (this brook reads %d)", where,
                  d[0], BK_POSITIONS_VERSION);
    return BROOK_ERR_CORRUPT;
  }
  uint32_t n = (uint32_t)get_be(d + 1, 4);
  size_t at = HEADER;
  for (uint32_t i = 0; i < n; i++) {
    size_t tl = at + 2 <= len ? (size_t)get_be(d + at, 2) : 0;
    if (at + 2 > len || len - at < FIXED + tl || !tl) {
      bk_errmsg_set(why, "task state %s: input position %u of %u is truncated or has no topic",
                    where, i + 1, n);
      return BROOK_ERR_CORRUPT;
    }
    int64_t off = (int64_t)get_be(d + at + 6 + tl, 8);
    if (off < 0) {
      bk_errmsg_set(why, "task state %s: input position %u has offset %lld", where, i + 1,
                    (long long)off);
      return BROOK_ERR_CORRUPT;
    }
    at += FIXED + tl;
  }
  if (at != len) {
    bk_errmsg_set(why, "task state %s: %zu bytes after its %u input positions", where, len - at, n);
    return BROOK_ERR_CORRUPT;
  }
  return BROOK_OK;
}

uint32_t bk_positions_count(const void *data, size_t len) {
  return len >= HEADER ? (uint32_t)get_be((const unsigned char *)data + 1, 4) : 0;
}

int bk_positions_find(const void *data, size_t len, const char *topic, int32_t partition,
                      int64_t *offset) {
  const unsigned char *d = data;
  size_t want = strlen(topic), at = HEADER;
  uint32_t n = bk_positions_count(data, len);
  for (uint32_t i = 0; i < n; i++) {
    size_t tl = (size_t)get_be(d + at, 2);
    if (tl == want && memcmp(d + at + 2, topic, tl) == 0 &&
        (int32_t)get_be(d + at + 2 + tl, 4) == partition) {
      *offset = (int64_t)get_be(d + at + 6 + tl, 8);
      return 1;
    }
    at += FIXED + tl;
  }
  return 0;
}

int bk_positions_next(const void *data, size_t len, size_t *at, bk_position_t *out) {
  const unsigned char *d = data;
  if (*at == 0)
    *at = HEADER;
  if (*at + FIXED > len)
    return 0;
  size_t tl = (size_t)get_be(d + *at, 2);
  out->name = d + *at + 2;
  out->name_len = tl;
  out->partition = (int32_t)get_be(d + *at + 2 + tl, 4);
  out->offset = (int64_t)get_be(d + *at + 6 + tl, 8);
  *at += FIXED + tl;
  return 1;
}
