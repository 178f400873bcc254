/* The bytes of a changelog topic (one partition per task, one topic per store): how a store
 * change, its commit epoch and a commit's MARKER are laid out, so the writer
 * (changelog_writer.h) and the restore reader (changelog_restore.h) agree.
 *
 * Data record: key = the store key, value = the store value, a deletion = a tombstone (NULL
 * value). Every record (markers too) carries the header "brook.e" = 16 bytes, big-endian:
 *   epoch      the commit epoch the record belongs to (> 0);
 *   committed  the epoch of the last marker of its task ACKNOWLEDGED before the record was
 *              produced (0: none), so that marker lies before the record in the log.
 * `committed` is what keeps restores exact on a COMPACTED changelog: compaction keeps only
 * the latest marker (they share one key), so older epochs' records sit there without theirs;
 * a record that says "epoch c was committed before me" settles every pending record of an
 * epoch <= c (changelog_replay.h).
 *
 * Marker: key = BK_CL_MARKER_KEY (below), value =
 *   "BKM1" | epoch u64 | prev u64 | blob_len u32 | blob | crc32c u32 (over all before it)
 * big-endian. `prev` is the epoch of the marker before it in its task's line (the task's
 * committed epoch after its restore, for its first one): every epoch strictly between prev
 * and epoch is DEAD (a killed writer's, never committed). The blob is the runtime's (the input
 * positions the state covers).
 *
 * Epochs belong to the TASK: every store of a task shares the epoch sequence and each
 * commit's epoch, and the markers of epoch E (one per store, the same epoch, prev and blob)
 * are produced only once every record of E in every store of the task is acknowledged, and
 * once every marker of the epochs before E is. Why that makes a task's restore exact:
 *   - a marker of E in ANY store proves that every record of E, in every store, is in its log
 *     (it was acknowledged before the marker was produced), and that every store holds its
 *     marker of prev (or a later one): so when a task was killed between its stores' markers
 *     of E, the stores without one still hold all of E's records, after their marker of prev;
 *   - the restore therefore takes the highest marker over the task's stores, M(E, prev), and
 *     settles every store's pending records with it as if read there (changelog_replay.h:
 *     bk_cl_replay_settle_task): epochs <= prev and E committed, those between dead. All
 *     stores end at commit E with the positions of that marker, in one pass, and no store is
 *     ever rolled back (which the cleaner could make impossible: once E's records compact
 *     away their keys' older values, the state before E is gone);
 *   - a marker never covers a lost record: a refused record fails the task before its epoch's
 *     markers exist, and the idempotent producer keeping later records does not matter.
 * A marker does not carry the set of stores: a task's stores are fixed while it runs (every
 * store joins the task before its first commit), and the rule above needs no count.
 *
 * The marker key can never be a user key's changelog key, and all markers share it (so
 * compaction keeps exactly the latest): it is the reserved prefix P = FF 00 'b' 'r' 'o' 'o'
 * 'k' followed by 01. A store key that starts with P (a 2^-56 chance for random binary keys)
 * is written escaped as P 00 rest, and every other key is written as it is: the mapping from
 * store keys to changelog keys is one-to-one and never yields the marker key.
 *
 * Epochs: incarnation (high 40 bits) | sequence (low 24 bits). A new writer takes the next
 * incarnation after the highest epoch its restore saw (bk_cl_first_epoch), so it never
 * reuses an epoch of any writer whose records it could see; a writer's sequence overflow moves
 * on to the next incarnation. Epochs are below BK_CL_EPOCH_LIMIT (2^63): a restore refuses a
 * record, committed field, marker or prev at or above it as BROOK_ERR_CORRUPT naming topic,
 * partition and offset, and the next epoch is computed with checked arithmetic (0: none left
 * below the limit, 2^39 incarnations on: a corrupt log, never a real one).
 *
 * LIMITS of this at-least-once protocol (exactly-once mode removes the second):
 *   1. Compaction lag. A killed writer's dead or unfinished records are dropped by the next
 *      restore and compensated by the next owner (its first writes). Until then the cleaner
 *      may compact them against OLDER records of the same keys: a dead record that is the
 *      latest of its key removes that key's committed record, and the restore, which rightly
 *      drops the dead record, then restores the key to an older value or as absent, silently.
 *      The cleaner only touches records outside the active segment and older than
 *      min.compaction.lag.ms. brook creates changelogs with 300000 (5 minutes; Kafka's own
 *      default is 0) and nothing is appended after a dead tail until the next owner writes,
 *      so the tail stays in the active segment unless the segment rolled right at it (it
 *      reached segment.bytes). So the restore is exact if the next owner restores and
 *      compensates within min.compaction.lag.ms of the kill, or while the dead records are
 *      in the active segment; a task left unowned longer than the lag, on a changelog whose
 *      segment rolled, can lose committed values of the keys its last commit was writing.
 *      Raise min.compaction.lag.ms (the store's changelog_configs) above the longest time a
 *      task may stay unowned. upto_epoch (rolling a store back) has the same limit for the
 *      records above it.
 *   2. Zombie writers. One writer per partition at a time is ASSUMED, not enforced: an old
 *      owner that has not noticed it lost its task (a long pause, a network partition, until
 *      its session times out and it learns of the revocation) can keep producing to the
 *      changelog after the new owner restored. Its records have epochs below the new
 *      owner's: before the new owner's first marker they are pending like the new owner's and
 *      a zombie marker can settle them; after it, a restore drops them, but the cleaner can
 *      keep a zombie record as its key's latest (so the key restores to the zombie's value,
 *      silently), and a zombie marker below a settled epoch fails the restore with
 *      BROOK_ERR_CORRUPT ("two writers on one partition?"). Only the exactly-once producer
 *      fences a zombie (a transactional.id per task: the new owner's init_transactions makes
 *      the old producer's writes fail with a fencing error); epochs do not.
 * Any thread (pure functions). */
