#!/bin/sh
# ctest example_fraud_detection: the example end to end on the embedded broker. Starts
# brook-broker, writes 20,000 payments with brook-paygen, runs the pipeline until it has been
# idle for 3 s, and checks what it reports against what paygen injected: every fraud card is
# alerted and no other card is, every alert is over a threshold, every malformed payment went
# to the dead-letter topic (invalid UTF-8 and unparsable ones counted apart), none was late.
# Then a second consumer group is stopped with SIGTERM and must finish cleanly; bad usage; and
# poisoned message timestamps (INT64_MAX, 2100, -5, INT64_MIN at the head of every partition)
# are dead-lettered without making any valid payment late.
# Usage: sh test.sh /absolute/path/to/fraud_detection   (run in a scratch directory)
set -eu
export LC_ALL=C # comm and sort compare bytes

bin=$1
tools=$(dirname "$bin")/../tools
broker_pid=
pipeline_pid=

fail() {
  echo "fraud_detection test: FAILED: $*" >&2
  exit 1
}

cleanup() {
  if [ -n "$pipeline_pid" ]; then
    kill -9 "$pipeline_pid" 2>/dev/null || true
  fi
  if [ -n "$broker_pid" ]; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The number before `label` in the summary line ("... 20000 payments read, ...").
summary_field() { # file label
  sed -n "s/^fraud_detection:.*[ (]\([0-9][0-9]*\) $2.*/\1/p" "$1"
}

# The value of key=N in paygen's summary line.
paygen_field() { # key
  sed -n "s/^paygen:.* $1=\([0-9][0-9]*\).*/\1/p" paygen.txt
}

# Waits up to 10 s for a non-empty file, as long as process $2 lives.
wait_for_file() { # file pid
  i=0
  while [ ! -s "$1" ]; do
    kill -0 "$2" 2>/dev/null || return 1
    i=$((i + 1))
    [ "$i" -le 100 ] || return 1
    sleep 0.1
  done
}

# 1. the embedded broker, on random loopback ports
"$tools/brook-broker" --brokers 1 --topic payments:8 --topic alerts:4 --topic payments.dlq:1 \
  --topic payments-poisoned:8 --bootstrap-file bootstrap.txt >broker.txt 2>&1 &
broker_pid=$!
wait_for_file bootstrap.txt "$broker_pid" || {
  cat broker.txt >&2
  fail "brook-broker did not start"
}
brokers=$(cat bootstrap.txt)

# 2. the payments
"$tools/brook-paygen" --brokers "$brokers" --count 20000 --seed 7 --fraud-list fraud.txt \
  >paygen.txt || fail "brook-paygen: exit status $?"
sent=$(paygen_field sent)
malformed_utf8=$(paygen_field malformed_utf8)
malformed_csv=$(paygen_field malformed_csv)
[ "$sent" = 20000 ] || fail "paygen sent '$sent' payments, not 20000"
[ "$(wc -l <fraud.txt)" -eq 25 ] || fail "paygen did not list 25 fraud cards"
[ $((malformed_utf8 + malformed_csv)) -gt 0 ] || fail "paygen sent no malformed payment"

# 3. the pipeline, until no payment has come for 3 s (timeout: a hang fails, not blocks)
status=0
timeout -k 10 90 "$bin" --brokers "$brokers" --exit-when-idle 3 --alerted-list alerted.txt \
  >out.txt 2>err.txt || status=$?
[ "$status" -eq 0 ] || {
  cat out.txt err.txt >&2
  fail "fraud_detection: exit status $status"
}
if grep -q '^fraud_detection: error' err.txt; then
  cat err.txt >&2
  fail "errors on stderr"
fi
grep -q '^fraud_detection: no new payment for 3 s (--exit-when-idle): stopping$' err.txt ||
  fail "no idle stop message"
grep -q '^\[ *[0-9]*s\] [0-9]* payments read' out.txt || fail "no status line"
grep -q '^fraud_detection: .* payments read, ' out.txt || fail "no summary"

# Counts: everything paygen sent was read; the malformed payments, and only they, went to the
# dead-letter topic: invalid UTF-8 from the source, unparsable text through the error stream.
[ "$(summary_field out.txt 'payments read')" = "$sent" ] || fail "not all $sent payments read"
[ "$(summary_field out.txt 'malformed')" = $((malformed_utf8 + malformed_csv)) ] ||
  fail "dead letters differ from the $malformed_utf8 + $malformed_csv malformed payments sent"
[ "$(summary_field out.txt 'not UTF-8')" = "$malformed_utf8" ] || fail "invalid UTF-8 count"
[ "$(summary_field out.txt 'not a payment')" = "$malformed_csv" ] || fail "unparsable count"
[ "$(summary_field out.txt 'with a timestamp out of bounds')" = 0 ] || fail "timestamps out of bounds"
# No payment arrived after its windows closed: the watermark allows 3 s of disorder, paygen
# sends at most 2 s.
if grep -q 'after all their windows had closed' out.txt; then
  fail "late payments: $(grep 'after all their windows' out.txt)"
fi

# Alerts: every line is over a threshold (6 payments or 2500.00 in a window) and the summary
# counts them all.
alerts=$(grep -c '^ALERT card-[0-9]* too_' out.txt || true)
[ "$alerts" -gt 0 ] || fail "no alert"
[ "$(summary_field out.txt 'alerts written')" = "$alerts" ] || fail "alert count differs"
bad=$(sed -n 's/^ALERT .* count=\([0-9]*\) total=\([0-9.]*\) .*/\1 \2/p' out.txt |
  awk '$1 < 6 && $2 < 2500 {print}')
[ -z "$bad" ] || fail "alerts under both thresholds: $bad"

# Cards: every fraud card raised an alert, and no other card did. A normal card pays about
# every 50 s (25-75 s apart) at most 150.00: 3 or 4 payments and a few hundred in a minute,
# far below 6 payments or 2500.00, so an alerted normal card is a bug, not bad luck.
missed=$(comm -23 fraud.txt alerted.txt | tr '\n' ' ')
extra=$(comm -13 fraud.txt alerted.txt | tr '\n' ' ')
[ -z "$missed" ] || fail "fraud cards not alerted: $missed"
[ -z "$extra" ] || fail "normal cards alerted: $extra"
[ "$(summary_field out.txt cards)" -eq 25 ] || fail "summary does not say 25 cards"

# 4. SIGTERM stops cleanly: a new consumer group reads the topic again, is terminated once it
# has read something, and still exits 0 with a summary.
"$bin" --brokers "$brokers" --group fraud-detection-sigterm >term_out.txt 2>term_err.txt &
pipeline_pid=$!
i=0
until grep -q ' payments read' term_out.txt; do
  kill -0 "$pipeline_pid" 2>/dev/null || fail "SIGTERM run: ended early: $(cat term_err.txt)"
  i=$((i + 1))
  [ "$i" -le 300 ] || fail "SIGTERM run: read nothing in 30 s"
  sleep 0.1
done
kill -TERM "$pipeline_pid"
status=0
wait "$pipeline_pid" || status=$?
pipeline_pid=
[ "$status" -eq 0 ] || fail "SIGTERM run: exit status $status: $(cat term_err.txt)"
grep -q '^fraud_detection: terminated: stopping$' term_err.txt || fail "SIGTERM run: no message"
grep -q '^fraud_detection: .* payments read, ' term_out.txt || fail "SIGTERM run: no summary"

# 5. bad usage: exit status 2 and a usage message, for both programs
for args in "" "--brokers" "--brokers $brokers --exit-when-idle x" "--brokers $brokers --bogus 1" \
  "--brokers $brokers -X novalue"; do
  status=0
  # shellcheck disable=SC2086 # split on purpose: options and values
  "$bin" $args >usage_out.txt 2>usage_err.txt || status=$?
  [ "$status" -eq 2 ] || fail "fraud_detection '$args': exit status $status, expected 2"
  grep -q '^usage: ' usage_err.txt || fail "fraud_detection '$args': no usage message"
done
for args in "" "--brokers $brokers --count 0" "--brokers $brokers --count 5000" \
  "--brokers $brokers --cards 10 --fraud-cards 11"; do
  status=0
  # shellcheck disable=SC2086
  "$tools/brook-paygen" $args >usage_out.txt 2>usage_err.txt || status=$?
  [ "$status" -eq 2 ] || fail "brook-paygen '$args': exit status $status, expected 2"
  grep -q '^usage: ' usage_err.txt || fail "brook-paygen '$args': no usage message"
  [ ! -s usage_out.txt ] || fail "brook-paygen '$args': printed to stdout"
done

# 6. poisoned timestamps (issue 11): one valid payment at the head of each partition with the
# message timestamp INT64_MAX, 2100-01-01, -5 or INT64_MIN, then the same 20,000 payments. The
# Kafka source's timestamp bounds make the 8 poisoned ones malformed (dead-lettered, never
# moving a watermark): every fraud card is still alerted and no valid payment is late.
"$tools/brook-paygen" --brokers "$brokers" --topic payments-poisoned --count 20000 --seed 7 \
  --poison-timestamps 1 --fraud-list fraud_poisoned.txt >paygen_poisoned.txt ||
  fail "brook-paygen --poison-timestamps: exit status $?"
grep -q ' poisoned=8$' paygen_poisoned.txt || fail "paygen did not poison 8 partitions"
status=0
timeout -k 10 90 "$bin" --brokers "$brokers" --topic payments-poisoned \
  --group fraud-detection-poisoned --exit-when-idle 3 --alerted-list alerted_poisoned.txt \
  >out_poisoned.txt 2>err_poisoned.txt || status=$?
[ "$status" -eq 0 ] || {
  cat out_poisoned.txt err_poisoned.txt >&2
  fail "poisoned run: exit status $status"
}
if grep -q 'after all their windows had closed' out_poisoned.txt; then
  fail "poisoned run: late payments: $(grep 'after all their windows' out_poisoned.txt)"
fi
missed=$(comm -23 fraud_poisoned.txt alerted_poisoned.txt | wc -l)
extra=$(comm -13 fraud_poisoned.txt alerted_poisoned.txt | tr '\n' ' ')
[ "$missed" -eq 0 ] || fail "poisoned run: $missed of 25 fraud cards not alerted"
[ "$(summary_field out_poisoned.txt 'with a timestamp out of bounds')" = 8 ] ||
  fail "poisoned run: the 8 poisoned payments were not dead-lettered as out of bounds"
[ -z "$extra" ] || fail "poisoned run: normal cards alerted: $extra"

echo "fraud_detection test: ok ($alerts alerts for 25 fraud cards, $((malformed_utf8 + malformed_csv)) dead letters)"
