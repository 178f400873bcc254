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
    std::fprintf(stderr, "brook_runtime_opts_init: struct_size %u, batch_size %zu\n",
                 o.struct_size, (size_t)o.batch_size);
    return 1;
  }
  brook_topology_t *t = nullptr;
  err = brook_topology_new(&t, nullptr);
  if (err != BROOK_OK) {
    std::fprintf(stderr, "brook_topology_new: %s\n", brook_strerror(err));
    return 1;
  }
  brook_topology_free(t);
  std::printf("ok\n");
  return 0;
}
