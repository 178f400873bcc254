/* Checkpoint sections (checkpoint.h): the writer, the validating reader, operator instances'
 * state, and a task's snapshot and restore. Loop thread (or the test driver's thread). */
#include "runtime/checkpoint.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "runtime/timers.h"
#include "state/store.h"

#define MAGIC "BRKCKPT" /* with its NUL: 8 bytes */
#define FILE_HEADER 20  /* magic, version, what, crc */
#define SEC_HEADER 20   /* kind, task, node_len, store_len, payload_len */
#define END_PAYLOAD 12  /* u64 sections, u32 crc */

static void le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static void le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t rd32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* ---- writing ---- */

static void emit(bk_ckpt_writer_t *w, const void *data, size_t n) {
  if (w->err)
    return;
  w->crc = bk_crc32c(w->crc, data, n);
  w->err = w->write(data, n, w->opaque);
}

void bk_ckpt_writer_init(bk_ckpt_writer_t *w, const brook_allocator_t *a, brook_write_fn write,
                         void *opaque, uint32_t what) {
  memset(w, 0, sizeof(*w));
  w->alloc = a;
  w->write = write;
  w->opaque = opaque;
  unsigned char h[FILE_HEADER];
  memcpy(h, MAGIC, 8);
  le32(h + 8, BK_CKPT_VERSION);
  le32(h + 12, what);
  le32(h + 16, bk_crc32c(0, h, 16));
  emit(w, h, sizeof(h));
}

void bk_ckpt_put(bk_ckpt_writer_t *w, const void *data, size_t n) {
  if (w->err || !n)
    return;
  if (bk_grow(w->alloc, (void **)&w->buf, &w->cap, w->len + n, 1)) {
    w->err = BROOK_ERR_NOMEM;
    return;
  }
  memcpy(w->buf + w->len, data, n);
  w->len += n;
}

void bk_ckpt_put_u8(bk_ckpt_writer_t *w, uint8_t v) { bk_ckpt_put(w, &v, 1); }

void bk_ckpt_put_u32(bk_ckpt_writer_t *w, uint32_t v) {
  unsigned char b[4];
  le32(b, v);
  bk_ckpt_put(w, b, 4);
}

void bk_ckpt_put_i64(bk_ckpt_writer_t *w, int64_t v) {
  unsigned char b[8];
  le64(b, (uint64_t)v);
  bk_ckpt_put(w, b, 8);
}

brook_err_t bk_ckpt_put_fn(const void *data, size_t len, void *opaque) {
  bk_ckpt_writer_t *w = opaque;
  bk_ckpt_put(w, data, len);
  return w->err;
}

void bk_ckpt_section(bk_ckpt_writer_t *w, uint32_t kind, int32_t task, const char *node,
                     const char *store) {
  size_t nl = node ? strlen(node) : 0, sl = store ? strlen(store) : 0;
  if (nl > UINT16_MAX || sl > UINT16_MAX) {
    w->err = w->err ? w->err : BROOK_ERR_INVALID_ARG;
    return;
  }
  unsigned char h[SEC_HEADER] = {0};
  le32(h, kind);
  le32(h + 4, (uint32_t)task);
  h[8] = (unsigned char)nl;
  h[9] = (unsigned char)(nl >> 8);
  h[10] = (unsigned char)sl;
  h[11] = (unsigned char)(sl >> 8);
  w->len = 0;
  bk_ckpt_put(w, h, sizeof(h)); /* payload_len is filled in by bk_ckpt_section_end */
  bk_ckpt_put(w, node, nl);
  bk_ckpt_put(w, store, sl);
}

void bk_ckpt_section_end(bk_ckpt_writer_t *w) {
  if (w->err)
    return;
  size_t names = (size_t)(w->buf[8] | w->buf[9] << 8) + (size_t)(w->buf[10] | w->buf[11] << 8);
  le64(w->buf + 12, w->len - SEC_HEADER - names);
  unsigned char c[4];
  le32(c, bk_crc32c(0, w->buf, w->len));
  bk_ckpt_put(w, c, 4);
  emit(w, w->buf, w->len);
  w->n_sections++;
}

