/* Per-key slice rings of a window operator. See window_keys.h. Loop thread. */
#include "ops/window_keys.h"

#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"

brook_err_t bk_wkeys_open(bk_wkeys_t *ks, bk_wstore_t *ws, const brook_allocator_t *a) {
  memset(ks, 0, sizeof(*ks));
  ks->alloc = a;
  ks->ws = ws;
  ks->rc = ws->rc;
  if (!(ks->tmp = bk_calloc(a, 3, ks->rc.aw)))
    return BROOK_ERR_NOMEM;
  return BROOK_OK;
}

void bk_wkeys_free(bk_wkeys_t *ks) {
  if (!ks->alloc)
    return;
  bk_free(ks->alloc, ks->tmp); /* the rings belong to the window store */
  bk_free(ks->alloc, ks->s_start);
  bk_free(ks->alloc, (void *)ks->s_acc);
  bk_free(ks->alloc, ks->s_sfx);
  memset(ks, 0, sizeof(*ks));
}

size_t bk_wkeys_memory(const bk_wkeys_t *ks) {
  return (ks->alloc ? 3 * ks->rc.aw : 0) +
         ks->s_cap * (sizeof(*ks->s_start) + sizeof(*ks->s_acc) + ks->rc.aw);
}

brook_err_t bk_wkeys_sweep_reserve(bk_wkeys_t *ks, size_t m) {
  if (m <= ks->s_cap)
    return BROOK_OK;
  size_t cap = m < 16 ? 16 : m * 2;
  brook_time_t *st = bk_realloc(ks->alloc, ks->s_start, cap * sizeof(*st));
  if (st)
    ks->s_start = st;
  const void **acc = bk_realloc(ks->alloc, (void *)ks->s_acc, cap * sizeof(*acc));
  if (acc)
    ks->s_acc = acc;
  unsigned char *sfx = bk_realloc(ks->alloc, ks->s_sfx, cap * ks->rc.aw);
  if (sfx)
    ks->s_sfx = sfx;
  if (!st || !acc || !sfx)
    return BROOK_ERR_NOMEM;
  ks->s_cap = cap;
  return BROOK_OK;
}

/* Two stacks over the scratch slices: [lo, fe) have suffixes, [fe, pe) are merged in back. */
const void *bk_wkeys_sweep(bk_wkeys_t *ks, bk_sweep_t *sw, brook_time_t ws, brook_time_t we) {
  const brook_aggregator_t *agg = ks->rc.agg;
  size_t aw = ks->rc.aw, asz = ks->rc.acc_size;
  unsigned char *back = ks->tmp + aw, *both = ks->tmp + 2 * aw;
  for (; sw->pe < sw->m && ks->s_start[sw->pe] < we; sw->pe++) {
    if (sw->pe == sw->fe)
      memcpy(back, ks->s_acc[sw->pe], asz);
    else
      agg->merge(back, ks->s_acc[sw->pe], agg);
  }
  for (; sw->lo < sw->pe && ks->s_start[sw->lo] < ws; sw->lo++) {
    if (sw->lo == sw->fe) { /* the front ran empty: turn the back into suffixes */
      for (size_t i = sw->pe; i-- > sw->lo;) {
        memcpy(ks->s_sfx + i * aw, ks->s_acc[i], asz);
        if (i + 1 < sw->pe)
          agg->merge(ks->s_sfx + i * aw, ks->s_sfx + (i + 1) * aw, agg);
      }
      sw->fe = sw->pe;
    }
  }
  if (sw->lo == sw->pe)
    return NULL;
  if (sw->lo == sw->fe)
    return back;
  const void *front = ks->s_sfx + sw->lo * aw;
  if (sw->fe == sw->pe)
    return front;
  memcpy(both, front, asz);
  agg->merge(both, back, agg);
  return both;
}
