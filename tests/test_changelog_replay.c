/* The changelog's record layout (src/kafka/changelog_format.c) and its exactly-once replay
 * rules (src/kafka/changelog_replay.c), without Kafka: a model log written by writers that
 * get killed at random (mid-epoch, after a marker), restored by each new incarnation (which
 * compensates the dropped tail), and compacted at random points like Kafka's log cleaner;
 * every restore must equal the state of the last commit exactly. Seeds are printed
 * (BROOK_SEED=n reruns one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/changelog_format.h"
#include "kafka/changelog_replay.h"
#include "support/fail_alloc.h"
#include "support/rng.h"

/* ---- format ---- */

static void test_marker_round_trip_and_damage(void **state) {
  (void)state;
  unsigned char v[64];
  const char blob[] = "positions";
  bk_cl_marker_encode(v, 7, 3, blob, 9);
  bk_cl_marker_t m;
  const char *why = NULL;
  assert_int_equal(bk_cl_marker_decode(v, BK_CL_MARKER_OVERHEAD + 9, &m, &why), BROOK_OK);
  assert_true(m.epoch == 7 && m.prev == 3 && m.blob_len == 9);
  assert_memory_equal(m.blob, blob, 9);
  /* Truncated blob: the frame says 9 bytes, fewer arrived. */
  assert_int_equal(bk_cl_marker_decode(v, BK_CL_MARKER_OVERHEAD + 5, &m, &why), BROOK_ERR_CORRUPT);
  assert_string_equal(why, "marker positions blob truncated");
  assert_int_equal(bk_cl_marker_decode(v, 10, &m, &why), BROOK_ERR_CORRUPT);
  /* A flipped bit anywhere: the checksum. */
  v[14] ^= 0x10;
  assert_int_equal(bk_cl_marker_decode(v, BK_CL_MARKER_OVERHEAD + 9, &m, &why), BROOK_ERR_CORRUPT);
  assert_string_equal(why, "marker checksum mismatch");
  v[14] ^= 0x10;
  v[0] = 'X';
  assert_int_equal(bk_cl_marker_decode(v, BK_CL_MARKER_OVERHEAD + 9, &m, &why), BROOK_ERR_CORRUPT);
  /* prev >= epoch is never written. */
  bk_cl_marker_encode(v, 3, 3, NULL, 0);
  assert_int_equal(bk_cl_marker_decode(v, BK_CL_MARKER_OVERHEAD, &m, &why), BROOK_ERR_CORRUPT);
}

static void test_keys_never_collide_with_the_marker(void **state) {
  (void)state;
  /* Plain keys stay as they are; a key with the reserved prefix is escaped and comes back. */
  assert_int_equal(bk_cl_key_kind("abc", 3), BK_CL_KEY_PLAIN);
  assert_int_equal(bk_cl_key_kind("", 0), BK_CL_KEY_PLAIN);
  assert_int_equal(bk_cl_key_kind(bk_cl_marker_key, BK_CL_MARKER_KEY_LEN), BK_CL_KEY_MARKER);
  unsigned char user[16], esc[17], back[16];
  /* The user keys closest to the marker key: the prefix itself, prefix + 01 (the marker's
   * bytes), prefix + 00, prefix + 01 + more. */
  const unsigned char tails[][2] = {{0, 0}, {1, 0}, {0, 0}, {1, 9}};
  const size_t lens[] = {7, 8, 8, 9};
  for (size_t i = 0; i < 4; i++) {
    memcpy(user, bk_cl_prefix, BK_CL_PREFIX_LEN);
    memcpy(user + 7, tails[i], 2);
    assert_true(bk_cl_key_needs_escape(user, lens[i]));
    bk_cl_key_escape(esc, user, lens[i]);
    assert_int_equal(bk_cl_key_kind(esc, lens[i] + 1), BK_CL_KEY_ESCAPED);
    assert_false(lens[i] + 1 == BK_CL_MARKER_KEY_LEN &&
                 memcmp(esc, bk_cl_marker_key, BK_CL_MARKER_KEY_LEN) == 0);
    bk_cl_key_unescape(back, esc, lens[i] + 1);
    assert_memory_equal(back, user, lens[i]);
  }
  /* Bytes brook never writes under the prefix. */
  unsigned char bad[9];
  memcpy(bad, bk_cl_prefix, 7);
  bad[7] = 2;
  assert_int_equal(bk_cl_key_kind(bad, 8), BK_CL_KEY_BAD);
  assert_int_equal(bk_cl_key_kind(bad, 7), BK_CL_KEY_BAD);
}

