#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from the Go module proxy
# (tools/kube) once and caches them per version in the user cache folder, for
# the charts' real-install test. Prints the folder holding both. The first build
# takes several minutes on 2 cores. etcd comes from Debian's etcd-server package
# (installed here when missing).
#
# The build is kept out of go.work (GOWORK=off) so that the workspace's version
# selection never changes Kubernetes' dependency graph.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(cd "$root/tools/kube" && GOWORK=off go list -m -f "{{.Version}}" k8s.io/kubernetes)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/integrationhub/kube-$version"
mkdir -p "$cache"
# Kubernetes' own build stamps the version; without it the server says v0.0.0 and helm refuses
# charts that require a Kubernetes version.
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
stamp="-X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
# One build at a time per version: a second copy of the test script waits
# for the first one's build instead of writing the same files.
exec 9>"$cache.lock"
flock -w 3600 9
for cmd in kube-apiserver kube-controller-manager; do
  if [[ ! -x "$cache/$cmd" ]] || ! "$cache/$cmd" --version 2>/dev/null | grep -qF "$version"; then
    echo "building $cmd $version into $cache (first time only; several minutes)" >&2
    (cd "$root/tools/kube" && GOWORK=off go build -trimpath -ldflags="-s -w $stamp" -o "$cache/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$cache/$cmd.tmp" "$cache/$cmd"
  fi
done
bash "$root/scripts/apt-install.sh" etcd etcd-server
echo "$cache"
