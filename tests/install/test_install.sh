#!/bin/sh
# The install test (ctest "install"): installs the build into a temporary prefix and uses it
# as a user would, with nothing but what was installed:
#   0. libbrook.so exports brook_* and nothing else;
#   1. the tools: brook-broker and brook-paygen answer --help; a broker is started, paygen
#      writes payments to it, and the broker stops cleanly on SIGTERM;
#   2. outside.c built with `pkg-config --cflags --libs brook` needs libbrook.so.0: without
#      LD_LIBRARY_PATH or an rpath it fails to start with the loader's "cannot open shared
#      object file" (as the README says), runs with LD_LIBRARY_PATH, and runs on its own when
#      built with the README's -Wl,-rpath;
#   3. outside.c built with `pkg-config --static --cflags --libs brook` does not need
#      libbrook.so at all (readelf -d, ldd) and runs;
#   4. outside_cxx.cc, a C++ program, compiles against the headers and runs.
# Usage: test_install.sh CMAKE BUILD_DIR CC "EXTRA_FLAGS"   (EXTRA_FLAGS: sanitizer flags)
set -eu

cmake=$1
build=$2
cc=$3
extra=${4:-}
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/brook-install.XXXXXX")
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || :; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
prefix=$tmp/prefix

fail() {
  echo "install test: FAILED: $*" >&2
  exit 1
}

# Runs "$@" with no LD_LIBRARY_PATH, as a user's shell would have it.
run_plain() {
  env -u LD_LIBRARY_PATH "$@"
}

# The DT_NEEDED entries of an executable, one per line.
needed() {
  readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'
}

"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }

pc=$(find "$prefix" -name brook.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no brook.pc installed under $prefix"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
bindir=$prefix/bin
for f in "$prefix/include/brook/brook.h" "$libdir/libbrook.a" "$libdir/libbrook.so" \
  "$libdir/libbrook.so.0" "$bindir/brook-broker" "$bindir/brook-paygen"; do
  [ -e "$f" ] || fail "missing ${f#"$prefix"/}"
done

# ---- 0. libbrook.so exports the public API only -----------------------------------------
internal=$(nm -D --defined-only "$libdir/libbrook.so" | awk '{print $3}' | grep -v '^brook_' || :)
[ -z "$internal" ] ||
  fail "libbrook.so exports symbols that are not brook_*: $(echo "$internal" | head -n 5 | tr '\n' ' ')"
nm -D --defined-only "$libdir/libbrook.so" | grep -q ' T brook_runtime_new$' ||
  fail "libbrook.so does not export brook_runtime_new"

# ---- 1. the tools ----------------------------------------------------------------------

for tool in broker paygen; do
  status=0
  run_plain "$bindir/brook-$tool" --help >"$tmp/help.out" 2>&1 || status=$?
  [ "$status" -eq 0 ] ||
    { cat "$tmp/help.out" >&2; fail "brook-$tool --help exited with status $status"; }
  grep -q "usage: brook-$tool" "$tmp/help.out" ||
    { cat "$tmp/help.out" >&2; fail "brook-$tool --help printed no usage"; }
done

# Its control input is a fifo this shell holds open on fd 3: if the test dies, even by
# SIGKILL, the broker sees the end of its input and exits. env (not run_plain, a function
# the shell would fork for) execs the broker, so $! is the broker's own pid.
mkfifo "$tmp/control"
env -u LD_LIBRARY_PATH "$bindir/brook-broker" --quiet --control-stdin --topic payments:2 \
  --bootstrap-file "$tmp/bootstrap" <"$tmp/control" >"$tmp/broker.out" 2>&1 &
broker_pid=$!
exec 3>"$tmp/control"
# Wait (30 s at most) for the broker to write its address.
deadline=$(($(date +%s) + 30))
while [ ! -s "$tmp/bootstrap" ]; do
  kill -0 "$broker_pid" 2>/dev/null ||
    { cat "$tmp/broker.out" >&2; fail "brook-broker exited before it was up"; }
  [ "$(date +%s)" -lt "$deadline" ] ||
    { cat "$tmp/broker.out" >&2; fail "brook-broker wrote no address in 30 s"; }
  sleep 0.1
done
bootstrap=$(cat "$tmp/bootstrap")
status=0
out=$(run_plain "$bindir/brook-paygen" --brokers "$bootstrap" --topic payments --count 2000 \
  --fraud-cards 0 2>&1) || status=$?
[ "$status" -eq 0 ] || { echo "$out" >&2; fail "brook-paygen exited with status $status"; }
case $out in
*"paygen: sent=2000 "*) ;;
*) echo "$out" >&2; fail "brook-paygen did not report 2000 payments sent" ;;
esac
kill -TERM "$broker_pid"
status=0
wait "$broker_pid" || status=$?
broker_pid=
exec 3>&-
[ "$status" -eq 0 ] || { cat "$tmp/broker.out" >&2; fail "brook-broker exited with status $status on SIGTERM"; }
[ ! -e "$tmp/bootstrap" ] || fail "brook-broker left its bootstrap file behind"
echo "install test: brook-broker and brook-paygen run from $bindir ($bootstrap)"

