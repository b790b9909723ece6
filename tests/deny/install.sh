#!/usr/bin/env bash
# Installs the pinned cargo-deny from crates.io (`cargo install --locked`, with the lock file it was
# released with) into a cache directory keyed by the pin, once per machine. A second run with the
# same pin only prints. Prints the path of the cargo-deny binary on stdout; the rest goes to stderr.
set -euo pipefail
version=0.20.2
cache_root=${SAMLCRED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/samlcred}
root="$cache_root/cargo-deny-$version"
bin="$root/bin/cargo-deny"

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then echo "$bin"; exit 0; fi

mkdir -p "$cache_root"
# Two test runs may start at once: one installs, the other waits for it.
exec 9>"$root.lock"
flock 9
if ! [ -x "$bin" ]; then
  start=$(date +%s)
  echo "deny/install.sh: installing cargo-deny $version into $root (once per machine)" >&2
  # cargo-deny's own release profile is fat LTO with one codegen unit: minutes more on 2 cores for
  # a tool that runs for seconds, so this build uses cargo's usual release settings instead.
  rm -rf "$root.partial"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install --locked --quiet --root "$root.partial" cargo-deny --version "=$version" >&2
  rm -rf "$root"; mv "$root.partial" "$root"
  echo "deny/install.sh: installed in $(( $(date +%s) - start ))s" >&2
fi
flock -u 9
"$bin" --version >&2
echo "$bin"
