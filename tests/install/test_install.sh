#!/bin/sh
# The install test (ctest "install"): installs the build into a temporary prefix, compiles
# outside.c against it using only pkg-config, runs it against the installed shared library,
# and links it once more against the static library (pkg-config --static).
# Usage: test_install.sh CMAKE BUILD_DIR CC "EXTRA_FLAGS"   (EXTRA_FLAGS: sanitizer flags)
set -eu

cmake=$1
build=$2
cc=$3
extra=${4:-}
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/brook-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
prefix=$tmp/prefix

fail() {
  echo "install test: FAILED: $*" >&2
  exit 1
}

"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }

pc=$(find "$prefix" -name brook.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no brook.pc installed under $prefix"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
for f in "$prefix/include/brook/brook.h" "$libdir/libbrook.a" "$libdir/libbrook.so" \
  "$libdir/libbrook.so.0"; do
  [ -e "$f" ] || fail "missing ${f#"$prefix"/}"
done

export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs brook) || fail "pkg-config --cflags --libs brook"
static_flags=$(pkg-config --static --cflags --libs brook) || fail "pkg-config --static brook"
echo "pkg-config brook: $flags"

# Shared: -lbrook picks libbrook.so; run it from the temporary prefix.
# shellcheck disable=SC2086 # flag lists are meant to split into words
"$cc" $extra -Wall -Wextra -Werror -o "$tmp/outside" "$here/outside.c" $flags ||
  fail "compiling outside.c against the shared library"
out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/outside") ||
  fail "outside (shared) exited with status $?"
[ "$out" = ok ] || fail "outside (shared) printed '$out', expected 'ok'"

# Static: libbrook.a plus Libs.private (-lrdkafka -lpthread) must be enough.
static_flags=$(printf '%s\n' "$static_flags" | sed 's/-lbrook\b/-l:libbrook.a/')
# shellcheck disable=SC2086
"$cc" $extra -Wall -Wextra -Werror -o "$tmp/outside_static" "$here/outside.c" $static_flags ||
  fail "compiling outside.c against the static library"
out=$("$tmp/outside_static") || fail "outside (static) exited with status $?"
[ "$out" = ok ] || fail "outside (static) printed '$out', expected 'ok'"

echo "install test: ok (shared and static, prefix $prefix)"
