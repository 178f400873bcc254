/* Temporary files for tests: created empty with mkstemp, remembered, and removed by
 * temp_remove_all (use it as a cmocka group teardown so a failed test leaves none); and
 * temporary directories (state on disk), removed with what they hold by temp_dir_free. */
#ifndef BROOK_TEST_TEMPFILES_H
#define BROOK_TEST_TEMPFILES_H

#include <stddef.h>

/* Creates an empty file "$TMPDIR/brook_test_<tag>_XXXXXX" and writes its path to `out`. */
void temp_path(char *out, size_t size, const char *tag);

/* Creates an empty directory "$TMPDIR/brook_test_<tag>_XXXXXX" (a state_dir) and returns its
 * path (malloc'd). Fails the test (cmocka) if it cannot. */
char *temp_dir_new(const char *tag);

/* Removes `dir` and everything under it, then frees the path. Fails the test if it cannot. */
void temp_dir_free(char *dir);

/* Removes every file temp_path created. cmocka setup/teardown signature. */
int temp_remove_all(void **state);

#endif