static void test_epochs(void **state) {
  (void)state;
  uint64_t e = bk_cl_first_epoch(0);
  assert_true(e > 0);
  /* A new incarnation is above everything seen, whatever its sequence. */
  uint64_t seen[] = {1, e, e + 5, ((uint64_t)77 << BK_CL_SEQ_BITS) - 1, (uint64_t)77 << 24};
  for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
    uint64_t f = bk_cl_first_epoch(seen[i]);
    assert_true(f > seen[i]);
    assert_true((f >> BK_CL_SEQ_BITS) > (seen[i] >> BK_CL_SEQ_BITS)); /* a new incarnation */
  }
  /* A writer's sequence overflow moves on, still increasing. */
  uint64_t last = ((uint64_t)5 << BK_CL_SEQ_BITS) | (((uint64_t)1 << BK_CL_SEQ_BITS) - 1);
  assert_true(bk_cl_next_epoch(last) > last);
  assert_int_equal(bk_cl_next_epoch(e), e + 1);
}

/* ---- replay against a model ---- */

#define N_KEYS 24
#define MAX_LOG 20000

typedef struct rec {
  int key;   /* -1: marker */
  int value; /* -1: tombstone */
  uint64_t epoch, committed, prev;
  int64_t offset;
} rec_t;

typedef struct model {
  rec_t log[MAX_LOG];
  size_t n;
  int64_t next_offset;
  int committed_state[N_KEYS]; /* the state as of the last marker (-1: absent) */
} model_t;

typedef struct restored {
  int v[N_KEYS];
} restored_t;

static int key_of(const void *k, size_t klen) {
  char buf[8] = {0};
  memcpy(buf, k, klen < 7 ? klen : 7);
  return atoi(buf + 1);
}

static brook_err_t apply_model(const void *key, size_t klen, const void *value, size_t vlen,
                               void *opaque) {
  restored_t *r = opaque;
  int k = key_of(key, klen);
  if (!value) {
    r->v[k] = -1;
  } else {
    char buf[16] = {0};
    memcpy(buf, value, vlen < 15 ? vlen : 15);
    r->v[k] = atoi(buf + 1);
  }
  return BROOK_OK;
}

/* Replays the whole model log; fills *out and the replay (caller frees it). */
static brook_err_t replay_log_with(const model_t *m, const brook_allocator_t *a, bk_cl_replay_t *rp,
                                   restored_t *out, size_t max_pending, bk_errmsg_t *why) {
  for (int k = 0; k < N_KEYS; k++)
    out->v[k] = -1;
  bk_cl_replay_init(rp, a, "t-changelog", 0, max_pending, 0, apply_model, out);
  for (size_t i = 0; i < m->n; i++) {
    const rec_t *r = &m->log[i];
    brook_err_t err;
    if (r->key < 0) {
      err = bk_cl_replay_marker(rp, r->offset, r->epoch, r->prev, "pos", 3, why);
    } else {
      char k[16], v[16];
      snprintf(k, sizeof(k), "k%02d", r->key);
      snprintf(v, sizeof(v), "v%d", r->value);
      err = bk_cl_replay_record(rp, r->offset, r->epoch, r->committed, k, strlen(k),
                                r->value < 0 ? NULL : v, r->value < 0 ? 0 : strlen(v), why);
    }
    if (err)
      return err;
  }
  return bk_cl_replay_finish(rp, why);
}

static brook_err_t replay_log(const model_t *m, bk_cl_replay_t *rp, restored_t *out,
                              size_t max_pending, bk_errmsg_t *why) {
  return replay_log_with(m, NULL, rp, out, max_pending, why);
}

static void append(model_t *m, rec_t r) {
  assert_true(m->n < MAX_LOG);
  r.offset = m->next_offset++;
  m->log[m->n++] = r;
}

/* Kafka's cleaner up to offset `upto`: a record goes when a later record of its key lies
 * below `upto` (markers share one key). */
static void compact(model_t *m, int64_t upto) {
  size_t out = 0;
  for (size_t i = 0; i < m->n; i++) {
    int keep = 1;
    if (m->log[i].offset < upto)
      for (size_t j = i + 1; j < m->n && m->log[j].offset < upto; j++)
        if (m->log[j].key == m->log[i].key) {
          keep = 0;
          break;
        }
    if (keep)
      m->log[out++] = m->log[i];
  }
  m->n = out;
}

/* Where the cleaner may reach: not into the tail after the last marker. The changelog's
 * min.compaction.lag.ms keeps the cleaner off records younger than that lag, and the next
 * owner compensates a dead tail as soon as it restores, well within it; without that, a dead
 * record could supersede its key's committed record before it is compensated. */
