/* The line source and the line sink: line splitting (trailing newline or not, CRLF, empty
 * lines), reads smaller than lines, the max_line error policy, missing files, standard
 * input as a pipe and as a file, and the sink's exact round trip, append mode, open errors
 * and flushing when the runtime goes idle. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>
#include <uv.h>

#include "tempfiles.h"
#include "wait.h"

/* ---- files ---- */

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t cap = 1 << 16, n = 0, r;
  char *buf = malloc(cap);
  assert_non_null(buf);
  while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

/* ---- collecting what the source produced ---- */

typedef struct lines_out {
  char **v;
  size_t *len;
  size_t n, cap;
} lines_out_t;

static brook_err_t sink_collect(const brook_record_t *rec, void *opaque) {
  lines_out_t *o = opaque;
  if (o->n == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 16;
    o->v = realloc(o->v, o->cap * sizeof(*o->v));
    o->len = realloc(o->len, o->cap * sizeof(*o->len));
  }
  o->v[o->n] = malloc(rec->value_len + 1);
  if (rec->value_len)
    memcpy(o->v[o->n], rec->value, rec->value_len);
  o->v[o->n][rec->value_len] = '\0';
  o->len[o->n++] = rec->value_len;
  return BROOK_OK;
}

static void lines_out_free(lines_out_t *o) {
  for (size_t i = 0; i < o->n; i++)
    free(o->v[i]);
  free(o->v);
  free(o->len);
  memset(o, 0, sizeof(*o));
}

/* NULL-terminated list of expected lines (no '\0' inside). */
static void expect_lines(const lines_out_t *o, const char *const *want, const char *what) {
  size_t n = 0;
  while (want[n])
    n++;
  if (o->n != n)
    fail_msg("%s: got %zu lines, want %zu", what, o->n, n);
  for (size_t i = 0; i < n; i++)
    if (o->len[i] != strlen(want[i]) || memcmp(o->v[i], want[i], o->len[i]) != 0)
      fail_msg("%s: line %zu is \"%s\" (%zu bytes), want \"%s\"", what, i, o->v[i], o->len[i],
               want[i]);
}

