/* The runtime option state_dir: each task of a partitioned source keeps its stores in a RocksDB
 * database of its own, <state_dir>/<sub-topology>_<partition>; operators compute the same
 * results as with state in memory; and a stateful node with a generated name is refused (state
 * on disk is found again by name); a generator's tasks write their state when their splits
 * end, so a second run on the directory continues the counts; errors (a directory that cannot be
 * made, one in use, stored positions that cannot be read) are clear and name the directory.
 * Persistence across runs through Kafka: test_kafka_state_dir.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "runtime/positions.h"
#include "state/task_db.h"
#include "tempfiles.h"

#define SPLITS 2
#define N_KEYS 10
#define PER_KEY 50

static char key_names[N_KEYS][8];

typedef struct gen {
  uint64_t next[SPLITS];
} gen_t;

/* Split s cycles through its own keys until each got PER_KEY records. */
static brook_err_t keyed_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  gen_t *g = opaque;
  size_t s = brook_ctx_split(ctx);
  for (;;) {
    uint64_t i = g->next[s]++;
    if (i >= (uint64_t)N_KEYS * PER_KEY)
      return BROOK_DONE;
    int k = (int)(i % N_KEYS);
    if (brook_key_split(key_names[k], strlen(key_names[k]), SPLITS) != s)
      continue;
    out->key = key_names[k];
    out->key_len = strlen(key_names[k]);
    out->value = NULL;
    out->value_len = 0;
    out->timestamp = (brook_time_t)i;
    return BROOK_OK;
  }
}

typedef struct last {
  int64_t count[N_KEYS];
  int records;
} last_t;

static brook_err_t on_count(const brook_record_t *rec, void *opaque) {
  last_t *l = opaque;
  for (int k = 0; k < N_KEYS; k++)
    if (rec->key_len == strlen(key_names[k]) && memcmp(rec->key, key_names[k], rec->key_len) == 0)
      memcpy(&l->count[k], rec->value, sizeof(int64_t));
  l->records++;
  return BROOK_OK;
}

static brook_topology_t *counting(gen_t *g, last_t *l, int named) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.splits = SPLITS;
  go.partitioned_by_key = 1;
  brook_stream_t *s = brook_source_generator(t, "gen", keyed_gen, g, &go);
  brook_aggregate_opts_t ao;
  brook_aggregate_opts_init(&ao);
  ao.name = named ? "counts" : NULL;
  assert_int_equal(brook_sink_callback(brook_count(s, &ao), on_count, NULL, l), BROOK_OK);
  return t;
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Runs the counting pipeline with state in `state_dir` into *l (may be NULL); the run's
 * message in msg[cap]. */
static brook_err_t run_counting_on(const char *state_dir, last_t *l, char *msg, size_t cap) {
  gen_t g = {{0}};
  last_t ignored = {{0}, 0};
  brook_topology_t *t = counting(&g, l ? l : &ignored, 1);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.state_dir = state_dir;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  brook_err_t err = brook_runtime_run(rt);
  snprintf(msg, cap, "%s", brook_runtime_last_error(rt));
  brook_runtime_free(rt);
  brook_topology_free(t);
  return err;
}

static void test_tasks_keep_state_in_their_directories(void **state) {
  (void)state;
  char *dir = temp_dir_new("state_dir");
  last_t l = {{0}, 0};
  char msg[1024];
  assert_int_equal(run_counting_on(dir, &l, msg, sizeof(msg)), BROOK_OK);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(l.count[k], PER_KEY);
  assert_int_equal(l.records, N_KEYS * PER_KEY);
  char path[600];
  for (int s = 0; s < SPLITS; s++) {
    snprintf(path, sizeof(path), "%s/0_%d", dir, s);
    assert_true(is_dir(path));
    snprintf(path, sizeof(path), "%s/0_%d/CURRENT", dir, s); /* a RocksDB database */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
  }
  /* Each split's task wrote its state when the split ended: a second run continues it. */
  last_t again = {{0}, 0};
  assert_int_equal(run_counting_on(dir, &again, msg, sizeof(msg)), BROOK_OK);
  for (int k = 0; k < N_KEYS; k++)
    assert_int_equal(again.count[k], 2 * PER_KEY);
  temp_dir_free(dir);
}

