/* Sinks: where records leave a pipeline. Each returns BROOK_OK or an error (recorded in the
 * topology). A sink consumes its input stream. */
#ifndef BROOK_SINK_H
#define BROOK_SINK_H

#include <brook/export.h>

#include <stddef.h>
#include <stdint.h>

#include <brook/operator.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called for every record on the loop thread; `rec` is borrowed for the call. A negative
 * return applies the error policy to the record. */
typedef brook_err_t (*brook_sink_fn)(const brook_record_t *rec, void *opaque);

/* Optional companion: called at flush points (every commit, runtime.h, and at the end). */
typedef brook_err_t (*brook_sink_flush_fn)(void *opaque);

/* Adds a sink calling `fn` for every record of `in` (and `flush`, may be NULL, at flush
 * points). `opaque` is borrowed: it must outlive every runtime and driver of the topology.
 * The sink's node is named "sink#<n>"; use brook_sink_callback_v2 to give it a name (the test
 * driver reads a sink's captured records by its name). Returns BROOK_OK or an error recorded in
 * the topology (BROOK_ERR_INVALID_ARG for a NULL `in` or `fn`). */
BROOK_API brook_err_t brook_sink_callback(brook_stream_t *in, brook_sink_fn fn,
                                          brook_sink_flush_fn flush, void *opaque);

typedef struct brook_callback_sink_opts {
  uint32_t struct_size; /* set by brook_callback_sink_opts_init() */
  /* The sink's node name (copied; unique in the topology, not empty). NULL (default) =
   * "sink#<n>". Name sinks so tests can tell them apart: brook_driver_output(d, name, i). */
  const char *name;
} brook_callback_sink_opts_t;

BROOK_API void brook_callback_sink_opts_init_size(brook_callback_sink_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_callback_sink_opts_init(brook_callback_sink_opts_t *opts) {
  brook_callback_sink_opts_init_size(opts, sizeof(*opts));
}

/* brook_sink_callback with options (`opts` copied; NULL = defaults). Returns BROOK_OK or an
 * error recorded in the topology: BROOK_ERR_INVALID_ARG (NULL `in` or `fn`, an unknown
 * struct_size, an empty name), BROOK_ERR_DUPLICATE (the name is taken), BROOK_ERR_FROZEN (a
 * runtime or driver was made from the topology already), BROOK_ERR_NOMEM. Build time: not
 * thread-safe with other builders of the same topology. */
BROOK_API brook_err_t brook_sink_callback_v2(brook_stream_t *in, brook_sink_fn fn,
                                             brook_sink_flush_fn flush, void *opaque,
                                             const brook_callback_sink_opts_t *opts);

typedef struct brook_line_sink_opts {
  uint32_t struct_size; /* set by brook_line_sink_opts_init() */
  int append;           /* append to an existing file; default 0 (truncate) */
  size_t buffer_size;   /* write buffer; default 64 KiB */
} brook_line_sink_opts_t;

BROOK_API void brook_line_sink_opts_init_size(brook_line_sink_opts_t *opts, size_t size);
/* Inline, so that `sizeof(*opts)` is the size of the struct this program was compiled with:
 * an older program never gets the fields of a newer library written past its struct. */
static inline void brook_line_sink_opts_init(brook_line_sink_opts_t *opts) {
  brook_line_sink_opts_init_size(opts, sizeof(*opts));
}

/* Writes each record's value followed by '\n' to `path` (copied; NULL or "-" = standard
 * output). Buffered; written out when the buffer fills, when the runtime goes idle, and at
 * the end. The file is opened when the runtime starts (an error then fails the start). */
BROOK_API brook_err_t brook_sink_lines(brook_stream_t *in, const char *path,
                                       const brook_line_sink_opts_t *opts);

#ifdef __cplusplus
}
#endif
#endif