/* Runs `path` (NULL = stdin) -> collecting sink; optional error stream -> `errors`. */
static brook_err_t run_lines(const char *path, const brook_lines_opts_t *lo,
                             brook_error_policy_t policy, lines_out_t *out, lines_out_t *errors,
                             brook_runtime_stats_t *stats, char *msg, size_t msg_size) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(brook_topology_set_error_policy(t, policy), BROOK_OK);
  brook_stream_t *s = brook_source_lines(t, "lines", path, lo);
  assert_non_null(s);
  assert_int_equal(brook_sink_callback(s, sink_collect, NULL, out), BROOK_OK);
  if (errors)
    assert_int_equal(brook_sink_callback(brook_error_stream(t), sink_collect, NULL, errors),
                     BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_topology_free(t);
  brook_err_t err = brook_runtime_run(rt);
  if (stats) {
    memset(stats, 0, sizeof(*stats));
    stats->struct_size = sizeof(*stats);
    assert_int_equal(brook_runtime_stats(rt, stats), BROOK_OK);
  }
  if (msg)
    snprintf(msg, msg_size, "%s", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  return err;
}

/* Writes `content` to a temp file and checks the lines read from it, at several read
 * sizes (16 bytes forces lines to be split across reads). */
static void check_file_lines(const char *content, int keep_cr, const char *const *want) {
  char path[256];
  temp_path(path, sizeof(path), "split");
  write_file(path, content, strlen(content));
  const size_t read_sizes[] = {16, 17, 23, 64, 256u << 10};
  for (size_t k = 0; k < sizeof(read_sizes) / sizeof(read_sizes[0]); k++) {
    brook_lines_opts_t lo;
    brook_lines_opts_init(&lo);
    lo.read_size = read_sizes[k];
    lo.keep_cr = keep_cr;
    lines_out_t out = {0};
    assert_int_equal(run_lines(path, &lo, BROOK_ON_ERROR_FAIL, &out, NULL, NULL, NULL, 0),
                     BROOK_OK);
    char what[64];
    snprintf(what, sizeof(what), "read_size %zu", read_sizes[k]);
    expect_lines(&out, want, what);
    lines_out_free(&out);
  }
  unlink(path);
}

/* ---- splitting ---- */

static void trailing_newline_or_not(void **state) {
  (void)state;
  check_file_lines("a\nbb\nccc\n", 0, (const char *[]){"a", "bb", "ccc", NULL});
  check_file_lines("a\nbb\nccc", 0, (const char *[]){"a", "bb", "ccc", NULL});
  check_file_lines("", 0, (const char *[]){NULL});
  check_file_lines("only", 0, (const char *[]){"only", NULL});
  check_file_lines("a longer line that spans several reads\nx", 0,
                   (const char *[]){"a longer line that spans several reads", "x", NULL});
}

static void empty_lines_are_empty_records(void **state) {
  (void)state;
  check_file_lines("\n", 0, (const char *[]){"", NULL});
  check_file_lines("\n\n\n", 0, (const char *[]){"", "", "", NULL});
  check_file_lines("a\n\nb\n\n", 0, (const char *[]){"a", "", "b", "", NULL});
  check_file_lines("\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nz", 0,
                   (const char *[]){"", "", "", "", "", "", "", "", "",  "",  "",
                                    "", "", "", "", "", "", "", "", "z", NULL});
}

static void crlf_stripped_or_kept(void **state) {
  (void)state;
  const char *content = "a\r\nbb\r\n\r\nmid\rdle\r\nlast\r";
  check_file_lines(content, 0, (const char *[]){"a", "bb", "", "mid\rdle", "last", NULL});
  check_file_lines(content, 1, (const char *[]){"a\r", "bb\r", "\r", "mid\rdle\r", "last\r", NULL});
}

/* ---- a large file ---- */

static size_t make_line(uint64_t i, char *buf, size_t size) {
  int n = snprintf(buf, size, "line %" PRIu64 " ", i);
  size_t pad = (size_t)(i * 7 % 53);
  for (size_t k = 0; k < pad && (size_t)n + k + 1 < size; k++)
    buf[(size_t)n + k] = (char)('a' + (i + k) % 26);
  buf[(size_t)n + pad] = '\0';
  return (size_t)n + pad;
}

typedef struct check_sink {
  uint64_t next, bad;
} check_sink_t;

static brook_err_t sink_check(const brook_record_t *rec, void *opaque) {
  check_sink_t *c = opaque;
  char want[128];
  size_t n = make_line(c->next++, want, sizeof(want));
  if (rec->value_len != n || memcmp(rec->value, want, n) != 0)
    c->bad++;
  return BROOK_OK;
}

static void write_numbered_file(const char *path, uint64_t lines) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  char buf[128];
  for (uint64_t i = 0; i < lines; i++) {
    size_t n = make_line(i, buf, sizeof(buf));
    buf[n] = '\n';
    assert_int_equal(fwrite(buf, 1, n + 1, f), n + 1);
  }
  assert_int_equal(fclose(f), 0);
}

