/* brook error codes. Every function that can fail returns a brook_err_t; BROOK_OK is 0 and
 * errors are negative, so user callbacks may return any negative value of their own.
 * brook_err_t is a plain int, not the enum of the named codes: a value outside an enum's
 * constants (a user's code, a code a newer brook adds) is undefined behaviour for C++ and
 * Rust bindings, and an int carries any of them. */
#ifndef BROOK_ERROR_H
#define BROOK_ERROR_H

#include <brook/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int brook_err_t;

enum brook_err_code {
  BROOK_OK = 0,
  BROOK_DONE = 1,             /* not an error: a source has no more records */
  BROOK_ERR_NOMEM = -1,       /* an allocation failed */
  BROOK_ERR_INVALID_ARG = -2, /* a NULL or out-of-range argument, a struct_size or table
                                 version this library does not know */
  BROOK_ERR_CYCLE = -3,       /* the topology contains a cycle */
  BROOK_ERR_DANGLING = -4,    /* a stream nothing consumes, or an operator with no input */
  BROOK_ERR_FROZEN = -5,      /* the topology is in use by a runtime and cannot change */
  BROOK_ERR_STATE = -6,       /* the object is in the wrong state for this call */
  BROOK_ERR_NOT_FOUND = -7,   /* no object of that name */
  BROOK_ERR_FULL = -8,        /* no credit: the push queue is full, retry later */
  BROOK_ERR_STOPPED = -9,     /* the runtime stopped or the source ended */
  BROOK_ERR_IO = -10,         /* a read or write failed (the message names the file) */
  BROOK_ERR_USER = -11,       /* a user callback failed; callbacks may return this */
  BROOK_ERR_TOO_LARGE = -12,  /* a record exceeds a configured limit */
  BROOK_ERR_TIMEOUT = -13,    /* a wait ran out of time */
  BROOK_ERR_LOOP = -14,       /* the event loop (libuv) reported an error */
  BROOK_ERR_BUILD = -15,      /* an earlier topology-building call failed */
  BROOK_ERR_DUPLICATE = -16,  /* a name is already taken */
  BROOK_ERR_CORRUPT = -17,    /* stored or serialised data is malformed (bad snapshot, ...) */
  BROOK_ERR_KAFKA = -18       /* the Kafka client or brokers refused (the message says why) */
};

/* A short static description of an error code, e.g. "out of memory". Unknown negative codes
 * (user-defined) give "user-defined error". Never NULL. Any thread. */
BROOK_API const char *brook_strerror(int err);

/* The code's symbolic name, e.g. "BROOK_ERR_NOMEM". Never NULL. Any thread. */
BROOK_API const char *brook_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
