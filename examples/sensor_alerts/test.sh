#!/bin/sh
# ctest example_sensor_alerts: runs the pipeline's own unit test (--selftest, the test
# driver), then the simulation with fixed seeds and checks the output against what the
# simulation injected: exactly the drifting sensors alert, every alert is above the threshold,
# every delayed reading reaches the late side output, the sessions are the ones the on-time
# readings form, the counters add up, the output is the same on every run; and bad usage.
# Usage: sh test.sh /absolute/path/to/sensor_alerts   (run in a scratch directory)
set -eu

bin=$1

fail() {
  echo "sensor_alerts test: FAILED: $*" >&2
  exit 1
}

# The number after `label` on the summary line that starts with "  $line:".
summary_field() { # file line label
  sed -n "s/^  $2: .*[ (]\([0-9][0-9]*\) $3.*/\1/p" "$1"
}

# Runs the simulation with the given arguments into $out and checks its consistency.
check_run() { # out args...
  out=$1
  shift
  status=0
  "$bin" "$@" >"$out" 2>err.txt || status=$?
  [ "$status" -eq 0 ] || {
    cat err.txt >&2
    fail "$*: exit status $status"
  }
  [ ! -s err.txt ] || fail "$*: unexpected output on stderr: $(cat err.txt)"
  grep -q '^summary:$' "$out" || fail "$*: no summary"

  generated=$(summary_field "$out" readings generated)
  taken=$(summary_field "$out" readings taken)
  [ -n "$generated" ] || fail "$*: no reading count"
  [ "$generated" = "$taken" ] ||
    fail "$*: $generated readings generated but $taken taken in"

  # Alerts: some, all above 80 C, from exactly the drifting sensors.
  alerts=$(grep -c '^ALERT ' "$out" || true)
  [ "$alerts" -gt 0 ] || fail "$*: no alert"
  [ "$alerts" = "$(summary_field "$out" windows above)" ] || fail "$*: alert count differs"
  bad=$(awk '/^ALERT / && $4 + 0 <= 80.0' "$out")
  [ -z "$bad" ] || fail "$*: alert at or below the threshold: $bad"
  drifting=$(sed -n 's/^drifting: //p' "$out" | tr ' ' '\n' | sort | tr '\n' ' ')
  alerted=$(awk '/^ALERT / {print $2}' "$out" | sort -u | tr '\n' ' ')
  [ -n "$drifting" ] || fail "$*: no drifting sensor"
  [ "$drifting" = "$alerted" ] ||
    fail "$*: alerted sensors [$alerted] are not the drifting ones [$drifting]"

  # Late readings: each one the simulation delayed, and nothing else.
  late=$(grep -c '^LATE ' "$out" || true)
  [ "$late" -gt 0 ] || fail "$*: no late reading"
  [ "$late" = "$(summary_field "$out" late readings)" ] || fail "$*: late count differs"
  [ "$late" = "$(summary_field "$out" late delayed)" ] ||
    fail "$*: $late late readings, but the simulation delayed $(summary_field "$out" late delayed)"

  # Sessions: as many as the on-time readings form, at least one per sensor; every reading
  # is in a session or was dropped as late by the session windows.
  sessions=$(sed -n 's/^  sessions:  \([0-9]*\) (\([0-9]*\) expected.*/\1 \2/p' "$out")
  [ -n "$sessions" ] || fail "$*: no session count"
  [ "${sessions% *}" = "${sessions#* }" ] ||
    fail "$*: sessions (found, expected) = $sessions"
  sensors=$(sed -n 's/^simulating \([0-9]*\) sensors.*/\1/p' "$out")
  [ "${sessions% *}" -ge "$sensors" ] || fail "$*: fewer sessions than sensors"
  in_sessions=$(summary_field "$out" sessions readings)
  session_late=$(summary_field "$out" runtime 'late dropped')
  [ $((in_sessions + session_late)) -eq "$generated" ] ||
    fail "$*: $in_sessions readings in sessions + $session_late dropped != $generated"

  # Every record a sink received: alerts, late readings and sessions.
  records_out=$(summary_field "$out" runtime out)
  [ "$records_out" -eq $((alerts + late + ${sessions% *})) ] ||
    fail "$*: $records_out records out != $alerts + $late + ${sessions% *}"
}

# 1. the pipeline's unit test with the test driver: exact alerts, late reading and sessions
status=0
"$bin" --selftest >selftest.txt 2>&1 || status=$?
[ "$status" -eq 0 ] || {
  cat selftest.txt >&2
  fail "--selftest: exit status $status"
}
grep -qx 'selftest: ok' selftest.txt || fail "--selftest did not say ok"

# 2. the default simulation, seed 1 (numbers checked against a brute-force reference)
check_run seed1.txt --seed 1
for want in \
  'simulating 50 sensors for 30 min from 12:00:00 UTC (seed 1): 15444 readings, 5 delayed by minutes' \
  'drifting: sensor-15 sensor-19' \
  '  windows:   8718 hopping-window means, 38 above 80.0 C (alerts)' \
  '  sessions:  188 (188 expected from the on-time readings), holding 15443 readings' \
  'ALERT sensor-19 mean 80.2 in [12:09:10, 12:10:10)' \
  'ALERT sensor-15 mean 92.0 in [12:10:40, 12:11:40)' \
  'LATE sensor-22 60.6 C measured at 12:03:59, after its windows closed'; do
  grep -qxF "$want" seed1.txt || fail "seed 1: output lacks '$want'"
done

# 3. deterministic: the same seed gives the same output
check_run again.txt --seed 1
cmp seed1.txt again.txt || fail "two runs with seed 1 differ"

# 4. other seeds and sizes
check_run seed7.txt --seed 7
check_run big.txt --seed 3 --sensors 99 --minutes 60 --late 20 --drifting 4
check_run few.txt --seed 5 --sensors 3 --minutes 20 --late 3 --drifting 1

# 5. --sessions prints every session
"$bin" --seed 1 --sessions >sessions.txt 2>/dev/null || fail "--sessions: exit status $?"
[ "$(grep -c '^SESSION ' sessions.txt)" -eq 188 ] || fail "--sessions: not 188 SESSION lines"

# 6. bad usage: exit status 2, a usage message, nothing on stdout
for args in "--sensors 0" "--minutes" "--seed x" "--threshold 8x" "--bogus"; do
  status=0
  # shellcheck disable=SC2086 # split on purpose: one option and its value
  "$bin" $args >usage_out.txt 2>usage_err.txt || status=$?
  [ "$status" -eq 2 ] || fail "'$args': exit status $status, expected 2"
  grep -q '^usage: ' usage_err.txt || fail "'$args': no usage message"
  [ ! -s usage_out.txt ] || fail "'$args': printed to stdout"
done

echo "sensor_alerts test: ok"
