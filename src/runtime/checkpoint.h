/* Checkpoints: the state of operator instances (stores, timers, watermarks) written as
 * checksummed sections, and read back with every byte validated before anything is applied.
 * Used for a task's snapshot (a revoked partition's state, restored when its task is created
 * again: the hook for a task's RESTORING state) and by the test driver's whole checkpoint
 * (driver_checkpoint.c).
 *
 * Format (little-endian), version 1:
 *   header  "BRKCKPT\0" | u32 version | u32 what (BK_CKPT_*) | u32 CRC32C of the 16 bytes before
 *   section u32 kind | i32 task | u16 node_len | u16 store_len | u64 payload_len
 *           | node name | store name | payload | u32 CRC32C of the section's bytes before it
 *   ...     the last section is BK_SEC_END: u64 sections before it, u32 CRC32C of every
 *           byte before the END section.
 * Sections are keyed by stable node names (and store names), never by positions, so a
 * checkpoint restores into a new runtime built from the same topology; a node present on one
 * side only is an error naming it. Loop thread (or the driver's thread). */
#ifndef BROOK_RUNTIME_CHECKPOINT_H
#define BROOK_RUNTIME_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <brook/state.h>

#include "core/errmsg.h"
#include "runtime/runtime_impl.h"

#define BK_CKPT_VERSION 1

enum { BK_CKPT_DRIVER = 1, BK_CKPT_TASK = 2 }; /* what a checkpoint holds */

enum bk_ckpt_kind {
  BK_SEC_CLOCK = 1,  /* the driver: processing time, ended */
  BK_SEC_SOURCE = 2, /* a source: its watermark generator and partitions */
  BK_SEC_NODE = 3,   /* an instance (node, task): its type, watermark, stores */
  BK_SEC_STORE = 4,  /* one store of an instance: a store snapshot (state.h) */
  BK_SEC_TIMERS = 5, /* an instance's timers: a timer store snapshot (timers.h) */
  BK_SEC_SAVED = 6,  /* a revoked task's snapshot the driver holds (a BK_CKPT_TASK blob) */
  BK_SEC_END = 7
};

/* ---- writing ---- */

typedef struct bk_ckpt_writer {
  const brook_allocator_t *alloc;
  brook_write_fn write;
  void *opaque;
  unsigned char *buf; /* the section being built */
  size_t len, cap;
  uint32_t crc;        /* of everything written so far */
  uint64_t n_sections; /* written so far */
  brook_err_t err;     /* first failure; later calls do nothing */
} bk_ckpt_writer_t;

void bk_ckpt_writer_init(bk_ckpt_writer_t *w, const brook_allocator_t *a, brook_write_fn write,
                         void *opaque, uint32_t what);
/* Starts a section; node/store may be NULL (empty names). */
void bk_ckpt_section(bk_ckpt_writer_t *w, uint32_t kind, int32_t task, const char *node,
                     const char *store);
void bk_ckpt_put(bk_ckpt_writer_t *w, const void *data, size_t n);
void bk_ckpt_put_u8(bk_ckpt_writer_t *w, uint8_t v);
void bk_ckpt_put_u32(bk_ckpt_writer_t *w, uint32_t v);
void bk_ckpt_put_i64(bk_ckpt_writer_t *w, int64_t v);
/* A brook_write_fn appending to the current section's payload (opaque: the writer). */
brook_err_t bk_ckpt_put_fn(const void *data, size_t len, void *opaque);
/* Writes the current section out. */
void bk_ckpt_section_end(bk_ckpt_writer_t *w);
/* Writes the END section and frees the buffer; returns the first failure or BROOK_OK. */
brook_err_t bk_ckpt_finish(bk_ckpt_writer_t *w);

/* ---- reading ---- */

typedef struct bk_ckpt_sec {
  uint32_t kind;
  int32_t task;
  const char *node, *store; /* not NUL-terminated */
  size_t node_len, store_len;
  const unsigned char *payload;
  size_t len;
  size_t index; /* 1-based position, for messages */
} bk_ckpt_sec_t;