static int64_t cleanable_end(const model_t *m) {
  for (size_t i = m->n; i-- > 0;)
    if (m->log[i].key < 0)
      return m->log[i].offset + 1;
  return 0;
}

static uint64_t below(rng_t *r, uint64_t n) { return (uint64_t)rng_range(r, 0, (int64_t)n - 1); }

static void run_seed(uint64_t seed) {
  rng_t rng = {seed};
  static model_t m;
  memset(&m, 0, sizeof(m));
  for (int k = 0; k < N_KEYS; k++)
    m.committed_state[k] = -1;
  int kills = 0, compactions = 0, dead_dropped = 0;
  for (int incarnation = 0; incarnation < 12; incarnation++) {
    /* Restore what the log holds now, maybe after the cleaner ran over part of it. */
    if (m.n && below(&rng, 2)) {
      compact(&m, (int64_t)below(&rng, (uint64_t)cleanable_end(&m) + 1));
      compactions++;
    }
    bk_cl_replay_t rp;
    restored_t st;
    bk_errmsg_t why = {{0}};
    brook_err_t err = replay_log(&m, &rp, &st, 1 << 20, &why);
    if (getenv("BROOK_DUMP"))
      for (size_t i = 0; i < m.n; i++)
        print_message("  off %lld key %d val %d epoch %llx committed %llx prev %llx\n",
                      (long long)m.log[i].offset, m.log[i].key, m.log[i].value,
                      (unsigned long long)m.log[i].epoch, (unsigned long long)m.log[i].committed,
                      (unsigned long long)m.log[i].prev);
    if (err)
      fail_msg("seed %llu: replay failed: %s", (unsigned long long)seed, why.text);
    for (int k = 0; k < N_KEYS; k++)
      if (st.v[k] != m.committed_state[k])
        fail_msg("seed %llu incarnation %d: key %d restored %d, committed %d",
                 (unsigned long long)seed, incarnation, k, st.v[k], m.committed_state[k]);
    dead_dropped += (int)rp.dropped;
    /* A new writer: epochs above all seen, compensation of the tail first. */
    uint64_t epoch = bk_cl_first_epoch(rp.max_epoch), committed = rp.marker_epoch;
    assert_true(epoch > rp.max_epoch);
    int store[N_KEYS];
    memcpy(store, st.v, sizeof(store));
    for (size_t i = 0; i < rp.n_tail; i++) {
      const void *k;
      size_t kl;
      bk_cl_replay_tail_key(&rp, i, &k, &kl);
      int key = key_of(k, kl);
      append(&m, (rec_t){key, store[key], epoch, committed, 0, 0});
    }
    bk_cl_replay_free(&rp);
    /* Run: commits of a few changes each, then a kill (mid-epoch or right after a marker). */
    int commits = 1 + (int)below(&rng, 6);
    for (int c = 0; c <= commits; c++) {
      int changes = (int)below(&rng, 8);
      int last_one = c == commits;
      if (last_one && below(&rng, 3) == 0)
        changes = 0; /* killed right after a marker */
      for (int i = 0; i < changes; i++) {
        int key = (int)below(&rng, N_KEYS);
        int val = below(&rng, 5) == 0 ? -1 : (int)below(&rng, 1000000);
        store[key] = val;
        append(&m, (rec_t){key, val, epoch, committed, 0, 0});
      }
      if (last_one)
        break; /* killed: no marker for this epoch */
      append(&m, (rec_t){-1, 0, epoch, committed, committed, 0});
      memcpy(m.committed_state, store, sizeof(store));
      committed = epoch;
      epoch = bk_cl_next_epoch(epoch);
    }
    kills++;
  }
  print_message("seed %llu: %d kills, %d compactions, %d records dropped, log %zu\n",
                (unsigned long long)seed, kills, compactions, dead_dropped, m.n);
}

static void test_killed_writers_and_compaction_restore_exactly(void **state) {
  (void)state;
  const char *env = getenv("BROOK_SEED");
  if (env) {
    run_seed(strtoull(env, NULL, 10));
    return;
  }
  for (uint64_t s = 1; s <= 300; s++)
    run_seed(s * 7919);
}

