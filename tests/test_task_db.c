/* A task's state on disk (src/state/task_db.h): several stores and the positions they cover,
 * committed in one atomic write. The central property: a process killed at any moment
 * (during a commit included) reopens with every store and the positions from the same commit,
 * the last one that completed. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "state/task_db.h"
#include "support/rng.h"

#define KEYS 2000
#define CHANGES 3000 /* per commit: commits take long enough for kills to land inside */

static char dir[256];

static void make_dir(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof(dir), "%s/brook_test_task_db_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(dir));
}

static void remove_dir(void) {
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static bk_task_db_t *open_db(void) {
  bk_task_db_t *db = NULL;
  bk_errmsg_t why;
  brook_err_t err = bk_task_db_open(&db, dir, "task-0_3", NULL, NULL, &why);
  if (err)
    fail_msg("bk_task_db_open: %s", why.text);
  return db;
}

static brook_store_t *open_store(bk_task_db_t *db, const char *name, size_t value_size,
                                 brook_err_t want) {
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.backend = bk_task_db_backend();
  o.backend_opaque = db;
  o.value_size = value_size;
  o.name = name;
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, &o, NULL), want);
  return s;
}

static void commit(bk_task_db_t *db, uint64_t version) {
  bk_errmsg_t why;
  if (bk_task_db_commit(db, &version, sizeof(version), &why) != BROOK_OK)
    fail_msg("commit: %s", why.text);
}

/* ---- the workload: counters in store "a" (in place), strings in store "b" ---- */

typedef struct model {
  uint64_t a[KEYS]; /* 0: absent */
  int b_live[KEYS];
  uint64_t b[KEYS];
} model_t;

/* One commit's worth of changes, applied to the model and (if given) the stores; both stores
 * get key "version" = v. The rng makes the parent's replay identical to the child's run. */
static void apply_round(rng_t *r, model_t *m, brook_store_t *a, brook_store_t *b, uint64_t v) {
  for (int i = 0; i < CHANGES; i++) {
    uint64_t k = (uint64_t)rng_range(r, 0, KEYS - 1);
    if (rng_range(r, 0, 1)) {
      m->a[k]++;
      if (a) {
        void *p;
        int created;
        if (brook_store_update(a, &k, sizeof(k), &p, &created) != BROOK_OK)
          _exit(10);
        uint64_t c;
        memcpy(&c, p, sizeof(c));
        c++;
        memcpy(p, &c, sizeof(c));
      }
    } else if (rng_range(r, 0, 2)) {
      m->b_live[k] = 1;
      m->b[k] = v * 1000003u + k;
      if (b && brook_store_put(b, &k, sizeof(k), &m->b[k], sizeof(m->b[k])) != BROOK_OK)
        _exit(11);
    } else {
      int was = m->b_live[k];
      m->b_live[k] = 0;
      if (b && brook_store_delete(b, &k, sizeof(k)) != (was ? BROOK_OK : BROOK_ERR_NOT_FOUND))
        _exit(12);
    }
  }
  if (a && brook_store_put(a, "version", 7, &v, sizeof(v)) != BROOK_OK)
    _exit(13);
  if (b && brook_store_put(b, "version", 7, &v, sizeof(v)) != BROOK_OK)
    _exit(14);
}

static uint64_t version_of(brook_store_t *s) {
  const void *v;
  size_t vl;
  if (brook_store_get(s, "version", 7, &v, &vl) == BROOK_ERR_NOT_FOUND)
    return 0;
  uint64_t x;
  assert_int_equal(vl, sizeof(x));
  memcpy(&x, v, sizeof(x));
  return x;
}

