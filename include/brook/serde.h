/* Serdes: how bytes at the edge of a pipeline (a Kafka message, a file line, a state
 * changelog) become a record's bytes (deserialize) and back (serialize).
 *
 * A serde is a function table, brook_serde_t, passed by pointer. It starts with a version and
 * only ever grows by appending fields (like the operator and aggregator tables): the library
 * copies a table by the version it says it is and refuses a version it does not know, naming
 * it. Sources and sinks copy the tables they are given when the topology is built (the
 * opaque pointers are borrowed: they must outlive every runtime).
 *
 * Composition: `next` chains serdes, listed from the wire inwards. Deserializing runs the
 * table itself first, then next, then next's next (e.g. UTF-8 validation, then a JSON
 * parser: each stage gets the previous one's output); serializing runs the same chain the
 * other way round (the JSON writer, then the UTF-8 check). A chain has at most
 * BROOK_SERDE_MAX_CHAIN tables (a longer one, or a cycle, is refused).
 *
 * Malformed input: a callback returns a negative code (BROOK_ERR_CORRUPT for input that is
 * not of its format) and says why with brook_serde_fail(failure, field, ...): the field that
 * failed (e.g. "amount", "user.id"; NULL for the whole input) and the reason. The caller (a
 * source, a sink, brook_serde_deserialize) turns it into the record's error message,
 * "value deserialiser 'json', field 'amount': not a number", which then follows that
 * caller's policy for malformed records (a Kafka source's on_malformed: fail, skip, dead
 * letter with the message in brook.error.message).
 *
 * Built-ins (brook_serde_builtin, or the inline constructors below): bytes (as is), utf8
 * (checked UTF-8, both ways), string (UTF-8 text as a C string: read with a NUL after the
 * bytes), int32 / int64 / double (big-endian in the wire, as Kafka's IntegerSerde, LongSerde
 * and DoubleSerde write them; native in the record).
 *
 * Thread: serde callbacks run on the thread of the source or sink that uses them (its loop
 * thread); with several workers, the same table may be used by several at once. */
#ifndef BROOK_SERDE_H
#define BROOK_SERDE_H

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>
#include <brook/export.h>
#include <brook/operator.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of brook_serde_t this header describes. */
#define BROOK_SERDE_VERSION 1

/* The most tables in one chain (a serde and its next, next's next, ...). */
#define BROOK_SERDE_MAX_CHAIN 8

typedef struct brook_serde brook_serde_t;

/* Where a callback reports why its input is malformed (brook_serde_fail). Owned by the
 * caller of the callback, valid for the call. */
typedef struct brook_serde_failure brook_serde_failure_t;

/* Converts in[0..in_len) into *out / *out_len. On entry *out / *out_len are the input, so a
 * stage that only checks (a validator) leaves them. The output may point into `in`, at
 * static memory, or at brook_ctx_alloc(ctx) memory (valid until the batch is done); never at
 * memory the callback frees. Returns BROOK_OK, or a negative code: BROOK_ERR_CORRUPT for
 * malformed input, BROOK_ERR_NOMEM, or the callback's own; say why with brook_serde_fail.
 * Must not keep `in` or `failure`. */
typedef brook_err_t (*brook_serde_fn)(brook_ctx_t *ctx, const void *in, size_t in_len,
                                      const void **out, size_t *out_len,
                                      brook_serde_failure_t *failure, const brook_serde_t *serde);

struct brook_serde {
  uint32_t version;           /* BROOK_SERDE_VERSION */
  const char *name;           /* names the format in messages, e.g. "json" (static string) */
  brook_serde_fn deserialize; /* wire bytes -> record bytes; NULL: cannot read */
  brook_serde_fn serialize;   /* record bytes -> wire bytes; NULL: cannot write */
  void *opaque;               /* the user's, for the callbacks (serde->opaque) */
  const brook_serde_t *next;  /* the next format inwards, or NULL (see composition) */
};

/* Records why the input is malformed: `field` (copied; NULL = the whole input) and a printf
 * message. The last call wins. Call it from a serde callback only. */
BROOK_API void brook_serde_fail(brook_serde_failure_t *failure, const char *field, const char *fmt,
                                ...) __attribute__((format(printf, 3, 4)));

typedef enum brook_serde_format {
  BROOK_SERDE_BYTES = 0,  /* as is, both ways */
  BROOK_SERDE_UTF8 = 1,   /* checked UTF-8 (no overlong forms, surrogates or code points past
                             U+10FFFF), as is; invalid text is malformed both ways */
  BROOK_SERDE_STRING = 2, /* UTF-8 text as a C string: read, checked and copied with a NUL
                             after value_len bytes (not counted; text containing a NUL is
                             malformed); written without a trailing NUL if value_len counts one */
  BROOK_SERDE_INT32 = 3,  /* 4 bytes big-endian <-> a native int32_t */
  BROOK_SERDE_INT64 = 4,  /* 8 bytes big-endian <-> a native int64_t */
  BROOK_SERDE_DOUBLE = 5  /* 8 bytes big-endian IEEE 754 <-> a native double */
} brook_serde_format_t;

/* Fills *serde with the built-in `which` as table version `version` (the
 * BROOK_SERDE_VERSION the caller was compiled with: only that version's fields are written),
 * next = NULL. BROOK_OK, or BROOK_ERR_INVALID_ARG (NULL, an unknown format or version;
 * *serde untouched). Any thread. */
BROOK_API brook_err_t brook_serde_builtin(brook_serde_t *serde, uint32_t version,
                                          brook_serde_format_t which);

/* The built-ins by value (inline: compiled with this program's table layout). Set `next` on
 * the copy to compose: brook_serde_t text = brook_serde_utf8(); text.next = &my_json; */
static inline brook_serde_t brook_serde_of_(brook_serde_format_t which) {
  brook_serde_t s;
  (void)brook_serde_builtin(&s, BROOK_SERDE_VERSION, which);
  return s;
}
static inline brook_serde_t brook_serde_bytes(void) { return brook_serde_of_(BROOK_SERDE_BYTES); }
static inline brook_serde_t brook_serde_utf8(void) { return brook_serde_of_(BROOK_SERDE_UTF8); }
static inline brook_serde_t brook_serde_string(void) { return brook_serde_of_(BROOK_SERDE_STRING); }
static inline brook_serde_t brook_serde_int32(void) { return brook_serde_of_(BROOK_SERDE_INT32); }
static inline brook_serde_t brook_serde_int64(void) { return brook_serde_of_(BROOK_SERDE_INT64); }
static inline brook_serde_t brook_serde_double(void) { return brook_serde_of_(BROOK_SERDE_DOUBLE); }

/* Runs the chain `serde` (borrowed for the call) over in[0..in_len), wire to record
 * (deserialize) or record to wire (serialize), for a source, sink or operator of your own
 * (ctx: the operator's context; the output follows the callbacks' rules above). Returns
 * BROOK_OK, or the failing stage's code with the context's error message naming the stage
 * and field (brook_ctx_set_error), or BROOK_ERR_INVALID_ARG for a chain that cannot run: a
 * NULL serde, a table version this library does not know, a stage without the callback, a
 * chain longer than BROOK_SERDE_MAX_CHAIN. Thread of ctx. */
BROOK_API brook_err_t brook_serde_deserialize(brook_ctx_t *ctx, const brook_serde_t *serde,
                                              const void *in, size_t in_len, const void **out,
                                              size_t *out_len);
BROOK_API brook_err_t brook_serde_serialize(brook_ctx_t *ctx, const brook_serde_t *serde,
                                            const void *in, size_t in_len, const void **out,
                                            size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
