/* The per-store changelog options at the end of brook_store_opts_t (changelog_disabled,
 * changelog_configs): defaults, a deep copy kept by the store (the caller's list may go
 * away), and a malformed list refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/state.h>

#include "core/errmsg.h"
#include "state/store.h"
#include "state/store_changelog.h"
#include "support/fail_alloc.h"

static void test_defaults_logged_without_configs(void **state) {
  (void)state;
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  assert_int_equal(o.changelog_disabled, 0);
  assert_null(o.changelog_configs);
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_OK);
  assert_true(bk_store_logged(s));
  assert_null(bk_store_changelog_configs(s));
  brook_store_free(s);
  /* No options at all: the same. */
  assert_int_equal(brook_store_new(&s, NULL, NULL), BROOK_OK);
  assert_true(bk_store_logged(s));
  brook_store_free(s);
}

static void test_configs_copied_and_logging_off(void **state) {
  (void)state;
  char name[32] = "retention.ms", value[32] = "3600000";
  const char *list[] = {"cleanup.policy", "compact,delete", name, value, NULL};
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.changelog_disabled = 1;
  o.changelog_configs = list;
  o.ordered = 1; /* another backend keeps them too */
  brook_store_t *s = NULL;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_OK);
  strcpy(name, "garbage"); /* the caller's strings change after creation */
  strcpy(value, "x");
  list[0] = NULL;
  assert_false(bk_store_logged(s));
  const char *const *c = bk_store_changelog_configs(s);
  assert_non_null(c);
  assert_string_equal(c[0], "cleanup.policy");
  assert_string_equal(c[1], "compact,delete");
  assert_string_equal(c[2], "retention.ms");
  assert_string_equal(c[3], "3600000");
  assert_null(c[4]);
  brook_store_free(s);
}

static void test_odd_count_and_empty_name_refused(void **state) {
  (void)state;
  const char *odd[] = {"retention.ms", NULL};
  const char *empty[] = {"", "1", NULL};
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  brook_store_t *s = NULL;
  bk_errmsg_t why;
  o.changelog_configs = odd;
  assert_int_equal(bk_store_create(NULL, &o, "counts", &s, &why), BROOK_ERR_INVALID_ARG);
  assert_null(s);
  assert_non_null(strstr(why.text, "changelog_configs: 'retention.ms' has no value"));
  o.changelog_configs = empty;
  assert_int_equal(brook_store_new(&s, &o, NULL), BROOK_ERR_INVALID_ARG);
  assert_int_equal(bk_store_create(NULL, &o, "counts", &s, &why), BROOK_ERR_INVALID_ARG);
  assert_non_null(strstr(why.text, "empty config name"));
}

/* Every allocation of a store with configs failing in turn: BROOK_ERR_NOMEM, no leak. */
static void test_allocation_failures(void **state) {
  (void)state;
  const char *list[] = {"retention.ms", "60000", NULL};
  brook_store_opts_t o;
  brook_store_opts_init(&o);
  o.changelog_configs = list;
  for (long k = 1;; k++) {
    fail_alloc_t fa = {.fail_at = k, .persistent = 1};
    brook_allocator_t a = fa_allocator(&fa);
    brook_store_t *s = NULL;
    brook_err_t err = brook_store_new(&s, &o, &a);
    if (!err)
      assert_string_equal(bk_store_changelog_configs(s)[0], "retention.ms");
    brook_store_free(s);
    assert_int_equal(fa.live, 0);
    if (!fa.injected) {
      assert_int_equal(err, BROOK_OK);
      break;
    }
    assert_int_equal(err, BROOK_ERR_NOMEM);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_logged_without_configs),
      cmocka_unit_test(test_configs_copied_and_logging_off),
      cmocka_unit_test(test_odd_count_and_empty_name_refused),
      cmocka_unit_test(test_allocation_failures),
  };
  cmocka_set_test_filter(getenv("BROOK_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