static void check_large(const char *path, uint64_t lines, size_t read_size) {
  brook_lines_opts_t lo;
  brook_lines_opts_init(&lo);
  lo.read_size = read_size;
  check_sink_t c = {0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(
      brook_sink_callback(brook_source_lines(t, "big", path, &lo), sink_check, NULL, &c), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_topology_free(t);
  assert_int_equal(brook_runtime_run(rt), BROOK_OK);
  assert_int_equal(c.next, lines);
  assert_int_equal(c.bad, 0);
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  assert_int_equal(st.records_in, lines);
  assert_int_equal(st.records_out, lines);
  assert_true(st.batches >= lines / 1024);
  brook_runtime_free(rt);
}

static void large_file_default_and_tiny_reads(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof(path), "large");
  write_numbered_file(path, 200000); /* ~7 MB: many 256 KiB reads, lines cut by reads */
  check_large(path, 200000, 256u << 10);
  check_large(path, 200000, 4096);
  write_numbered_file(path, 20000); /* every line longer than one 16-byte read */
  check_large(path, 20000, 16);
  unlink(path);
}

/* ---- lines longer than max_line ---- */

static const char *long_content = "short\n"
                                  "xxxxxxxxxxxxxxxxxxxxxxxxx\n" /* 25 > 10: too long */
                                  "after\n"
                                  "yyyyyyyyy\n"   /* 9: fine */
                                  "zzzzzzzzzzz\n" /* 11: too long */
                                  "end\n"
                                  "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww"; /* too long at EOF */

static void long_line_skip_policy(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof(path), "long");
  write_file(path, long_content, strlen(long_content));
  const size_t read_sizes[] = {16, 19, 40, 256u << 10};
  for (size_t k = 0; k < 4; k++) {
    brook_lines_opts_t lo;
    brook_lines_opts_init(&lo);
    lo.max_line = 10;
    lo.read_size = read_sizes[k];
    lines_out_t out = {0};
    brook_runtime_stats_t st;
    assert_int_equal(run_lines(path, &lo, BROOK_ON_ERROR_SKIP, &out, NULL, &st, NULL, 0), BROOK_OK);
    char what[64];
    snprintf(what, sizeof(what), "skip, read_size %zu", read_sizes[k]);
    expect_lines(&out, (const char *[]){"short", "after", "yyyyyyyyy", "end", NULL}, what);
    assert_int_equal(st.records_skipped, 3);
    assert_int_equal(st.records_out, 4);
    lines_out_free(&out);
  }
  unlink(path);
}

static void long_line_route_and_fail_policies(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof(path), "long");
  write_file(path, long_content, strlen(long_content));
  brook_lines_opts_t lo;
  brook_lines_opts_init(&lo);
  lo.max_line = 10;

  /* ROUTE: the record carries the first max_line bytes, tagged with the error. */
  lines_out_t out = {0}, errors = {0};
  brook_runtime_stats_t st;
  assert_int_equal(run_lines(path, &lo, BROOK_ON_ERROR_ROUTE, &out, &errors, &st, NULL, 0),
                   BROOK_OK);
  expect_lines(&out, (const char *[]){"short", "after", "yyyyyyyyy", "end", NULL}, "route");
  expect_lines(&errors, (const char *[]){"xxxxxxxxxx", "zzzzzzzzzz", "wwwwwwwwww", NULL},
               "route errors");
  assert_int_equal(st.records_routed, 3);
  lines_out_free(&out);
  lines_out_free(&errors);

  /* FAIL (the default): the run fails with BROOK_ERR_TOO_LARGE. */
  char msg[512];
  assert_int_equal(run_lines(path, &lo, BROOK_ON_ERROR_FAIL, &out, NULL, NULL, msg, sizeof(msg)),
                   BROOK_ERR_TOO_LARGE);
  assert_non_null(strstr(msg, "max_line"));
  /* Nothing after the failing line arrives. (Whether "short", read in the same batch before
   * it, is delivered is not specified; today it is dropped with the failed batch.) */
  assert_true(out.n <= 1);
  if (out.n == 1)
    assert_string_equal(out.v[0], "short");
  lines_out_free(&out);
  unlink(path);
}

