#!/usr/bin/env bash
# Lints every chart strictly (warnings fail), once with its defaults and once per
# ci/*-values.yaml scenario, with the helm pinned in tools/go.mod. Needs no cluster and no network:
# the umbrella chart's dependencies are the sibling directories (file://), packaged into
# charts/integrationhub/charts/ (git-ignored) by `helm dependency build`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build (or find in the build cache) the pinned helm once, rather than once per lint.
helm=$(go tool -n helm)

"$helm" dependency build charts/integrationhub >/dev/null

status=0
for chart in charts/connections charts/broker charts/integrationhub; do
  for values in "" "$chart"/ci/*-values.yaml; do
    if ! out=$("$helm" lint --strict --quiet "$chart" ${values:+--values "$values"} 2>&1); then
      echo "helm lint $chart ${values:-(defaults)}: FAILED" >&2
      echo "$out" >&2
      status=1
    else
      echo "helm lint $chart ${values:-(defaults)}: ok"
    fi
  done
done
exit "$status"
