#!/usr/bin/env bash
# Builds one upstream Go tool from its pinned module (the go.mod/go.sum in tests/tools/NAME) into a
# cache directory keyed by those pins, once per machine, the way tests/kube/build.sh builds the
# control plane. A second run with the same pins only prints. Prints the binary's path on stdout.
#   bash tests/tools/build.sh promtool | crane | actionlint
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: build.sh promtool|crane|actionlint}
case "$name" in
  promtool)   pkg=github.com/prometheus/prometheus/cmd/promtool ;;
  crane)      pkg=github.com/google/go-containerregistry/cmd/crane ;;
  actionlint) pkg=github.com/rhysd/actionlint/cmd/actionlint ;;
  *) echo "build.sh: unknown tool $name (promtool, crane or actionlint)" >&2; exit 2 ;;
esac
mod="$here/$name"
cache_root=${SAMLCRED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/samlcred}
key=$(cat "$mod/go.mod" "$mod/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
root="$cache_root/$name-$key"
bin="$root/bin/$name"

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: the go command is needed to build $name" >&2; exit 1; }
mkdir -p "$cache_root"
# Two test runs may start at once: one builds, the other waits for it.
exec 9>"$root.lock"
flock 9
if ! [ -x "$bin" ]; then
  export CGO_ENABLED=0 GOFLAGS=-mod=mod
  version=$(awk -v m="${pkg%/cmd/*}" '$1 == m {print $2}' "$mod/go.mod")
  ldflags="-s -w"
  tags=()
  if [ "$name" = promtool ]; then
    # Prometheus's own build tag for a build without its service discoveries (the cloud SDKs are most
    # of the build): checking and unit-testing rules needs none of them.
    tags=(-tags remove_all_sd)
    # Prometheus 3.x is published as Go module v0.3MM.P (v0.316.0 is Prometheus 3.16.0). Built from
    # the module there is no git tree, so stamp the version as Prometheus's own build (promu) does.
    minor=$(echo "$version" | cut -d. -f2); patch=$(echo "$version" | cut -d. -f3)
    ldflags+=" -X github.com/prometheus/common/version.Version=3.$(( 10#${minor:1} )).$patch"
  fi
  # crane and actionlint read their version from the module's build info.
  start=$(date +%s)
  echo "build.sh: building $name $version into $root (once per machine)" >&2
  rm -rf "$root.partial"; mkdir -p "$root.partial/bin"
  (cd "$mod" && go build -trimpath "${tags[@]}" -ldflags "$ldflags" -o "$root.partial/bin/$name" "$pkg")
  rm -rf "$root"; mv "$root.partial" "$root"
  echo "build.sh: built $name in $(( $(date +%s) - start ))s" >&2
fi
flock -u 9
echo "$bin"