/* A line of exactly max_line bytes is not too long, wherever a read happens to end. */
static void line_of_exactly_max_line_at_any_read_boundary(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof(path), "exact");
  const char *content = "abcde\n0123456789\nend\n"; /* 16 bytes in: "abcde\n0123456789" */
  write_file(path, content, strlen(content));
  for (size_t rs = 16; rs <= 24; rs++) {
    brook_lines_opts_t lo;
    brook_lines_opts_init(&lo);
    lo.max_line = 10;
    lo.read_size = rs;
    lines_out_t out = {0};
    brook_err_t err = run_lines(path, &lo, BROOK_ON_ERROR_FAIL, &out, NULL, NULL, NULL, 0);
    if (err != BROOK_OK)
      fail_msg("read_size %zu: a %zu-byte line with max_line %zu failed with %s", rs, (size_t)10,
               (size_t)10, brook_errname(err));
    expect_lines(&out, (const char *[]){"abcde", "0123456789", "end", NULL}, "exact");
    lines_out_free(&out);
  }
  unlink(path);
}

static void missing_file_fails_with_io_and_path(void **state) {
  (void)state;
  const char *path = "/nonexistent-brook-dir/input-lines.txt";
  lines_out_t out = {0};
  char msg[512];
  assert_int_equal(run_lines(path, NULL, BROOK_ON_ERROR_FAIL, &out, NULL, NULL, msg, sizeof(msg)),
                   BROOK_ERR_IO);
  if (!strstr(msg, path))
    fail_msg("the message does not name the path: \"%s\"", msg);
  assert_int_equal(out.n, 0);
}

/* ---- standard input ---- */

typedef struct pipe_writer {
  int fd;
  const char *data;
  size_t len;
  int failed;
} pipe_writer_t;

static void *write_pipe(void *arg) {
  pipe_writer_t *w = arg;
  for (size_t off = 0; off < w->len;) {
    ssize_t n = write(w->fd, w->data + off, w->len - off);
    if (n <= 0) {
      w->failed = 1;
      break;
    }
    off += (size_t)n;
  }
  close(w->fd);
  return NULL;
}

/* Builds N numbered lines in memory. */
static char *numbered_text(uint64_t lines, size_t *len) {
  size_t cap = (size_t)lines * 80 + 1, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (uint64_t i = 0; i < lines; i++) {
    n += make_line(i, buf + n, cap - n);
    buf[n++] = '\n';
  }
  *len = n;
  return buf;
}

static void stdin_as_pipe(void **state) {
  (void)state;
  size_t len;
  char *text = numbered_text(50000, &len); /* ~1.7 MB: far more than a pipe buffer */
  struct sigaction ign, old;
  memset(&ign, 0, sizeof(ign));
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old); /* if the reader quit early, the writer must not die */
  int saved = dup(0);
  assert_true(saved >= 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(dup2(fds[0], 0), 0);
  close(fds[0]);
  pipe_writer_t w = {fds[1], text, len, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, write_pipe, &w), 0);

  check_sink_t c = {0};
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(
      brook_sink_callback(brook_source_lines(t, "stdin", "-", NULL), sink_check, NULL, &c),
      BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_topology_free(t);
  brook_err_t err = brook_runtime_run(rt);
  pthread_join(th, NULL);
  /* Put the real standard input back before any assertion can leave this function. */
  dup2(saved, 0);
  close(saved);
  sigaction(SIGPIPE, &old, NULL);
  brook_runtime_free(rt);
  free(text);

  assert_int_equal(err, BROOK_OK);
  assert_int_equal(w.failed, 0);
  assert_int_equal(c.next, 50000);
  assert_int_equal(c.bad, 0);
}

/* Reading standard input must not leave the application's fd 0 non-blocking afterwards (the
 * flag belongs to the open file description, which a dup() shares): a later blocking read
 * by the application, or by another process sharing the pipe, would fail with EAGAIN. */
