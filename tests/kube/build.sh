#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) and helm from
# their upstream Go modules, pinned by the go.mod/go.sum files beside this script, into a cache directory
# keyed by those pins. A second run with the same pins does nothing. Prints the bin directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${SAMLCRED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/samlcred}
key=$(cat "$here/go.mod" "$here/go.sum" "$here/helm/go.mod" "$here/helm/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
bin="$cache_root/kube-$key/bin"
tools=(etcd kube-apiserver kube-controller-manager kubectl helm)

complete=1
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || complete=0; done
if [ "$complete" = 1 ]; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: the go command is needed to build the control plane" >&2; exit 1; }
tmp="$cache_root/kube-$key/bin.partial"
rm -rf "$tmp"; mkdir -p "$tmp"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Built from modules there is no git tree to stamp the version from, so stamp it the way
# Kubernetes's own build does (hack/lib/version.sh), or every component reports v0.0.0-master.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/go.mod")
k8s_minor=$(echo "$k8s_version" | cut -d. -f2)
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done
helm_version=$(awk '$1 == "helm.sh/helm/v3" {print $2}' "$here/helm/go.mod")
flags=(-trimpath -ldflags "-s -w$stamp")
start=$(date +%s)
echo "build.sh: building the control plane into $bin (once per machine; 10-30 minutes cold)" >&2
(cd "$here" && go build "${flags[@]}" -o "$tmp/" \
    go.etcd.io/etcd/server/v3 \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl)
# go names the etcd binary after its module path, minus the /v3 suffix.
mv "$tmp/server" "$tmp/etcd"
(cd "$here/helm" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" \
    -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
rm -rf "$bin"; mv "$tmp" "$bin"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
