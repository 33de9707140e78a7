#!/usr/bin/env bash
# Sets up and runs the local stack: builds Vault once (cached), then starts a
# Vault dev server, the credential broker and the connection service on SQLite,
# all on loopback, runs a short demo, and serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/vault-build.sh >/dev/null
# A built hub, so that the commands it prints return the CLI's own exit codes.
go build -o .bin/hub ./cmd/hub
exec .bin/hub dev "$@"
