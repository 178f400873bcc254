/* The in-memory hash store, brook's default backend: the hash table, its entries and the
 * dirty set of in-place changes. store_api.c checks arguments and calls in here for a store
 * with no backend table. See store.h for the layout and the deletion scheme. */
#include "state/store.h"

#include <brook/store_backend.h>

#include <assert.h>
#include <string.h>

#include "core/alloc.h"

#define MIN_CAP 16   /* smallest table */
#define KEEP_CAP 256 /* an empty table up to this size is kept rather than freed */
#define TOMB_HASH 1  /* any non-zero hash marks a tombstone */

/* ---- sizing ---- */

/* The smallest table (a power of two >= MIN_CAP) holding `n` entries at load <= 1/2, so that
 * a quarter of the table is inserted before the next resize. 0 if it would overflow. */
static size_t cap_for(size_t n) {
  size_t c = MIN_CAP;
  while (c / 2 < n) {
    if (c > SIZE_MAX / 2 / sizeof(bk_slot_t))
      return 0;
    c *= 2;
  }
  return c;
}

/* ---- the table ---- */

/* As lookup; on a miss *ins is where the key would go (the first tombstone or the empty slot
 * ending the probe), or SIZE_MAX if there is no table. */
static inline bk_slot_t *lookup_ins(const brook_store_t *s, const void *key, size_t klen,
                                    uint64_t h, size_t *ins) {
  *ins = SIZE_MAX;
  if (!s->cap)
    return NULL;
  size_t mask = s->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    bk_slot_t *sl = &s->slots[i];
    if (sl->e) {
      if (sl->hash == h && bk_store_key_eq(sl->e, key, klen))
        return sl;
    } else if (!sl->hash) {
      if (*ins == SIZE_MAX)
        *ins = i;
      return NULL;
    } else if (*ins == SIZE_MAX) {
      *ins = i;
    }
  }
}

/* The first empty slot on h's probe path; the table must have no tombstones on it. */
static size_t empty_slot(const brook_store_t *s, uint64_t h) {
  size_t mask = s->cap - 1, i = h & mask;
  while (s->slots[i].e)
    i = (i + 1) & mask;
  return i;
}

/* Rebuilds the table with `ncap` slots, dropping tombstones. Entries do not move. */
static int table_resize(brook_store_t *s, size_t ncap) {
  assert(ncap >= MIN_CAP && (ncap & (ncap - 1)) == 0 && s->count * 4 < ncap * 3);
  bk_slot_t *ns = bk_calloc(&s->alloc, ncap, sizeof(*ns));
  if (!ns)
    return -1;
  size_t mask = ncap - 1;
  for (size_t i = 0; i < s->cap; i++) {
    if (!s->slots[i].e)
      continue;
    size_t j = s->slots[i].hash & mask;
    while (ns[j].e)
      j = (j + 1) & mask;
    ns[j] = s->slots[i];
  }
  bk_free(&s->alloc, s->slots);
  s->slots = ns;
  s->cap = ncap;
  s->tombs = 0;
  return 0;
}

/* Frees the table of a store that has just become empty, and the slab chunks it kept for
 * reuse: the store was big, so this is the end of a burst. */
static void table_release(brook_store_t *s) {
  assert(s->count == 0);
  bk_free(&s->alloc, s->slots);
  s->slots = NULL;
  s->cap = 0;
  s->tombs = 0;
  bk_slab_trim(&s->slab);
}

/* Makes room for one new key whose probe ended at *ins, resizing the table when it is too
 * full (counting tombstones) or (with may_shrink) very sparse; *ins is recomputed after a
 * resize. */
static int table_make_room(brook_store_t *s, uint64_t h, size_t *ins, int may_shrink) {
  size_t need = s->count + 1;
  if (!s->cap || (!s->slots[*ins].hash && (s->count + s->tombs + 1) * 4 > s->cap * 3)) {
    size_t ncap = cap_for(need);
    if (!ncap || table_resize(s, ncap > s->min_cap ? ncap : s->min_cap))
      return -1;
  } else if (may_shrink && s->cap > s->min_cap && need * 8 < s->cap) {
    /* Very sparse after deletions: shrink, so memory comes back after a burst. Optional,
     * so a failed allocation is no error. */
    size_t ncap = cap_for(need);
    if (ncap < s->min_cap)
      ncap = s->min_cap;
    if (ncap >= s->cap || table_resize(s, ncap))
      return 0;
  } else {
    return 0;
  }
  *ins = empty_slot(s, h);
  return 0;
}

