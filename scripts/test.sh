#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls exactly this).
# Installs what it needs (the Vault build, pinned Go tools), then checks the API
# contracts and generated code, vets and builds every module on its own, and
# runs every test against real Vault, real processes and the local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Vault server build (cached per version)"
# Assigned apart from export, so that a failed build stops the script here.
VAULT_BIN="$(bash scripts/vault-build.sh)"
export VAULT_BIN
"$VAULT_BIN" version

step "kube-apiserver and kube-controller-manager builds, etcd (cached per version; the charts' real-install test)"
KUBE_BIN_DIR="$(bash scripts/kube-build.sh)"
export KUBE_BIN_DIR
"$KUBE_BIN_DIR/kube-apiserver" --version

step "Chromium for the connect flow's browser tests (Debian's package, installed when missing)"
bash scripts/apt-install.sh chromium chromium
chromium --version
# curl pastes the proxy command that `hub dev` prints (e2e TestDevCommand).
bash scripts/apt-install.sh curl curl

step "pinned Go tools, built once (a lock: two copies of this script must not build them at once)"
bash scripts/go-tools.sh

step "buf lint"
go tool buf lint

step "buf breaking against the API baseline (.ci/api-baseline)"
baseline="$(cat .ci/api-baseline)"
if ! git cat-file -e "$baseline^{commit}" 2>/dev/null; then
  echo "the API baseline commit $baseline is not in this clone (a shallow clone?); fetch full history" >&2
  exit 1
fi
go tool buf breaking --against ".git#ref=$baseline"

step "buf generate leaves no diff"
bash scripts/generate.sh
if ! git diff --exit-code --stat -- gen || [[ -n "$(git status --porcelain -- gen)" ]]; then
  git status --porcelain -- gen
  echo "gen/ is out of date: run scripts/generate.sh and commit the result" >&2
  exit 1
fi

step "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [[ -n "$unformatted" ]]; then
  echo "not gofmt-formatted (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi

step "one version per dependency across the modules' go.mod files"
bash scripts/check-dep-versions.sh

step "every Go package is listed in the README's Layout"
bash scripts/check-readme-layout.sh

modules=(. gen broker services/connections sdk/go tools charts)

step "go vet, and each module builds on its own (GOWORK=off)"
for m in "${modules[@]}"; do
  (cd "$m" && go vet ./... && GOWORK=off go build ./...)
done

step "helm lint: every chart, defaults and each ci/*-values.yaml"
bash charts/lint.sh

step "go test"
go test -count=1 -timeout=40m ./... ./broker/... ./services/connections/... ./sdk/go/... ./charts/...
