/* The RocksDB backend's database (rocksdb_store.h): where it lives, how it is tuned, and its
 * one kind of write, an atomic batch. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "state/rocksdb_store.h"

#define WRITE_BUFFER_BYTES ((size_t)8 << 20) /* a memtable: small, many stores may be open */

static char *str_dup(const brook_allocator_t *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = bk_malloc(a, n);
  if (d)
    memcpy(d, s, n);
  return d;
}

/* "<parent>/<name>", the name's unsafe characters replaced by '_'. */
static char *db_path(const brook_allocator_t *a, const char *parent, const char *name) {
  size_t pl = strlen(parent), nl = strlen(name);
  char *p = bk_malloc(a, pl + 1 + (nl ? nl : 1) + 1);
  if (!p)
    return NULL;
  memcpy(p, parent, pl);
  p[pl] = '/';
  for (size_t i = 0; i < nl; i++) {
    char c = name[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '-' || c == '_';
    p[pl + 1 + i] = ok && !(i == 0 && c == '.') ? c : '_'; /* no "." or ".." */
  }
  if (!nl)
    p[pl + 1 + nl++] = '_';
  p[pl + 1 + nl] = '\0';
  return p;
}

/* Removes the files of directory `path` (RocksDB's directories are flat), then it. */
static void remove_dir(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      char file[4096];
      if (snprintf(file, sizeof(file), "%s/%s", path, e->d_name) < (int)sizeof(file))
        unlink(file);
    }
    closedir(d);
  }
  rmdir(path);
}

static void free_handles(rdb_db_t *d) {
  if (d->db)
    rocksdb_close(d->db);
  if (d->read)
    rocksdb_readoptions_destroy(d->read);
  if (d->write)
    rocksdb_writeoptions_destroy(d->write);
  if (d->opts)
    rocksdb_options_destroy(d->opts);
  if (d->table)
    rocksdb_block_based_options_destroy(d->table); /* it owns the filter policy */
  if (d->block_cache)
    rocksdb_cache_destroy(d->block_cache);
  if (d->batch)
    rocksdb_writebatch_destroy(d->batch);
  d->db = NULL;
}

static void free_paths(rdb_db_t *d) {
  if (d->tmp_dir) {
    if (d->path)
      remove_dir(d->path);
    rmdir(d->tmp_dir);
  }
  bk_free(d->alloc, d->path);
  bk_free(d->alloc, d->tmp_dir);
  d->path = d->tmp_dir = NULL;
}

