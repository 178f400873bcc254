/* Serdes (brook/serde.h): the built-in tables both ways, composition (a UTF-8 check, then a
 * parser; written back the other way round), failures naming the stage, the field and the
 * reason, and the table's versions: a version-1 table read by its size, unknown versions and
 * incomplete or endless chains refused with messages. Run inside operators on the test
 * driver, as a user's own source, sink or operator would use them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brook/brook.h>

#include "driver_helpers.h"
#include "serde_amount.h"

static void assert_says(const char *msg, const char *part) {
  if (!msg || !strstr(msg, part))
    fail_msg("message \"%s\" does not say \"%s\"", msg ? msg : "(null)", part);
}

/* A wrapper around a built-in that logs its calls (to see the order stages run in). */
typedef struct logged {
  brook_serde_t inner;
  serde_calls_t *calls;
} logged_t;

static brook_err_t logged_read(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                               size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  logged_t *l = s->opaque;
  char what[32];
  snprintf(what, sizeof(what), "%s.read", l->inner.name);
  serde_calls_add(l->calls, what);
  return l->inner.deserialize(ctx, in, len, out, out_len, f, &l->inner);
}

static brook_err_t logged_write(brook_ctx_t *ctx, const void *in, size_t len, const void **out,
                                size_t *out_len, brook_serde_failure_t *f, const brook_serde_t *s) {
  logged_t *l = s->opaque;
  char what[32];
  snprintf(what, sizeof(what), "%s.write", l->inner.name);
  serde_calls_add(l->calls, what);
  return l->inner.serialize(ctx, in, len, out, out_len, f, &l->inner);
}

/* ---- running a serde inside an operator ---- */

/* What the map does: deserialize or serialize rec->value with `serde`. */
typedef struct job {
  const brook_serde_t *serde;
  int write;
} job_t;

static int expect_nul; /* convert checks that the output is followed by a NUL */

static brook_err_t convert(brook_record_t *rec, brook_ctx_t *ctx, void *opaque) {
  const job_t *j = opaque;
  const void *out;
  size_t out_len;
  brook_err_t err =
      j->write ? brook_serde_serialize(ctx, j->serde, rec->value, rec->value_len, &out, &out_len)
               : brook_serde_deserialize(ctx, j->serde, rec->value, rec->value_len, &out, &out_len);
  if (err < 0)
    return err;
  if (expect_nul)
    assert_int_equal(((const char *)out)[out_len], '\0');
  rec->value = out;
  rec->value_len = out_len;
  return BROOK_OK;
}

/* Runs one record with value in[0..len) through `serde`; returns the driver's result. On
 * success copies the output value into out[0..*out_len) (out_cap bytes), else the message
 * into msg. */
static brook_err_t run_serde(const brook_serde_t *serde, int write, const void *in, size_t len,
                             void *out, size_t out_cap, size_t *out_len, char *msg,
                             size_t msg_cap) {
  brook_topology_t *t = NULL;
  assert_int_equal(brook_topology_new(&t, NULL), BROOK_OK);
  job_t j = {serde, write};
  named_sink(brook_map(brook_source_push(t, "in", NULL), convert, &j), "out");
  brook_driver_t *d = NULL;
  assert_int_equal(brook_driver_new(&d, t, NULL), BROOK_OK);
  brook_record_t r;
  memset(&r, 0, sizeof(r));
  r.value = in;
  r.value_len = len;
  brook_err_t err = brook_driver_push(d, "in", &r);
  if (err == BROOK_OK) {
    const brook_record_t *o = brook_driver_output(d, "out", 0);
    assert_non_null(o);
    assert_true(o->value_len <= out_cap);
    if (o->value_len)
      memcpy(out, o->value, o->value_len);
    *out_len = o->value_len;
  } else if (msg) {
    snprintf(msg, msg_cap, "%s", brook_driver_last_error(d));
  }
  brook_driver_free(d);
  brook_topology_free(t);
  return err;
}

static void expect_bytes(const brook_serde_t *serde, int write, const void *in, size_t len,
                         const void *want, size_t want_len) {
  unsigned char out[64];
  size_t out_len = 0;
  char msg[512] = "";
  brook_err_t err = run_serde(serde, write, in, len, out, sizeof(out), &out_len, msg, sizeof(msg));
  if (err != BROOK_OK)
    fail_msg("%s '%s' failed: %s", write ? "serialize" : "deserialize", serde->name, msg);
  assert_int_equal(out_len, want_len);
  assert_memory_equal(out, want, want_len);
}

