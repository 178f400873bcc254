#!/bin/sh
# ctest example_custom_operator: checks the exact output of the moving-average operator
# (state kept across batches, per-key summaries from end_of_input, the non-number reading
# skipped by the error policy), and that a bad "window" config stops the start with a message.
# Usage: sh test.sh /absolute/path/to/custom_operator   (run in a scratch directory)
set -eu

bin=$1

fail() {
  echo "custom_operator test: FAILED: $*" >&2
  exit 1
}

cat >expected.txt <<'END'
10:00:00  kitchen  avg  18.00 C over 1
10:00:01  garage   avg  21.00 C over 1
10:00:02  attic    avg  25.00 C over 1
10:00:03  kitchen  avg  18.50 C over 2
10:00:04  garage   avg  21.25 C over 2
10:00:05  attic    avg  25.00 C over 2
10:00:06  kitchen  avg  18.50 C over 3
10:00:08  attic    avg  24.50 C over 3
10:00:09  kitchen  avg  19.17 C over 3
10:00:10  garage   avg  21.33 C over 3
10:00:11  attic    avg  24.17 C over 3
10:00:12  kitchen  avg  19.50 C over 3
summary kitchen  5 readings, min 18.00, max 20.00, mean 19.10
summary garage   3 readings, min 21.00, max 21.50, mean 21.33
summary attic    4 readings, min 23.50, max 25.00, mean 24.38
13 readings in, 1 skipped (not a number)
END

status=0
"$bin" >out.txt 2>err.txt || status=$?
[ "$status" -eq 0 ] || {
  cat err.txt >&2
  fail "exit status $status"
}
cmp expected.txt out.txt || {
  diff -u expected.txt out.txt >&2 || true
  fail "output differs from the expected output"
}

# window=1: every average is the reading itself.
"$bin" 1 >one.txt 2>/dev/null || fail "window=1: exit status $?"
grep -q '^10:00:09  kitchen  avg  20.00 C over 1$' one.txt || fail "window=1: wrong averages"

# A bad config value: open() refuses it, the runtime does not start, the log says why.
status=0
"$bin" 0 >bad.txt 2>bad_err.txt || status=$?
[ "$status" -eq 1 ] || fail "window=0: exit status $status, expected 1"
grep -q 'window="0": must be 1..1000' bad_err.txt || fail "window=0: no useful message"
[ ! -s bad.txt ] || fail "window=0: printed results"

echo "custom_operator test: ok"