/* Turns slot i (just emptied of its entry) into a tombstone, or into an empty slot when no
 * probe can pass through it (the next slot is empty); then tombstones right before an
 * empty slot are useless and become empty too. Nothing moves, so iterations are safe. */
static void slot_vacate(brook_store_t *s, size_t i) {
  size_t mask = s->cap - 1;
  bk_slot_t *next = &s->slots[(i + 1) & mask];
  s->slots[i].e = NULL;
  if (next->e || next->hash) {
    s->slots[i].hash = TOMB_HASH;
    s->tombs++;
    return;
  }
  s->slots[i].hash = 0;
  for (size_t j = (i - 1) & mask; !s->slots[j].e && s->slots[j].hash; j = (j - 1) & mask) {
    s->slots[j].hash = 0;
    s->tombs--;
  }
}

/* ---- entries ---- */

/* A new entry holding a copy of key, with room for vlen value bytes, placed in the table.
 * The value bytes are left for the caller. NOMEM leaves the store's content unchanged.
 * may_shrink is 0 while a reserved table is being filled. */
static brook_err_t entry_insert(brook_store_t *s, size_t ins, uint64_t h, const void *key,
                                size_t klen, size_t vlen, int may_shrink, bk_entry_t **out) {
  if (table_make_room(s, h, &ins, may_shrink))
    return BROOK_ERR_NOMEM;
  bk_entry_t *e = bk_entry_alloc(&s->slab, key, klen, vlen);
  if (!e)
    return BROOK_ERR_NOMEM;
  bk_slot_t *sl = &s->slots[ins];
  if (sl->hash) /* a tombstone (empty slots have hash 0) */
    s->tombs--;
  sl->hash = h;
  sl->e = e;
  s->count++;
  *out = e;
  return BROOK_OK;
}

static void entry_free(brook_store_t *s, bk_entry_t *e) { bk_slab_free(&s->slab, e, e->ref); }

static brook_err_t report(const brook_store_t *s, const bk_entry_t *e, int deleted) {
  if (!s->listener)
    return BROOK_OK;
  return s->listener(bk_entry_key(e), e->klen, deleted ? NULL : bk_entry_value(e),
                     deleted ? 0 : e->vlen, s->listener_opaque);
}

/* ---- the dirty set (dirty_set.h) ---- */

static int dirty_reserve(brook_store_t *s) { return bk_dirty_reserve(&s->dirty, &s->alloc); }
static void dirty_add(brook_store_t *s, bk_entry_t *e) { bk_dirty_add(&s->dirty, e); }
static void dirty_remove(brook_store_t *s, bk_entry_t *e) { bk_dirty_remove(&s->dirty, e); }
static void dirty_reset(brook_store_t *s) { bk_dirty_reset(&s->dirty, &s->alloc, s->count); }

/* ---- set-up ---- */

brook_err_t bk_hash_init(brook_store_t *s, size_t expected_entries) {
  size_t min_cap = cap_for(expected_entries);
  if (!min_cap)
    return BROOK_ERR_NOMEM;
  s->min_cap = min_cap;
  bk_slab_init(&s->slab, &s->alloc);
  if (expected_entries) {
    if (!(s->slots = bk_calloc(&s->alloc, min_cap, sizeof(bk_slot_t))))
      return BROOK_ERR_NOMEM;
    s->cap = min_cap;
  }
  return BROOK_OK;
}

void bk_hash_fini(brook_store_t *s) {
  bk_slab_destroy(&s->slab);
  bk_free(&s->alloc, s->slots);
  bk_dirty_fini(&s->dirty, &s->alloc);
  s->slots = NULL;
  s->cap = s->count = s->tombs = 0;
}

/* ---- the hot path ---- */

/* Arguments checked by bk_store_upsert_slow (store_api.c). */
brook_err_t bk_hash_upsert_slow(brook_store_t *s, const void *key, size_t klen, uint64_t hash,
                                void **value, int *created) {
  bk_slot_t *sl = bk_store_lookup(s, key, klen, hash);
  if (sl) {
    bk_entry_t *e = sl->e;
    if (s->listener && !e->dirty) {
      if (dirty_reserve(s))
        return BROOK_ERR_NOMEM;
      dirty_add(s, e);
    }
    *value = bk_entry_value(e);
    return BROOK_OK;
  }
  size_t ins;
  (void)lookup_ins(s, key, klen, hash, &ins);
  if (s->listener && dirty_reserve(s))
    return BROOK_ERR_NOMEM;
  bk_entry_t *e;
  brook_err_t err = entry_insert(s, ins, hash, key, klen, s->value_size, 1, &e);
  if (err)
    return err;
  memset(bk_entry_value(e), 0, s->value_size);
  if (s->listener)
    dirty_add(s, e);
  *value = bk_entry_value(e);
  if (created)
    *created = 1;
  return BROOK_OK;
}