static void stdin_pipe_left_blocking_after_run(void **state) {
  (void)state;
  int saved = dup(0);
  assert_true(saved >= 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(dup2(fds[0], 0), 0);
  close(fds[0]);
  assert_int_equal(write(fds[1], "a\nb\n", 4), 4);
  close(fds[1]);
  int before = fcntl(0, F_GETFL);
  lines_out_t out = {0};
  brook_err_t err = run_lines(NULL, NULL, BROOK_ON_ERROR_FAIL, &out, NULL, NULL, NULL, 0);
  int after = fcntl(0, F_GETFL);
  dup2(saved, 0);
  close(saved);
  assert_int_equal(err, BROOK_OK);
  expect_lines(&out, (const char *[]){"a", "b", NULL}, "stdin pipe");
  lines_out_free(&out);
  assert_true(before >= 0 && after >= 0);
  assert_int_equal(before & O_NONBLOCK, 0);
  if (after & O_NONBLOCK)
    fail_msg("standard input was left O_NONBLOCK after the runtime finished");
}

static void stdin_as_file(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof(path), "stdin");
  const char *content = "one\r\ntwo\n\nthree";
  write_file(path, content, strlen(content));
  int saved = dup(0);
  assert_true(saved >= 0);
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(dup2(fd, 0), 0);
  close(fd);
  lines_out_t out = {0};
  brook_lines_opts_t lo;
  brook_lines_opts_init(&lo);
  lo.read_size = 16;
  brook_err_t err = run_lines(NULL, &lo, BROOK_ON_ERROR_FAIL, &out, NULL, NULL, NULL, 0);
  dup2(saved, 0);
  close(saved);
  assert_int_equal(err, BROOK_OK);
  expect_lines(&out, (const char *[]){"one", "two", "", "three", NULL}, "stdin file");
  lines_out_free(&out);
  unlink(path);
}

/* ---- the line sink ---- */

static brook_err_t run_copy(const char *in, const char *out, const brook_line_sink_opts_t *so,
                            char *msg, size_t msg_size) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(brook_sink_lines(brook_source_lines(t, "in", in, NULL), out, so), BROOK_OK);
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, NULL), BROOK_OK);
  brook_topology_free(t);
  brook_err_t err = brook_runtime_run(rt);
  if (msg)
    snprintf(msg, msg_size, "%s", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  return err;
}

static void expect_file(const char *path, const char *want, size_t want_len) {
  size_t len;
  char *got = read_file(path, &len);
  assert_int_equal(len, want_len);
  assert_memory_equal(got, want, want_len);
  free(got);
}

static void line_sink_round_trip(void **state) {
  (void)state;
  char in[256], out[256];
  temp_path(in, sizeof(in), "rt_in");
  temp_path(out, sizeof(out), "rt_out");
  size_t len;
  char *text = numbered_text(60000, &len);
  /* Make some lines far longer than the sink's buffer (written through). */
  char *big = malloc(len + 3 * 5000 + 1);
  memcpy(big, text, len);
  for (int k = 0; k < 3; k++) {
    memset(big + len, 'L' + k, 4999);
    big[len + 4999] = '\n';
    len += 5000;
  }
  write_file(in, big, len);
  const size_t buffers[] = {2, 7, 4096, 64 * 1024};
  for (size_t k = 0; k < 4; k++) {
    brook_line_sink_opts_t so;
    brook_line_sink_opts_init(&so);
    so.buffer_size = buffers[k];
    assert_int_equal(run_copy(in, out, &so, NULL, 0), BROOK_OK);
    expect_file(out, big, len); /* byte for byte, truncating what the last run wrote */
  }
  free(text);
  free(big);
  unlink(in);
  unlink(out);
}