#ifndef BROOK_KAFKA_CHANGELOG_FORMAT_H
#define BROOK_KAFKA_CHANGELOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <brook/error.h>

#define BK_CL_EPOCH_HEADER "brook.e"
#define BK_CL_EPOCH_HEADER_LEN 16
#define BK_CL_PREFIX_LEN 7
#define BK_CL_MARKER_KEY_LEN 8
#define BK_CL_MARKER_MAGIC "BKM1"
#define BK_CL_MARKER_OVERHEAD 28 /* magic 4, epoch 8, prev 8, blob_len 4, crc 4 */
#define BK_CL_SEQ_BITS 24
#define BK_CL_EPOCH_LIMIT ((uint64_t)1 << 63) /* every valid epoch is below it */

/* The configs brook gives a changelog topic it creates (name, value pairs, NULL-terminated);
 * a store's changelog_configs replace values of the same name:
 *   cleanup.policy=compact        the latest record of each key (and the latest marker) stays;
 *   min.compaction.lag.ms=300000  the cleaner leaves records younger than 5 minutes alone
 *     (LIMITS above, 1: exact state after a kill needs the next owner within this lag, or the
 *     dead records still in the active segment). */
extern const char *const bk_changelog_topic_defaults[];

extern const unsigned char bk_cl_prefix[BK_CL_PREFIX_LEN];
extern const unsigned char bk_cl_marker_key[BK_CL_MARKER_KEY_LEN];

/* The first epoch of a new writer whose restore saw epochs up to max_seen (0: none): the
 * first epoch of the next incarnation; 0 if it would not be below BK_CL_EPOCH_LIMIT. */
uint64_t bk_cl_first_epoch(uint64_t max_seen);

/* The epoch after `e` in the same writer's line; 0 if none is left below the limit. */
uint64_t bk_cl_next_epoch(uint64_t e);

/* Whether e is an epoch a changelog may hold (1 .. BK_CL_EPOCH_LIMIT - 1). */
static inline int bk_cl_epoch_valid(uint64_t e) { return e != 0 && e < BK_CL_EPOCH_LIMIT; }

static inline void bk_cl_put_u64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}
static inline uint64_t bk_cl_get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}
static inline void bk_cl_put_u32(unsigned char *p, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}
static inline uint32_t bk_cl_get_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The "brook.e" header value of a record of `epoch` after marker `committed`. */
static inline void bk_cl_epoch_header(unsigned char out[BK_CL_EPOCH_HEADER_LEN], uint64_t epoch,
                                      uint64_t committed) {
  bk_cl_put_u64(out, epoch);
  bk_cl_put_u64(out + 8, committed);
}

/* Whether store key k must be escaped in the changelog (it starts with the prefix). */
static inline int bk_cl_key_needs_escape(const void *k, size_t len) {
  const unsigned char *p = k;
  if (len < BK_CL_PREFIX_LEN || p[0] != 0xff || p[1] != 0x00)
    return 0; /* the common case: two byte compares */
  for (size_t i = 2; i < BK_CL_PREFIX_LEN; i++)
    if (p[i] != bk_cl_prefix[i])
      return 0;
  return 1;
}

/* Writes the escaped changelog key of store key k (len + 1 bytes) into out. */
void bk_cl_key_escape(unsigned char *out, const void *k, size_t len);

/* What a changelog key is. */
typedef enum bk_cl_key_kind {
  BK_CL_KEY_PLAIN,   /* a store key as it is */
  BK_CL_KEY_ESCAPED, /* a store key starting with the prefix: bk_cl_key_unescape */
  BK_CL_KEY_MARKER,
  BK_CL_KEY_BAD /* starts with the prefix but is neither: never written by brook */
} bk_cl_key_kind_t;

bk_cl_key_kind_t bk_cl_key_kind(const void *k, size_t len);

/* The store key of an escaped changelog key (len - 1 bytes into out). */
void bk_cl_key_unescape(unsigned char *out, const void *k, size_t len);

/* Encodes a marker value (BK_CL_MARKER_OVERHEAD + blob_len bytes) into out. */
void bk_cl_marker_encode(unsigned char *out, uint64_t epoch, uint64_t prev, const void *blob,
                         uint32_t blob_len);

/* A decoded marker: blob points into the value. */
typedef struct bk_cl_marker {
  uint64_t epoch, prev;
  const unsigned char *blob;
  uint32_t blob_len;
} bk_cl_marker_t;

/* Decodes a marker value. BROOK_OK, or BROOK_ERR_CORRUPT with *why a static description
 * (bad magic, truncated blob, checksum mismatch, epochs out of order). */
brook_err_t bk_cl_marker_decode(const void *val, size_t len, bk_cl_marker_t *m, const char **why);

#endif
