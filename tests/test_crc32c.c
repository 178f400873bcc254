/* CRC32C, the checksum of brook's persisted formats: the standard check value, chaining, and
 * agreement with a bit-at-a-time reference at every length and alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/crc32c.h"

static uint32_t reference(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

static void test_check_value(void **state) {
  (void)state;
  assert_int_equal(bk_crc32c(0, "123456789", 9), 0xE3069283u); /* the catalogued check */
  assert_int_equal(bk_crc32c_portable(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(bk_crc32c(0, "", 0), 0);
  unsigned char zeros[32] = {0};
  assert_int_equal(bk_crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu); /* RFC 3720 B.4 */
}

static void test_matches_reference_and_chains(void **state) {
  (void)state;
  unsigned char buf[600];
  uint64_t x = 0x9E3779B97F4A7C15u;
  for (size_t i = 0; i < sizeof(buf); i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    buf[i] = (unsigned char)x;
  }
  for (size_t off = 0; off < 9; off++)
    for (size_t n = 0; n + off <= 300; n++) {
      uint32_t want = reference(buf + off, n);
      assert_int_equal(bk_crc32c(0, buf + off, n), want);
      assert_int_equal(bk_crc32c_portable(0, buf + off, n), want);
      size_t cut = n / 3;
      assert_int_equal(bk_crc32c(bk_crc32c(0, buf + off, cut), buf + off + cut, n - cut), want);
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_value),
      cmocka_unit_test(test_matches_reference_and_chains),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