brook_err_t bk_ckpt_finish(bk_ckpt_writer_t *w) {
  uint64_t n = w->n_sections;
  uint32_t crc = w->crc;
  bk_ckpt_section(w, BK_SEC_END, -1, NULL, NULL);
  unsigned char p[END_PAYLOAD];
  le64(p, n);
  le32(p + 8, crc);
  bk_ckpt_put(w, p, sizeof(p));
  bk_ckpt_section_end(w);
  bk_free(w->alloc, w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
  return w->err;
}

/* ---- reading ---- */

static const char *kind_name(uint32_t kind) {
  static const char *const names[] = {"?",     "clock",  "source", "node",
                                      "store", "timers", "saved",  "end"};
  return kind < sizeof(names) / sizeof(*names) ? names[kind] : "unknown";
}

const char *bk_ckpt_where(const bk_ckpt_sec_t *s, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "section %zu (%s", s->index, kind_name(s->kind));
  if (n >= 0 && (size_t)n < cap && s->node_len)
    n += snprintf(buf + n, cap - (size_t)n, ", node '%.*s'", (int)s->node_len, s->node);
  if (n >= 0 && (size_t)n < cap && s->task >= 0)
    n += snprintf(buf + n, cap - (size_t)n, ", task %d", (int)s->task);
  if (n >= 0 && (size_t)n < cap && s->store_len)
    n += snprintf(buf + n, cap - (size_t)n, ", store '%.*s'", (int)s->store_len, s->store);
  if (n >= 0 && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, ")");
  return buf;
}

brook_err_t bk_ckpt_parse(const brook_allocator_t *a, const void *data, size_t len, uint32_t what,
                          bk_ckpt_sec_t **out, size_t *n_out, bk_errmsg_t *why) {
  const unsigned char *p = data;
  *out = NULL;
  *n_out = 0;
  if (!p || len < FILE_HEADER) {
    bk_errmsg_set(why, "checkpoint truncated: %zu bytes, shorter than its %d-byte header", len,
                  FILE_HEADER);
    return BROOK_ERR_CORRUPT;
  }
  if (memcmp(p, MAGIC, 8) != 0) {
    bk_errmsg_set(why, "not a brook checkpoint (bad magic)");
    return BROOK_ERR_CORRUPT;
  }
  if (bk_crc32c(0, p, 16) != rd32(p + 16)) {
    bk_errmsg_set(why, "checkpoint header: checksum mismatch");
    return BROOK_ERR_CORRUPT;
  }
  if (rd32(p + 8) != BK_CKPT_VERSION) {
    bk_errmsg_set(why, "checkpoint format version %u; this brook reads version %d",
                  (unsigned)rd32(p + 8), BK_CKPT_VERSION);
    return BROOK_ERR_CORRUPT;
  }
  if (rd32(p + 12) != what) {
    bk_errmsg_set(why, "checkpoint holds %s, not %s",
                  rd32(p + 12) == BK_CKPT_TASK ? "a task snapshot" : "a driver checkpoint",
                  what == BK_CKPT_TASK ? "a task snapshot" : "a driver checkpoint");
    return BROOK_ERR_CORRUPT;
  }
  bk_ckpt_sec_t *secs = NULL;
  size_t n = 0, cap = 0, pos = FILE_HEADER;
  brook_err_t err = BROOK_ERR_CORRUPT;
  char where[400];
  for (;;) {
    bk_ckpt_sec_t s = {.index = n + 1};
    if (len - pos < SEC_HEADER) {
      bk_errmsg_set(why, "checkpoint truncated at section %zu: %s", s.index,
                    len == pos ? "no END section" : "its header is cut short");
      goto fail;
    }
    const unsigned char *h = p + pos;
    s.kind = rd32(h);
    s.task = (int32_t)rd32(h + 4);
    s.node_len = (size_t)(h[8] | h[9] << 8);
    s.store_len = (size_t)(h[10] | h[11] << 8);
    uint64_t plen = rd64(h + 12);
    size_t left = len - pos - SEC_HEADER;
    if (s.node_len + s.store_len > left || plen > left - s.node_len - s.store_len ||
        left - s.node_len - s.store_len - plen < 4) {
      bk_errmsg_set(why, "checkpoint truncated in section %zu: it needs %llu bytes, %zu left",
                    s.index, (unsigned long long)(s.node_len + s.store_len + plen + 4), left);
      goto fail;
    }
    s.node = (const char *)h + SEC_HEADER;
    s.store = s.node + s.node_len;
    s.payload = (const unsigned char *)s.store + s.store_len;
    s.len = (size_t)plen;
    size_t size = SEC_HEADER + s.node_len + s.store_len + s.len;
    if (bk_crc32c(0, h, size) != rd32(h + size)) {
      bk_errmsg_set(why, "checkpoint %s: checksum mismatch",
                    bk_ckpt_where(&s, where, sizeof(where)));
      goto fail;
    }
    if (s.kind < BK_SEC_CLOCK || s.kind > BK_SEC_END) {
      bk_errmsg_set(why, "checkpoint section %zu: unknown kind %u", s.index, (unsigned)s.kind);
      goto fail;
    }
    if (s.kind == BK_SEC_END) {
      if (s.len != END_PAYLOAD || rd64(s.payload) != n ||
          rd32(s.payload + 8) != bk_crc32c(0, p, pos)) {
        bk_errmsg_set(why, "checkpoint END section: %s",
                      s.len != END_PAYLOAD || rd64(s.payload) != n
                          ? "section count does not match"
                          : "checksum of the whole checkpoint mismatch");
        goto fail;
      }
      if (pos + size + 4 != len) {
        bk_errmsg_set(why, "checkpoint: %zu bytes after its END section", len - pos - size - 4);
        goto fail;
      }
      break;
    }
    if (bk_grow(a, (void **)&secs, &cap, n + 1, sizeof(*secs))) {
      err = BROOK_ERR_NOMEM;
      bk_errmsg_set(why, "checkpoint: out of memory");
      goto fail;
    }
    secs[n++] = s;
    pos += size + 4;
  }
  *out = secs;
  *n_out = n;
  return BROOK_OK;
fail:
  bk_free(a, secs);
  return err;
}

