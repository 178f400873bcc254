/* The line source: one record per line of a file or of standard input. Regular files are
 * read with libuv's thread-pool file reads; pipes and terminals with a uv stream. Records
 * point into the read buffer, which is only moved or refilled between batches. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/opts.h"
#include "runtime/runtime_impl.h"

typedef struct lines_cfg {
  char *path; /* NULL = stdin */
  brook_lines_opts_t opts;
} lines_cfg_t;

typedef enum lines_mode { LINES_FILE, LINES_PIPE, LINES_TTY } lines_mode_t;

typedef struct lines_state {
  lines_mode_t mode;
  uv_file fd;
  int own_fd;
  int saved_flags; /* stdin's file status flags, restored at close (a uv stream sets
                      O_NONBLOCK, which the whole process and its parent share); -1 = none */
  union {
    uv_pipe_t pipe;
    uv_tty_t tty;
    uv_handle_t handle;
  } h;
  int handle_open;
  uv_fs_t req;
  int read_pending; /* file mode: a uv_fs_read is outstanding (holds the runtime) */
  int reading;      /* stream mode: uv_read_start is active */
  int closing;
  char *buf;
  size_t cap, start, end; /* unconsumed bytes are buf[start, end) */
  size_t max_cap;
  int eof;
  int discarding; /* inside an overlong line: skip to its '\n' */
  brook_err_t io_err;
  bk_src_t *src;
} lines_state_t;

void brook_lines_opts_init_size(brook_lines_opts_t *opts, size_t size) {
  brook_lines_opts_t d;
  memset(&d, 0, sizeof(d));
  d.struct_size = sizeof(d);
  d.max_line = 1u << 20;
  d.read_size = 256u << 10;
  bk_opts_init_sized(opts, size, &d, sizeof(d));
}

static brook_err_t lines_create(bk_src_t *src) {
  lines_state_t *st = bk_calloc(&src->rt->alloc, 1, sizeof(*st));
  if (!st)
    return BROOK_ERR_NOMEM;
  st->src = src;
  st->fd = -1;
  st->saved_flags = -1;
  src->impl = st;
  return BROOK_OK;
}

static brook_err_t lines_start(bk_src_t *src) {
  const lines_cfg_t *cfg = src->cfg;
  lines_state_t *st = src->impl;
  brook_runtime_t *rt = src->rt;
  st->cap = cfg->opts.read_size;
  st->max_cap = cfg->opts.read_size + cfg->opts.max_line + 1;
  st->buf = bk_malloc(&rt->alloc, st->cap);
  if (!st->buf)
    return BROOK_ERR_NOMEM;
  int fd;
  if (cfg->path) {
    uv_fs_t req;
    fd = uv_fs_open(NULL, &req, cfg->path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
  } else {
    /* A duplicate, so that closing our handle never closes the application's fd 0. */
    fd = dup(STDIN_FILENO);
    if (fd < 0)
      fd = uv_translate_sys_error(errno);
  }
  if (fd < 0) {
    brook_ctx_set_error(src->ctx, "cannot open '%s': %s", cfg->path ? cfg->path : "stdin",
                        uv_strerror(fd));
    bk_free(&rt->alloc, st->buf);
    st->buf = NULL;
    return BROOK_ERR_IO;
  }
  st->fd = fd;
  st->own_fd = 1;
  /* Pipes (FIFOs, shell pipes) and terminals are read with a uv stream, so a stop never waits
   * for a blocking read; regular files go through the thread pool. */
  uv_handle_type type = uv_guess_handle(fd);
  st->mode = type == UV_NAMED_PIPE ? LINES_PIPE : type == UV_TTY ? LINES_TTY : LINES_FILE;
  if (!cfg->path && st->mode != LINES_FILE)
    st->saved_flags = fcntl(STDIN_FILENO, F_GETFL);
  return BROOK_OK;
}

static void close_fd(lines_state_t *st) {
  if (st->own_fd && st->fd >= 0) {
    uv_fs_t req;
    uv_fs_close(NULL, &req, st->fd, NULL);
    uv_fs_req_cleanup(&req);
  }
  st->fd = -1;
}

static void request_more(lines_state_t *st);

static void on_file_read(uv_fs_t *req) {
  lines_state_t *st = req->data;
  brook_runtime_t *rt = st->src->rt;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  st->read_pending = 0;
  if (st->closing) {
    close_fd(st);
  } else if (n < 0) {
    st->io_err = BROOK_ERR_IO;
    bk_runtime_fail(rt, BROOK_ERR_IO, "source '%s': read failed: %s", st->src->ctx->node->name,
                    uv_strerror((int)n));
  } else if (n == 0) {
    st->eof = 1;
  } else {
    st->end += (size_t)n;
  }
  if (!st->closing)
    bk_sched_ready(st->src);
  bk_worker_poke(st->src->w);
  bk_worker_release(st->src->w); /* may finish the runtime: touch nothing after */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
  (void)suggested;
  lines_state_t *st = h->data;
  *out = uv_buf_init(st->buf + st->end, (unsigned)(st->cap - st->end));
}

static void on_stream_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  lines_state_t *st = s->data;
  if (n == 0)
    return; /* EAGAIN */
  uv_read_stop(s);
  st->reading = 0;
  if (n == UV_EOF)
    st->eof = 1;
  else if (n < 0)
    bk_runtime_fail(st->src->rt, BROOK_ERR_IO, "source '%s': read failed: %s",
                    st->src->ctx->node->name, uv_strerror((int)n));
  else
    st->end += (size_t)n;
  bk_sched_ready(st->src);
  bk_worker_poke(st->src->w);
}

