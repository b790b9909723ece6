#!/usr/bin/env bash
# Prepares the service-provider side of the sign-in probe (tests/sp/probe.py): xmlsec1 (Debian
# package, installed with apt-get when missing) and a Python venv with the pysaml2 pinned in
# requirements.txt, in a cache directory keyed by those pins. A second run with the same pins only
# checks and prints. Prints the venv's python on stdout; everything else goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${SAMLCRED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/samlcred}
python=${SAMLCRED_PYTHON:-python3}

say() { echo "sp/setup.sh: $*" >&2; }

if ! command -v xmlsec1 >/dev/null; then
  say "installing xmlsec1 (pysaml2 verifies XML signatures with it)"
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo -n); else
    say "xmlsec1 is missing and this user cannot run apt-get; install the Debian package xmlsec1"; exit 1
  fi
  if ! command -v apt-get >/dev/null; then say "xmlsec1 is missing and there is no apt-get; install xmlsec1"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq xmlsec1 >&2
  command -v xmlsec1 >/dev/null || { say "apt-get did not install xmlsec1"; exit 1; }
fi

command -v "$python" >/dev/null || { say "$python is needed for the SP venv (set SAMLCRED_PYTHON)"; exit 1; }
pyversion=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$( { cat "$here/requirements.txt" "$here/setup.sh"; echo "$pyversion"; } | sha256sum | cut -c1-16)
venv="$cache_root/sp-venv-$key"

if [ ! -f "$venv/.complete" ]; then
  mkdir -p "$cache_root"
  # Two test runs may start at once: one builds, the other waits for it.
  exec 9>"$venv.lock"
  flock 9
  if [ ! -f "$venv/.complete" ]; then
    say "creating $venv (pysaml2 from requirements.txt; once per machine and pin set)"
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$here/requirements.txt" >&2
    "$venv/bin/python" -m pip check --disable-pip-version-check >&2
    touch "$venv/.complete"
  fi
  flock -u 9
fi

"$venv/bin/python" -c 'import saml2' || { say "the venv $venv is broken; remove it"; exit 1; }
echo "$venv/bin/python"
