/* The keys changed since the last commit (changelog_keyset.h). */
#include "kafka/changelog_keyset.h"

#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"

void bk_cl_keyset_init(bk_cl_keyset_t *s, const brook_allocator_t *alloc) {
  memset(s, 0, sizeof(*s));
  s->alloc = alloc;
}

static void place(bk_cl_keyset_t *s, uint32_t idx) {
  size_t mask = s->n_slots - 1;
  for (size_t i = (size_t)s->v[idx].hash & mask;; i = (i + 1) & mask) {
    if (!s->slots[i]) {
      s->slots[i] = idx + 1;
      return;
    }
  }
}

static brook_err_t grow_slots(bk_cl_keyset_t *s) {
  size_t n = s->n_slots ? s->n_slots * 2 : 64;
  uint32_t *slots = bk_calloc(s->alloc, n, sizeof(*slots));
  if (!slots)
    return BROOK_ERR_NOMEM;
  bk_free(s->alloc, s->slots);
  s->slots = slots;
  s->n_slots = n;
  for (size_t i = 0; i < s->n; i++)
    place(s, (uint32_t)i);
  return BROOK_OK;
}

brook_err_t bk_cl_keyset_add(bk_cl_keyset_t *s, const void *key, size_t len) {
  uint64_t h = bk_hash_bytes(key, len);
  if (s->n_slots) {
    size_t mask = s->n_slots - 1;
    for (size_t i = (size_t)h & mask; s->slots[i]; i = (i + 1) & mask) {
      const bk_cl_keyset_entry_t *e = &s->v[s->slots[i] - 1];
      if (e->hash == h && e->len == len && memcmp(s->bytes + e->off, key, len) == 0)
        return BROOK_OK;
    }
  }
  if ((s->n + 1) * 2 > s->n_slots && (s->n >= UINT32_MAX - 1 || grow_slots(s)))
    return BROOK_ERR_NOMEM;
  if (bk_grow(s->alloc, (void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v)))
    return BROOK_ERR_NOMEM;
  if (len && bk_grow(s->alloc, (void **)&s->bytes, &s->cap_bytes, s->n_bytes + len, 1))
    return BROOK_ERR_NOMEM;
  if (len)
    memcpy(s->bytes + s->n_bytes, key, len);
  s->v[s->n] = (bk_cl_keyset_entry_t){s->n_bytes, len, h};
  s->n_bytes += len;
  place(s, (uint32_t)s->n);
  s->n++;
  return BROOK_OK;
}

void bk_cl_keyset_reset(bk_cl_keyset_t *s) {
  if (s->n_slots > 4096 && s->n * 16 < s->n_slots) { /* a burst is over: give memory back */
    bk_free(s->alloc, s->slots);
    s->slots = NULL;
    s->n_slots = 0;
  } else if (s->n) {
    memset(s->slots, 0, s->n_slots * sizeof(*s->slots));
  }
  s->n = 0;
  s->n_bytes = 0;
}

void bk_cl_keyset_free(bk_cl_keyset_t *s) {
  bk_free(s->alloc, s->bytes);
  bk_free(s->alloc, s->v);
  bk_free(s->alloc, s->slots);
  memset(s, 0, sizeof(*s));
}