/* Makes room after `end` and starts one read. Only between batches (records point into buf). */
static void request_more(lines_state_t *st) {
  bk_src_t *src = st->src;
  brook_runtime_t *rt = src->rt;
  if (st->eof || st->closing || st->read_pending || st->reading || src->ended)
    return;
  if (st->start > 0) {
    memmove(st->buf, st->buf + st->start, st->end - st->start);
    st->end -= st->start;
    st->start = 0;
  }
  if (st->end == st->cap) {
    size_t ncap = st->cap * 2 < st->max_cap ? st->cap * 2 : st->max_cap;
    char *nb = ncap > st->cap ? bk_realloc(&rt->alloc, st->buf, ncap) : NULL;
    if (!nb) {
      bk_runtime_fail(rt, BROOK_ERR_NOMEM, "source '%s': out of memory for a long line",
                      src->ctx->node->name);
      return;
    }
    st->buf = nb;
    st->cap = ncap;
  }
  if (st->mode == LINES_FILE) {
    uv_buf_t b = uv_buf_init(st->buf + st->end, (unsigned)(st->cap - st->end));
    st->req.data = st;
    int rc = uv_fs_read(src->w->loop, &st->req, st->fd, &b, 1, -1, on_file_read);
    if (rc < 0) {
      bk_runtime_fail(rt, BROOK_ERR_IO, "source '%s': read failed: %s", src->ctx->node->name,
                      uv_strerror(rc));
      return;
    }
    st->read_pending = 1;
    bk_worker_hold(src->w);
  } else {
    int rc = uv_read_start((uv_stream_t *)&st->h.handle, on_alloc, on_stream_read);
    if (rc < 0) {
      bk_runtime_fail(rt, BROOK_ERR_IO, "source '%s': read failed: %s", src->ctx->node->name,
                      uv_strerror(rc));
      return;
    }
    st->reading = 1;
  }
}

static brook_err_t lines_attach(bk_src_t *src) {
  const lines_cfg_t *cfg = src->cfg;
  lines_state_t *st = src->impl;
  int rc = 0;
  if (st->mode == LINES_PIPE) {
    uv_pipe_init(src->w->loop, &st->h.pipe, 0);
    st->handle_open = 1;
    rc = uv_pipe_open(&st->h.pipe, st->fd);
  } else if (st->mode == LINES_TTY) {
    rc = uv_tty_init(src->w->loop, &st->h.tty, st->fd, 0);
    st->handle_open = rc == 0;
  }
  if (st->handle_open && rc == 0)
    st->own_fd = 0; /* the handle closes it */
  if (rc) {
    brook_ctx_set_error(src->ctx, "cannot read from '%s': %s", cfg->path ? cfg->path : "stdin",
                        uv_strerror(rc));
    return BROOK_ERR_IO;
  }
  st->h.handle.data = st;
  request_more(st);
  return BROOK_OK;
}

static brook_err_t emit_line(bk_src_t *src, const char *p, size_t len, int too_long) {
  const lines_cfg_t *cfg = src->cfg;
  bk_port_t *port = bk_src_port(src);
  if (!cfg->opts.keep_cr && len && p[len - 1] == '\r' && !too_long)
    len--;
  brook_record_t rec = {0};
  rec.value = p;
  rec.value_len = len;
  rec.timestamp = src->w->now_ms;
  if (too_long)
    return brook_ctx_fail_record(src->ctx, &rec, BROOK_ERR_TOO_LARGE,
                                 "line longer than max_line (%zu bytes)", cfg->opts.max_line);
  port->buf[port->n++] = rec;
  return BROOK_OK;
}

