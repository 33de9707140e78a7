#!/usr/bin/env bash
# Regenerates gen/ from proto/. buf's own "clean" would delete gen/go.mod, so the
# generated tree is cleared here instead.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen/integrationhub
go tool buf generate
(cd gen && go mod tidy)
