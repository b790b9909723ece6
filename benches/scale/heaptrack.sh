#!/usr/bin/env bash
# SCALE_CONTROLLER_WRAPPER=benches/scale/heaptrack.sh: records the controller's heap with heaptrack
# (Debian package heaptrack) into $SCALE_HEAPTRACK_DIR (default /tmp), and execs the controller so
# the bench's pid, signals and VmHWM stay the controller's. Read a profile with heaptrack_print.
set -euo pipefail
lib=$(dirname "$(readlink -f "$(command -v heaptrack)")")/../lib/heaptrack
dir=${SCALE_HEAPTRACK_DIR:-/tmp}
out="$dir/heaptrack.samlcred.$$.zst"
pipe=$(mktemp -u "$dir/heaptrack-fifo.XXXXXX")
mkfifo "$pipe"
("$lib/libexec/heaptrack_interpret" < "$pipe" | zstd -q -c > "$out"; rm -f "$pipe") &
echo "heaptrack: writing $out" >&2
LD_PRELOAD="$lib/libheaptrack_preload.so" DUMP_HEAPTRACK_OUTPUT="$pipe" exec "$@"