/* The brief's cases spelled out. */
/* A log with committed epochs, a dead one, compensation and a tail. */
static void dead_epoch_log(model_t *m) {
  memset(m, 0, sizeof(*m));
  uint64_t e1 = bk_cl_first_epoch(0);
  append(m, (rec_t){1, 10, e1, 0, 0, 0});
  append(m, (rec_t){-1, 0, e1, 0, 0, 0}); /* M(e1) */
  /* A writer restored after M(e1), wrote e1' records and died. */
  uint64_t dead = bk_cl_first_epoch(e1);
  append(m, (rec_t){1, 666, dead, e1, 0, 0});
  append(m, (rec_t){2, 666, dead, e1, 0, 0});
  /* The next incarnation compensates keys 1 and 2 and commits. */
  uint64_t e3 = bk_cl_first_epoch(dead);
  append(m, (rec_t){1, 10, e3, e1, 0, 0});
  append(m, (rec_t){2, -1, e3, e1, 0, 0});
  append(m, (rec_t){3, 30, e3, e1, 0, 0});
  append(m, (rec_t){-1, 0, e3, e1, e1, 0});
  /* A tail of a later writer, never committed. */
  append(m, (rec_t){4, 40, bk_cl_next_epoch(e3), e3, 0, 0});
}

static void test_dead_epoch_between_markers_is_dropped(void **state) {
  (void)state;
  static model_t m;
  dead_epoch_log(&m);
  uint64_t e1 = bk_cl_first_epoch(0), dead = bk_cl_first_epoch(e1), e3 = bk_cl_first_epoch(dead);
  bk_cl_replay_t rp;
  restored_t st;
  bk_errmsg_t why;
  assert_int_equal(replay_log(&m, &rp, &st, 1 << 20, &why), BROOK_OK);
  assert_int_equal(st.v[1], 10);
  assert_int_equal(st.v[2], -1);
  assert_int_equal(st.v[3], 30);
  assert_int_equal(st.v[4], -1);
  assert_int_equal(rp.dropped, 3); /* two dead, one tail */
  assert_int_equal(rp.marker_epoch, e3);
  assert_int_equal(rp.marker_offset, 7);
  assert_int_equal(rp.max_epoch, bk_cl_next_epoch(e3));
  assert_int_equal(rp.n_tail, 1);
  assert_memory_equal(rp.blob, "pos", 3);
  bk_cl_replay_free(&rp);
}

/* Without the records' committed field, a compacted log (only the last marker left) would
 * have to hold every record until that marker; with it, pending stays one epoch. */
static void test_pending_stays_one_epoch_on_a_compacted_log(void **state) {
  (void)state;
  static model_t m;
  memset(&m, 0, sizeof(m));
  uint64_t e = bk_cl_first_epoch(0), committed = 0;
  for (int c = 0; c < 200; c++) {
    for (int i = 0; i < 10; i++)
      append(&m, (rec_t){(c * 10 + i) % N_KEYS, c, e, committed, 0, 0});
    append(&m, (rec_t){-1, 0, e, committed, committed, 0});
    committed = e;
    e = bk_cl_next_epoch(e);
  }
  compact(&m, m.next_offset); /* markers: only the last is left */
  size_t markers = 0;
  for (size_t i = 0; i < m.n; i++)
    markers += m.log[i].key < 0;
  assert_int_equal(markers, 1);
  bk_cl_replay_t rp;
  restored_t st;
  bk_errmsg_t why;
  /* 10 records of ~32 bytes per epoch fit in 1 KiB; the whole log would not. */
  assert_int_equal(replay_log(&m, &rp, &st, 1024, &why), BROOK_OK);
  for (int k = 0; k < N_KEYS; k++)
    assert_true(st.v[k] >= 190);
  bk_cl_replay_free(&rp);
}

static void test_out_of_order_marker_and_bound(void **state) {
  (void)state;
  static model_t m;
  memset(&m, 0, sizeof(m));
  uint64_t e = bk_cl_first_epoch(0);
  append(&m, (rec_t){-1, 0, e + 1, 0, 0, 0});
  append(&m, (rec_t){-1, 0, e, 0, 0, 0});
  bk_cl_replay_t rp;
  restored_t st;
  bk_errmsg_t why;
  assert_int_equal(replay_log(&m, &rp, &st, 1 << 20, &why), BROOK_ERR_CORRUPT);
  assert_non_null(strstr(why.text, "changelog 't-changelog' partition 0 offset 1"));
  bk_cl_replay_free(&rp);
  /* One commit bigger than the bound: an error naming where, not unbounded memory. */
  memset(&m, 0, sizeof(m));
  for (int i = 0; i < 100; i++)
    append(&m, (rec_t){i % N_KEYS, i, e, 0, 0, 0});
  assert_int_equal(replay_log(&m, &rp, &st, 512, &why), BROOK_ERR_TOO_LARGE);
  assert_non_null(strstr(why.text, "max_pending_bytes"));
  bk_cl_replay_free(&rp);
}

