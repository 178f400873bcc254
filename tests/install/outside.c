/* A program built outside the source tree against an installed brook (via pkg-config):
 * proves the installed headers, libraries and brook.pc are enough to use the library. */
#include <stdio.h>
#include <string.h>

#include <brook/brook.h>

int main(void) {
  const char *v = brook_version();
  if (v == NULL || strcmp(v, BROOK_VERSION_STRING) != 0) {
    fprintf(stderr, "brook_version() = \"%s\", header says \"%s\"\n", v ? v : "(null)",
            BROOK_VERSION_STRING);
    return 1;
  }
  const char *msg = brook_strerror(BROOK_ERR_NOMEM);
  if (msg == NULL || msg[0] == '\0') {
    fprintf(stderr, "brook_strerror(BROOK_ERR_NOMEM) is empty\n");
    return 1;
  }
  brook_topology_t *t = NULL;
  brook_err_t err = brook_topology_new(&t, NULL);
  if (err != BROOK_OK || t == NULL) {
    fprintf(stderr, "brook_topology_new: %s\n", brook_strerror(err));
    return 1;
  }
  /* The inline constructors (window, aggregator, serde) call into the installed library and
   * the window is passed by pointer. */
  brook_window_t w = brook_window_tumbling(1000);
  brook_aggregator_t count = brook_agg_count();
  brook_serde_t utf8 = brook_serde_utf8();
  if (w.struct_size != sizeof(w) || !count.add || strcmp(utf8.name, "utf8") != 0) {
    fprintf(stderr, "inline constructors: struct_size %u, count.add %s, serde '%s'\n",
            w.struct_size, count.add ? "set" : "NULL", utf8.name ? utf8.name : "");
    return 1;
  }
  if (!brook_window_aggregate(brook_source_push(t, "in", NULL), &w, &count, NULL)) {
    fprintf(stderr, "brook_window_aggregate: %s\n", brook_topology_last_error(t));
    return 1;
  }
  brook_topology_free(t);
  printf("ok\n");
  return 0;
}
