#!/bin/sh
# ctest example_push_attach: the program exits 0, every pushed record was processed (counts
# and the sum of squares are exact), the application's heartbeat timer kept firing while
# brook ran on its loop, and the loop closed with no handle left behind.
# Usage: sh test.sh /absolute/path/to/push_attach   (run in a scratch directory)
set -eu

bin=$1

fail() {
  echo "push_attach test: FAILED: $*" >&2
  cat out.txt >&2 2>/dev/null || true
  exit 1
}

"$bin" >out.txt 2>err.txt || fail "exit status $?"
for want in \
  'pipeline done: BROOK_OK' \
  'processed 100000 records, sum of squares 333338333350000' \
  'runtime: 100000 records in, 100000 out, ' \
  'loop closed: ok, no handle left behind'; do
  grep -qF "$want" out.txt || fail "output lacks '$want'"
done
grep -q '^pushed 100000 records; the producer waited for credit [0-9][0-9]* times$' out.txt ||
  fail "wrong pushed count"
# The producer pauses 20 ms after each of its 10 bursts, so the run lasts >= 200 ms: a 100 ms
# timer that never fired would mean brook starved the application's loop.
grep -q '^heartbeat 1: ' out.txt || fail "the application's heartbeat timer never fired"
[ ! -s err.txt ] || fail "unexpected output on stderr: $(cat err.txt)"

echo "push_attach test: ok"
