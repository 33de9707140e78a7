#!/usr/bin/env bash
# Fails when a Go package of this repository is missing from the README's
# "Layout" section, so that a newcomer finds every package there by its name.
# A package counts as listed when its path below its module (broker/...,
# services/connections/...) or below internal/ stands in the section.
set -euo pipefail
cd "$(dirname "$0")/.."
layout="$(awk '/^## Layout/{on=1; next} /^## /{on=0} on' README.md)"
missing=0
while read -r dir; do
  rel="${dir#broker/}"
  rel="${rel#services/connections/}"
  found=0
  for name in "$dir" "$rel" "${rel#internal/}"; do
    if grep -qE "(^|[ ,(])${name}([ ,)/]|$)" <<<"$layout"; then found=1; break; fi
  done
  if [[ $found == 0 ]]; then echo "README Layout does not list $dir"; missing=1; fi
done < <(git ls-files '*.go' | grep -v -e '_test\.go$' -e '^gen/' -e '^tools/' -e '^e2e/' | xargs -n1 dirname | sort -u)
exit $missing
