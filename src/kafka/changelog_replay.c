/* The exactly-once replay rules (changelog_replay.h).
 *
 * Pending entries are laid out back to back in r->buf, 8-byte aligned:
 *   u64 epoch | u32 klen | u32 vlen (TOMBSTONE for a deletion) | key | value | pad to 8
 * A settle walks them in log order, applies or drops the settled ones and slides the others
 * (rare: records of a later epoch than the one being settled) to the front. */
#include "kafka/changelog_replay.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "kafka/changelog_format.h"

#define TOMBSTONE UINT32_MAX
#define ENTRY_HDR 16

typedef struct entry_hdr {
  uint64_t epoch;
  uint32_t klen, vlen;
} entry_hdr_t;

static size_t entry_size(size_t klen, size_t vlen) {
  return (ENTRY_HDR + klen + vlen + 7) & ~(size_t)7;
}

static entry_hdr_t entry_at(const bk_cl_replay_t *r, size_t off) {
  entry_hdr_t h;
  memcpy(&h, r->buf + off, sizeof(h));
  return h;
}

static size_t entry_bytes(entry_hdr_t h) {
  return entry_size(h.klen, h.vlen == TOMBSTONE ? 0 : h.vlen);
}

void bk_cl_replay_init(bk_cl_replay_t *r, const brook_allocator_t *alloc, const char *topic,
                       int32_t partition, size_t max_pending_bytes, uint64_t known_epoch,
                       bk_cl_apply_fn apply, void *apply_opaque) {
  memset(r, 0, sizeof(*r));
  r->alloc = alloc ? alloc : bk_default_allocator();
  r->topic = topic;
  r->partition = partition;
  r->max_pending_bytes = max_pending_bytes;
  r->apply = apply;
  r->apply_opaque = apply_opaque;
  r->settled = known_epoch;
  r->max_epoch = known_epoch;
  r->marker_offset = -1;
}

void bk_cl_replay_free(bk_cl_replay_t *r) {
  bk_free(r->alloc, r->buf);
  bk_free(r->alloc, r->blob);
  bk_free(r->alloc, r->tail_index);
  r->buf = r->blob = NULL;
  r->tail_index = NULL;
}

/* Applies or drops the pending entries of settled epochs: committed are e <= prev and
 * e == epoch, dead are prev < e < epoch; later epochs stay pending. */
static brook_err_t settle(bk_cl_replay_t *r, uint64_t prev, uint64_t epoch, bk_errmsg_t *why) {
  size_t in = 0, out = 0, kept = 0;
  while (in < r->used) {
    entry_hdr_t h = entry_at(r, in);
    size_t sz = entry_bytes(h);
    const unsigned char *key = r->buf + in + ENTRY_HDR;
    if (h.epoch <= prev || h.epoch == epoch) {
      int del = h.vlen == TOMBSTONE;
      brook_err_t err =
          r->apply(key, h.klen, del ? NULL : key + h.klen, del ? 0 : h.vlen, r->apply_opaque);
      if (err) {
        bk_errmsg_set(why,
                      "changelog '%s' partition %" PRId32 ": applying a restored record failed",
                      r->topic, r->partition);
        return err;
      }
      r->applied++;
    } else if (h.epoch < epoch) {
      r->dropped++;
    } else {
      if (out != in)
        memmove(r->buf + out, r->buf + in, sz);
      out += sz;
      kept++;
    }
    in += sz;
  }
  r->used = out;
  r->n_pending = kept;
  if (epoch > r->settled)
    r->settled = epoch;
  return BROOK_OK;
}

/* Epochs from the log are below BK_CL_EPOCH_LIMIT, and the highest one leaves a first epoch
 * for the next writer: a corrupt (or hostile) header must not make it wrap. */
static brook_err_t check_epochs(bk_cl_replay_t *r, int64_t offset, uint64_t epoch, uint64_t other,
                                bk_errmsg_t *why) {
  if (bk_cl_epoch_valid(epoch) && other < epoch && bk_cl_first_epoch(epoch) != 0) {
    if (epoch > r->max_epoch)
      r->max_epoch = epoch;
    return BROOK_OK;
  }
  bk_errmsg_set(why,
                "changelog '%s' partition %" PRId32 " offset %" PRId64 ": epoch %" PRIu64
                " (after %" PRIu64 ") out of range: epochs are 1 .. 2^63 - 1, above the epoch "
                "they name, and leave a next incarnation below 2^63",
                r->topic, r->partition, offset, epoch, other);
  return BROOK_ERR_CORRUPT;
}