static int name_is(const char *s, size_t len, const char *name) {
  return name && strlen(name) == len && memcmp(s, name, len) == 0;
}

int bk_ckpt_node_is(const bk_ckpt_sec_t *s, const char *name) {
  return name_is(s->node, s->node_len, name);
}

int bk_ckpt_store_is(const bk_ckpt_sec_t *s, const char *name) {
  return name_is(s->store, s->store_len, name);
}

const unsigned char *bk_ckpt_get(bk_ckpt_in_t *in, size_t n) {
  if (in->bad || in->len - in->pos < n) {
    in->bad = 1;
    return NULL;
  }
  const unsigned char *r = in->p + in->pos;
  in->pos += n;
  return r;
}

uint8_t bk_ckpt_get_u8(bk_ckpt_in_t *in) {
  const unsigned char *b = bk_ckpt_get(in, 1);
  return b ? b[0] : 0;
}

uint32_t bk_ckpt_get_u32(bk_ckpt_in_t *in) {
  const unsigned char *b = bk_ckpt_get(in, 4);
  return b ? rd32(b) : 0;
}

int64_t bk_ckpt_get_i64(bk_ckpt_in_t *in) {
  const unsigned char *b = bk_ckpt_get(in, 8);
  return b ? (int64_t)rd64(b) : 0;
}

/* ---- operator instances ---- */

static const char *node_type(const bk_node_t *n) {
  switch (n->kind) {
  case BK_NODE_SOURCE:
    return n->source_type->kind;
  case BK_NODE_ERRORS:
    return "errors";
  case BK_NODE_OPERATOR:
    break;
  }
  return n->op.type_name ? n->op.type_name : "operator";
}

static int has_timers(const brook_ctx_t *c) {
  return c->timers[0] || c->timers[1] || c->timer_state;
}

void bk_ckpt_write_inst(bk_ckpt_writer_t *w, brook_ctx_t *c) {
  const char *name = c->node->name, *type = node_type(c->node);
  bk_ckpt_section(w, BK_SEC_NODE, c->task, name, NULL);
  bk_ckpt_put_u32(w, (uint32_t)strlen(type));
  bk_ckpt_put(w, type, strlen(type));
  bk_ckpt_put_i64(w, c->wm);
  bk_ckpt_put_u32(w, (uint32_t)c->wm_idle);
  bk_ckpt_put_u32(w, (uint32_t)c->n_stores);
  bk_ckpt_put_u8(w, (uint8_t)has_timers(c));
  bk_ckpt_section_end(w);
  for (size_t k = 0; k < c->n_stores && !w->err; k++) {
    bk_ckpt_section(w, BK_SEC_STORE, c->task, name, bk_store_name(c->stores[k]));
    brook_err_t err = brook_store_snapshot(c->stores[k], bk_ckpt_put_fn, w);
    if (err < 0 && !w->err)
      w->err = err;
    bk_ckpt_section_end(w);
  }
  if (has_timers(c) && !w->err) {
    bk_ckpt_section(w, BK_SEC_TIMERS, c->task, name, BK_TIMER_STORE_NAME);
    brook_err_t err = bk_timers_snapshot(c, bk_ckpt_put_fn, w);
    if (err < 0 && !w->err)
      w->err = err;
    bk_ckpt_section_end(w);
  }
}

