/* card_set: the distinct card ids that raised an alert, kept sorted (a few thousand at most:
 * a sorted array with binary search is plenty). */
#ifndef FRAUD_DETECTION_CARD_SET_H
#define FRAUD_DETECTION_CARD_SET_H

#include <stddef.h>
#include <stdio.h>

typedef struct card_set {
  char **ids; /* sorted (bytewise), each NUL-terminated and owned by the set */
  size_t n, cap;
} card_set_t;

/* Adds a copy of `id` (len bytes) unless it is there already. 0 on success, -1 out of
 * memory. */
int card_set_add(card_set_t *s, const char *id, size_t len);

/* Writes the ids, one per line. 0 on success, -1 on a write error. */
int card_set_write(const card_set_t *s, FILE *f);

void card_set_free(card_set_t *s);

#endif
