/* brook version: compile-time numbers and the version of the linked library. */
#ifndef BROOK_VERSION_H
#define BROOK_VERSION_H

#include <brook/export.h>

#define BROOK_VERSION_MAJOR 0
#define BROOK_VERSION_MINOR 1
#define BROOK_VERSION_PATCH 0
#define BROOK_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually linked, e.g. "0.1.0". Static string; any thread. */
BROOK_API const char *brook_version(void);

/* (MAJOR << 16) | (MINOR << 8) | PATCH of the linked library. Any thread. */
BROOK_API unsigned brook_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
