#!/usr/bin/env bash
# Fails when two modules of this repository require different versions of
# the same dependency in their go.mod files: the workspace build would use
# one and a module built on its own (GOWORK=off, as consumers build it)
# another. Fix with `go work sync`, then `GOWORK=off go mod tidy` in each
# module (raising a module's indirect requirement with `go get` where sync
# leaves it behind).
set -euo pipefail
cd "$(dirname "$0")/.."
modules=(. gen broker services/connections sdk/go tools charts)
for m in "${modules[@]}"; do
  go mod edit -json "$m/go.mod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Require") or []:
    print(r["Path"], r["Version"], sys.argv[1])' "$m"
done | awk '$1 !~ /^github.com\/integrationhub\// {
  if (!($1 in first)) { first[$1] = $2; where[$1] = $3 }
  else if (first[$1] != $2 && !seen[$1 " " $2]++) { printf "%s: %s (%s) and %s (%s)\n", $1, first[$1], where[$1], $2, $3; bad = 1 }
} END { exit bad }'
