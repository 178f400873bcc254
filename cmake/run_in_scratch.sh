#!/bin/sh
# Runs a command in a freshly emptied scratch directory, so a test never sees files left by
# an earlier run. Usage: run_in_scratch.sh DIR COMMAND [ARGS...]
set -eu
dir=$1
shift
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
exec "$@"