/* Every allocation of a replay failing in turn: BROOK_ERR_NOMEM, and nothing leaks. */
static void test_allocation_failures(void **state) {
  (void)state;
  static model_t m;
  dead_epoch_log(&m);
  for (long k = 1;; k++) {
    fail_alloc_t fa = {.fail_at = k, .persistent = 1};
    brook_allocator_t a = fa_allocator(&fa);
    bk_cl_replay_t rp;
    restored_t st;
    bk_errmsg_t why;
    brook_err_t err = replay_log_with(&m, &a, &rp, &st, 1 << 20, &why);
    bk_cl_replay_free(&rp);
    assert_int_equal(fa.live, 0);
    if (!fa.injected) {
      assert_int_equal(err, BROOK_OK);
      break;
    }
    assert_int_equal(err, BROOK_ERR_NOMEM);
    assert_non_null(strstr(why.text, "out of memory"));
  }
}

/* ---- review: a crash loop, hostile epochs ---- */

typedef struct loop_rec {
  int marker;
  uint64_t epoch, committed, prev;
  char key[16];
  char val[64];
} loop_rec_t;

static loop_rec_t loop_log[200000];
static size_t loop_n;

static brook_err_t apply_nop(const void *k, size_t kl, const void *v, size_t vl, void *o) {
  (void)k, (void)kl, (void)v, (void)vl, (void)o;
  return BROOK_OK;
}

static brook_err_t replay_loop_log(bk_cl_replay_t *r, size_t cap, bk_errmsg_t *why) {
  bk_cl_replay_init(r, NULL, "t", 0, cap, 0, apply_nop, NULL);
  for (size_t i = 0; i < loop_n; i++) {
    const loop_rec_t *x = &loop_log[i];
    brook_err_t err = x->marker ? bk_cl_replay_marker(r, (int64_t)i, x->epoch, x->prev, "p", 1, why)
                                : bk_cl_replay_record(r, (int64_t)i, x->epoch, x->committed, x->key,
                                                      strlen(x->key), x->val, strlen(x->val), why);
    if (err)
      return err;
  }
  return bk_cl_replay_finish(r, why);
}

static void loop_append(int marker, uint64_t epoch, uint64_t committed, uint64_t prev,
                        const void *key, size_t klen, char fill) {
  assert_true(loop_n < sizeof(loop_log) / sizeof(loop_log[0]));
  loop_rec_t *x = &loop_log[loop_n++];
  memset(x, 0, sizeof(*x));
  x->marker = marker;
  x->epoch = epoch;
  x->committed = committed;
  x->prev = prev;
  memcpy(x->key, key, klen < 15 ? klen : 15);
  if (!marker)
    memset(x->val, fill, 50);
}

/* Review: incarnation 0 commits K keys once; then every incarnation restores, compensates its
 * tail, writes K keys and is killed before their marker (a crash loop: a poison record in the
 * first batch). Without a marker right after the compensation, nothing after the first commit
 * ever settled and pending grew by 2K records per kill until the restore failed for good. */
static void test_crash_loop_pending_stays_bounded(void **state) {
  (void)state;
  enum { K = 1000 };
  loop_n = 0;
  uint64_t e = bk_cl_first_epoch(0);
  char k[16];
  for (int i = 0; i < K; i++) {
    snprintf(k, sizeof(k), "k%d", i);
    loop_append(0, e, 0, 0, k, strlen(k), 'v');
  }
  loop_append(1, e, 0, 0, "", 0, 0);
  size_t cap = (size_t)8 << 20;
  for (int inc = 1; inc <= 90; inc++) {
    bk_cl_replay_t r;
    bk_errmsg_t why;
    brook_err_t err = replay_loop_log(&r, cap, &why);
    if (err) {
      print_message("incarnation %d: %s (%s)\n", inc, brook_strerror(err), why.text);
      bk_cl_replay_free(&r);
      fail_msg("a crash loop made the changelog unrestorable after %d kills", inc - 1);
    }
    if (inc % 30 == 1)
      print_message("incarnation %d: pending bytes at end %zu, tail keys %zu, log %zu\n", inc,
                    r.used, r.n_tail, loop_n);
    uint64_t first = bk_cl_first_epoch(r.max_epoch), committed = r.marker_epoch;
    for (size_t i = 0; i < r.n_tail; i++) {
      const void *kk;
      size_t kl;
      bk_cl_replay_tail_key(&r, i, &kk, &kl);
      loop_append(0, first, committed, 0, kk, kl, 'v');
    }
    /* The new owner's marker right after its compensation, with the restored positions
     * (changelog_writer.h: puts wait for its acknowledgement), then its first commit's
     * records, killed before that commit's marker. */
    loop_append(1, first, committed, committed, "", 0, 0);
    uint64_t next = bk_cl_next_epoch(first);
    for (int i = 0; i < K; i++) {
      snprintf(k, sizeof(k), "k%d", i);
      loop_append(0, next, first, 0, k, strlen(k), 'w');
    }
    /* Pending never holds more than one incarnation's commit. */
    assert_true(r.used <= (size_t)K * 72);
    assert_true(r.n_tail <= K);
    bk_cl_replay_free(&r);
  }
}

