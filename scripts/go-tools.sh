#!/usr/bin/env bash
# Builds the pinned Go tools (tools/go.mod: buf, the protoc plugins, grpcurl,
# helm) into Go's build cache, one copy of this script at a time on a machine.
#
# Why: `go tool X` runs X from the shared build cache. When two go commands
# build the same tool at once (two copies of the test script on a fresh
# machine), one may exec it while the other still holds it open for writing,
# and the exec fails with "text file busy" (golang/go#22315; a second CI copy
# failed so in charts/lint.sh). Once built, `go tool` only reads the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
lock="${XDG_CACHE_HOME:-$HOME/.cache}/integrationhub/go-tools.lock"
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock -w 1800 9
for tool in buf protoc-gen-go protoc-gen-go-grpc grpcurl helm; do
  go tool -n "$tool" >/dev/null
done
