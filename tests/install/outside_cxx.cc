// A C++ program built against the installed brook: the public headers compile as C++ (as
// bindings and C++ applications include them), the inline options initialisers work, and a
// brook_err_t carries a code that is none of the named ones (a user callback's own code).
#include <cstdio>
#include <cstring>

#include <brook/brook.h>

static brook_err_t users_own_code() { return -1000; }

int main() {
  brook_err_t err = users_own_code();
  if (err != -1000 || std::strcmp(brook_errname(err), "BROOK_ERR_USER_DEFINED") != 0) {
    std::fprintf(stderr, "a user's code did not survive as itself: %d (%s)\n", err,
                 brook_errname(err));
    return 1;
  }
  brook_runtime_opts_t o;
  brook_runtime_opts_init(&o);
  if (o.struct_size != sizeof(o) || o.batch_size != 1024) {
    std::fprintf(stderr, "brook_runtime_opts_init: struct_size %u, batch_size %zu\n", o.struct_size,
                 (size_t)o.batch_size);
    return 1;
  }
  brook_topology_t *t = nullptr;
  err = brook_topology_new(&t, nullptr);
  if (err != BROOK_OK) {
    std::fprintf(stderr, "brook_topology_new: %s\n", brook_strerror(err));
    return 1;
  }
  // The versioned structs by pointer, built by the headers' inline functions.
  brook_window_t w = brook_window_hopping(60 * BROOK_S, 10 * BROOK_S);
  brook_aggregator_t sum = brook_agg_sum(nullptr, nullptr);
  brook_serde_t i64 = brook_serde_int64();
  if (w.struct_size != sizeof(w) || std::strcmp(sum.name, "sum") != 0 ||
      i64.version != BROOK_SERDE_VERSION) {
    std::fprintf(stderr, "inline constructors: struct_size %u, aggregator '%s', serde v%u\n",
                 w.struct_size, sum.name ? sum.name : "", i64.version);
    return 1;
  }
  if (!brook_window_aggregate(brook_source_push(t, "in", nullptr), &w, &sum, nullptr)) {
    std::fprintf(stderr, "brook_window_aggregate: %s\n", brook_topology_last_error(t));
    return 1;
  }
  brook_topology_free(t);
  std::printf("ok\n");
  return 0;
}