static void test_generated_name_refused(void **state) {
  (void)state;
  gen_t g = {{0}};
  last_t l = {{0}, 0};
  brook_topology_t *t = counting(&g, &l, 0);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.state_dir = "/tmp/brook-never-created";
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_null(rt);
  const char *msg = brook_topology_last_error(t);
  assert_non_null(strstr(msg, "state_dir"));
  assert_non_null(strstr(msg, "no name"));
  assert_false(is_dir("/tmp/brook-never-created"));
  brook_topology_free(t);
}

static void test_empty_dir_refused(void **state) {
  (void)state;
  gen_t g = {{0}};
  last_t l = {{0}, 0};
  brook_topology_t *t = counting(&g, &l, 1);
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.state_dir = "";
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(brook_topology_last_error(t), "state_dir is empty"));
  brook_topology_free(t);
}

/* ---- errors: clear, naming the directory, and no crash ---- */

static void test_unwritable_dir(void **state) {
  (void)state;
  char *dir = temp_dir_new("state_dir");
  char file[600], below[700], msg[1024];
  snprintf(file, sizeof(file), "%s/a-file", dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(below, sizeof(below), "%s/state", file); /* a directory under a regular file */
  assert_int_equal(run_counting_on(below, NULL, msg, sizeof(msg)), BROOK_ERR_IO);
  if (!strstr(msg, below))
    fail_msg("the message does not name %s: %s", below, msg);
  temp_dir_free(dir);
}

/* A second runtime (or process) on the same state_dir: RocksDB's lock refuses the task
 * database another holds. The holder here is the task database itself, opened directly. */
static void test_dir_in_use(void **state) {
  (void)state;
  char *dir = temp_dir_new("state_dir");
  bk_task_db_t *holder = NULL;
  bk_errmsg_t why;
  assert_int_equal(bk_task_db_open(&holder, dir, "0_1", NULL, NULL, &why), BROOK_OK);
  char msg[1024], path[600];
  assert_int_equal(run_counting_on(dir, NULL, msg, sizeof(msg)), BROOK_ERR_IO);
  snprintf(path, sizeof(path), "%s/0_1", dir);
  if (!strstr(msg, path))
    fail_msg("the message does not name %s: %s", path, msg);
  bk_task_db_close(holder);
  char again[1024];
  assert_int_equal(run_counting_on(dir, NULL, again, sizeof(again)), BROOK_OK); /* free again */
  temp_dir_free(dir);
}

/* Positions the runtime cannot read (a later version, or damaged): BROOK_ERR_CORRUPT naming
 * the task's directory, never a resume at a wrong place. */
static void test_unreadable_positions(void **state) {
  (void)state;
  char *dir = temp_dir_new("state_dir");
  static const unsigned char later[] = {9, 0, 0, 0, 0};
  static const unsigned char cut[] = {1, 0, 0, 0, 1, 0, 5, 'a'};
  const struct {
    const unsigned char *bytes;
    size_t len;
    const char *says;
  } cases[] = {{later, sizeof(later), "version 9"}, {cut, sizeof(cut), "truncated"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bk_task_db_t *db = NULL;
    bk_errmsg_t why;
    assert_int_equal(bk_task_db_open(&db, dir, "0_0", NULL, NULL, &why), BROOK_OK);
    assert_int_equal(bk_task_db_commit(db, cases[i].bytes, cases[i].len, &why), BROOK_OK);
    bk_task_db_close(db);
    char msg[1024], path[600];
    assert_int_equal(run_counting_on(dir, NULL, msg, sizeof(msg)), BROOK_ERR_CORRUPT);
    snprintf(path, sizeof(path), "%s/0_0", dir);
    if (!strstr(msg, path) || !strstr(msg, cases[i].says))
      fail_msg("the message does not name %s and '%s': %s", path, cases[i].says, msg);
  }
  temp_dir_free(dir);
}

/* The positions encoding round trip. */
static void test_positions_encoding(void **state) {
  (void)state;
  bk_positions_t p;
  bk_positions_init(&p, NULL);
  size_t len;
  const void *d = bk_positions_data(&p, &len);
  bk_errmsg_t why;
  assert_int_equal(bk_positions_check(d, len, "t", &why), BROOK_OK);
  assert_int_equal(bk_positions_count(d, len), 0);
  assert_int_equal(bk_positions_add(&p, "in", 3, 1234567890123LL), BROOK_OK);
  assert_int_equal(bk_positions_add(&p, "other", 3, 0), BROOK_OK);
  d = bk_positions_data(&p, &len);
  assert_int_equal(bk_positions_check(d, len, "t", &why), BROOK_OK);
  assert_int_equal(bk_positions_count(d, len), 2);
  int64_t off = -1;
  assert_true(bk_positions_find(d, len, "in", 3, &off));
  assert_int_equal(off, 1234567890123LL);
  assert_true(bk_positions_find(d, len, "other", 3, &off));
  assert_int_equal(off, 0);
  assert_false(bk_positions_find(d, len, "in", 2, &off));
  assert_false(bk_positions_find(d, len, "i", 3, &off));
  for (size_t cut = 0; cut < len; cut++) /* every truncation is refused */
    assert_int_equal(bk_positions_check(d, cut, "t", &why), BROOK_ERR_CORRUPT);
  bk_positions_reset(&p);
  d = bk_positions_data(&p, &len);
  assert_int_equal(bk_positions_count(d, len), 0);
  bk_positions_free(&p);
}

static void collect_warning(int level, const char *msg, void *opaque) {
  if (level == BROOK_LOG_WARN && strstr(msg, "keeps its state in memory"))
    snprintf(opaque, 256, "%s", msg);
}

/* Many distinct keys in one window: 60,000 records, each a new key. */
#define MANY_KEYS 60000

static brook_err_t many_keys_gen(brook_record_t *out, brook_ctx_t *ctx, void *opaque) {
  (void)ctx;
  uint64_t *next = opaque;
  static char keys[MANY_KEYS][12]; /* a batch's records borrow their keys until it is done */
  if (*next >= MANY_KEYS)
    return BROOK_DONE;
  char *key = keys[*next];
  out->key = key;
  out->key_len = (size_t)snprintf(key, 12, "key%06llu", (unsigned long long)(*next)++);
  out->value = NULL;
  out->value_len = 0;
  out->timestamp = 0;
  return BROOK_OK;
}

static brook_err_t count_results(const brook_record_t *rec, void *opaque) {
  brook_window_value_t wv;
  const void *res;
  int64_t c;
  assert_int_equal(brook_window_parse(rec, &wv, &res), BROOK_OK);
  memcpy(&c, res, sizeof(c));
  assert_int_equal(c, 1);
  (*(uint64_t *)opaque)++;
  return BROOK_OK;
}

/* A window on disk keeps what changed since the last commit in memory, in front of its stores;
 * once that passes the cache size (state_cache_bytes) it asks for a commit, as a full write
 * cache does, so its memory stays bounded whatever the commit interval (an hour here). */
static void test_window_asks_for_commit(void **state) {
  (void)state;
  uint64_t next = 0, results = 0;
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  brook_generator_opts_t go;
  brook_generator_opts_init(&go);
  go.partitioned_by_key = 1;
  brook_stream_t *s = brook_source_generator(t, "gen", many_keys_gen, &next, &go);
  brook_window_t w = brook_window_tumbling(BROOK_S);
  brook_aggregator_t count = brook_agg_count();
  brook_window_opts_t wo;
  brook_window_opts_init(&wo);
  wo.name = "win";
  assert_int_equal(brook_sink_callback(brook_window_aggregate(s, &w, &count, &wo), count_results,
                                       NULL, &results),
                   BROOK_OK);
  char *dir = temp_dir_new("state_dir");
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  o.state_dir = dir;
  o.state_cache_bytes = 64 << 10;
  o.commit_interval_ms = 3600 * 1000;
  brook_runtime_t *rt = NULL;
  assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
  if (brook_runtime_run(rt) != BROOK_OK)
    fail_msg("run: %s", brook_runtime_last_error(rt));
  brook_runtime_stats_t st = {.struct_size = sizeof(st)};
  assert_int_equal(brook_runtime_stats(rt, &st), BROOK_OK);
  assert_int_equal(results, MANY_KEYS);
  /* 60,000 entries of some 50 bytes over a 64 KiB cache: dozens of early commits. */
  if (st.state_commits < 10)
    fail_msg("%llu commits: the window did not ask for early ones",
             (unsigned long long)st.state_commits);
  brook_runtime_free(rt);
  brook_topology_free(t);
  temp_dir_free(dir);
}

/* Sliding windows and hopping ones of more than 64 slices (size / gcd(size, advance)) have no
 * disk layout: with state_dir the runtime says so, naming each, instead of letting a restart
 * lose their windows silently. Hopping windows of few slices are on disk: no warning. */
static void test_windows_in_memory_warned(void **state) {
  (void)state;
  for (int kind = 0; kind < 3; kind++) {
    int sliding = kind == 2;
    gen_t g = {{0}};
    brook_topology_t *t = NULL;
    assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
    brook_generator_opts_t go;
    brook_generator_opts_init(&go);
    go.splits = SPLITS;
    go.partitioned_by_key = 1;
    brook_stream_t *s = brook_source_generator(t, "gen", keyed_gen, &g, &go);
    brook_window_t w = sliding     ? brook_window_sliding(100)
                       : kind == 1 ? brook_window_hopping(1000, 10) /* 100 slices */
                                   : brook_window_hopping(100, 10); /* 10: on disk */
    brook_aggregator_t count = brook_agg_count();
    brook_window_opts_t wo;
    brook_window_opts_init(&wo);
    wo.name = "win";
    last_t l = {{0}, 0};
    assert_int_equal(
        brook_sink_callback(brook_window_aggregate(s, &w, &count, &wo), on_count, NULL, &l),
        BROOK_OK);
    char *dir = temp_dir_new("state_dir");
    char warned[256] = "";
    brook_runtime_opts_t o;
    brook_runtime_opts_init(&o);
    o.state_dir = dir;
    o.log = collect_warning;
    o.log_opaque = warned;
    brook_runtime_t *rt = NULL;
    assert_int_equal(brook_runtime_new(&rt, t, &o), BROOK_OK);
    if (kind == 0) {
      assert_string_equal(warned, "");
    } else {
      assert_non_null(strstr(warned, "'win'"));
      assert_non_null(strstr(warned, sliding ? "window_sliding" : "window_hopping"));
    }
    brook_runtime_free(rt);
    brook_topology_free(t);
    temp_dir_free(dir);
  }
}

static brook_err_t key_is_value(const brook_record_t *rec, const void **key, size_t *key_len,
                                brook_ctx_t *ctx, void *opaque) {
  (void)ctx, (void)opaque;
  *key = rec->value;
  *key_len = rec->value_len;
  return BROOK_OK;
}

/* A repartition topic is named from the node that changes the key: with state on disk that
 * node needs a name of its own, like a stateful one. */
static void test_unnamed_key_change_before_repartition_refused(void **state) {
  (void)state;
  for (int named = 0; named < 2; named++) {
    brook_topology_t *t = NULL;
    assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
    brook_kafka_source_opts_t so;
    brook_kafka_source_opts_init(&so);
    so.bootstrap_servers = "127.0.0.1:9"; /* never contacted: runtime_new stays offline */
    so.group_id = "g";
    so.topics = (const char *const[]){"in", NULL};
    brook_stream_t *s = brook_key_by(brook_source_kafka(t, "in", &so), key_is_value, NULL);
    if (named)
      s = brook_stream_set_name(s, "by_value");
    brook_aggregate_opts_t ao;
    brook_aggregate_opts_init(&ao);
    ao.name = "counts";
    last_t l = {{0}, 0};
    assert_int_equal(brook_sink_callback(brook_count(s, &ao), on_count, NULL, &l), BROOK_OK);
    brook_runtime_opts_t o;
    brook_runtime_opts_init(&o);
    o.state_dir = "/tmp/brook-never-created";
    brook_runtime_t *rt = NULL;
    brook_err_t err = brook_runtime_new(&rt, t, &o);
    if (named) {
      assert_int_equal(err, BROOK_OK);
    } else {
      assert_int_equal(err, BROOK_ERR_INVALID_ARG);
      const char *msg = brook_topology_last_error(t);
      assert_non_null(strstr(msg, "'key_by#"));
      assert_non_null(strstr(msg, "repartition topic"));
    }
    brook_runtime_free(rt);
    brook_topology_free(t);
  }
  assert_false(is_dir("/tmp/brook-never-created"));
}

int main(void) {
  for (int k = 0; k < N_KEYS; k++)
    snprintf(key_names[k], sizeof(key_names[k]), "key%d", k);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tasks_keep_state_in_their_directories),
      cmocka_unit_test(test_generated_name_refused),
      cmocka_unit_test(test_empty_dir_refused),
      cmocka_unit_test(test_unwritable_dir),
      cmocka_unit_test(test_dir_in_use),
      cmocka_unit_test(test_unreadable_positions),
      cmocka_unit_test(test_positions_encoding),
      cmocka_unit_test(test_windows_in_memory_warned),
      cmocka_unit_test(test_window_asks_for_commit),
      cmocka_unit_test(test_unnamed_key_change_before_repartition_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