static void line_sink_append_and_truncate(void **state) {
  (void)state;
  char in[256], out[256];
  temp_path(in, sizeof(in), "ap_in");
  temp_path(out, sizeof(out), "ap_out");
  write_file(in, "a\nb\n", 4);
  write_file(out, "old\n", 4);
  brook_line_sink_opts_t so;
  brook_line_sink_opts_init(&so);
  assert_int_equal(so.append, 0);
  so.append = 1;
  assert_int_equal(run_copy(in, out, &so, NULL, 0), BROOK_OK);
  expect_file(out, "old\na\nb\n", 8);
  assert_int_equal(run_copy(in, out, &so, NULL, 0), BROOK_OK);
  expect_file(out, "old\na\nb\na\nb\n", 12);
  assert_int_equal(run_copy(in, out, NULL, NULL, 0), BROOK_OK); /* default: truncate */
  expect_file(out, "a\nb\n", 4);
  unlink(in);
  unlink(out);
}

static void line_sink_in_missing_directory_fails_at_start(void **state) {
  (void)state;
  char in[256];
  temp_path(in, sizeof(in), "md_in");
  write_file(in, "a\n", 2);
  const char *out = "/nonexistent-brook-dir/out.txt";
  char msg[512];
  assert_int_equal(run_copy(in, out, NULL, msg, sizeof(msg)), BROOK_ERR_IO);
  if (!strstr(msg, out))
    fail_msg("the message does not name the path: \"%s\"", msg);
  unlink(in);
}

/* The sink writes its buffer out when the runtime goes idle, not only at the end. */
typedef struct file_lines {
  const char *path;
  size_t want;
} file_lines_t;

static int file_has_lines(void *arg) {
  file_lines_t *f = arg;
  size_t len;
  char *buf = read_file(f->path, &len);
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += buf[i] == '\n';
  free(buf);
  return n >= f->want;
}

static void on_done_count(brook_runtime_t *rt, brook_err_t status, void *opaque) {
  (void)rt;
  (void)status;
  (*(int *)opaque)++;
}

static void line_sink_flushes_when_idle(void **state) {
  (void)state;
  char out[256];
  temp_path(out, sizeof(out), "idle");
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  assert_int_equal(brook_sink_lines(brook_source_push(t, "in", NULL), out, NULL), BROOK_OK);
  int done = 0;
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.on_done = on_done_count;
  o.on_done_opaque = &done;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_topology_free(t);
  brook_push_source_t *src = brook_runtime_push_source(rt, "in");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(brook_runtime_start(rt, &loop), BROOK_OK);
  for (int i = 0; i < 10; i++) {
    brook_record_t rec = {.value = "hello", .value_len = 5};
    assert_int_equal(brook_push(src, &rec), BROOK_OK);
  }
  file_lines_t fl = {out, 10};
  int flushed = wait_loop_until(&loop, file_has_lines, &fl, 5000);
  assert_int_equal(done, 0); /* still running: only going idle can have written the file */
  brook_runtime_stop(rt);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(done, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
  brook_runtime_free(rt);
  expect_file(out, "hello\nhello\nhello\nhello\nhello\nhello\nhello\nhello\nhello\nhello\n", 60);
  unlink(out);
  if (!flushed)
    fail_msg("the line sink did not write its buffer when the runtime went idle");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(trailing_newline_or_not),
      cmocka_unit_test(empty_lines_are_empty_records),
      cmocka_unit_test(crlf_stripped_or_kept),
      cmocka_unit_test(large_file_default_and_tiny_reads),
      cmocka_unit_test(long_line_skip_policy),
      cmocka_unit_test(long_line_route_and_fail_policies),
      cmocka_unit_test(line_of_exactly_max_line_at_any_read_boundary),
      cmocka_unit_test(missing_file_fails_with_io_and_path),
      cmocka_unit_test(stdin_as_pipe),
      cmocka_unit_test(stdin_pipe_left_blocking_after_run),
      cmocka_unit_test(stdin_as_file),
      cmocka_unit_test(line_sink_round_trip),
      cmocka_unit_test(line_sink_append_and_truncate),
      cmocka_unit_test(line_sink_in_missing_directory_fails_at_start),
      cmocka_unit_test(line_sink_flushes_when_idle),
  };
  return cmocka_run_group_tests(tests, NULL, temp_remove_all);
}
