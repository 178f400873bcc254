/* Error codes (brook_strerror, brook_errname) and the library version. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

typedef struct code_name {
  int code;
  const char *name;
} code_name_t;

#define CODE(c)                                                                                    \
  { c, #c }
static const code_name_t all_codes[] = {
    CODE(BROOK_OK),
    CODE(BROOK_DONE),
    CODE(BROOK_ERR_NOMEM),
    CODE(BROOK_ERR_INVALID_ARG),
    CODE(BROOK_ERR_CYCLE),
    CODE(BROOK_ERR_DANGLING),
    CODE(BROOK_ERR_FROZEN),
    CODE(BROOK_ERR_STATE),
    CODE(BROOK_ERR_NOT_FOUND),
    CODE(BROOK_ERR_FULL),
    CODE(BROOK_ERR_STOPPED),
    CODE(BROOK_ERR_IO),
    CODE(BROOK_ERR_USER),
    CODE(BROOK_ERR_TOO_LARGE),
    CODE(BROOK_ERR_TIMEOUT),
    CODE(BROOK_ERR_LOOP),
    CODE(BROOK_ERR_BUILD),
    CODE(BROOK_ERR_DUPLICATE),
    CODE(BROOK_ERR_CORRUPT),
    CODE(BROOK_ERR_KAFKA),
};
#undef CODE
#define N_CODES (sizeof(all_codes) / sizeof(all_codes[0]))

static void test_errname_matches_enum_name(void **state) {
  (void)state;
  for (size_t i = 0; i < N_CODES; i++) {
    const char *name = brook_errname(all_codes[i].code);
    assert_non_null(name);
    assert_string_equal(name, all_codes[i].name);
  }
}

static void test_strerror_known_codes_distinct(void **state) {
  (void)state;
  for (size_t i = 0; i < N_CODES; i++) {
    const char *text = brook_strerror(all_codes[i].code);
    assert_non_null(text);
    assert_true(strlen(text) > 0);
    assert_string_not_equal(text, "user-defined error");
    assert_string_not_equal(text, "unknown status");
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(text, brook_strerror(all_codes[j].code));
  }
  assert_string_equal(brook_strerror(BROOK_OK), "success");
  assert_string_equal(brook_strerror(BROOK_ERR_NOMEM), "out of memory");
}

static void test_enum_values_are_stable(void **state) {
  (void)state;
  /* The ABI: these numbers are part of the public contract (errors negative, OK zero). */
  assert_int_equal(BROOK_OK, 0);
  assert_int_equal(BROOK_DONE, 1);
  int expected = -1;
  for (size_t i = 2; i < N_CODES; i++, expected--)
    assert_int_equal(all_codes[i].code, expected);
}

static void test_unknown_negative_is_user_defined(void **state) {
  (void)state;
  const int user_codes[] = {-17 - 1000, -100, BROOK_ERR_KAFKA - 1, INT_MIN};
  for (size_t i = 0; i < sizeof(user_codes) / sizeof(user_codes[0]); i++) {
    assert_string_equal(brook_strerror(user_codes[i]), "user-defined error");
    const char *name = brook_errname(user_codes[i]);
    assert_non_null(name);
    assert_true(strlen(name) > 0);
    for (size_t j = 0; j < N_CODES; j++)
      assert_string_not_equal(name, all_codes[j].name);
  }
}

static void test_unknown_positive_not_null(void **state) {
  (void)state;
  const int codes[] = {2, 42, INT_MAX};
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    const char *text = brook_strerror(codes[i]);
    const char *name = brook_errname(codes[i]);
    assert_non_null(text);
    assert_non_null(name);
    /* Not an error: must not claim to be a user-defined error code. */
    assert_string_not_equal(text, "user-defined error");
    for (size_t j = 0; j < N_CODES; j++)
      assert_string_not_equal(name, all_codes[j].name);
  }
}

static void test_version_matches_header(void **state) {
  (void)state;
  assert_non_null(brook_version());
  assert_string_equal(brook_version(), BROOK_VERSION_STRING);
  char built[64];
  snprintf(built, sizeof(built), "%d.%d.%d", BROOK_VERSION_MAJOR, BROOK_VERSION_MINOR,
           BROOK_VERSION_PATCH);
  assert_string_equal(brook_version(), built);
  unsigned expected = ((unsigned)BROOK_VERSION_MAJOR << 16) | ((unsigned)BROOK_VERSION_MINOR << 8) |
                      (unsigned)BROOK_VERSION_PATCH;
  assert_int_equal(brook_version_number(), expected);
  /* The same pointer every time: a static string. */
  assert_ptr_equal(brook_version(), brook_version());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errname_matches_enum_name),
      cmocka_unit_test(test_strerror_known_codes_distinct),
      cmocka_unit_test(test_enum_values_are_stable),
      cmocka_unit_test(test_unknown_negative_is_user_defined),
      cmocka_unit_test(test_unknown_positive_not_null),
      cmocka_unit_test(test_version_matches_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