static void check_stores(brook_store_t *a, brook_store_t *b, const model_t *m, uint64_t v) {
  size_t na = v > 0, nb = v > 0;
  for (uint64_t k = 0; k < KEYS; k++) {
    const void *p;
    size_t vl;
    brook_err_t err = brook_store_get(a, &k, sizeof(k), &p, &vl);
    if (!m->a[k]) {
      assert_int_equal(err, BROOK_ERR_NOT_FOUND);
    } else {
      assert_int_equal(err, BROOK_OK);
      uint64_t c;
      memcpy(&c, p, sizeof(c));
      assert_int_equal(c, m->a[k]);
      na++;
    }
    err = brook_store_get(b, &k, sizeof(k), &p, &vl);
    if (!m->b_live[k]) {
      assert_int_equal(err, BROOK_ERR_NOT_FOUND);
    } else {
      assert_int_equal(err, BROOK_OK);
      assert_memory_equal(p, &m->b[k], sizeof(m->b[k]));
      nb++;
    }
  }
  assert_int_equal(brook_store_count(a), na);
  assert_int_equal(brook_store_count(b), nb);
}

#define STARTING ((uint64_t)1 << 63) /* a report: the child starts writing commit v */

/* The child: rounds and commits until killed, reporting on `fd` each commit it starts
 * (v | STARTING) and completes (v). */
