/* The linked library's version. */
#include <brook/version.h>

const char *brook_version(void) { return BROOK_VERSION_STRING; }

unsigned brook_version_number(void) {
  return (BROOK_VERSION_MAJOR << 16) | (BROOK_VERSION_MINOR << 8) | BROOK_VERSION_PATCH;
}