static int sec_of(const bk_ckpt_sec_t *s, const brook_ctx_t *c, uint32_t kind) {
  return s->kind == kind && s->task == c->task && bk_ckpt_node_is(s, c->node->name);
}

brook_err_t bk_ckpt_check_inst(const brook_ctx_t *c, const bk_ckpt_sec_t *secs, size_t n,
                               bk_errmsg_t *why) {
  const bk_ckpt_sec_t *node = NULL;
  size_t stores = 0, timers = 0;
  char where[400];
  for (size_t i = 0; i < n; i++) {
    if (sec_of(&secs[i], c, BK_SEC_NODE)) {
      if (node) {
        bk_errmsg_set(why, "checkpoint %s: a second section for this instance",
                      bk_ckpt_where(&secs[i], where, sizeof(where)));
        return BROOK_ERR_CORRUPT;
      }
      node = &secs[i];
    }
    stores += sec_of(&secs[i], c, BK_SEC_STORE);
    timers += sec_of(&secs[i], c, BK_SEC_TIMERS);
  }
  if (!node) {
    if (c->task >= 0)
      bk_errmsg_set(why, "node '%s' (task %d) of this topology is not in the checkpoint",
                    c->node->name, (int)c->task);
    else
      bk_errmsg_set(why,
                    "node '%s' of this topology is not in the checkpoint (a node added "
                    "or renamed since it was taken?)",
                    c->node->name);
    return BROOK_ERR_CORRUPT;
  }
  bk_ckpt_in_t in = bk_ckpt_in(node);
  uint32_t tl = bk_ckpt_get_u32(&in);
  const unsigned char *type = bk_ckpt_get(&in, tl);
  (void)bk_ckpt_get_i64(&in);
  (void)bk_ckpt_get_u32(&in);
  uint32_t n_stores = bk_ckpt_get_u32(&in);
  uint8_t with_timers = bk_ckpt_get_u8(&in);
  const char *want = node_type(c->node);
  if (in.bad || in.pos != in.len) {
    bk_errmsg_set(why, "checkpoint %s: malformed", bk_ckpt_where(node, where, sizeof(where)));
    return BROOK_ERR_CORRUPT;
  }
  if (!name_is((const char *)type, tl, want)) {
    bk_errmsg_set(why, "checkpoint %s: it is a '%.*s' node, this topology's is a '%s'",
                  bk_ckpt_where(node, where, sizeof(where)), (int)tl, (const char *)type, want);
    return BROOK_ERR_CORRUPT;
  }
  if (n_stores != stores || with_timers != timers || timers > 1) {
    bk_errmsg_set(why,
                  "checkpoint %s: it lists %u store(s) and %u timer section(s), %zu and %zu "
                  "follow",
                  bk_ckpt_where(node, where, sizeof(where)), (unsigned)n_stores,
                  (unsigned)with_timers, stores, timers);
    return BROOK_ERR_CORRUPT;
  }
  /* The operator opened its stores in open(): the same names, one section each. */
  for (size_t k = 0; k < c->n_stores; k++) {
    size_t found = 0;
    for (size_t i = 0; i < n; i++)
      found += sec_of(&secs[i], c, BK_SEC_STORE) &&
               bk_ckpt_store_is(&secs[i], bk_store_name(c->stores[k]));
    if (found != 1) {
      bk_errmsg_set(why, "store '%s' of node '%s'%s has %zu sections in the checkpoint",
                    bk_store_name(c->stores[k]), c->node->name, c->task >= 0 ? " (a task's)" : "",
                    found);
      return BROOK_ERR_CORRUPT;
    }
  }
  if (stores != c->n_stores) {
    bk_errmsg_set(why, "node '%s': the checkpoint has %zu store(s), the operator opened %zu",
                  c->node->name, stores, c->n_stores);
    return BROOK_ERR_CORRUPT;
  }
  return BROOK_OK;
}

