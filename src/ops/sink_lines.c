/* The line-writer sink: each record's value and a '\n', buffered, to a file or stdout. It has
 * one instance whatever the number of workers (placed once, plan/placement.c): the records
 * of every worker reach it on worker 0 through a gather (runtime/exchange.c), in order per
 * upstream worker. */
#include <brook/sink.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "core/topology.h"

typedef struct line_sink_cfg {
  char *path; /* NULL = stdout */
  brook_line_sink_opts_t opts;
  const brook_allocator_t *alloc;
} line_sink_cfg_t;

typedef struct line_sink {
  const line_sink_cfg_t *cfg;
  int fd;
  char *buf;
  size_t used, cap;
} line_sink_t;

void brook_line_sink_opts_init_size(brook_line_sink_opts_t *opts, size_t size) {
  brook_line_sink_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.buffer_size = 64 * 1024;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static brook_err_t write_all(brook_ctx_t *ctx, line_sink_t *s, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(s->fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      brook_ctx_set_error(ctx, "write to '%s' failed: %s", s->cfg->path ? s->cfg->path : "stdout",
                          strerror(errno));
      return BROOK_ERR_IO;
    }
    p += w;
    n -= (size_t)w;
  }
  return BROOK_OK;
}

static brook_err_t drain(brook_ctx_t *ctx, line_sink_t *s) {
  brook_err_t err = write_all(ctx, s, s->buf, s->used);
  s->used = 0;
  return err;
}

static brook_err_t line_sink_open(brook_ctx_t *ctx, void *opaque, void **state) {
  const line_sink_cfg_t *cfg = opaque;
  line_sink_t *s = bk_calloc(cfg->alloc, 1, sizeof(*s));
  if (!s)
    return BROOK_ERR_NOMEM;
  s->cfg = cfg;
  s->cap = cfg->opts.buffer_size;
  s->buf = bk_malloc(cfg->alloc, s->cap);
  if (!s->buf) {
    bk_free(cfg->alloc, s);
    return BROOK_ERR_NOMEM;
  }
  if (cfg->path) {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (cfg->opts.append ? O_APPEND : O_TRUNC);
    s->fd = open(cfg->path, flags, 0644);
    if (s->fd < 0) {
      brook_ctx_set_error(ctx, "cannot open '%s': %s", cfg->path, strerror(errno));
      bk_free(cfg->alloc, s->buf);
      bk_free(cfg->alloc, s);
      return BROOK_ERR_IO;
    }
  } else {
    s->fd = STDOUT_FILENO;
  }
  *state = s;
  return BROOK_OK;
}

static brook_err_t line_sink_batch(brook_ctx_t *ctx, void *state, const brook_record_t *recs,
                                   size_t n) {
  line_sink_t *s = state;
  for (size_t i = 0; i < n; i++) {
    size_t len = recs[i].value_len;
    brook_err_t err = BROOK_OK;
    if (s->cap - s->used < len + 1)
      err = drain(ctx, s);
    if (err < 0)
      return err;
    if (len + 1 > s->cap) { /* larger than the buffer: write it through */
      if ((err = write_all(ctx, s, recs[i].value, len)) < 0 ||
          (err = write_all(ctx, s, "\n", 1)) < 0)
        return err;
      continue;
    }
    if (len)
      memcpy(s->buf + s->used, recs[i].value, len);
    s->buf[s->used + len] = '\n';
    s->used += len + 1;
  }
  return BROOK_OK;
}

static brook_err_t line_sink_flush(brook_ctx_t *ctx, void *state) { return drain(ctx, state); }

static void line_sink_close(void *state, void *opaque) {
  line_sink_t *s = state;
  const line_sink_cfg_t *cfg = opaque;
  if (!s)
    return;
  if (s->fd >= 0 && s->fd != STDOUT_FILENO)
    close(s->fd);
  bk_free(cfg->alloc, s->buf);
  bk_free(cfg->alloc, s);
}

static const brook_operator_t line_sink_op = {
    .version = BROOK_OPERATOR_VERSION,
    .type_name = "sink_lines",
    .open = line_sink_open,
    .process_batch = line_sink_batch,
    .flush = line_sink_flush,
    .close = line_sink_close,
};

static void line_sink_cfg_free(void *p, const brook_allocator_t *a) {
  line_sink_cfg_t *cfg = p;
  if (!cfg)
    return;
  bk_free(a, cfg->path);
  bk_free(a, cfg);
}

static const bk_opts_version_t line_sink_versions[] = {
    BK_OPTS_VERSION(brook_line_sink_opts_t, buffer_size),
};
static const bk_opts_type_t line_sink_opts_type =
    BK_OPTS_TYPE(brook_line_sink_opts_t, line_sink_versions);

brook_err_t brook_sink_lines(brook_stream_t *in, const char *path,
                             const brook_line_sink_opts_t *opts) {
  if (!in)
    return BROOK_ERR_INVALID_ARG;
  brook_topology_t *t = in->node->topo;
  brook_line_sink_opts_t o;
  brook_line_sink_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &line_sink_opts_type, &why))
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "sink_lines: %s", why.text);
  if (o.buffer_size < 2)
    return bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "sink_lines: buffer_size must be >= 2");
  line_sink_cfg_t *cfg = bk_calloc(&t->alloc, 1, sizeof(*cfg));
  if (!cfg || (path && strcmp(path, "-") != 0 && !(cfg->path = bk_strdup(&t->alloc, path)))) {
    bk_free(&t->alloc, cfg);
    return bk_topology_fail(t, BROOK_ERR_NOMEM, "sink_lines: out of memory");
  }
  cfg->opts = o;
  cfg->alloc = &t->alloc;
  brook_err_t err =
      bk_topology_add_operator(&in, 1, &line_sink_op, cfg, line_sink_cfg_free, NULL, NULL, 0, NULL);
  if (err == BROOK_OK) /* one file, one writer: with N workers every record goes to worker 0 */
    t->nodes[t->n_nodes - 1]->single_instance = 1;
  return err;
}