/* Checks the whole checkpoint (header, every section's bounds and checksum, the END section)
 * and lists its sections in *out (allocated with `a`, pointing into `data`; free with
 * bk_free). BROOK_OK, BROOK_ERR_CORRUPT (the message says where and what) or
 * BROOK_ERR_NOMEM. */
brook_err_t bk_ckpt_parse(const brook_allocator_t *a, const void *data, size_t len, uint32_t what,
                          bk_ckpt_sec_t **out, size_t *n_out, bk_errmsg_t *why);

/* 1 if the section's node (store) name equals `name`. */
int bk_ckpt_node_is(const bk_ckpt_sec_t *s, const char *name);
int bk_ckpt_store_is(const bk_ckpt_sec_t *s, const char *name);
/* The plan position of the node named like section `s`, or SIZE_MAX. */
size_t bk_ckpt_node_pos(const brook_runtime_t *rt, const bk_ckpt_sec_t *s);
/* "section 3 (node 'agg', task 2, store 'aggregate')" into buf, for messages. */
const char *bk_ckpt_where(const bk_ckpt_sec_t *s, char *buf, size_t cap);

/* A payload cursor: reads past the end set `bad` and return 0. */
typedef struct bk_ckpt_in {
  const unsigned char *p;
  size_t len, pos;
  int bad;
} bk_ckpt_in_t;

static inline bk_ckpt_in_t bk_ckpt_in(const bk_ckpt_sec_t *s) {
  return (bk_ckpt_in_t){s->payload, s->len, 0, 0};
}
uint8_t bk_ckpt_get_u8(bk_ckpt_in_t *in);
uint32_t bk_ckpt_get_u32(bk_ckpt_in_t *in);
int64_t bk_ckpt_get_i64(bk_ckpt_in_t *in);
/* `n` bytes (pointer into the payload), or NULL. */
const unsigned char *bk_ckpt_get(bk_ckpt_in_t *in, size_t n);

/* ---- operator instances and tasks ---- */

/* Writes the NODE section of instance `c` and a STORE section per store, plus TIMERS. */
void bk_ckpt_write_inst(bk_ckpt_writer_t *w, brook_ctx_t *c);

/* Checks that the sections of instance `c` (node c->node, task c->task) among secs[] match
 * it: a NODE section of the same type, a STORE section for each store it opened and no
 * other. BROOK_OK or BROOK_ERR_CORRUPT (message in *why). */
brook_err_t bk_ckpt_check_inst(const brook_ctx_t *c, const bk_ckpt_sec_t *secs, size_t n,
                               bk_errmsg_t *why);

/* Applies the instance's sections (checked by bk_ckpt_check_inst) to `c`: restores its stores
 * and timers, sets its watermark. On failure (BROOK_ERR_CORRUPT: a store snapshot that does
 * not fit the store, BROOK_ERR_NOMEM) the caller resets the instance (bk_ckpt_reset_inst). */
brook_err_t bk_ckpt_apply_inst(brook_ctx_t *c, const bk_ckpt_sec_t *secs, size_t n,
                               bk_errmsg_t *why);

/* Empties the instance's stores and timers and forgets its watermark (as when just opened). */
void bk_ckpt_reset_inst(brook_ctx_t *c);

/* A task's snapshot: its per-task instances (after the operators' flush, like a commit).
 * BROOK_OK or the writer's failure. */
brook_err_t bk_task_snapshot(brook_runtime_t *rt, bk_task_t *t, brook_write_fn write, void *opaque);

/* Restores task `t` (just created and opened, nothing processed) from a bk_task_snapshot of
 * the same partition: its stores, timers and watermarks. This is what a task's RESTORING
 * state runs before RUNNING when its state comes from a snapshot. BROOK_OK, or
 * BROOK_ERR_CORRUPT / BROOK_ERR_NOMEM with the message in *why; on failure every instance
 * of the task is left as it was opened (empty). */
brook_err_t bk_task_restore(brook_runtime_t *rt, bk_task_t *t, const void *data, size_t len,
                            bk_errmsg_t *why);

#endif