# ---- 2. dynamic linking ----------------------------------------------------------------

export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs brook) || fail "pkg-config --cflags --libs brook"
echo "pkg-config --cflags --libs brook: $flags"
# shellcheck disable=SC2086 # flag lists are meant to split into words
"$cc" $extra -Wall -Wextra -Werror -o "$tmp/outside" "$here/outside.c" $flags ||
  fail "compiling outside.c against the shared library"
needed "$tmp/outside" | grep -qx 'libbrook\.so\.0' ||
  fail "outside (shared) does not need libbrook.so.0: $(needed "$tmp/outside" | tr '\n' ' ')"

# Outside the loader's search path, the program cannot start: the README's symptom.
status=0
run_plain "$tmp/outside" >"$tmp/noenv.out" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "outside (shared) ran without LD_LIBRARY_PATH or an rpath"
grep -q 'libbrook\.so\.0: cannot open shared object file' "$tmp/noenv.out" ||
  { cat "$tmp/noenv.out" >&2; fail "outside (shared) failed otherwise than the README says"; }

# Fix 1: LD_LIBRARY_PATH.
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/outside") ||
  fail "outside (shared, LD_LIBRARY_PATH) exited with status $?"
[ "$out" = ok ] || fail "outside (shared, LD_LIBRARY_PATH) printed '$out', expected 'ok'"

# Fix 2: an rpath, exactly as the README writes it.
# shellcheck disable=SC2046,SC2086
"$cc" $extra -Wall -Wextra -Werror -o "$tmp/outside_rpath" "$here/outside.c" \
  $(pkg-config --cflags --libs brook) -Wl,-rpath,"$(pkg-config --variable=libdir brook)" ||
  fail "compiling outside.c with an rpath"
out=$(run_plain "$tmp/outside_rpath") || fail "outside (shared, rpath) exited with status $?"
[ "$out" = ok ] || fail "outside (shared, rpath) printed '$out', expected 'ok'"

# ---- 3. static linking -----------------------------------------------------------------

static_flags=$(pkg-config --static --cflags --libs brook) || fail "pkg-config --static brook"
echo "pkg-config --static --cflags --libs brook: $static_flags"
# shellcheck disable=SC2086
"$cc" $extra -Wall -Wextra -Werror -o "$tmp/outside_static" "$here/outside.c" $static_flags ||
  fail "compiling outside.c against the static library"
if needed "$tmp/outside_static" | grep -q libbrook; then
  fail "outside (static) needs $(needed "$tmp/outside_static" | grep libbrook)"
fi
if ldd "$tmp/outside_static" | grep -q libbrook; then
  fail "ldd shows libbrook in outside (static): $(ldd "$tmp/outside_static" | grep libbrook)"
fi
out=$(run_plain "$tmp/outside_static") || fail "outside (static) exited with status $?"
[ "$out" = ok ] || fail "outside (static) printed '$out', expected 'ok'"

# ---- 4. a C++ program: the headers compile as C++, a user's own error code stays itself ----
cxx=${CXX:-c++}
"$cxx" $extra -std=c++11 -Wall -Wextra -Werror -o "$tmp/outside_cxx" "$here/outside_cxx.cc" \
  $flags || fail "compiling outside_cxx.cc (C++) against the shared library"
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/outside_cxx") || fail "outside_cxx exited with status $?"
[ "$out" = ok ] || fail "outside_cxx printed '$out', expected 'ok'"

echo "install test: ok (tools; shared with LD_LIBRARY_PATH and rpath; static; C++; prefix $prefix)"
