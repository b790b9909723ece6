#!/usr/bin/env bash
# Builds the samlcred operator image without a Docker engine: a static samlcred, CA certificates and
# an /etc/passwd naming the unprivileged user, in one layer on an empty OCI base, assembled by crane
# (go-containerregistry, built from its pinned module by tests/tools/build.sh) through a registry it
# serves on loopback for the duration of the build. Writes
#   target/image/oci/                          the image as an OCI image layout
#   target/image/samlcred-VERSION-ARCH.tar     the same image as a tarball (`docker load`, `crane push`)
#
#   PROFILE   cargo profile: release (default; `make image`) or dev (make test's quick image)
#   OUT       output directory (default target/image)
#   VERSION   image version and tag (default: the chart's appVersion)
#   CARGO     cargo command (the release workflow sets `cargo auditable` for the SBOM)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=${PROFILE:-release}
out=${OUT:-$root/target/image}
version=${VERSION:-$(awk -F'"' '/^appVersion:/ {print $2}' charts/samlcred/Chart.yaml)}
source_url=$(awk '/^sources:/ {getline; print $2}' charts/samlcred/Chart.yaml)
read -r -a cargo <<<"${CARGO:-cargo}"
say() { echo "image.sh: $*" >&2; }

case "$(uname -m)" in
  x86_64) arch=amd64 triple=x86_64-unknown-linux-gnu ;;
  aarch64 | arm64) arch=arm64 triple=aarch64-unknown-linux-gnu ;;
  *) say "no image for this machine's architecture $(uname -m)"; exit 1 ;;
esac
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { say "$certs is missing (apt-get install ca-certificates)"; exit 1; }
crane=$(bash tests/tools/build.sh crane)

# glibc's static C runtime: a static-pie that needs no loader or libraries (the TLS stack is rustls
# with ring; host names resolve through glibc's built-in files and DNS modules). With --target the
# flag reaches only samlcred's own build, not build scripts and proc macros.
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
say "building a static samlcred ($profile, $triple)"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-0} \
  "${cargo[@]}" build --locked --profile "$profile" --target "$triple" --bin samlcred
bin="$root/target/$triple/$dir/samlcred"
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
  say "$bin is dynamically linked"; exit 1
fi

work="$out/work"
rm -rf "$work"; mkdir -p "$work/rootfs/usr/local/bin" "$work/rootfs/etc/ssl/certs"
install -m 0755 "$bin" "$work/rootfs/usr/local/bin/samlcred"
install -m 0644 "$certs" "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$work/rootfs/etc/group"
chmod 0644 "$work/rootfs/etc/passwd" "$work/rootfs/etc/group"
# A reproducible layer: sorted, owned by root, dated at the commit.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$work/rootfs" -cf "$work/layer.tar" usr etc

"$crane" registry serve --address 127.0.0.1:0 >"$work/registry.log" 2>&1 &
registry=$!
trap 'kill "$registry" 2>/dev/null || true' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$work/registry.log")
  [ -n "$port" ] && break
  kill -0 "$registry" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { say "crane registry serve did not start:"; cat "$work/registry.log" >&2; exit 1; }
ref="127.0.0.1:$port/samlcred"

labels=(
  --label "org.opencontainers.image.title=samlcred"
  --label "org.opencontainers.image.description=Operator that rotates the signing certificates of Okta SAML applications"
  --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.revision=$revision"
  --label "org.opencontainers.image.created=$created"
  --label "org.opencontainers.image.source=$source_url"
  --label "org.opencontainers.image.licenses=Apache-2.0"
)
"$crane" append --insecure --oci-empty-base -f "$work/layer.tar" -t "$ref:base" >/dev/null
# Entrypoint samlcred, command controller: `samlcred controller` by default, and the chart's args
# (controller --flags...) replace the command.
"$crane" mutate --insecure "$ref:base" -t "$ref:$version" \
  --set-platform "linux/$arch" --user 65532:65532 --workdir / \
  --entrypoint /usr/local/bin/samlcred --cmd controller \
  "${labels[@]}" >/dev/null
rm -rf "$out/oci"
"$crane" pull --insecure --format oci "$ref:$version" "$out/oci"
"$crane" pull --insecure "$ref:$version" "$out/samlcred-$version-$arch.tar"
digest=$("$crane" digest --insecure "$ref:$version")
echo "$digest" >"$out/digest"
say "samlcred $version (linux/$arch) $digest in $out/oci and $out/samlcred-$version-$arch.tar"