/* Review: a well-formed record whose epoch is near 2^64 made the next writer's epoch wrap to
 * 1. Epochs at or above 2^63 (or leaving no next incarnation below it) are corrupt, named by
 * offset, and the next-epoch arithmetic is checked. */
static void test_epoch_wrap(void **state) {
  (void)state;
  const uint64_t bad[] = {UINT64_MAX, BK_CL_EPOCH_LIMIT, BK_CL_EPOCH_LIMIT - 1};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    bk_cl_replay_t r;
    bk_errmsg_t why;
    bk_cl_replay_init(&r, NULL, "t", 0, 1 << 20, 0, apply_nop, NULL);
    assert_int_equal(bk_cl_replay_marker(&r, 0, 5, 0, "p", 1, &why), BROOK_OK);
    assert_int_equal(bk_cl_replay_record(&r, 1, bad[i], 5, "k", 1, "v", 1, &why),
                     BROOK_ERR_CORRUPT);
    assert_non_null(strstr(why.text, "changelog 't' partition 0 offset 1: epoch"));
    assert_non_null(strstr(why.text, "out of range"));
    /* A marker, or a committed field, out of range too. */
    assert_int_equal(bk_cl_replay_marker(&r, 2, bad[i], 5, "p", 1, &why), BROOK_ERR_CORRUPT);
    assert_non_null(strstr(why.text, "offset 2"));
    assert_int_equal(bk_cl_replay_record(&r, 3, 6, bad[i], "k", 1, "v", 1, &why),
                     BROOK_ERR_CORRUPT);
    assert_int_equal(r.max_epoch, 5); /* nothing out of range was taken in */
    assert_int_equal(bk_cl_replay_finish(&r, &why), BROOK_OK);
    assert_true(bk_cl_first_epoch(r.max_epoch) > r.max_epoch);
    bk_cl_replay_free(&r);
  }
  /* Checked arithmetic: no next epoch at the limit (0), never a wrap. */
  uint64_t last_inc = ((BK_CL_EPOCH_LIMIT >> BK_CL_SEQ_BITS) - 1) << BK_CL_SEQ_BITS;
  assert_int_equal(bk_cl_first_epoch(last_inc), 0);
  assert_int_equal(bk_cl_first_epoch(BK_CL_EPOCH_LIMIT), 0);
  assert_int_equal(bk_cl_first_epoch(UINT64_MAX), 0);
  assert_int_equal(bk_cl_next_epoch(BK_CL_EPOCH_LIMIT - 1), 0);
  assert_int_equal(bk_cl_next_epoch(last_inc + 1), last_inc + 2);
  assert_true(bk_cl_first_epoch(last_inc - 1) > last_inc - 1);
}

/* Feeds the whole log to a replay without finishing it. */
static brook_err_t replay_open(const model_t *m, bk_cl_replay_t *rp, restored_t *out, uint64_t upto,
                               bk_errmsg_t *why) {
  for (int k = 0; k < N_KEYS; k++)
    out->v[k] = -1;
  bk_cl_replay_init(rp, NULL, "t-changelog", 0, 1 << 20, 0, apply_model, out);
  rp->upto = upto;
  for (size_t i = 0; i < m->n; i++) {
    const rec_t *r = &m->log[i];
    char k[16], v[16];
    snprintf(k, sizeof(k), "k%02d", r->key);
    snprintf(v, sizeof(v), "v%d", r->value);
    brook_err_t err =
        r->key < 0
            ? bk_cl_replay_marker(rp, r->offset, r->epoch, r->prev, "pos", 3, why)
            : bk_cl_replay_record(rp, r->offset, r->epoch, r->committed, k, strlen(k),
                                  r->value < 0 ? NULL : v, r->value < 0 ? 0 : strlen(v), why);
    if (err)
      return err;
  }
  return BROOK_OK;
}

/* A task's store whose marker of E is missing (killed between its stores' markers) is settled
 * with another store's M(E, prev): epochs <= prev and E applied, those between dead, later ones
 * the tail; and a store that lacks the task's commit prev is corrupt, not silently rolled. */
