/* Temporary files for tests: created empty with mkstemp, remembered, and removed by
 * temp_remove_all (use it as a cmocka group teardown so a failed test leaves none). */
#ifndef BROOK_TEST_TEMPFILES_H
#define BROOK_TEST_TEMPFILES_H

#include <stddef.h>

/* Creates an empty file "$TMPDIR/brook_test_<tag>_XXXXXX" and writes its path to `out`. */
void temp_path(char *out, size_t size, const char *tag);

/* Removes every file temp_path created. cmocka setup/teardown signature. */
int temp_remove_all(void **state);

#endif