static brook_err_t make_paths(rdb_db_t *d, const char *parent, const char *name, bk_errmsg_t *why) {
  if (!parent) {
    const char *tmp = getenv("TMPDIR");
    char tpl[4096];
    if (snprintf(tpl, sizeof(tpl), "%s/brook-rocksdb-XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
        (int)sizeof(tpl)) {
      bk_errmsg_set(why, "TMPDIR is too long");
      return BROOK_ERR_IO;
    }
    if (!mkdtemp(tpl)) {
      bk_errmsg_set(why, "cannot create a temporary directory %s: %s", tpl, strerror(errno));
      return BROOK_ERR_IO;
    }
    if (!(d->tmp_dir = str_dup(d->alloc, tpl))) {
      rmdir(tpl);
      bk_errmsg_set(why, "out of memory");
      return BROOK_ERR_NOMEM;
    }
    parent = d->tmp_dir;
  } else if (mkdir(parent, 0755) != 0 && errno != EEXIST) {
    bk_errmsg_set(why, "cannot create directory %s: %s", parent, strerror(errno));
    return BROOK_ERR_IO;
  }
  if (!(d->path = db_path(d->alloc, parent, name))) {
    free_paths(d);
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  return BROOK_OK;
}

brook_err_t rdb_db_open(rdb_db_t *d, const char *parent, const char *name,
                        const brook_rocksdb_opts_t *o, const brook_allocator_t *alloc,
                        bk_errmsg_t *why) {
  memset(d, 0, sizeof(*d));
  d->alloc = alloc;
  brook_err_t err = make_paths(d, parent, name, why);
  if (err)
    return err;
  d->opts = rocksdb_options_create();
  d->table = rocksdb_block_based_options_create();
  d->block_cache = rocksdb_cache_create_lru(o->block_cache_bytes);
  d->read = rocksdb_readoptions_create();
  d->write = rocksdb_writeoptions_create();
  d->batch = rocksdb_writebatch_create();
  if (!d->opts || !d->table || !d->block_cache || !d->read || !d->write || !d->batch) {
    free_handles(d);
    free_paths(d);
    bk_errmsg_set(why, "out of memory");
    return BROOK_ERR_NOMEM;
  }
  /* Point reads of absent keys (a first put, a new window) skip the disk: a bloom filter. */
  rocksdb_block_based_options_set_filter_policy(d->table,
                                                rocksdb_filterpolicy_create_bloom_full(10));
  rocksdb_block_based_options_set_block_cache(d->table, d->block_cache);
  rocksdb_options_set_block_based_table_factory(d->opts, d->table);
  rocksdb_options_set_create_if_missing(d->opts, 1);
  rocksdb_options_set_write_buffer_size(d->opts, WRITE_BUFFER_BYTES);
  /* ... and the memtable too (a whole-key bloom filter over 10% of its size): without it a read
   * of an absent key (every new window entry) searches the memtable's skip list, which cost
   * 60% of a tumbling window's time on disk. */
  rocksdb_options_set_memtable_prefix_bloom_size_ratio(d->opts, 0.1);
  rocksdb_options_set_memtable_whole_key_filtering(d->opts, 1);
  /* State is small values read back at random: decompressing a block per point read cost more
   * than the disk it saved (snappy took 8% of a tumbling window's time over 300K keys). */
  rocksdb_options_set_compression(d->opts, rocksdb_no_compression);
  rocksdb_options_set_info_log_level(d->opts, 3 /* ERROR: no informational log growing */);
  rocksdb_options_set_keep_log_file_num(d->opts, 2);
  rocksdb_writeoptions_set_sync(d->write, (unsigned char)(o->sync != 0));
  char *reason = NULL;
  d->db = rocksdb_open(d->opts, d->path, &reason);
  if (!d->db) {
    bk_errmsg_set(why, "cannot open RocksDB database %s: %s", d->path,
                  reason ? reason : "unknown reason");
    rocksdb_free(reason);
    free_handles(d);
    free_paths(d);
    return BROOK_ERR_IO;
  }
  return BROOK_OK;
}

void rdb_db_close(rdb_db_t *d) {
  free_handles(d);
  if (d->tmp_dir) {
    rocksdb_options_t *o = rocksdb_options_create();
    char *why = NULL;
    if (o) {
      rocksdb_destroy_db(o, d->path, &why);
      rocksdb_free(why);
      rocksdb_options_destroy(o);
    }
  }
  free_paths(d);
}

size_t rdb_db_memory(rdb_db_t *d) {
  uint64_t mem = 0;
  if (rocksdb_property_int(d->db, "rocksdb.cur-size-all-mem-tables", &mem) != 0)
    mem = 0;
  return (size_t)mem + rocksdb_cache_get_usage(d->block_cache);
}

brook_err_t rdb_db_write(rdb_db_t *d, bk_errmsg_t *why) {
  char *reason = NULL;
  rocksdb_write(d->db, d->write, d->batch, &reason);
  rocksdb_writebatch_clear(d->batch);
  if (reason) {
    bk_errmsg_set(why, "RocksDB write to %s failed: %s", d->path, reason);
    rocksdb_free(reason);
    return BROOK_ERR_IO;
  }
  d->gen++;
  return BROOK_OK;
}

brook_err_t rdb_db_get(rdb_db_t *d, const void *key, size_t klen, char **value, size_t *vlen,
                       bk_errmsg_t *why) {
  char *reason = NULL;
  *vlen = 0;
  *value = rocksdb_get(d->db, d->read, key, klen, vlen, &reason);
  if (reason) {
    bk_errmsg_set(why, "RocksDB read from %s failed: %s", d->path, reason);
    rocksdb_free(reason);
    return BROOK_ERR_IO;
  }
  return BROOK_OK;
}
