/* card_set: a sorted set of card ids. See card_set.h. */
#include "card_set.h"

#include <stdlib.h>
#include <string.h>

/* Compares `id` (len bytes) with the NUL-terminated `other` as bytes, shorter first on a
 * common prefix. */
static int id_cmp(const char *id, size_t len, const char *other) {
  size_t olen = strlen(other);
  int c = memcmp(id, other, len < olen ? len : olen);
  if (c)
    return c;
  return len < olen ? -1 : len > olen;
}

int card_set_add(card_set_t *s, const char *id, size_t len) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) { /* the first position whose id is >= `id` */
    size_t mid = lo + (hi - lo) / 2;
    if (id_cmp(id, len, s->ids[mid]) > 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < s->n && id_cmp(id, len, s->ids[lo]) == 0)
    return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    char **ids = realloc(s->ids, cap * sizeof(*ids));
    if (!ids)
      return -1;
    s->ids = ids;
    s->cap = cap;
  }
  char *copy = malloc(len + 1);
  if (!copy)
    return -1;
  memcpy(copy, id, len);
  copy[len] = '\0';
  memmove(&s->ids[lo + 1], &s->ids[lo], (s->n - lo) * sizeof(*s->ids));
  s->ids[lo] = copy;
  s->n++;
  return 0;
}

int card_set_write(const card_set_t *s, FILE *f) {
  for (size_t i = 0; i < s->n; i++)
    if (fprintf(f, "%s\n", s->ids[i]) < 0)
      return -1;
  return 0;
}

void card_set_free(card_set_t *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->ids[i]);
  free(s->ids);
  *s = (card_set_t){0};
}