brook_err_t bk_hash_remove(brook_store_t *s, const void *key, size_t klen, uint64_t hash) {
  bk_slot_t *sl = bk_store_lookup(s, key, klen, hash);
  if (!sl)
    return BROOK_ERR_NOT_FOUND;
  bk_entry_t *e = sl->e;
  slot_vacate(s, (size_t)(sl - s->slots));
  s->count--;
  if (e->dirty)
    dirty_remove(s, e);
  brook_err_t err = report(s, e, 1);
  entry_free(s, e);
  if (!s->count && s->cap > s->min_cap && s->cap > KEEP_CAP)
    table_release(s);
  return err;
}

/* ---- the calls store_api.c makes for a hash store (arguments checked there) ---- */

brook_err_t bk_hash_put(brook_store_t *s, const void *key, size_t key_len, const void *value,
                        size_t value_len) {
  uint64_t h = bk_hash_bytes(key, key_len);
  size_t ins;
  bk_slot_t *sl = lookup_ins(s, key, key_len, h, &ins);
  bk_entry_t *e;
  if (!sl) {
    brook_err_t err = entry_insert(s, ins, h, key, key_len, value_len, 1, &e);
    if (err)
      return err;
    if (value_len)
      memcpy(bk_entry_value(e), value, value_len);
    return report(s, e, 0);
  }
  e = sl->e;
  size_t old_size = bk_entry_size(e->klen, e->vlen), new_size = bk_entry_size(key_len, value_len);
  if (bk_slab_block_size(old_size) != bk_slab_block_size(new_size)) {
    /* A block of another size: build the new entry before touching the old one, so NOMEM
     * leaves the old value (and `value` may point into it). */
    uint32_t ref;
    bk_entry_t *n = bk_slab_alloc(&s->slab, new_size, &ref);
    if (!n)
      return BROOK_ERR_NOMEM;
    n->klen = e->klen;
    n->vlen = (uint32_t)value_len;
    n->dirty = 0;
    n->ref = ref;
    if (key_len)
      memcpy(bk_entry_key(n), bk_entry_key(e), key_len);
    if (value_len)
      memcpy(bk_entry_value(n), value, value_len);
    sl->e = n;
    if (e->dirty)
      dirty_remove(s, e);
    entry_free(s, e);
    e = n;
  } else {
    if (value_len)
      memmove(bk_entry_value(e), value, value_len);
    e->vlen = (uint32_t)value_len;
    if (e->dirty)
      dirty_remove(s, e);
  }
  return report(s, e, 0);
}

size_t bk_hash_memory(const brook_store_t *s) {
  return s->cap * sizeof(bk_slot_t) + bk_dirty_bytes(&s->dirty) + bk_slab_bytes(&s->slab);
}

/* The cursor is the index of the next slot to look at. Deletions never move entries (see
 * slot_vacate), so deleting the entry just returned leaves every other one in place. */
int bk_hash_next(const brook_store_t *s, size_t *cursor, const void **key, size_t *key_len,
                 const void **value, size_t *value_len) {
  for (size_t i = *cursor; i < s->cap; i++) {
    const bk_entry_t *e = s->slots[i].e;
    if (!e)
      continue;
    *cursor = i + 1;
    if (key)
      *key = bk_entry_key(e);
    if (key_len)
      *key_len = e->klen;
    if (value)
      *value = bk_entry_value(e);
    if (value_len)
      *value_len = e->vlen;
    return 1;
  }
  *cursor = SIZE_MAX;
  return 0;
}