static void test_settled_with_the_task_commit(void **state) {
  (void)state;
  static model_t m;
  memset(&m, 0, sizeof(m));
  uint64_t e1 = bk_cl_first_epoch(0), dead = bk_cl_first_epoch(e1), e2 = bk_cl_first_epoch(dead);
  append(&m, (rec_t){1, 10, e1, 0, 0, 0});
  append(&m, (rec_t){-1, 0, e1, 0, 0, 0});
  append(&m, (rec_t){2, 666, dead, e1, 0, 0}); /* a writer killed before any marker */
  append(&m, (rec_t){2, 20, e2, e1, 0, 0});    /* the next one's commit: its marker is */
  append(&m, (rec_t){3, 30, e2, e1, 0, 0});    /* in another store only */
  append(&m, (rec_t){4, 40, bk_cl_next_epoch(e2), e1, 0, 0}); /* after it: the tail */
  restored_t st;
  bk_cl_replay_t rp;
  bk_errmsg_t why;
  assert_int_equal(replay_open(&m, &rp, &st, 0, &why), BROOK_OK);
  assert_int_equal(rp.n_pending, 4);
  /* A commit older than what is settled here: nothing to do. */
  assert_int_equal(bk_cl_replay_settle_task(&rp, e1, 0, &why), BROOK_OK);
  assert_int_equal(rp.n_pending, 4);
  assert_int_equal(bk_cl_replay_settle_task(&rp, e2, e1, &why), BROOK_OK);
  assert_int_equal(bk_cl_replay_finish(&rp, &why), BROOK_OK);
  assert_int_equal(st.v[1], 10);
  assert_int_equal(st.v[2], 20); /* the dead 666 dropped, e2 rolled forward */
  assert_int_equal(st.v[3], 30);
  assert_int_equal(st.v[4], -1);
  assert_int_equal(rp.n_tail, 1);
  bk_cl_replay_free(&rp);

  /* The task committed e2 after e1, but this changelog never settled e1. */
  bk_cl_replay_init(&rp, NULL, "t-changelog", 3, 1 << 20, 0, apply_model, &st);
  assert_int_equal(bk_cl_replay_record(&rp, 0, e1, 0, "k01", 3, "v1", 2, &why), BROOK_OK);
  assert_int_equal(bk_cl_replay_settle_task(&rp, e2, e1, &why), BROOK_ERR_CORRUPT);
  assert_non_null(strstr(why.text, "changelog 't-changelog' partition 3"));
  assert_non_null(strstr(why.text, "a commit of the task is missing here"));
  bk_cl_replay_free(&rp);
}

/* upto: markers above it are not applied, committed fields are capped at it, and every record
 * above it is the tail, listed for compensation. */
static void test_upto_stops_at_an_epoch(void **state) {
  (void)state;
  static model_t m;
  memset(&m, 0, sizeof(m));
  uint64_t e1 = bk_cl_first_epoch(0), e2 = e1 + 1, e3 = e1 + 2;
  append(&m, (rec_t){1, 1, e1, 0, 0, 0});
  append(&m, (rec_t){-1, 0, e1, 0, 0, 0});
  append(&m, (rec_t){1, 2, e2, e1, 0, 0});
  append(&m, (rec_t){2, 2, e2, e1, 0, 0});
  append(&m, (rec_t){-1, 0, e2, e1, e1, 0});
  append(&m, (rec_t){3, 3, e3, e2, 0, 0}); /* says e2 was committed before it */
  append(&m, (rec_t){-1, 0, e3, e2, e2, 0});
  restored_t st;
  bk_cl_replay_t rp;
  bk_errmsg_t why;
  assert_int_equal(replay_open(&m, &rp, &st, e1, &why), BROOK_OK);
  assert_int_equal(bk_cl_replay_finish(&rp, &why), BROOK_OK);
  assert_int_equal(st.v[1], 1);
  assert_int_equal(st.v[2], -1);
  assert_int_equal(st.v[3], -1);
  assert_int_equal(rp.marker_epoch, e1);
  assert_int_equal(rp.markers_beyond, 2);
  assert_int_equal(rp.n_tail, 3);
  assert_int_equal(rp.max_epoch, e3); /* the next writer starts above all of it */
  bk_cl_replay_free(&rp);
}

/* ---- a task of two stores against a model ---- */

/* Two stores, one task (changelog_writer.h): a commit's markers go to both stores only once
 * both stores' records are acknowledged, and a kill may fall anywhere, also between the two
 * markers. Each incarnation restores both, settles both with the highest marker, compensates
 * both tails, commits at once; compaction at random. Both stores must equal the last commit. */
