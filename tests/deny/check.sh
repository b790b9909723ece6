#!/usr/bin/env bash
# `cargo deny check` over the whole workspace as deny.toml configures it (licenses, bans, sources,
# advisories), offline: advisories come from the RustSec snapshot in ../shared/advisory-db (see its
# NOTICE.md), never from the network. Then checks that the operator's own dependencies (not its
# tests', not okta-sim's) do without the `rsa` crate, whose advisory deny.toml accepts for the
# simulator's test keys only.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
snapshot=${SAMLCRED_ADVISORY_DB:-$repo/../shared/advisory-db}
cargo=${CARGO:-cargo}
say() { echo "deny/check.sh: $*" >&2; }

[ -f "$snapshot/NOTICE.md" ] || { say "no RustSec snapshot at $snapshot (CI lays ../shared beside the clone)"; exit 1; }
deny=$(bash "$repo/tests/deny/install.sh")

# cargo-deny opens an advisory database as a git checkout at <db-path>/<name>-<hash of its URL>
# (deny.toml's db-path and db-urls; this is the name for that URL) and dates it by the mtime of
# .git/FETCH_HEAD. The snapshot is a plain folder, so it becomes such a checkout, dated as the
# snapshot is, once per snapshot and clone.
dbs="$repo/target/advisory-dbs"
db="$dbs/advisory-db-3157b0e258782691"
stamp=$(cd "$snapshot" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$dbs/snapshot" 2>/dev/null)" != "$stamp" ] || [ ! -d "$db/.git" ]; then
  dated=$(sed -n 's/.*dated \([0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}\).*/\1/p' "$snapshot/NOTICE.md" | head -1)
  [ -n "$dated" ] || { say "$snapshot/NOTICE.md does not say when the snapshot is dated"; exit 1; }
  say "preparing the advisory database from $snapshot (dated $dated)"
  rm -rf "$db"; mkdir -p "$dbs"
  cp -R "$snapshot" "$db"; chmod -R u+w "$db"
  git -C "$db" init -q
  git -C "$db" add -A
  GIT_AUTHOR_DATE="${dated}T00:00:00Z" GIT_COMMITTER_DATE="${dated}T00:00:00Z" \
    git -C "$db" -c user.name=snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
    commit -q --no-verify -m "RustSec advisory-db snapshot ($dated)"
  touch -d "${dated}T00:00:00Z" "$db/.git/FETCH_HEAD"
  echo "$stamp" > "$dbs/snapshot"
fi

cd "$repo"
# --offline: no advisory fetch, and cargo metadata from what is already downloaded.
"$cargo" fetch --locked --quiet
"$deny" --locked --offline check --show-stats

# The advisory RUSTSEC-2023-0071 is accepted for okta-sim only: samlcred's own build must not link
# rsa, on any target. (`cargo tree -i` prints nothing, and succeeds, when rsa is not in the graph.)
path=$("$cargo" tree --locked --offline -p samlcred -e normal,build --target all -i rsa 2>/dev/null || true)
if [ -n "$path" ]; then
  say "the rsa crate is back in samlcred's dependencies (RUSTSEC-2023-0071): sign with ring"
  echo "$path" >&2
  exit 1
fi
say "samlcred's own dependencies do without rsa"
