#!/usr/bin/env bash
# Prepares the client side of okta-sim/tests/okta_sdk.rs: a Python venv with Okta's SDK (PyPI
# `okta`) as pinned in requirements.txt, in a cache directory keyed by those pins. A second run
# with the same pins only checks and prints. Prints the venv's python on stdout; everything else
# goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${SAMLCRED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/samlcred}
python=${SAMLCRED_PYTHON:-python3}

say() { echo "okta-sdk/setup.sh: $*" >&2; }

command -v "$python" >/dev/null || { say "$python is needed for the SDK venv (set SAMLCRED_PYTHON)"; exit 1; }
pyversion=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$( { cat "$here/requirements.txt" "$here/setup.sh"; echo "$pyversion"; } | sha256sum | cut -c1-16)
venv="$cache_root/okta-sdk-venv-$key"

if [ ! -f "$venv/.complete" ]; then
  mkdir -p "$cache_root"
  # Two test runs may start at once: one builds, the other waits for it.
  exec 9>"$venv.lock"
  flock 9
  if [ ! -f "$venv/.complete" ]; then
    say "creating $venv (okta from requirements.txt; once per machine and pin set)"
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$here/requirements.txt" >&2
    "$venv/bin/python" -m pip check --disable-pip-version-check >&2
    touch "$venv/.complete"
  fi
  flock -u 9
fi

"$venv/bin/python" -c 'import okta' || { say "the venv $venv is broken; remove it"; exit 1; }
echo "$venv/bin/python"
