/* Temporary files for tests (see tempfiles.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tempfiles.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_TEMPS 64
static char temps[MAX_TEMPS][256];
static int n_temps;

void temp_path(char *out, size_t size, const char *tag) {
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(out, size, "%s/brook_test_%s_XXXXXX", dir, tag);
  int fd = mkstemp(out);
  assert_true(fd >= 0);
  close(fd);
  if (n_temps < MAX_TEMPS)
    snprintf(temps[n_temps++], sizeof(temps[0]), "%s", out);
}

int temp_remove_all(void **state) {
  (void)state;
  for (int i = 0; i < n_temps; i++)
    unlink(temps[i]);
  n_temps = 0;
  return 0;
}

char *temp_dir_new(const char *tag) {
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  size_t size = strlen(dir) + strlen(tag) + 32;
  char *out = malloc(size);
  assert_non_null(out);
  snprintf(out, size, "%s/brook_test_%s_XXXXXX", dir, tag);
  assert_non_null(mkdtemp(out));
  return out;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

void temp_dir_free(char *dir) {
  assert_int_equal(nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
  free(dir);
}
