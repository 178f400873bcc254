#!/bin/sh
# ctest example_log_filter: runs log_filter on a small generated log (with malformed lines, a
# CRLF line and a last line without '\n') and checks the exact output, file to file and
# stdin to stdout, the summary counts, --min-latency, a missing input, and a clean stop on
# SIGINT. Usage: sh test.sh /absolute/path/to/log_filter   (run in a scratch directory)
set -eu

bin=$1

fail() {
  echo "log_filter test: FAILED: $*" >&2
  exit 1
}

# 15 lines: 8 slow WARN/ERROR, 2 dropped by the filter, 5 malformed.
printf '%s\n' \
  '2026-11-24T10:00:00.123Z ERROR billing payment declined by processor latency_ms=1234' \
  '2026-11-24T10:00:00.200Z WARN api slow upstream response latency_ms=499' \
  '2026-11-24T10:00:00.250Z WARN api slow upstream response latency_ms=500' \
  '2026-11-24T10:00:01.000Z INFO auth user logged in latency_ms=9000' \
  'garbage line' \
  '2026-11-24T10:00:02.5Z ERROR api upstream timeout latency_ms=501' \
  '2026-11-24T10:00:03.000Z ERROR' \
  '#### log rotated, this is not a record ####' \
  '2026-11-24T23:59:59.999Z ERROR search index shard unavailable latency_ms=2000' \
  '2026-11-24T10:00:04.000Z ERROR search latency_ms=700' \
  '2026-11-24T10:00:05Z WARN auth retry budget running low latency_ms=600' \
  '2026-13-24T10:00:00.000Z ERROR api bad month latency_ms=999' \
  '2026-11-24T10:00:06.000Z ERROR api bad latency latency_ms=12ms' >input.log
printf '2026-11-24T10:00:07.000Z ERROR api connection reset by peer latency_ms=800\r\n' >>input.log
printf '2026-11-24T10:00:08.000Z WARN billing cache eviction storm latency_ms=5000' >>input.log

printf '%s\n' \
  '10:00:00.123 ERROR [billing] 1234ms payment declined by processor' \
  '10:00:00.250 WARN  [api] 500ms slow upstream response' \
  '10:00:02.500 ERROR [api] 501ms upstream timeout' \
  '23:59:59.999 ERROR [search] 2000ms index shard unavailable' \
  '10:00:04.000 ERROR [search] 700ms' \
  '10:00:05.000 WARN  [auth] 600ms retry budget running low' \
  '10:00:07.000 ERROR [api] 800ms connection reset by peer' \
  '10:00:08.000 WARN  [billing] 5000ms cache eviction storm' >expected.log

# 1. file to file
"$bin" input.log output.log 2>summary.txt || fail "exit status $? (file mode)"
cmp expected.log output.log || {
  diff -u expected.log output.log >&2 || true
  fail "output.log differs from the expected output"
}
for want in 'lines read:  15' 'matched:     8 ' 'written:     8 to output.log' \
  'malformed:   5 ' '"garbage line"' '"2026-11-24T10:00:03.000Z ERROR"' \
  '"#### log rotated, this is not a record ####"' "BROOK_ERR_USER in 'parse'" 'lines/s'; do
  grep -qF "$want" summary.txt || {
    cat summary.txt >&2
    fail "summary lacks '$want'"
  }
done

# 2. standard input to standard output, through a pipe; the summary stays on stderr
# shellcheck disable=SC2002 # a pipe on purpose: stdin must be a pipe, not a file
cat input.log | "$bin" - - >stdout.log 2>summary2.txt || fail "exit status $? (pipe mode)"
cmp expected.log stdout.log || {
  diff -u expected.log stdout.log >&2 || true
  fail "stdout differs from the expected output"
}
grep -qF 'written:     8 to standard output' summary2.txt || fail "pipe-mode summary"

# 3. --min-latency
"$bin" - - --min-latency 1500 <input.log >slow.log 2>/dev/null || fail "exit status $? (--min-latency)"
printf '%s\n' \
  '23:59:59.999 ERROR [search] 2000ms index shard unavailable' \
  '10:00:08.000 WARN  [billing] 5000ms cache eviction storm' >expected_slow.log
cmp expected_slow.log slow.log || fail "--min-latency 1500 output differs"

# 4. errors: a missing input fails with status 1 and says why; bad usage gives status 2
status=0
"$bin" no-such-file.log out.log 2>missing.txt || status=$?
[ "$status" -eq 1 ] || fail "missing input: exit status $status, expected 1"
grep -q 'no-such-file.log\|such file' missing.txt || fail "missing input: no useful message"
status=0
"$bin" only-one-argument 2>/dev/null || status=$?
[ "$status" -eq 2 ] || fail "usage error: exit status $status, expected 2"

# 5. SIGINT stops the pipeline cleanly: what was read is written, exit status 130.
mkfifo feed
sleep 60 >feed & # holds the pipe's write end open: the input never ends by itself
holder=$!
pid=
trap 'kill $holder $pid 2>/dev/null || true' EXIT
"$bin" - interrupted.log <feed 2>sigint.txt &
pid=$!
{
  cat input.log
  printf '\n' # completes the last line: a line is only a record once its '\n' arrives
} >feed
tries=0
until [ "$(wc -l <interrupted.log 2>/dev/null || echo 0)" -ge 8 ]; do # flushed on going idle
  tries=$((tries + 1))
  [ "$tries" -le 100 ] || fail "no output 10 s after feeding the input"
  sleep 0.1
done
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 130 ] || fail "after SIGINT: exit status $status, expected 130"
cmp expected.log interrupted.log || fail "after SIGINT: output differs"
grep -qF 'interrupted' sigint.txt || fail "after SIGINT: the summary does not say so"
grep -qF 'lines read:  15' sigint.txt || fail "after SIGINT: wrong count of lines read"

echo "log_filter test: ok"
