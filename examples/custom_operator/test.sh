#!/bin/sh
# ctest example_custom_operator: checks the exact output of the heartbeat-absence detector
# (SILENT when the watermark passes a device's deadline, BACK on its next heartbeat, a silent
# device forgotten after forget_after, the final report from end_of_input, the keyless
# heartbeat skipped by the error policy), the configuration given as KEY=VALUE arguments,
# and that a bad configuration stops the start with a message. The timers are tested to the
# millisecond with the test driver in tests/test_example_custom_operator.c.
# Usage: sh test.sh /absolute/path/to/custom_operator   (run in a scratch directory)
set -eu

bin=$1

fail() {
  echo "custom_operator test: FAILED: $*" >&2
  exit 1
}

cat >expected.txt <<'END'
10:01:30  pump-3  SILENT  no heartbeat since 10:01:00
10:02:30  pump-3  BACK    after 90 s of silence
10:03:30  pump-4  SILENT  no heartbeat since 10:03:00
report: 3 devices, 0 silent, 110 heartbeats since the last report, watermark end of input
111 heartbeats in, 1 skipped (no device id)
END

# The periodic report runs on processing time: under a slow machine it may fire during the
# run. Those lines are checked apart; everything else must match exactly.
periodic='^report: .* watermark [0-9][0-9]:[0-9][0-9]:[0-9][0-9]$'

status=0
"$bin" >out.txt 2>err.txt || status=$?
[ "$status" -eq 0 ] || {
  cat err.txt >&2
  fail "exit status $status"
}
grep -v "$periodic" out.txt >events.txt || true
cmp expected.txt events.txt || {
  diff -u expected.txt events.txt >&2 || true
  fail "output differs from the expected output"
}

# silence=60000, never forget: the silences are reported a minute after the last heartbeat
# and pump-4 is still tracked (and silent) at the end.
"$bin" silence=60000 forget_after=0 >long.txt 2>/dev/null || fail "silence=60000: exit status $?"
grep -q '^10:02:00  pump-3  SILENT  no heartbeat since 10:01:00$' long.txt ||
  fail "silence=60000: pump-3 not silent at 10:02:00"
grep -q '^10:04:00  pump-4  SILENT  no heartbeat since 10:03:00$' long.txt ||
  fail "silence=60000: pump-4 not silent at 10:04:00"
grep -q '^report: 4 devices, 1 silent, .* watermark end of input$' long.txt ||
  fail "silence=60000 forget_after=0: pump-4 was forgotten"

# A bad value: open() refuses it, the runtime does not start, the log says why.
status=0
"$bin" silence=0 >bad.txt 2>bad_err.txt || status=$?
[ "$status" -eq 1 ] || fail "silence=0: exit status $status, expected 1"
grep -q 'config silence="0": must be a whole number of ms in 1\.\.' bad_err.txt ||
  fail "silence=0: no useful message"
[ ! -s bad.txt ] || fail "silence=0: printed results"

status=0
"$bin" forget_after=30000 >bad.txt 2>bad_err.txt || status=$?
[ "$status" -eq 1 ] || fail "forget_after=30000: exit status $status, expected 1"
grep -q 'forget_after=30000 must be 0 (never) or more than silence=30000' bad_err.txt ||
  fail "forget_after=30000: no useful message"

# Not KEY=VALUE: usage, exit status 2.
status=0
"$bin" silence >/dev/null 2>usage.txt || status=$?
[ "$status" -eq 2 ] || fail "bad usage: exit status $status, expected 2"
grep -q '^usage: ' usage.txt || fail "bad usage: no usage message"

echo "custom_operator test: ok"