static brook_err_t lines_produce(bk_src_t *src) {
  const lines_cfg_t *cfg = src->cfg;
  lines_state_t *st = src->impl;
  bk_port_t *port = bk_src_port(src);
  size_t max_line = cfg->opts.max_line;
  brook_err_t err = BROOK_OK;
  while (port->n < port->cap && err == BROOK_OK) {
    char *p = st->buf + st->start;
    size_t avail = st->end - st->start;
    if (avail == 0)
      break;
    char *nl = memchr(p, '\n', avail);
    if (st->discarding) {
      st->start = nl ? st->start + (size_t)(nl - p) + 1 : st->end;
      st->discarding = nl == NULL;
      continue;
    }
    if (!nl) {
      if (avail > max_line) {
        err = emit_line(src, p, max_line, 1);
        st->start = st->end;
        st->discarding = 1;
      } else if (st->eof) {
        err = emit_line(src, p, avail, 0);
        st->start = st->end;
      } else {
        break; /* need more bytes for this line */
      }
      continue;
    }
    size_t len = (size_t)(nl - p);
    err = emit_line(src, p, len > max_line ? max_line : len, len > max_line);
    st->start += len + 1;
  }
  if (err < 0)
    return err;
  if (st->eof && st->start == st->end)
    return BROOK_DONE;
  if (port->n < port->cap) /* no complete line left: wait for the read */
    src->ready = 0;
  return BROOK_OK;
}

static void lines_batch_done(bk_src_t *src) {
  if (!src->ready)
    request_more(src->impl);
}

static void lines_stop(bk_src_t *src) { src->ended = 1; }

static void lines_close(bk_src_t *src) {
  lines_state_t *st = src->impl;
  st->closing = 1;
  if (st->handle_open) {
    if (st->reading)
      uv_read_stop((uv_stream_t *)&st->h.handle);
    st->handle_open = 0;
    bk_worker_close_handle(src->w, &st->h.handle);
  }
  if (st->saved_flags != -1) {
    fcntl(STDIN_FILENO, F_SETFL, st->saved_flags);
    st->saved_flags = -1;
  }
  if (!st->read_pending)
    close_fd(st);
}

static void lines_destroy(bk_src_t *src) {
  lines_state_t *st = src->impl;
  close_fd(st);
  bk_free(&src->rt->alloc, st->buf);
  bk_free(&src->rt->alloc, st);
}

static const bk_source_vt_t lines_vt = {
    .create = lines_create,
    .start = lines_start,
    .attach = lines_attach,
    .produce = lines_produce,
    .batch_done = lines_batch_done,
    .stop = lines_stop,
    .close = lines_close,
    .destroy = lines_destroy,
};

static void lines_cfg_free(void *cfg, const brook_allocator_t *a) {
  lines_cfg_t *c = cfg;
  bk_free(a, c->path);
  bk_free(a, c);
}

static const bk_source_type_t lines_type = {"lines", &lines_vt, lines_cfg_free, 0, NULL};

static const bk_opts_version_t lines_versions[] = {
    BK_OPTS_VERSION(brook_lines_opts_t, keep_cr),
};
static const bk_opts_type_t lines_opts_type = BK_OPTS_TYPE(brook_lines_opts_t, lines_versions);

brook_stream_t *brook_source_lines(brook_topology_t *t, const char *name, const char *path,
                                   const brook_lines_opts_t *opts) {
  if (!t)
    return NULL;
  brook_lines_opts_t o;
  brook_lines_opts_init(&o);
  bk_errmsg_t why;
  if (bk_opts_copy(&o, sizeof(o), opts, &lines_opts_type, &why)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG, "source_lines: %s", why.text);
    return NULL;
  }
  if (o.max_line == 0 || o.read_size < 16 || o.read_size > (1u << 30) || o.max_line > (1u << 30)) {
    bk_topology_fail(t, BROOK_ERR_INVALID_ARG,
                     "source_lines: max_line must be 1..1 GiB and read_size 16 B..1 GiB");
    return NULL;
  }
  lines_cfg_t *cfg = bk_calloc(&t->alloc, 1, sizeof(*cfg));
  if (!cfg || (path && strcmp(path, "-") != 0 && !(cfg->path = bk_strdup(&t->alloc, path)))) {
    bk_free(&t->alloc, cfg);
    bk_topology_fail(t, BROOK_ERR_NOMEM, "source_lines: out of memory");
    return NULL;
  }
  cfg->opts = o;
  return bk_topology_add_source(t, &lines_type, cfg, name);
}
