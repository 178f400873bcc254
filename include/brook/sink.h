/* Sinks: where records leave a pipeline. Each returns BROOK_OK or an error (recorded in the
 * topology). A sink consumes its input stream. */
#ifndef BROOK_SINK_H
#define BROOK_SINK_H

#include <stdint.h>

#include <brook/operator.h>
#include <brook/topology.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called for every record on the loop thread; `rec` is borrowed for the call. A negative
 * return applies the error policy to the record. */
typedef brook_err_t (*brook_sink_fn)(const brook_record_t *rec, void *opaque);

/* Optional companion: called at flush points (idle, commit, before close). */
typedef brook_err_t (*brook_sink_flush_fn)(void *opaque);

brook_err_t brook_sink_callback(brook_stream_t *in, brook_sink_fn fn, brook_sink_flush_fn flush,
                                void *opaque);

typedef struct brook_line_sink_opts {
  uint32_t struct_size; /* set by brook_line_sink_opts_init() */
  int append;           /* append to an existing file; default 0 (truncate) */
  size_t buffer_size;   /* write buffer; default 64 KiB */
} brook_line_sink_opts_t;

void brook_line_sink_opts_init(brook_line_sink_opts_t *opts);

/* Writes each record's value followed by '\n' to `path` (copied; NULL or "-" = standard
 * output). Buffered; written out when the buffer fills, when the runtime goes idle, and at
 * the end. The file is opened when the runtime starts (an error then fails the start). */
brook_err_t brook_sink_lines(brook_stream_t *in, const char *path,
                             const brook_line_sink_opts_t *opts);

#ifdef __cplusplus
}
#endif
#endif