static void child_run(int fd, uint64_t seed) {
  bk_task_db_t *db = open_db();
  brook_store_t *a = open_store(db, "counts", 8, BROOK_OK);
  brook_store_t *b = open_store(db, "values", 0, BROOK_OK);
  static model_t m;
  rng_t r = {seed};
  for (uint64_t v = 1;; v++) {
    apply_round(&r, &m, a, b, v);
    uint64_t starting = v | STARTING;
    if (write(fd, &starting, sizeof(starting)) != (ssize_t)sizeof(starting))
      _exit(16);
    bk_errmsg_t why;
    if (bk_task_db_commit(db, &v, sizeof(v), &why) != BROOK_OK)
      _exit(15);
    if (write(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
      _exit(16);
  }
}

static void test_killed_at_any_moment_reopens_at_one_commit(void **state) {
  (void)state;
  rng_t pick = {77};
  int landed_between = 0;
  for (int round = 0; round < 8; round++) {
    make_dir();
    uint64_t seed = 1000 + (uint64_t)round;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child_run(fds[1], seed);
    }
    close(fds[1]);
    /* Wait (on the pipe, no sleeping) until the child starts writing a random commit, and
     * kill it right then: the kill lands before, during or just after that write. */
    uint64_t want = (uint64_t)rng_range(&pick, 1, 6), msg = 0, done = 0;
    while (msg != (want | STARTING)) {
      assert_int_equal(read(fds[0], &msg, sizeof(msg)), (ssize_t)sizeof(msg));
      done = msg & STARTING ? done : msg;
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    while (read(fds[0], &msg, sizeof(msg)) == (ssize_t)sizeof(msg))
      done = msg & STARTING ? done : msg; /* reported before the kill */
    close(fds[0]);

    bk_task_db_t *db = open_db();
    brook_store_t *b = open_store(db, "values", 0, BROOK_OK); /* other order than the child */
    brook_store_t *a = open_store(db, "counts", 8, BROOK_OK);
    const void *pos;
    size_t pl;
    uint64_t v = 0; /* no commit completed: no positions, empty stores */
    if (bk_task_db_positions(db, &pos, &pl) == BROOK_OK) {
      assert_int_equal(pl, sizeof(v));
      memcpy(&v, pos, sizeof(v));
    }
    /* The last commit reported done, or the one after it (written, not yet reported); never
     * before the one whose start we saw minus one. */
    assert_true(v >= want - 1 && (v == done || v == done + 1));
    landed_between += v == want - 1;
    assert_int_equal(version_of(a), v);
    assert_int_equal(version_of(b), v);
    static model_t m;
    memset(&m, 0, sizeof(m));
    rng_t r = {seed};
    for (uint64_t i = 1; i <= v; i++)
      apply_round(&r, &m, NULL, NULL, i);
    check_stores(a, b, &m, v);
    brook_store_free(a);
    brook_store_free(b);
    bk_task_db_close(db);
    remove_dir();
  }
  print_message("kills that landed before commit 'want' was complete: %d of 8\n", landed_between);
}

/* Stores are found again by name, whatever order they are opened in; a new store gets an id
 * of its own; uncommitted changes and positions are gone after a close, committed ones stay. */
static void test_registry_and_uncommitted_changes(void **state) {
  (void)state;
  make_dir();
  bk_task_db_t *db = open_db();
  const void *pos;
  size_t pl;
  assert_int_equal(bk_task_db_positions(db, &pos, &pl), BROOK_ERR_NOT_FOUND);
  brook_store_t *x = open_store(db, "x", 0, BROOK_OK);
  brook_store_t *y = open_store(db, "y", 0, BROOK_OK);
  assert_null(open_store(db, "x", 0, BROOK_ERR_DUPLICATE));
  assert_int_equal(brook_store_put(x, "k", 1, "x1", 2), BROOK_OK);
  assert_int_equal(brook_store_put(y, "k", 1, "y1", 2), BROOK_OK);
  commit(db, 1);
  assert_int_equal(brook_store_put(x, "k", 1, "x2", 2), BROOK_OK);
  assert_int_equal(brook_store_delete(y, "k", 1), BROOK_OK);
  brook_store_free(x);
  brook_store_free(y);
  bk_task_db_close(db); /* without a commit */

  db = open_db();
  assert_int_equal(bk_task_db_positions(db, &pos, &pl), BROOK_OK);
  uint64_t v;
  memcpy(&v, pos, sizeof(v));
  assert_int_equal(v, 1);
  brook_store_t *z = open_store(db, "z", 0, BROOK_OK); /* new: must not take x's or y's id */
  y = open_store(db, "y", 0, BROOK_OK);
  x = open_store(db, "x", 0, BROOK_OK);
  assert_int_equal(brook_store_count(z), 0);
  const void *val;
  size_t vl;
  assert_int_equal(brook_store_get(x, "k", 1, &val, &vl), BROOK_OK);
  assert_memory_equal(val, "x1", 2);
  assert_int_equal(brook_store_get(y, "k", 1, &val, &vl), BROOK_OK);
  assert_memory_equal(val, "y1", 2);
  assert_int_equal(brook_store_put(z, "k", 1, "z1", 2), BROOK_OK);
  commit(db, 2);
  brook_store_free(x);
  brook_store_free(y);
  brook_store_free(z);
  bk_task_db_close(db);

  db = open_db();
  z = open_store(db, "z", 0, BROOK_OK);
  x = open_store(db, "x", 0, BROOK_OK);
  assert_int_equal(brook_store_get(z, "k", 1, &val, &vl), BROOK_OK);
  assert_memory_equal(val, "z1", 2);
  assert_int_equal(brook_store_get(x, "k", 1, &val, &vl), BROOK_OK);
  assert_memory_equal(val, "x1", 2);
  brook_store_free(x);
  brook_store_free(z);
  bk_task_db_close(db);
  remove_dir();
}

/* A task's store's own flush reports in-place changes to its listener but writes nothing:
 * only the task's commit does. */
static brook_err_t count_calls(const void *key, size_t key_len, const void *value, size_t value_len,
                               void *opaque) {
  (void)key, (void)key_len, (void)value, (void)value_len;
  ++*(int *)opaque;
  return BROOK_OK;
}

static void test_store_flush_reports_and_commit_writes(void **state) {
  (void)state;
  make_dir();
  bk_task_db_t *db = open_db();
  brook_store_t *s = open_store(db, "counts", 8, BROOK_OK);
  int calls = 0;
  brook_store_set_listener(s, count_calls, &calls);
  uint64_t k = 5;
  void *p;
  int created;
  assert_int_equal(brook_store_update(s, &k, sizeof(k), &p, &created), BROOK_OK);
  memset(p, 1, 8);
  assert_int_equal(brook_store_flush_changes(s), BROOK_OK);
  assert_int_equal(calls, 1);
  brook_store_free(s);
  bk_task_db_close(db);
  db = open_db();
  s = open_store(db, "counts", 8, BROOK_OK);
  assert_int_equal(brook_store_count(s), 0); /* flushed, never committed */
  assert_int_equal(brook_store_update(s, &k, sizeof(k), &p, &created), BROOK_OK);
  memset(p, 2, 8);
  commit(db, 9);
  brook_store_free(s);
  bk_task_db_close(db);
  db = open_db();
  s = open_store(db, "counts", 8, BROOK_OK);
  assert_int_equal(brook_store_count(s), 1);
  brook_store_free(s);
  bk_task_db_close(db);
  remove_dir();
}

/* The commit in two steps (prepare at the commit's begin, write once its outputs are
 * acknowledged): the stores keep changing while the write is in flight, and what is written
 * is exactly the state at the prepare; changes after it are written by the next commit; an
 * aborted write loses nothing. Reopened without a later commit after each write, the stores
 * must equal the model at the prepare. */
static void reopen(bk_task_db_t **db, brook_store_t **a, brook_store_t **b) {
  brook_store_free(*a);
  brook_store_free(*b);
  bk_task_db_close(*db); /* the changes after the prepare are lost */
  *db = open_db();
  *a = open_store(*db, "counts", 8, BROOK_OK);
  *b = open_store(*db, "values", 0, BROOK_OK);
}

static void test_prepared_write_is_the_state_at_prepare(void **state) {
  (void)state;
  make_dir();
  bk_task_db_t *db = open_db();
  brook_store_t *a = open_store(db, "counts", 8, BROOK_OK);
  brook_store_t *b = open_store(db, "values", 0, BROOK_OK);
  static model_t m, at_prepare;
  rng_t r = {42};
  for (uint64_t v = 1; v <= 8; v++) {
    apply_round(&r, &m, a, b, v);
    at_prepare = m;
    bk_errmsg_t why;
    assert_int_equal(bk_task_db_prepare(db, &v, sizeof(v), &why), BROOK_OK);
    assert_true(bk_task_db_prepared(db));
    apply_round(&r, &m, a, b, v + 1000); /* in flight: not in this write */
    if (v % 3 == 0) {                    /* aborted, then prepared again: now with these */
      bk_task_db_abort(db);
      assert_false(bk_task_db_prepared(db));
      at_prepare = m;
      assert_int_equal(bk_task_db_prepare(db, &v, sizeof(v), &why), BROOK_OK);
      apply_round(&r, &m, a, b, v + 2000);
    }
    bk_task_db_written_t wr = {0, 0};
    assert_int_equal(bk_task_db_write(db, &wr, &why), BROOK_OK);
    assert_true(wr.entries > 0 && wr.bytes > wr.entries);
    assert_int_equal(bk_task_db_write(db, NULL, &why), BROOK_ERR_STATE); /* nothing prepared */
    if (v % 2 == 0) { /* the changes after the prepare are written by the next commit */
      check_stores(a, b, &m, v + 1000);
      assert_int_equal(bk_task_db_prepare(db, &v, sizeof(v), &why), BROOK_OK);
      assert_int_equal(bk_task_db_write(db, NULL, &why), BROOK_OK);
      at_prepare = m;
    }
    reopen(&db, &a, &b);
    const void *pos;
    size_t pl;
    assert_int_equal(bk_task_db_positions(db, &pos, &pl), BROOK_OK);
    uint64_t got;
    memcpy(&got, pos, sizeof(got));
    assert_int_equal(got, v);
    check_stores(a, b, &at_prepare, v);
    m = at_prepare;
  }
  brook_store_free(a);
  brook_store_free(b);
  bk_task_db_close(db);
  remove_dir();
}

/* A deletion and a put of the same key on either side of the prepare. */
static void test_changes_across_the_prepare(void **state) {
  (void)state;
  make_dir();
  bk_task_db_t *db = open_db();
  brook_store_t *s = open_store(db, "s", 0, BROOK_OK);
  bk_errmsg_t why;
  uint64_t v = 1;
  assert_int_equal(brook_store_put(s, "k", 1, "on-disk", 7), BROOK_OK);
  commit(db, v);
  /* deleted, prepared (a tombstone in the write), put again: the write deletes it, the next
   * commit puts it */
  assert_int_equal(brook_store_delete(s, "k", 1), BROOK_OK);
  assert_int_equal(bk_task_db_prepare(db, &v, sizeof(v), &why), BROOK_OK);
  assert_int_equal(brook_store_put(s, "k", 1, "again", 5), BROOK_OK);
  /* new, prepared (a put in the write), deleted: the write puts it, the next deletes it */
  assert_int_equal(brook_store_put(s, "n", 1, "new", 3), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "k", 1), BROOK_OK);
  assert_int_equal(brook_store_put(s, "k", 1, "again", 5), BROOK_OK);
  assert_int_equal(bk_task_db_write(db, NULL, &why), BROOK_OK);
  assert_int_equal(bk_task_db_prepare(db, &v, sizeof(v), &why), BROOK_OK);
  assert_int_equal(brook_store_delete(s, "n", 1), BROOK_OK);
  assert_int_equal(bk_task_db_write(db, NULL, &why), BROOK_OK); /* k again, n new */
  assert_int_equal(brook_store_count(s), 1);
  brook_store_free(s);
  bk_task_db_close(db);
  db = open_db();
  s = open_store(db, "s", 0, BROOK_OK);
  const void *val;
  size_t vl;
  assert_int_equal(brook_store_get(s, "k", 1, &val, &vl), BROOK_OK);
  assert_memory_equal(val, "again", 5);
  assert_int_equal(brook_store_get(s, "n", 1, &val, &vl), BROOK_OK);
  assert_int_equal(brook_store_count(s), 2);
  assert_int_equal(brook_store_delete(s, "n", 1), BROOK_OK); /* the delete after that prepare */
  commit(db, 2);
  brook_store_free(s);
  bk_task_db_close(db);
  db = open_db();
  s = open_store(db, "s", 0, BROOK_OK);
  assert_int_equal(brook_store_get(s, "n", 1, &val, &vl), BROOK_ERR_NOT_FOUND);
  assert_int_equal(brook_store_count(s), 1);
  brook_store_free(s);
  bk_task_db_close(db);
  remove_dir();
}

/* A store's cache past its size asks for a commit (once per write) and writes nothing. */
static void on_full(void *opaque) { ++*(int *)opaque; }

static void test_full_cache_asks_for_a_commit(void **state) {
  (void)state;
  make_dir();
  brook_rocksdb_opts_t ro;
  brook_rocksdb_opts_init(&ro);
  ro.cache_bytes = 64 << 10;
  bk_task_db_t *db = NULL;
  bk_errmsg_t why;
  assert_int_equal(bk_task_db_open(&db, dir, "task-0_3", &ro, NULL, &why), BROOK_OK);
  int full = 0;
  bk_task_db_on_full(db, on_full, &full);
  brook_store_t *s = open_store(db, "s", 0, BROOK_OK);
  char val[100] = {0};
  uint64_t k;
  for (k = 0; k < 5000; k++)
    assert_int_equal(brook_store_put(s, &k, sizeof(k), val, sizeof(val)), BROOK_OK);
  assert_int_equal(full, 1); /* once, and the cache kept growing: nothing uncommitted written */
  brook_store_free(s);
  bk_task_db_close(db);
  assert_int_equal(bk_task_db_open(&db, dir, "task-0_3", &ro, NULL, &why), BROOK_OK);
  s = open_store(db, "s", 0, BROOK_OK);
  assert_int_equal(brook_store_count(s), 0);
  bk_task_db_on_full(db, on_full, &full);
  for (k = 0; k < 5000; k++)
    assert_int_equal(brook_store_put(s, &k, sizeof(k), val, sizeof(val)), BROOK_OK);
  assert_int_equal(full, 2);
  commit(db, 1);
  for (k = 5000; k < 10000; k++)
    assert_int_equal(brook_store_put(s, &k, sizeof(k), val, sizeof(val)), BROOK_OK);
  assert_int_equal(full, 3); /* again after the write */
  assert_int_equal(brook_store_count(s), 10000);
  brook_store_free(s);
  bk_task_db_close(db);
  remove_dir();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_killed_at_any_moment_reopens_at_one_commit),
      cmocka_unit_test(test_registry_and_uncommitted_changes),
      cmocka_unit_test(test_store_flush_reports_and_commit_writes),
      cmocka_unit_test(test_prepared_write_is_the_state_at_prepare),
      cmocka_unit_test(test_changes_across_the_prepare),
      cmocka_unit_test(test_full_cache_asks_for_a_commit),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
