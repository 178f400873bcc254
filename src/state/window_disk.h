/* Window state on disk: the key layout of a tumbling window operator whose task keeps its
 * state in a RocksDB task database (runtime option state_dir; ctx->task_db). The in-memory
 * window store (window_store.h) holds every open window in memory; here every (window, key)
 * accumulator is an entry of a store of the task database, so memory is the write cache's
 * (rocksdb_store.h: the entries changed since the last commit, plus clean entries up to
 * cache_bytes), not the number of keys or windows.
 *
 * Two stores of the operator instance (brook_store_open, default backend: they are named
 * "<node identity>/window" and "<node identity>/window_order" in the task database):
 *
 *   window        be64(start ^ 2^63) || user key  -> the accumulator (acc_size bytes, native)
 *   window_order  ""                              -> the windows: n x {int64 start, uint64
 *                                                    keys, uint64 purged} (native), by start
 *                 be64(start ^ 2^63) || be64(seq)  -> user key: the seq-th key that arrived in
 *                                                    window `start` (seq = 0 .. keys - 1)
 *
 * Why this shape:
 * - A record updates its accumulator in place (brook_store_update): a write-cache lookup
 *   while the cache holds the key, a RocksDB read only on a miss of a key that may be on
 *   disk (a new key's miss is answered by the database's bloom filter).
 * - A window's entries are contiguous in both stores (start first, its sign bit flipped so
 *   that negative starts sort before positive ones), so they are found by start.
 * - Results must leave in the order of the in-memory backend (keys in first-arrival order per
 *   window, window_tumbling.c): the order entries are that order, and closing a window walks
 *   seq = 0 .. keys - 1 and emits each key's result.
 * - Its entries are deleted at the next commit's flush by two range deletions
 *   (state/store_range.h: one RocksDB DeleteRange each in the commit's write, however many
 *   keys the window had). Where the stores must report each deletion (a changelog listener)
 *   they are deleted key by key instead, at most BK_WDISK_PURGE keys per commit (the window
 *   stays listed as closed, with how far the purge got), because every deletion is then a
 *   tombstone in the write cache until the next commit.
 * - Hopping windows use the same layout with `start` a slice's start (slices of gcd(size,
 *   advance)); their last fired window is kept under "m" in window_order
 *   (ops/window_disk.h).
 * - The open windows (a handful: those within size + grace of the watermark) are kept in
 *   memory as well, with their key counts, and written back under "" at the end of every
 *   batch, timer and watermark callback that changed them, so every commit (which runs
 *   between callbacks) writes a list that matches the entries. After a restart or a restore
 *   the list is read back and one event-time timer per open window is set again (an
 *   idempotent brook_timer_set), so the windows close at the same watermark as before.
 *
 * Loop thread of the operator's task. */
#ifndef BROOK_STATE_WINDOW_DISK_H
#define BROOK_STATE_WINDOW_DISK_H

#include <stddef.h>
#include <stdint.h>

#include <brook/time.h>

#define BK_WDISK_START_LEN 8  /* be64(start ^ 2^63) */
#define BK_WDISK_ORDER_LEN 16 /* be64(start ^ 2^63) || be64(seq) */
#define BK_WDISK_PURGE 4096   /* keys of closed windows deleted per commit */

/* One window as listed under "" in window_order. */
typedef struct bk_wdisk_win {
  brook_time_t start;
  uint64_t keys;   /* keys that arrived: the next seq */
  uint64_t purged; /* BK_WDISK_OPEN, or closed: seqs [0, purged) are deleted */
} bk_wdisk_win_t;

#define BK_WDISK_OPEN UINT64_MAX

static inline void bk_wdisk_be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

/* The 8 bytes every entry of window `start` begins with. */
static inline void bk_wdisk_start_key(unsigned char *p, brook_time_t start) {
  bk_wdisk_be64(p, (uint64_t)start ^ ((uint64_t)1 << 63));
}

/* The order entry's key of the seq-th key of window `start` (16 bytes). */
static inline void bk_wdisk_order_key(unsigned char *p, brook_time_t start, uint64_t seq) {
  bk_wdisk_start_key(p, start);
  bk_wdisk_be64(p + BK_WDISK_START_LEN, seq);
}

#endif