static void run_task_seed(uint64_t seed) {
  rng_t rng = {seed};
  static model_t m[2];
  memset(m, 0, sizeof(m));
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < N_KEYS; k++)
      m[s].committed_state[k] = -1;
  int between = 0, rolled = 0;
  for (int incarnation = 0; incarnation < 10; incarnation++) {
    bk_cl_replay_t rp[2];
    restored_t st[2];
    bk_errmsg_t why = {{0}};
    for (int s = 0; s < 2; s++) {
      if (m[s].n && below(&rng, 2))
        compact(&m[s], (int64_t)below(&rng, (uint64_t)cleanable_end(&m[s]) + 1));
      if (replay_open(&m[s], &rp[s], &st[s], 0, &why))
        fail_msg("seed %llu: replay failed: %s", (unsigned long long)seed, why.text);
    }
    int top = rp[1].marker_epoch > rp[0].marker_epoch;
    uint64_t task = rp[top].marker_epoch, prev = rp[top].marker_prev;
    for (int s = 0; s < 2; s++) {
      rolled += rp[s].marker_epoch < task;
      if (bk_cl_replay_settle_task(&rp[s], task, prev, &why) || bk_cl_replay_finish(&rp[s], &why))
        fail_msg("seed %llu: settle failed: %s", (unsigned long long)seed, why.text);
      for (int k = 0; k < N_KEYS; k++)
        if (st[s].v[k] != m[s].committed_state[k])
          fail_msg("seed %llu incarnation %d store %d: key %d restored %d, committed %d",
                   (unsigned long long)seed, incarnation, s, k, st[s].v[k],
                   m[s].committed_state[k]);
    }
    uint64_t max = rp[0].max_epoch > rp[1].max_epoch ? rp[0].max_epoch : rp[1].max_epoch;
    uint64_t epoch = bk_cl_first_epoch(max), committed = task;
    int store[2][N_KEYS];
    for (int s = 0; s < 2; s++) {
      memcpy(store[s], st[s].v, sizeof(store[s]));
      for (size_t i = 0; i < rp[s].n_tail; i++) {
        const void *k;
        size_t kl;
        bk_cl_replay_tail_key(&rp[s], i, &k, &kl);
        int key = key_of(k, kl);
        append(&m[s], (rec_t){key, store[s][key], epoch, committed, 0, 0});
      }
      bk_cl_replay_free(&rp[s]);
    }
    /* Commit 0 is the compensation's (no changes); a kill ends the last one somewhere. */
    int commits = 1 + (int)below(&rng, 5);
    for (int c = 0; c <= commits; c++) {
      int last_one = c == commits;
      for (int s = 0; s < 2; s++) {
        int changes = c == 0 ? 0 : (int)below(&rng, 6);
        for (int i = 0; i < changes; i++) {
          int key = (int)below(&rng, N_KEYS);
          int val = below(&rng, 5) == 0 ? -1 : (int)below(&rng, 1000000);
          store[s][key] = val;
          append(&m[s], (rec_t){key, val, epoch, committed, 0, 0});
        }
      }
      int markers = 2;
      if (last_one) {
        markers = (int)below(&rng, 3); /* none, store 0's only, or both (killed after) */
        between += markers == 1;
      }
      for (int s = 0; s < markers; s++)
        append(&m[s], (rec_t){-1, 0, epoch, committed, committed, 0});
      if (markers > 0) { /* a marker anywhere commits the epoch for the task */
        for (int s = 0; s < 2; s++)
          memcpy(m[s].committed_state, store[s], sizeof(store[s]));
        committed = epoch;
        epoch = bk_cl_next_epoch(epoch);
      }
      if (last_one)
        break;
    }
  }
  if (seed % 5000 == 0)
    print_message("task seed %llu: %d kills between markers, %d stores rolled forward\n",
                  (unsigned long long)seed, between, rolled);
}

static void test_task_of_two_stores_restores_one_commit(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 300; s++)
    run_task_seed(s * 50);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_marker_round_trip_and_damage),
      cmocka_unit_test(test_keys_never_collide_with_the_marker),
      cmocka_unit_test(test_epochs),
      cmocka_unit_test(test_dead_epoch_between_markers_is_dropped),
      cmocka_unit_test(test_pending_stays_one_epoch_on_a_compacted_log),
      cmocka_unit_test(test_out_of_order_marker_and_bound),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_killed_writers_and_compaction_restore_exactly),
      cmocka_unit_test(test_crash_loop_pending_stays_bounded),
      cmocka_unit_test(test_epoch_wrap),
      cmocka_unit_test(test_settled_with_the_task_commit),
      cmocka_unit_test(test_upto_stops_at_an_epoch),
      cmocka_unit_test(test_task_of_two_stores_restores_one_commit),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