void bk_hash_reset(brook_store_t *s, int report_deletions) {
  dirty_reset(s);
  /* Entries become tombstones one by one, so the table stays consistent while the listener
   * runs; the table is emptied in one go at the end. */
  for (size_t i = 0; i < s->cap; i++) {
    bk_entry_t *e = s->slots[i].e;
    if (!e)
      continue;
    s->slots[i].e = NULL;
    s->slots[i].hash = TOMB_HASH;
    s->tombs++;
    s->count--;
    if (report_deletions)
      (void)report(s, e, 1); /* clear() has no way to return it */
    entry_free(s, e);
  }
  if (s->count || !s->cap)
    return; /* a misbehaving listener inserted: keep what it did consistent */
  if (s->cap > s->min_cap && s->cap > KEEP_CAP) {
    table_release(s);
  } else {
    memset(s->slots, 0, s->cap * sizeof(bk_slot_t));
    s->tombs = 0;
  }
}

void bk_hash_listener_changed(brook_store_t *s) {
  if (!s->listener)
    dirty_reset(s); /* nobody to report pending changes to */
}

/* Entries are marked only while there is a listener, so it is set whenever any is. */
brook_err_t bk_hash_flush(brook_store_t *s) {
  return bk_dirty_flush(&s->dirty, &s->alloc, s->count, s->listener, s->listener_opaque);
}

/* ---- internal helpers for store_snapshot.c ---- */

brook_err_t bk_hash_reserve(brook_store_t *s, size_t n) {
  if (n < s->count)
    n = s->count;
  if (s->cap && (n + s->tombs) * 4 <= s->cap * 3)
    return BROOK_OK;
  size_t ncap = cap_for(n);
  if (!ncap)
    return BROOK_ERR_NOMEM;
  if (ncap < s->min_cap)
    ncap = s->min_cap;
  return table_resize(s, ncap) ? BROOK_ERR_NOMEM : BROOK_OK;
}

brook_err_t bk_hash_insert_new(brook_store_t *s, const void *key, size_t klen, uint64_t hash,
                               const void *value, size_t vlen) {
  size_t ins;
  if (lookup_ins(s, key, klen, hash, &ins))
    return BROOK_ERR_DUPLICATE;
  bk_entry_t *e;
  brook_err_t err = entry_insert(s, ins, hash, key, klen, vlen, 0, &e);
  if (err)
    return err;
  if (vlen)
    memcpy(bk_entry_value(e), value, vlen);
  return BROOK_OK;
}

int bk_store_check(const brook_store_t *s) {
  if (!s)
    return 0;
  if (s->be) { /* a backend keeps its own invariants; the ordered store's are checkable */
    if (s->cap || s->count || !s->name)
      return 0;
    return s->be != brook_store_backend_ordered() || bk_ordered_check(s->be_state);
  }
  if (!bk_slab_check(&s->slab))
    return 0;
  if (!s->cap)
    return !s->slots && !s->count && !s->tombs;
  if (s->cap < MIN_CAP || (s->cap & (s->cap - 1)) || s->cap < s->min_cap ||
      (s->count + s->tombs) * 4 > s->cap * 3)
    return 0;
  size_t count = 0, tombs = 0, dirty = 0, mask = s->cap - 1;
  for (size_t i = 0; i < s->cap; i++) {
    const bk_slot_t *sl = &s->slots[i];
    if (!sl->e) {
      tombs += sl->hash != 0;
      continue;
    }
    const bk_entry_t *e = sl->e;
    count++;
    if (sl->hash != bk_hash_bytes(bk_entry_key(e), e->klen) ||
        (s->value_size && e->vlen != s->value_size) || (uintptr_t)bk_entry_value(e) % 16)
      return 0;
    /* Reachable from its home slot, and the first match there (so keys are unique). */
    for (size_t j = sl->hash & mask; j != i; j = (j + 1) & mask) {
      const bk_slot_t *p = &s->slots[j];
      if ((!p->e && !p->hash) ||
          (p->e && p->hash == sl->hash && bk_store_key_eq(p->e, bk_entry_key(e), e->klen)))
        return 0;
    }
    if (e->dirty) {
      if (e->dirty > s->dirty.n || s->dirty.v[e->dirty - 1] != e)
        return 0;
      dirty++;
    }
  }
  /* A tombstone right before an empty slot should have been emptied (slot_vacate). */
  for (size_t i = 0; i < s->cap; i++) {
    const bk_slot_t *sl = &s->slots[i], *next = &s->slots[(i + 1) & mask];
    if (!sl->e && sl->hash && !next->e && !next->hash)
      return 0;
  }
  return count == s->count && tombs == s->tombs && dirty == s->dirty.n &&
         s->dirty.n <= s->dirty.cap && (s->listener || !s->dirty.n);
}
