/* The keys of a store changed since the last commit (changelog_tasks.c): a store's change
 * listener adds each changed key once however often it changed, and the commit writes the
 * key's latest value (or a tombstone) to the changelog, then empties the set keeping its
 * memory, so a steady state allocates nothing. Open addressing over an array of entries whose
 * key bytes sit in one growing buffer. Single-threaded. */
#ifndef BROOK_KAFKA_CHANGELOG_KEYSET_H
#define BROOK_KAFKA_CHANGELOG_KEYSET_H

#include <stddef.h>
#include <stdint.h>

#include <brook/alloc.h>
#include <brook/error.h>

typedef struct bk_cl_keyset_entry {
  size_t off, len;
  uint64_t hash;
} bk_cl_keyset_entry_t;

typedef struct bk_cl_keyset {
  const brook_allocator_t *alloc;
  unsigned char *bytes; /* the keys, back to back */
  size_t n_bytes, cap_bytes;
  bk_cl_keyset_entry_t *v; /* in the order first added */
  size_t n, cap;
  uint32_t *slots; /* 1 + entry index, 0: empty; a power of two, at most half full */
  size_t n_slots;
} bk_cl_keyset_t;

void bk_cl_keyset_init(bk_cl_keyset_t *s, const brook_allocator_t *alloc);
/* Adds the key unless present. BROOK_OK or BROOK_ERR_NOMEM (unchanged). */
brook_err_t bk_cl_keyset_add(bk_cl_keyset_t *s, const void *key, size_t len);
/* The i-th key (i < s->n), a view valid until the next add or reset. */
static inline const void *bk_cl_keyset_key(const bk_cl_keyset_t *s, size_t i, size_t *len) {
  *len = s->v[i].len;
  return s->bytes + s->v[i].off;
}
/* Empties it, keeping its memory (a set grown far beyond its use is shrunk). */
void bk_cl_keyset_reset(bk_cl_keyset_t *s);
void bk_cl_keyset_free(bk_cl_keyset_t *s);

#endif
