#!/bin/sh
# The export test (ctest "abi_exports"): libbrook.so exports exactly the public API.
#   - every function declared in include/brook/*.h (not static inline) is exported by
#     libbrook.so: a missing one was declared without BROOK_API (brook/export.h), so
#     -fvisibility=hidden kept it inside the library;
#   - every such declaration carries BROOK_API (also checked from the headers, so a symbol the
#     version script would still let through is caught too);
#   - libbrook.so exports nothing else: no internal bk_* function, no stray brook_* symbol
#     that no header declares.
# The headers are read after the C preprocessor (comments, macros and #if resolved) with
# BROOK_API defined as a marker, so a declaration spread over lines or a new header is found
# without anyone keeping a list.
# Usage: check_exports.sh CC INCLUDE_DIR LIBBROOK_SO
set -eu

cc=$1
incdir=$2
lib=$3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/brook-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

fail=0
problem() {
  echo "abi_exports: FAILED: $*" >&2
  fail=1
}

# One translation unit including every public header.
for h in "$incdir"/brook/*.h; do
  echo "#include <brook/$(basename "$h")>"
done >"$tmp/all.c"
"$cc" -E -P -std=c11 -D_DEFAULT_SOURCE -DBROOK_API=brook_api_marker_ -I"$incdir" "$tmp/all.c" \
  >"$tmp/all.i" || { echo "abi_exports: FAILED: the public headers do not preprocess" >&2; exit 1; }

# File-scope declarations only: the text inside braces (struct members, inline bodies) is
# dropped, and a closing brace at file scope ends a statement like a semicolon. A statement is
# a function declaration when an identifier brook_* follows a return type and is followed by
# "(" (not "(*": a member or typedef of a function pointer); typedefs and static inline
# functions (compiled into the caller) are not exported. Prints "name<TAB>annotated(0/1)".
awk '
  { text = text " " $0 }
  END {
    depth = 0; out = ""
    n = length(text)
    for (i = 1; i <= n; i++) {
      c = substr(text, i, 1)
      if (c == "{") { if (depth == 0) out = out ";"; depth++; continue }
      if (c == "}") { depth--; if (depth == 0) out = out ";"; continue }
      if (depth == 0) out = out c
    }
    m = split(out, stmts, ";")
    for (k = 1; k <= m; k++) {
      s = stmts[k]
      gsub(/[ \t\n]+/, " ", s); sub(/^ /, "", s)
      if (s ~ /^(typedef|static|extern "C")/ || s ~ /(^| )static( |$)/) continue
      if (!match(s, /^[A-Za-z_][A-Za-z_0-9 *]*[ *]brook_[A-Za-z_0-9]+ ?\(/)) continue
      head = substr(s, 1, RLENGTH)
      if (substr(s, RLENGTH + 1) ~ /^ ?\*/) continue
      sub(/ ?\($/, "", head)
      name = head; sub(/.*[ *]/, "", name)
      print name "\t" (s ~ /brook_api_marker_/ ? 1 : 0)
    }
  }' "$tmp/all.i" | sort -u >"$tmp/decls"

cut -f1 "$tmp/decls" | sort -u >"$tmp/declared"
[ -s "$tmp/declared" ] || { echo "abi_exports: FAILED: found no declaration in $incdir/brook" >&2; exit 1; }
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWwDdBbRrVvi]$/ {print $3}' | sed 's/@.*//' |
  sort -u >"$tmp/exported"

# Where a name is declared, for the messages.
where() {
  grep -l "^[A-Za-z].*[ *]$1 *(" "$incdir"/brook/*.h 2>/dev/null | sed "s|^$incdir/||" | head -n 1
}
list() {
  while read -r name; do
    echo "    $name ($(where "$name"))"
  done
}

unannotated=$(awk -F'\t' '$2 == 0 {print $1}' "$tmp/decls")
if [ -n "$unannotated" ]; then
  problem "public functions declared without BROOK_API (add it before the return type):"
  echo "$unannotated" | list >&2
fi

missing=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$missing" ]; then
  problem "declared in include/brook but not exported by $(basename "$lib") (missing BROOK_API, or never defined):"
  echo "$missing" | list >&2
fi

extra=$(comm -13 "$tmp/declared" "$tmp/exported")
if [ -n "$extra" ]; then
  problem "$(basename "$lib") exports symbols that no public header declares:"
  echo "$extra" | sed 's/^/    /' >&2
fi

if [ "$fail" -ne 0 ]; then
  exit 1
fi
echo "abi_exports: $(wc -l <"$tmp/declared") public functions declared, all exported, nothing else"