brook_err_t bk_cl_replay_record(bk_cl_replay_t *r, int64_t offset, uint64_t epoch,
                                uint64_t committed, const void *key, size_t klen, const void *value,
                                size_t vlen, bk_errmsg_t *why) {
  assert(!r->finished);
  r->records++;
  brook_err_t cerr = check_epochs(r, offset, epoch, committed, why);
  if (cerr)
    return cerr;
  if (r->upto && committed > r->upto)
    committed = r->upto;
  if (committed > r->settled && r->n_pending) {
    brook_err_t err = settle(r, committed, committed, why);
    if (err)
      return err;
  }
  if (committed > r->settled)
    r->settled = committed;
  if (epoch <= r->settled) { /* a settled epoch cannot get records (another writer's) */
    r->dropped++;
    return BROOK_OK;
  }
  if (klen >= TOMBSTONE || (value && vlen >= TOMBSTONE)) {
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 " offset %" PRId64 ": record too large",
                  r->topic, r->partition, offset);
    return BROOK_ERR_TOO_LARGE;
  }
  size_t sz = entry_size(klen, value ? vlen : 0);
  if (r->used + sz > r->max_pending_bytes) {
    bk_errmsg_set(why,
                  "changelog '%s' partition %" PRId32 " offset %" PRId64
                  ": more than %zu bytes of records wait for their commit marker (one commit "
                  "wrote more than max_pending_bytes, or markers are missing)",
                  r->topic, r->partition, offset, r->max_pending_bytes);
    return BROOK_ERR_TOO_LARGE;
  }
  if (bk_grow(r->alloc, (void **)&r->buf, &r->cap, r->used + sz, 1)) {
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": out of memory", r->topic,
                  r->partition);
    return BROOK_ERR_NOMEM;
  }
  entry_hdr_t h = {epoch, (uint32_t)klen, value ? (uint32_t)vlen : TOMBSTONE};
  unsigned char *p = r->buf + r->used;
  memcpy(p, &h, sizeof(h));
  if (klen)
    memcpy(p + ENTRY_HDR, key, klen);
  if (value && vlen)
    memcpy(p + ENTRY_HDR + klen, value, vlen);
  r->used += sz;
  r->n_pending++;
  return BROOK_OK;
}

brook_err_t bk_cl_replay_marker(bk_cl_replay_t *r, int64_t offset, uint64_t epoch, uint64_t prev,
                                const void *blob, size_t blob_len, bk_errmsg_t *why) {
  assert(!r->finished);
  r->markers++;
  brook_err_t cerr = check_epochs(r, offset, epoch, prev, why);
  if (cerr)
    return cerr;
  if (r->upto && epoch > r->upto) {
    r->markers_beyond++; /* its epoch's records stay pending: the tail */
    return BROOK_OK;
  }
  if (epoch <= r->settled) {
    bk_errmsg_set(why,
                  "changelog '%s' partition %" PRId32 " offset %" PRId64
                  ": commit marker of epoch %" PRIu64 " after epoch %" PRIu64
                  " was settled (two writers on one partition?)",
                  r->topic, r->partition, offset, epoch, r->settled);
    return BROOK_ERR_CORRUPT;
  }
  brook_err_t err = settle(r, prev, epoch, why);
  if (err)
    return err;
  if (blob_len > r->blob_cap) {
    unsigned char *nb = bk_realloc(r->alloc, r->blob, blob_len);
    if (!nb) {
      bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": out of memory", r->topic,
                    r->partition);
      return BROOK_ERR_NOMEM;
    }
    r->blob = nb;
    r->blob_cap = blob_len;
  }
  if (blob_len)
    memcpy(r->blob, blob, blob_len);
  r->blob_len = blob_len;
  r->marker_epoch = epoch;
  r->marker_prev = prev;
  r->marker_offset = offset;
  return BROOK_OK;
}

brook_err_t bk_cl_replay_settle_task(bk_cl_replay_t *r, uint64_t epoch, uint64_t prev,
                                     bk_errmsg_t *why) {
  assert(!r->finished);
  if (epoch <= r->settled)
    return BROOK_OK;
  if (prev > r->settled) {
    bk_errmsg_set(why,
                  "changelog '%s' partition %" PRId32 ": its task committed epoch %" PRIu64
                  " after %" PRIu64 ", but this changelog settled only up to %" PRIu64
                  " (a commit of the task is missing here)",
                  r->topic, r->partition, epoch, prev, r->settled);
    return BROOK_ERR_CORRUPT;
  }
  return settle(r, prev, epoch, why);
}

static int same_key(const bk_cl_replay_t *r, size_t a, size_t b) {
  entry_hdr_t ha = entry_at(r, a), hb = entry_at(r, b);
  return ha.klen == hb.klen &&
         (ha.klen == 0 || memcmp(r->buf + a + ENTRY_HDR, r->buf + b + ENTRY_HDR, ha.klen) == 0);
}

brook_err_t bk_cl_replay_finish(bk_cl_replay_t *r, bk_errmsg_t *why) {
  assert(!r->finished);
  r->finished = 1;
  r->dropped += r->n_pending;
  if (!r->n_pending)
    return BROOK_OK;
  /* The distinct keys, first occurrence kept: an open-addressing set of entry offsets. */
  size_t slots = 16;
  while (slots < 2 * r->n_pending)
    slots *= 2;
  uint32_t *set = bk_calloc(r->alloc, slots, sizeof(*set));
  r->tail_index = bk_malloc(r->alloc, r->n_pending * sizeof(*r->tail_index));
  if (!set || !r->tail_index) {
    bk_free(r->alloc, set);
    bk_errmsg_set(why, "changelog '%s' partition %" PRId32 ": out of memory", r->topic,
                  r->partition);
    return BROOK_ERR_NOMEM;
  }
  for (size_t off = 0; off < r->used; off += entry_bytes(entry_at(r, off))) {
    entry_hdr_t h = entry_at(r, off);
    size_t i = (size_t)bk_hash_bytes(r->buf + off + ENTRY_HDR, h.klen) & (slots - 1);
    for (; set[i]; i = (i + 1) & (slots - 1))
      if (same_key(r, set[i] - 1, off))
        break;
    if (!set[i]) {
      set[i] = (uint32_t)off + 1;
      r->tail_index[r->n_tail++] = (uint32_t)off;
    }
  }
  bk_free(r->alloc, set);
  return BROOK_OK;
}

void bk_cl_replay_tail_key(const bk_cl_replay_t *r, size_t i, const void **key, size_t *klen) {
  assert(i < r->n_tail);
  entry_hdr_t h = entry_at(r, r->tail_index[i]);
  *key = r->buf + r->tail_index[i] + ENTRY_HDR;
  *klen = h.klen;
}