brook_err_t bk_ckpt_apply_inst(brook_ctx_t *c, const bk_ckpt_sec_t *secs, size_t n,
                               bk_errmsg_t *why) {
  char where[400];
  for (size_t i = 0; i < n; i++) {
    const bk_ckpt_sec_t *s = &secs[i];
    brook_err_t err = BROOK_OK;
    if (sec_of(s, c, BK_SEC_NODE)) {
      bk_ckpt_in_t in = bk_ckpt_in(s);
      (void)bk_ckpt_get(&in, bk_ckpt_get_u32(&in));
      c->wm = bk_ckpt_get_i64(&in);
      c->wm_idle = (int)bk_ckpt_get_u32(&in);
    } else if (sec_of(s, c, BK_SEC_STORE)) {
      for (size_t k = 0; k < c->n_stores; k++)
        if (bk_ckpt_store_is(s, bk_store_name(c->stores[k])))
          err = brook_store_restore(c->stores[k], s->payload, s->len);
    } else if (sec_of(s, c, BK_SEC_TIMERS)) {
      err = bk_timers_restore(c, s->payload, s->len);
    }
    if (err < 0) {
      bk_errmsg_set(why, "checkpoint %s: %s", bk_ckpt_where(s, where, sizeof(where)),
                    err == BROOK_ERR_CORRUPT
                        ? "the store snapshot does not fit the store (malformed, or a value size "
                          "other than the operator's)"
                        : brook_strerror(err));
      return err;
    }
  }
  return BROOK_OK;
}

void bk_ckpt_reset_inst(brook_ctx_t *c) {
  for (size_t k = 0; k < c->n_stores; k++)
    (void)bk_store_empty(c->stores[k]);
  bk_time_free_ctx(c->rt, c);
  c->wm = BROOK_TIME_MIN;
  c->wm_idle = 0;
}

/* ---- tasks ---- */

brook_err_t bk_task_snapshot(brook_runtime_t *rt, bk_task_t *t, brook_write_fn write,
                             void *opaque) {
  bk_ckpt_writer_t w;
  bk_ckpt_writer_init(&w, &rt->alloc, write, opaque, BK_CKPT_TASK);
  for (size_t i = 0; i < rt->plan.n && !w.err; i++)
    if (rt->per_task[i] && t->insts[i].node)
      bk_ckpt_write_inst(&w, &t->insts[i]);
  return bk_ckpt_finish(&w);
}

size_t bk_ckpt_node_pos(const brook_runtime_t *rt, const bk_ckpt_sec_t *s) {
  for (size_t i = 0; i < rt->plan.n; i++)
    if (bk_ckpt_node_is(s, rt->w0->insts[i].node->name))
      return i;
  return SIZE_MAX;
}

brook_err_t bk_task_restore(brook_runtime_t *rt, bk_task_t *t, const void *data, size_t len,
                            bk_errmsg_t *why) {
  bk_ckpt_sec_t *secs;
  size_t n;
  brook_err_t err = bk_ckpt_parse(&rt->alloc, data, len, BK_CKPT_TASK, &secs, &n, why);
  if (err < 0)
    return err;
  char where[400];
  for (size_t i = 0; i < n && err >= 0; i++) {
    size_t pos = bk_ckpt_node_pos(rt, &secs[i]);
    if (secs[i].task != t->id || secs[i].kind < BK_SEC_NODE || secs[i].kind > BK_SEC_TIMERS) {
      bk_errmsg_set(why, "task %d's snapshot: %s does not belong in it", (int)t->id,
                    bk_ckpt_where(&secs[i], where, sizeof(where)));
      err = BROOK_ERR_CORRUPT;
    } else if (pos == SIZE_MAX || !rt->per_task[pos]) {
      bk_errmsg_set(why, "task %d's snapshot: %s: this topology has no such per-task node",
                    (int)t->id, bk_ckpt_where(&secs[i], where, sizeof(where)));
      err = BROOK_ERR_CORRUPT;
    }
  }
  for (size_t i = 0; i < rt->plan.n && err >= 0; i++)
    if (rt->per_task[i] && t->insts[i].node)
      err = bk_ckpt_check_inst(&t->insts[i], secs, n, why);
  for (size_t i = 0; i < rt->plan.n && err >= 0; i++)
    if (rt->per_task[i] && t->insts[i].node)
      err = bk_ckpt_apply_inst(&t->insts[i], secs, n, why);
  if (err < 0)
    for (size_t i = 0; i < rt->plan.n; i++)
      if (rt->per_task[i] && t->insts[i].node)
        bk_ckpt_reset_inst(&t->insts[i]);
  bk_free(&rt->alloc, secs);
  return err;
}
