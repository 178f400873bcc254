/* A fixed-size human-readable error message kept by objects (topology, runtime). */
#ifndef BROOK_CORE_ERRMSG_H
#define BROOK_CORE_ERRMSG_H

#include <stdarg.h>

typedef struct bk_errmsg {
  char text[512];
} bk_errmsg_t;

void bk_errmsg_set(bk_errmsg_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bk_errmsg_vset(bk_errmsg_t *m, const char *fmt, va_list ap);

#endif
