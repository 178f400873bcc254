/* Tumbling and hopping windows whose state is on disk (the task keeps its state in a RocksDB
 * task database; layout in state/window_disk.h): what both kinds share. Both keep slices of
 * time (a tumbling window is one slice; a hopping window is made of slices of gcd(size,
 * advance)), each with a per-slice accumulator per key, and the same write-behind cache: between
 * two commits a slice's changed accumulators live in a segment of the slice in memory (key ->
 * accumulator || seq, first-arrival order), and the operator's flush (at the start of every
 * commit) writes them to the "window" and "window_order" stores and empties the segments.
 * window_disk.c holds the slices, their cache, writing and purging; window_tumbling_disk.c and
 * window_hopping_disk.c what each kind does with records and timers. Loop thread. */
#ifndef BROOK_OPS_WINDOW_DISK_H
#define BROOK_OPS_WINDOW_DISK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ops/window_common.h"
#include "state/segment.h"
#include "state/window_disk.h"

/* A slice (a window, for tumbling): open, or closed with entries left to purge from disk. */
typedef struct dwin {
  brook_time_t start;
  uint64_t keys;    /* keys that arrived: the next seq */
  uint64_t on_disk; /* seqs [0, on_disk) have their entries on disk */
  uint64_t purged;  /* BK_WDISK_OPEN, or closed: seqs [0, purged) deleted from disk */
  bk_seg_t seg;     /* changed since the last commit: key -> accumulator || u64 seq */
} dwin_t;

typedef struct bk_win_disk {
  brook_store_t *acc;          /* "window": be64(start) || key -> accumulator || seq */
  brook_store_t *order;        /* "window_order": "" -> slices; be64(start) || be64(seq) -> key;
                                  hopping: "m" -> its scalars (bk_wdisk_hop_meta_t) */
  uint64_t acc_gen, order_gen; /* the stores' gen after this operator's last change */
  size_t seq_off;              /* where the seq follows the accumulator (8-aligned) */
  dwin_t *wins;                /* slices, sorted by start */
  size_t n_wins, cap_wins, last;
  bk_wdisk_win_t *list; /* scratch for the list written under "" */
  size_t list_cap;
  unsigned char *ekeys; /* keys of results not yet flushed (they borrow these bytes) */
  size_t ekeys_used, ekeys_cap;
  /* Hopping: the last window fired (or known closed without data), and scratch for the
   * accumulators of one key's slices (early results). */
  brook_time_t done_ws;
  int done;
  unsigned char *accs;
  size_t accs_cap;
  unsigned char *vtmp; /* an accumulator read from disk (aligned) */
  bk_seg_t merged;     /* hopping: a firing window's keys, merged from its slices */
  /* Bytes the segments gained since the last flush (entries created), and whether a commit
   * was asked for because they passed the task database's cache size. */
  size_t seg_bytes;
  int commit_asked;
} bk_win_disk_t;

/* Hopping's scalars on disk, under "m" in window_order. */
typedef struct bk_wdisk_hop_meta {
  brook_time_t done_ws;
  uint64_t done;
} bk_wdisk_hop_meta_t;

/* ---- window_disk.c ---- */

brook_err_t bk_wdisk_failed(brook_ctx_t *ctx, brook_store_t *s, brook_err_t err);
/* The open slice of `start`, added if new (the kind's timer set); NULL with *err on failure. */
dwin_t *bk_wdisk_slice_for(brook_ctx_t *ctx, bk_win_t *w, brook_time_t start, brook_err_t *err);
/* The first slice position whose start is >= start. */
size_t bk_wdisk_lower(const bk_win_disk_t *d, brook_time_t start);
/* w->kbuf = be64(start) || key; its length, or 0 out of memory. */
size_t bk_wdisk_acc_key(bk_win_t *w, brook_time_t start, const void *key, size_t klen);
static inline uint64_t bk_wdisk_seq(const bk_win_disk_t *d, const void *acc) {
  uint64_t seq;
  memcpy(&seq, (const unsigned char *)acc + d->seq_off, 8);
  return seq;
}
/* Adds rec to its key's accumulator in slice dw (read from disk first if it is there); *acc
 * gets it. An aggregator's refusal leaves no new key in the segment. */
brook_err_t bk_wdisk_add(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, const brook_record_t *rec,
                         void **acc);
/* The accumulator of the key whose composite key (w->kbuf, kl bytes, user key at
 * kbuf + 8 with hash h) is in slice dw: from its segment, else from disk (copied to d->vtmp:
 * valid until the next read); NULL if the slice has no such key, with *err set on failure. */
const void *bk_wdisk_find(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, size_t kl, uint64_t h,
                          brook_err_t *err);
/* A copy of a result's key valid until output port 0 is flushed; NULL with *err. */
const void *bk_wdisk_emit_key(brook_ctx_t *ctx, bk_win_t *w, const void *key, size_t klen,
                              brook_err_t *err);
/* Flushes output port 0 (results borrow the copies of emit_key): the copies are free again. */
brook_err_t bk_wdisk_flush_port(brook_ctx_t *ctx, bk_win_t *w);
/* The seq-th key of slice dw (< on_disk), read from disk into w->kbuf as a composite key
 * (length in *kl): 1, 0 if it is missing, or an error. */
int bk_wdisk_key_at(brook_ctx_t *ctx, bk_win_t *w, dwin_t *dw, uint64_t seq, size_t *kl);
/* The stores' changes so far are the operator's own (not a restore). */
void bk_win_disk_noted(bk_win_t *w);
/* Slice i has been emitted for the last time: closed (its disk entries purged over the next
 * commits), or gone if it has none. */
void bk_wdisk_close_slice(bk_win_t *w, size_t i);

/* ---- the kinds ---- */

brook_err_t bk_wdisk_tumbling_one(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec);
brook_err_t bk_wdisk_hopping_one(brook_ctx_t *ctx, bk_win_t *w, const brook_record_t *rec);
/* The timer a new slice needs. */
brook_err_t bk_wdisk_hopping_slice_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t s);
/* After the slices were read back: the timers they imply. */
brook_err_t bk_wdisk_hopping_timers(brook_ctx_t *ctx, bk_win_t *w);
brook_err_t bk_win_disk_hopping_on_timer(brook_ctx_t *ctx, bk_win_t *w, brook_time_t time);

#endif
