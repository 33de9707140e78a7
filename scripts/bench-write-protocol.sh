#!/usr/bin/env bash
# Before/after load run of the write protocol (BENCHMARKS.md): builds the
# connection service as it was before the protocol (BASE, default ab83c2e)
# and runs e2e's TestWriteThroughput with it and with this tree, against the
# same broker, Vault and PostgreSQL. INTEGRATIONHUB_BENCH_CHUNKS (default 8)
# lengthens the run; INTEGRATIONHUB_BENCH_GRACE sets the replacement grace.
set -euo pipefail
cd "$(dirname "$0")/.."
base="${BASE:-ab83c2e}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git archive "$base" | tar -x -C "$tmp"
(cd "$tmp" && go build -o "$tmp/connections-before" ./services/connections/cmd/connections)
INTEGRATIONHUB_BENCH_WRITE=1 INTEGRATIONHUB_BENCH_BEFORE="$tmp/connections-before" \
  go test -count=1 -run 'TestWriteThroughput' -v ./e2e/ 2>&1 | grep -E 'CreateConnection|PASS|FAIL|ok'
