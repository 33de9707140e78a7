#!/usr/bin/env bash
# Builds the Vault CLI/server from the Go module proxy (tools/vault) once and
# caches it per version in the user cache folder, where a fresh clone (CI) finds
# it again. Prints the binary's path. The first build takes 20-30 minutes on 2 cores.
#
# The build is kept out of go.work (GOWORK=off) so that the workspace's version
# selection never changes Vault's dependency graph.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(cd "$root/tools/vault" && GOWORK=off go list -m -f "{{.Version}}" github.com/hashicorp/vault)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/integrationhub/vault-$version"
bin="$cache/vault"
# One build at a time per version: a second copy of the test script waits
# for the first one's build instead of writing the same file.
mkdir -p "$cache"
exec 9>"$cache.lock"
flock -w 3600 9
if [[ ! -x "$bin" ]]; then
  echo "building Vault $version into $cache (first time only; 20-30 minutes on 2 cores)" >&2
  (cd "$root/tools/vault" && GOWORK=off go build -trimpath -ldflags="-s -w" -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
fi
# A stable path inside the clone for people and scripts (git-ignored).
mkdir -p "$root/.bin"
ln -sf "$bin" "$root/.bin/vault"
echo "$bin"