static void expect_failure(const brook_serde_t *serde, int write, const void *in, size_t len,
                           brook_err_t want, const char *says) {
  unsigned char out[64];
  size_t out_len;
  char msg[512] = "";
  assert_int_equal(run_serde(serde, write, in, len, out, sizeof(out), &out_len, msg, sizeof(msg)),
                   want);
  assert_says(msg, says);
}

/* ---- tests ---- */

static void test_builtins_both_ways(void **state) {
  (void)state;
  brook_serde_t bytes = brook_serde_bytes(), utf8 = brook_serde_utf8();
  brook_serde_t string = brook_serde_string(), i32 = brook_serde_int32();
  brook_serde_t i64 = brook_serde_int64(), dbl = brook_serde_double();
  assert_string_equal(utf8.name, "utf8");
  assert_int_equal(i64.version, BROOK_SERDE_VERSION);
  assert_null(i64.next);

  expect_bytes(&bytes, 0, "\xff\x00z", 3, "\xff\x00z", 3);
  expect_bytes(&bytes, 1, "\xff\x00z", 3, "\xff\x00z", 3);

  expect_bytes(&utf8, 0, "h\xc3\xa9", 3, "h\xc3\xa9", 3);
  expect_failure(&utf8, 0, "ab\xc3(", 4, BROOK_ERR_CORRUPT,
                 "deserialiser 'utf8': not valid UTF-8 at byte 2 of 4");
  expect_failure(&utf8, 0, "\xed\xa0\x80", 3, BROOK_ERR_CORRUPT, "not valid UTF-8 at byte 0");
  expect_failure(&utf8, 1, "\xc0\xaf", 2, BROOK_ERR_INVALID_ARG,
                 "serialiser 'utf8': not valid UTF-8 at byte 0 of 2");

  /* string: a C string in the record (NUL after the bytes, not counted). */
  expect_nul = 1;
  expect_bytes(&string, 0, "abc", 3, "abc", 3); /* followed by a NUL, not counted */
  expect_bytes(&string, 0, "", 0, "", 0);
  expect_nul = 0;
  expect_failure(&string, 0, "a\0b", 3, BROOK_ERR_CORRUPT, "text contains a NUL byte at 1");
  expect_bytes(&string, 1, "abc", 4, "abc", 3); /* a counted NUL is not written */

  int32_t n32 = -2;
  expect_bytes(&i32, 0, "\xff\xff\xff\xfe", 4, &n32, 4);
  expect_bytes(&i32, 1, &n32, 4, "\xff\xff\xff\xfe", 4);
  expect_failure(&i32, 0, "\x01\x02", 2, BROOK_ERR_CORRUPT, "an int32 needs 4 bytes, got 2");
  int64_t n64 = 0x0102030405060708;
  expect_bytes(&i64, 0, "\x01\x02\x03\x04\x05\x06\x07\x08", 8, &n64, 8);
  expect_bytes(&i64, 1, &n64, 8, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  expect_failure(&i64, 1, "abc", 3, BROOK_ERR_INVALID_ARG, "an int64 needs 8 bytes, got 3");
  double x = 1.5; /* 0x3FF8000000000000 */
  expect_bytes(&dbl, 0, "\x3f\xf8\0\0\0\0\0\0", 8, &x, 8);
  expect_bytes(&dbl, 1, &x, 8, "\x3f\xf8\0\0\0\0\0\0", 8);
  expect_failure(&dbl, 0, "", 0, BROOK_ERR_CORRUPT, "a double needs 8 bytes, got 0");
}

/* UTF-8 validation, then a parser: read in that order, written back the other way round;
 * each failure names its stage (and position in the chain), the field and the reason. */
static void test_composition(void **state) {
  (void)state;
  serde_calls_t calls = {""};
  brook_serde_t amount = serde_amount(&calls);
  logged_t lu = {brook_serde_utf8(), &calls};
  brook_serde_t text = {BROOK_SERDE_VERSION, "utf8", logged_read, logged_write, &lu, &amount};

  int64_t v = 1234;
  expect_bytes(&text, 0, "amount=1234", 11, &v, sizeof(v));
  assert_string_equal(calls.log, "utf8.read,amount.read");

  calls.log[0] = '\0';
  v = 77;
  expect_bytes(&text, 1, &v, sizeof(v), "amount=77", 9);
  assert_string_equal(calls.log, "amount.write,utf8.write");

  /* The first stage refuses: the parser never runs. */
  calls.log[0] = '\0';
  expect_failure(&text, 0, "amount=\xff", 8, BROOK_ERR_CORRUPT,
                 "deserialiser 'utf8' (1 of 2): not valid UTF-8 at byte 7 of 8");
  assert_string_equal(calls.log, "utf8.read");
  /* The second refuses, naming the field. */
  expect_failure(&text, 0, "amount=12x", 10, BROOK_ERR_CORRUPT,
                 "deserialiser 'amount' (2 of 2), field 'amount': not a number: '12x'");
  expect_failure(&text, 0, "price=1", 7, BROOK_ERR_CORRUPT,
                 "deserialiser 'amount' (2 of 2): expected amount=<number>");
  expect_failure(
      &text, 1, "abc", 3, BROOK_ERR_INVALID_ARG,
      "serialiser 'amount' (2 of 2), field 'amount': a record value of 3 bytes is no int64_t");

  /* Bytes stages anywhere in a chain change nothing. */
  brook_serde_t b2 = brook_serde_bytes();
  b2.next = &amount;
  brook_serde_t b1 = brook_serde_bytes();
  b1.next = &b2;
  v = 5;
  expect_bytes(&b1, 0, "amount=5", 8, &v, sizeof(v));
  expect_failure(&b1, 0, "amount=", 7, BROOK_ERR_CORRUPT,
                 "deserialiser 'amount' (3 of 3), field 'amount': empty");
}

/* A version-1 table is read by its size, from a buffer exactly that large (ASan catches a
 * read past it); the built-ins are written as the caller's version, nothing past it. */
static void test_known_version_by_size(void **state) {
  (void)state;
  brook_serde_t *s = malloc(sizeof(*s));
  assert_non_null(s);
  *s = serde_amount(NULL);
  s->version = 1;
  int64_t v = 42;
  expect_bytes(s, 0, "amount=42", 9, &v, sizeof(v));
  free(s);

  union {
    brook_serde_t s;
    unsigned char bytes[sizeof(brook_serde_t) + 16];
  } buf;
  memset(&buf, 0x5a, sizeof(buf));
  assert_int_equal(brook_serde_builtin(&buf.s, 1, BROOK_SERDE_INT64), BROOK_OK);
  assert_int_equal(buf.s.version, 1);
  assert_string_equal(buf.s.name, "int64");
  assert_null(buf.s.next);
  for (size_t i = sizeof(brook_serde_t); i < sizeof(buf.bytes); i++)
    assert_int_equal(buf.bytes[i], 0x5a);
  memset(&buf, 0x5a, sizeof(buf));
  assert_int_equal(brook_serde_builtin(&buf.s, 0, BROOK_SERDE_INT64), BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_serde_builtin(&buf.s, BROOK_SERDE_VERSION + 1, BROOK_SERDE_BYTES),
                   BROOK_ERR_INVALID_ARG);
  assert_int_equal(brook_serde_builtin(&buf.s, 1, (brook_serde_format_t)99), BROOK_ERR_INVALID_ARG);
  for (size_t i = 0; i < sizeof(buf.bytes); i++)
    assert_int_equal(buf.bytes[i], 0x5a);
  assert_int_equal(brook_serde_builtin(NULL, 1, BROOK_SERDE_BYTES), BROOK_ERR_INVALID_ARG);
}

/* Chains that cannot run are refused before any callback runs, with what is wrong. */
static void test_bad_chains_refused(void **state) {
  (void)state;
  serde_calls_t calls = {""};
  brook_serde_t amount = serde_amount(&calls);
  brook_serde_t utf8 = brook_serde_utf8();
  utf8.next = &amount;

  amount.version = 0;
  expect_failure(&utf8, 0, "amount=1", 8, BROOK_ERR_INVALID_ARG,
                 "serde table 2 of the chain has version 0, not one this library knows (1 to 1)");
  amount.version = BROOK_SERDE_VERSION + 1;
  expect_failure(&utf8, 1, "12345678", 8, BROOK_ERR_INVALID_ARG,
                 "serde table 2 of the chain has version 2, not one this library knows");
  amount.version = BROOK_SERDE_VERSION;
  assert_string_equal(calls.log, "");

  amount.deserialize = NULL; /* a writer only */
  expect_failure(&utf8, 0, "amount=1", 8, BROOK_ERR_INVALID_ARG,
                 "serde 'amount' (table 2 of the chain) has no deserialize callback");
  int64_t v = 3;
  expect_bytes(&utf8, 1, &v, sizeof(v), "amount=3", 8);

  brook_serde_t loop = brook_serde_bytes();
  loop.next = &loop;
  expect_failure(&loop, 0, "x", 1, BROOK_ERR_INVALID_ARG,
                 "a chain of more than 8 serdes (or a cycle through next)");
  expect_failure(NULL, 0, "x", 1, BROOK_ERR_INVALID_ARG, "serde is NULL");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builtins_both_ways),
      cmocka_unit_test(test_composition),
      cmocka_unit_test(test_known_version_by_size),
      cmocka_unit_test(test_bad_chains_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
